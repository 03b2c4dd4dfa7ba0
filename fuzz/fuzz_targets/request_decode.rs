//! The wsh request decoder on arbitrary bytes, decoded the way wshd reads a
//! connection (fixed part, then the v2 `ext_len` word, then the extension),
//! plus an encode/decode round trip of requests built from the input.
//!
//! The first input byte picks the mode: raw bytes as they are, the bytes
//! patched into a valid v1/v2 request (so the fuzzer reaches past the
//! length check), or a structured request to round-trip.
#![no_main]

use std::ffi::CString;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use wire::request::{
    decode_request, Decoded, Request, Rlimit, ARG_BUF_SIZE, LANG_SIZE, MAX_EXTENSION_LEN,
    RLIMIT_SLOTS, USER_SIZE, V1_SIZE,
};

/// What wshd does with the bytes of one connection: `None` where it would
/// refuse the request or keep waiting for more bytes.
fn decode_like_wshd(buf: &[u8]) -> Option<Request> {
    match decode_request(buf) {
        Ok(Decoded::Complete(req)) => Some(req),
        _ => None,
    }
}

/// Whatever decodes must encode again and decode to the same request.
fn check_reencodes(req: &Request) {
    let bytes = req
        .encode()
        .unwrap_or_else(|e| panic!("decoded request does not encode: {e}: {req:?}"));
    let again = decode_like_wshd(&bytes).expect("re-encoded request decodes");
    assert_eq!(&again, req);
}

fn base(version: i32) -> Vec<u8> {
    let req = Request {
        version,
        tty: false,
        argv: vec![
            CString::new("sh").unwrap(),
            CString::new("-c").unwrap(),
            CString::new("echo ok").unwrap(),
        ],
        rlimits: wire::request::rlimits_from_env(|_| None).unwrap(),
        user: b"vcap".to_vec(),
        lang: b"C.UTF-8".to_vec(),
        env: if version == 2 {
            vec![CString::new("A=1").unwrap()]
        } else {
            Vec::new()
        },
        dir: (version == 2).then(|| CString::new("/tmp").unwrap()),
        want_pidfd: version == 2,
    };
    req.encode().unwrap()
}

/// Overwrite spans of a valid request with the fuzzer's bytes.
fn patched(u: &mut Unstructured) -> Result<Vec<u8>> {
    let mut buf = base(if u.arbitrary::<bool>()? { 2 } else { 1 });
    let patches = u.int_in_range(0..=8)?;
    for _ in 0..patches {
        let off = u.int_in_range(0..=buf.len() - 1)?;
        let len = u.int_in_range(0..=64usize)?.min(buf.len() - off);
        let bytes = u.bytes(len)?;
        buf[off..off + bytes.len()].copy_from_slice(bytes);
    }
    // Sometimes cut or extend the tail, as a short or chatty client would.
    match u.int_in_range(0..=3u8)? {
        0 => {
            let keep = u.int_in_range(0..=buf.len())?;
            buf.truncate(keep);
        }
        1 => {
            let n = u.len();
            buf.extend_from_slice(u.bytes(n)?);
        }
        _ => {}
    }
    Ok(buf)
}

fn bytes_without_nul(u: &mut Unstructured, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?;
    let mut v = Vec::with_capacity(len);
    for _ in 0..len {
        let b: u8 = u.arbitrary()?;
        v.push(if b == 0 { b'.' } else { b });
    }
    Ok(v)
}

fn cstring(u: &mut Unstructured, max: usize) -> Result<CString> {
    Ok(CString::new(bytes_without_nul(u, max)?).expect("no NUL"))
}

/// A request built field by field from the input.
fn structured(u: &mut Unstructured) -> Result<Request> {
    let version = if u.arbitrary::<bool>()? { 2 } else { 1 };
    let mut argv = Vec::new();
    for _ in 0..u.int_in_range(0..=40u32)? {
        argv.push(cstring(u, 300)?);
    }
    let mut rlimits = Vec::new();
    for _ in 0..u.int_in_range(0..=RLIMIT_SLOTS)? {
        rlimits.push(Rlimit {
            id: u.int_in_range(0..=RLIMIT_SLOTS as i32 - 1)?,
            cur: u.arbitrary()?,
            max: u.arbitrary()?,
        });
    }
    let mut env = Vec::new();
    let mut dir = None;
    let mut want_pidfd = false;
    if version == 2 {
        for _ in 0..u.int_in_range(0..=20u32)? {
            let mut e = bytes_without_nul(u, 40)?;
            // Mostly well-formed KEY=VALUE, sometimes not, to see encode refuse.
            if u.int_in_range(0..=9u8)? != 0 {
                e.insert(0, b'K');
                let at = u.int_in_range(1..=e.len())?;
                e.insert(at, b'=');
            }
            env.push(CString::new(e).expect("no NUL"));
        }
        if u.arbitrary()? {
            dir = Some(cstring(u, 200)?);
        }
        want_pidfd = u.arbitrary()?;
    }
    Ok(Request {
        version,
        tty: u.arbitrary()?,
        argv,
        rlimits,
        user: bytes_without_nul(u, USER_SIZE + 2)?,
        lang: bytes_without_nul(u, 40)?,
        env,
        dir,
        want_pidfd,
    })
}

fn round_trip(req: &Request) {
    let env_ok = req.env.iter().all(|e| {
        let b = e.as_bytes();
        b.contains(&b'=') && b[0] != b'='
    });
    let args: usize = req.argv.iter().map(|a| a.as_bytes_with_nul().len()).sum();
    let fits = args <= ARG_BUF_SIZE
        && req.user.len() < USER_SIZE
        && req.lang.len() < LANG_SIZE
        && (req.version == 1 || env_ok);
    match req.encode() {
        Ok(bytes) => {
            assert!(fits, "encode accepted what it cannot carry: {req:?}");
            if req.version == 1 {
                assert_eq!(bytes.len(), V1_SIZE);
            } else {
                let ext = u32::from_ne_bytes(bytes[V1_SIZE..V1_SIZE + 4].try_into().unwrap());
                assert!((16..=MAX_EXTENSION_LEN as u32).contains(&ext));
                assert_eq!(bytes.len(), V1_SIZE + 4 + ext as usize);
            }
            let back = decode_like_wshd(&bytes).expect("an encoded request decodes");
            assert_eq!(&back, req);
            // Any strict prefix is incomplete, never a different request.
            let cut = bytes.len() - 1 - (req.argv.len() % bytes.len());
            assert_eq!(decode_like_wshd(&bytes[..cut]), None);
        }
        Err(_) => assert!(!fits, "encode refused a request that fits: {req:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Some(req) = decode_like_wshd(rest) {
                check_reencodes(&req);
            }
        }
        1 => {
            let mut u = Unstructured::new(rest);
            if let Ok(buf) = patched(&mut u) {
                if let Some(req) = decode_like_wshd(&buf) {
                    check_reencodes(&req);
                }
            }
        }
        _ => {
            let mut u = Unstructured::new(rest);
            if let Ok(req) = structured(&mut u) {
                round_trip(&req);
            }
        }
    }
});
