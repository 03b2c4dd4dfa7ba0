//! Signals wsh handles itself: SIGWINCH in tty mode, and with the v2
//! request the ones it forwards to the remote process through its pidfd.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// What a user sends to stop or poke a program; forwarded under v2.
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

/// Send `signal` to the process `pidfd` refers to.
pub fn send_via_pidfd(pidfd: BorrowedFd<'_>, signal: i32) -> std::io::Result<()> {
    // SAFETY: pidfd_send_signal takes an fd, a signal number, a null
    // siginfo pointer (allowed: the kernel fills in SI_USER) and flags 0.
    let rv = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if rv == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
