//! A raw client of wshd's socket, speaking the wire crate's bytes directly:
//! for requests the real wsh would never send (malformed, v2 by hand) and
//! for tests that need the descriptors themselves.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use wire::request::{self, Request};

/// A v1 request for `argv` as `user` (empty: root), with the reference
/// client's default rlimits and no LANG.
pub fn request(argv: &[&str], user: &str) -> Request {
    Request {
        version: 1,
        tty: false,
        argv: argv
            .iter()
            .map(|a| CString::new(*a).expect("no NUL"))
            .collect(),
        rlimits: request::rlimits_from_env(|_| None).expect("defaults parse"),
        user: user.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// Connect and send `bytes` as they are; the stream is returned for more.
pub fn send_raw(sock: &Path, bytes: &[u8]) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(bytes)?;
    Ok(s)
}

/// wshd's answer: the response word and the descriptors with it.
pub struct Response {
    pub version: i32,
    pub fds: Vec<OwnedFd>,
}

/// Read the response from a stream the request went out on. `Ok(None)`:
/// wshd closed the connection without answering.
pub fn read_response(s: &UnixStream) -> io::Result<Option<Response>> {
    let mut word = [0u8; 4];
    let (n, fds) = wire::fdpass::recv_with_fds(s.as_fd(), &mut word).map_err(io::Error::other)?;
    if n == 0 {
        return Ok(None);
    }
    if n != 4 {
        return Err(io::Error::other(format!("response of {n} bytes")));
    }
    Ok(Some(Response {
        version: i32::from_ne_bytes(word),
        fds,
    }))
}

/// Send `req` and wait for the response.
pub fn call(sock: &Path, req: &Request) -> io::Result<Response> {
    let bytes = req.encode().map_err(io::Error::other)?;
    let s = send_raw(sock, &bytes)?;
    read_response(&s)?.ok_or_else(|| io::Error::other("wshd closed without a response"))
}

/// What a non-tty request's child produced.
#[derive(Debug)]
pub struct Outcome {
    pub version: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit pipe's word: the exit code (v1) or raw wait status (v2);
    /// None when the pipe closed without one.
    pub exit: Option<i32>,
    /// The pidfd, when a v2 request asked for it.
    pub pidfd: Option<OwnedFd>,
}

fn read_all(fd: OwnedFd) -> std::thread::JoinHandle<io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut buf)?;
        Ok(buf)
    })
}

/// Run a non-tty request: feed `stdin`, collect stdout and stderr, read the
/// exit word.
pub fn run(sock: &Path, req: &Request, stdin: &[u8]) -> io::Result<Outcome> {
    let resp = call(sock, req)?;
    let mut fds = resp.fds.into_iter();
    let mut next = || {
        fds.next()
            .ok_or_else(|| io::Error::other("too few descriptors"))
    };
    let (inp, out, err, exit) = (next()?, next()?, next()?, next()?);
    let pidfd = if req.want_pidfd { Some(next()?) } else { None };
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The child may not read it all; a broken pipe is its business.
        let _ = std::fs::File::from(inp).write_all(&input);
    });
    let (out, err) = (read_all(out), read_all(err));
    let mut word = Vec::new();
    std::fs::File::from(exit).read_to_end(&mut word)?;
    let join = |h: std::thread::JoinHandle<io::Result<Vec<u8>>>| {
        h.join().map_err(|_| io::Error::other("reader panicked"))?
    };
    let stdout = join(out)?;
    let stderr = join(err)?;
    let _ = writer.join();
    let exit = match word.len() {
        0 => None,
        4 => Some(i32::from_ne_bytes([word[0], word[1], word[2], word[3]])),
        n => return Err(io::Error::other(format!("exit pipe gave {n} bytes"))),
    };
    Ok(Outcome {
        version: resp.version,
        stdout,
        stderr,
        exit,
        pidfd,
    })
}
