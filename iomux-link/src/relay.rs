//! The zero-copy way from a stream socket to our stdout or stderr: splice
//! the socket into a private pipe (the kernel hands over the socket's pages)
//! and the pipe on to the output. Used once a connection's bytes are all to
//! be written out (header read, nothing left to skip); the cursor moves by
//! exactly what reached the output, as with plain writes. Where the output
//! takes no splice (an O_APPEND file, say), the bytes already in the pipe
//! are copied out and the link goes back to reading and writing.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use wire::iomux::Stream;

use crate::cursor::StreamCursor;
use crate::output::write_out;
use crate::{signals, Stop};

/// Capacity asked for the private pipe (the unprivileged default limit,
/// /proc/sys/fs/pipe-max-size): how much one splice can move.
const PIPE_SIZE: libc::c_int = 1 << 20;

pub struct Relay {
    rd: OwnedFd,
    wr: OwnedFd,
    /// Bytes spliced from the socket that have not reached the output.
    held: usize,
    /// False once either end refused a splice; then only reads and writes.
    usable: bool,
}

pub enum Fill {
    /// This many bytes are in the pipe, to be sent on with [`Relay::drain`].
    Moved(usize),
    /// The peer closed (or reset) the connection.
    Eof,
    WouldBlock,
    /// The socket takes no splice: read it instead.
    Unsupported,
}

impl Relay {
    /// `None` when no pipe can be had: the link then only copies.
    pub fn new() -> Option<Self> {
        let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ok()?;
        // A narrower pipe still works, in smaller steps.
        let _ = fcntl(wr.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        Some(Relay {
            rd,
            wr,
            held: 0,
            usable: true,
        })
    }

    pub fn usable(&self) -> bool {
        self.usable
    }

    /// Move what the socket holds (up to a pipe-full) into the pipe. The
    /// pipe is empty here: [`Relay::drain`] always empties it.
    pub fn fill(&mut self, sock: &UnixStream) -> Fill {
        debug_assert_eq!(self.held, 0);
        let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
        loop {
            return match splice(sock, None, &self.wr, None, PIPE_SIZE as usize, flags) {
                Ok(0) => Fill::Eof,
                Ok(n) => {
                    self.held = n;
                    Fill::Moved(n)
                }
                Err(Errno::EAGAIN) => Fill::WouldBlock,
                Err(Errno::EINTR) => continue,
                Err(Errno::EINVAL | Errno::ENOSYS) => {
                    self.usable = false;
                    Fill::Unsupported
                }
                // A reset is the end of this connection like EOF.
                Err(_) => Fill::Eof,
            };
        }
    }

    /// Send everything in the pipe to the stream's output, advancing the
    /// cursor by each piece that got there. Like [`write_out`], it stops
    /// early only on a termination signal, leaving the cursor exact (the
    /// rest of the pipe is past it and is simply dropped).
    pub fn drain(
        &mut self,
        stream: Stream,
        cursor: &mut StreamCursor,
        buf: &mut [u8],
    ) -> Result<(), Stop> {
        let result = self.drain_inner(stream, cursor, buf);
        if result.is_err() {
            self.discard();
        }
        result
    }

    fn drain_inner(
        &mut self,
        stream: Stream,
        cursor: &mut StreamCursor,
        buf: &mut [u8],
    ) -> Result<(), Stop> {
        let (stdout, stderr) = (io::stdout(), io::stderr());
        let out: BorrowedFd<'_> = match stream {
            Stream::Stdout => stdout.as_fd(),
            Stream::Stderr => stderr.as_fd(),
        };
        while self.held > 0 && self.usable {
            match splice(
                &self.rd,
                None,
                out,
                None,
                self.held,
                SpliceFFlags::SPLICE_F_MOVE,
            ) {
                Ok(0) => {
                    return Err(Stop::Failed(format!(
                        "writing {}: splice moved nothing",
                        stream.name()
                    )))
                }
                Ok(n) => {
                    self.held -= n;
                    cursor.wrote(n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EINVAL | Errno::ENOSYS) => self.usable = false,
                Err(e) => return Err(Stop::Failed(format!("writing {}: {e}", stream.name()))),
            }
            if signals::terminated() {
                return Err(Stop::Terminated);
            }
        }
        // The output refused the splice: copy out what the pipe holds.
        while self.held > 0 {
            let want = self.held.min(buf.len());
            let n = read_pipe(&self.rd, &mut buf[..want])
                .map_err(|e| Stop::Failed(format!("reading the relay pipe: {e}")))?;
            self.held -= n;
            write_out(stream, &buf[..n], cursor)?;
        }
        if signals::terminated() {
            return Err(Stop::Terminated);
        }
        Ok(())
    }

    /// Forget what the pipe holds (it is past the cursor), so that the next
    /// connection starts from an empty pipe.
    fn discard(&mut self) {
        let mut scratch = [0u8; 4096];
        while self.held > 0 {
            let want = self.held.min(scratch.len());
            match read_pipe(&self.rd, &mut scratch[..want]) {
                Ok(n) => self.held -= n,
                Err(_) => {
                    // Cannot empty it: stop using it rather than mix streams.
                    self.usable = false;
                    self.held = 0;
                }
            }
        }
    }
}

/// One read from the pipe, which holds at least `buf.len()` bytes.
fn read_pipe(rd: &OwnedFd, buf: &mut [u8]) -> nix::Result<usize> {
    loop {
        match nix::unistd::read(rd.as_raw_fd(), buf) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}
