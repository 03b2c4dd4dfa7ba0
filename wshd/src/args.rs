//! Command-line flags.
//!
//! `wshd [--run DIR] [--lib DIR] [--root DIR] [--title NAME] [--cgroup DIR]
//! [--unconfined]` starts a container; `wshd --continue --listen-fd N --ack-fd N
//! [--unconfined]` is how the container side re-executes itself after
//! `pivot_root` (internal, never typed by hand).

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("invalid option -- {0}")]
    Unknown(String),
    #[error("option {0} needs a value")]
    MissingValue(String),
    #[error("option {0} needs a descriptor number, got {1:?}")]
    BadFd(&'static str, String),
    #[error("--continue needs --listen-fd and --ack-fd")]
    ContinueState,
}

#[derive(Debug, PartialEq, Eq)]
pub struct StartArgs {
    pub run: PathBuf,
    pub lib: PathBuf,
    pub root: PathBuf,
    pub title: Option<OsString>,
    /// A cgroup v2 group (made by the before-clone hook) for the
    /// container's first process to be born in.
    pub cgroup: Option<PathBuf>,
    /// Warden's `allow_nested_warden`: none of [`crate::confine`].
    pub unconfined: bool,
}

/// What the continued process inherits across the exec.
#[derive(Debug, PartialEq, Eq)]
pub struct ContinueArgs {
    pub listen_fd: RawFd,
    pub ack_fd: RawFd,
    pub unconfined: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Mode {
    Start(StartArgs),
    Continue(ContinueArgs),
    Help,
}

pub const USAGE: &str =
    "Usage: wshd [--run DIR] [--lib DIR] [--root DIR] [--title NAME] [--cgroup DIR]

  --run DIR    directory where the server socket wshd.sock is placed (default: run)
  --lib DIR    directory holding the hook scripts (default: lib)
  --root DIR   directory that becomes the container's root (default: root)
  --title NAME process title of the container's wshd
  --cgroup DIR a cgroup v2 group the container's first process is born in
               (CLONE_INTO_CGROUP), when it exists once the before-clone
               hook has run; else the after-clone hook moves it there
  --unconfined no confinement: jobs keep every capability, no seccomp
               filter, no masked /proc (Warden's allow_nested_warden;
               root in such a container is root on the host)
";

fn parse_fd(flag: &'static str, v: OsString) -> Result<RawFd, ArgsError> {
    let s = v.to_string_lossy().into_owned();
    match s.parse::<RawFd>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(ArgsError::BadFd(flag, s)),
    }
}

/// Parse the arguments after argv[0]. Both `--flag VALUE` and
/// `--flag=VALUE` are accepted.
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Mode, ArgsError> {
    let mut start = StartArgs {
        run: PathBuf::from("run"),
        lib: PathBuf::from("lib"),
        root: PathBuf::from("root"),
        title: None,
        cgroup: None,
        unconfined: false,
    };
    let mut cont = false;
    let mut listen_fd = None;
    let mut ack_fd = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let text = arg.to_string_lossy().into_owned();
        let (flag, inline) = match text.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(OsString::from(v))),
            _ => (text.clone(), None),
        };
        let mut value = |flag: &str| -> Result<OsString, ArgsError> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .ok_or_else(|| ArgsError::MissingValue(flag.to_string())),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Mode::Help),
            "--run" => start.run = value("--run")?.into(),
            "--lib" => start.lib = value("--lib")?.into(),
            "--root" => start.root = value("--root")?.into(),
            "--title" => start.title = Some(value("--title")?),
            "--cgroup" => start.cgroup = Some(value("--cgroup")?.into()),
            "--continue" if inline.is_none() => cont = true,
            "--unconfined" if inline.is_none() => start.unconfined = true,
            "--listen-fd" => listen_fd = Some(parse_fd("--listen-fd", value("--listen-fd")?)?),
            "--ack-fd" => ack_fd = Some(parse_fd("--ack-fd", value("--ack-fd")?)?),
            _ => return Err(ArgsError::Unknown(text)),
        }
    }
    if cont {
        match (listen_fd, ack_fd) {
            (Some(listen_fd), Some(ack_fd)) => Ok(Mode::Continue(ContinueArgs {
                listen_fd,
                ack_fd,
                unconfined: start.unconfined,
            })),
            _ => Err(ArgsError::ContinueState),
        }
    } else if listen_fd.is_some() || ack_fd.is_some() {
        Err(ArgsError::Unknown(
            "--listen-fd/--ack-fd without --continue".into(),
        ))
    } else {
        Ok(Mode::Start(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Mode, ArgsError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn defaults() {
        assert_eq!(
            p(&[]).unwrap(),
            Mode::Start(StartArgs {
                run: "run".into(),
                lib: "lib".into(),
                root: "root".into(),
                title: None,
                cgroup: None,
                unconfined: false,
            })
        );
    }

    #[test]
    fn all_flags_both_spellings() {
        assert_eq!(
            p(&[
                "--run",
                "r",
                "--lib=l",
                "--root",
                "m",
                "--title",
                "wshd: x",
                "--cgroup=/sys/fs/cgroup/instance-x",
                "--unconfined"
            ])
            .unwrap(),
            Mode::Start(StartArgs {
                run: "r".into(),
                lib: "l".into(),
                root: "m".into(),
                title: Some("wshd: x".into()),
                cgroup: Some("/sys/fs/cgroup/instance-x".into()),
                unconfined: true,
            })
        );
    }

    #[test]
    fn continue_mode() {
        assert_eq!(
            p(&["--continue", "--listen-fd", "3", "--ack-fd=4"]).unwrap(),
            Mode::Continue(ContinueArgs {
                listen_fd: 3,
                ack_fd: 4,
                unconfined: false,
            })
        );
        assert_eq!(
            p(&[
                "--continue",
                "--unconfined",
                "--listen-fd",
                "3",
                "--ack-fd=4"
            ])
            .unwrap(),
            Mode::Continue(ContinueArgs {
                listen_fd: 3,
                ack_fd: 4,
                unconfined: true,
            })
        );
        assert_eq!(
            p(&["--unconfined=yes"]),
            Err(ArgsError::Unknown("--unconfined=yes".into()))
        );
        assert_eq!(p(&["--continue"]), Err(ArgsError::ContinueState));
        assert_eq!(
            p(&["--cgroup"]),
            Err(ArgsError::MissingValue("--cgroup".into()))
        );
        assert!(matches!(
            p(&["--continue", "--listen-fd", "x", "--ack-fd", "4"]),
            Err(ArgsError::BadFd(..))
        ));
    }

    #[test]
    fn errors() {
        assert_eq!(p(&["--bogus"]), Err(ArgsError::Unknown("--bogus".into())));
        assert_eq!(p(&["--run"]), Err(ArgsError::MissingValue("--run".into())));
        assert_eq!(p(&["extra"]), Err(ArgsError::Unknown("extra".into())));
        assert_eq!(p(&["--help"]).unwrap(), Mode::Help);
    }
}
