//! Following a running job through its three sockets.
//!
//! A stream that closes before the status has arrived was either cut off by
//! iomux-spawn because this link fell behind the window, or the job is
//! ending: the link connects to that stream again, and the offset header
//! tells which (continuing exactly, or reporting the loss). With the C
//! iomux-spawn the status always comes before the streams close, so it
//! never reconnects there.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use wire::iomux::{Stream, WaitStatus, STATUS_LEN, STATUS_SOCKET};

use crate::cursor::StreamCursor;
use crate::output::write_out;
use crate::relay::{Fill, Relay};
use crate::{signals, Stop};

const READ_SIZE: usize = 256 * 1024;
/// Reconnections per stream; each one must deliver a header, so this only
/// bounds a pathological server.
const MAX_RECONNECTS: u32 = 16;

pub struct Live {
    socks: [Option<UnixStream>; 3],
    status: Option<WaitStatus>,
    status_buf: [u8; STATUS_LEN],
    status_len: usize,
    reconnects: [u32; 2],
    relay: Option<Relay>,
}

pub enum Connect {
    Live(Live),
    /// A socket could not be connected: the error, for the caller to decide
    /// between the job files and a failure.
    Failed(String, io::Error),
}

fn socket_names() -> [&'static str; 3] {
    [
        Stream::Stdout.socket_name(),
        Stream::Stderr.socket_name(),
        STATUS_SOCKET,
    ]
}

fn connect_one(dir: &Path, name: &str) -> Result<UnixStream, (String, io::Error)> {
    let path = dir.join(name);
    let sock = UnixStream::connect(&path).map_err(|e| (path.display().to_string(), e))?;
    sock.set_nonblocking(true)
        .map_err(|e| (path.display().to_string(), e))?;
    Ok(sock)
}

pub fn connect(dir: &Path) -> Connect {
    let mut socks: [Option<UnixStream>; 3] = [None, None, None];
    for (i, name) in socket_names().into_iter().enumerate() {
        match connect_one(dir, name) {
            Ok(s) => socks[i] = Some(s),
            Err((path, e)) => return Connect::Failed(path, e),
        }
    }
    Connect::Live(Live {
        socks,
        status: None,
        status_buf: [0; STATUS_LEN],
        status_len: 0,
        reconnects: [0; 2],
        relay: Relay::new(),
    })
}

impl Live {
    /// Pump until all three connections are done; returns the status, or
    /// `None` when the status connection closed without one.
    pub fn run(
        mut self,
        dir: &Path,
        cursors: &mut [StreamCursor; 2],
        wake: &OwnedFd,
    ) -> Result<Option<WaitStatus>, Stop> {
        let mut buf = vec![0u8; READ_SIZE];
        loop {
            if signals::terminated() {
                return Err(Stop::Terminated);
            }
            if self.socks.iter().all(Option::is_none) {
                return Ok(self.status);
            }
            // Fixed arrays: nothing is allocated per wake-up.
            let mut ready = [false; 3];
            {
                let mut fds = [PollFd::new(wake.as_fd(), PollFlags::POLLIN); 4];
                let mut which = [0usize; 3];
                let mut n = 0;
                for (i, s) in self.socks.iter().enumerate() {
                    if let Some(s) = s {
                        fds[n] = PollFd::new(s.as_fd(), PollFlags::POLLIN);
                        which[n] = i;
                        n += 1;
                    }
                }
                // fds[n] is the wake-up pipe.
                match poll(&mut fds[..=n], PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(nix::Error::EINTR) => continue,
                    Err(e) => return Err(Stop::Failed(format!("poll: {e}"))),
                }
                for (f, i) in fds[..n].iter().zip(which) {
                    ready[i] = f.revents().is_some_and(|r| !r.is_empty());
                }
            }
            for i in (0..3).filter(|i| ready[*i]) {
                if i == 2 {
                    self.read_status();
                } else {
                    self.read_stream(i, dir, cursors, &mut buf)?;
                }
            }
        }
    }

    fn read_status(&mut self) {
        let Some(sock) = self.socks[2].as_mut() else {
            return;
        };
        loop {
            match sock.read(&mut self.status_buf[self.status_len..]) {
                Ok(0) => break,
                Ok(n) => {
                    self.status_len += n;
                    if self.status_len == STATUS_LEN {
                        self.status = Some(WaitStatus::decode(self.status_buf));
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.socks[2] = None;
    }

    fn read_stream(
        &mut self,
        i: usize,
        dir: &Path,
        cursors: &mut [StreamCursor; 2],
        buf: &mut [u8],
    ) -> Result<(), Stop> {
        let stream = Stream::ALL[i];
        let Some(sock) = self.socks[i].as_mut() else {
            return Ok(());
        };
        let cursor = &mut cursors[i];
        if let Some(relay) = self.relay.as_mut().filter(|r| r.usable()) {
            if cursor.passes_through() {
                match relay.fill(sock) {
                    Fill::Moved(n) => {
                        cursor.received(n);
                        return relay.drain(stream, cursor, buf);
                    }
                    Fill::WouldBlock => return Ok(()),
                    Fill::Eof => {
                        self.socks[i] = None;
                        return self.stream_closed(i, dir, cursors);
                    }
                    Fill::Unsupported => {}
                }
            }
        }
        let n = match sock.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            // A reset is the end of this connection like EOF.
            Err(_) => 0,
        };
        if n == 0 {
            self.socks[i] = None;
            return self.stream_closed(i, dir, cursors);
        }
        let data = cursor
            .feed(&buf[..n])
            .map_err(|g| Stop::FellBehind(stream, g))?;
        write_out(stream, data, cursor)
    }

    fn stream_closed(
        &mut self,
        i: usize,
        dir: &Path,
        cursors: &mut [StreamCursor; 2],
    ) -> Result<(), Stop> {
        // The reference server sends the status before closing streams, so
        // look at what is already queued on the status socket first.
        self.read_status();
        if self.status.is_some() || self.socks[2].is_none() {
            return Ok(());
        }
        if !cursors[i].has_header() || self.reconnects[i] >= MAX_RECONNECTS {
            return Ok(());
        }
        if let Ok(sock) = connect_one(dir, Stream::ALL[i].socket_name()) {
            self.reconnects[i] += 1;
            cursors[i].new_connection();
            self.socks[i] = Some(sock);
        }
        Ok(())
    }
}
