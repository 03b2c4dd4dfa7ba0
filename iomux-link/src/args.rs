//! `iomux-link [-w CURSORS_FILE] SOCKET_DIR`, parsed the way getopt("w:")
//! does (options may follow the directory, `--` ends them).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

pub const USAGE: &str = "Usage: iomux-link [-w <saved position path>] <socket directory>";

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub cursors: Option<PathBuf>,
    pub dir: PathBuf,
}

/// Parse the arguments after the program name; `Err` carries what is wrong.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
    let mut cursors = None;
    let mut positional = Vec::new();
    let mut args = args.into_iter();
    let mut options_done = false;
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if options_done || bytes.len() < 2 || bytes[0] != b'-' {
            positional.push(PathBuf::from(arg));
            continue;
        }
        if bytes == b"--" {
            options_done = true;
        } else if bytes == b"-w" {
            let value = args.next().ok_or("option -w needs an argument")?;
            cursors = Some(PathBuf::from(value));
        } else if bytes.starts_with(b"-w") {
            cursors = Some(PathBuf::from(OsString::from_vec(bytes[2..].to_vec())));
        } else {
            return Err(format!("unknown option {}", arg.to_string_lossy()));
        }
    }
    match positional.len() {
        1 => Ok(Args {
            cursors,
            dir: positional.pop().expect("one element"),
        }),
        0 => Err("missing socket directory".into()),
        _ => Err("more than one socket directory given".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Args, String> {
        parse(v.iter().map(OsString::from))
    }

    #[test]
    fn forms_getopt_accepts() {
        let want = Args {
            cursors: Some("c".into()),
            dir: "d".into(),
        };
        assert_eq!(p(&["-w", "c", "d"]).unwrap(), want);
        assert_eq!(p(&["-wc", "d"]).unwrap(), want);
        assert_eq!(p(&["d", "-w", "c"]).unwrap(), want);
        assert_eq!(
            p(&["d"]).unwrap(),
            Args {
                cursors: None,
                dir: "d".into()
            }
        );
        assert_eq!(p(&["--", "-d"]).unwrap().dir, PathBuf::from("-d"));
    }

    #[test]
    fn mistakes() {
        assert!(p(&[]).is_err());
        assert!(p(&["-w"]).is_err());
        assert!(p(&["-w", "c"]).is_err());
        assert!(p(&["a", "b"]).is_err());
        assert!(p(&["-x", "d"]).is_err());
    }
}
