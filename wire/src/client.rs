//! The client's side of one exchange with wshd (see [`crate::request`]):
//! connect, send the request, receive the response word and the
//! descriptors of the remote process; and whether the daemon offers
//! version 2 to a version-1 client (its features file, [`crate::features`]).
//! wsh uses it, and so does iomux-spawn when it asks wshd for the job
//! itself (`--wshd`), without a wsh in between.

use std::ffi::{CString, OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::fdpass::{recv_with_fds, FdPassError};
use crate::features::{self, Features};
use crate::request::{decode_response, rlimits_from_env, Request, RequestError};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

#[derive(Debug)]
pub enum SessionError {
    Connect(std::path::PathBuf, std::io::Error),
    Rlimit(&'static str),
    Nul(&'static str),
    Encode(RequestError),
    Send(std::io::Error),
    Receive(FdPassError),
    Closed,
    Response { version: i32, fds: usize },
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Connect(p, e) => write!(f, "connect {}: {e}", p.display()),
            SessionError::Rlimit(name) => write!(f, "{name}: not a number or a pair of numbers"),
            SessionError::Nul(what) => write!(f, "{what} contains a NUL byte"),
            SessionError::Encode(e) => write!(f, "request: {e}"),
            SessionError::Send(e) => write!(f, "send request: {e}"),
            SessionError::Receive(e) => write!(f, "receive response: {e}"),
            SessionError::Closed => write!(f, "wshd closed the connection without a response"),
            SessionError::Response { version, fds } => {
                write!(
                    f,
                    "unexpected response: version {version} with {fds} descriptors"
                )
            }
        }
    }
}

/// The remote process's descriptors, as wshd handed them over.
pub enum Remote {
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Tty {
        master: OwnedFd,
    },
}

pub struct Session {
    pub remote: Remote,
    pub exit: OwnedFd,
    /// v2 only: the process, for forwarding signals.
    pub pidfd: Option<OwnedFd>,
    pub version: i32,
    /// A v1 session (no `--v2`) carried over version 2 because the daemon
    /// said it speaks it (see [`upgrade_offer`]): the caller still gets
    /// version-1 results.
    pub upgraded: bool,
}

/// Whether the daemon behind `socket` says, in its features file, that it
/// speaks version 2, and the file is that daemon's (wire::features): the
/// socket is the inode the file names, and the wshd that wrote it runs.
/// Reads a file and /proc; never sends anything. The C wshd writes no such
/// file, so against it this is None and wsh speaks version 1 only.
pub fn upgrade_offer(socket: &Path) -> Option<Features> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let text = std::fs::read_to_string(features::path_for(socket)).ok()?;
    let offer = Features::parse(&text)?;
    if !offer.speaks(2) {
        return None;
    }
    let meta = std::fs::metadata(socket).ok()?;
    if !meta.file_type().is_socket() || (meta.dev(), meta.ino()) != (offer.dev, offer.ino) {
        return None;
    }
    (features::starttime_of(offer.pid)? == offer.starttime).then_some(offer)
}

/// Whether the connection's peer is the listener the features file names:
/// the socket connected to is the one the checked wshd listens on.
fn peer_is(stream: &UnixStream, offer: &Features) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).is_ok_and(|c| c.pid() == offer.listener)
}

fn cstring(v: &OsStr, what: &'static str) -> Result<CString, SessionError> {
    CString::new(v.as_bytes()).map_err(|_| SessionError::Nul(what))
}

/// What a client asks wshd to run, besides the process environment's
/// `RLIMIT_*` and `LANG`, which every request carries as the C client's.
pub struct Job<'a> {
    pub argv: &'a [OsString],
    /// Empty or absent: root.
    pub user: Option<&'a OsStr>,
    /// Version 2 only.
    pub env: &'a [OsString],
    /// Version 2 only; absent: the user's home.
    pub dir: Option<&'a OsStr>,
    pub tty: bool,
    /// Speak version 2 and ask for a pidfd.
    pub v2: bool,
}

/// The request for `job`, with the rlimits and `LANG` of this process's
/// environment.
pub fn build_request(job: &Job<'_>) -> Result<Request, SessionError> {
    let argv = job
        .argv
        .iter()
        .map(|a| cstring(a, "an argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let rlimits =
        rlimits_from_env(|name| std::env::var(name).ok()).map_err(SessionError::Rlimit)?;
    let user = job.user.map(|u| u.as_bytes().to_vec()).unwrap_or_default();
    let lang = std::env::var_os("LANG")
        .map(OsStringExt::into_vec)
        .unwrap_or_default();
    let env = job
        .env
        .iter()
        .map(|e| cstring(e, "an --env value"))
        .collect::<Result<Vec<_>, _>>()?;
    let dir = job.dir.map(|d| cstring(d, "--dir")).transpose()?;
    Ok(Request {
        version: if job.v2 { 2 } else { 1 },
        tty: job.tty,
        argv,
        rlimits,
        user,
        lang,
        env,
        dir,
        want_pidfd: job.v2,
    })
}

/// Sleep until the response arrives. A blocking recvmsg would also wake
/// (for nothing) each time wshd reads part of the request, as that frees
/// send space; a poll for input only is not woken by that.
fn wait_readable(sock: BorrowedFd<'_>) -> Result<(), FdPassError> {
    let mut fds = [PollFd::new(sock, PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(FdPassError::Recv(e)),
            Ok(_) => return Ok(()),
        }
    }
}

/// Connect, send `request` and take the response. With an `offer` from
/// [`upgrade_offer`] whose listener is the peer, a version-1 request goes
/// out as version 2 asking for a pidfd (same argv, rlimits, user, LANG; no
/// env, no dir), so that signals can be forwarded.
pub fn open(
    socket: &Path,
    request: &Request,
    offer: Option<&Features>,
) -> Result<Session, SessionError> {
    open_upgrading(socket, request, offer, true)
}

/// As [`open`]; an upgraded request asks for a pidfd only when
/// `with_pidfd`. Without one, wshd starts the process at once with vfork
/// rather than forking it and holding it until the answer is out, and the
/// exit pipe still carries the wait status: for a client that forwards no
/// signals (iomux-spawn).
pub fn open_upgrading(
    socket: &Path,
    request: &Request,
    offer: Option<&Features>,
    with_pidfd: bool,
) -> Result<Session, SessionError> {
    let mut bytes = request.encode().map_err(SessionError::Encode)?;
    let mut stream =
        UnixStream::connect(socket).map_err(|e| SessionError::Connect(socket.to_owned(), e))?;
    let upgraded = request.version == 1 && offer.is_some_and(|o| peer_is(&stream, o));
    let upgrade;
    let request = if upgraded {
        upgrade = Request {
            version: 2,
            want_pidfd: with_pidfd,
            ..request.clone()
        };
        bytes = upgrade.encode().map_err(SessionError::Encode)?;
        &upgrade
    } else {
        request
    };
    stream.write_all(&bytes).map_err(SessionError::Send)?;
    wait_readable(stream.as_fd()).map_err(SessionError::Receive)?;

    let mut word = [0u8; 4];
    let (mut got, mut fds) =
        recv_with_fds(stream.as_fd(), &mut word).map_err(SessionError::Receive)?;
    // The word and its descriptors travel in one sendmsg; a short read is
    // only possible in theory, but costs nothing to handle.
    while got > 0 && got < word.len() {
        let (n, more) =
            recv_with_fds(stream.as_fd(), &mut word[got..]).map_err(SessionError::Receive)?;
        if n == 0 {
            break;
        }
        got += n;
        fds.extend(more);
    }
    if got == 0 {
        return Err(SessionError::Closed);
    }
    let version = decode_response(&word[..got]).unwrap_or(-1);
    let expected = match (request.tty, request.want_pidfd) {
        (false, false) => 4,
        (false, true) => 5,
        (true, false) => 2,
        (true, true) => 3,
    };
    if version != request.version || fds.len() != expected {
        return Err(SessionError::Response {
            version,
            fds: fds.len(),
        });
    }
    let mut fds = fds.into_iter();
    let mut next = || fds.next().expect("count checked above");
    let remote = if request.tty {
        Remote::Tty { master: next() }
    } else {
        Remote::Pipes {
            stdin: next(),
            stdout: next(),
            stderr: next(),
        }
    };
    let exit = next();
    let pidfd = request.want_pidfd.then(&mut next);
    Ok(Session {
        remote,
        exit,
        pidfd,
        version,
        upgraded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(argv: &'a [OsString], env: &'a [OsString], v2: bool) -> Job<'a> {
        Job {
            argv,
            user: Some(OsStr::new("vcap")),
            env,
            dir: Some(OsStr::new("/tmp")),
            tty: false,
            v2,
        }
    }

    #[test]
    fn a_job_becomes_the_request_wsh_sends() {
        let argv = [OsString::from("/bin/sh"), OsString::from("-e")];
        let env = [OsString::from("K=V")];
        let v1 = build_request(&job(&argv, &env, false)).unwrap();
        assert_eq!((v1.version, v1.want_pidfd, v1.tty), (1, false, false));
        assert_eq!(v1.argv, [c"/bin/sh".to_owned(), c"-e".to_owned()]);
        assert_eq!(v1.user, b"vcap");
        assert_eq!(v1.env, [c"K=V".to_owned()]);
        assert_eq!(v1.dir, Some(c"/tmp".to_owned()));
        let v2 = build_request(&job(&argv, &env, true)).unwrap();
        assert_eq!((v2.version, v2.want_pidfd), (2, true));
        let root = build_request(&Job {
            user: None,
            ..job(&argv, &[], false)
        })
        .unwrap();
        assert!(root.user.is_empty(), "no user is root");
    }

    #[test]
    fn a_nul_in_an_argument_is_refused_by_name() {
        let argv = [OsString::from("a\0b")];
        let err = build_request(&job(&argv, &[], false)).err().unwrap();
        assert_eq!(err.to_string(), "an argument contains a NUL byte");
        let env = [OsString::from("K=\0")];
        let err = build_request(&job(&[OsString::from("sh")], &env, false))
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "an --env value contains a NUL byte");
    }
}
