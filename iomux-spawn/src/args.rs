//! The command line: the C original's two operands, and this project's
//! options before them for asking wshd for the job directly.

use std::ffi::OsString;
use std::path::PathBuf;

pub const USAGE: &str = "\
Usage: iomux-spawn [--wshd SOCKET [--user NAME] [--status-file FILE]] <socket directory> <cmd> [args...]
       iomux-spawn --zygote [PADDING]

Runs <cmd> with its stdout and stderr kept for any number of iomux-link
clients on the sockets it makes in <socket directory>; the job starts once
a client is on each of them.

  --wshd SOCKET       run <cmd> in the container whose wshd listens on
                      SOCKET, asked by iomux-spawn itself: what
                      `iomux-spawn DIR wsh --socket SOCKET ... <cmd>` runs,
                      without the wsh process (the same exit codes; stdin,
                      RLIMIT_* and LANG passed on as wsh passes them)
  --user NAME         with --wshd: run as NAME (default root)
  --status-file FILE  with --wshd: write how the job ended (`exited N`,
                      `signaled N`) to FILE, as `wsh --status-file`
  --zygote [PADDING]  for wardend: fork such iomux-spawn processes on the
                      requests of the socket that is stdin, instead of
                      their being started with exec; each one's command
                      line takes the room of the arguments (PADDING)
";

/// The first argument of the zygote's command line.
pub const ZYGOTE: &str = "--zygote";

/// Where the job runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Runner {
    /// A child process of ours (the C original's only way).
    Local,
    /// Asked of the wshd behind `socket`.
    Wshd {
        socket: PathBuf,
        user: Option<OsString>,
        status_file: Option<PathBuf>,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub dir: PathBuf,
    pub argv: Vec<OsString>,
    pub runner: Runner,
}

/// Parses everything after the program name; an error is a line to print
/// above the usage.
pub fn parse(args: &[OsString]) -> Result<Args, String> {
    let mut socket = None;
    let mut user = None;
    let mut status_file = None;
    let mut i = 0;
    // Options only before the operands: the command's own never reach us.
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        let slot = match arg {
            "--wshd" => &mut socket,
            "--user" => &mut user,
            "--status-file" => &mut status_file,
            "--" => {
                i += 1;
                break;
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => break,
        };
        let value = args
            .get(i + 1)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{arg} needs a value"))?;
        if slot.replace(value.clone()).is_some() {
            return Err(format!("{arg} given twice"));
        }
        i += 2;
    }
    let operands = &args[i..];
    if operands.len() < 2 {
        return Err("a socket directory and a command are needed".into());
    }
    let runner = match socket {
        Some(socket) => Runner::Wshd {
            socket: socket.into(),
            user,
            status_file: status_file.map(PathBuf::from),
        },
        None if user.is_some() || status_file.is_some() => {
            return Err("--user and --status-file go with --wshd".into())
        }
        None => Runner::Local,
    };
    Ok(Args {
        dir: PathBuf::from(&operands[0]),
        argv: operands[1..].to_vec(),
        runner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_c_operands_alone_run_a_local_child() {
        let a = parse(&args(&["/jobs/1", "/bin/echo", "--wshd", "x"])).unwrap();
        assert_eq!(a.dir, PathBuf::from("/jobs/1"));
        assert_eq!(a.argv, args(&["/bin/echo", "--wshd", "x"]));
        assert_eq!(a.runner, Runner::Local);
    }

    #[test]
    fn options_before_the_operands_ask_wshd() {
        let a = parse(&args(&[
            "--wshd",
            "/c/run/wshd.sock",
            "--user",
            "vcap",
            "--status-file",
            "/jobs/1/wsh.status",
            "/jobs/1",
            "/bin/sh",
        ]))
        .unwrap();
        assert_eq!(
            a.runner,
            Runner::Wshd {
                socket: "/c/run/wshd.sock".into(),
                user: Some("vcap".into()),
                status_file: Some("/jobs/1/wsh.status".into()),
            }
        );
        assert_eq!(a.argv, args(&["/bin/sh"]));
        let dashed = parse(&args(&["--wshd", "s", "--", "--dir", "cmd"])).unwrap();
        assert_eq!(dashed.dir, PathBuf::from("--dir"));
    }

    #[test]
    fn bad_command_lines_say_why() {
        for (words, why) in [
            (&[][..], "a socket directory and a command are needed"),
            (
                &["/jobs/1"][..],
                "a socket directory and a command are needed",
            ),
            (&["--wshd"][..], "--wshd needs a value"),
            (&["--wshd", ""][..], "--wshd needs a value"),
            (
                &["--wshd", "a", "--wshd", "b", "d", "c"][..],
                "--wshd given twice",
            ),
            (
                &["--user", "vcap", "d", "c"][..],
                "--user and --status-file go with --wshd",
            ),
            (&["--tty", "d", "c"][..], "unknown option --tty"),
        ] {
            assert_eq!(parse(&args(words)).unwrap_err(), why, "{words:?}");
        }
    }
}
