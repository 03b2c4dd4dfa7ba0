//! Signal dispositions the container's processes inherit.
//!
//! exec resets handled signals to their default but keeps ignored ones, so
//! an ignored signal in wshd becomes an ignored signal in every process it
//! starts. wshd clears what it inherited once, at start-up; afterwards the
//! only ignored signal is SIGPIPE (see `entry`), which the
//! per-request child resets (see `spawn`) with one call instead of 64.
//!
//! The raw system call is used because glibc refuses to touch the signals
//! it reserves for itself (32 and 33), which a careless parent can still
//! leave ignored.

/// The kernel's `struct sigaction` on x86_64 and aarch64.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

const SIG_IGN: usize = 1;

fn rt_sigaction(
    sig: i32,
    new: Option<&KernelSigaction>,
    old: Option<&mut KernelSigaction>,
) -> bool {
    let new = new.map_or(std::ptr::null(), |n| n as *const KernelSigaction);
    let old = old.map_or(std::ptr::null_mut(), |o| o as *mut KernelSigaction);
    // SAFETY: both pointers are null or point to live, correctly laid out
    // structs; the size argument is the kernel's sigset size (8 bytes).
    unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, new, old, 8usize) == 0 }
}

/// Set every signal that is currently ignored, except SIGPIPE, back to its
/// default action.
pub fn clear_inherited_ignores() {
    let default = KernelSigaction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || sig == libc::SIGPIPE {
            continue;
        }
        let mut old = KernelSigaction {
            handler: 0,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        if rt_sigaction(sig, None, Some(&mut old)) && old.handler == SIG_IGN {
            rt_sigaction(sig, Some(&default), None);
        }
    }
}
