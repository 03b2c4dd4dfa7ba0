//! One thread, one mio loop: the three listeners, the child's two pipes, its
//! pidfd, and every client.
//!
//! The pipes are read whenever they are readable, never held back for a
//! client; each read moves what the pipe holds, up to the ring's capacity,
//! into the ring (see [`crate::intake`]), so a fast job costs few wake-ups
//! per byte.
//! Clients are written only when their socket takes data, straight from the
//! ring. A client whose next byte the ring has overwritten is disconnected,
//! so a slow or stopped client costs neither the job nor the other clients
//! anything.
//!
//! End of job: once the child is reaped and both pipes are drained (EOF, or
//! empty after the child exited, so a background process holding the pipes
//! cannot keep the job alive), the tails and status are written to
//! SOCKET_DIR, the sockets are removed, status clients get the status, and
//! stream clients are closed as soon as they have every byte. iomux-spawn
//! exits when no client is left.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use mio::net::UnixStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use wire::iomux::{Stream, WaitStatus};

use crate::child::Child;
use crate::client::{drain_input, Flush, Gone, StatusClient, StreamClient};
use crate::intake::{Intake, Took};
use crate::jobfiles;
use crate::listeners::Listener;
use crate::remote::{self, Pending, Running, StdinCopy};
use crate::ring::Ring;

const PIPE_TOKEN: [Token; 2] = [Token(3), Token(4)];
/// The local child's pidfd, or the exit pipe of a job wshd runs.
const PIDFD_TOKEN: Token = Token(5);
/// A job wshd runs: its stdin, and ours when it is not a file.
const STDIN_SINK_TOKEN: Token = Token(6);
const STDIN_SOURCE_TOKEN: Token = Token(7);
const CLIENT_BASE: usize = 8;
const STATUS_LISTENER: usize = 2;

/// Kernel socket buffer per stream client: a client's bounded queue is this
/// plus the ring ([`crate::ring::RING_CAPACITY`]). Bytes already in a
/// client's socket are no longer the ring's concern, so this is how long a
/// client may be descheduled under a fast job before it falls behind (a
/// busy 2-core machine starves a link for tens of milliseconds, i.e. tens of
/// MB at full speed). Each stream's clients share [`STREAM_BUDGET`] (split
/// at accept time), within [`MIN_CLIENT_BUFFER`] and the maximum (see
/// [`client_buffer_max`]). This is kernel memory, used only while a client
/// lags; the worst case (every client stalled on a fast job) is about
/// max(budget, clients x minimum).
/// Without CAP_NET_ADMIN the kernel caps it at net.core.wmem_max.
const STREAM_BUDGET: usize = 1 << 30;
const MIN_CLIENT_BUFFER: usize = 16 << 20;
const MAX_CLIENT_BUFFER: usize = 128 << 20;
/// Environment knob lowering the per-client maximum (bytes), for tests that
/// need a client to fall behind quickly. Not passed on to the job.
pub const CLIENT_BUFFER_ENV: &str = "IOMUX_SPAWN_CLIENT_BUFFER";

/// The per-client buffer maximum: [`MAX_CLIENT_BUFFER`] unless lowered by
/// [`CLIENT_BUFFER_ENV`].
pub fn client_buffer_max(env: Option<&str>) -> usize {
    env.and_then(|v| v.parse::<usize>().ok())
        .map_or(MAX_CLIENT_BUFFER, |v| v.clamp(4096, MAX_CLIENT_BUFFER))
}

/// Buffer for a new client of a stream that will then have `n` clients.
fn client_buffer(n: usize, max: usize) -> usize {
    (STREAM_BUDGET / n.max(1)).clamp(MIN_CLIENT_BUFFER.min(max), max)
}

/// The job: a child of ours, or one asked of wshd (`--wshd`).
pub enum Job {
    Local(Child),
    Wshd(WshdJob),
}

pub enum WshdJob {
    /// Asked for once a client is on each socket.
    Pending(Pending),
    Running(Running),
    /// Asked for, and it failed (said on the job's stderr), or ended.
    Over,
}

struct Pipe {
    intake: Intake,
    /// Readable as far as we know (edge-triggered: until EAGAIN).
    ready: bool,
}

enum Client {
    Stream { stream: usize, client: StreamClient },
    Status(StatusClient),
}

pub struct EventLoop {
    poll: Poll,
    listeners: Vec<Option<Listener>>,
    accept_ready: [bool; 3],
    connected: [bool; 3],
    job: Job,
    child_ready: bool,
    stdin: Option<StdinCopy>,
    status: Option<WaitStatus>,
    pipes: [Option<Pipe>; 2],
    rings: [Ring; 2],
    clients: Vec<Option<Client>>,
    free: Vec<usize>,
    live_clients: usize,
    finished: bool,
    dir: PathBuf,
    buffer_max: usize,
}

impl EventLoop {
    pub fn new(
        dir: PathBuf,
        listeners: Vec<Listener>,
        job: Job,
        pipes: Option<[OwnedFd; 2]>,
        buffer_max: usize,
    ) -> Result<Self> {
        let poll = Poll::new().context("creating epoll instance")?;
        let mut listeners: Vec<Option<Listener>> = listeners.into_iter().map(Some).collect();
        for (i, l) in listeners.iter_mut().enumerate() {
            let l = l.as_mut().expect("just created");
            poll.registry()
                .register(&mut l.sock, Token(i), Interest::READABLE)
                .with_context(|| format!("registering {}", l.path.display()))?;
        }
        let pipes = match pipes {
            Some(fds) => register_pipes(&poll, fds)?.map(Some),
            None => [None, None],
        };
        if let Job::Local(child) = &job {
            poll.registry()
                .register(
                    &mut SourceFd(&child.pidfd.as_raw_fd()),
                    PIDFD_TOKEN,
                    Interest::READABLE,
                )
                .context("registering child pidfd")?;
        }
        Ok(EventLoop {
            poll,
            listeners,
            accept_ready: [false; 3],
            connected: [false; 3],
            job,
            child_ready: false,
            stdin: None,
            status: None,
            pipes,
            rings: [Ring::new(), Ring::new()],
            clients: Vec::new(),
            free: Vec::new(),
            live_clients: 0,
            finished: false,
            dir,
            buffer_max,
        })
    }

    pub fn run(mut self) -> Result<()> {
        let mut events = Events::with_capacity(512);
        loop {
            let busy = self.child_ready
                || self.pipes.iter().flatten().any(|p| p.ready)
                || self.accept_ready.iter().any(|r| *r);
            let timeout = busy.then_some(Duration::ZERO);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("epoll_wait");
            }
            for ev in events.iter() {
                match ev.token() {
                    Token(i) if i < 3 => self.accept_ready[i] = true,
                    t if t == PIPE_TOKEN[0] => self.set_pipe_ready(0),
                    t if t == PIPE_TOKEN[1] => self.set_pipe_ready(1),
                    PIDFD_TOKEN => self.child_ready = true,
                    STDIN_SINK_TOKEN | STDIN_SOURCE_TOKEN => self.copy_stdin(),
                    Token(t) => self.client_event(
                        t - CLIENT_BASE,
                        ev.is_readable(),
                        ev.is_writable(),
                        ev.is_write_closed() || ev.is_error(),
                    ),
                }
            }
            for i in 0..3 {
                if self.accept_ready[i] {
                    self.accept(i);
                }
            }
            if self.child_ready {
                self.reap()?;
            }
            for s in 0..2 {
                self.pump(s);
            }
            self.maybe_release();
            if !self.finished && self.status.is_some() && self.pipes.iter().all(Option::is_none) {
                self.finish();
            }
            self.flush_clients();
            if self.finished && self.live_clients == 0 {
                return Ok(());
            }
        }
    }

    fn set_pipe_ready(&mut self, s: usize) {
        if let Some(p) = self.pipes[s].as_mut() {
            p.ready = true;
        }
    }

    fn client_event(&mut self, idx: usize, readable: bool, writable: bool, closed: bool) {
        let Some(Some(c)) = self.clients.get_mut(idx) else {
            return;
        };
        let sock = match c {
            Client::Stream { client, .. } => {
                if writable {
                    client.blocked = false;
                }
                &mut client.sock
            }
            Client::Status(s) => &mut s.sock,
        };
        let mut gone = closed;
        if readable && !gone {
            gone = drain_input(sock).is_err();
        }
        if gone {
            self.remove(idx);
        }
    }

    fn accept(&mut self, i: usize) {
        let Some(l) = self.listeners[i].as_ref() else {
            self.accept_ready[i] = false;
            return;
        };
        match l.sock.accept() {
            Ok((sock, _)) => {
                self.connected[i] = true;
                self.add_client(i, sock);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.accept_ready[i] = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("iomux-spawn: accept on {}: {e}", l.path.display());
                self.accept_ready[i] = false;
            }
        }
    }

    fn add_client(&mut self, i: usize, mut sock: UnixStream) {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.clients.push(None);
            self.clients.len() - 1
        });
        let token = Token(CLIENT_BASE + idx);
        let interest = if i == STATUS_LISTENER {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        if let Err(e) = self.poll.registry().register(&mut sock, token, interest) {
            eprintln!("iomux-spawn: registering a client: {e}");
            self.free.push(idx);
            return;
        }
        let client = if i == STATUS_LISTENER {
            Client::Status(StatusClient { sock })
        } else {
            let n = 1 + self
                .clients
                .iter()
                .flatten()
                .filter(|c| matches!(c, Client::Stream { stream, .. } if *stream == i))
                .count();
            // The kernel doubles what it is asked for.
            let ask = client_buffer(n, self.buffer_max) / 2;
            if setsockopt(&sock.as_fd(), sockopt::SndBufForce, &ask).is_err() {
                let _ = setsockopt(&sock.as_fd(), sockopt::SndBuf, &ask);
            }
            Client::Stream {
                stream: i,
                client: StreamClient::new(sock, &self.rings[i]),
            }
        };
        self.clients[idx] = Some(client);
        self.live_clients += 1;
        // A new client starts at the oldest byte of the ring: hand it the
        // ring now, before the next read from the child overwrites that.
        if let Some(Client::Stream { stream, client }) = self.clients[idx].as_mut() {
            if let Err(g) = client.flush(&self.rings[*stream]) {
                let s = *stream;
                report(s, &g, &client.sock);
                self.remove(idx);
            }
        }
    }

    fn remove(&mut self, idx: usize) {
        if let Some(c) = self.clients[idx].take() {
            let sock = match c {
                Client::Stream { mut client, .. } => {
                    let _ = self.poll.registry().deregister(&mut client.sock);
                    client.sock
                }
                Client::Status(mut s) => {
                    let _ = self.poll.registry().deregister(&mut s.sock);
                    s.sock
                }
            };
            drop(sock);
            self.free.push(idx);
            self.live_clients -= 1;
        }
    }

    fn reap(&mut self) -> Result<()> {
        self.child_ready = false;
        if self.status.is_some() {
            return Ok(());
        }
        let (status, fd) = match &mut self.job {
            Job::Local(child) => match child.try_reap().context("waitpid")? {
                Some(status) => (status, child.pidfd.as_raw_fd()),
                None => return Ok(()),
            },
            Job::Wshd(WshdJob::Running(job)) => match job.read_exit() {
                Ok(Some(status)) => (status, job.exit.as_raw_fd()),
                Ok(None) => return Ok(()),
                Err(e) => {
                    eprintln!("iomux-spawn: reading the job's exit pipe: {e}");
                    (
                        remote::exited(wire::exit::EXIT_FAILURE),
                        job.exit.as_raw_fd(),
                    )
                }
            },
            Job::Wshd(_) => return Ok(()),
        };
        self.status = Some(status);
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        // Whatever the child wrote is in the pipes now: read until empty.
        for p in self.pipes.iter_mut().flatten() {
            p.ready = true;
        }
        Ok(())
    }

    /// Take one chunk of a pipe into its ring, then let go of the clients
    /// the new bytes have overtaken.
    fn pump(&mut self, s: usize) {
        let Some(pipe) = self.pipes[s].as_mut() else {
            return;
        };
        if !pipe.ready {
            return;
        }
        match pipe.intake.take(&mut self.rings[s]) {
            Ok(Took::Eof) => self.close_pipe(s),
            Ok(Took::Bytes { drained }) => {
                // No second read just to see EAGAIN while the job runs; once
                // it has exited, read until EAGAIN closes the pipe.
                if drained && self.status.is_none() {
                    pipe.ready = false;
                }
                self.check_windows(s);
            }
            Ok(Took::Empty) => {
                pipe.ready = false;
                if self.status.is_some() {
                    // The child is gone and its output is all read; a
                    // background process still holding the pipe does not
                    // keep the job open.
                    self.close_pipe(s);
                }
            }
            Err(nix::Error::EINTR) => {}
            Err(e) => {
                eprintln!("iomux-spawn: reading the child's {}: {e}", name(s));
                self.close_pipe(s);
            }
        }
    }

    fn close_pipe(&mut self, s: usize) {
        if let Some(p) = self.pipes[s].take() {
            let _ = self
                .poll
                .registry()
                .deregister(&mut SourceFd(&p.intake.fd().as_raw_fd()));
        }
    }

    fn check_windows(&mut self, s: usize) {
        for idx in 0..self.clients.len() {
            if let Some(Client::Stream { stream, client }) = &self.clients[idx] {
                if *stream == s {
                    if let Err(g) = client.check_window(&self.rings[s]) {
                        report(s, &g, &client.sock);
                        self.remove(idx);
                    }
                }
            }
        }
    }

    /// Give every client that can take data what it is missing; after the
    /// end, close stream clients that have everything.
    fn flush_clients(&mut self) {
        for idx in 0..self.clients.len() {
            let Some(Client::Stream { stream, client }) = self.clients[idx].as_mut() else {
                continue;
            };
            let ring = &self.rings[*stream];
            if client.blocked || client.caught_up(ring) {
                if self.finished && client.caught_up(ring) {
                    self.remove(idx);
                }
                continue;
            }
            match client.flush(ring) {
                Ok(Flush::CaughtUp) => {
                    if self.finished {
                        self.remove(idx);
                    }
                }
                Ok(Flush::Blocked) => {}
                Err(g) => {
                    let s = *stream;
                    report(s, &g, &client.sock);
                    self.remove(idx);
                }
            }
        }
    }

    fn maybe_release(&mut self) {
        if !self.connected.iter().all(|c| *c) {
            return;
        }
        match &mut self.job {
            Job::Local(child) if !child.released() => child.release(),
            Job::Wshd(w @ WshdJob::Pending(_)) => {
                let WshdJob::Pending(pending) = std::mem::replace(w, WshdJob::Over) else {
                    unreachable!("matched above");
                };
                self.start_wshd_job(pending);
            }
            _ => return,
        }
        let mut out = io::stdout().lock();
        // The server may not read our stdout at all; that is its business.
        let _ = out.write_all(b"child active\n").and_then(|()| out.flush());
    }

    /// Asks wshd for the job. A failure is the job's, as a wsh that
    /// failed: its message on the job's stderr, its status 255.
    fn start_wshd_job(&mut self, pending: Pending) {
        let started = pending
            .start()
            .map_err(|e| anyhow::Error::msg(e.to_string()))
            .and_then(|started| self.watch(started));
        if let Err(e) = started {
            self.rings[1].push(format!("iomux-spawn: {e:#}\n").as_bytes());
            self.check_windows(1);
            self.status = Some(remote::exited(wire::exit::EXIT_FAILURE));
            for s in 0..2 {
                self.close_pipe(s);
            }
        }
    }

    fn watch(&mut self, (running, stdin, outputs): (Running, OwnedFd, [OwnedFd; 2])) -> Result<()> {
        self.pipes = register_pipes(&self.poll, outputs)?.map(Some);
        for p in self.pipes.iter_mut().flatten() {
            p.ready = true;
        }
        self.poll
            .registry()
            .register(
                &mut SourceFd(&running.exit.as_raw_fd()),
                PIDFD_TOKEN,
                Interest::READABLE,
            )
            .context("registering the job's exit pipe")?;
        self.child_ready = true;
        // epoll takes no regular file (nor /dev/null): those never block.
        let source_is_file = self
            .poll
            .registry()
            .register(&mut SourceFd(&0), STDIN_SOURCE_TOKEN, Interest::READABLE)
            .is_err();
        self.poll
            .registry()
            .register(
                &mut SourceFd(&stdin.as_raw_fd()),
                STDIN_SINK_TOKEN,
                Interest::WRITABLE,
            )
            .context("registering the job's stdin")?;
        self.stdin = Some(StdinCopy::new(stdin, source_is_file));
        self.job = Job::Wshd(WshdJob::Running(running));
        self.copy_stdin();
        Ok(())
    }

    fn copy_stdin(&mut self) {
        let Some(copy) = self.stdin.as_mut() else {
            return;
        };
        copy.pump();
        if copy.done() {
            // The job's end closed with the copy (so left epoll); ours is
            // still open.
            if !copy.source_is_file() {
                let _ = self.poll.registry().deregister(&mut SourceFd(&0));
            }
            self.stdin = None;
        }
    }

    fn finish(&mut self) {
        self.finished = true;
        let status = self.status.expect("finish only after reaping");
        let tails = [self.rings[0].snapshot(), self.rings[1].snapshot()];
        if let Err(e) = jobfiles::write(&self.dir, &tails, status) {
            eprintln!("iomux-spawn: {e:#}");
        }
        for l in self.listeners.iter_mut() {
            if let Some(mut l) = l.take() {
                let _ = self.poll.registry().deregister(&mut l.sock);
            }
        }
        for idx in 0..self.clients.len() {
            if let Some(Client::Status(c)) = self.clients[idx].as_mut() {
                // A status client that went away misses nothing it could use.
                let _ = c.send(status);
                self.remove(idx);
            }
        }
    }
}

/// The job's stdout and stderr, registered for reading.
fn register_pipes(poll: &Poll, fds: [OwnedFd; 2]) -> Result<[Pipe; 2]> {
    let pipes = fds.map(|fd| Pipe {
        intake: Intake::new(fd),
        ready: false,
    });
    for (i, p) in pipes.iter().enumerate() {
        poll.registry()
            .register(
                &mut SourceFd(&p.intake.fd().as_raw_fd()),
                PIPE_TOKEN[i],
                Interest::READABLE,
            )
            .context("registering the job's output pipe")?;
    }
    Ok(pipes)
}

fn name(s: usize) -> &'static str {
    Stream::ALL[s].name()
}

fn report(s: usize, gone: &Gone, sock: &UnixStream) {
    if let Gone::FellBehind { pos, start } = gone {
        let pid = getsockopt(&sock.as_fd(), sockopt::PeerCredentials)
            .map(|c| c.pid())
            .unwrap_or(0);
        eprintln!(
            "iomux-spawn: a {} client (pid {pid}) fell behind (needs position {pos}, oldest kept {start}); disconnected",
            name(s)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_buffers_share_a_budget_within_bounds() {
        let max = client_buffer_max(None);
        assert_eq!(max, 128 << 20);
        assert_eq!(client_buffer(1, max), 128 << 20);
        assert_eq!(client_buffer(16, max), 64 << 20);
        assert_eq!(client_buffer(50, max), (1 << 30) / 50);
        assert_eq!(client_buffer(100, max), 16 << 20);
        let small = client_buffer_max(Some("262144"));
        assert_eq!(small, 262144);
        assert_eq!(client_buffer(1, small), 262144);
        assert_eq!(client_buffer(1000, small), 262144);
        assert_eq!(client_buffer_max(Some("junk")), 128 << 20);
        assert_eq!(client_buffer_max(Some("1")), 4096);
    }
}
