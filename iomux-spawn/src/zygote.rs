//! `iomux-spawn --zygote [PADDING]`: a pre-started iomux-spawn that forks
//! job holders for wardend (bytes in [`wire::zygote`]). A fork of this small
//! single-threaded process skips what an exec costs every job: the exec
//! itself, the page faults of a fresh image, and glibc's start-up (its
//! CPUID probes trap in a VM: about 1.1 ms a process here). The forked
//! holder then runs exactly what `iomux-spawn ARGS...` runs.
//!
//! Standard input is the request socket; the zygote ends when it reads end
//! of file there (wardend gone), leaving the holders it forked running, as
//! an exec'd iomux-spawn outlives wardend. It reaps its holders when they
//! exit; wardend watches each through the pidfd the reply carries.
//!
//! A holder must be findable as the exec'd one is, by its command line
//! (the job directory on it), so the zygote is started with a padding
//! argument whose room the holder writes its own arguments over.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use wire::fdpass::{recv_with_fds, send_with_fds, FdPassError};
use wire::zygote::{self, Reply, Request};

/// Serves until the request socket (standard input) closes.
pub fn serve() -> libc::c_int {
    match Zygote::start().and_then(|z| z.serve()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("iomux-spawn --zygote: {e}");
            1
        }
    }
}

struct Zygote {
    socket: OwnedFd,
    exits: SignalFd,
    title: Title,
    /// Our own command line, shown between forks.
    own: Vec<OsString>,
}

impl Zygote {
    fn start() -> io::Result<Zygote> {
        fn context(what: &'static str) -> impl Fn(Errno) -> io::Error {
            move |e| io::Error::other(format!("{what}: {e}"))
        }
        // Nothing our starter left open is kept for the life of the
        // zygote (holding a pipe's end there would keep its reader from
        // seeing end of file).
        close_from(3);
        // The socket moves off 0, which becomes /dev/null: a holder gets
        // the three descriptors of its request, nothing of ours.
        let socket = nix::fcntl::fcntl(0, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
            .map_err(context("duplicate the request socket"))?;
        // SAFETY: F_DUPFD_CLOEXEC just made this descriptor; nothing else
        // owns it.
        #[allow(unsafe_code)]
        let socket = unsafe { OwnedFd::from_raw_fd(socket) };
        let null = File::open("/dev/null")?;
        nix::unistd::dup2(null.as_raw_fd(), 0).map_err(context("dup2 /dev/null to 0"))?;
        drop(null);
        // Out of wardend's session, as every holder will be.
        let _ = nix::unistd::setsid();
        let mut children = SigSet::empty();
        children.add(Signal::SIGCHLD);
        children.thread_block().map_err(context("block SIGCHLD"))?;
        let exits = SignalFd::with_flags(&children, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(context("signalfd"))?;
        let mut title = Title::of_this_process()?;
        let own: Vec<OsString> = std::env::args_os().take(2).collect();
        title.write(&own);
        send_with_fds(
            socket.as_fd(),
            &zygote::encode_hello(title.room() as u32),
            &[],
        )
        .map_err(|e| {
            io::Error::other(format!(
                "stdin must be the server's SOCK_SEQPACKET socket: {e}"
            ))
        })?;
        Ok(Zygote {
            socket,
            exits,
            title,
            own,
        })
    }

    fn serve(mut self) -> io::Result<()> {
        let mut buf = vec![0u8; zygote::MAX_REQUEST + 1];
        loop {
            let mut fds = [
                PollFd::new(self.socket.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.exits.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::other(format!("poll: {e}"))),
                Ok(_) => {}
            }
            let request_ready = fds[0].any().unwrap_or(false);
            if fds[1].any().unwrap_or(false) {
                while let Ok(Some(_)) = self.exits.read_signal() {}
            }
            reap();
            if !request_ready {
                continue;
            }
            let reply = match recv_with_fds(self.socket.as_fd(), &mut buf) {
                Ok((0, _)) => return Ok(()),
                Ok((n, stdio)) => self.answer(&buf[..n], stdio),
                // Those that did arrive are closed already.
                Err(FdPassError::Truncated) => Err(FdPassError::Truncated.to_string()),
                Err(e) => return Err(io::Error::other(e)),
            };
            let (bytes, pidfd) = match reply {
                Ok((pid, pidfd)) => (Reply::Started { pid }.encode(), Some(pidfd)),
                Err(why) => (Reply::Refused(why).encode(), None),
            };
            let fds: Vec<_> = pidfd.iter().map(|fd| fd.as_fd()).collect();
            if let Err(e) = send_with_fds(self.socket.as_fd(), &bytes, &fds) {
                // wardend went away mid-request: its holder runs on, as
                // one it had exec'd would.
                return Err(io::Error::other(e));
            }
        }
    }

    /// Forks the holder a request asks for: its pid and a pidfd of it, or
    /// why not.
    fn answer(&mut self, bytes: &[u8], stdio: Vec<OwnedFd>) -> Result<(i32, OwnedFd), String> {
        let request = Request::decode(bytes).map_err(|e| e.to_string())?;
        if stdio.len() != zygote::REQUEST_FDS {
            return Err(format!(
                "a request carries {} descriptors, not {}",
                stdio.len(),
                zygote::REQUEST_FDS
            ));
        }
        if zygote::command_line_len(&request.argv) > self.title.room() {
            return Err(format!(
                "a command line of {} bytes is over the {} this zygote has room for",
                zygote::command_line_len(&request.argv),
                self.title.room()
            ));
        }
        // The holder is born with its command line: written here before
        // the fork, not by the child after it, so it is in place before the
        // server hears of the pid (which it may look up by its job
        // directory at once), and ours again right after.
        self.title.write(&request.argv);
        // SAFETY: this process is single-threaded (no thread is ever
        // started here), so the child inherits no lock held by another
        // thread and may run any code; it never returns into this loop.
        #[allow(unsafe_code)]
        let forked = unsafe { fork() };
        if !matches!(forked, Ok(ForkResult::Child)) {
            self.title.write(&self.own);
        }
        match forked {
            Err(e) => Err(format!("fork: {e}")),
            Ok(ForkResult::Child) => become_holder(request, stdio),
            Ok(ForkResult::Parent { child }) => {
                // The holder cannot be reaped before this: that is done
                // only by this thread, later.
                let pidfd = crate::child::pidfd_open(child)
                    .map_err(|e| format!("pidfd_open {child}: {e}"))?;
                Ok((child.as_raw(), pidfd))
            }
        }
    }
}

/// Waits for every holder that has exited.
fn reap() {
    while let Ok(status) = waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// In the forked child: becomes `iomux-spawn ARGS...` with the request's
/// stdio and environment, as an exec would have started it.
fn become_holder(request: Request, stdio: Vec<OwnedFd>) -> ! {
    // The received descriptors are all above 2 (0-2 are open here), so no
    // dup2 overwrites one still to be moved.
    for (target, fd) in stdio.iter().enumerate() {
        if nix::unistd::dup2(fd.as_raw_fd(), target as RawFd).is_err() {
            std::process::exit(1);
        }
    }
    // Closed with everything else of the zygote's: its own descriptors
    // live only in the frames of `serve`, to which this child never
    // returns, so no Rust value uses one again.
    std::mem::forget(stdio);
    close_from(3);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for (name, value) in &request.env {
        // Single-threaded: nothing reads the environment concurrently.
        std::env::set_var(name, value);
    }
    let code = crate::main_with(&request.argv[1..]);
    let _ = io::stdout().flush();
    std::process::exit(code)
}

/// Closes every descriptor from `first` up. Callers own none of them any
/// more (or never return to where one is owned).
fn close_from(first: u32) {
    // SAFETY: close_range takes integers and touches no memory.
    #[allow(unsafe_code)]
    let closed = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if closed == 0 {
        return;
    }
    // Before Linux 5.9: each open one, as /proc lists them (collected
    // first: the listing's own descriptor is among them).
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&fd: &RawFd| fd >= first as RawFd)
                .collect()
        })
        .unwrap_or_default();
    for fd in open {
        let _ = nix::unistd::close(fd);
    }
}

/// This process's argument strings, the memory /proc/PID/cmdline shows.
struct Title {
    start: usize,
    len: usize,
}

impl Title {
    fn of_this_process() -> io::Result<Title> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        // Fields after the parenthesised name start at field 3; arg_start
        // and arg_end are fields 48 and 49 (proc(5)).
        let rest = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        let field = |n: usize| -> io::Result<usize> {
            rest.split_whitespace()
                .nth(n - 3)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| io::Error::other(format!("/proc/self/stat has no field {n}")))
        };
        let (start, end) = (field(48)?, field(49)?);
        if end <= start {
            return Err(io::Error::other("/proc/self/stat: an empty argument area"));
        }
        Ok(Title {
            start,
            len: end - start,
        })
    }

    fn room(&self) -> usize {
        self.len
    }

    /// Writes `argv` as the command line, the rest of the room zeroed; an
    /// `argv` that does not fit is cut (callers check the room first).
    fn write(&mut self, argv: &[OsString]) {
        // SAFETY: [start, start + len) is where the kernel put this
        // process's argument strings at exec (proc(5)): mapped, writable
        // and ours for the life of the process. No Rust reference into it
        // exists: std keeps only argv's C pointers, and this program reads
        // its arguments once, at start, before any write.
        #[allow(unsafe_code)]
        let area = unsafe { std::slice::from_raw_parts_mut(self.start as *mut u8, self.len) };
        area.fill(0);
        let mut at = 0;
        for arg in argv {
            let bytes = arg.as_encoded_bytes();
            // Keep the last byte a NUL: the kernel then shows exactly this
            // area, not a setproctitle-style overflow into the environment.
            let n = bytes.len().min(self.len.saturating_sub(at + 1));
            area[at..at + n].copy_from_slice(&bytes[..n]);
            at += n + 1;
            if at >= self.len {
                break;
            }
        }
    }
}
