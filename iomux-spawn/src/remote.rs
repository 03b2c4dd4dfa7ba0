//! `--wshd`: the job asked of the container's wshd by iomux-spawn itself,
//! where `iomux-spawn DIR wsh --socket S ... CMD` has a wsh process do it
//! (a process start, and a copy of every byte through it, less).
//!
//! The request is the one wsh would send for the same options and
//! environment ([`wire::client`]), carried over version 2 when the
//! daemon's features file offers it, as wsh does, but without asking for a
//! pidfd (which only signal forwarding needs, and which makes wshd fork and
//! hold the process rather than start it with vfork). The job's
//! stdout and stderr pipes come straight into the rings; iomux-spawn's own
//! stdin (the script) is copied to the job's ([`StdinCopy`]); the exit
//! pipe's word becomes the status wsh would have exited with
//! ([`wire::exit`]), and the status file wsh would have written.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use wire::client::{Job, Remote, SessionError};
use wire::exit::{exit_code, status_text, write_status, Exit, Protocol};
use wire::iomux::WaitStatus;
use wire::request::Request;

/// Capacity asked for the job's output pipes, as for a local child.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// A job not asked for yet: what to ask, and of whom.
pub struct Pending {
    socket: PathBuf,
    request: Request,
    status_file: Option<PathBuf>,
}

/// A job wshd runs, until its exit pipe has said how it ended.
pub struct Running {
    pub exit: OwnedFd,
    protocol: Protocol,
    status_file: Option<PathBuf>,
    word: Vec<u8>,
}

impl Pending {
    /// Builds the request now, so that a bad argument or rlimit fails
    /// iomux-spawn before it makes any socket.
    pub fn new(
        socket: PathBuf,
        argv: &[OsString],
        user: Option<OsString>,
        status_file: Option<PathBuf>,
    ) -> Result<Pending, SessionError> {
        let request = wire::client::build_request(&Job {
            argv,
            user: user.as_deref(),
            env: &[],
            dir: None,
            tty: false,
            v2: false,
        })?;
        Ok(Pending {
            socket,
            request,
            status_file,
        })
    }

    /// Asks wshd to start the job; blocks for wshd's answer (its fork).
    /// Also returns the job's stdin and its stdout and stderr, all
    /// non-blocking.
    pub fn start(self) -> Result<(Running, OwnedFd, [OwnedFd; 2]), SessionError> {
        let offer = wire::client::upgrade_offer(&self.socket);
        // No pidfd: nobody forwards signals through us, and without one
        // wshd starts the job at once (vfork) instead of holding a fork.
        let session =
            wire::client::open_upgrading(&self.socket, &self.request, offer.as_ref(), false)?;
        let protocol = if session.upgraded {
            // Nobody forwards signals through us.
            Protocol::Upgraded { forwarded: false }
        } else {
            Protocol::Spoken(session.version)
        };
        let Remote::Pipes {
            stdin,
            stdout,
            stderr,
        } = session.remote
        else {
            // Asked without a terminal, so wshd sends pipes.
            return Err(SessionError::Response {
                version: session.version,
                fds: 2,
            });
        };
        for fd in [&stdout, &stderr, &stdin, &session.exit] {
            set_nonblocking(fd.as_fd()).map_err(|e| SessionError::Send(e.into()))?;
        }
        for fd in [&stdout, &stderr] {
            let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        }
        let running = Running {
            exit: session.exit,
            protocol,
            status_file: self.status_file,
            word: Vec::with_capacity(4),
        };
        Ok((running, stdin, [stdout, stderr]))
    }
}

impl Running {
    /// Reads what the exit pipe has; the job's status once its word (or
    /// its EOF) is in, as wsh's wait status would say it.
    pub fn read_exit(&mut self) -> io::Result<Option<WaitStatus>> {
        let mut buf = [0u8; 4];
        loop {
            let want = 4 - self.word.len();
            match nix::unistd::read(self.exit.as_raw_fd(), &mut buf[..want]) {
                Ok(0) => return Ok(Some(self.ended(Exit::Closed))),
                Ok(n) => {
                    self.word.extend_from_slice(&buf[..n]);
                    if let Ok(word) = <[u8; 4]>::try_from(self.word.as_slice()) {
                        return Ok(Some(self.ended(Exit::Word(i32::from_ne_bytes(word)))));
                    }
                }
                Err(nix::Error::EAGAIN) => return Ok(None),
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn ended(&self, exit: Exit) -> WaitStatus {
        if let (Some(path), Some(text)) = (&self.status_file, status_text(self.protocol, exit)) {
            if let Err(e) = write_status(path, &text) {
                eprintln!("iomux-spawn: {}: {e}", path.display());
            }
        }
        exited(exit_code(self.protocol, exit))
    }
}

/// The wait status of a process that exited with `code`.
pub fn exited(code: i32) -> WaitStatus {
    WaitStatus(((code & 0xff) as u32) << 8)
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> nix::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

/// Copies iomux-spawn's stdin to the job's, as wsh does, then closes the
/// job's: the script a Warden job's shell reads. The job's end is
/// non-blocking and written when it takes data; our stdin is read when the
/// copy has room, which for a regular file (the usual script) never
/// blocks. Any other stdin (a pipe, a terminal) is read only when a poll
/// says it has data, its flags left alone: it may be shared with others,
/// whom O_NONBLOCK would break.
pub struct StdinCopy {
    sink: Option<OwnedFd>,
    buf: Vec<u8>,
    sent: usize,
    /// Our stdin is a file, always readable (epoll refuses those).
    source_is_file: bool,
    source_done: bool,
}

/// How much is read from our stdin at a time.
const STDIN_CHUNK: usize = 64 * 1024;

impl StdinCopy {
    /// `source_is_file`: whether fd 0 is a regular file (or otherwise
    /// always readable) rather than something to wait for.
    pub fn new(sink: OwnedFd, source_is_file: bool) -> StdinCopy {
        StdinCopy {
            sink: Some(sink),
            buf: Vec::new(),
            sent: 0,
            source_is_file,
            source_done: false,
        }
    }

    /// Whether our stdin is a file (so not registered with epoll).
    pub fn source_is_file(&self) -> bool {
        self.source_is_file
    }

    pub fn done(&self) -> bool {
        self.sink.is_none()
    }

    /// Moves what it can. The job closing its stdin early, or our stdin
    /// failing, ends the copy, as for wsh.
    pub fn pump(&mut self) {
        while let Some(sink) = &self.sink {
            if self.sent == self.buf.len() {
                if self.source_done {
                    self.sink = None;
                    return;
                }
                if !self.source_is_file && !stdin_readable() {
                    return;
                }
                self.buf.resize(STDIN_CHUNK, 0);
                self.sent = 0;
                match nix::unistd::read(0, &mut self.buf) {
                    Ok(0) => {
                        self.buf.clear();
                        self.source_done = true;
                        continue;
                    }
                    Ok(n) => self.buf.truncate(n),
                    Err(nix::Error::EINTR) => {
                        self.buf.clear();
                        continue;
                    }
                    Err(nix::Error::EAGAIN) => {
                        self.buf.clear();
                        return;
                    }
                    Err(e) => {
                        eprintln!("iomux-spawn: reading stdin: {e}");
                        self.buf.clear();
                        self.source_done = true;
                        continue;
                    }
                }
            }
            match nix::unistd::write(sink, &self.buf[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(nix::Error::EAGAIN) => return,
                Err(nix::Error::EINTR) => {}
                // EPIPE: the job does not read its stdin (any more).
                Err(_) => {
                    self.sink = None;
                    return;
                }
            }
        }
    }
}

/// Whether a read of our stdin returns at once (data, EOF or an error).
fn stdin_readable() -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let stdin = std::io::stdin();
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_code_becomes_the_wait_status_of_that_exit() {
        assert_eq!(exited(0).link_exit_code(), 0);
        assert_eq!(exited(3).link_exit_code(), 3);
        assert_eq!(exited(255).exit_code(), Some(255));
        assert_eq!(exited(256 + 7).exit_code(), Some(7));
        assert_eq!(exited(255).signal(), None);
    }
}
