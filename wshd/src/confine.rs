//! Confinement: what keeps root in a container from being root on the host.
//!
//! Every container gets it unless wshd runs with `--unconfined` (Warden's
//! `allow_nested_warden`). Two parts, applied at different times:
//!
//! - The container, once, on its way to pid 1 ([`crate::startup`] and
//!   [`crate::resume`]): a cgroup namespace entered after the host put the
//!   process in its groups (so the host's tree is not visible), runc's
//!   masked and read-only /proc paths, an empty environment for pid 1, pid 1
//!   not dumpable (no job can ptrace it or read its /proc files), no
//!   descriptor of a host file kept past start-up, and the seccomp filter
//!   ([`crate::seccomp`]) installed on pid 1 once it needs nothing the
//!   filter denies: every job inherits it with the clone, so none pays for
//!   installing it, and pid 1 is filtered too.
//! - Each job, in the request child between clone and execve
//!   ([`crate::spawn`]), in runc's order: the bounding set cut before the
//!   uid changes (dropping needs CAP_SETPCAP, which a vcap job loses with
//!   its uid), then the uid, then the permitted, effective and inheritable
//!   sets, then no_new_privs last. Root jobs keep uid 0 with Docker's
//!   default capabilities minus CAP_NET_RAW (ping works through
//!   net.ipv4.ping_group_range instead); vcap jobs keep none.
//!
//! The child-side functions make raw system calls only, on data that
//! exists before the child does: the child shares the daemon's memory
//! until its exec and must not allocate.

use std::path::Path;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

/// Capability numbers (linux/capability.h; the libc crate has none).
mod cap {
    pub const CHOWN: u32 = 0;
    pub const DAC_OVERRIDE: u32 = 1;
    #[cfg(test)]
    pub const DAC_READ_SEARCH: u32 = 2;
    pub const FOWNER: u32 = 3;
    pub const FSETID: u32 = 4;
    pub const KILL: u32 = 5;
    pub const SETGID: u32 = 6;
    pub const SETUID: u32 = 7;
    pub const SETPCAP: u32 = 8;
    pub const NET_BIND_SERVICE: u32 = 10;
    #[cfg(test)]
    pub const NET_RAW: u32 = 13;
    pub const SYS_CHROOT: u32 = 18;
    #[cfg(test)]
    pub const SYS_PTRACE: u32 = 19;
    #[cfg(test)]
    pub const SYS_ADMIN: u32 = 21;
    pub const MKNOD: u32 = 27;
    pub const AUDIT_WRITE: u32 = 29;
    pub const SETFCAP: u32 = 31;
}

/// Docker's default capability set, less CAP_NET_RAW: what a root job
/// keeps.
pub const ROOT_JOB_CAPS: u64 = bit(cap::CHOWN)
    | bit(cap::DAC_OVERRIDE)
    | bit(cap::FSETID)
    | bit(cap::FOWNER)
    | bit(cap::MKNOD)
    | bit(cap::SETGID)
    | bit(cap::SETUID)
    | bit(cap::SETFCAP)
    | bit(cap::SETPCAP)
    | bit(cap::NET_BIND_SERVICE)
    | bit(cap::SYS_CHROOT)
    | bit(cap::KILL)
    | bit(cap::AUDIT_WRITE);

const fn bit(cap: u32) -> u64 {
    1 << cap
}

/// The capabilities a job of `uid` keeps.
pub fn job_caps(uid: u32) -> u64 {
    if uid == 0 {
        ROOT_JOB_CAPS
    } else {
        0
    }
}

/// Files of /proc that tell the host's secrets or let a job act on the
/// host's kernel: each is covered by /dev/null (runc's maskedPaths, with
/// kallsyms).
const MASKED_FILES: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/kallsyms",
];

/// Directories of /proc covered by an empty read-only tmpfs.
const MASKED_DIRS: &[&str] = &["/proc/acpi", "/proc/asound", "/proc/scsi"];

/// Kernel-wide settings and triggers: readable, never writable.
const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Mask and freeze the paths above in the container's /proc (mounted by
/// hook-child-after-pivot.sh). Paths this kernel lacks are skipped; a path
/// that exists and cannot be covered is an error, since the container would
/// start with a hole.
pub fn mask_proc() -> Result<()> {
    if !Path::new("/proc/self").exists() {
        // No /proc in this container: nothing to mask.
        return Ok(());
    }
    for path in MASKED_FILES {
        if Path::new(path).exists() {
            mount(
                Some("/dev/null"),
                *path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .with_context(|| format!("masking {path} with /dev/null"))?;
        }
    }
    for path in MASKED_DIRS {
        if Path::new(path).is_dir() {
            mount(
                Some("tmpfs"),
                *path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=0,mode=0555"),
            )
            .with_context(|| format!("masking {path} with an empty tmpfs"))?;
        }
    }
    for path in READ_ONLY {
        if Path::new(path).exists() {
            read_only(path)?;
        }
    }
    Ok(())
}

/// A bind of `path` onto itself, remounted read-only (a bind mount's flags
/// can only be changed by a remount).
fn read_only(path: &str) -> Result<()> {
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("binding {path} onto itself"))?;
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .with_context(|| format!("remounting {path} read-only"))
}

/// Enter a new cgroup namespace rooted at the groups the host just put this
/// process in.
pub fn cgroup_namespace() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP).context("unshare(CLONE_NEWCGROUP)")
}

/// pid 1 may not be traced, and its /proc files (environ, fd/, mem) are
/// root's alone, whatever uid a job has.
pub fn not_dumpable() -> Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes an integer and changes a process flag.
    let rv = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rv != 0 {
        return Err(Errno::last()).context("prctl(PR_SET_DUMPABLE, 0)");
    }
    Ok(())
}

// ---- the job's child: raw system calls only ----

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Which step failed, for the child's one-line message.
pub type Failed = (&'static [u8], Errno);

/// Remove from the bounding set every capability not in `keep`, and clear
/// the ambient set. Runs before the uid changes: dropping needs CAP_SETPCAP.
pub fn drop_bounding(keep: u64) -> Result<(), Failed> {
    for cap in 0..64 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number and only
        // shrinks this task's bounding set; it fails with EINVAL past the
        // kernel's last capability, where the loop ends (dropping one that
        // is already gone succeeds, so nothing needs reading first).
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            if Errno::last() == Errno::EINVAL {
                break;
            }
            return Err((b"prctl(PR_CAPBSET_DROP)", Errno::last()));
        }
    }
    // SAFETY: clearing the ambient set takes no pointer. Kernels before 4.3
    // have no ambient set (EINVAL): nothing to clear there.
    let rv = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if rv != 0 && Errno::last() != Errno::EINVAL {
        return Err((b"prctl(PR_CAP_AMBIENT_CLEAR_ALL)", Errno::last()));
    }
    Ok(())
}

/// Set the permitted, effective and inheritable sets to `keep` (after the
/// uid change, which already emptied them for a non-root uid).
pub fn set_caps(keep: u64) -> Result<(), Failed> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let word = |w: u32| CapData {
        effective: w,
        permitted: w,
        inheritable: w,
    };
    let data = [word(keep as u32), word((keep >> 32) as u32)];
    // SAFETY: capset reads the header and two data words (version 3)
    // through valid pointers; raw, as glibc's wrapper would not be used
    // between clone and exec anyway.
    let rv = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if rv != 0 {
        return Err((b"capset", Errno::last()));
    }
    Ok(())
}

/// No exec may raise privileges again (setuid files, file capabilities);
/// also what lets an unprivileged task install a seccomp filter.
pub fn no_new_privs() -> Result<(), Failed> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integers and sets a task flag.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err((b"prctl(PR_SET_NO_NEW_PRIVS)", Errno::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_keeps_dockers_set_without_net_raw() {
        let caps = job_caps(0);
        assert_eq!(caps.count_ones(), 13);
        assert_eq!(caps & bit(cap::NET_RAW), 0);
        assert_eq!(caps & bit(cap::SYS_ADMIN), 0);
        assert_eq!(caps & bit(cap::SYS_PTRACE), 0);
        assert_eq!(caps & bit(cap::DAC_READ_SEARCH), 0);
        assert_ne!(caps & bit(cap::SETUID), 0);
        // Docker's default mask, written out as the kernel shows it
        // (CapEff 00000000a80425fb less NET_RAW's bit 13).
        assert_eq!(caps, 0xa80425fb & !(1 << 13));
        assert_eq!(job_caps(10000), 0);
    }

    /// In a forked child: the sets end up exactly as asked, and the
    /// bounding set keeps nothing more.
    #[test]
    fn caps_are_cut_in_a_child() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: cutting capabilities needs root");
            return;
        }
        // SAFETY: the child makes raw system calls and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let keep = ROOT_JOB_CAPS;
            let code = if drop_bounding(keep).is_err() {
                1
            } else if set_caps(keep).is_err() {
                2
            } else if no_new_privs().is_err() {
                3
            } else {
                // SAFETY: reading flags of this task.
                let bset_admin =
                    unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap::SYS_ADMIN, 0, 0, 0) };
                // SAFETY: as above.
                let bset_chown = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap::CHOWN, 0, 0, 0) };
                // SAFETY: as above.
                let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
                match (bset_admin, bset_chown, nnp) {
                    (0, 1, 1) => 0,
                    _ => 4,
                }
            };
            // SAFETY: ends the child without running the test harness.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "step that failed");
    }
}
