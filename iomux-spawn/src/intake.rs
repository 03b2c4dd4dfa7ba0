//! Taking the job's output off its pipe and into the ring.
//!
//! A pipe is locked for the whole of a read, and the job's writes wait on
//! that lock (spinning, on another CPU). Copying a large chunk straight out
//! of the job's pipe would hold it for the whole copy, so the bytes are
//! first spliced into a private staging pipe, which only moves page
//! references under the lock, and then copied from there into the ring
//! while the job writes on. Without a staging pipe (none could be made, or
//! the kernel refuses the splice) the job's pipe is read directly.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};

use crate::ring::Ring;

/// What one [`Intake::take`] found.
pub enum Took {
    /// Bytes are now in the ring. `drained`: the pipe was empty after them,
    /// so the next write to it raises a new readiness edge and there is no
    /// need to try again before that.
    Bytes { drained: bool },
    /// The pipe has no writer left and is empty.
    Eof,
    /// Nothing to read right now.
    Empty,
}

pub struct Intake {
    pipe: OwnedFd,
    /// Read and write ends of the staging pipe, the read end non-blocking.
    stage: Option<(OwnedFd, OwnedFd)>,
    /// Capacity of the staging pipe in bytes (0 if unknown).
    stage_size: usize,
}

impl Intake {
    /// `pipe`: the read end of one of the job's output pipes, non-blocking.
    pub fn new(pipe: OwnedFd) -> Self {
        let stage = staging_pipe(&pipe);
        let stage_size = stage
            .as_ref()
            .and_then(|(_, wr)| pipe_size(wr))
            .unwrap_or(0);
        Intake {
            pipe,
            stage,
            stage_size,
        }
    }

    /// The job's pipe, for registering with the poller.
    pub fn fd(&self) -> &OwnedFd {
        &self.pipe
    }

    /// Move what the pipe holds, up to the ring's capacity, into the ring.
    /// `EINTR` is returned as is (try again); any other error means the
    /// stream cannot be read any more.
    pub fn take(&mut self, ring: &mut Ring) -> nix::Result<Took> {
        let cap = ring.capacity();
        if let Some((rd, wr)) = &self.stage {
            let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
            match splice(&self.pipe, None, wr, None, cap, flags) {
                Ok(0) => return Ok(Took::Eof),
                Ok(n) => {
                    // Every byte spliced must reach the ring, in order: the
                    // staging pipe is empty again afterwards.
                    copy_into(rd, ring, n)?;
                    // A splice stops short when the job's pipe runs empty
                    // or the staging pipe runs out of slots; the latter
                    // cannot happen while the staging pipe is at least as
                    // large (the job may have widened its own pipe since).
                    let drained = n < cap
                        && pipe_size(&self.pipe).is_some_and(|theirs| theirs <= self.stage_size);
                    return Ok(Took::Bytes { drained });
                }
                Err(Errno::EAGAIN) => return Ok(Took::Empty),
                Err(Errno::EINVAL | Errno::ENOSYS) => {
                    // Nothing was moved; read the job's pipe from now on.
                    self.stage = None;
                }
                Err(e) => return Err(e),
            }
        }
        let mut bufs = ring.spare(cap);
        match nix::sys::uio::readv(&self.pipe, &mut bufs) {
            Ok(0) => Ok(Took::Eof),
            Ok(n) => {
                ring.commit(n);
                // A pipe read stops short only once the pipe is empty.
                Ok(Took::Bytes { drained: n < cap })
            }
            Err(Errno::EAGAIN) => Ok(Took::Empty),
            Err(e) => Err(e),
        }
    }
}

/// Copy exactly `n` bytes, all waiting in the staging pipe, into the ring.
fn copy_into(rd: &OwnedFd, ring: &mut Ring, n: usize) -> nix::Result<()> {
    let mut left = n;
    while left > 0 {
        let mut bufs = ring.spare(left);
        match nix::sys::uio::readv(rd, &mut bufs) {
            // The bytes were there a moment ago: losing them is not an
            // option, so neither is waiting for them.
            Ok(0) => return Err(Errno::EIO),
            Ok(k) => {
                ring.commit(k);
                left -= k;
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A staging pipe at least as large as the job's (best effort), or `None`.
fn staging_pipe(job: &OwnedFd) -> Option<(OwnedFd, OwnedFd)> {
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ok()?;
    fcntl(rd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).ok()?;
    if let Some(size) = pipe_size(job) {
        let _ = fcntl(wr.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(size as libc::c_int));
    }
    Some((rd, wr))
}

fn pipe_size(fd: &OwnedFd) -> Option<usize> {
    fcntl(fd.as_raw_fd(), FcntlArg::F_GETPIPE_SZ)
        .ok()
        .and_then(|s| usize::try_from(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn job_pipe() -> (OwnedFd, std::fs::File) {
        let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).unwrap();
        (rd, std::fs::File::from(wr))
    }

    #[test]
    fn chunks_larger_than_the_ring_arrive_in_order_and_whole() {
        let (rd, mut wr) = job_pipe();
        let mut intake = Intake::new(rd);
        assert!(intake.stage.is_some(), "a staging pipe");
        let mut ring = Ring::with_sizes_at(1000, 300, u32::MAX - 500);
        let data: Vec<u8> = (0..2500u32).map(|i| (i * 7 % 251) as u8).collect();
        wr.write_all(&data).unwrap();
        let mut got = Vec::new();
        loop {
            let before = ring.end();
            match intake.take(&mut ring).unwrap() {
                Took::Bytes { drained } => {
                    let n = ring.end().wrapping_sub(before) as usize;
                    let (a, b) = ring.from(before).unwrap();
                    got.extend_from_slice(a);
                    got.extend_from_slice(b);
                    assert!(n <= 1000);
                    assert_eq!(drained, got.len() == data.len(), "at {}", got.len());
                }
                Took::Empty => break,
                Took::Eof => panic!("writer still open"),
            }
        }
        assert_eq!(got, data);
        assert_eq!(ring.snapshot().1, &data[data.len() - 300..]);
        // A job that widened its pipe beyond the staging pipe: a short
        // splice proves nothing any more.
        let wide = intake.stage_size * 2;
        fcntl(wr.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(wide as libc::c_int)).unwrap();
        wr.write_all(b"abc").unwrap();
        assert!(matches!(
            intake.take(&mut ring).unwrap(),
            Took::Bytes { drained: false }
        ));
        assert!(matches!(intake.take(&mut ring).unwrap(), Took::Empty));
        drop(wr);
        assert!(matches!(intake.take(&mut ring).unwrap(), Took::Eof));
    }

    #[test]
    fn reading_directly_gives_the_same_bytes() {
        let (rd, mut wr) = job_pipe();
        let mut intake = Intake::new(rd);
        intake.stage = None;
        let mut ring = Ring::with_sizes_at(64, 16, 0);
        wr.write_all(b"0123456789").unwrap();
        match intake.take(&mut ring).unwrap() {
            Took::Bytes { drained } => assert!(drained),
            _ => panic!("bytes expected"),
        }
        assert_eq!(ring.snapshot(), (0, b"0123456789".to_vec()));
        assert!(matches!(intake.take(&mut ring).unwrap(), Took::Empty));
    }
}
