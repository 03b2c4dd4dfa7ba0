//! Torture of wshd's request path: thousands of malformed requests against
//! one container while 50 clients that never read sit on it, after which
//! wshd must still serve correctly and hold exactly what it held before.
//!
//! Scale: `TORTURE_SCALE` unset sends the 10,000 requests (a few
//! seconds, so CI runs it as it is); `full` (`make torture`) sends 100,000,
//! enough for the 5-second request timeout to expire on the stalled clients
//! mid-run; a number sends that many. `TORTURE_SEED` (hex) replays a run;
//! the seed is printed when the test fails.
//!
//! Every request's fate is predicted with the wire crate's decoder, read the
//! way wshd reads a connection: a request that decodes must be answered (and
//! its child runs to the end), anything else must be closed unanswered.
//! wshd uses the same decoder, so this checks the daemon's handling of the
//! bytes (stages, EOF, disconnects, descriptors, children), while the fuzz
//! target `request_decode` checks the decoder itself.

use std::fs;
use std::io::Write;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tests::client;
use tests::container::{self, Container};
use tests::require_root;
use tests::torture::{self, Rng, SeedOnFailure};
use wire::fdpass::FdPassError;
use wire::request::{
    decode_request, Decoded, Request, MAX_EXTENSION_LEN, OFF_ARG_BUF, OFF_ARG_COUNT, OFF_LANG,
    OFF_RLIM, OFF_RLIM_COUNT, OFF_TTY, OFF_USER, OFF_VERSION, RLIMIT_SLOTS, RLIM_ENTRY_SIZE,
    V1_SIZE,
};

/// How long an answered request's child may take to finish.
const CHILD_DEADLINE: Duration = Duration::from_secs(30);
/// Clients that never read their descriptors, held through the run.
const HOLDERS: usize = 50;
/// Clients sending cases at the same time.
const WORKERS: usize = 4;

// ---------------------------------------------------------------------------
// Scale, seed, random numbers

fn requests_to_send() -> usize {
    torture::scale(10_000, 100_000)
}

// ---------------------------------------------------------------------------
// Requests

fn base_request(version: i32) -> Request {
    let mut r = client::request(&["sh", "-c", "echo ok"], "vcap");
    r.version = version;
    if version == 2 {
        r.env = vec![c"A=1".to_owned(), c"B=two".to_owned()];
        r.dir = Some(c"/tmp".to_owned());
    }
    r
}

fn base(version: i32) -> Vec<u8> {
    base_request(version)
        .encode()
        .expect("base request encodes")
}

/// What wshd will make of `bytes` followed by EOF: the request it answers,
/// or None when it must close the connection unanswered.
fn decode_like_wshd(buf: &[u8]) -> Option<Request> {
    match decode_request(buf) {
        Ok(Decoded::Complete(req)) => Some(req),
        _ => None,
    }
}

/// A field of the v1 struct or the v2 extension (offsets in the v2 base).
#[derive(Clone, Copy)]
struct Field {
    name: &'static str,
    off: usize,
    len: usize,
}

const EXT: usize = V1_SIZE;

fn fields() -> Vec<Field> {
    let f = |name, off, len| Field { name, off, len };
    let mut v = vec![
        f("version", OFF_VERSION, 4),
        f("tty", OFF_TTY, 4),
        f("arg.count", OFF_ARG_COUNT, 4),
        f("arg.buf", OFF_ARG_BUF, 8192),
        f("arg.pad", OFF_ARG_BUF + 8192, 4),
        f("rlim.count", OFF_RLIM_COUNT, 4),
        f("rlim.pad", OFF_RLIM_COUNT + 4, 4),
    ];
    for i in 0..RLIMIT_SLOTS {
        let off = OFF_RLIM + i * RLIM_ENTRY_SIZE;
        v.push(f("rlim.id", off, 4));
        v.push(f("rlim.entry_pad", off + 4, 4));
        v.push(f("rlim.cur", off + 8, 8));
        v.push(f("rlim.max", off + 16, 8));
    }
    v.extend([
        f("user.name", OFF_USER, 32),
        f("lang", OFF_LANG, 1024),
        f("ext_len", EXT, 4),
        f("flags", EXT + 4, 4),
        f("env_count", EXT + 8, 4),
        f("env_len", EXT + 12, 4),
        f("dir_len", EXT + 16, 4),
        // The base's env block "A=1\0B=two\0" and dir "/tmp\0".
        f("env", EXT + 20, 10),
        f("dir", EXT + 30, 5),
    ]);
    v
}

const WORDS: [u32; 14] = [
    0,
    1,
    2,
    3,
    15,
    16,
    17,
    8192,
    8193,
    0x7f7f_7f7f,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// Set `field` to the `k`-th extreme or garbage value of its kind.
fn corrupt(buf: &mut [u8], field: Field, k: usize, rng: &mut Rng) -> String {
    let span = &mut buf[field.off..field.off + field.len];
    match field.len {
        4 => {
            let v = if k % (WORDS.len() + 1) == WORDS.len() {
                rng.next_u64() as u32
            } else {
                WORDS[k % (WORDS.len() + 1)]
            };
            span.copy_from_slice(&v.to_ne_bytes());
            format!("{}={v:#x}", field.name)
        }
        8 => {
            let v = [0, 1, u64::MAX, u64::MAX - 1, 1 << 63, rng.next_u64()][k % 6];
            span.copy_from_slice(&v.to_ne_bytes());
            format!("{}={v:#x}", field.name)
        }
        _ => {
            let how = k % 6;
            match how {
                0 => span.fill(0),
                1 => span.fill(0xff),
                2 => span.fill(b'x'),
                3 => span.copy_from_slice(&rng.bytes(field.len)),
                4 => {
                    // Garbage with one NUL somewhere.
                    let t = rng.text(field.len);
                    span.copy_from_slice(&t);
                    let at = rng.below(field.len);
                    span[at] = 0;
                }
                _ => {
                    // Every NUL of the field replaced.
                    for b in span.iter_mut() {
                        if *b == 0 {
                            *b = b'#';
                        }
                    }
                }
            }
            format!("{} fill#{how}", field.name)
        }
    }
}

/// How the client behaves after writing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ending {
    /// Shut down the write side and read until wshd answers or closes.
    Finish,
    /// Close at once without reading: an abrupt disconnect.
    Vanish,
}

struct Case {
    what: String,
    bytes: Vec<u8>,
    ending: Ending,
    /// Written in pieces with pauses, so wshd sees the request arrive
    /// across its stage boundaries; the piece sizes come from this seed.
    chunks: Option<u64>,
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

/// The `i`-th case: categories in turn, details from `rng`; one in eight
/// is written in pieces.
fn make_case(i: usize, rng: &mut Rng, fields: &[Field]) -> Case {
    let mut case = pick_case(i, rng, fields);
    if rng.below(8) == 0 && case.bytes.len() < 64 * 1024 {
        case.chunks = Some(rng.next_u64());
        case.what.push_str(" (in pieces)");
    }
    case
}

fn pick_case(i: usize, rng: &mut Rng, fields: &[Field]) -> Case {
    let finish = |what: String, bytes: Vec<u8>| Case {
        what,
        bytes,
        ending: Ending::Finish,
        chunks: None,
    };
    match i % 10 {
        // Random bytes of random lengths, sometimes behind a valid version.
        0 => {
            let len = match rng.below(4) {
                0 => rng.below(64),
                1 => rng.below(V1_SIZE),
                2 => V1_SIZE + rng.below(64),
                _ => rng.below(2 * V1_SIZE + 300_000),
            };
            let mut b = rng.bytes(len);
            let tag = if len >= 4 && rng.below(2) == 0 {
                put32(&mut b, 0, rng.pick(&[1, 2]));
                "random after a valid version"
            } else {
                "random"
            };
            finish(format!("{tag}, {len} bytes"), b)
        }
        // A valid header with each field corrupted in turn (a walk over
        // fields x values, so every field meets every value).
        1 | 2 => {
            let j = i / 10 * 2 + (i % 10 - 1);
            let field = fields[j % fields.len()];
            let k = j / fields.len();
            let version = if field.off >= EXT || j % 2 == 1 { 2 } else { 1 };
            let mut b = base(version);
            let what = corrupt(&mut b, field, k, rng);
            finish(format!("v{version} {what}"), b)
        }
        // Truncation at field boundaries (and one byte either side) and at
        // random offsets.
        3 => {
            let version = rng.pick(&[1, 2]);
            let full = base(version);
            let cut = if rng.below(2) == 0 {
                let f = rng.pick(fields);
                let edge = f.off + rng.pick(&[0, f.len]);
                (edge + rng.below(3)).saturating_sub(1).min(full.len() - 1)
            } else {
                rng.below(full.len())
            };
            finish(format!("v{version} cut at {cut}"), full[..cut].to_vec())
        }
        // argv count larger than the strings there are: with garbage after
        // them (refused) or zeros (extra empty strings, answered).
        4 => {
            let mut b = base(1);
            let extra = rng.pick(&[1usize, 2, 100, 8189, 8190, 8192]);
            put32(&mut b, OFF_ARG_COUNT, (3 + extra) as u32);
            let garbage = rng.below(2) == 0;
            if garbage {
                let used = b"sh\0-c\0echo ok\0".len();
                let t = rng.text(8192 - used);
                b[OFF_ARG_BUF + used..OFF_ARG_BUF + 8192].copy_from_slice(&t);
            }
            finish(format!("argv count 3+{extra}, tail garbage={garbage}"), b)
        }
        // Names and LANG without their NUL (and at the very edge of fitting).
        5 => {
            let mut b = base(rng.pick(&[1, 2]));
            let (what, off, len) = rng.pick(&[("user", OFF_USER, 32), ("lang", OFF_LANG, 1024)]);
            let fill = rng.text(len);
            b[off..off + len].copy_from_slice(&fill);
            let edge = rng.below(3) == 0;
            if edge {
                b[off + len - 1] = 0;
            }
            finish(format!("{what} without NUL (edge={edge})"), b)
        }
        // Abrupt disconnects: any prefix, the whole request included.
        6 => {
            let version = rng.pick(&[1, 2]);
            let full = base(version);
            let cut = if rng.below(3) == 0 {
                full.len()
            } else {
                rng.below(full.len())
            };
            Case {
                what: format!("v{version} vanish after {cut} bytes"),
                bytes: full[..cut].to_vec(),
                ending: Ending::Vanish,
                chunks: None,
            }
        }
        // v2 extensions whose parts disagree.
        _ => {
            let (what, b) = bad_extension(rng);
            finish(format!("v2 {what}"), b)
        }
    }
}

/// A v2 request with an extension from `env` strings (raw bytes, the NULs
/// are the caller's) and counts/lengths that may lie.
fn extension(
    flags: u32,
    env_count: u32,
    env: &[u8],
    dir: &[u8],
    lie: Option<(usize, u32)>,
) -> Vec<u8> {
    let mut b = base(2);
    b.truncate(V1_SIZE);
    let mut words = [
        (16 + env.len() + dir.len()) as u32,
        flags,
        env_count,
        env.len() as u32,
        dir.len() as u32,
    ];
    if let Some((i, v)) = lie {
        words[i] = v;
    }
    for w in words {
        b.extend_from_slice(&w.to_ne_bytes());
    }
    b.extend_from_slice(env);
    b.extend_from_slice(dir);
    b
}

fn bad_extension(rng: &mut Rng) -> (String, Vec<u8>) {
    let env: &[u8] = b"A=1\0B=two\0";
    let dir: &[u8] = b"/tmp\0";
    let actual = (16 + env.len() + dir.len()) as u32;
    match rng.below(12) {
        0 => {
            let random = rng.next_u64() as u32;
            let l = rng.pick(&[
                0,
                1,
                15,
                16,
                actual - 1,
                actual + 1,
                MAX_EXTENSION_LEN as u32,
                MAX_EXTENSION_LEN as u32 + 1,
                u32::MAX,
                random,
            ]);
            (
                format!("ext_len {l}"),
                extension(0, 2, env, dir, Some((0, l))),
            )
        }
        1 => {
            let random = rng.next_u64() as u32 | 2;
            let f = rng.pick(&[2, 3, 0x8000_0000, u32::MAX, random]);
            (format!("flags {f:#x}"), extension(f, 2, env, dir, None))
        }
        2 => {
            let n = rng.pick(&[0, 1, 3, 1000, u32::MAX]);
            (
                format!("env_count {n} for 2"),
                extension(1, n, env, dir, None),
            )
        }
        3 => {
            let n = rng.pick(&[0, 3, 9, 11, 15, u32::MAX, u32::MAX - 4]);
            (
                format!("env_len {n} for 10"),
                extension(0, 2, env, dir, Some((3, n))),
            )
        }
        4 => {
            let n = rng.pick(&[0, 4, 6, u32::MAX, u32::MAX - 9]);
            (
                format!("dir_len {n} for 5"),
                extension(0, 2, env, dir, Some((4, n))),
            )
        }
        5 => (
            "env without NUL".into(),
            extension(0, 2, b"A=1xB=twox", dir, None),
        ),
        6 => (
            "dir without NUL".into(),
            extension(0, 2, env, b"/tmpx", None),
        ),
        7 => (
            "dir with two strings".into(),
            extension(0, 2, env, b"/t\0mp\0", None),
        ),
        8 => (
            "env entry without =".into(),
            extension(0, 2, b"A=1\0Btwo\0", dir, None),
        ),
        9 => (
            "env entry =first".into(),
            extension(0, 2, b"A=1\0=two\0", dir, None),
        ),
        10 => {
            // An extension as long as allowed, all of it one env string.
            let mut big = vec![b'x'; MAX_EXTENSION_LEN - 16];
            big[0] = b'K';
            big[1] = b'=';
            let nul = rng.below(2) == 0;
            if nul {
                *big.last_mut().expect("non-empty") = 0;
            }
            (
                format!("one env string of {} bytes, NUL={nul}", big.len()),
                extension(0, 1, &big, b"", None),
            )
        }
        _ => {
            // Random bytes after a valid ext_len.
            let len = 16 + rng.below(64);
            let body = rng.bytes(len);
            let mut b = base(2);
            b.truncate(V1_SIZE);
            b.extend_from_slice(&(body.len() as u32).to_ne_bytes());
            b.extend_from_slice(&body);
            (format!("random extension of {}", body.len()), b)
        }
    }
}

// ---------------------------------------------------------------------------
// Talking to wshd

/// What happened to one case.
enum Fate {
    Unanswered,
    Answered { fds: usize, exit: Option<Vec<u8>> },
    Vanished,
}

/// Read every readable descriptor to its end (EOF, or EIO on a pty master),
/// within `deadline`; returns the last descriptor's bytes (the exit word).
fn drain(fds: Vec<OwnedFd>, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut open: Vec<(OwnedFd, Vec<u8>)> = fds.into_iter().map(|f| (f, Vec::new())).collect();
    let last = open.len() - 1;
    let mut done = vec![false; open.len()];
    let mut exit = Vec::new();
    while done.iter().any(|d| !d) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("child did not finish in time".into());
        }
        let idx: Vec<usize> = (0..open.len()).filter(|&i| !done[i]).collect();
        let mut pfds: Vec<PollFd> = idx
            .iter()
            .map(|&i| PollFd::new(open[i].0.as_fd(), PollFlags::POLLIN))
            .collect();
        let ms = left.as_millis().min(1000) as u16;
        poll(&mut pfds, PollTimeout::from(ms)).map_err(|e| format!("poll: {e}"))?;
        let ready: Vec<bool> = pfds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(pfds);
        for (k, &i) in idx.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let mut buf = [0u8; 65536];
            match nix::unistd::read(open[i].0.as_raw_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => done[i] = true,
                Ok(n) => open[i].1.extend_from_slice(&buf[..n]),
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(format!("reading a child's descriptor: {e}")),
            }
        }
    }
    exit.extend_from_slice(&open[last].1);
    Ok(exit)
}

fn send(sock: &Path, case: &Case) -> Result<Fate, String> {
    let mut s = UnixStream::connect(sock).map_err(|e| format!("wshd stopped accepting: {e}"))?;
    // wshd may close early (it refuses at the first bad field); a broken
    // pipe on our side is then expected.
    match case.chunks {
        None => {
            let _ = s.write_all(&case.bytes);
        }
        Some(seed) => {
            let mut rng = Rng(seed | 1);
            let mut rest = case.bytes.as_slice();
            while !rest.is_empty() {
                let n = (1 + rng.below(4096)).min(rest.len());
                if s.write_all(&rest[..n]).is_err() {
                    break;
                }
                rest = &rest[n..];
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    if case.ending == Ending::Vanish {
        drop(s);
        return Ok(Fate::Vanished);
    }
    let _ = s.shutdown(Shutdown::Write);
    s.set_read_timeout(Some(CHILD_DEADLINE))
        .map_err(|e| e.to_string())?;
    let mut word = [0u8; 4];
    let resp = match wire::fdpass::recv_with_fds(s.as_fd(), &mut word) {
        Ok((0, _)) => return Ok(Fate::Unanswered),
        // wshd closed with our bytes unread: a refusal too.
        Err(FdPassError::Recv(Errno::ECONNRESET)) => return Ok(Fate::Unanswered),
        Err(FdPassError::Recv(Errno::EAGAIN)) => {
            return Err("wshd neither answered nor closed".into())
        }
        Err(e) => return Err(format!("reading the response: {e}")),
        Ok((4, fds)) => client::Response {
            version: i32::from_ne_bytes(word),
            fds,
        },
        Ok((n, _)) => return Err(format!("a response of {n} bytes")),
    };
    let n = resp.fds.len();
    // Stdin (without a tty) is ours to close; everything else is drained.
    let mut fds = resp.fds;
    let Some(req) = decode_like_wshd(&case.bytes) else {
        return Ok(Fate::Answered { fds: n, exit: None });
    };
    if req.want_pidfd {
        fds.pop();
    }
    if !req.tty && !fds.is_empty() {
        fds.remove(0);
    }
    if fds.is_empty() {
        return Ok(Fate::Answered { fds: n, exit: None });
    }
    let exit = drain(fds, Instant::now() + CHILD_DEADLINE)?;
    Ok(Fate::Answered {
        fds: n,
        exit: Some(exit),
    })
}

/// Descriptors wshd holds.
fn fd_count(c: &Container) -> usize {
    fs::read_dir(format!("/proc/{}/fd", c.pid()))
        .expect("reading wshd's /proc/PID/fd")
        .count()
}

/// wshd's log lines counted by kind (the text before the first detail).
fn log_kinds(log: &str) -> String {
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for line in log.lines() {
        let kind: String = line
            .split([
                ':', '"', '(', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
            ])
            .take(2)
            .collect::<Vec<_>>()
            .join(":");
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
        .iter()
        .map(|(k, n)| format!("  {n:>7} {k}\n"))
        .collect()
}

/// `pid state cmdline` of each process, for failure messages.
fn describe(pids: &[i32]) -> String {
    pids.iter()
        .map(|p| {
            let stat = fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(str::to_string))
                .unwrap_or_default();
            let cmd = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let fds = fs::read_dir(format!("/proc/{p}/fd"))
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| fs::read_link(e.path()).ok())
                        .map(|l| l.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            format!("\n  {p} {state} {cmd:?} fds [{fds}]")
        })
        .collect()
}

fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// A well-formed request through the raw client: answered, exact output.
fn serves(c: &Container, tag: &str) -> Result<(), String> {
    let req = client::request(
        &["sh", "-c", &format!("echo {tag}; echo e >&2; exit 3")],
        "vcap",
    );
    let out = client::run(&c.socket(), &req, b"").map_err(|e| format!("{tag}: {e}"))?;
    if (out.stdout.as_slice(), out.stderr.as_slice(), out.exit)
        != (format!("{tag}\n").as_bytes(), b"e\n".as_slice(), Some(3))
    {
        return Err(format!("{tag}: wrong outcome {out:?}"));
    }
    Ok(())
}

/// Clients that never read what wshd sends them and never disconnect.
struct Holders {
    /// Sent a whole request, never read the response (the descriptors stay
    /// in flight in the socket).
    unread: Vec<UnixStream>,
    /// Took the descriptors, never read or wrote them.
    hoarded: Vec<(UnixStream, Vec<OwnedFd>)>,
    /// Sent part of a request and went quiet (wshd drops them after its
    /// request timeout).
    stalled: Vec<UnixStream>,
}

fn hold(c: &Container, rng: &mut Rng) -> Holders {
    let sock = c.socket();
    let mut h = Holders {
        unread: Vec::new(),
        hoarded: Vec::new(),
        stalled: Vec::new(),
    };
    // `yes` fills its stdout pipe and blocks; `cat` waits for stdin.
    let yes = client::request(&["yes", "held"], "vcap").encode().unwrap();
    let cat = client::request(&["cat"], "").encode().unwrap();
    for i in 0..HOLDERS {
        let req = if i % 2 == 0 { &yes } else { &cat };
        let mut s = UnixStream::connect(&sock).expect("connecting a holder");
        match i % 5 {
            0 | 1 => {
                s.write_all(req).unwrap();
                h.unread.push(s);
            }
            2 | 3 => {
                s.write_all(req).unwrap();
                s.set_read_timeout(Some(CHILD_DEADLINE)).unwrap();
                let resp = client::read_response(&s)
                    .expect("a holder's response")
                    .expect("a holder is answered");
                assert_eq!(resp.fds.len(), 4);
                h.hoarded.push((s, resp.fds));
            }
            _ => {
                let cut = 1 + rng.below(req.len() - 1);
                s.write_all(&req[..cut]).unwrap();
                h.stalled.push(s);
            }
        }
    }
    h
}

#[derive(Default)]
struct Tally {
    answered: usize,
    refused: usize,
    vanished: usize,
    failures: Vec<String>,
}

impl Tally {
    fn count(&mut self, fate: Fate) {
        match fate {
            Fate::Unanswered => self.refused += 1,
            Fate::Answered { .. } => self.answered += 1,
            Fate::Vanished => self.vanished += 1,
        }
    }
}

/// Check what wshd did with `case` against what the decoder says it must.
fn judge(case: &Case, got: Result<Fate, String>) -> Result<Fate, String> {
    let fate = got?;
    match (&fate, decode_like_wshd(&case.bytes)) {
        (Fate::Vanished, _) | (Fate::Unanswered, None) => {}
        (Fate::Unanswered, Some(req)) => return Err(format!("not answered: {req:?}")),
        (Fate::Answered { .. }, None) => return Err("answered a bad request".into()),
        (Fate::Answered { fds, exit }, Some(req)) => {
            let want = match (req.tty, req.want_pidfd) {
                (false, false) => 4,
                (false, true) => 5,
                (true, false) => 2,
                (true, true) => 3,
            };
            if *fds != want {
                return Err(format!("{fds} descriptors, want {want}"));
            }
            if exit.as_ref().is_some_and(|w| w.len() > 4) {
                return Err(format!("exit pipe gave {exit:?}"));
            }
        }
    }
    Ok(fate)
}

// ---------------------------------------------------------------------------
// The test

#[test]
fn ten_thousand_malformed_requests_leave_wshd_serving_and_clean() {
    if !require_root(module_path!()) {
        return;
    }
    let seed = torture::seed();
    let _report = SeedOnFailure {
        test: "torture_wshd",
        seed,
    };
    let total = requests_to_send();
    eprintln!("torture_wshd: {total} requests, TORTURE_SEED={seed:x}");
    let mut rng = Rng(seed);
    let c = Container::start();
    let sock = c.socket();
    let init = c.pid().as_raw();

    // Baseline once wshd has served a request (anything it allocates
    // lazily is then allocated).
    serves(&c, "warm").unwrap();
    assert!(eventually(|| c.tree().len() == 1));
    let base_fds = fd_count(&c);

    let holders = hold(&c, &mut rng);
    let exit_pipes = holders.unread.len() + holders.hoarded.len();
    // Every held child's exit pipe stays with wshd (and, for a moment, the
    // stalled connections).
    assert!(
        eventually(|| fd_count(&c) >= base_fds + exit_pipes),
        "wshd holds {} descriptors, baseline {base_fds} + {exit_pipes} exit pipes",
        fd_count(&c)
    );

    let fields = fields();
    let started = Instant::now();
    let tally = Mutex::new(Tally::default());
    // Several clients at once, so wshd interleaves connections at every
    // stage; each worker's cases follow from the seed alone.
    std::thread::scope(|scope| {
        for w in 0..WORKERS {
            let (tally, fields, sock, c) = (&tally, &fields, &sock, &c);
            scope.spawn(move || {
                let mut rng = Rng(seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
                for i in (w..total).step_by(WORKERS) {
                    let case = make_case(i, &mut rng, fields);
                    let verdict = judge(&case, send(sock, &case));
                    let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                    match verdict {
                        Ok(fate) => t.count(fate),
                        Err(e) => t.failures.push(format!("#{i} {}: {e}", case.what)),
                    }
                    if t.failures.len() > 20 || !Path::new(&format!("/proc/{init}")).exists() {
                        return;
                    }
                    drop(t);
                    if w == 0 && i % 500 < WORKERS {
                        if let Err(e) = serves(c, &format!("during{i}")) {
                            tally
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .failures
                                .push(e);
                        }
                    }
                }
            });
        }
    });
    let Tally {
        answered,
        refused,
        vanished,
        failures,
    } = tally.into_inner().unwrap_or_else(|e| e.into_inner());
    let elapsed = started.elapsed();
    eprintln!(
        "torture_wshd: {total} cases in {elapsed:?}: {answered} answered, {refused} refused, \
         {vanished} vanished"
    );
    assert!(
        failures.is_empty(),
        "{} failures (seed {seed:x}):\n{}\nwshd log tail:\n{}",
        failures.len(),
        failures.join("\n"),
        c.log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        answered > 0 && refused > total / 2,
        "the mix is off: {answered} answered, {refused} refused"
    );

    eprintln!("torture_wshd: wshd's log by kind:\n{}", log_kinds(&c.log()));

    // Still serving while the holders hold.
    serves(&c, "held").unwrap();
    let out = c.wsh(&["echo", "through wsh"]);
    assert_eq!(
        (out.stdout.as_slice(), out.status.code()),
        (b"through wsh\n".as_slice(), Some(0)),
        "{out:?}"
    );

    // Letting go of the holders ends their children (EOF on stdin, SIGPIPE
    // on stdout) and frees every descriptor wshd held for them.
    drop(holders);
    assert!(
        eventually(|| fd_count(&c) == base_fds),
        "wshd holds {} descriptors, {base_fds} before the run",
        fd_count(&c)
    );
    assert!(
        eventually(|| c.tree().len() == 1),
        "processes left in the container: {}",
        describe(&c.tree())
    );
    assert!(container::zombies(&c.tree()).is_empty());
    assert_eq!(c.processes(), vec![init], "only wshd is left");

    // And a normal request through wsh works at the end.
    let out = c.wsh_with(&["--user", "vcap", "sh", "-c", "cat; exit 5"], b"in\n", &[]);
    assert_eq!(
        (out.stdout.as_slice(), out.status.code()),
        (b"in\n".as_slice(), Some(5)),
        "{out:?}"
    );
    assert!(eventually(|| fd_count(&c) == base_fds));
    assert_eq!(c.pid().as_raw(), init);
    c.destroy().unwrap();
}
