//! The job process: forked with stdout and stderr on pipes and stdin
//! inherited, killed if iomux-spawn dies (PDEATHSIG), and held on a barrier
//! pipe until a client is on each socket. Only 0, 1 and 2 reach it.
//!
//! Everything the child needs between fork and exec (argv, messages) is
//! prepared before the fork; the child path only makes raw syscalls.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::{pipe2, ForkResult, Pid};
use wire::iomux::WaitStatus;

/// Capacity asked for the job's output pipes (the unprivileged default
/// limit, /proc/sys/fs/pipe-max-size).
const PIPE_SIZE: libc::c_int = 1 << 20;

pub struct Child {
    pub pid: Pid,
    /// Readable once the child has exited.
    pub pidfd: OwnedFd,
    /// Write end of the barrier; writing a byte releases the child.
    barrier: Option<OwnedFd>,
}

#[derive(Debug)]
pub enum ChildError {
    NulInArgument(OsString),
    Syscall(&'static str, nix::Error),
}

impl std::fmt::Display for ChildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildError::NulInArgument(a) => write!(f, "argument {a:?} contains a NUL byte"),
            ChildError::Syscall(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for ChildError {}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> ChildError {
    move |e| ChildError::Syscall(what, e)
}

/// Fork the job, held until [`Child::release`]. Also returns the read ends
/// of its stdout and stderr pipes, non-blocking.
pub fn spawn_held(argv: &[OsString]) -> Result<(Child, [OwnedFd; 2]), ChildError> {
    let cargs = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| ChildError::NulInArgument(a.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let mut exec_msg = b"iomux-spawn: cannot execute ".to_vec();
    exec_msg.extend_from_slice(argv[0].as_bytes());
    exec_msg.extend_from_slice(b": errno ");

    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe2 (stdout)"))?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe2 (stderr)"))?;
    let (bar_r, bar_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe2 (barrier)"))?;
    // A roomier pipe lets a fast job write on while we serve clients, with
    // fewer wake-ups; the default size is fine if the kernel says no.
    for w in [&out_w, &err_w] {
        let _ = fcntl(w.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    let parent = nix::unistd::getpid();

    let plan = ChildPlan {
        argv: ptrs.as_ptr(),
        file: cargs[0].as_ptr(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        barrier: bar_r.as_raw_fd(),
        parent: parent.as_raw(),
        exec_msg: &exec_msg,
    };

    // SAFETY: iomux-spawn is single-threaded here (mio spawns no threads),
    // and the child path only makes async-signal-safe syscalls on data
    // prepared above, then execs or _exits.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        ForkResult::Child => plan.run(),
        ForkResult::Parent { child } => {
            drop((out_w, err_w, bar_r));
            let pidfd = pidfd_open(child).map_err(sys("pidfd_open"))?;
            for fd in [&out_r, &err_r] {
                fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
                    .map_err(sys("fcntl O_NONBLOCK"))?;
            }
            let child = Child {
                pid: child,
                pidfd,
                barrier: Some(bar_w),
            };
            Ok((child, [out_r, err_r]))
        }
    }
}

impl Child {
    /// Let the child exec. A child that already died is not an error: its
    /// exit shows up on the pidfd.
    pub fn release(&mut self) {
        if let Some(fd) = self.barrier.take() {
            let _ = nix::unistd::write(&fd, b"X");
        }
    }

    pub fn released(&self) -> bool {
        self.barrier.is_none()
    }

    /// Reap the child once its pidfd is readable; `None` if it has not
    /// exited after all.
    pub fn try_reap(&self) -> io::Result<Option<WaitStatus>> {
        let mut status: libc::c_int = 0;
        loop {
            // SAFETY: plain syscall writing into a local int.
            let r = unsafe { libc::waitpid(self.pid.as_raw(), &mut status, libc::WNOHANG) };
            if r == -1 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                return Ok(None);
            }
            return Ok(Some(WaitStatus(status as u32)));
        }
    }
}

pub(crate) fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // (always close-on-exec) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// What the child needs after the fork, all borrowed from the parent's
/// memory, which the child's copy still holds.
struct ChildPlan<'a> {
    argv: *const *const libc::c_char,
    file: *const libc::c_char,
    stdout: RawFd,
    stderr: RawFd,
    barrier: RawFd,
    parent: libc::pid_t,
    exec_msg: &'a [u8],
}

impl ChildPlan<'_> {
    /// Runs in the forked child; never returns.
    fn run(&self) -> ! {
        // SAFETY: only async-signal-safe syscalls on descriptors and memory
        // prepared before the fork; no allocation, no locks.
        unsafe {
            if libc::dup2(self.stdout, 1) == -1 || libc::dup2(self.stderr, 2) == -1 {
                libc::_exit(126);
            }
            // Die with iomux-spawn; if it is already gone, do not run at all.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::getppid() != self.parent {
                libc::_exit(1);
            }
            // iomux-spawn ignores SIGPIPE; the job must not inherit that.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());

            let mut byte = 0u8;
            loop {
                let r = libc::read(self.barrier, (&mut byte as *mut u8).cast(), 1);
                if r == 1 {
                    break;
                }
                if r == -1 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                // iomux-spawn went away before releasing us.
                libc::_exit(1);
            }
            // Everything above 2 is close-on-exec already; this also drops
            // whatever iomux-spawn itself inherited without the flag.
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);

            libc::execvp(self.file, self.argv);
            let errno = *libc::__errno_location();
            libc::write(2, self.exec_msg.as_ptr().cast(), self.exec_msg.len());
            let mut digits = [0u8; 12];
            let mut i = digits.len() - 1;
            digits[i] = b'\n';
            let mut v = errno.unsigned_abs();
            loop {
                i -= 1;
                digits[i] = b'0' + (v % 10) as u8;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            libc::write(2, digits[i..].as_ptr().cast(), digits.len() - i);
            libc::_exit(127);
        }
    }
}
