//! Wall-time profile of one command (`WARDEN_PROFILE=FILE`): the steps of
//! wardenctl itself, of every script it runs, of wshd and of its hooks, as
//! lines `NS B|E PATH` appended to FILE (NS: CLOCK_REALTIME nanoseconds, as
//! `date +%s%N`; PATH: the step's place in the tree, e.g.
//! `/create/create.sh/setup.sh/upper layer`).
//! `bench/profile.py` turns a file of them into a table.
//!
//! Scripts cannot read a clock without starting a process, so wardenctl
//! gives them a pipe (`WARDEN_PROFILE_PIPE`, a /proc path of its write end)
//! and a thread here stamps each line as it arrives; lines that carry their
//! own time (wshd's) are kept as they are. Where each step goes in the tree
//! travels in `WARDEN_PROFILE_SCOPE`, which [`step`] sets for whatever runs
//! meanwhile.
//!
//! Unset, nothing here does anything: [`Session::start`] returns None and
//! [`step`] only checks a flag.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const FILE_VAR: &str = "WARDEN_PROFILE";
pub const PIPE_VAR: &str = "WARDEN_PROFILE_PIPE";
pub const SCOPE_VAR: &str = "WARDEN_PROFILE_SCOPE";

static ACTIVE: AtomicBool = AtomicBool::new(false);
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn record(line: String) {
    if let Ok(mut events) = EVENTS.lock() {
        events.push(line);
    }
}

/// Profiling for the life of the value: on drop, every event collected is
/// appended to the file.
pub struct Session {
    file: String,
    write_end: Option<OwnedFd>,
    done: mpsc::Receiver<()>,
}

impl Session {
    /// None when `WARDEN_PROFILE` is unset or empty, or when the pipe
    /// cannot be made (a profile is never worth failing the command for).
    pub fn start() -> Option<Session> {
        let file = std::env::var(FILE_VAR).ok().filter(|f| !f.is_empty())?;
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
        let (tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("profile".into())
            .spawn(move || {
                collect(File::from(read_end));
                let _ = tx.send(());
            })
            .ok()?;
        // Children open the pipe by this path (their own descriptor, so
        // none is inherited by anything that outlives the command).
        std::env::set_var(
            PIPE_VAR,
            format!("/proc/{}/fd/{}", std::process::id(), write_end.as_raw_fd()),
        );
        ACTIVE.store(true, Ordering::SeqCst);
        Some(Session {
            file,
            write_end: Some(write_end),
            done,
        })
    }
}

/// Real-time priority for the collector (root only; best effort): a line is
/// stamped when this thread reads it, so it must run the moment a line
/// arrives, whatever else keeps the cpus busy.
fn prefer_this_thread() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain system call on the calling thread (0) with a valid
    // parameter; failure (no privilege) only leaves the normal policy.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
    }
}

/// Stamps every line that comes without a time with the time it came.
fn collect(mut pipe: File) {
    prefer_this_thread();
    // Signals are for the threads that wait for them (a run's: see
    // jobs::run_here), never for this one.
    let _ = nix::sys::signal::SigSet::all().thread_block();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = now_ns();
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            if line.starts_with(|c: char| c.is_ascii_digit()) {
                record(line);
            } else if !line.is_empty() {
                record(format!("{now} {line}"));
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
        // Every writer has exited by now (scripts and wshd's start-up are
        // waited for), so the collector sees the end of the pipe at once;
        // a stray holder only costs the grace period.
        drop(self.write_end.take());
        let _ = self.done.recv_timeout(Duration::from_millis(200));
        let events = std::mem::take(&mut *EVENTS.lock().unwrap_or_else(|e| e.into_inner()));
        let text: String = events.iter().map(|l| format!("{l}\n")).collect();
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            eprintln!("wardenctl: cannot write the profile {}: {e}", self.file);
        }
    }
}

/// One step: begins now, ends when the value is dropped. Meanwhile the
/// scope children report under is this step's.
pub struct Step {
    previous: Option<String>,
    path: String,
}

/// Begins the step `name` (a no-op unless a [`Session`] is active).
pub fn step(name: &str) -> Option<Step> {
    if !ACTIVE.load(Ordering::Relaxed) {
        return None;
    }
    let previous = std::env::var(SCOPE_VAR).ok();
    let path = format!("{}/{name}", previous.as_deref().unwrap_or(""));
    record(format!("{} B {path}", now_ns()));
    std::env::set_var(SCOPE_VAR, &path);
    Some(Step { previous, path })
}

impl Drop for Step {
    fn drop(&mut self) {
        record(format!("{} E {}", now_ns(), self.path));
        match &self.previous {
            Some(scope) => std::env::set_var(SCOPE_VAR, scope),
            None => std::env::remove_var(SCOPE_VAR),
        }
    }
}
