//! A job recorded by the process that started it, for `run` (wardend's and
//! wardenctl's): instead of a recorder process and its iomux-link (two more
//! process starts, and files polled for what each did), the caller
//! connects to iomux-spawn's sockets itself, appends the output to the
//! job's logs (the same [`Logs`] as the process recorder, so the output
//! limit and the disk charge hold alike) and writes `exit_status`, on the
//! thread that waits for the job anyway ([`Attached::record`]: no thread
//! start, no channel, no wake-up). Once the result is no longer wanted
//! (wardend's client gone, a signal to wardenctl), a thread of its own
//! records the rest.
//!
//! The recording is the job's recorder as far as everyone else can tell: it
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
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::Flock;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use wire::iomux::{decode_offset, Cursors, Stream, WaitStatus, OFFSET_LEN, STATUS_LEN};

use crate::errors::{Error, Result};
use crate::instance::Instance;
use crate::output::{Logs, CHUNK};

/// How long iomux-spawn may take to listen on its sockets.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A job being recorded by a thread of this process, on its own until the
/// job ends or the process exits.
pub struct Recording {
    _thread: std::thread::JoinHandle<()>,
}

/// How often a caller waiting for the job's end asks whether the answer is
/// still wanted.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// A job connected to, not recorded yet: recorded by the caller's own
/// thread while it waits for the end anyway ([`Attached::record`]).
pub struct Attached {
    follower: Follower,
    lock: Flock<File>,
}

/// How [`Attached::record`] ended.
pub enum Recorded {
    /// The job ended; its exit status and end are recorded.
    Ended,
    /// The caller stopped wanting the result; a thread records the rest.
    HandedOver(Recording),
}

impl Attached {
    /// Records the job on this thread until it ends, checking every 50 ms
    /// whether `wanted` still holds; once it does not, a thread takes the
    /// recording over (from where it is: nothing is read twice or lost).
    /// A thread start, its channel and its wake-up the less on the path of
    /// every `run`.
    pub fn record(mut self, wanted: impl FnMut() -> bool) -> Result<Recorded> {
        match self.follower.follow(Some(CHECK_EVERY), wanted) {
            Some(code) => {
                write_end(&self.follower.dir, code, self.lock);
                Ok(Recorded::Ended)
            }
            None => self.in_thread().map(Recorded::HandedOver),
        }
    }

    /// Records the job in a thread of its own.
    fn in_thread(self) -> Result<Recording> {
        let Attached { mut follower, lock } = self;
        let thread = std::thread::Builder::new()
            .name("job recorder".into())
            .spawn(move || {
                let code = follower
                    .follow(None, || true)
                    .unwrap_or(wire::iomux::LINK_FAILURE.into());
                write_end(&follower.dir, code, lock);
            })
            .map_err(Error::io("start the job's recorder thread"))?;
        Ok(Recording { _thread: thread })
    }
}

/// The job's exit status, its event and the running mark cleared: all
/// before the answer, so that the info it carries no longer counts the
/// job as running.
fn write_end(dir: &Path, code: i32, lock: Flock<File>) {
    if let Err(e) = crate::jobs::write_exit_status(dir, code) {
        eprintln!("job recorder: {e}");
    }
    drop(lock);
    if let Err(e) = crate::jobs::note_exit(dir, code) {
        eprintln!("job recorder: {e}");
    }
}

/// Connects to the sockets of the iomux-spawn just started for the job in
/// `dir` (which releases the job once all three are connected), ready to
/// record it. `spawner_exited` says whether iomux-spawn already died (then
/// the connection cannot come). `lock` is the job's `record.lock`, held
/// until the job's end is recorded.
pub(crate) fn attach(
    instance: &Instance,
    dir: &Path,
    lock: Flock<File>,
    discard_output: bool,
    mut spawner_exited: impl FnMut() -> bool,
) -> Result<Attached> {
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
    Ok(Attached {
        follower: Follower::new(dir, streams, status, logs),
        lock,
    })
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

/// The reading side of a recording: the job's three sockets and where
/// their bytes go.
struct Follower {
    dir: PathBuf,
    ins: [StreamIn; 2],
    status: Option<UnixStream>,
    status_bytes: Vec<u8>,
    logs: Option<Logs>,
    cursors_path: PathBuf,
    buf: Vec<u8>,
}

impl Follower {
    fn new(dir: &Path, streams: [UnixStream; 2], status: UnixStream, logs: Option<Logs>) -> Self {
        Follower {
            dir: dir.to_path_buf(),
            ins: streams.map(|sock| StreamIn {
                sock: Some(sock),
                header: Vec::with_capacity(OFFSET_LEN),
                next: None,
            }),
            status: Some(status),
            status_bytes: Vec::with_capacity(STATUS_LEN),
            logs,
            cursors_path: dir.join("cursors"),
            buf: vec![0u8; CHUNK],
        }
    }

    /// Reads the job's streams and status until iomux-spawn has closed all
    /// three; returns the exit code to record, as the process recorder
    /// would. With `check_every`, asks `keep_going` that often (output
    /// flowing or not), and stops (None) once it says no, the sockets and
    /// the cursors as they are, for another follow to go on from.
    fn follow(
        &mut self,
        check_every: Option<Duration>,
        mut keep_going: impl FnMut() -> bool,
    ) -> Option<i32> {
        let mut checked = Instant::now();
        while self.ins.iter().any(|s| s.sock.is_some()) || self.status.is_some() {
            let ready = match wait(&self.ins, self.status.as_ref(), check_every) {
                Ok(ready) => ready,
                Err(e) => {
                    // Closing our ends leaves the job to the next recorder.
                    eprintln!("wardend: recording {}: {e}", self.dir.display());
                    return Some(wire::iomux::LINK_FAILURE.into());
                }
            };
            self.take(&ready);
            if check_every.is_some_and(|every| checked.elapsed() >= every) {
                if !keep_going() {
                    return None;
                }
                checked = Instant::now();
            }
        }
        if let Some(logs) = self.logs.take() {
            logs.finish();
        }
        if let Ok(bytes) = <[u8; STATUS_LEN]>::try_from(self.status_bytes.as_slice()) {
            return Some(WaitStatus::decode(bytes).link_exit_code().into());
        }
        // The status connection closed short: iomux-spawn's status file, when
        // it wrote one, says how the job ended.
        Some(match wire::iomux::read_status_file(&self.dir) {
            Ok(Some(status)) => status.link_exit_code().into(),
            _ => wire::iomux::LINK_FAILURE.into(),
        })
    }

    /// One read from each socket `ready` names.
    fn take(&mut self, ready: &[usize]) {
        let mut moved = false;
        for &i in ready {
            if i == 2 {
                let Some(sock) = self.status.as_mut() else {
                    continue;
                };
                let mut b = [0u8; STATUS_LEN];
                match sock.read(&mut b) {
                    Ok(0) | Err(_) => self.status = None,
                    Ok(n) => self.status_bytes.extend_from_slice(&b[..n]),
                }
                continue;
            }
            let s = &mut self.ins[i];
            let Some(sock) = s.sock.as_mut() else {
                continue;
            };
            let n = match sock.read(&mut self.buf) {
                Ok(0) | Err(_) => {
                    s.sock = None;
                    continue;
                }
                Ok(n) => n,
            };
            let mut data = &self.buf[..n];
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
                if let Some(logs) = self.logs.as_mut() {
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
                stdout: self.ins[0].next.unwrap_or(0),
                stderr: self.ins[1].next.unwrap_or(0),
            };
            if let Err(e) = cursors.write(&self.cursors_path) {
                eprintln!("wardend: {e}");
            }
        }
    }
}

/// Indexes (0 stdout, 1 stderr, 2 status) of the sockets with something to
/// read or that hung up; none when `timeout` passed without any.
fn wait(
    ins: &[StreamIn; 2],
    status: Option<&UnixStream>,
    timeout: Option<Duration>,
) -> io::Result<Vec<usize>> {
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
    let timeout = timeout.map_or(PollTimeout::NONE, |t| {
        PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX)
    });
    loop {
        match poll(&mut fds, timeout) {
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
