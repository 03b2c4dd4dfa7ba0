//! The iomux framing of the wire crate on arbitrary bytes: the offset
//! header, the status word, the cursors file and the job files (tails,
//! status), decoded from memory and read back from real files, with their
//! invariants: what decodes encodes to the same bytes, lengths outside the
//! layout are refused, and position arithmetic stays consistent across the
//! 2^32 wrap.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wire::iomux::{
    decode_offset, encode_offset, pos_before, pos_diff, read_status_file, read_tail, Cursors,
    Stream, Tail, WaitStatus, CURSORS_LEN, LINK_FAILURE, OFFSET_LEN, RING_SIZE, STATUS_LEN,
};

fn word(data: &[u8], at: usize) -> [u8; 4] {
    let mut w = [0u8; 4];
    for (i, b) in w.iter_mut().enumerate() {
        *b = data.get(at + i).copied().unwrap_or(0);
    }
    w
}

/// A directory of this process for the job files, under TMPDIR (which
/// tests/fuzz.sh points at a directory it removes afterwards).
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("iomux-fuzz-{}", std::process::id()));
        fs::create_dir_all(&d).expect("creating the scratch directory");
        d
    })
}

fn check_words(data: &[u8]) {
    let a = word(data, 0);
    let pos = decode_offset(a);
    assert_eq!(encode_offset(pos), a);

    let s = WaitStatus::decode(a);
    assert_eq!(s.encode(), a);
    assert!(
        s.exit_code().is_none() || s.signal().is_none(),
        "{s:?} both exited and was killed"
    );
    match s.exit_code() {
        Some(c) => assert_eq!(s.link_exit_code(), c),
        None => assert_eq!(s.link_exit_code(), LINK_FAILURE),
    }
    if let Some(sig) = s.signal() {
        assert!((1..0x7f).contains(&sig));
    }

    let b = decode_offset(word(data, 4));
    let d = pos_diff(pos, b);
    assert_eq!(pos.wrapping_add(d as u32), b);
    assert_eq!(pos_diff(b, pos), d.wrapping_neg());
    assert_eq!(pos_before(pos, b), d > 0);
    assert!(!(pos_before(pos, b) && pos_before(b, pos)));
    assert!(!pos_before(pos, pos));
}

fn check_memory(data: &[u8]) {
    match Cursors::decode(data) {
        Some(c) => {
            assert_eq!(data.len(), CURSORS_LEN);
            assert_eq!(c.encode().as_slice(), data);
            assert_eq!(c.get(Stream::Stdout), decode_offset(word(data, 0)));
            assert_eq!(c.get(Stream::Stderr), decode_offset(word(data, 4)));
        }
        None => assert_ne!(data.len(), CURSORS_LEN),
    }
    match Tail::decode(data) {
        Some(t) => {
            assert!((OFFSET_LEN..=OFFSET_LEN + RING_SIZE).contains(&data.len()));
            assert_eq!(t.encode(), data);
            assert_eq!(t.end(), t.offset.wrapping_add(t.data.len() as u32));
            assert_eq!(pos_diff(t.offset, t.end()), t.data.len() as i32);
        }
        None => assert!(data.len() < OFFSET_LEN || data.len() > OFFSET_LEN + RING_SIZE),
    }
}

/// The same bytes as files on disk, read through the file readers.
fn check_files(data: &[u8]) {
    let dir = scratch();
    let cursors = dir.join("cursors");
    fs::write(&cursors, data).expect("writing the cursors file");
    match Cursors::read(&cursors) {
        Ok(Some(c)) => assert_eq!(Some(c), Cursors::decode(data)),
        Ok(None) => panic!("an existing cursors file read as missing"),
        Err(e) => {
            assert!(Cursors::decode(data).is_none());
            assert!(e.to_string().contains("cursors"), "{e}");
        }
    }

    let stream = if data.first().is_some_and(|b| b & 1 == 1) {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    fs::write(dir.join(stream.tail_name()), data).expect("writing the tail file");
    match read_tail(dir, stream) {
        Ok(Some(t)) => assert_eq!(Some(t), Tail::decode(data)),
        Ok(None) => panic!("an existing tail file read as missing"),
        Err(e) => {
            assert!(Tail::decode(data).is_none());
            assert!(e.to_string().contains(stream.tail_name()), "{e}");
        }
    }

    fs::write(dir.join("status"), data).expect("writing the status file");
    match read_status_file(dir) {
        Ok(Some(s)) => {
            assert_eq!(data.len(), STATUS_LEN);
            assert_eq!(s.encode().as_slice(), data);
        }
        Ok(None) => panic!("an existing status file read as missing"),
        Err(_) => assert_ne!(data.len(), STATUS_LEN),
    }
    wire::iomux::remove_job_files(dir).expect("removing the job files");
    assert_eq!(read_status_file(dir).ok(), Some(None));
    assert_eq!(read_tail(dir, stream).ok(), Some(None));
}

fuzz_target!(|data: &[u8]| {
    check_words(data);
    check_memory(data);
    // The files cost syscalls; a sixteenth of the inputs is plenty for
    // readers that only wrap the decoders checked above.
    if data.first().is_some_and(|b| b & 0xf0 == 0) {
        check_files(data);
    }
});
