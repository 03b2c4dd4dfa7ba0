//! wsh's own standard descriptors, borrowed for the whole run.

use std::os::fd::BorrowedFd;

/// Borrow fd 0, 1 or 2 for the rest of the process.
pub fn borrow(fd: i32) -> BorrowedFd<'static> {
    assert!((0..=2).contains(&fd), "only stdio may be borrowed forever");
    // SAFETY: wsh never closes its stdio, so the number stays valid (open or
    // not, which callers check) for the life of the process.
    unsafe { BorrowedFd::borrow_raw(fd) }
}
