//! Command line, parsed the way the C wsh parses it so existing callers
//! (Warden's server, `rsync -e "wsh --rsh"`) see the same behaviour: options
//! stop at the first word that does not begin with `-`, `--rsh` takes rsh's
//! own options and skips the host, and a malformed option line exits 1.
//!
//! Beyond the C client: `--env K=V` (repeatable), `--dir D` and `--v2` select
//! the version-2 request (see `wire::request`); `--status-file PATH` has
//! wsh write how the process ended to PATH, when the daemon reported it
//! (wardenctl's jobs, whose only other witness, wsh's exit code, cannot
//! tell `exit 137` from SIGKILL).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

pub const DEFAULT_SOCKET: &str = "run/wshd.sock";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub socket: PathBuf,
    /// None: root (the request carries an empty name).
    pub user: Option<OsString>,
    /// Empty: the user's login shell, chosen by wshd.
    pub argv: Vec<OsString>,
    pub env: Vec<OsString>,
    pub dir: Option<OsString>,
    /// Speak the version-2 protocol (forward signals, report death by signal).
    pub v2: bool,
    /// Where to write the process's wait status (see `main::write_status`).
    pub status_file: Option<PathBuf>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Options),
    Help,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ArgsError {
    /// An option wsh does not know, or one missing its value.
    Invalid(OsString),
    /// `--rsh` without the host word rsh expects.
    MissingHost,
    /// `--env` whose value is not KEY=VALUE.
    BadEnv(OsString),
}

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgsError::Invalid(o) => write!(f, "invalid option -- {}", o.to_string_lossy()),
            ArgsError::MissingHost => write!(f, "--rsh needs a host argument"),
            ArgsError::BadEnv(e) => {
                write!(f, "--env wants KEY=VALUE, got {:?}", e.to_string_lossy())
            }
        }
    }
}

pub const USAGE: &str = "\
Usage: wsh [OPTION]... [--] [ARGV...]

  --socket PATH   Path to wshd's socket (default run/wshd.sock)
  --user USER     User to run as (default root)
  --rsh           RSH compatibility mode: [-46dn] [-l USER] [-t N] HOST follow
  --env KEY=VALUE Add to the process's environment (implies --v2)
  --dir DIR       Working directory instead of the user's home (implies --v2)
  --v2            Version-2 request: forward TERM, INT, HUP, QUIT, USR1, USR2
                  to the process and exit 128+N when signal N kills it
  --status-file PATH  Write how the process ended to PATH (`exited N' or
                  `signaled N'), when wshd reports it (v2, or a v1 session
                  carried over v2); nothing is written otherwise
  -h, --help      This help

Without ARGV the user's login shell runs. Exit status: the process's, or 255
when it was killed by a signal (v1) or wsh itself failed.
";

fn is_option(word: &OsStr) -> bool {
    word.as_bytes().first() == Some(&b'-')
}

pub fn parse(args: &[OsString]) -> Result<Parsed, ArgsError> {
    let mut opts = Options {
        socket: PathBuf::from(DEFAULT_SOCKET),
        user: None,
        argv: Vec::new(),
        env: Vec::new(),
        dir: None,
        v2: false,
        status_file: None,
    };
    let mut i = 0;
    while i < args.len() && is_option(&args[i]) {
        let word = args[i].as_bytes();
        let value = args.get(i + 1);
        match (word, value) {
            (b"-h" | b"--help", _) => return Ok(Parsed::Help),
            (b"--", _) => {
                i += 1;
                break;
            }
            (b"--socket", Some(v)) => {
                opts.socket = PathBuf::from(v);
                i += 2;
            }
            (b"--user", Some(v)) => {
                opts.user = Some(v.clone());
                i += 2;
            }
            (b"--env", Some(v)) => {
                let b = v.as_bytes();
                if !b.contains(&b'=') || b[0] == b'=' {
                    return Err(ArgsError::BadEnv(v.clone()));
                }
                opts.env.push(v.clone());
                opts.v2 = true;
                i += 2;
            }
            (b"--dir", Some(v)) => {
                opts.dir = Some(v.clone());
                opts.v2 = true;
                i += 2;
            }
            (b"--status-file", Some(v)) => {
                opts.status_file = Some(PathBuf::from(v));
                i += 2;
            }
            (b"--v2", _) => {
                opts.v2 = true;
                i += 1;
            }
            (b"--rsh", _) => {
                i += 1;
                // rsh [-46dn] [-l username] [-t timeout] host [command]
                while i < args.len() && is_option(&args[i]) {
                    match args[i].as_bytes() {
                        [b'-', b'4' | b'6' | b'd' | b'n'] => i += 1,
                        b"-l" if i + 1 < args.len() => {
                            opts.user = Some(args[i + 1].clone());
                            i += 2;
                        }
                        b"-t" if i + 1 < args.len() => i += 2,
                        _ => return Err(ArgsError::Invalid(args[i].clone())),
                    }
                }
                if i >= args.len() {
                    return Err(ArgsError::MissingHost);
                }
                i += 1;
            }
            _ => return Err(ArgsError::Invalid(args[i].clone())),
        }
    }
    opts.argv = args[i..].to_vec();
    Ok(Parsed::Run(opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &[&str]) -> Result<Parsed, ArgsError> {
        let v: Vec<OsString> = words.iter().map(OsString::from).collect();
        parse(&v)
    }
    fn run(words: &[&str]) -> Options {
        match p(words) {
            Ok(Parsed::Run(o)) => o,
            other => panic!("{words:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_plain_argv() {
        let o = run(&["ls", "-l"]);
        assert_eq!(o.socket, PathBuf::from("run/wshd.sock"));
        assert_eq!(o.user, None);
        assert_eq!(o.argv, vec![OsString::from("ls"), OsString::from("-l")]);
        assert!(!o.v2);
        assert!(run(&[]).argv.is_empty());
    }

    #[test]
    fn socket_and_user() {
        let o = run(&["--socket", "/s", "--user", "vcap", "id"]);
        assert_eq!(o.socket, PathBuf::from("/s"));
        assert_eq!(o.user, Some(OsString::from("vcap")));
        assert_eq!(o.argv, vec![OsString::from("id")]);
    }

    #[test]
    fn rsh_mode_as_rsync_calls_it() {
        let o = run(&[
            "--socket",
            "/s",
            "--rsh",
            "-l",
            "vcap",
            "-4",
            "-t",
            "5",
            "container",
            "rsync",
            "--server",
            "-r",
        ]);
        assert_eq!(o.user, Some(OsString::from("vcap")));
        assert_eq!(
            o.argv,
            ["rsync", "--server", "-r"].map(OsString::from).to_vec()
        );
        // Options may continue after the host.
        let o = run(&["--rsh", "host", "--user", "u", "true"]);
        assert_eq!(o.user, Some(OsString::from("u")));
        assert_eq!(p(&["--rsh"]), Err(ArgsError::MissingHost));
        assert_eq!(
            p(&["--rsh", "-x", "h"]),
            Err(ArgsError::Invalid("-x".into()))
        );
    }

    #[test]
    fn invalid_and_help() {
        assert_eq!(p(&["--bogus"]), Err(ArgsError::Invalid("--bogus".into())));
        assert_eq!(p(&["--socket"]), Err(ArgsError::Invalid("--socket".into())));
        assert_eq!(p(&["-h"]), Ok(Parsed::Help));
        assert_eq!(p(&["--help", "x"]), Ok(Parsed::Help));
    }

    #[test]
    fn v2_options() {
        let o = run(&["--env", "A=1", "--dir", "/tmp", "pwd"]);
        assert!(o.v2);
        assert_eq!(o.env, vec![OsString::from("A=1")]);
        assert_eq!(o.dir, Some(OsString::from("/tmp")));
        assert!(run(&["--v2", "true"]).v2);
        assert_eq!(p(&["--env", "A"]), Err(ArgsError::BadEnv("A".into())));
        assert_eq!(p(&["--env", "=x"]), Err(ArgsError::BadEnv("=x".into())));
        assert_eq!(run(&["--", "--v2"]).argv, vec![OsString::from("--v2")]);
    }

    #[test]
    fn status_file_keeps_the_version() {
        let o = run(&["--status-file", "/j/wsh.status", "true"]);
        assert_eq!(o.status_file, Some(PathBuf::from("/j/wsh.status")));
        assert!(!o.v2);
        assert_eq!(
            p(&["--status-file"]),
            Err(ArgsError::Invalid("--status-file".into()))
        );
    }
}
