//! Starting a request's child: pipes or a pty, then the child and its way
//! to exec.
//!
//! Everything is prepared before the child exists ([`crate::plan`]); the
//! child only makes raw system calls on data that already exists, because
//! the daemon's allocator state is not the child's to use.
//!
//! A client that vanished mid-handshake must never get a command run on its
//! behalf, so a child only runs once its client holds the descriptors. Two
//! ways keep that:
//!
//! - [`spawn_now`], for every request that wants no pidfd: the daemon sends
//!   the client its ends first and starts the child only if that worked.
//!   The child shares the daemon's memory until its exec (`CLONE_VM |
//!   CLONE_VFORK`, as posix_spawn), so no page tables are copied and the
//!   daemon takes no copy-on-write faults afterwards.
//! - [`spawn_held`], when the client wants a pidfd, which cannot exist
//!   before its process: the child is forked first and waits on a "go" pipe
//!   until the daemon has sent the descriptors; closing the pipe unwritten
//!   makes it exit 255 unstarted.

use std::ffi::{c_char, c_void, CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::pipe2;
use thiserror::Error;

use crate::confine;
use crate::plan::Plan;

#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("pipe: {0}")]
    Pipe(Errno),
    #[error("open /dev/ptmx: {0}")]
    Ptmx(Errno),
    #[error("unlock pty: {0}")]
    Unlock(Errno),
    #[error("open pty peer: {0}")]
    Peer(Errno),
    #[error("fork: {0}")]
    Fork(Errno),
    #[error("clone: {0}")]
    Clone(Errno),
    #[error("mmap of the child stack: {0}")]
    Stack(Errno),
    #[error("pidfd_open({0}): {1}")]
    Pidfd(i32, Errno),
}

/// What the child does: run the plan, or print why not and exit 255.
pub enum Action {
    Run(Plan),
    Refuse(Vec<u8>),
}

/// A request's descriptors before its child exists.
pub struct Plumbing {
    /// For the client, in the contract's order ([`spawn_held`] appends the
    /// pidfd).
    pub client_fds: Vec<OwnedFd>,
    /// The child's stdio: three pipe ends, or the pty's slave.
    child_fds: Vec<OwnedFd>,
    /// The daemon's end of the exit pipe.
    pub exit_w: OwnedFd,
    tty: bool,
}

/// A forked child, held at its "go" pipe.
pub struct Held {
    pub pid: i32,
    /// One byte lets the child go on; closing it unwritten makes it exit 255.
    pub go: OwnedFd,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    pipe2(OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)
}

/// A pty pair: the master for the client, the slave for the child. The slave
/// is opened from the master (TIOCGPTPEER), so no path lookup in /dev/pts,
/// and with O_NOCTTY so it never becomes the daemon's terminal.
fn open_pty() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let master = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(SpawnError::Ptmx)?;
    // SAFETY: adopting the descriptor open() just returned.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which is valid.
    let rv = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    if rv < 0 {
        return Err(SpawnError::Unlock(Errno::last()));
    }
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new fd.
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if slave < 0 {
        return Err(SpawnError::Peer(Errno::last()));
    }
    // SAFETY: adopting the descriptor the ioctl just returned.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

fn pidfd_open(pid: i32) -> Result<OwnedFd, SpawnError> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // (CLOEXEC by definition).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(SpawnError::Pidfd(pid, Errno::last()));
    }
    // SAFETY: adopting the descriptor the kernel just returned.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The pipes (or the pty) and the exit pipe of a request.
pub fn plumbing(tty: bool) -> Result<Plumbing, SpawnError> {
    let (exit_r, exit_w) = pipe()?;
    let (client_fds, child_fds) = if tty {
        let (master, slave) = open_pty()?;
        (vec![master, exit_r], vec![slave])
    } else {
        let (in_r, in_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        (vec![in_w, out_r, err_r, exit_r], vec![in_r, out_w, err_w])
    };
    Ok(Plumbing {
        client_fds,
        child_fds,
        exit_w,
        tty,
    })
}

/// Raw pointer views of the plan, built before the child exists.
struct Prepared<'a> {
    /// The go pipe of a held child: its read end, and the daemon's write
    /// end, which the fork duplicated into the child: the child closes it
    /// first, or it would never see EOF.
    go: Option<(RawFd, RawFd)>,
    stdio: [RawFd; 3],
    tty: bool,
    refuse: Option<&'a [u8]>,
    plan: Option<&'a Plan>,
    groups: Vec<libc::gid_t>,
    argvp: Vec<*const c_char>,
    /// `/bin/sh CANDIDATE ARGS...` for scripts without a #! line (as
    /// execvp does); slot 1 is filled in by the child.
    sh_argvp: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    confine: Option<JobConfinement>,
}

/// What a confined job's child applies before exec (see [`crate::confine`]):
/// the seccomp filter it already has from pid 1.
struct JobConfinement {
    caps: u64,
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

const SH: &CStr = c"/bin/sh";

fn prepare<'a>(
    action: &'a Action,
    pipes: &Plumbing,
    go: Option<(RawFd, RawFd)>,
    confined: bool,
) -> Prepared<'a> {
    let fd = |i: usize| pipes.child_fds[i].as_raw_fd();
    let stdio = if pipes.tty {
        [fd(0); 3]
    } else {
        [fd(0), fd(1), fd(2)]
    };
    let (refuse, plan) = match action {
        Action::Run(p) => (None, Some(p)),
        Action::Refuse(msg) => (Some(msg.as_slice()), None),
    };
    let mut prep = Prepared {
        go,
        stdio,
        tty: pipes.tty,
        refuse,
        plan,
        groups: plan.map(|p| p.groups.clone()).unwrap_or_default(),
        argvp: plan.map(|p| null_terminated(&p.argv)).unwrap_or_default(),
        sh_argvp: Vec::new(),
        envp: plan.map(|p| null_terminated(&p.env)).unwrap_or_default(),
        confine: plan.filter(|_| confined).map(|p| JobConfinement {
            caps: confine::job_caps(p.uid),
        }),
    };
    if let Some(p) = plan {
        prep.sh_argvp.push(SH.as_ptr());
        prep.sh_argvp.push(std::ptr::null());
        prep.sh_argvp
            .extend(p.argv.iter().skip(1).map(|a| a.as_ptr()));
        prep.sh_argvp.push(std::ptr::null());
    }
    prep
}

/// Fork the child of `action`, held until `go` is written; its pidfd goes
/// to the end of `pipes.client_fds`. The child's stdio ends are closed here
/// once it has them.
pub fn spawn_held(
    action: &Action,
    pipes: &mut Plumbing,
    confined: bool,
) -> Result<Held, SpawnError> {
    let (go_r, go_w) = pipe()?;
    let mut prep = prepare(
        action,
        pipes,
        Some((go_r.as_raw_fd(), go_w.as_raw_fd())),
        confined,
    );
    // SAFETY: the daemon is single-threaded, and the child only runs
    // `child_main`, which makes raw system calls on `prep` and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SpawnError::Fork(Errno::last()));
    }
    if pid == 0 {
        child_main(&mut prep);
    }
    drop(std::mem::take(&mut pipes.child_fds));
    drop(go_r);
    // Dropping `go_w` on an error makes the child exit 255 unstarted; the
    // serve loop reaps it like any other.
    pipes.client_fds.push(pidfd_open(pid)?);
    Ok(Held { pid, go: go_w })
}

/// Where a [`spawn_now`] child runs until its exec: its own stack, mapped
/// once and reused (`CLONE_VFORK` returns only once the previous child has
/// left the daemon's memory), below a guard page so that an overflow faults
/// instead of writing into the daemon's heap.
pub struct ChildStack {
    base: *mut c_void,
    len: usize,
}

const CHILD_STACK: usize = 64 * 1024;
const GUARD: usize = 4096;

impl ChildStack {
    pub fn new() -> Result<ChildStack, SpawnError> {
        let len = CHILD_STACK + GUARD;
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(SpawnError::Stack(Errno::last()));
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping just made, which nothing
        // uses yet.
        if unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } != 0 {
            return Err(SpawnError::Stack(Errno::last()));
        }
        Ok(stack)
    }

    /// The initial stack pointer (stacks grow down on x86_64 and aarch64).
    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of the mapping, 16-byte aligned as the
        // mapping is page-aligned and its length a multiple of the page.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping `new` made; no child runs on
        // it any more (each `spawn_now` returned after its child left).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

extern "C" fn child_entry(arg: *mut c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Prepared` that `spawn_now` passed to clone and
    // keeps alive (it is blocked in clone until this child execs or exits).
    let prep = unsafe { &mut *arg.cast::<Prepared>() };
    child_main(prep)
}

/// Start the child of `action` right away, on `stack`; the client must
/// already hold its descriptors. Returns once the child has exec'd (or
/// failed and exited); the child's stdio ends are closed here.
pub fn spawn_now(
    action: &Action,
    pipes: &mut Plumbing,
    stack: &mut ChildStack,
    confined: bool,
) -> Result<i32, SpawnError> {
    let mut prep = prepare(action, pipes, None, confined);
    // SAFETY: the daemon is single-threaded and blocked in clone until the
    // child execs or exits (CLONE_VFORK), so the shared memory has one user
    // at a time. The child runs `child_main` on `stack`, which no one else
    // uses, makes raw system calls on `prep` (alive for the whole call) and
    // never returns; its libc calls change only its own kernel state (and
    // errno, which the daemon does not read after a successful clone).
    let pid = unsafe {
        libc::clone(
            child_entry,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut prep as *mut Prepared).cast(),
        )
    };
    drop(std::mem::take(&mut pipes.child_fds));
    if pid < 0 {
        return Err(SpawnError::Clone(Errno::last()));
    }
    Ok(pid)
}

// ---- the child: raw system calls only from here on ----

fn say(parts: &[&[u8]]) {
    for p in parts {
        // SAFETY: writing a valid buffer to fd 2; a failure is not reportable.
        unsafe { libc::write(2, p.as_ptr().cast(), p.len()) };
    }
}

fn die(parts: &[&[u8]]) -> ! {
    say(parts);
    // SAFETY: _exit ends the child without running the daemon's atexit state.
    unsafe { libc::_exit(255) }
}

/// `n` in decimal, in `buf`, without allocating.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

fn die_errno(what: &[u8], err: Errno) -> ! {
    die(&[b"wshd: ", what, b": ", err.desc().as_bytes(), b"\n"])
}

fn child_main(p: &mut Prepared) -> ! {
    // SAFETY (whole function): only async-signal-safe system calls on
    // memory prepared before the child existed; every path ends in execve
    // or _exit.
    unsafe {
        if let Some((go_r, go_w)) = p.go {
            // The daemon's copy must be the only write end, so that dropping
            // it unwritten (the client vanished) ends this child with EOF
            // instead of leaving it blocked forever on its own descriptor.
            libc::close(go_w);
            let mut go = 0u8;
            loop {
                let n = libc::read(go_r, (&mut go as *mut u8).cast(), 1);
                if n == 1 {
                    break;
                }
                if n < 0 && Errno::last() == Errno::EINTR {
                    continue;
                }
                libc::_exit(255);
            }
        }

        // Default dispositions and an empty mask: an ignore and a blocked
        // signal both survive exec. SIGPIPE is the one signal the daemon
        // ignores (entry::init, as the Rust runtime would; start-up cleared
        // any inherited ignore), and it blocks SIGCHLD for its signalfd.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());

        if libc::setsid() < 0 {
            libc::_exit(255);
        }
        if p.tty && libc::ioctl(p.stdio[0], libc::TIOCSCTTY, 0) < 0 {
            libc::_exit(255);
        }
        for (target, &src) in p.stdio.iter().enumerate() {
            // The sources are all above 2 (the daemon keeps 0-2 open on
            // /dev/null), so no dup2 clobbers a later source.
            if libc::dup2(src, target as libc::c_int) < 0 {
                libc::_exit(255);
            }
        }
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..65536 {
                libc::close(fd);
            }
        }

        if let Some(msg) = p.refuse {
            die(&[msg]);
        }
        let Some(plan) = p.plan else { libc::_exit(255) };
        for &(id, cur, max) in &plan.rlimits {
            let lim = libc::rlimit {
                rlim_cur: cur,
                rlim_max: max,
            };
            if libc::setrlimit(id as libc::__rlimit_resource_t, &lim) < 0 {
                let err = Errno::last();
                let mut buf = [0u8; 20];
                die(&[
                    b"wshd: setrlimit(",
                    decimal(id as u64, &mut buf),
                    b"): ",
                    err.desc().as_bytes(),
                    b"\n",
                ]);
            }
        }
        // The bounding set first: cutting it needs CAP_SETPCAP, which a vcap
        // job loses with its uid.
        if let Some(c) = &p.confine {
            if let Err((what, err)) = confine::drop_bounding(c.caps) {
                die_errno(what, err);
            }
        }
        // Raw system calls: glibc's wrappers would coordinate the credentials
        // of every thread of the process, which a child sharing the daemon's
        // memory must leave alone; this child is a single thread anyway.
        if libc::syscall(libc::SYS_setgroups, p.groups.len(), p.groups.as_ptr()) < 0 {
            die_errno(b"setgroups", Errno::last());
        }
        if libc::syscall(libc::SYS_setgid, plan.gid) < 0 {
            die_errno(b"setgid", Errno::last());
        }
        if libc::syscall(libc::SYS_setuid, plan.uid) < 0 {
            die_errno(b"setuid", Errno::last());
        }
        if let Some(c) = &p.confine {
            if let Err((what, err)) = confine::set_caps(c.caps) {
                die_errno(what, err);
            }
        }
        if libc::chdir(plan.cwd.as_ptr()) < 0 {
            let err = Errno::last();
            if plan.cwd_required || libc::chdir(c"/".as_ptr()) < 0 {
                die_errno(plan.cwd.to_bytes(), err);
            }
        }
        // Last before exec; the seccomp filter came with the clone.
        if p.confine.is_some() {
            if let Err((what, err)) = confine::no_new_privs() {
                die_errno(what, err);
            }
        }

        let mut err = Errno::ENOENT;
        let mut eacces = false;
        for cand in &plan.candidates {
            libc::execve(cand.as_ptr(), p.argvp.as_ptr(), p.envp.as_ptr());
            err = Errno::last();
            if err == Errno::ENOEXEC {
                p.sh_argvp[1] = cand.as_ptr();
                libc::execve(SH.as_ptr(), p.sh_argvp.as_ptr(), p.envp.as_ptr());
                err = Errno::last();
            }
            match err {
                Errno::EACCES => eacces = true,
                Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::ENAMETOOLONG => {}
                _ => break,
            }
        }
        // Like execvp: a search that only found unusable files says so.
        let searched = matches!(
            err,
            Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::ENAMETOOLONG
        );
        if eacces && searched {
            err = Errno::EACCES;
        }
        let name = plan.argv.first().map(|a| a.to_bytes()).unwrap_or(b"");
        die_errno(name, err)
    }
}

/// Reap one exited child of any kind without blocking: `(pid, raw wait
/// status)`, or None when no child is waiting to be reaped.
pub fn reap_one() -> Option<(i32, i32)> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes the status through a valid pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            return Some((pid, status));
        }
        if pid < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        return None;
    }
}

/// The word the exit pipe carries for a raw wait `status`: v1 sends the exit
/// code of a normal exit and nothing for a signal; v2 always sends the raw
/// status.
pub fn exit_word(version: i32, status: i32) -> Option<i32> {
    if version >= 2 {
        Some(status)
    } else if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        let mut b = [0u8; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(7, &mut b), b"7");
        assert_eq!(decimal(u64::MAX, &mut b), b"18446744073709551615");
    }

    /// Regression (torture_wshd): a child whose client vanished before the
    /// response was sent waited forever on the go pipe, because it held a
    /// copy of the pipe's write end itself, and kept every descriptor the
    /// daemon had at fork time (other clients' sockets and pipes) open.
    #[test]
    fn dropping_go_unwritten_ends_the_child() {
        for tty in [false, true] {
            let action = Action::Refuse(b"never shown\n".to_vec());
            let mut pipes = match plumbing(tty) {
                Ok(p) => p,
                // No /dev/ptmx to use here (a sandbox): pipes still count.
                Err(SpawnError::Ptmx(_)) if tty => continue,
                Err(e) => panic!("plumbing: {e}"),
            };
            let held = spawn_held(&action, &mut pipes, false).expect("spawn_held");
            let pid = held.pid;
            drop(held);
            drop(pipes);
            let status = wait_for(pid, "still waits on its go pipe");
            assert!(libc::WIFEXITED(status), "status {status:#x}");
            assert_eq!(libc::WEXITSTATUS(status), 255);
        }
    }

    /// Reap `pid`, failing (after killing it) if it does not end: a hang
    /// guard, not a speed assertion.
    fn wait_for(pid: i32, stuck: &str) -> libc::c_int {
        let mut status: libc::c_int = 0;
        for _ in 0..2000 {
            // SAFETY: waitpid on our own child with a valid pointer.
            let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if reaped == pid {
                return status;
            }
            assert_eq!(reaped, 0, "waitpid({pid}): {}", Errno::last());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // SAFETY: kill and reap our own stuck child before failing.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, &mut status, 0);
        }
        panic!("child {pid} {stuck}");
    }

    /// The unheld child runs at once on the shared stack (twice, to use the
    /// stack again), and its stdio is the pipes the client got.
    #[test]
    fn spawn_now_runs_on_the_pipes() {
        use std::io::Read;
        let mut stack = ChildStack::new().expect("child stack");
        for round in 0..2 {
            let msg = format!("refused {round}\n");
            let action = Action::Refuse(msg.clone().into_bytes());
            let mut pipes = plumbing(false).expect("plumbing");
            let mut client = std::mem::take(&mut pipes.client_fds).into_iter();
            let pid = spawn_now(&action, &mut pipes, &mut stack, false).expect("spawn_now");
            drop(pipes);
            let (_stdin, _stdout, stderr) = (client.next(), client.next(), client.next());
            let mut said = String::new();
            std::fs::File::from(stderr.expect("stderr"))
                .read_to_string(&mut said)
                .expect("read the child's stderr");
            assert_eq!(said, msg);
            let status = wait_for(pid, "did not exit");
            assert!(libc::WIFEXITED(status), "status {status:#x}");
            assert_eq!(libc::WEXITSTATUS(status), 255);
        }
    }

    #[test]
    fn exit_words() {
        assert_eq!(exit_word(1, 42 << 8), Some(42));
        assert_eq!(exit_word(1, 9), None);
        assert_eq!(exit_word(2, 42 << 8), Some(42 << 8));
        assert_eq!(exit_word(2, 9), Some(9));
    }
}
