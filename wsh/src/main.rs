//! wsh: run a process inside a Warden container through its wshd.
#![deny(unsafe_code)]
// See `entry`: the C `main` below replaces the Rust runtime's start-up.
#![cfg_attr(not(test), no_main)]

mod args;
#[allow(unsafe_code)]
#[path = "../../wshd/src/entry.rs"]
mod entry;
mod pump;
mod session;
#[allow(unsafe_code)]
mod signals;
#[allow(unsafe_code)]
mod stdio;
#[allow(unsafe_code)]
mod tty;

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::sys::signal::Signal;

use args::Parsed;
use pump::{End, Pair};
use wire::client::{self as session_io, Remote};
use wire::exit::{exit_code, status_text, write_status, Protocol, EXIT_FAILURE};

/// Bad command line, as the C client.
const EXIT_USAGE: i32 = 1;

entry::c_main!(run);

fn stdio(fd: i32) -> BorrowedFd<'static> {
    stdio::borrow(fd)
}

fn is_open(fd: BorrowedFd<'_>) -> bool {
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).is_ok()
}

fn run() -> i32 {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let opts = match args::parse(&argv) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            eprint!("{}", args::USAGE);
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("wsh: {e}\nTry `wsh --help' for more information.");
            return EXIT_USAGE;
        }
    };

    let stdin = stdio(0);
    let tty = nix::unistd::isatty(stdin.as_raw_fd()).unwrap_or(false);
    let request = match session::build_request(&opts, tty) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wsh: {e}");
            return EXIT_FAILURE;
        }
    };
    // Without --v2, wsh still forwards signals when the daemon's features
    // file says it can carry the session over v2; the C wshd writes none,
    // so it only ever sees v1 requests.
    let offer = if opts.v2 {
        None
    } else {
        session_io::upgrade_offer(&opts.socket)
    };
    let may_forward = opts.v2 || offer.is_some();
    if may_forward {
        if let Err(e) = signals::block_forwarded() {
            eprintln!("wsh: sigprocmask: {e}");
            return EXIT_FAILURE;
        }
    }
    let session = match session_io::open(&opts.socket, &request, offer.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wsh: {e}");
            return EXIT_FAILURE;
        }
    };
    if may_forward && session.pidfd.is_none() {
        // Plain v1 after all (the socket was not the checked daemon's).
        if let Err(e) = signals::unblock_forwarded() {
            eprintln!("wsh: sigprocmask: {e}");
            return EXIT_FAILURE;
        }
    }

    let mut watched: Vec<Signal> = Vec::new();
    if tty {
        watched.push(Signal::SIGWINCH);
    }
    if session.pidfd.is_some() {
        watched.extend(signals::FORWARDED);
    }
    let signalfd = if watched.is_empty() {
        None
    } else {
        match signals::signalfd_for(&watched) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("wsh: signalfd: {e}");
                return EXIT_FAILURE;
            }
        }
    };

    let mut raw_mode = None;
    let mut pairs = Vec::new();
    let master_for_winch;
    match session.remote {
        Remote::Pipes {
            stdin: child_in,
            stdout: child_out,
            stderr: child_err,
        } => {
            // The pipes stay blocking: splices do not block on them, and
            // the pump makes them non-blocking if it ever falls back to
            // read/write.
            master_for_winch = None;
            pump::widen_pipe(child_out.as_fd());
            // A closed stdin is an empty one.
            if is_open(stdin) {
                pairs.push(Pair::new(End::Std(stdin), End::Owned(child_in), true));
            }
            pairs.push(Pair::new(End::Owned(child_out), End::Std(stdio(1)), false));
            pairs.push(Pair::new(End::Owned(child_err), End::Std(stdio(2)), false));
        }
        Remote::Tty { master } => {
            if let Err(e) = pump::set_nonblocking(master.as_fd()) {
                eprintln!("wsh: fcntl: {e}");
                return EXIT_FAILURE;
            }
            let reader = match master.try_clone() {
                Ok(fd) => fd,
                Err(e) => {
                    eprintln!("wsh: dup: {e}");
                    return EXIT_FAILURE;
                }
            };
            raw_mode = match tty::RawMode::enter(stdin) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("wsh: raw mode: {e}");
                    return EXIT_FAILURE;
                }
            };
            // A terminal without a size (some test harnesses) is not fatal.
            let _ = tty::copy_window_size(stdin, master.as_fd());
            master_for_winch = Some(reader.try_clone());
            pairs.push(Pair::new(End::Std(stdin), End::Owned(master), true));
            pairs.push(Pair::new(End::Owned(reader), End::Std(stdio(1)), false));
        }
    }
    let master_for_winch = master_for_winch.and_then(Result::ok);
    let pidfd = session.pidfd;
    let mut forwarded = false;
    let outcome = pump::run(pairs, session.exit, signalfd.as_ref(), |signo| {
        if signo == libc::SIGWINCH {
            if let Some(m) = &master_for_winch {
                let _ = tty::copy_window_size(stdin, m.as_fd());
            }
        } else if let Some(p) = &pidfd {
            match signals::send_via_pidfd(p.as_fd(), signo) {
                Ok(()) => forwarded = true,
                // The process is gone; its status is on the way.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => eprintln!("wsh: forward signal {signo}: {e}"),
            }
        }
    });
    drop(raw_mode);
    let exits_as = if !session.upgraded {
        Protocol::Spoken(session.version)
    } else {
        Protocol::Upgraded { forwarded }
    };
    match outcome {
        Ok(exit) => {
            if let Some(path) = &opts.status_file {
                if let Some(text) = status_text(exits_as, exit) {
                    if let Err(e) = write_status(path, &text) {
                        eprintln!("wsh: {}: {e}", path.display());
                    }
                }
            }
            exit_code(exits_as, exit)
        }
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            signals::die_of_sigpipe();
            EXIT_FAILURE
        }
        Err(e) => {
            eprintln!("wsh: {e}");
            EXIT_FAILURE
        }
    }
}
