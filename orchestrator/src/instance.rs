//! The shared types every command stands on: a container directory of the
//! depot (its handle, path, lock, state and events) and the private files
//! and directories the commands keep there. Commands (container, jobs,
//! limits, disk, ...) sit above this module; it imports none of them.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::config::Config;
use crate::depot::Depot;
use crate::errors::{Error, Result};

/// Warden's job_output_limit: bytes of output (stdout and stderr together)
/// a job may leave on the host before it is killed.
pub const DEFAULT_JOB_OUTPUT_LIMIT: u64 = 10 << 20;
/// pids.max of a container's group: enough for any service, not for a fork
/// bomb to starve the host.
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;
/// The kernel's PID_MAX_LIMIT: pids.max refuses more.
pub const MAX_PIDS_LIMIT: u64 = 1 << 22;
/// Size of the container's /dev/shm.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Directory made, not (yet) started: a create in progress, or one that
    /// was killed before it could finish or undo.
    Born,
    Active,
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Born => "born",
            State::Active => "active",
            State::Stopped => "stopped",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container directory of the depot.
#[derive(Debug, Clone)]
pub struct Instance {
    pub handle: String,
    pub path: PathBuf,
}

/// An flock on the instance directory itself: shared for commands that only
/// need the container to stay (spawn, copy), exclusive for those that change
/// its state (stop, destroy).
pub struct InstanceLock {
    _lock: Flock<File>,
}

impl Instance {
    /// The container directory's device and inode: a container made anew
    /// under the same handle is another directory (followers end there).
    pub fn dir_identity(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&self.path).ok().map(|m| (m.dev(), m.ino()))
    }

    pub fn open(depot: &Depot, handle: &str) -> Result<Self> {
        let path = depot.existing(handle)?;
        Ok(Instance {
            handle: handle.to_string(),
            path,
        })
    }

    pub fn lock(&self, exclusive: bool) -> Result<InstanceLock> {
        let dir = File::open(&self.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::UnknownHandle(self.handle.clone())
            } else {
                Error::io(format!("open {}", self.path.display()))(e)
            }
        })?;
        let arg = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        let lock = Flock::lock(dir, arg).map_err(|(_, errno)| Error::Io {
            context: format!("flock {}", self.path.display()),
            source: errno.into(),
        })?;
        // Destroyed while we waited for the lock.
        if !self.path.is_dir() {
            return Err(Error::UnknownHandle(self.handle.clone()));
        }
        Ok(InstanceLock { _lock: lock })
    }

    pub fn config(&self) -> Result<Config> {
        Config::read(&self.path.join("etc/config"))
    }

    pub fn state(&self) -> State {
        match fs::read_to_string(self.path.join("etc/state"))
            .as_deref()
            .map(str::trim)
        {
            Ok("active") => State::Active,
            Ok("stopped") => State::Stopped,
            _ => State::Born,
        }
    }

    pub fn set_state(&self, state: State) -> Result<()> {
        write_atomic(
            &self.path.join("etc/state"),
            format!("{state}\n").as_bytes(),
        )
    }

    pub fn require_state(&self, command: &'static str, allowed: &[State]) -> Result<State> {
        let state = self.state();
        if allowed.contains(&state) {
            return Ok(state);
        }
        let needed = if allowed == [State::Active] {
            "active"
        } else {
            "active or stopped"
        };
        Err(Error::WrongState {
            handle: self.handle.clone(),
            state: state.to_string(),
            command,
            needed,
        })
    }

    /// Records this process as the container's creator (etc/creator: pid
    /// and start time, so a recycled pid is not taken for it).
    pub fn record_creator(&self) -> Result<()> {
        let pid = std::process::id() as i32;
        let start = process_start_time(pid).unwrap_or_default();
        write_atomic(
            &self.path.join("etc/creator"),
            format!("{pid} {start}\n").as_bytes(),
        )
    }

    /// Whether the process that recorded itself as creator still runs.
    pub fn creator_alive(&self) -> bool {
        let Ok(text) = fs::read_to_string(self.path.join("etc/creator")) else {
            return false;
        };
        let mut words = text.split_whitespace();
        let (Some(pid), Some(start)) = (
            words.next().and_then(|w| w.parse::<i32>().ok()),
            words.next().and_then(|w| w.parse::<u64>().ok()),
        ) else {
            return false;
        };
        process_start_time(pid) == Some(start)
    }

    /// Seconds a server may leave the container unreferenced (none: never).
    pub fn grace_time(&self) -> Option<u32> {
        fs::read_to_string(self.path.join("etc/grace_time"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub fn set_grace_time(&self, seconds: u32) -> Result<()> {
        write_atomic(
            &self.path.join("etc/grace_time"),
            format!("{seconds}\n").as_bytes(),
        )
    }

    pub fn wsh(&self) -> PathBuf {
        self.path.join("bin/wsh")
    }

    pub fn socket(&self) -> PathBuf {
        self.path.join("run/wshd.sock")
    }

    pub fn script(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn events(&self) -> Vec<String> {
        let mut events: Vec<String> = fs::read_to_string(self.path.join("etc/events"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default();
        if let Ok(config) = self.config() {
            if let Some(id) = config.id() {
                if oom_killed(id) && !events.iter().any(|e| e == "out of memory") {
                    events.push("out of memory".to_string());
                }
            }
        }
        events
    }
}

/// Whether the kernel OOM-killed a process of the container's memory group.
fn oom_killed(id: &str) -> bool {
    let candidates = [
        format!("/sys/fs/cgroup/memory/instance-{id}/memory.oom_control"),
        format!("/sys/fs/cgroup/instance-{id}/memory.events"),
    ];
    candidates.iter().any(|path| {
        fs::read_to_string(path)
            .map(|text| {
                text.lines().any(|line| {
                    let mut words = line.split_whitespace();
                    words.next() == Some("oom_kill")
                        && words
                            .next()
                            .and_then(|n| n.parse::<u64>().ok())
                            .unwrap_or(0)
                            > 0
                })
            })
            .unwrap_or(false)
    })
}

/// A live process's start time (clock ticks after boot, field 22 of
/// /proc/PID/stat); none for a zombie or a missing one.
fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised name, which may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Mode of every file wardenctl keeps on the host (state, job scripts and
/// output, logs): they are root's alone, whatever the caller's umask.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode of the directories holding them.
pub const PRIVATE_DIR: u32 = 0o700;

/// Opens `path` for writing with mode [`PRIVATE_FILE`], created when
/// missing, truncated unless `append`. The mode is set again on the open
/// file: a file left by an earlier writer keeps whatever mode it had.
pub fn open_private(path: &Path, append: bool) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .mode(PRIVATE_FILE)
        .open(path)
        .map_err(Error::io(format!("open {}", path.display())))?;
    file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE))
        .map_err(Error::io(format!("chmod {}", path.display())))?;
    Ok(file)
}

/// Makes `path` a directory of mode [`PRIVATE_DIR`] (an existing one is
/// made so too); false when it existed.
pub fn create_private_dir(path: &Path) -> Result<bool> {
    use std::os::unix::fs::DirBuilderExt;
    let created = match fs::DirBuilder::new().mode(PRIVATE_DIR).create(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::io(format!("create {}", path.display()))(e)),
    };
    // mkdir's mode went through the umask.
    fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_DIR))
        .map_err(Error::io(format!("chmod {}", path.display())))?;
    Ok(created)
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    open_private(&tmp, false)?
        .write_all(bytes)
        .map_err(Error::io(format!("write {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(Error::io(format!("rename {}", tmp.display())))
}

/// Waits for `done` to hold, polling with a growing interval.
pub fn poll_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    // Short waits are the common case (a job that ends at once, iomux-spawn
    // starting): poll tightly for the first 50 ms, then back off.
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return false;
        }
        let delay = if elapsed < Duration::from_millis(50) {
            Duration::from_millis(1)
        } else {
            (elapsed / 8).min(Duration::from_millis(20))
        };
        std::thread::sleep(delay);
    }
}
