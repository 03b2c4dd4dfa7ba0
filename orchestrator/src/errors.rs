//! The one error type of the library, and the exit code each kind maps to.
//!
//! | code | meaning                                                        |
//! |-----:|----------------------------------------------------------------|
//! | 0    | success                                                        |
//! | 1    | a system call or file operation failed                         |
//! | 2    | bad command line (unknown option, missing argument)            |
//! | 3    | unknown handle                                                 |
//! | 4    | a container with that handle already exists                    |
//! | 5    | invalid argument (handle, bind mount, network, rlimit, user)   |
//! | 6    | a path named on the command line is missing (rootfs, bind mount source, script, copy source) |
//! | 7    | unknown job                                                    |
//! | 8    | the container is not in a state that allows the command        |
//! | 9    | a pool is exhausted or the network asked for is taken          |
//! | 10   | a setup script failed (its last line of error is shown)        |
//! | 11   | a helper binary is missing or failed (wshd, wsh, iomux-*, rsync) |
//! | 12   | the host or the container cannot do it (no disk image, no online resize) |
//!
//! `run`, `link` and `stream` exit with the job's own code once the job
//! exists, or 128+N when signal N killed it (see [`crate::exits`]; 255
//! where the container reported no wait status). A `run` interrupted by
//! signal N exits 128+N too (the job goes on).

use std::io;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("unknown handle: {0}")]
    UnknownHandle(String),
    #[error("container already exists: {0}")]
    HandleExists(String),
    #[error("invalid handle {handle:?}: {reason}")]
    BadHandle {
        handle: String,
        reason: &'static str,
    },
    #[error("{0}")]
    BadArgument(String),
    #[error("{what} not found: {}", path.display())]
    MissingPath { what: &'static str, path: PathBuf },
    #[error("unknown job {job} in container {handle}")]
    UnknownJob { handle: String, job: String },
    #[error("container {handle} is {state}; {command} needs it {needed}")]
    WrongState {
        handle: String,
        state: String,
        command: &'static str,
        needed: &'static str,
    },
    #[error("{0}")]
    Exhausted(String),
    #[error("{script} failed: {message}")]
    Script { script: String, message: String },
    #[error("{0}")]
    Tool(String),
    /// A create that got as far as making the container, undone: the step
    /// that failed, where its log was kept (`DEPOT/.failed/HANDLE.log`) and
    /// the last lines of error output, one indented line each.
    #[error("create failed at {step}: {source}{}", failed_note(log.as_deref(), tail))]
    CreateFailed {
        step: &'static str,
        source: Box<Error>,
        log: Option<PathBuf>,
        tail: Vec<String>,
    },
    #[error("{0}")]
    Unsupported(String),
    /// A wait given up because its result was no longer wanted.
    #[error("cancelled: nobody waits for the result any more")]
    Cancelled,
    /// A `run` left at a signal; the job goes on, recorded.
    #[error("interrupted by {}; job {job} goes on: wardenctl link {handle} {job}", signal_name(*.signal))]
    Interrupted {
        signal: i32,
        handle: String,
        job: u32,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"))
}

fn failed_note(log: Option<&std::path::Path>, tail: &[String]) -> String {
    let mut note = match log {
        Some(path) => format!("; log kept in {}", path.display()),
        None => String::new(),
    };
    for line in tail {
        note.push_str("\n    ");
        note.push_str(line);
    }
    note
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Io { .. } => 1,
            Error::UnknownHandle(_) => 3,
            Error::HandleExists(_) => 4,
            Error::BadHandle { .. } | Error::BadArgument(_) => 5,
            Error::MissingPath { .. } => 6,
            Error::UnknownJob { .. } => 7,
            Error::WrongState { .. } => 8,
            Error::Exhausted(_) => 9,
            Error::Script { .. } => 10,
            Error::Tool(_) => 11,
            Error::Unsupported(_) => 12,
            Error::Cancelled => 1,
            Error::Interrupted { signal, .. } => 128 + signal,
            Error::CreateFailed { source, .. } => source.exit_code(),
        }
    }

    /// Adds what was being done to an I/O error: `Error::io("open /x")(e)`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_code() {
        let errors = [
            Error::Io {
                context: "x".into(),
                source: io::Error::from_raw_os_error(2),
            },
            Error::UnknownHandle("h".into()),
            Error::HandleExists("h".into()),
            Error::BadArgument("x".into()),
            Error::MissingPath {
                what: "rootfs",
                path: "/x".into(),
            },
            Error::UnknownJob {
                handle: "h".into(),
                job: "1".into(),
            },
            Error::WrongState {
                handle: "h".into(),
                state: "stopped".into(),
                command: "spawn",
                needed: "active",
            },
            Error::Exhausted("x".into()),
            Error::Script {
                script: "s".into(),
                message: "m".into(),
            },
            Error::Tool("t".into()),
            Error::Unsupported("u".into()),
        ];
        let mut codes: Vec<i32> = errors.iter().map(Error::exit_code).collect();
        codes.dedup();
        assert_eq!(codes, vec![1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    }

    #[test]
    fn a_failed_create_names_its_step_log_and_last_lines() {
        let e = Error::CreateFailed {
            step: "start.sh",
            source: Box::new(Error::Script {
                script: "start.sh".into(),
                message: "wshd failed to start".into(),
            }),
            log: Some("/d/.failed/h.log".into()),
            tail: vec!["one".into(), "two".into()],
        };
        assert_eq!(
            e.to_string(),
            "create failed at start.sh: start.sh failed: wshd failed to start; \
             log kept in /d/.failed/h.log\n    one\n    two"
        );
        assert_eq!(e.exit_code(), 10);
    }

    #[test]
    fn messages_are_one_line() {
        let e = Error::MissingPath {
            what: "rootfs",
            path: "/nope".into(),
        };
        assert_eq!(e.to_string(), "rootfs not found: /nope");
        assert!(!e.to_string().contains('\n'));
    }
}
