//! Job holders forked by a pre-started iomux-spawn (`iomux-spawn --zygote`,
//! bytes in [`wire::zygote`]) instead of each being exec'd: for wardend,
//! which starts one a job. An exec costs every process here glibc's
//! start-up (its CPUID probes trap in a VM: about 1.1 ms) and a fresh
//! image's page faults; a fork of the small zygote costs neither.
//!
//! Off unless the process turns it on ([`enable`]: wardend does, wardenctl
//! runs one command and would pay the zygote's own start). The zygote is
//! started on the first job, from the helper directory's iomux-spawn, and
//! serves a container only when the container's `bin/iomux-spawn` is that
//! very file (create.sh hard-links the helpers): a container holding
//! another binary (an older one, a copy) gets its holders by exec, as
//! before. So does every job when the zygote cannot serve: its binary
//! does not know `--zygote`, it failed three times in a row (a zygote that
//! ends or fails is replaced at the next job), or the command line
//! does not fit the room it has. Nothing else changes for a job: the holder
//! runs what `iomux-spawn ARGS...` runs, with the same descriptors,
//! environment, session and command line.
//!
//! The zygote's socket is a socketpair whose other end only this process
//! holds (close-on-exec, no path), so nothing else can ask it for a
//! process; it exits when this process does.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{setsockopt, socketpair, sockopt, AddressFamily, SockFlag, SockType};
use nix::sys::time::TimeVal;
use wire::fdpass::{recv_with_fds, send_with_fds};
use wire::zygote::{self, Reply, Request};

/// How long the zygote may take to start or to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Room for a holder's command line: the job's directory, the wshd socket
/// and the status file are paths in the depot, a few hundred bytes.
const TITLE_ROOM: usize = 8 << 10;
/// Starts (or answers) that may fail in a row before the zygote is given
/// up for the life of this process.
const MAX_FAILURES: u32 = 3;
/// What only an iomux-spawn with `--zygote` says in its usage.
const ZYGOTE_MARKER: &[u8] = b"--zygote [PADDING]";

/// A job holder the zygote forked: not our child, so watched by a pidfd.
pub struct Holder {
    pid: i32,
    pidfd: OwnedFd,
}

impl Holder {
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    pub fn has_exited(&self) -> bool {
        let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }
}

struct Zygote {
    socket: OwnedFd,
    process: Child,
    /// st_dev and st_ino of the binary it runs.
    binary: (u64, u64),
    room: usize,
}

enum State {
    Off,
    On {
        binary: PathBuf,
        zygote: Option<Zygote>,
        failures: u32,
    },
}

static STATE: Mutex<State> = Mutex::new(State::Off);

/// Turns forked holders on for this process, from `binary` (the helper
/// directory's iomux-spawn); the zygote starts with the first job.
pub fn enable(binary: PathBuf) {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    *state = State::On {
        binary,
        zygote: None,
        failures: 0,
    };
}

/// A holder running `argv` (argv[0] the container's iomux-spawn) with
/// `env` added and `stdio` as its 0-2, forked by the zygote; `None` when it
/// cannot serve this job, which the caller then starts with exec.
pub fn fork_holder(
    argv: &[OsString],
    env: &[(OsString, OsString)],
    stdio: [BorrowedFd<'_>; 3],
) -> Option<Holder> {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let State::On {
        binary,
        zygote,
        failures,
    } = &mut *state
    else {
        return None;
    };
    if let Some(running) = zygote.as_mut() {
        if let Ok(Some(status)) = running.process.try_wait() {
            // Reaped here, so it is no zombie of ours until the next job.
            eprintln!("wardend: the iomux-spawn zygote ended ({status}); starting another");
            *zygote = None;
            *failures += 1;
        }
    }
    if zygote.is_none() && *failures < MAX_FAILURES {
        match Zygote::start(binary) {
            Ok(started) => *zygote = Some(started),
            Err(e) => {
                *failures += 1;
                eprintln!("wardend: no iomux-spawn zygote ({e}): jobs start iomux-spawn with exec");
            }
        }
    }
    let running = zygote.as_mut()?;
    let program = std::fs::metadata(argv.first()?).ok()?;
    if (program.dev(), program.ino()) != running.binary
        || zygote::command_line_len(argv) > running.room
    {
        return None;
    }
    match running.fork(argv, env, stdio) {
        Ok(Ok(holder)) => {
            *failures = 0;
            Some(holder)
        }
        Ok(Err(why)) => {
            eprintln!("wardend: the iomux-spawn zygote refused a job: {why}");
            None
        }
        Err(e) => {
            eprintln!("wardend: the iomux-spawn zygote failed ({e}); starting another");
            *failures += 1;
            if let Some(mut gone) = zygote.take() {
                gone.stop();
            }
            None
        }
    }
}

impl Zygote {
    fn start(binary: &Path) -> io::Result<Zygote> {
        // An iomux-spawn without `--zygote` would take the padding for a
        // command to run.
        let knows = std::fs::File::open(binary)
            .and_then(|file| crate::exits::contains(file, ZYGOTE_MARKER))?;
        if !knows {
            return Err(io::Error::other(format!(
                "{} does not know --zygote",
                binary.display()
            )));
        }
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let timeout = TimeVal::new(ANSWER_TIMEOUT.as_secs() as i64, 0);
        setsockopt(&ours, sockopt::ReceiveTimeout, &timeout)?;
        setsockopt(&ours, sockopt::SendTimeout, &timeout)?;
        let process = Command::new(binary)
            .arg("--zygote")
            .arg("z".repeat(TITLE_ROOM))
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .spawn()?;
        let mut zygote = Zygote {
            socket: ours,
            binary: (0, 0),
            room: 0,
            process,
        };
        match zygote.hello() {
            Ok(()) => Ok(zygote),
            Err(e) => {
                zygote.stop();
                Err(e)
            }
        }
    }

    fn hello(&mut self) -> io::Result<()> {
        let mut buf = [0u8; zygote::HELLO_LEN + 1];
        let (n, _) = recv_with_fds(self.socket.as_fd(), &mut buf).map_err(io::Error::other)?;
        if n == 0 {
            return Err(io::Error::other("it exited at start"));
        }
        self.room = zygote::decode_hello(&buf[..n]).map_err(io::Error::other)? as usize;
        // The file it runs, whatever the path names by now.
        let exe = std::fs::metadata(format!("/proc/{}/exe", self.process.id()))?;
        self.binary = (exe.dev(), exe.ino());
        Ok(())
    }

    fn fork(
        &mut self,
        argv: &[OsString],
        env: &[(OsString, OsString)],
        stdio: [BorrowedFd<'_>; 3],
    ) -> io::Result<Result<Holder, String>> {
        let request = Request {
            argv: argv.to_vec(),
            env: env.to_vec(),
        }
        .encode()
        .map_err(io::Error::other)?;
        send_with_fds(self.socket.as_fd(), &request, &stdio).map_err(io::Error::other)?;
        let mut buf = [0u8; zygote::MAX_REPLY + 1];
        let (n, mut fds) =
            recv_with_fds(self.socket.as_fd(), &mut buf).map_err(io::Error::other)?;
        if n == 0 {
            return Err(io::Error::other("it exited"));
        }
        match Reply::decode(&buf[..n]).map_err(io::Error::other)? {
            Reply::Started { pid } => {
                let pidfd = fds
                    .pop()
                    .filter(|_| fds.is_empty())
                    .ok_or_else(|| io::Error::other("a reply without its pidfd"))?;
                Ok(Ok(Holder { pid, pidfd }))
            }
            Reply::Refused(why) => Ok(Err(why)),
        }
    }

    fn stop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
