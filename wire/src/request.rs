//! The request wsh sends to wshd, and the one-word response.
//!
//! # Version 1 (the C helpers' `msg_request_t`, 9656 bytes, host byte order)
//!
//! | offset | size   | field                                                     |
//! |-------:|-------:|-----------------------------------------------------------|
//! | 0      | 4      | `i32 version` = 1                                         |
//! | 4      | 4      | `i32 tty`: 1 when the client's stdin is a terminal        |
//! | 8      | 4      | `i32 arg.count`: number of argv strings                   |
//! | 12     | 8192   | `arg.buf`: argv strings, each NUL-terminated, packed      |
//! | 8204   | 4      | padding (the rlimit struct is 8-aligned)                  |
//! | 8208   | 4      | `i32 rlim.count` (15 as sent by the reference client)     |
//! | 8212   | 4      | padding                                                   |
//! | 8216   | 16x24  | `rlim[16]`: `{i32 id; 4 pad; u64 cur; u64 max}`           |
//! | 8600   | 32     | `user.name`, NUL-terminated; empty means root             |
//! | 8632   | 1024   | `lang`: the client's `LANG`, NUL-terminated               |
//!
//! The response is `i32 version` (4 bytes) sent in one `sendmsg` together with
//! the descriptors (see [`crate::fdpass`]): stdin, stdout, stderr, exit pipe
//! without a tty; pty master, exit pipe with one. The exit pipe carries the
//! child's exit code as a native `i32` when it exited, and nothing (EOF) when
//! a signal killed it.
//!
//! # Version 2 (this project's extension; wshd accepts 1 and 2)
//!
//! A version-2 request is the 9656-byte v1 struct with `version` = 2,
//! immediately followed by an extension, all integers native-endian `u32`:
//!
//! | offset | size | field                                                       |
//! |-------:|-----:|-------------------------------------------------------------|
//! | 9656   | 4    | `ext_len`: bytes after this word (16 + env_len + dir_len)   |
//! | 9660   | 4    | `flags`: bit 0 = return a pidfd for signal forwarding       |
//! | 9664   | 4    | `env_count`: number of `K=V` strings                        |
//! | 9668   | 4    | `env_len`: bytes of the env block                           |
//! | 9672   | 4    | `dir_len`: bytes of the dir block (0: the user's home)      |
//! | 9676   | env_len | env block: `K=V` strings, each NUL-terminated, packed    |
//! | ...    | dir_len | working directory, NUL-terminated                        |
//!
//! `ext_len` is at most [`MAX_EXTENSION_LEN`]. Unknown flag bits are refused.
//!
//! The v2 response is `i32 version` = 2 with the v1 descriptors followed, when
//! flag bit 0 was set, by a pidfd of the child (the client forwards signals with
//! `pidfd_send_signal`). The v2 exit pipe always carries the raw wait status as
//! a native `i32` (as `waitpid` gives it), so a death by signal is reported
//! distinctly; EOF without a word means wshd lost the child.
//!
//! A client learns whether the daemon takes version 2 from the daemon's
//! features file ([`crate::features`]), never by trying: the C wshd aborts
//! on a request it cannot parse.

use std::ffi::{CStr, CString};

use thiserror::Error;

/// Size of the C `msg_request_t` on x86_64 and aarch64 Linux.
pub const V1_SIZE: usize = 9656;
/// Bytes available for argv in the v1 struct.
pub const ARG_BUF_SIZE: usize = 8192;
/// Slots in the rlimit array (`RLIMIT_NLIMITS` on Linux).
pub const RLIMIT_SLOTS: usize = 16;
/// Bytes of the user name field, NUL included.
pub const USER_SIZE: usize = 32;
/// Bytes of the LANG field, NUL included.
pub const LANG_SIZE: usize = 1024;
/// Largest v2 extension wshd reads (after the `ext_len` word).
pub const MAX_EXTENSION_LEN: usize = 256 * 1024;
/// Size of the fixed part of the v2 extension, `ext_len` word included.
pub const V2_HEADER_SIZE: usize = 20;
/// v2 flag: send a pidfd of the child back with the stdio.
pub const FLAG_PIDFD: u32 = 1;

pub const OFF_VERSION: usize = 0;
pub const OFF_TTY: usize = 4;
pub const OFF_ARG_COUNT: usize = 8;
pub const OFF_ARG_BUF: usize = 12;
pub const OFF_RLIM_COUNT: usize = 8208;
pub const OFF_RLIM: usize = 8216;
pub const RLIM_ENTRY_SIZE: usize = 24;
pub const OFF_USER: usize = 8600;
pub const OFF_LANG: usize = 8632;

/// The value `rlim_cur`/`rlim_max` take for "no limit".
pub const RLIM_INFINITY: u64 = u64::MAX;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("request has {0} bytes, the fixed part needs {V1_SIZE}")]
    Truncated(usize),
    #[error("unsupported request version {0}")]
    Version(i32),
    #[error("tty flag must be 0 or 1, got {0}")]
    Tty(i32),
    #[error("argv count {0} is out of range")]
    ArgCount(i32),
    #[error("argv string {0} is not NUL-terminated within the buffer")]
    ArgUnterminated(usize),
    #[error("argv does not fit in {ARG_BUF_SIZE} bytes")]
    ArgTooLong,
    #[error("argument {0} contains a NUL byte")]
    ArgNul(usize),
    #[error("rlimit count {0} is out of range")]
    RlimitCount(i32),
    #[error("rlimit id {0} is not a Linux RLIMIT_*")]
    RlimitId(i32),
    #[error("user name is not NUL-terminated within {USER_SIZE} bytes")]
    UserUnterminated,
    #[error("user name {0:?} does not fit in {USER_SIZE} bytes")]
    UserTooLong(String),
    #[error("LANG is not NUL-terminated within {LANG_SIZE} bytes")]
    LangUnterminated,
    #[error("LANG does not fit in {LANG_SIZE} bytes")]
    LangTooLong,
    #[error("v2 extension length {0} is out of range")]
    ExtensionLength(usize),
    #[error("v2 extension is malformed: {0}")]
    Extension(&'static str),
    #[error("v2 flags {0:#x} has unknown bits")]
    Flags(u32),
    #[error("environment entry {0:?} is not of the form KEY=VALUE")]
    EnvEntry(String),
}

/// One `{id, cur, max}` entry of the rlimit array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub id: i32,
    pub cur: u64,
    pub max: u64,
}

/// The rlimits the reference client sends, in its order, with its defaults:
/// (environment variable name, Linux resource number, default cur = max).
pub const RLIMIT_TABLE: [(&str, i32, u64); 15] = [
    ("RLIMIT_AS", libc::RLIMIT_AS as i32, RLIM_INFINITY),
    ("RLIMIT_CORE", libc::RLIMIT_CORE as i32, 0),
    ("RLIMIT_CPU", libc::RLIMIT_CPU as i32, RLIM_INFINITY),
    ("RLIMIT_DATA", libc::RLIMIT_DATA as i32, RLIM_INFINITY),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE as i32, RLIM_INFINITY),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS as i32, RLIM_INFINITY),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK as i32, 65536),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE as i32, 819200),
    ("RLIMIT_NICE", libc::RLIMIT_NICE as i32, 0),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE as i32, 1024),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC as i32, 1024),
    ("RLIMIT_RSS", libc::RLIMIT_RSS as i32, RLIM_INFINITY),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO as i32, 0),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING as i32, 1024),
    ("RLIMIT_STACK", libc::RLIMIT_STACK as i32, 8192 * 1024),
];

/// Parse an rlimit variable's value the way the reference client's
/// `sscanf("%ld %ld")` does: one or two signed decimal numbers separated by
/// whitespace, trailing text ignored; one number sets both. `-1` (as `%ld`
/// reads it) is RLIM_INFINITY.
pub fn parse_rlimit_value(value: &str) -> Option<(u64, u64)> {
    fn leading_long(s: &str) -> Option<(i64, &str)> {
        let s = s.trim_start();
        let bytes = s.as_bytes();
        let mut end = 0;
        if end < bytes.len() && (bytes[end] == b'-' || bytes[end] == b'+') {
            end += 1;
        }
        let digits_start = end;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        if end == digits_start {
            return None;
        }
        // %ld saturates on overflow in glibc; mirror that rather than fail.
        let n =
            s[..end]
                .parse::<i64>()
                .unwrap_or(if bytes[0] == b'-' { i64::MIN } else { i64::MAX });
        Some((n, &s[end..]))
    }
    let (cur, rest) = leading_long(value)?;
    let max = leading_long(rest).map(|(n, _)| n).unwrap_or(cur);
    Some((cur as u64, max as u64))
}

/// The rlimits a client sends: the reference table, each overridden by the
/// environment variable of the same name. Returns the offending variable's
/// name when a value does not parse.
pub fn rlimits_from_env<F>(lookup: F) -> Result<Vec<Rlimit>, &'static str>
where
    F: Fn(&str) -> Option<String>,
{
    RLIMIT_TABLE
        .iter()
        .map(|&(name, id, default)| match lookup(name) {
            None => Ok(Rlimit {
                id,
                cur: default,
                max: default,
            }),
            Some(v) => parse_rlimit_value(&v)
                .map(|(cur, max)| Rlimit { id, cur, max })
                .ok_or(name),
        })
        .collect()
}

/// A decoded (or to-be-encoded) request, v1 or v2.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// 1 or 2.
    pub version: i32,
    pub tty: bool,
    pub argv: Vec<CString>,
    pub rlimits: Vec<Rlimit>,
    /// Empty means root.
    pub user: Vec<u8>,
    /// Empty when the client had no LANG.
    pub lang: Vec<u8>,
    /// v2 only: extra `KEY=VALUE` entries for the child's environment.
    pub env: Vec<CString>,
    /// v2 only: working directory instead of the user's home.
    pub dir: Option<CString>,
    /// v2 only: ask for a pidfd of the child.
    pub want_pidfd: bool,
}

fn put_i32(buf: &mut [u8], off: usize, v: i32) {
    buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}
fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_ne_bytes());
}
fn get_i32(buf: &[u8], off: usize) -> i32 {
    i32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes"))
}
fn get_u32(buf: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes"))
}
fn get_u64(buf: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(buf[off..off + 8].try_into().expect("8 bytes"))
}

/// Pack NUL-terminated strings into a buffer of at most `limit` bytes.
fn pack_strings(strings: &[CString], limit: usize) -> Option<Vec<u8>> {
    let total: usize = strings.iter().map(|s| s.as_bytes_with_nul().len()).sum();
    if total > limit {
        return None;
    }
    let mut out = Vec::with_capacity(total);
    for s in strings {
        out.extend_from_slice(s.as_bytes_with_nul());
    }
    Some(out)
}

/// Split `count` NUL-terminated strings off the front of `buf`.
fn unpack_strings(buf: &[u8], count: usize) -> Result<(Vec<CString>, usize), usize> {
    let mut out = Vec::with_capacity(count.min(1024));
    let mut off = 0;
    for i in 0..count {
        let s = CStr::from_bytes_until_nul(&buf[off..]).map_err(|_| i)?;
        off += s.to_bytes_with_nul().len();
        out.push(s.to_owned());
    }
    Ok((out, off))
}

/// The bytes of a NUL-terminated field, refusing one without NUL.
fn c_field(field: &[u8]) -> Option<Vec<u8>> {
    CStr::from_bytes_until_nul(field)
        .ok()
        .map(|s| s.to_bytes().to_vec())
}

impl Request {
    /// Encode as the bytes wsh sends: exactly [`V1_SIZE`] for version 1, the
    /// v1 struct plus the extension for version 2.
    pub fn encode(&self) -> Result<Vec<u8>, RequestError> {
        if self.version != 1 && self.version != 2 {
            return Err(RequestError::Version(self.version));
        }
        let mut buf = vec![0u8; V1_SIZE];
        put_i32(&mut buf, OFF_VERSION, self.version);
        put_i32(&mut buf, OFF_TTY, i32::from(self.tty));

        let args = pack_strings(&self.argv, ARG_BUF_SIZE).ok_or(RequestError::ArgTooLong)?;
        put_i32(&mut buf, OFF_ARG_COUNT, self.argv.len() as i32);
        buf[OFF_ARG_BUF..OFF_ARG_BUF + args.len()].copy_from_slice(&args);

        if self.rlimits.len() > RLIMIT_SLOTS {
            return Err(RequestError::RlimitCount(self.rlimits.len() as i32));
        }
        put_i32(&mut buf, OFF_RLIM_COUNT, self.rlimits.len() as i32);
        for (i, r) in self.rlimits.iter().enumerate() {
            let off = OFF_RLIM + i * RLIM_ENTRY_SIZE;
            put_i32(&mut buf, off, r.id);
            buf[off + 8..off + 16].copy_from_slice(&r.cur.to_ne_bytes());
            buf[off + 16..off + 24].copy_from_slice(&r.max.to_ne_bytes());
        }

        if self.user.len() >= USER_SIZE || self.user.contains(&0) {
            return Err(RequestError::UserTooLong(
                String::from_utf8_lossy(&self.user).into_owned(),
            ));
        }
        buf[OFF_USER..OFF_USER + self.user.len()].copy_from_slice(&self.user);
        if self.lang.len() >= LANG_SIZE || self.lang.contains(&0) {
            return Err(RequestError::LangTooLong);
        }
        buf[OFF_LANG..OFF_LANG + self.lang.len()].copy_from_slice(&self.lang);

        if self.version == 2 {
            for e in &self.env {
                if !e.as_bytes().contains(&b'=') || e.as_bytes().first() == Some(&b'=') {
                    return Err(RequestError::EnvEntry(e.to_string_lossy().into_owned()));
                }
            }
            let env = pack_strings(&self.env, MAX_EXTENSION_LEN)
                .ok_or(RequestError::ExtensionLength(MAX_EXTENSION_LEN + 1))?;
            let dir = self
                .dir
                .as_ref()
                .map(|d| d.as_bytes_with_nul().to_vec())
                .unwrap_or_default();
            let ext_len = 16 + env.len() + dir.len();
            if ext_len > MAX_EXTENSION_LEN {
                return Err(RequestError::ExtensionLength(ext_len));
            }
            let flags = if self.want_pidfd { FLAG_PIDFD } else { 0 };
            buf.reserve(4 + ext_len);
            put_u32(&mut buf, ext_len as u32);
            put_u32(&mut buf, flags);
            put_u32(&mut buf, self.env.len() as u32);
            put_u32(&mut buf, env.len() as u32);
            put_u32(&mut buf, dir.len() as u32);
            buf.extend_from_slice(&env);
            buf.extend_from_slice(&dir);
        }
        Ok(buf)
    }

    /// Decode the fixed 9656-byte part. For version 2 the caller then reads
    /// [`extension_len`] more bytes and calls [`Request::decode_extension`].
    pub fn decode_v1(buf: &[u8]) -> Result<Request, RequestError> {
        if buf.len() < V1_SIZE {
            return Err(RequestError::Truncated(buf.len()));
        }
        let version = get_i32(buf, OFF_VERSION);
        if version != 1 && version != 2 {
            return Err(RequestError::Version(version));
        }
        let tty = match get_i32(buf, OFF_TTY) {
            0 => false,
            1 => true,
            t => return Err(RequestError::Tty(t)),
        };
        let count = get_i32(buf, OFF_ARG_COUNT);
        // Each string takes at least one byte, so more than the buffer holds
        // cannot be valid.
        if !(0..=ARG_BUF_SIZE as i32).contains(&count) {
            return Err(RequestError::ArgCount(count));
        }
        let (argv, _) = unpack_strings(
            &buf[OFF_ARG_BUF..OFF_ARG_BUF + ARG_BUF_SIZE],
            count as usize,
        )
        .map_err(RequestError::ArgUnterminated)?;

        let rcount = get_i32(buf, OFF_RLIM_COUNT);
        if !(0..=RLIMIT_SLOTS as i32).contains(&rcount) {
            return Err(RequestError::RlimitCount(rcount));
        }
        let mut rlimits = Vec::with_capacity(rcount as usize);
        for i in 0..rcount as usize {
            let off = OFF_RLIM + i * RLIM_ENTRY_SIZE;
            let id = get_i32(buf, off);
            if !(0..RLIMIT_SLOTS as i32).contains(&id) {
                return Err(RequestError::RlimitId(id));
            }
            rlimits.push(Rlimit {
                id,
                cur: get_u64(buf, off + 8),
                max: get_u64(buf, off + 16),
            });
        }
        let user =
            c_field(&buf[OFF_USER..OFF_USER + USER_SIZE]).ok_or(RequestError::UserUnterminated)?;
        let lang =
            c_field(&buf[OFF_LANG..OFF_LANG + LANG_SIZE]).ok_or(RequestError::LangUnterminated)?;
        Ok(Request {
            version,
            tty,
            argv,
            rlimits,
            user,
            lang,
            env: Vec::new(),
            dir: None,
            want_pidfd: false,
        })
    }

    /// Fill the v2 fields from the extension bytes that follow the `ext_len`
    /// word (exactly `ext_len` of them).
    pub fn decode_extension(&mut self, ext: &[u8]) -> Result<(), RequestError> {
        if ext.len() < 16 {
            return Err(RequestError::Extension("shorter than its fixed header"));
        }
        let flags = get_u32(ext, 0);
        if flags & !FLAG_PIDFD != 0 {
            return Err(RequestError::Flags(flags));
        }
        let env_count = get_u32(ext, 4) as usize;
        let env_len = get_u32(ext, 8) as usize;
        let dir_len = get_u32(ext, 12) as usize;
        let body = &ext[16..];
        if env_len.checked_add(dir_len) != Some(body.len()) {
            return Err(RequestError::Extension("block lengths do not add up"));
        }
        let (env_block, dir_block) = body.split_at(env_len);
        let (env, used) = unpack_strings(env_block, env_count)
            .map_err(|_| RequestError::Extension("env string not NUL-terminated"))?;
        if used != env_len {
            return Err(RequestError::Extension("env block has trailing bytes"));
        }
        for e in &env {
            let b = e.as_bytes();
            if !b.contains(&b'=') || b[0] == b'=' {
                return Err(RequestError::EnvEntry(e.to_string_lossy().into_owned()));
            }
        }
        self.dir = if dir_len == 0 {
            None
        } else {
            let d = CStr::from_bytes_with_nul(dir_block)
                .map_err(|_| RequestError::Extension("dir is not one NUL-terminated string"))?;
            Some(d.to_owned())
        };
        self.env = env;
        self.want_pidfd = flags & FLAG_PIDFD != 0;
        Ok(())
    }
}

/// Validate the `ext_len` word that follows a v2 struct.
pub fn extension_len(word: [u8; 4]) -> Result<usize, RequestError> {
    let n = u32::from_ne_bytes(word) as usize;
    if !(16..=MAX_EXTENSION_LEN).contains(&n) {
        return Err(RequestError::ExtensionLength(n));
    }
    Ok(n)
}

/// What the bytes received so far make of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Complete(Request),
    /// Not yet: the request is this many bytes long in all, as far as the
    /// bytes so far tell (the v1 struct, then its `ext_len` word, then the
    /// extension that word announces).
    Needs(usize),
}

/// Decode a request from the start of `buf`, as wshd reads one: the v1
/// struct, and for a v2 request the `ext_len` word and the extension. Bytes
/// after a complete request are not looked at.
pub fn decode_request(buf: &[u8]) -> Result<Decoded, RequestError> {
    let Some(fixed) = buf.get(..V1_SIZE) else {
        return Ok(Decoded::Needs(V1_SIZE));
    };
    let mut req = Request::decode_v1(fixed)?;
    if req.version == 1 {
        return Ok(Decoded::Complete(req));
    }
    let Some(word) = buf.get(V1_SIZE..V1_SIZE + 4) else {
        return Ok(Decoded::Needs(V1_SIZE + 4));
    };
    let word: [u8; 4] = word.try_into().expect("a 4-byte slice");
    let total = V1_SIZE + 4 + extension_len(word)?;
    let Some(ext) = buf.get(V1_SIZE + 4..total) else {
        return Ok(Decoded::Needs(total));
    };
    req.decode_extension(ext)?;
    Ok(Decoded::Complete(req))
}

/// The 4-byte response word.
pub fn encode_response(version: i32) -> [u8; 4] {
    version.to_ne_bytes()
}

/// Decode the 4-byte response word.
pub fn decode_response(buf: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(buf.get(..4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    fn sample() -> Request {
        Request {
            version: 1,
            tty: true,
            argv: vec![cs("/bin/echo"), cs("hello"), cs("")],
            rlimits: rlimits_from_env(|_| None).unwrap(),
            user: b"vcap".to_vec(),
            lang: b"en_US.UTF-8".to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn v1_encoding_has_every_field_at_its_offset() {
        let buf = sample().encode().unwrap();
        assert_eq!(buf.len(), V1_SIZE);
        assert_eq!(&buf[0..4], &1i32.to_ne_bytes());
        assert_eq!(&buf[4..8], &1i32.to_ne_bytes());
        assert_eq!(&buf[8..12], &3i32.to_ne_bytes());
        assert_eq!(&buf[12..12 + 17], b"/bin/echo\0hello\0\0");
        assert!(buf[12 + 17..8204].iter().all(|&b| b == 0));
        assert!(buf[8204..8208].iter().all(|&b| b == 0), "padding");
        assert_eq!(&buf[8208..8212], &15i32.to_ne_bytes());
        assert!(buf[8212..8216].iter().all(|&b| b == 0), "padding");
        // RLIMIT_AS first: id 9, infinity both.
        assert_eq!(&buf[8216..8220], &9i32.to_ne_bytes());
        assert!(buf[8220..8224].iter().all(|&b| b == 0), "entry padding");
        assert_eq!(&buf[8224..8232], &u64::MAX.to_ne_bytes());
        assert_eq!(&buf[8232..8240], &u64::MAX.to_ne_bytes());
        // RLIMIT_NOFILE is the 10th entry (index 9): id 7, 1024.
        let nofile = 8216 + 9 * 24;
        assert_eq!(&buf[nofile..nofile + 4], &7i32.to_ne_bytes());
        assert_eq!(&buf[nofile + 8..nofile + 16], &1024u64.to_ne_bytes());
        // RLIMIT_STACK is the 15th (index 14): id 3, 8 MiB.
        let stack = 8216 + 14 * 24;
        assert_eq!(&buf[stack..stack + 4], &3i32.to_ne_bytes());
        assert_eq!(&buf[stack + 16..stack + 24], &8388608u64.to_ne_bytes());
        // The 16th slot stays zero.
        assert!(buf[8216 + 15 * 24..8600].iter().all(|&b| b == 0));
        assert_eq!(&buf[8600..8605], b"vcap\0");
        assert!(buf[8605..8632].iter().all(|&b| b == 0));
        assert_eq!(&buf[8632..8644], b"en_US.UTF-8\0");
        assert!(buf[8644..9656].iter().all(|&b| b == 0));
    }

    #[test]
    fn decodes_a_hand_built_v1_buffer() {
        let mut buf = vec![0u8; 9656];
        buf[0..4].copy_from_slice(&1i32.to_ne_bytes());
        buf[8..12].copy_from_slice(&2i32.to_ne_bytes());
        buf[12..24].copy_from_slice(b"sh\0-c\0\0\0\0\0\0\0");
        buf[8208..8212].copy_from_slice(&1i32.to_ne_bytes());
        buf[8216..8220].copy_from_slice(&7i32.to_ne_bytes());
        buf[8224..8232].copy_from_slice(&256u64.to_ne_bytes());
        buf[8232..8240].copy_from_slice(&512u64.to_ne_bytes());
        buf[8600..8604].copy_from_slice(b"vcap");
        buf[8632..8637].copy_from_slice(b"C.UTF");
        let r = Request::decode_v1(&buf).unwrap();
        assert_eq!(r.version, 1);
        assert!(!r.tty);
        assert_eq!(r.argv, vec![cs("sh"), cs("-c")]);
        assert_eq!(
            r.rlimits,
            vec![Rlimit {
                id: 7,
                cur: 256,
                max: 512
            }]
        );
        assert_eq!(r.user, b"vcap");
        assert_eq!(r.lang, b"C.UTF");
    }

    #[test]
    fn v1_round_trips() {
        let r = sample();
        assert_eq!(Request::decode_v1(&r.encode().unwrap()).unwrap(), r);
    }

    #[test]
    fn v2_round_trips_and_lays_out_the_extension() {
        let mut r = sample();
        r.version = 2;
        r.env = vec![cs("A=1"), cs("B=two")];
        r.dir = Some(cs("/tmp"));
        r.want_pidfd = true;
        let buf = r.encode().unwrap();
        assert_eq!(&buf[0..4], &2i32.to_ne_bytes());
        let ext_len = 16 + 10 + 5;
        assert_eq!(buf.len(), V1_SIZE + 4 + ext_len);
        assert_eq!(&buf[9656..9660], &(ext_len as u32).to_ne_bytes());
        assert_eq!(&buf[9660..9664], &1u32.to_ne_bytes());
        assert_eq!(&buf[9664..9668], &2u32.to_ne_bytes());
        assert_eq!(&buf[9668..9672], &10u32.to_ne_bytes());
        assert_eq!(&buf[9672..9676], &5u32.to_ne_bytes());
        assert_eq!(&buf[9676..9686], b"A=1\0B=two\0");
        assert_eq!(&buf[9686..9691], b"/tmp\0");

        assert_eq!(decode_request(&buf).unwrap(), Decoded::Complete(r));
    }

    #[test]
    fn a_request_is_decoded_in_stages() {
        let v1 = sample().encode().unwrap();
        assert_eq!(decode_request(&[]).unwrap(), Decoded::Needs(V1_SIZE));
        assert_eq!(decode_request(&v1[..100]).unwrap(), Decoded::Needs(V1_SIZE));
        let mut longer = v1.clone();
        longer.extend_from_slice(b"ignored");
        assert_eq!(
            decode_request(&longer).unwrap(),
            Decoded::Complete(sample())
        );

        let mut r = sample();
        r.version = 2;
        r.env = vec![CString::new("A=1").unwrap()];
        let v2 = r.encode().unwrap();
        assert_eq!(
            decode_request(&v2[..V1_SIZE]).unwrap(),
            Decoded::Needs(V1_SIZE + 4)
        );
        assert_eq!(
            decode_request(&v2[..V1_SIZE + 6]).unwrap(),
            Decoded::Needs(v2.len())
        );
        assert_eq!(decode_request(&v2).unwrap(), Decoded::Complete(r));

        let mut bad = v2.clone();
        bad[V1_SIZE..V1_SIZE + 4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(decode_request(&bad), Err(RequestError::ExtensionLength(3)));
    }

    #[test]
    fn refuses_malformed_fixed_parts() {
        let good = sample().encode().unwrap();
        assert_eq!(
            Request::decode_v1(&good[..100]),
            Err(RequestError::Truncated(100))
        );
        let mut b = good.clone();
        b[0..4].copy_from_slice(&3i32.to_ne_bytes());
        assert_eq!(Request::decode_v1(&b), Err(RequestError::Version(3)));
        let mut b = good.clone();
        b[4..8].copy_from_slice(&7i32.to_ne_bytes());
        assert_eq!(Request::decode_v1(&b), Err(RequestError::Tty(7)));
        let mut b = good.clone();
        b[8..12].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(Request::decode_v1(&b), Err(RequestError::ArgCount(-1)));
        // More strings than there are: the zero padding yields empty strings
        // until the buffer ends without a terminator.
        let mut b = good.clone();
        b[8..12].copy_from_slice(&8192i32.to_ne_bytes());
        assert!(matches!(
            Request::decode_v1(&b),
            Err(RequestError::ArgUnterminated(_))
        ));
        let mut b = good.clone();
        b[12..8204].fill(b'x');
        assert_eq!(
            Request::decode_v1(&b),
            Err(RequestError::ArgUnterminated(0))
        );
        let mut b = good.clone();
        b[8208..8212].copy_from_slice(&17i32.to_ne_bytes());
        assert_eq!(Request::decode_v1(&b), Err(RequestError::RlimitCount(17)));
        let mut b = good.clone();
        b[8216..8220].copy_from_slice(&99i32.to_ne_bytes());
        assert_eq!(Request::decode_v1(&b), Err(RequestError::RlimitId(99)));
        let mut b = good.clone();
        b[8600..8632].fill(b'u');
        assert_eq!(Request::decode_v1(&b), Err(RequestError::UserUnterminated));
        let mut b = good;
        b[8632..9656].fill(b'l');
        assert_eq!(Request::decode_v1(&b), Err(RequestError::LangUnterminated));
    }

    #[test]
    fn refuses_malformed_extensions() {
        let mut r = Request::decode_v1(&sample().encode().unwrap()).unwrap();
        assert!(r.decode_extension(&[0; 8]).is_err());
        let mut ext = Vec::new();
        for v in [2u32, 0, 0, 0] {
            ext.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(r.decode_extension(&ext), Err(RequestError::Flags(2)));
        let mut ext = Vec::new();
        for v in [0u32, 1, 4, 0] {
            ext.extend_from_slice(&v.to_ne_bytes());
        }
        ext.extend_from_slice(b"ABC\0");
        assert!(matches!(
            r.decode_extension(&ext),
            Err(RequestError::EnvEntry(_))
        ));
        let mut ext = Vec::new();
        for v in [0u32, 1, 100, 0] {
            ext.extend_from_slice(&v.to_ne_bytes());
        }
        assert!(r.decode_extension(&ext).is_err());
        assert!(extension_len(8u32.to_ne_bytes()).is_err());
        assert!(extension_len(((MAX_EXTENSION_LEN + 1) as u32).to_ne_bytes()).is_err());
    }

    #[test]
    fn argv_that_does_not_fit_is_refused() {
        let mut r = sample();
        r.argv = vec![CString::new(vec![b'a'; 8192]).unwrap()];
        assert_eq!(r.encode(), Err(RequestError::ArgTooLong));
        r.argv = vec![CString::new(vec![b'a'; 8191]).unwrap()];
        assert!(r.encode().is_ok());
    }

    #[test]
    fn rlimit_values_parse_like_sscanf() {
        assert_eq!(parse_rlimit_value("256"), Some((256, 256)));
        assert_eq!(parse_rlimit_value(" 256 512"), Some((256, 512)));
        assert_eq!(parse_rlimit_value("256 x"), Some((256, 256)));
        assert_eq!(parse_rlimit_value("-1"), Some((u64::MAX, u64::MAX)));
        assert_eq!(parse_rlimit_value("12abc"), Some((12, 12)));
        assert_eq!(parse_rlimit_value("abc"), None);
        assert_eq!(parse_rlimit_value(""), None);
        let r = rlimits_from_env(|k| (k == "RLIMIT_NOFILE").then(|| "256".to_string())).unwrap();
        assert_eq!(r.len(), 15);
        assert_eq!(r[9].cur, 256);
        assert_eq!(
            rlimits_from_env(|k| (k == "RLIMIT_CORE").then(|| "x".to_string())),
            Err("RLIMIT_CORE")
        );
    }

    #[test]
    fn response_word() {
        assert_eq!(decode_response(&encode_response(1)), Some(1));
        assert_eq!(decode_response(&[1, 0]), None);
    }
}
