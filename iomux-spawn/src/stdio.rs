//! Make sure descriptors 0, 1 and 2 exist before anything else is opened.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::IntoRawFd;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

pub fn ensure_open() -> io::Result<()> {
    for fd in 0..3 {
        if fcntl(fd, FcntlArg::F_GETFD) == Err(nix::Error::EBADF) {
            // open returns the lowest free number, which is `fd`; it stays
            // open for the life of the process, as stdio would.
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            let got = f.into_raw_fd();
            if got != fd {
                return Err(io::Error::other(format!(
                    "/dev/null opened as {got}, expected {fd}"
                )));
            }
            // Standard descriptors are meant to be inherited by the job.
            fcntl(got, FcntlArg::F_SETFD(FdFlag::empty()))?;
        }
    }
    Ok(())
}
