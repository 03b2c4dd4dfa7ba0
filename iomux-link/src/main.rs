//! iomux-link [-w CURSORS_FILE] SOCKET_DIR: follow a job started by
//! iomux-spawn, write its stdout and stderr to ours from the saved cursors
//! on, and exit with its exit code (contract §2). When the job has already
//! ended and its sockets are gone, its status and tails come from the job
//! files iomux-spawn left in SOCKET_DIR.
#![deny(unsafe_code)]

mod args;
mod cursor;
mod files;
mod live;
mod output;
mod relay;
#[allow(unsafe_code)]
mod signals;

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::ExitCode;

use wire::iomux::{Cursors, Stream, WaitStatus, LINK_FAILURE};

use cursor::{Gap, StreamCursor};

/// Why the link stops before the job's status.
pub enum Stop {
    /// SIGTERM or SIGINT: save the cursors, exit 0.
    Terminated,
    /// Nothing was read; the cursors file stays as it is.
    Setup(String),
    Failed(String),
    FellBehind(Stream, Gap),
}

fn main() -> ExitCode {
    ExitCode::from(run())
}

fn run() -> u8 {
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("iomux-link: {msg}; {}", args::USAGE);
            return LINK_FAILURE;
        }
    };
    let (saved, strict) = match &args.cursors {
        None => (Cursors::default(), false),
        Some(path) => match Cursors::read(path) {
            Ok(c) => (c.unwrap_or_default(), true),
            Err(e) => {
                eprintln!("iomux-link: failed reading saved positions: {e}");
                return LINK_FAILURE;
            }
        },
    };
    let wake = match signals::install() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("iomux-link: installing signal handlers: {e}");
            return LINK_FAILURE;
        }
    };
    let mut cursors = [
        StreamCursor::new(saved.stdout, strict),
        StreamCursor::new(saved.stderr, strict),
    ];
    let result = follow(&args.dir, &mut cursors, &wake);
    let code = match &result {
        Ok(status) => status.link_exit_code(),
        Err(Stop::Terminated) => 0,
        Err(Stop::Setup(msg) | Stop::Failed(msg)) => {
            eprintln!("iomux-link: {msg}");
            LINK_FAILURE
        }
        Err(Stop::FellBehind(stream, gap)) => {
            eprintln!(
                "iomux-link: {} fell behind: {} bytes from position {} were overwritten before they were read (oldest available is {})",
                stream.name(),
                gap.lost(),
                gap.next,
                gap.available
            );
            LINK_FAILURE
        }
    };
    if let (Some(path), false) = (&args.cursors, matches!(result, Err(Stop::Setup(_)))) {
        let now = Cursors {
            stdout: cursors[0].next(),
            stderr: cursors[1].next(),
        };
        if let Err(e) = now.write(path) {
            eprintln!("iomux-link: saving positions: {e}");
            return LINK_FAILURE;
        }
    }
    code
}

fn follow(dir: &Path, cursors: &mut [StreamCursor; 2], wake: &OwnedFd) -> Result<WaitStatus, Stop> {
    match live::connect(dir) {
        live::Connect::Live(link) => {
            let status = link.run(dir, cursors, wake)?;
            // With our iomux-spawn the job files exist once the status has
            // been sent; they complete a stream cut short and prove the end.
            let from_files = files::status(dir)?;
            if from_files.is_some() {
                files::drain_tails(dir, cursors)?;
            }
            status.or(from_files).ok_or_else(|| {
                Stop::Failed(format!(
                    "{}: status connection closed without a status",
                    dir.join(wire::iomux::STATUS_SOCKET).display()
                ))
            })
        }
        live::Connect::Failed(path, err) => match files::status(dir) {
            Ok(Some(status)) => {
                files::drain_tails(dir, cursors)?;
                Ok(status)
            }
            Ok(None) => Err(Stop::Setup(describe(dir, &path, &err))),
            Err(Stop::Failed(msg)) => Err(Stop::Setup(msg)),
            Err(other) => Err(other),
        },
    }
}

fn describe(dir: &Path, path: &str, err: &io::Error) -> String {
    match std::fs::metadata(dir) {
        Err(e) => format!("{}: {e}", dir.display()),
        Ok(m) if !m.is_dir() => format!("{}: not a directory", dir.display()),
        Ok(_) if err.kind() == io::ErrorKind::NotFound => format!(
            "{} is not an iomux job directory (no {} and no status file)",
            dir.display(),
            Stream::Stdout.socket_name()
        ),
        Ok(_) => format!("connecting to {path}: {err}"),
    }
}
