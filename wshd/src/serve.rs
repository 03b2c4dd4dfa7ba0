//! The serve loop of the container's pid 1: accept requests, start their
//! children, report exits, reap everything.
//!
//! One mio loop watches the listener, a signalfd for SIGCHLD and every
//! connection. A connection is a small state machine that reads its request
//! as bytes arrive, so a slow or stalled client holds nothing but its own
//! descriptor, and only until its deadline. Whatever a client sends, the
//! worst outcome is one line on stderr and a closed connection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mio::net::{UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::fcntl::{open, OFlag};
use nix::sys::signalfd::SignalFd;
use nix::sys::stat::Mode;
use wire::request::{self, Decoded, Request, V1_SIZE};

use crate::plan;
use crate::spawn::{self, Action};

/// How long a client has to send its whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before accepting again when out of descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const FIRST_CONN: usize = 2;

macro_rules! log {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "wshd: {}", format_args!($($t)*));
    }};
}

struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    /// How long the request is, as far as `buf` tells; reads never go past
    /// it, so nothing after the request is consumed.
    want: usize,
    deadline: Instant,
}

enum Progress {
    Pending,
    Close,
    Ready(Request),
}

impl Conn {
    fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(V1_SIZE),
            want: V1_SIZE,
            deadline: Instant::now() + REQUEST_TIMEOUT,
        }
    }

    /// Read what has arrived; decode whenever the bytes wanted are in.
    fn advance(&mut self) -> Progress {
        loop {
            if self.buf.len() == self.want {
                match request::decode_request(&self.buf) {
                    Ok(Decoded::Complete(req)) => return Progress::Ready(req),
                    Ok(Decoded::Needs(n)) => {
                        self.want = n;
                        continue;
                    }
                    Err(e) => {
                        log!("refusing request: {e}");
                        return Progress::Close;
                    }
                }
            }
            let start = self.buf.len();
            self.buf.resize(self.want, 0);
            match (&self.stream).read(&mut self.buf[start..]) {
                // EOF before a whole request: the client gave up.
                Ok(0) => return Progress::Close,
                Ok(n) => self.buf.truncate(start + n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.buf.truncate(start);
                    return Progress::Pending;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => self.buf.truncate(start),
                Err(e) => {
                    log!("reading a request: {e}");
                    return Progress::Close;
                }
            }
        }
    }
}

/// The daemon's end of a child's exit pipe and the protocol it speaks.
struct ExitSink {
    fd: OwnedFd,
    version: i32,
}

struct Server {
    poll: Poll,
    listener: UnixListener,
    signals: SignalFd,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    children: HashMap<i32, ExitSink>,
    /// Held so that, out of descriptors, one can be freed to accept and
    /// close a pending connection instead of leaving it (and the loop) stuck.
    reserve: Option<OwnedFd>,
    accept_retry: Option<Instant>,
    /// Where each unheld child runs until its exec.
    stack: spawn::ChildStack,
    /// Jobs get [`crate::confine`]'s capabilities and no_new_privs.
    confined: bool,
}

fn open_reserve() -> Option<OwnedFd> {
    let fd = open(
        "/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    crate::fds::adopt_inherited(fd).ok()
}

/// Send the response word with `fds` attached; whether the client got both.
fn respond(conn: &Conn, word: &[u8], fds: &[OwnedFd]) -> bool {
    let fds: Vec<BorrowedFd> = fds.iter().map(|f| f.as_fd()).collect();
    match wire::fdpass::send_with_fds(conn.stream.as_fd(), word, &fds) {
        Ok(n) if n == word.len() => true,
        Ok(n) => {
            log!("short response ({n} bytes); client dropped");
            false
        }
        Err(e) => {
            log!("sending descriptors: {e}; client dropped");
            false
        }
    }
}

/// Serve `listener` forever; `confined` jobs get [`crate::confine`]'s
/// capabilities and no_new_privs (the seccomp filter they inherit from pid
/// 1).
pub fn serve(
    listener: OwnedFd,
    signals: SignalFd,
    reserve: OwnedFd,
    confined: bool,
) -> Result<Infallible> {
    let listener = std::os::unix::net::UnixListener::from(listener);
    listener
        .set_nonblocking(true)
        .context("making the listener non-blocking")?;
    let mut s = Server {
        poll: Poll::new().context("epoll")?,
        listener: UnixListener::from_std(listener),
        signals,
        conns: HashMap::new(),
        next_token: FIRST_CONN,
        children: HashMap::new(),
        reserve: Some(reserve),
        accept_retry: None,
        stack: spawn::ChildStack::new().context("a stack for the children")?,
        confined,
    };
    s.poll
        .registry()
        .register(&mut s.listener, LISTENER, Interest::READABLE)
        .context("watching the listener")?;
    let sfd = s.signals.as_raw_fd();
    s.poll
        .registry()
        .register(&mut SourceFd(&sfd), SIGNALS, Interest::READABLE)
        .context("watching the signalfd")?;
    // Children may have ended before the signalfd existed.
    s.reap();
    let mut events = Events::with_capacity(256);
    loop {
        let timeout = s.next_timeout();
        if let Err(e) = s.poll.poll(&mut events, timeout) {
            if e.kind() != ErrorKind::Interrupted {
                log!("epoll_wait: {e}");
                std::thread::sleep(ACCEPT_RETRY);
            }
            continue;
        }
        for ev in events.iter() {
            match ev.token() {
                LISTENER => s.accept_all(),
                SIGNALS => s.reap(),
                t => s.on_conn(t),
            }
        }
        s.expire();
    }
}

impl Server {
    fn next_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        self.conns
            .values()
            .map(|c| c.deadline)
            .chain(self.accept_retry)
            .min()
            .map(|d| d.saturating_duration_since(now))
    }

    fn expire(&mut self) {
        let now = Instant::now();
        if self.accept_retry.is_some_and(|t| t <= now) {
            self.accept_retry = None;
            self.accept_all();
        }
        let late: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in late {
            if let Some(c) = self.conns.remove(&t) {
                log!(
                    "closing a connection that sent {} of {} bytes in {:?}",
                    c.buf.len(),
                    c.want,
                    REQUEST_TIMEOUT
                );
                self.close(c);
            }
        }
    }

    fn close(&mut self, mut c: Conn) {
        let _ = self.poll.registry().deregister(&mut c.stream);
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.add_conn(stream),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // The kernel reports EMFILE before it looks at the
                    // queue, so this says nothing about pending clients.
                    let mut turned_away = false;
                    if self.reserve.take().is_some() {
                        // Turn a pending client away (it sees EOF) rather
                        // than leave it queued with no way to serve it.
                        if let Ok((stream, _)) = self.listener.accept() {
                            drop(stream);
                            turned_away = true;
                        }
                        self.reserve = open_reserve();
                    }
                    if self.reserve.is_none() {
                        log!("accept: {e}; retrying in {ACCEPT_RETRY:?}");
                        self.accept_retry = Some(Instant::now() + ACCEPT_RETRY);
                        return;
                    }
                    if !turned_away {
                        return;
                    }
                    log!("accept: {e}; turned a client away");
                }
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(e) => {
                    log!("accept: {e}; retrying in {ACCEPT_RETRY:?}");
                    self.accept_retry = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, stream: UnixStream) {
        let mut conn = Conn::new(stream);
        // A client usually sends its whole request at once: serve it without
        // watching the connection at all. Registering afterwards misses
        // nothing: epoll reports data that is already there.
        match conn.advance() {
            Progress::Pending => {}
            Progress::Close => return,
            Progress::Ready(req) => {
                self.start(&conn, &req);
                return;
            }
        }
        let token = Token(self.next_token);
        self.next_token = self.next_token.checked_add(1).unwrap_or(FIRST_CONN);
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut conn.stream, token, Interest::READABLE)
        {
            log!("watching a connection: {e}");
            return;
        }
        self.conns.insert(token, conn);
    }

    fn on_conn(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        match conn.advance() {
            Progress::Pending => {}
            Progress::Close => {
                if let Some(c) = self.conns.remove(&token) {
                    self.close(c);
                }
            }
            Progress::Ready(req) => {
                if let Some(c) = self.conns.remove(&token) {
                    self.start(&c, &req);
                    self.close(c);
                }
            }
        }
    }

    /// Start the child of `req` and hand its descriptors to the client.
    fn start(&mut self, conn: &Conn, req: &Request) {
        let passwd = std::fs::read("/etc/passwd").unwrap_or_default();
        let group = std::fs::read("/etc/group").unwrap_or_default();
        let action = match plan::plan(req, &passwd, &group) {
            Ok(p) => Action::Run(p),
            Err(e) => {
                log!("request: {e}");
                // The contract: the child exits 255. It says why on the
                // client's stderr.
                Action::Refuse(format!("wshd: {e}\n").into_bytes())
            }
        };
        let mut pipes = match spawn::plumbing(req.tty) {
            Ok(p) => p,
            Err(e) => {
                log!("starting a child: {e}");
                return;
            }
        };
        let word = request::encode_response(req.version);
        if !req.want_pidfd {
            // The client gets its descriptors first, and the child starts
            // only if it did: nothing runs for a client that is gone.
            if !respond(conn, &word, &pipes.client_fds) {
                return;
            }
            drop(std::mem::take(&mut pipes.client_fds));
            match spawn::spawn_now(&action, &mut pipes, &mut self.stack, self.confined) {
                // The client sees EOF on every pipe and exits 255.
                Err(e) => log!("starting a child: {e}"),
                Ok(pid) => self.watch(pid, pipes.exit_w, req.version),
            }
            return;
        }
        let held = match spawn::spawn_held(&action, &mut pipes, self.confined) {
            Ok(h) => h,
            Err(e) => {
                log!("starting a child: {e}");
                return;
            }
        };
        // On failure the child is dropped unstarted with `go` (it exits 255).
        if !respond(conn, &word, &pipes.client_fds) {
            return;
        }
        if let Err(e) = nix::unistd::write(&held.go, b"1") {
            log!("releasing child {}: {e}", held.pid);
        }
        self.watch(held.pid, pipes.exit_w, req.version);
    }

    /// Report `pid`'s end on `fd` once it is reaped.
    fn watch(&mut self, pid: i32, fd: OwnedFd, version: i32) {
        self.children.insert(pid, ExitSink { fd, version });
    }

    /// Reap every child that has ended (request children and orphans alike)
    /// and report the request children's status on their exit pipes.
    fn reap(&mut self) {
        while let Ok(Some(_)) = self.signals.read_signal() {}
        while let Some((pid, status)) = spawn::reap_one() {
            let Some(sink) = self.children.remove(&pid) else {
                continue;
            };
            if let Some(word) = spawn::exit_word(sink.version, status) {
                // A client that closed its end is no concern of ours.
                let _ = nix::unistd::write(&sink.fd, &word.to_ne_bytes());
            }
        }
    }
}
