//! Processes that must outlive wardenctl (iomux-spawn, the job recorder):
//! started in a session of their own, with their stdio on files, so neither
//! a terminal's signals nor wardenctl being killed reach them.

use std::fs;
use std::ops::{Deref, DerefMut};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Mutex;

use crate::errors::{Error, Result};

/// A child started by [`spawn_detached`]. Dropped while it still runs, it
/// is kept in a list that [`reap_detached`] waits on, so a long-lived caller
/// (wardend) collects every such child and holds no zombies.
pub struct Detached(Option<Child>);

static UNWAITED: Mutex<Vec<Child>> = Mutex::new(Vec::new());

impl Deref for Detached {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0
            .as_ref()
            .expect("a Detached holds its child until dropped")
    }
}

impl DerefMut for Detached {
    fn deref_mut(&mut self) -> &mut Child {
        self.0
            .as_mut()
            .expect("a Detached holds its child until dropped")
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            if matches!(child.try_wait(), Ok(None)) {
                if let Ok(mut list) = UNWAITED.lock() {
                    list.push(child);
                }
            }
        }
        reap_detached();
    }
}

/// Waits for those detached children that have exited; the others stay
/// listed.
pub fn reap_detached() {
    if let Ok(mut list) = UNWAITED.lock() {
        list.retain_mut(|child| matches!(child.try_wait(), Ok(None)));
    }
}

pub fn spawn_detached(command: &mut Command, what: &str) -> Result<Detached> {
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setsid(2) and sigprocmask(2), which are async-signal-safe, on a
    // set on its own stack.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // A caller waiting for its signals (jobs::run_here) has them
            // blocked; the fork would hand the block on.
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            )
            .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    command
        .spawn()
        .map(|child| Detached(Some(child)))
        .map_err(Error::io(format!("start {what}")))
}

/// As [`spawn_detached`] for a program that makes a session of its own as
/// its first step (iomux-spawn does), from a caller no terminal signals
/// reach (wardend): without a pre-exec step the standard library can use
/// posix_spawn, which does not copy the caller's page tables as fork does.
pub fn spawn_self_detaching(command: &mut Command, what: &str) -> Result<Detached> {
    command
        .spawn()
        .map(|child| Detached(Some(child)))
        .map_err(Error::io(format!("start {what}")))
}

/// Whether `pid` is a live (not zombie) process whose command line mentions
/// `marker` (a job directory): a pid file alone could name a recycled pid.
pub fn alive_with(pid: i32, marker: &Path) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, None | Some('Z') | Some('X')) {
        return false;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let marker = marker.as_os_str().as_encoded_bytes();
    cmdline.windows(marker.len()).any(|w| w == marker)
}

/// Live processes whose command line mentions `marker`.
pub fn pids_mentioning(marker: &Path) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != std::process::id() as i32 && alive_with(pid, marker))
        .collect()
}

/// Remount `target` in the mount namespace of process `pid` (a container's
/// init) with `flags` and filesystem `options`. A forked child enters the
/// namespace: setns into a mount namespace needs a single-threaded caller,
/// and this process keeps its own view of the host.
pub fn remount_in(pid: i32, target: &str, flags: libc::c_ulong, options: &str) -> Result<()> {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    let what = format!("remount {target} of process {pid} ({options})");
    let ns_path = format!("/proc/{pid}/ns/mnt");
    let ns = fs::File::open(&ns_path).map_err(Error::io(format!("open {ns_path}")))?;
    let bad = || Error::BadArgument(format!("{what}: a NUL byte"));
    let target_c = CString::new(target).map_err(|_| bad())?;
    let options_c = CString::new(options).map_err(|_| bad())?;
    // SAFETY: the child makes only raw system calls on memory that exists
    // before the fork (the descriptor, the two strings) and leaves with
    // _exit, so nothing of the parent's state (locks, allocator) is used.
    #[allow(unsafe_code)]
    let pid = unsafe {
        let child = libc::fork();
        if child == 0 {
            // The target must be the directory itself, never a symlink
            // container root could have put there to aim the remount at
            // another mount (a bind mount from the host, say).
            let mut st: libc::stat = std::mem::zeroed();
            let failed = libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) != 0
                || libc::lstat(target_c.as_ptr(), &mut st) != 0
                || (st.st_mode & libc::S_IFMT != libc::S_IFDIR && {
                    *libc::__errno_location() = libc::ENOTDIR;
                    true
                })
                || libc::mount(
                    std::ptr::null(),
                    target_c.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REMOUNT | flags,
                    options_c.as_ptr().cast(),
                ) != 0;
            let code = if failed { *libc::__errno_location() } else { 0 };
            libc::_exit(code.clamp(0, 255));
        }
        child
    };
    if pid < 0 {
        return Err(Error::io(format!("fork for {what}"))(
            std::io::Error::last_os_error(),
        ));
    }
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
        .map_err(|e| Error::io(format!("wait for {what}"))(e.into()))?;
    match status {
        nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
        nix::sys::wait::WaitStatus::Exited(_, errno) => {
            Err(Error::io(what)(std::io::Error::from_raw_os_error(errno)))
        }
        other => Err(Error::Tool(format!(
            "{what}: the child ended with {other:?}"
        ))),
    }
}

pub fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_child_is_alive_then_dead() {
        let marker = std::env::temp_dir().join("wardenctl-process-test-marker");
        let mut child = spawn_detached(
            Command::new("/bin/sh")
                .arg("-c")
                .arg("read x")
                .arg(&marker)
                .stdin(std::process::Stdio::piped()),
            "sh",
        )
        .unwrap();
        let pid = child.id() as i32;
        assert!(alive_with(pid, &marker));
        assert!(!alive_with(pid, Path::new("/no/such/marker")));
        // A session of its own.
        assert_eq!(
            nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid)))
                .unwrap()
                .as_raw(),
            pid
        );
        drop(child.stdin.take());
        child.wait().unwrap();
        assert!(!alive_with(pid, &marker));
    }
}
