//! SIGTERM and SIGINT: note them and wake the poll loop. The handler does
//! not exit by itself: only the main path knows exactly which bytes have
//! been written, so it saves the cursors and exits. Installed without
//! SA_RESTART, so a blocked write to our own stdout returns early.

use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::fcntl::OFlag;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static TERMINATED: AtomicBool = AtomicBool::new(false);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the pipe is non-blocking
        // and a full pipe already holds a wake-up.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Install the handlers; returns the read end of the wake-up pipe.
pub fn install() -> nix::Result<OwnedFd> {
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    // The write end lives for the whole process: the handler may run late.
    WAKE_FD.store(wr.into_raw_fd(), Ordering::SeqCst);
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only touches atomics and calls write(2).
        unsafe { sigaction(sig, &action) }?;
    }
    Ok(rd)
}

pub fn terminated() -> bool {
    TERMINATED.load(Ordering::SeqCst)
}
