//! The host side of wshd's start-up and the container side up to the exec
//! of `/sbin/wshd --continue`, in the contract's hook order.
//!
//! The container is made with `clone(2)` and all five namespace flags at
//! once. The alternatives are worse here: `unshare` of the network or UTS
//! namespace would move the parent too, yet `hook-parent-after-clone.sh`
//! must run in the host's network namespace to hand the container its veth
//! end; and a PID namespace only takes effect for children anyway. The
//! parent is single-threaded at the clone, so the child (which gets a copy
//! of the address space, no CLONE_VM) may use the allocator and std freely.
//!
//! Two pipes act as barriers: the child waits for one byte on `release`
//! before its first hook, and the continued process writes one byte to
//! `ack` once it serves. An EOF on either side means the other died, so a
//! failure anywhere ends both.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::{umask, Mode};
use nix::sys::wait::waitpid;
use nix::unistd::{chdir, execve, mkdir, pipe2, pivot_root, Pid};

use crate::args::StartArgs;
use crate::profile::Profile;
use crate::{confine, fds, hooks};

const CLONE_STACK: usize = 2 << 20;

/// Kills and reaps the container's init unless disarmed: whatever fails on
/// the host side after the clone must not leave a half-made container.
struct InitGuard(Option<Pid>);

impl Drop for InitGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

fn require_dir(flag: &str, dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("{flag} {}: not a directory", dir.display()),
        Err(e) => bail!("{flag} {}: {e}", dir.display()),
    }
}

/// Parent: everything up to the child's acknowledgement. Returns once the
/// container serves.
pub fn start(args: &StartArgs) -> Result<()> {
    // WARDEN_PROFILE: each phase's start time, for bench/lifecycle.sh.
    let profile = Profile::from_env();
    profile.mark("checks, socket");
    require_dir("--run", &args.run)?;
    require_dir("--lib", &args.lib)?;
    require_dir("--root", &args.root)?;
    fds::cloexec_above_stdio().context("marking inherited descriptors close-on-exec")?;

    let sock = args.run.join("wshd.sock");
    match std::fs::remove_file(&sock) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", sock.display())),
    }
    // A features file left by an earlier wshd would not match the new
    // socket anyway (see wire::features); removing it keeps run/ honest.
    let features = wire::features::path_for(&sock);
    match std::fs::remove_file(&features) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", features.display())),
    }
    // Whoever connects is root in the container: the socket is the owner's
    // alone, whatever umask wshd was started with.
    let old_umask = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(&sock);
    umask(old_umask);
    let listener = bound.with_context(|| format!("listening on {}", sock.display()))?;
    let (release_r, release_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    let (ack_r, ack_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;

    profile.mark("unshare mount namespace");
    unshare(CloneFlags::CLONE_NEWNS).context("unshare(CLONE_NEWNS)")?;
    // Hosts with a shared / (systemd) would otherwise see every mount the
    // hooks make.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making / recursively private")?;

    const BEFORE_CLONE: &str = "hook-parent-before-clone.sh";
    profile.mark(BEFORE_CLONE);
    hooks::run(
        &args.lib.join(BEFORE_CLONE),
        &profile.hook_env(BEFORE_CLONE),
    )?;

    // Opened before the clone's set-up: a group the hook made (v2).
    let group = args.cgroup.as_deref().and_then(|dir| {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(dir)
            .ok()
            .map(std::os::fd::OwnedFd::from)
    });

    let lib_real = std::fs::canonicalize(&args.lib)
        .with_context(|| format!("realpath {}", args.lib.display()))?;
    let mut pivoted_lib = PathBuf::from("/mnt");
    pivoted_lib.push(lib_real.strip_prefix("/").unwrap_or(&lib_real));
    let title = match &args.title {
        Some(t) if !t.is_empty() => t.clone(),
        _ => "wshd".into(),
    };
    let child = Child {
        release: release_r.as_raw_fd(),
        release_w: release_w.as_raw_fd(),
        ack_r: ack_r.as_raw_fd(),
        ack: ack_w.as_raw_fd(),
        listener: listener.as_raw_fd(),
        lib: args.lib.clone(),
        root: args.root.clone(),
        after_pivot_hook: pivoted_lib.join("hook-child-after-pivot.sh"),
        title: CString::new(title.as_bytes()).context("--title holds a NUL byte")?,
        unconfined: args.unconfined,
        profile: profile.nested(CONTAINER_START),
    };
    let flags = CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS;
    // Born in its group (v2), the process is never moved into it: a move
    // waits for an RCU grace period (cgroup_threadgroup_rwsem), 10-30 ms.
    // Any failure (no group, a kernel before 5.7) leaves it to the
    // after-clone hook, as with the reference's wshd.
    let born_in_group = group.as_ref().and_then(|group| {
        profile.mark("clone into cgroup");
        clone_into_cgroup(&child, flags, group.as_fd()).ok()
    });
    let pid = match born_in_group {
        Some(pid) => pid,
        None => {
            profile.mark("clone");
            let mut stack = vec![0u8; CLONE_STACK];
            clone_container(&child, &mut stack, flags)?
        }
    };
    drop(group);
    let mut guard = InitGuard(Some(pid));
    drop(release_r);
    drop(ack_w);

    const AFTER_CLONE: &str = "hook-parent-after-clone.sh";
    profile.mark(AFTER_CLONE);
    let mut env = profile.hook_env(AFTER_CLONE);
    env.push(("PID", pid.to_string()));
    hooks::run(&args.lib.join(AFTER_CLONE), &env)?;

    profile.mark(CONTAINER_START);

    std::fs::File::from(release_w)
        .write_all(b"1")
        .context("waking up the container's init")?;
    let mut ack = [0u8; 1];
    match std::fs::File::from(ack_r).read(&mut ack) {
        Ok(1) => {}
        Ok(_) => {
            let status = guard.0.take().map(|p| waitpid(p, None));
            bail!("{}", init_died(status));
        }
        Err(e) => bail!("waiting for the container's acknowledgement: {e}"),
    }
    guard.0 = None;
    profile.mark("exit");
    drop(listener);
    // Clients that find no usable features file speak version 1, so a
    // failure here costs signal forwarding, not the container.
    if let Err(e) = write_features(&sock, &features, pid) {
        eprintln!("wshd: warning: {}: {e:#}", features.display());
    }
    Ok(())
}

/// A sentence for the container's init (wshd in the container) ending
/// before it said it was ready; its own reason is on the lines before.
fn init_died(status: Option<nix::Result<nix::sys::wait::WaitStatus>>) -> String {
    use nix::sys::wait::WaitStatus;
    let how = match status {
        Some(Ok(WaitStatus::Exited(_, code))) => format!("exited with status {code}"),
        Some(Ok(WaitStatus::Signaled(_, signal, _))) => format!("was killed by {signal}"),
        _ => "ended".to_string(),
    };
    format!("the container's wshd (its init) {how} before it was ready")
}

/// Tell clients, without a request, what this wshd speaks and how to know
/// that the file is this wshd's (wire::features). Written to a temporary
/// file and renamed, so a reader sees all of it or none; before start-up
/// returns, so it is there once the container is announced.
fn write_features(sock: &Path, path: &Path, init: Pid) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let meta = std::fs::symlink_metadata(sock).context("stat of the socket")?;
    let starttime = wire::features::starttime_of(init.as_raw())
        .ok_or_else(|| anyhow!("no start time in /proc/{init}/stat"))?;
    let text = wire::features::Features {
        pid: init.as_raw(),
        starttime,
        listener: std::process::id() as i32,
        dev: meta.dev(),
        ino: meta.ino(),
        protocols: vec![1, 2],
    }
    .encode();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    // The socket's own mode: whoever may use the socket may read this.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes()).context("writing")?;
    drop(f);
    std::fs::rename(&tmp, path).context("renaming into place")
}
/// The phase from the container's release to its acknowledgement, in which
/// the container's side reports its own phases.
const CONTAINER_START: &str = "container start-up (release to ack)";

/// What the container side needs, all prepared in the parent.
struct Child {
    release: RawFd,
    release_w: RawFd,
    ack_r: RawFd,
    ack: RawFd,
    listener: RawFd,
    lib: PathBuf,
    root: PathBuf,
    after_pivot_hook: PathBuf,
    title: CString,
    unconfined: bool,
    profile: Profile,
}

#[allow(unsafe_code)]
fn clone_container(child: &Child, stack: &mut [u8], flags: CloneFlags) -> Result<Pid> {
    let cb = Box::new(|| match container_side(child) {
        Ok(never) => match never {},
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "wshd: {e:#}");
            1
        }
    });
    // SAFETY: the process is single-threaded here, so the child's copy of
    // the address space has no lock held by a vanished thread; the child
    // runs on `stack`, which outlives the call in the parent and is the
    // child's own copy afterwards; 2 MiB is ample for the hooks' fork+exec.
    unsafe { nix::sched::clone(cb, stack, flags, Some(libc::SIGCHLD)) }
        .context("clone(NEWIPC|NEWNET|NEWNS|NEWPID|NEWUTS)")
}

/// clone3(2) with CLONE_INTO_CGROUP: the container's first process starts
/// in `group` (a cgroup v2 directory).
#[allow(unsafe_code)]
fn clone_into_cgroup(
    child: &Child,
    flags: CloneFlags,
    group: std::os::fd::BorrowedFd<'_>,
) -> nix::Result<Pid> {
    /// struct clone_args as of Linux 5.7 (CLONE_ARGS_SIZE_VER2).
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut clone_args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: group.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: the process is single-threaded here (as for clone_container).
    // Without CLONE_VM and with no stack given, the child runs on its own
    // copy of this address space and stack, as after fork(2), and never
    // comes back out of this function: it execs or _exits.
    let rv = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut clone_args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rv {
        -1 => Err(nix::errno::Errno::last()),
        0 => {
            let code = match container_side(child) {
                Ok(never) => match never {},
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "wshd: {e:#}");
                    1
                }
            };
            // SAFETY: ends the child without running the parent's exit
            // handlers or destructors on its copy of the parent's state.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(Pid::from_raw(pid as i32)),
    }
}

/// Container side: wait for release, hooks and pivot, exec the continued
/// daemon. Only returns on failure.
fn container_side(c: &Child) -> Result<std::convert::Infallible> {
    // The parent's ends; holding them would hide the parent's death.
    let _ = nix::unistd::close(c.release_w);
    let _ = nix::unistd::close(c.ack_r);
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(c.release, &mut b) {
            Ok(1) => break,
            Ok(_) => bail!("the parent went away before releasing the container"),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => bail!("waiting for the parent: {e}"),
        }
    }
    let _ = nix::unistd::close(c.release);
    c.profile.mark("cgroup namespace");
    // Only now: the host has put this process in the container's groups,
    // which become the root of what it and its jobs can see.
    if !c.unconfined {
        confine::cgroup_namespace()?;
    }

    const BEFORE_PIVOT: &str = "hook-child-before-pivot.sh";
    c.profile.mark(BEFORE_PIVOT);
    hooks::run(&c.lib.join(BEFORE_PIVOT), &c.profile.hook_env(BEFORE_PIVOT))?;
    c.profile.mark("pivot_root");
    chdir(&c.root).with_context(|| format!("chdir {}", c.root.display()))?;
    match mkdir("mnt", nix::sys::stat::Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => bail!("mkdir {}/mnt: {e}", c.root.display()),
    }
    pivot_root(".", "mnt").with_context(|| format!("pivot_root({}, mnt)", c.root.display()))?;
    chdir("/").context("chdir /")?;
    const AFTER_PIVOT: &str = "hook-child-after-pivot.sh";
    c.profile.mark(AFTER_PIVOT);
    hooks::run(&c.after_pivot_hook, &c.profile.hook_env(AFTER_PIVOT))?;
    c.profile.mark("mask proc");
    if !c.unconfined {
        confine::mask_proc()?;
    }
    // Up to the acknowledgement: the exec, detaching the old root, the
    // seccomp filter (resume.rs).
    c.profile.mark("exec wshd --continue");

    fds::clear_cloexec(c.listener).context("keeping the listening socket")?;
    fds::clear_cloexec(c.ack).context("keeping the acknowledgement pipe")?;
    let mut argv = vec![
        c.title.clone(),
        c"--continue".to_owned(),
        c"--listen-fd".to_owned(),
        CString::new(c.listener.to_string())?,
        c"--ack-fd".to_owned(),
        CString::new(c.ack.to_string())?,
    ];
    if c.unconfined {
        argv.push(c"--unconfined".to_owned());
    }
    // pid 1 carries none of the host's environment (the operator's
    // variables): jobs get exactly the contract's, built per request.
    let no_env: [CString; 0] = [];
    let err = execve(c"/sbin/wshd", &argv, &no_env).unwrap_err();
    Err(anyhow!("exec /sbin/wshd --continue: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::WaitStatus;

    #[test]
    fn an_early_init_death_is_a_sentence() {
        let pid = nix::unistd::Pid::from_raw(7);
        assert_eq!(
            init_died(Some(Ok(WaitStatus::Exited(pid, 1)))),
            "the container's wshd (its init) exited with status 1 before it was ready"
        );
        assert_eq!(
            init_died(Some(Ok(WaitStatus::Signaled(
                pid,
                nix::sys::signal::SIGKILL,
                false
            )))),
            "the container's wshd (its init) was killed by SIGKILL before it was ready"
        );
        assert_eq!(
            init_died(None),
            "the container's wshd (its init) ended before it was ready"
        );
    }
}
