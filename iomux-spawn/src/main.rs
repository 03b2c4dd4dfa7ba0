//! iomux-spawn SOCKET_DIR CMD [ARGS...]: run a job whose output any number
//! of iomux-link clients can follow, leave and rejoin (contract §2).
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod child;
mod client;
mod event_loop;
mod intake;
mod jobfiles;
mod listeners;
mod ring;
mod stdio;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.len() < 3 {
        let me = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_else(|| "iomux-spawn".into());
        eprintln!("Usage: {me} <socket directory> <cmd>");
        return ExitCode::from(1);
    }
    match run(PathBuf::from(&args[1]), &args[2..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iomux-spawn: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(dir: PathBuf, argv: &[OsString]) -> Result<()> {
    // Pipes and sockets must not land on 0, 1 or 2 if we were started with
    // one of them closed.
    stdio::ensure_open().context("reopening closed standard descriptors")?;
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{}: not a directory", dir.display()),
        Err(e) => bail!("{}: {e}", dir.display()),
    }
    jobfiles::clear(&dir)?;
    let listeners = listeners::bind_all(&dir)?;

    // Our own session, so signals to the server's process group miss us.
    // Failing (already a group leader) is harmless, as for the reference.
    let _ = nix::unistd::setsid();

    let buffer_max =
        event_loop::client_buffer_max(std::env::var(event_loop::CLIENT_BUFFER_ENV).ok().as_deref());
    // Our knob, not the job's business. Single-threaded here.
    std::env::remove_var(event_loop::CLIENT_BUFFER_ENV);

    let (child, pipes) = child::spawn_held(argv).context("starting the job")?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "child_pid={}", child.pid).and_then(|()| out.flush());
    }
    event_loop::EventLoop::new(dir, listeners, child, pipes, buffer_max)?.run()
}
