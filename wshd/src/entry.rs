//! The process entry point of wshd, wsh and iomux-spawn, without the Rust
//! runtime's start-up (wsh and iomux-spawn include this file from here).
//!
//! `lang_start` installs a stack-overflow handler whose stack lookup
//! (pthread_getattr_np) links and runs glibc's /proc/self/maps parser
//! (sscanf, strtod and their tables): about 100 KiB more binary, resident in
//! pid 1 of every container, and a file read and a dozen system calls at
//! every start, on the path every command through a container waits for.
//! What it does that they rely on is done here instead. `std::env::args`
//! keeps working: glibc hands argv to std's own init hook.

/// The parts of std's start-up worth keeping: descriptors 0-2 always open
/// (so a socket or pipe opened later never lands on one and gets written
/// to as stdout), and SIGPIPE ignored, so that writing to a pipe whose
/// reader went away fails with EPIPE instead of ending the process.
pub fn init() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll reads and writes exactly `fds.len()` entries of a live
    // array; a zero timeout never blocks.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
    if polled > 0 {
        for _closed in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
            // SAFETY: open of a constant path. The lowest free numbers are
            // the closed ones among 0-2, so each open fills the next. On
            // failure there is nothing better to do than go on, as std.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
    // SAFETY: installing SIG_IGN runs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Runs the program: the start-up above, `run`, then the flush of buffered
/// stdout that the runtime's clean-up would have done.
pub fn start(run: fn() -> libc::c_int) -> libc::c_int {
    use std::io::Write;
    init();
    let code = run();
    let _ = std::io::stdout().flush();
    code
}

/// The program's entry points around `$run` (a `fn() -> libc::c_int`): the
/// C `main` glibc's start-up calls, and for a unit-test build the Rust
/// `main` its harness replaces. The crate sets `no_main` outside tests.
macro_rules! c_main {
    ($run:path) => {
        /// The C entry point, called by glibc's start-up (see [`entry`]).
        // no_mangle is what makes this the program's `main`.
        #[allow(unsafe_code)]
        #[cfg(not(test))]
        #[no_mangle]
        pub extern "C" fn main(
            _argc: libc::c_int,
            _argv: *const *const libc::c_char,
        ) -> libc::c_int {
            entry::start($run)
        }

        /// A unit-test build keeps the Rust entry point.
        #[cfg(test)]
        fn main() {
            std::process::exit(entry::start($run));
        }
    };
}
pub(crate) use c_main;
