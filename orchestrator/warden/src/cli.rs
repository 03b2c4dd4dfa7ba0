//! The top-level command line, as upstream's `ReplRunner`:
//!
//! ```text
//! warden [--socket PATH] [--trace] [--exit_on_error] [--help] [-- COMMAND ARGS...]
//! ```
//!
//! Everything after the first `--` is one command, run once; without it
//! the REPL runs. `--socket=PATH` works too (Ruby's OptionParser takes
//! both). Upstream also has `--address`/`--port` for a TCP server; the
//! Warden server here listens on a Unix socket only, so those are left out.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::repl::Options;

/// The default socket, upstream's.
pub const DEFAULT_SOCKET: &str = "/tmp/warden.sock";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `--help`.
    Help,
    /// The REPL (no `--`).
    Repl(Options),
    /// One command (the words after `--`).
    Once(Options, Vec<Vec<u8>>),
}

/// A bad top-level command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

/// Parses the arguments (without the program's name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, UsageError> {
    let mut opts = Options {
        socket: PathBuf::from(DEFAULT_SOCKET),
        trace: false,
        exit_on_error: false,
    };
    let mut args = args.into_iter();
    let mut help = false;
    while let Some(arg) = args.next() {
        let bytes = arg.clone().into_vec();
        match bytes.as_slice() {
            b"--" => {
                let command: Vec<Vec<u8>> = args.map(OsStringExt::into_vec).collect();
                if help {
                    return Ok(Invocation::Help);
                }
                if command.is_empty() {
                    return Ok(Invocation::Repl(opts));
                }
                return Ok(Invocation::Once(opts, command));
            }
            b"--socket" => match args.next() {
                Some(path) => opts.socket = PathBuf::from(path),
                None => return Err(UsageError("missing argument: --socket".into())),
            },
            b"--trace" => opts.trace = true,
            b"--exit_on_error" => opts.exit_on_error = true,
            b"--help" | b"-h" => help = true,
            other => {
                if let Some(path) = other.strip_prefix(b"--socket=") {
                    opts.socket = PathBuf::from(OsString::from_vec(path.to_vec()));
                } else if other.starts_with(b"-") {
                    return Err(UsageError(format!(
                        "invalid option: {}",
                        arg.to_string_lossy()
                    )));
                } else {
                    return Err(UsageError(format!(
                        "unexpected argument: '{}' (a command goes after --)",
                        arg.to_string_lossy()
                    )));
                }
            }
        }
    }
    Ok(if help {
        Invocation::Help
    } else {
        Invocation::Repl(opts)
    })
}

/// The same command line as a clap `Command`, for the man page and the
/// shell completions only (`warden __generate ...`, see clidoc); `parse`
/// stays the parser, as upstream's OptionParser. The test below holds the
/// two together.
pub fn command() -> clap::Command {
    use clap::{Arg, ArgAction, Command};
    Command::new("warden")
        .version(env!("CARGO_PKG_VERSION"))
        .about("The interactive Warden client: a warden> shell, or one command after --")
        .long_about(
            "The interactive Warden client (upstream's bin/warden): without a command it reads \
             commands from a warden> prompt (or from stdin when that is not a terminal); \
             `warden -- COMMAND ARGS` runs one command and exits with the job's status for \
             run, stream and link. `warden -- help` lists the commands.",
        )
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(
            Arg::new("socket")
                .long("socket")
                .value_name("PATH")
                .value_hint(clap::ValueHint::FilePath)
                .help(format!("Warden socket path (default: {DEFAULT_SOCKET})")),
        )
        .arg(
            Arg::new("trace")
                .long("trace")
                .action(ArgAction::SetTrue)
                .help(
                "Write each command preceded by a '+', and each request and response, to stderr",
            ),
        )
        .arg(
            Arg::new("exit_on_error")
                .long("exit_on_error")
                .action(ArgAction::SetTrue)
                .help("Exit after the first unsuccessful command"),
        )
        .arg(
            Arg::new("help")
                .long("help")
                .short('h')
                .action(ArgAction::Help)
                .help("Show help"),
        )
        .arg(
            Arg::new("command")
                .value_name("COMMAND")
                .num_args(1..)
                .last(true)
                .help("One command and its arguments (e.g. create --grace_time 60)"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clap_description_matches_the_parser() {
        let cmd = command();
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else {
                continue;
            };
            let mut words = vec![format!("--{long}")];
            if arg.get_action().takes_values() {
                words.push("/x".into());
            }
            assert!(
                parse(words.iter().map(OsString::from)).is_ok(),
                "warden does not take {words:?}"
            );
        }
        command().debug_assert();
    }

    fn p(args: &[&str]) -> Result<Invocation, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn opts(socket: &str, trace: bool, exit_on_error: bool) -> Options {
        Options {
            socket: socket.into(),
            trace,
            exit_on_error,
        }
    }

    #[test]
    fn defaults_to_the_repl_on_tmp_warden_sock() {
        assert_eq!(
            p(&[]),
            Ok(Invocation::Repl(opts("/tmp/warden.sock", false, false)))
        );
        assert_eq!(
            p(&["--"]),
            Ok(Invocation::Repl(opts("/tmp/warden.sock", false, false)))
        );
    }

    #[test]
    fn flags() {
        assert_eq!(
            p(&["--socket", "/s", "--trace", "--exit_on_error"]),
            Ok(Invocation::Repl(opts("/s", true, true)))
        );
        assert_eq!(
            p(&["--socket=/t"]),
            Ok(Invocation::Repl(opts("/t", false, false)))
        );
        assert_eq!(p(&["--help"]), Ok(Invocation::Help));
        assert_eq!(p(&["--help", "--", "ping"]), Ok(Invocation::Help));
    }

    #[test]
    fn one_command_after_the_delimiter() {
        assert_eq!(
            p(&["--socket", "/s", "--", "run", "--handle", "h", "--script", "a -- b", "--"]),
            Ok(Invocation::Once(
                opts("/s", false, false),
                ["run", "--handle", "h", "--script", "a -- b", "--"]
                    .iter()
                    .map(|s| s.as_bytes().to_vec())
                    .collect()
            ))
        );
    }

    #[test]
    fn bad_command_lines() {
        assert_eq!(
            p(&["--bogus"]),
            Err(UsageError("invalid option: --bogus".into()))
        );
        assert_eq!(
            p(&["--socket"]),
            Err(UsageError("missing argument: --socket".into()))
        );
        assert!(p(&["ping"]).unwrap_err().0.contains("after --"));
    }
}
