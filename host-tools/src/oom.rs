//! `oom CGROUP_PATH`: wait until the memory cgroup at CGROUP_PATH runs out
//! of memory, as warden/src/oom/oom.c does for the Ruby server's OOM
//! notifier (which treats exit 0 as "the container OOMed" and any other
//! status as "stopped watching").
//!
//! - cgroup v1 (CGROUP_PATH/memory.oom_control exists): an eventfd is
//!   registered for memory.oom_control through cgroup.event_control, and
//!   the tool blocks on it. The kernel signals it at an OOM of the group
//!   (whether or not its OOM killer is disabled) and also when the group is
//!   removed; which one it was is told by whether cgroup.event_control is
//!   still there and writable.
//! - cgroup v2 (otherwise, when CGROUP_PATH/memory.events exists): inotify
//!   on memory.events, until its `oom` or `oom_kill` count exceeds what it
//!   was when the tool started; the group's removal is noticed from inotify
//!   or, at the latest, within a second.
//! - Exit 0, with nothing on stdout or stderr, at an OOM.
//! - Exit 1 in every other case, with one line on stderr: the group went
//!   away (`access CGROUP_PATH/cgroup.event_control: No such file or
//!   directory`; v2: `.../memory.events`), a wrong argument count (`Usage:
//!   ARGV0 <path to cgroup>`), or a failed call (`open PATH: strerror`,
//!   likewise `prctl`, `eventfd`, `write`, `read`, `inotify`). Nothing is
//!   ever written to stdout.
//! - The tool asks to be killed (SIGKILL) when its parent exits, so a
//!   watcher never outlives the server that started it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::unistd::{access, AccessFlags};

use crate::failure::Failure;

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

fn open(path: &Path, write: bool) -> Result<File, Failure> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .open(path)
        .map_err(|e| Failure::from(("open", path, errno_of(&e))))
}

/// Returns at an OOM of the group at `group`. `Err` is the line for stderr,
/// also when the group went away: exit 1 either way, as in the C tool.
pub fn wait(group: &Path) -> Result<(), Failure> {
    let oom_control = group.join("memory.oom_control");
    let events = group.join("memory.events");
    if !oom_control.exists() && events.exists() {
        return wait_v2(&events);
    }
    wait_v1(group, &oom_control)
}

fn wait_v1(group: &Path, oom_control: &Path) -> Result<(), Failure> {
    let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)
        .map_err(|e| Failure::new("eventfd", "", e))?;
    let control = open(oom_control, false)?;
    let register_path = group.join("cgroup.event_control");
    let mut register = open(&register_path, true)?;
    let line = format!(
        "{} {}\n",
        efd.as_fd().as_raw_fd(),
        control.as_fd().as_raw_fd()
    );
    register
        .write_all(line.as_bytes())
        .map_err(|e| Failure::from(("write", register_path.as_path(), errno_of(&e))))?;
    loop {
        match efd.read() {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Failure::new("read", "the OOM eventfd", e)),
        }
    }
    // The kernel signals the same eventfd when it drops the registration
    // because the group was removed.
    match access(&register_path, AccessFlags::W_OK) {
        Ok(()) => Ok(()),
        Err(e) => Err(Failure::from(("access", register_path.as_path(), e))),
    }
}

/// The sum of the `oom` and `oom_kill` counters of a memory.events text
/// (either rises at an OOM: `oom` when the limit could not be met,
/// `oom_kill` when a process was killed for it).
pub fn oom_count(events: &str) -> u64 {
    events
        .lines()
        .filter_map(|l| {
            let (key, value) = l.split_once(' ')?;
            matches!(key, "oom" | "oom_kill")
                .then(|| value.trim().parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

fn read_count(events: &Path) -> Result<u64, Failure> {
    std::fs::read_to_string(events)
        .map(|t| oom_count(&t))
        .map_err(|e| Failure::from(("access", events, errno_of(&e))))
}

fn wait_v2(events: &Path) -> Result<(), Failure> {
    let events: PathBuf = events.to_path_buf();
    let before = read_count(&events)?;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| Failure::new("inotify", "", e))?;
    inotify
        .add_watch(
            &events,
            AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_DELETE_SELF,
        )
        .map_err(|e| Failure::from(("inotify_add_watch", events.as_path(), e)))?;
    loop {
        // Counted after the watch exists too, so an OOM between the first
        // read and the watch is not missed.
        if read_count(&events)? > before {
            return Ok(());
        }
        // A removed group's files may give no inotify event at all (kernfs
        // keeps the watched inode), hence the timeout: its absence is then
        // seen by read_count, which fails with ENOENT.
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Failure::new("poll", "inotify", e)),
        }
        match inotify.read_events() {
            Ok(batch) => {
                let removed = batch.iter().any(|ev| {
                    ev.mask
                        .intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_IGNORED)
                });
                if removed {
                    return Err(Failure::from(("access", events.as_path(), Errno::ENOENT)));
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => return Err(Failure::new("read", "inotify", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_oom_and_oom_kill() {
        let text = "low 0\nhigh 3\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_count(text), 3);
        assert_eq!(oom_count("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"), 0);
        assert_eq!(oom_count(""), 0);
        // Other keys that merely start alike are not counted.
        assert_eq!(oom_count("oom_group_kill 5\noomx 4\n"), 0);
    }

    #[test]
    fn a_missing_group_fails_to_open_oom_control() {
        let err = wait(Path::new("/nonexistent/warden-oom-test")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "open /nonexistent/warden-oom-test/memory.oom_control: No such file or directory"
        );
    }
}
