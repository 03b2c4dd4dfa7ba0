//! What wardend and `iomux-spawn --zygote` say to each other: the server
//! asks a pre-started iomux-spawn to fork a job holder instead of starting
//! one with exec. On a machine where every process start pays glibc's
//! start-up (about 1.1 ms in a VM, whose CPUID instructions trap), that is
//! most of what an iomux-spawn costs a `run`.
//!
//! # Transport
//!
//! A `SOCK_SEQPACKET` socketpair, made by wardend and handed to the zygote
//! as its standard input: no path, so nothing but wardend can ask. One
//! message is one request or one reply; the zygote answers each request
//! before it reads the next, and exits at end of file (wardend gone).
//!
//! # Messages (integers little-endian)
//!
//! ```text
//! hello    zygote -> server, once, when it serves
//!   0..4   b"IZH1"
//!   4..8   u32  room: bytes the job holder's command line may take
//!               (each argument with its NUL), see below
//!
//! request  server -> zygote, with exactly 3 descriptors (SCM_RIGHTS): the
//!          job holder's stdin, stdout and stderr
//!   0..4   b"IZR1"
//!   4..8   u32  N: arguments, argv[0] (the program's path) first
//!   8..12  u32  M: environment entries to add
//!   12..   N arguments, then M entries `NAME=VALUE`, each ended by a NUL
//!          and holding none; nothing after the last
//!
//! reply    zygote -> server
//!   0..4   b"IZA1"
//!   4..8   i32  the job holder's pid (> 0), the message carrying a pidfd
//!               of it (SCM_RIGHTS); or 0: refused, and
//!   8..    a UTF-8 reason
//! ```
//!
//! The holder's command line (`/proc/PID/cmdline`) is the request's
//! arguments, as an exec would have made it: the server finds a job's
//! holder by the job directory on it. The zygote writes it over its own
//! argument strings, so it must have been started with room for it (a
//! padding argument); a request whose arguments do not fit is refused, and
//! the server starts that holder with exec instead.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

pub const HELLO_MAGIC: &[u8; 4] = b"IZH1";
pub const REQUEST_MAGIC: &[u8; 4] = b"IZR1";
pub const REPLY_MAGIC: &[u8; 4] = b"IZA1";
pub const HELLO_LEN: usize = 8;
/// Largest request either side sends or accepts.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Largest reply (a refusal's reason is cut to fit).
pub const MAX_REPLY: usize = 1024;
/// Descriptors a request carries: stdin, stdout, stderr.
pub const REQUEST_FDS: usize = 3;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZygoteError {
    #[error("a zygote message of {0} bytes is too short")]
    Short(usize),
    #[error("not a zygote {0}: bad magic")]
    Magic(&'static str),
    #[error("a zygote request of {0} bytes is over {MAX_REQUEST}")]
    TooLong(usize),
    #[error("a NUL byte inside {0}")]
    Nul(&'static str),
    #[error("a zygote request has no argument")]
    NoProgram,
    #[error("an environment entry without '='")]
    NoEquals,
    #[error("a zygote request says {said} strings and holds {held}")]
    Count { said: u64, held: u64 },
    #[error("a zygote reply with pid {0}")]
    BadPid(i32),
}

/// A job holder to fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The command line, argv[0] first.
    pub argv: Vec<OsString>,
    /// Added to the zygote's environment, as `Command::env` adds.
    pub env: Vec<(OsString, OsString)>,
}

/// The zygote's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Started { pid: i32 },
    Refused(String),
}

pub fn encode_hello(room: u32) -> [u8; HELLO_LEN] {
    let mut out = [0; HELLO_LEN];
    out[..4].copy_from_slice(HELLO_MAGIC);
    out[4..].copy_from_slice(&room.to_le_bytes());
    out
}

/// The room a hello announces.
pub fn decode_hello(bytes: &[u8]) -> Result<u32, ZygoteError> {
    if bytes.len() != HELLO_LEN {
        return Err(ZygoteError::Short(bytes.len()));
    }
    if &bytes[..4] != HELLO_MAGIC {
        return Err(ZygoteError::Magic("hello"));
    }
    Ok(u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")))
}

/// Bytes `argv` takes on a command line: each argument and its NUL.
pub fn command_line_len(argv: &[OsString]) -> usize {
    argv.iter().map(|a| a.len() + 1).sum()
}

impl Request {
    pub fn encode(&self) -> Result<Vec<u8>, ZygoteError> {
        if self.argv.is_empty() {
            return Err(ZygoteError::NoProgram);
        }
        let mut out = Vec::with_capacity(12 + command_line_len(&self.argv));
        out.extend_from_slice(REQUEST_MAGIC);
        out.extend_from_slice(&(self.argv.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.env.len() as u32).to_le_bytes());
        for arg in &self.argv {
            push_string(&mut out, arg, "an argument")?;
        }
        for (name, value) in &self.env {
            if name.as_bytes().contains(&b'=') || name.is_empty() {
                return Err(ZygoteError::NoEquals);
            }
            let mut entry = name.clone();
            entry.push("=");
            entry.push(value);
            push_string(&mut out, &entry, "an environment entry")?;
        }
        if out.len() > MAX_REQUEST {
            return Err(ZygoteError::TooLong(out.len()));
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Request, ZygoteError> {
        if bytes.len() > MAX_REQUEST {
            return Err(ZygoteError::TooLong(bytes.len()));
        }
        if bytes.len() < 12 {
            return Err(ZygoteError::Short(bytes.len()));
        }
        if &bytes[..4] != REQUEST_MAGIC {
            return Err(ZygoteError::Magic("request"));
        }
        let count = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let (argc, envc) = (count(4) as u64, count(8) as u64);
        let body = &bytes[12..];
        // Every string ends with a NUL, so the body must end with one too.
        let strings: Vec<&[u8]> = match body.split_last() {
            None => Vec::new(),
            Some((0, rest)) => rest.split(|&b| b == 0).collect(),
            Some(_) => {
                return Err(ZygoteError::Count {
                    said: argc + envc,
                    held: 0,
                })
            }
        };
        if strings.len() as u64 != argc + envc {
            return Err(ZygoteError::Count {
                said: argc + envc,
                held: strings.len() as u64,
            });
        }
        if argc == 0 {
            return Err(ZygoteError::NoProgram);
        }
        let (args, env) = strings.split_at(argc as usize);
        let env = env
            .iter()
            .map(|entry| {
                let at = entry
                    .iter()
                    .position(|&b| b == b'=')
                    .filter(|&at| at > 0)
                    .ok_or(ZygoteError::NoEquals)?;
                Ok((
                    OsStr::from_bytes(&entry[..at]).to_os_string(),
                    OsStr::from_bytes(&entry[at + 1..]).to_os_string(),
                ))
            })
            .collect::<Result<_, ZygoteError>>()?;
        Ok(Request {
            argv: args
                .iter()
                .map(|a| OsString::from_vec(a.to_vec()))
                .collect(),
            env,
        })
    }
}

fn push_string(out: &mut Vec<u8>, s: &OsStr, what: &'static str) -> Result<(), ZygoteError> {
    if s.as_bytes().contains(&0) {
        return Err(ZygoteError::Nul(what));
    }
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Ok(())
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(REPLY_MAGIC);
        match self {
            Reply::Started { pid } => out.extend_from_slice(&pid.to_le_bytes()),
            Reply::Refused(why) => {
                out.extend_from_slice(&0i32.to_le_bytes());
                let mut end = why.len().min(MAX_REPLY - 8);
                while !why.is_char_boundary(end) {
                    end -= 1;
                }
                out.extend_from_slice(&why.as_bytes()[..end]);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Reply, ZygoteError> {
        if bytes.len() < 8 {
            return Err(ZygoteError::Short(bytes.len()));
        }
        if &bytes[..4] != REPLY_MAGIC {
            return Err(ZygoteError::Magic("reply"));
        }
        match i32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) {
            0 => Ok(Reply::Refused(
                String::from_utf8_lossy(&bytes[8..]).into_owned(),
            )),
            pid if pid > 0 && bytes.len() == 8 => Ok(Reply::Started { pid }),
            pid => Err(ZygoteError::BadPid(pid)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_request_is_counts_then_nul_ended_strings() {
        let request = Request {
            argv: os(&["/c/bin/iomux-spawn", "/c/jobs/1", "/bin/sh"]),
            env: vec![("RLIMIT_NOFILE".into(), "1024".into())],
        };
        let bytes = request.encode().unwrap();
        let mut want = b"IZR1\x03\x00\x00\x00\x01\x00\x00\x00".to_vec();
        want.extend_from_slice(b"/c/bin/iomux-spawn\0/c/jobs/1\0/bin/sh\0RLIMIT_NOFILE=1024\0");
        assert_eq!(bytes, want);
        assert_eq!(Request::decode(&bytes).unwrap(), request);
    }

    #[test]
    fn empty_strings_and_any_bytes_survive() {
        let request = Request {
            argv: vec![
                "p".into(),
                "".into(),
                OsString::from_vec(vec![0xff, b' ', 0xfe]),
            ],
            env: vec![("A".into(), "".into()), ("B".into(), "x=y".into())],
        };
        assert_eq!(
            Request::decode(&request.encode().unwrap()).unwrap(),
            request
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        let nul = Request {
            argv: vec![OsString::from_vec(b"a\0b".to_vec())],
            env: vec![],
        };
        assert_eq!(nul.encode(), Err(ZygoteError::Nul("an argument")));
        let none = Request {
            argv: vec![],
            env: vec![],
        };
        assert_eq!(none.encode(), Err(ZygoteError::NoProgram));
        let equals = Request {
            argv: os(&["p"]),
            env: vec![("A=B".into(), "c".into())],
        };
        assert_eq!(equals.encode(), Err(ZygoteError::NoEquals));
        let huge = Request {
            argv: vec![OsString::from("x".repeat(MAX_REQUEST))],
            env: vec![],
        };
        assert!(matches!(huge.encode(), Err(ZygoteError::TooLong(_))));

        for (bytes, want) in [
            (&b"IZR1\x01\x00\x00"[..], ZygoteError::Short(7)),
            (
                &b"IZQ1\x01\x00\x00\x00\x00\x00\x00\x00p\0"[..],
                ZygoteError::Magic("request"),
            ),
            (
                &b"IZR1\x02\x00\x00\x00\x00\x00\x00\x00p\0"[..],
                ZygoteError::Count { said: 2, held: 1 },
            ),
            (
                &b"IZR1\x01\x00\x00\x00\x00\x00\x00\x00p"[..],
                ZygoteError::Count { said: 1, held: 0 },
            ),
            (
                &b"IZR1\x00\x00\x00\x00\x00\x00\x00\x00"[..],
                ZygoteError::NoProgram,
            ),
            (
                &b"IZR1\x01\x00\x00\x00\x01\x00\x00\x00p\0=x\0"[..],
                ZygoteError::NoEquals,
            ),
            (
                &b"IZR1\x01\x00\x00\x00\x01\x00\x00\x00p\0x\0"[..],
                ZygoteError::NoEquals,
            ),
        ] {
            assert_eq!(Request::decode(bytes), Err(want), "{bytes:?}");
        }
        let long = vec![0u8; MAX_REQUEST + 1];
        assert_eq!(
            Request::decode(&long),
            Err(ZygoteError::TooLong(MAX_REQUEST + 1))
        );
    }

    #[test]
    fn replies_and_hello() {
        let started = Reply::Started { pid: 4242 };
        assert_eq!(started.encode(), b"IZA1\x92\x10\x00\x00");
        assert_eq!(Reply::decode(&started.encode()).unwrap(), started);
        let refused = Reply::Refused("too long".into());
        assert_eq!(refused.encode(), b"IZA1\x00\x00\x00\x00too long");
        assert_eq!(Reply::decode(&refused.encode()).unwrap(), refused);
        let long = Reply::Refused("é".repeat(MAX_REPLY));
        assert!(long.encode().len() <= MAX_REPLY);
        assert!(matches!(
            Reply::decode(&long.encode()),
            Ok(Reply::Refused(_))
        ));
        assert_eq!(
            Reply::decode(b"IZA1\xff\xff\xff\xff"),
            Err(ZygoteError::BadPid(-1))
        );
        assert_eq!(Reply::decode(b"IZA1"), Err(ZygoteError::Short(4)));
        assert_eq!(
            Reply::decode(b"IZB1\x01\x00\x00\x00"),
            Err(ZygoteError::Magic("reply"))
        );

        assert_eq!(encode_hello(8192), *b"IZH1\x00\x20\x00\x00");
        assert_eq!(decode_hello(&encode_hello(8192)).unwrap(), 8192);
        assert_eq!(decode_hello(b"IZH1"), Err(ZygoteError::Short(4)));
        assert_eq!(
            decode_hello(b"IZX1\x00\x20\x00\x00"),
            Err(ZygoteError::Magic("hello"))
        );
        assert_eq!(command_line_len(&os(&["ab", "", "c"])), 6);
    }
}
