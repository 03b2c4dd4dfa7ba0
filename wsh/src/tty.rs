//! The local terminal in tty mode: raw mode for the session's lifetime and
//! the window size mirrored onto the remote pty.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

nix::ioctl_read_bad!(get_window_size, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(set_window_size, libc::TIOCSWINSZ, libc::winsize);

/// Puts the terminal in raw mode; restores the saved mode when dropped.
pub struct RawMode {
    fd: BorrowedFd<'static>,
    saved: Termios,
}

impl RawMode {
    pub fn enter(fd: BorrowedFd<'static>) -> nix::Result<RawMode> {
        let saved = tcgetattr(fd)?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing useful can be done if the terminal went away meanwhile.
        let _ = tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Copy the window size of `from` (our terminal) to `to` (the remote pty).
pub fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<()> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the valid, exclusively
    // borrowed `size`; the descriptor is borrowed for the call.
    unsafe { get_window_size(from.as_raw_fd(), &mut size) }?;
    // SAFETY: TIOCSWINSZ reads one `winsize` from `size`, alive for the call.
    unsafe { set_window_size(to.as_raw_fd(), &size) }?;
    Ok(())
}
