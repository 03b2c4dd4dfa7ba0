//! Signals wsh handles itself: SIGWINCH in tty mode, and whenever wshd
//! handed over a pidfd (`--v2`, or a v1 session wshd's features file let
//! wsh carry over v2) the ones it forwards to the remote process group.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// What a user sends to stop or poke a program; forwarded when wsh has a
/// pidfd.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Block `signals` and return a signalfd that reads them.
pub fn signalfd_for(signals: &[Signal]) -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for &s in signals {
        set.add(s);
    }
    set.thread_block()?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
}

/// Die of SIGPIPE, as the C client does when its reader goes away: the
/// remote process then sees its own pipes break. SIGPIPE stays ignored while
/// pumping (Rust's default) so that a process closing its stdin early, which
/// makes a splice into it fail with EPIPE, is not fatal.
pub fn die_of_sigpipe() {
    // SAFETY: installing SIG_DFL runs no handler code, and raise() with the
    // default action ends the process; wsh is single-threaded.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
}

/// `pidfd_send_signal` flag (Linux 6.9): the target's process group.
const PIDFD_SIGNAL_PROCESS_GROUP: u32 = 1 << 2;

fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32, flags: u32) -> std::io::Result<()> {
    // SAFETY: pidfd_send_signal takes an fd, a signal number, a null
    // siginfo pointer (allowed: the kernel fills in SI_USER) and flags.
    let rv = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
    if rv == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Send `signal` to the process group of the process `pidfd` refers to.
/// wshd starts every process in a session of its own, so that group is
/// the process and whatever it started (the commands of a shell script),
/// and none of them outlives a killed wsh. Kernels before 6.9 know no
/// group flag (EINVAL): there the process alone gets it.
pub fn send_via_pidfd(pidfd: BorrowedFd<'_>, signal: i32) -> std::io::Result<()> {
    match pidfd_send_signal(pidfd, signal, PIDFD_SIGNAL_PROCESS_GROUP) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => pidfd_send_signal(pidfd, signal, 0),
        r => r,
    }
}

/// Block the forwarded signals (before connecting): one that arrives before
/// the signalfd exists then waits for it instead of killing wsh while its
/// process runs on.
pub fn block_forwarded() -> nix::Result<()> {
    forwarded_set().thread_block()
}

/// Undo [`block_forwarded`] when there is nothing to forward to: a pending
/// signal then ends wsh as it always did.
pub fn unblock_forwarded() -> nix::Result<()> {
    forwarded_set().thread_unblock()
}

fn forwarded_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set
}
