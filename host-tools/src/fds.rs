//! `closefds CMD [ARG...]`: run CMD with no descriptor open above 2, as
//! warden/src/closefds/closefds.c does (the Ruby server puts it in front
//! of commands so they inherit none of its sockets and files).
//!
//! - Every descriptor above 2 is closed, whatever its close-on-exec flag;
//!   0, 1 and 2 are left as they are, open or not.
//! - Then CMD is executed with `execvp`: looked up in PATH when it has no
//!   slash, ARGs as its argv[1..], the environment and everything else
//!   unchanged (signal dispositions and mask included: the binary skips
//!   the Rust runtime's start-up, which would ignore SIGPIPE), a script
//!   without `#!` run by /bin/sh. Its exit status is therefore CMD's.
//! - No CMD: `ARGV0: No arguments provided` on stderr, exit 255.
//! - CMD cannot be executed: `execvp CMD: strerror` on stderr, exit 255.
//! - Descriptors cannot be listed (only without close_range(2), before
//!   Linux 5.9, and without /proc): `opendir /proc/self/fd: strerror`,
//!   exit 255.

use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::failure::Failure;

const FD_DIR: &str = "/proc/self/fd";

/// Closes every descriptor above 2.
pub fn close_above_stderr() -> Result<(), Failure> {
    // One system call, atomic, and no /proc needed.
    // SAFETY: close_range takes plain integers; this process has no other
    // thread, and nothing here holds an owned descriptor above 2 that would
    // be used after it is closed.
    if unsafe { libc::close_range(3, libc::c_uint::MAX, 0) } == 0 {
        return Ok(());
    }
    close_listed()
}

/// The older way, as the C tool does it: every number in /proc/self/fd.
fn close_listed() -> Result<(), Failure> {
    let listing = std::fs::read_dir(FD_DIR).map_err(|e| {
        Failure::new(
            "opendir",
            FD_DIR,
            Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        )
    })?;
    // Read the whole listing before closing anything, so the directory's own
    // descriptor is gone (and never closed under the reader) by then.
    let names: Vec<_> = listing.filter_map(|e| Some(e.ok()?.file_name())).collect();
    for fd in above_stderr(names.iter().map(|n| n.as_os_str())) {
        // EBADF is the listing's own descriptor, already closed; EINTR
        // still closes on Linux, so no retry is wanted.
        let _ = nix::unistd::close(fd);
    }
    Ok(())
}

/// The descriptors above 2 among names of /proc/self/fd (which lists only
/// decimal numbers, besides `.` and `..` from some readers).
pub fn above_stderr<'n>(names: impl Iterator<Item = &'n std::ffi::OsStr>) -> Vec<RawFd> {
    names
        .filter_map(|n| n.to_str()?.parse::<RawFd>().ok())
        .filter(|&fd| fd > 2)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn keeps_the_numbers_above_two() {
        let names = [".", "..", "0", "1", "2", "3", "7", "1023", "x", "-4", ""];
        assert_eq!(above_stderr(names.iter().map(OsStr::new)), [3, 7, 1023]);
    }
}
