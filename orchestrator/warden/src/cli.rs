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

#[cfg(test)]
mod tests {
    use super::*;

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
