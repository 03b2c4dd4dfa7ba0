//! iomux-spawn [--wshd SOCKET ...] SOCKET_DIR CMD [ARGS...]: run a job
//! whose output any number of iomux-link clients can follow, leave and
//! rejoin (contract §2); with `--wshd`, the job is asked of a container's
//! wshd directly ([`remote`]); `--zygote` serves wardend, forking such
//! processes instead of their being exec'd ([`zygote`]).
#![deny(unsafe_code)]
// See `entry`: the C `main` below replaces the Rust runtime's start-up,
// which is on the path of every job's start.
#![cfg_attr(not(test), no_main)]

mod args;
#[allow(unsafe_code)]
mod child;
mod client;
#[allow(unsafe_code)]
#[path = "../../wshd/src/entry.rs"]
mod entry;
mod event_loop;
mod intake;
mod jobfiles;
mod listeners;
mod remote;
mod ring;
mod stdio;
#[allow(unsafe_code)]
mod zygote;

use std::ffi::OsString;
use std::io::Write;

use anyhow::{bail, Context, Result};
use args::{Args, Runner};
use event_loop::{Job, WshdJob};

entry::c_main!(cli);

fn cli() -> libc::c_int {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    if argv.first().is_some_and(|a| a == args::ZYGOTE) && argv.len() <= 2 {
        return zygote::serve();
    }
    main_with(&argv)
}

/// What `iomux-spawn ARGV...` does, for an exec'd process and a holder the
/// zygote forked alike.
fn main_with(argv: &[OsString]) -> libc::c_int {
    let args = match args::parse(argv) {
        Ok(args) => args,
        Err(why) => {
            eprint!("iomux-spawn: {why}\n{}", args::USAGE);
            return 1;
        }
    };
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("iomux-spawn: {e:#}");
            1
        }
    }
}

fn run(args: Args) -> Result<()> {
    let dir = args.dir;
    // Pipes and sockets must not land on 0, 1 or 2 if we were started with
    // one of them closed.
    stdio::ensure_open().context("reopening closed standard descriptors")?;
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{}: not a directory", dir.display()),
        Err(e) => bail!("{}: {e}", dir.display()),
    }
    let pending = match args.runner {
        Runner::Local => None,
        Runner::Wshd {
            socket,
            user,
            status_file,
        } => Some(
            remote::Pending::new(socket, &args.argv, user, status_file)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
    };
    jobfiles::clear(&dir)?;
    let listeners = listeners::bind_all(&dir)?;

    // Our own session, so signals to the server's process group miss us.
    // Failing (already a group leader) is harmless, as for the reference.
    let _ = nix::unistd::setsid();

    let buffer_max =
        event_loop::client_buffer_max(std::env::var(event_loop::CLIENT_BUFFER_ENV).ok().as_deref());
    // Our knob, not the job's business. Single-threaded here.
    std::env::remove_var(event_loop::CLIENT_BUFFER_ENV);

    // With --wshd, the process holding the job's pipes is this one.
    let (job, pipes, pid) = match pending {
        None => {
            let (child, pipes) = child::spawn_held(&args.argv).context("starting the job")?;
            let pid = child.pid.as_raw();
            (Job::Local(child), Some(pipes), pid)
        }
        Some(pending) => (
            Job::Wshd(WshdJob::Pending(pending)),
            None,
            std::process::id() as i32,
        ),
    };
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "child_pid={pid}").and_then(|()| out.flush());
    }
    event_loop::EventLoop::new(dir, listeners, job, pipes, buffer_max)?.run()
}
