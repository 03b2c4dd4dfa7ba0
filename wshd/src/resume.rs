//! `wshd --continue`: the container's pid 1, after the exec that followed
//! `pivot_root`. The listening socket and the acknowledgement pipe arrive as
//! inherited descriptors whose numbers are on the command line (no SysV
//! shm: nothing else in the container can read them).

use std::convert::Infallible;
use std::os::fd::AsRawFd;

use anyhow::{bail, Context, Result};
use nix::fcntl::{open, OFlag};
use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::unistd::{dup2, setsid, write};

use crate::args::ContinueArgs;
use crate::{fds, serve};

fn open_null() -> Result<std::os::fd::OwnedFd> {
    let fd = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .context("open /dev/null in the container")?;
    fds::adopt_inherited(fd).context("adopting /dev/null")
}

/// Whether wshd's stderr is worth keeping as its log: start.sh points it at
/// run/wshd.err.log, and a pipe is someone collecting it. A terminal (or
/// anything else) belongs to whoever started the container and is dropped.
/// Confined, only a pipe stays: a descriptor of a host file in pid 1 is a
/// handle on the host's filesystem (open_by_handle_at needs no path), so
/// the log file gets what start-up wrote and nothing after.
fn stderr_is_a_log(confined: bool) -> bool {
    match fstat(2) {
        Ok(st) => {
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            kind == SFlag::S_IFIFO || (kind == SFlag::S_IFREG && !confined)
        }
        Err(_) => false,
    }
}

pub fn resume(args: &ContinueArgs) -> Result<Infallible> {
    // Only the exec after pivot_root may get here: anywhere else the lazy
    // unmount below would detach whatever the caller has at /mnt.
    if nix::unistd::getpid().as_raw() != 1 {
        bail!("--continue is internal: it only runs as pid 1 of a new container");
    }
    let listener = fds::adopt_inherited(args.listen_fd)
        .with_context(|| format!("--listen-fd {}", args.listen_fd))?;
    let ack =
        fds::adopt_inherited(args.ack_fd).with_context(|| format!("--ack-fd {}", args.ack_fd))?;

    // One lazy unmount detaches the whole old root, however many mounts are
    // stacked in it (an unmount-by-list fails with EBUSY on such hosts).
    umount2("/mnt", MntFlags::MNT_DETACH).context("detaching the old root at /mnt")?;
    if !args.unconfined {
        crate::confine::not_dumpable()?;
        // Once, here, for pid 1 and every job it starts (a filter is
        // inherited across clone and exec and cannot be removed): each job
        // would otherwise pay for installing it. pid 1 needs none of what
        // it denies from here on, and holds CAP_SYS_ADMIN, so it needs no
        // no_new_privs for it; its jobs set that themselves.
        let filter = crate::seccomp::Filter::docker_default();
        crate::seccomp::install(&filter.fprog()).context("installing the seccomp filter")?;
    }
    setsid().context("setsid")?;
    let null = open_null()?;
    let reserve = open_null()?;

    crate::dispositions::clear_inherited_ignores();
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .context("blocking SIGCHLD")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("signalfd")?;

    match write(&ack, b"1") {
        Ok(1) => {}
        Ok(_) => bail!("short write acknowledging the parent"),
        Err(e) => bail!("acknowledging the parent: {e}"),
    }
    drop(ack);

    // stdio belongs to whoever started the container; keep only a log.
    dup2(null.as_raw_fd(), 0).context("dup2 /dev/null to stdin")?;
    dup2(null.as_raw_fd(), 1).context("dup2 /dev/null to stdout")?;
    if !stderr_is_a_log(!args.unconfined) {
        dup2(null.as_raw_fd(), 2).context("dup2 /dev/null to stderr")?;
    }
    drop(null);

    serve::serve(listener, signals, reserve, !args.unconfined)
}
