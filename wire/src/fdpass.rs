//! Descriptor passing over Unix sockets (SCM_RIGHTS).
//!
//! Received descriptors are wrapped in [`OwnedFd`] the moment they arrive and
//! carry `O_CLOEXEC` from birth (`MSG_CMSG_CLOEXEC`), so none can leak into a
//! process the receiver starts later. A message whose control data was
//! truncated (more descriptors than asked for) is refused after closing what
//! did arrive.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Largest number of descriptors one message may carry here.
pub const MAX_FDS: usize = 8;
/// The kernel's limit of descriptors in one SCM_RIGHTS message.
const SCM_MAX_FD: usize = 253;

#[derive(Debug, thiserror::Error)]
pub enum FdPassError {
    #[error("sendmsg: {0}")]
    Send(Errno),
    #[error("recvmsg: {0}")]
    Recv(Errno),
    #[error("more than {MAX_FDS} descriptors sent")]
    Truncated,
}

/// Send `data` with `fds` attached in one `sendmsg`. Returns bytes sent.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize, FdPassError> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            other => return other.map_err(FdPassError::Send),
        }
    }
}

/// Receive into `buf` and collect any descriptors that came with it.
/// Returns the number of bytes read (0 at EOF) and the descriptors.
pub fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<(usize, Vec<OwnedFd>), FdPassError> {
    // Room for the kernel's own per-message maximum (SCM_MAX_FD), so control
    // data is never truncated and every descriptor that arrives is adopted
    // (and closed, if there are too many) rather than leaked.
    let mut cmsg_space = nix::cmsg_space!([RawFd; SCM_MAX_FD]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(FdPassError::Recv(e)),
            Ok(m) => m,
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(FdPassError::Recv)? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    // SAFETY: the kernel just installed `fd` in our table for
                    // this message; nothing else owns it yet.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        if fds.len() > MAX_FDS || msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(FdPassError::Truncated);
        }
        return Ok((msg.bytes, fds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsFd;

    #[test]
    fn passes_descriptors_cloexec() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let sent = send_with_fds(a.as_fd(), &1i32.to_ne_bytes(), &[r.as_fd(), w.as_fd()]).unwrap();
        assert_eq!(sent, 4);
        let mut buf = [0u8; 4];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(n, 4);
        assert_eq!(fds.len(), 2);
        for fd in &fds {
            let flags =
                FdFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFD).unwrap());
            assert!(flags.contains(FdFlag::FD_CLOEXEC));
        }
        nix::unistd::write(&fds[1], b"x").unwrap();
        let mut one = [0u8; 1];
        nix::unistd::read(fds[0].as_raw_fd(), &mut one).unwrap();
        assert_eq!(&one, b"x");
    }

    #[test]
    fn too_many_descriptors_are_refused_and_closed() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (r, _w) = nix::unistd::pipe().unwrap();
        let many: Vec<BorrowedFd> = (0..MAX_FDS * 4).map(|_| r.as_fd()).collect();
        send_with_fds(a.as_fd(), b"z", &many).unwrap();
        let mut buf = [0u8; 1];
        let got = recv_with_fds(b.as_fd(), &mut buf);
        assert!(matches!(got, Err(FdPassError::Truncated)), "{got:?}");
    }
}
