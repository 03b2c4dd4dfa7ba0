//! Descriptor housekeeping: adopting inherited descriptors, CLOEXEC, and
//! closing everything above stdio.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// Take ownership of a descriptor inherited across exec, checking that it is
/// open and marking it CLOEXEC so it goes no further.
pub fn adopt_inherited(fd: RawFd) -> Result<OwnedFd, Errno> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    // SAFETY: `fd` is open (F_SETFD succeeded) and was handed to this process
    // by its own parent for exactly this purpose; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Let `fd` survive the next exec.
pub fn clear_cloexec(fd: RawFd) -> Result<(), Errno> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).map(drop)
}

/// Mark every descriptor above stdio CLOEXEC, so whatever leaked into wshd
/// from whoever started it reaches neither hooks nor the container.
pub fn cloexec_above_stdio() -> Result<(), Errno> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes flags.
    let rv = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    if rv == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk the table.
    let max = nix::unistd::sysconf(nix::unistd::SysconfVar::OPEN_MAX)
        .ok()
        .flatten()
        .unwrap_or(1024);
    for fd in 3..max as RawFd {
        let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
    Ok(())
}
