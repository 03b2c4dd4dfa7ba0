//! Copies between wsh's stdio and the remote process until it exits.
//!
//! One poll loop over every copy pair, the exit pipe and a signalfd. Pairs
//! move data with `splice` where either end is a pipe (zero copy), and fall
//! back to read/write where the kernel refuses (a tty on both ends). All
//! pipe operations are non-blocking, so a stalled direction (the process not
//! reading its stdin) never stops another (its stdout) from flowing.
//!
//! When the exit pipe yields, everything already in the output pipes is
//! copied out before wsh exits: the process finished its writes before it
//! exited, so nothing it wrote is lost.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{splice, SpliceFFlags};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Upper bound on one splice; the kernel moves what the pipe holds.
const SPLICE_CHUNK: usize = 1 << 20;
/// Transfers tried on one ready pair before polling again.
const BURST: usize = 16;
/// Largest buffer of the read/write fallback.
const COPY_CHUNK: usize = 64 * 1024;
/// Its first size: the fallback also serves a stdin of /dev/null (which
/// cannot splice), where zeroing 64 KiB of fresh heap cost more page faults
/// than the rest of wsh's run.
const COPY_START: usize = 4096;

/// A descriptor wsh owns (the remote's) or borrows for its lifetime (its
/// own stdio).
pub enum End {
    Owned(OwnedFd),
    Std(BorrowedFd<'static>),
}

impl AsFd for End {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            End::Owned(fd) => fd.as_fd(),
            End::Std(fd) => *fd,
        }
    }
}

enum Method {
    Splice,
    Copy {
        buf: Vec<u8>,
        start: usize,
        end: usize,
    },
}

/// One direction of copying.
pub struct Pair {
    src: End,
    /// None once the stdin direction is finished (closing it is the EOF).
    dst: Option<End>,
    method: Method,
    blocked_on_dst: bool,
    done: bool,
    /// The stdin direction: ignored once the process has exited.
    is_input: bool,
}

enum Step {
    Moved,
    Eof,
    WouldBlock,
}

impl Pair {
    pub fn new(src: End, dst: End, is_input: bool) -> Pair {
        Pair {
            src,
            dst: Some(dst),
            method: Method::Splice,
            blocked_on_dst: false,
            done: false,
            is_input,
        }
    }

    /// Switch to read/write. Splices never block on a pipe
    /// (SPLICE_F_NONBLOCK), but plain reads and writes need the remote's
    /// descriptor non-blocking, so it becomes so here, only now: most runs
    /// never get here and save the system calls.
    fn fall_back_to_copy(&mut self) -> io::Result<()> {
        for end in [Some(&self.src), self.dst.as_ref()].into_iter().flatten() {
            if let End::Owned(fd) = end {
                set_nonblocking(fd.as_fd())?;
            }
        }
        self.method = Method::Copy {
            buf: vec![0; COPY_START],
            start: 0,
            end: 0,
        };
        Ok(())
    }

    fn step(&mut self) -> io::Result<Step> {
        let Some(dst) = &self.dst else {
            return Ok(Step::Eof);
        };
        match &mut self.method {
            Method::Splice => {
                let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
                match splice(&self.src, None, dst, None, SPLICE_CHUNK, flags) {
                    Ok(0) => Ok(Step::Eof),
                    Ok(_) => Ok(Step::Moved),
                    Err(Errno::EINTR) => Ok(Step::Moved),
                    // Either side may be the one that would block; waiting
                    // for the destination first costs at most one wake-up.
                    Err(Errno::EAGAIN) => {
                        self.blocked_on_dst = true;
                        Ok(Step::WouldBlock)
                    }
                    Err(Errno::EINVAL) => {
                        self.fall_back_to_copy()?;
                        self.step()
                    }
                    Err(Errno::EIO) => Ok(Step::Eof),
                    Err(Errno::EPIPE) => self.destination_gone(),
                    Err(e) => Err(e.into()),
                }
            }
            Method::Copy { buf, start, end } => {
                if start == end {
                    // A full buffer last time: data is streaming, go bigger.
                    if *end == buf.len() && buf.len() < COPY_CHUNK {
                        buf.resize((buf.len() * 4).min(COPY_CHUNK), 0);
                    }
                    match nix::unistd::read(self.src.as_fd().as_raw_fd(), buf) {
                        Ok(0) | Err(Errno::EIO) => return Ok(Step::Eof),
                        Ok(n) => {
                            *start = 0;
                            *end = n;
                        }
                        Err(Errno::EINTR) => return Ok(Step::Moved),
                        Err(Errno::EAGAIN) => return Ok(Step::WouldBlock),
                        Err(e) => return Err(e.into()),
                    }
                }
                match nix::unistd::write(dst, &buf[*start..*end]) {
                    Ok(n) => {
                        *start += n;
                        Ok(Step::Moved)
                    }
                    Err(Errno::EINTR) => Ok(Step::Moved),
                    Err(Errno::EAGAIN) => {
                        self.blocked_on_dst = true;
                        Ok(Step::WouldBlock)
                    }
                    Err(Errno::EPIPE) => self.destination_gone(),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The process closed its stdin: that direction is over. Our own
    /// reader going away is the caller's to handle, as a broken pipe.
    fn destination_gone(&mut self) -> io::Result<Step> {
        if self.is_input {
            Ok(Step::Eof)
        } else {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    fn finish(&mut self) {
        self.done = true;
        // Closing the process's stdin is how its EOF reaches it.
        if self.is_input {
            self.dst = None;
        }
    }

    /// Whether another transfer right away cannot block: splices are
    /// non-blocking, and so are the remote's descriptors, but wsh's own
    /// stdin (a terminal, say) is left blocking, and a second read from it
    /// would wait for the next keypress while output and the exit status
    /// pile up.
    fn may_burst(&self) -> bool {
        !self.is_input || matches!(self.method, Method::Splice)
    }

    fn has_pending(&self) -> bool {
        matches!(&self.method, Method::Copy { start, end, .. } if start != end)
    }
}

pub use wire::exit::Exit;

/// Run until the exit pipe yields, then drain the outputs. `on_signal` gets
/// each signal read from `signals`.
pub fn run(
    mut pairs: Vec<Pair>,
    exit: OwnedFd,
    signals: Option<&nix::sys::signalfd::SignalFd>,
    mut on_signal: impl FnMut(i32),
) -> io::Result<Exit> {
    let mut exit_word: Option<Exit> = None;
    let mut word = [0u8; 4];
    let mut word_len = 0;
    loop {
        let draining = exit_word.is_some();
        if draining && pairs.iter().all(|p| p.done || p.is_input) {
            break;
        }
        // Which descriptor each pair waits on, in the same order as `fds`.
        let mut fds: Vec<PollFd> = Vec::with_capacity(pairs.len() + 2);
        let mut owners: Vec<usize> = Vec::with_capacity(pairs.len());
        let mut waiting_on_dst = false;
        for (i, p) in pairs.iter().enumerate() {
            if p.done || (draining && p.is_input) {
                continue;
            }
            let wants_dst = (p.blocked_on_dst || p.has_pending()) && p.dst.is_some();
            let fd = if wants_dst {
                waiting_on_dst = true;
                PollFd::new(p.dst.as_ref().expect("checked").as_fd(), PollFlags::POLLOUT)
            } else {
                PollFd::new(p.src.as_fd(), PollFlags::POLLIN)
            };
            fds.push(fd);
            owners.push(i);
        }
        let exit_slot = (!draining).then(|| {
            fds.push(PollFd::new(exit.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let signal_slot = signals.map(|s| {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        // While draining, a source with nothing ready is finished; only a
        // full destination is worth waiting for.
        let timeout = if draining && !waiting_on_dst {
            PollTimeout::ZERO
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);

        if let Some(slot) = signal_slot {
            if ready[slot] {
                if let Some(sfd) = signals {
                    while let Ok(Some(info)) = sfd.read_signal() {
                        on_signal(info.ssi_signo as i32);
                    }
                }
            }
        }
        for (slot, &i) in owners.iter().enumerate() {
            let p = &mut pairs[i];
            if !ready[slot] {
                if draining && !(p.blocked_on_dst || p.has_pending()) {
                    p.finish();
                }
                continue;
            }
            if p.blocked_on_dst {
                p.blocked_on_dst = false;
                if !p.has_pending() {
                    continue;
                }
            }
            // Keep moving while data flows: one poll per burst rather than
            // one per pipe-full.
            for _ in 0..BURST {
                match p.step()? {
                    Step::Moved if p.may_burst() => continue,
                    Step::Moved => {}
                    Step::Eof => p.finish(),
                    Step::WouldBlock => {
                        if draining && !p.blocked_on_dst {
                            p.finish();
                        }
                    }
                }
                break;
            }
        }
        if let Some(slot) = exit_slot {
            if ready[slot] {
                match nix::unistd::read(exit.as_raw_fd(), &mut word[word_len..]) {
                    Ok(0) => exit_word = Some(Exit::Closed),
                    Ok(n) => {
                        word_len += n;
                        if word_len == word.len() {
                            exit_word = Some(Exit::Word(i32::from_ne_bytes(word)));
                        }
                    }
                    Err(Errno::EINTR | Errno::EAGAIN) => {}
                    Err(e) => return Err(e.into()),
                }
                if exit_word.is_some() {
                    for p in pairs.iter_mut().filter(|p| p.is_input) {
                        p.finish();
                    }
                }
            }
        }
    }
    Ok(exit_word.unwrap_or(Exit::Closed))
}

/// Make a descriptor's reads non-blocking (only the file description wsh
/// received from wshd; never wsh's own stdio, which others may share).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Size wsh asks for on the process's stdout pipe: fewer, larger splices
/// and wake-ups when output streams. Best effort; the kernel may refuse.
const WIDE_PIPE: i32 = 1 << 20;

pub fn widen_pipe(fd: BorrowedFd<'_>) {
    use nix::fcntl::{fcntl, FcntlArg};
    let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(WIDE_PIPE));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    /// The read/write fallback starts small and grows while data streams,
    /// and moves every byte in order.
    #[test]
    fn copy_fallback_grows_and_keeps_every_byte() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (mut feed, src) = UnixStream::pair().expect("socketpair");
        let (out_r, out_w) = nix::unistd::pipe().expect("pipe");
        let writer = {
            let data = data.clone();
            std::thread::spawn(move || feed.write_all(&data).expect("feed"))
        };
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            std::fs::File::from(out_r)
                .read_to_end(&mut got)
                .expect("drain");
            got
        });
        let mut pair = Pair::new(End::Owned(src.into()), End::Owned(out_w), false);
        pair.fall_back_to_copy().expect("fall back");
        let mut biggest = 0;
        loop {
            match pair.step().expect("step") {
                Step::Eof => break,
                Step::Moved => {}
                Step::WouldBlock => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
            if let Method::Copy { buf, .. } = &pair.method {
                biggest = biggest.max(buf.len());
            }
        }
        writer.join().expect("writer");
        drop(pair);
        assert_eq!(reader.join().expect("reader"), data);
        assert_eq!(biggest, COPY_CHUNK);
    }
}
