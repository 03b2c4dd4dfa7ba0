//! The OOM watcher, `wardenctl __oom-watch INSTANCE`: a small process of its
//! own session, started by the first `limit-memory`, that blocks on the
//! kernel's notification (v1: an eventfd registered for memory.oom_control
//! through cgroup.event_control; v2: inotify on memory.events) and, when the
//! kernel kills inside the container, records `out of memory` in etc/events
//! (and, with its time, in etc/events.log: [`crate::events`])
//! and stops the container. It exits when the group goes (destroy; v1
//! signals the eventfd on rmdir, v2 reports the file's removal), and destroy
//! kills it besides. It holds run/oom-watch.lock while it runs, so there is
//! never more than one.

use std::fs::{self, File};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::container::{self, StopOptions};
use crate::depot::Depot;
use crate::errors::{Error, Result};
use crate::instance::{self, poll_until, write_atomic, Instance};
use crate::process;

pub const EVENT: &str = "out of memory";

fn lock_path(dir: &Path) -> PathBuf {
    dir.join("run/oom-watch.lock")
}

fn try_lock(dir: &Path) -> Result<Option<Flock<File>>> {
    let path = lock_path(dir);
    let file = crate::depot::open_lock_file(&path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(Error::Io {
            context: format!("flock {}", path.display()),
            source: errno.into(),
        }),
    }
}

/// Starts the watcher unless one runs; returns once it is listening.
pub fn ensure_watcher(instance: &Instance) -> Result<()> {
    let ready = instance.path.join("run/oom-watch.ready");
    match try_lock(&instance.path)? {
        None => return Ok(()),
        Some(lock) => drop(lock),
    }
    let _ = fs::remove_file(&ready);
    let err = instance.path.join("run/oom-watch.err");
    let stderr = instance::open_private(&err, false)?;
    let mut command =
        Command::new(std::env::current_exe().map_err(Error::io("locate the running executable"))?);
    command
        .arg("__oom-watch")
        .arg(&instance.path)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let mut child = process::spawn_detached(&mut command, "the OOM watcher")?;
    let mut exited = false;
    let listening = poll_until(Duration::from_secs(10), || {
        exited = matches!(child.try_wait(), Ok(Some(_)));
        exited || ready.exists()
    });
    if !listening || (exited && !ready.exists()) {
        let why = fs::read_to_string(&err).unwrap_or_default();
        return Err(Error::Tool(format!(
            "the OOM watcher did not start: {}",
            why.lines().last().unwrap_or("no message")
        )));
    }
    Ok(())
}

/// Kills the watcher (destroy).
pub fn kill_watcher(instance: &Instance) {
    let pid_file = instance.path.join("run/oom-watch.pid");
    if let Some(pid) = process::read_pid(&pid_file) {
        if process::alive_with(pid, &instance.path) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            poll_until(Duration::from_secs(2), || {
                !process::alive_with(pid, &instance.path)
            });
        }
    }
}

/// The watcher itself.
pub fn watch(dir: &Path) -> Result<()> {
    let Some(_lock) = try_lock(dir)? else {
        return Ok(());
    };
    let depot_root = dir
        .parent()
        .ok_or_else(|| Error::BadArgument(format!("{} has no parent", dir.display())))?;
    let handle = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::BadArgument(format!("bad instance path {}", dir.display())))?
        .to_string();
    let depot = Depot::new(depot_root);
    let instance = Instance::open(&depot, &handle)?;
    let id = instance
        .config()?
        .id()
        .map(str::to_string)
        .ok_or_else(|| Error::Tool("etc/config holds no id".into()))?;
    write_atomic(
        &dir.join("run/oom-watch.pid"),
        format!("{}\n", std::process::id()).as_bytes(),
    )?;
    let v1 = PathBuf::from(format!("/sys/fs/cgroup/memory/instance-{id}"));
    let oom = if v1.is_dir() {
        wait_v1(&v1, &dir.join("run/oom-watch.ready"))?
    } else {
        let v2 = PathBuf::from(format!("/sys/fs/cgroup/instance-{id}"));
        wait_v2(&v2, &dir.join("run/oom-watch.ready"))?
    };
    if !oom {
        return Ok(());
    }
    crate::events::record_warden(
        &instance,
        &crate::events::Event::now(crate::events::Kind::Oom, EVENT),
    )?;
    match container::stop(
        &depot,
        &handle,
        &StopOptions {
            kill: true,
            background: false,
        },
    ) {
        // Stopped or destroyed meanwhile: nothing left to do.
        Ok(()) | Err(Error::WrongState { .. }) | Err(Error::UnknownHandle(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// True on an OOM, false when the group went away.
fn wait_v1(group: &Path, ready: &Path) -> Result<bool> {
    use nix::sys::eventfd::{EfdFlags, EventFd};
    let control_path = group.join("memory.oom_control");
    let control =
        File::open(&control_path).map_err(Error::io(format!("open {}", control_path.display())))?;
    let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC).map_err(|e| Error::Io {
        context: "eventfd".into(),
        source: e.into(),
    })?;
    let register = group.join("cgroup.event_control");
    fs::write(
        &register,
        format!("{} {}", efd.as_fd().as_raw_fd(), control.as_raw_fd()),
    )
    .map_err(Error::io(format!("write {}", register.display())))?;
    instance::open_private(ready, false)?;
    efd.read().map_err(|e| Error::Io {
        context: "read the OOM eventfd".into(),
        source: e.into(),
    })?;
    // The eventfd is also signalled when the group is removed.
    Ok(group.is_dir() && control_path.exists())
}

fn oom_kills_v2(events: &Path) -> u64 {
    fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_v2(group: &Path, ready: &Path) -> Result<bool> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let events = group.join("memory.events");
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC).map_err(|e| Error::Io {
        context: "inotify_init".into(),
        source: e.into(),
    })?;
    inotify
        .add_watch(
            &events,
            AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_IGNORED,
        )
        .map_err(|e| Error::Io {
            context: format!("inotify_add_watch {}", events.display()),
            source: e.into(),
        })?;
    let before = oom_kills_v2(&events);
    instance::open_private(ready, false)?;
    loop {
        let batch = inotify.read_events().map_err(|e| Error::Io {
            context: "read inotify".into(),
            source: e.into(),
        })?;
        for event in batch {
            if event
                .mask
                .intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_IGNORED)
            {
                return Ok(false);
            }
        }
        if !group.is_dir() {
            return Ok(false);
        }
        if oom_kills_v2(&events) > before {
            return Ok(true);
        }
    }
}
