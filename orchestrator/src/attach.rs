//! A job recorded by the process that started it, for wardend's `run`:
//! instead of a recorder process and its iomux-link (two more process
//! starts, and files polled for what each did), a thread of the caller
//! connects to iomux-spawn's sockets itself, appends the output to the
//! job's logs (the same [`Logs`] as the process recorder, so the output
//! limit and the disk charge hold alike) and writes `exit_status`; the
//! caller hears of the end through a channel, not by polling.
//!
//! The thread is the job's recorder as far as everyone else can tell: it
//! holds `record.lock`, and it saves iomux-link's cursors file after every
//! append. If the caller dies (wardend killed), the lock goes with it and
//! the next `link` or `stream` (or wardend starting again) starts a process
//! recorder, which continues from the cursors; whatever the logs hold past
//! them (an append whose cursors were not saved yet) is trimmed first
//! ([`crate::output::trim_to_cursors`]), so no byte is kept twice. What
//! the job writes while nobody records stays in iomux-spawn's ring (the
//! last 64 KiB of each stream), as with Warden's own server; `spawn`, whose
//! job outlives any request, keeps the process recorder.
//!
//! The sockets' bytes are those of [`wire::iomux`]: a 4-byte position, then
//! the stream until iomux-spawn closes it; the status socket's 4-byte wait
//! status once the job has ended.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::fcntl::Flock;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use wire::iomux::{decode_offset, Cursors, Stream, WaitStatus, OFFSET_LEN, STATUS_LEN};

use crate::errors::{Error, Result};
use crate::instance::Instance;
use crate::output::{Logs, CHUNK};

/// How long iomux-spawn may take to listen on its sockets.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A job being recorded by a thread of this process.
pub struct Recording {
    done: mpsc::Receiver<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Recording {
    /// Waits until the job has ended and its exit status is recorded, or,
    /// checking every 50 ms, until `wanted` says the result is no longer
    /// (the recording goes on without us). True when the job has ended.
    pub fn wait_while(&self, mut wanted: impl FnMut() -> bool) -> bool {
        loop {
            match self.done.recv_timeout(Duration::from_millis(50)) {
                // Gone without a word: the thread failed; the caller's
                // link finds the job without a recorder and starts one.
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(mpsc::RecvTimeoutError::Timeout) if !wanted() => return false,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Waits for the thread's last writes (the job's event, the running
    /// mark cleared), which come after the answer: for a caller about to
    /// exit, whose exit would cut them off.
    pub fn finish(self) {
        let _ = self.thread.join();
    }
}

/// Connects to the sockets of the iomux-spawn just started for the job in
/// `dir` (which releases the job once all three are connected) and records
/// the job in a thread. `spawner_exited` says whether iomux-spawn already
/// died (then the connection cannot come). `lock` is the job's
/// `record.lock`, held until the job's end is recorded.
pub(crate) fn start(
    instance: &Instance,
    dir: &Path,
    lock: Flock<File>,
    discard_output: bool,
    mut spawner_exited: impl FnMut() -> bool,
) -> Result<Recording> {
    // While iomux-spawn starts.
    let logs = if discard_output {
        None
    } else {
        Some(Logs::open(instance, dir)?)
    };
    let streams = [
        connect(dir, Stream::Stdout.socket_name(), &mut spawner_exited)?,
        connect(dir, Stream::Stderr.socket_name(), &mut spawner_exited)?,
    ];
    let status = connect(dir, wire::iomux::STATUS_SOCKET, &mut spawner_exited)?;
    let (tx, rx) = mpsc::channel();
    let dir = dir.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("job recorder".into())
        .spawn(move || {
            let code = follow(&dir, streams, status, logs);
            if let Err(e) = crate::jobs::write_exit_status(&dir, code) {
                eprintln!("job recorder: {e}");
            }
            drop(lock);
            let _ = tx.send(());
            // The waiter has its answer; the event and the running mark
            // need not hold it up.
            if let Err(e) = crate::jobs::note_exit(&dir, code) {
                eprintln!("job recorder: {e}");
            }
        })
        .map_err(Error::io("start the job's recorder thread"))?;
    Ok(Recording { done: rx, thread })
}

/// A connection to one of iomux-spawn's sockets, retried while it is not
/// listening yet (its sockets appear a moment after it starts).
fn connect(
    dir: &Path,
    name: &str,
    spawner_exited: &mut impl FnMut() -> bool,
) -> Result<UnixStream> {
    let path = dir.join(name);
    let start = Instant::now();
    loop {
        match UnixStream::connect(&path) {
            Ok(sock) => return Ok(sock),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) =>
            {
                if spawner_exited() || start.elapsed() > CONNECT_TIMEOUT {
                    return Err(Error::Tool(format!(
                        "iomux-spawn did not listen on {}",
                        path.display()
                    )));
                }
                // It is a matter of a millisecond or two: look often.
                let pause = if start.elapsed() < Duration::from_millis(20) {
                    Duration::from_micros(100)
                } else {
                    Duration::from_millis(1)
                };
                std::thread::sleep(pause);
            }
            Err(e) => return Err(Error::io(format!("connect to {}", path.display()))(e)),
        }
    }
}

/// One stream socket: its header, then its bytes.
struct StreamIn {
    sock: Option<UnixStream>,
    header: Vec<u8>,
    /// The position of the next byte, once the header is in.
    next: Option<u32>,
}

/// Reads the job's streams and status until iomux-spawn has closed all
/// three; returns the exit code to record, as the process recorder would.
fn follow(dir: &Path, streams: [UnixStream; 2], status: UnixStream, mut logs: Option<Logs>) -> i32 {
    let mut ins = streams.map(|sock| StreamIn {
        sock: Some(sock),
        header: Vec::with_capacity(OFFSET_LEN),
        next: None,
    });
    let mut status = Some(status);
    let mut status_bytes = Vec::with_capacity(STATUS_LEN);
    let cursors_path = dir.join("cursors");
    let mut buf = vec![0u8; CHUNK];
    while ins.iter().any(|s| s.sock.is_some()) || status.is_some() {
        let ready = match wait(&ins, status.as_ref()) {
            Ok(ready) => ready,
            Err(e) => {
                // Closing our ends leaves the job to the next recorder.
                eprintln!("wardend: recording {}: {e}", dir.display());
                return wire::iomux::LINK_FAILURE.into();
            }
        };
        let mut moved = false;
        for i in ready {
            if i == 2 {
                let Some(sock) = status.as_mut() else {
                    continue;
                };
                let mut b = [0u8; STATUS_LEN];
                match sock.read(&mut b) {
                    Ok(0) | Err(_) => status = None,
                    Ok(n) => status_bytes.extend_from_slice(&b[..n]),
                }
                continue;
            }
            let s = &mut ins[i];
            let Some(sock) = s.sock.as_mut() else {
                continue;
            };
            let n = match sock.read(&mut buf) {
                Ok(0) | Err(_) => {
                    s.sock = None;
                    continue;
                }
                Ok(n) => n,
            };
            let mut data = &buf[..n];
            if s.next.is_none() {
                let want = OFFSET_LEN - s.header.len();
                let take = want.min(data.len());
                s.header.extend_from_slice(&data[..take]);
                data = &data[take..];
                if s.header.len() == OFFSET_LEN {
                    let mut h = [0u8; OFFSET_LEN];
                    h.copy_from_slice(&s.header);
                    s.next = Some(decode_offset(h));
                }
            }
            if let (Some(next), false) = (s.next, data.is_empty()) {
                if let Some(logs) = logs.as_mut() {
                    logs.append(i, data);
                }
                s.next = Some(next.wrapping_add(data.len() as u32));
                moved = true;
            }
        }
        if moved {
            // After the append, so that a takeover finds the logs at or
            // past the cursors, never short of them.
            let cursors = Cursors {
                stdout: ins[0].next.unwrap_or(0),
                stderr: ins[1].next.unwrap_or(0),
            };
            if let Err(e) = cursors.write(&cursors_path) {
                eprintln!("wardend: {e}");
            }
        }
    }
    if let Some(logs) = logs {
        logs.finish();
    }
    if let Ok(bytes) = <[u8; STATUS_LEN]>::try_from(status_bytes.as_slice()) {
        return WaitStatus::decode(bytes).link_exit_code().into();
    }
    // The status connection closed short: iomux-spawn's status file, when
    // it wrote one, says how the job ended.
    match wire::iomux::read_status_file(dir) {
        Ok(Some(status)) => status.link_exit_code().into(),
        _ => wire::iomux::LINK_FAILURE.into(),
    }
}

/// Indexes (0 stdout, 1 stderr, 2 status) of the sockets with something to
/// read or that hung up.
fn wait(ins: &[StreamIn; 2], status: Option<&UnixStream>) -> io::Result<Vec<usize>> {
    let socks: Vec<(usize, &UnixStream)> = ins
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, s.sock.as_ref()?)))
        .chain(status.map(|s| (2, s)))
        .collect();
    let mut fds: Vec<PollFd<'_>> = socks
        .iter()
        .map(|(_, s)| PollFd::new(s.as_fd(), PollFlags::POLLIN))
        .collect();
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(socks
        .iter()
        .zip(fds.iter())
        .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
        .map(|((i, _), _)| *i)
        .collect())
}
