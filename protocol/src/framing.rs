//! Length-prefixed frames: `<decimal length>\r\n<payload>\r\n`.
//!
//! See the crate documentation for the byte-by-byte layout. Two readers are
//! offered: [`FrameReader`] pulls from a blocking [`std::io::Read`], and
//! [`FrameDecoder`] is fed bytes by hand (for an event loop); the reader is
//! built on the decoder, so both accept and refuse exactly the same input.
//!
//! After any [`FrameError`] the stream is out of step and must be dropped:
//! neither reader tries to resynchronise.

use std::io::{self, Read, Write};

/// Default bound on a frame's payload: 64 MiB.
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// Most characters accepted in the length line before its `\r` (leading
/// zeros included). Anything longer is refused as [`FrameError::BadLength`].
pub const MAX_LENGTH_DIGITS: usize = 32;

/// How much of a bad length line [`FrameError::BadLength`] quotes.
const QUOTE_LIMIT: usize = 40;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The underlying reader failed, or ended inside a frame
    /// ([`io::ErrorKind::UnexpectedEof`]).
    #[error("frame i/o: {0}")]
    Io(#[from] io::Error),
    /// The length line is empty, holds something other than ASCII digits,
    /// or is too long. Holds what was seen, escaped and truncated.
    #[error("bad frame length {0:?}")]
    BadLength(String),
    /// The announced payload is larger than the reader's bound. Nothing was
    /// allocated for it.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The announced length (`usize::MAX` if it overflowed).
        len: usize,
        /// The reader's bound.
        max: usize,
    },
    /// A `\r` not followed by `\n` after the length, or the payload not
    /// followed by `\r\n`.
    #[error("frame not terminated by \\r\\n")]
    BadTerminator,
}

/// Frames `payload`: length line, payload, `\r\n`.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let len = payload.len().to_string();
    let mut out = Vec::with_capacity(len.len() + payload.len() + 4);
    out.extend_from_slice(len.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

/// Writes one frame holding `payload` (in a single `write_all`) and flushes.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    w.write_all(&encode_frame(payload))?;
    w.flush()
}

fn quote(seen: &[u8]) -> String {
    let mut s = String::new();
    for &b in seen.iter().take(QUOTE_LIMIT) {
        s.extend(std::ascii::escape_default(b).map(char::from));
    }
    if seen.len() > QUOTE_LIMIT {
        s.push_str("...");
    }
    s
}

/// Incremental frame parser: feed it bytes with [`push`](Self::push), take
/// whole frames with [`next_frame`](Self::next_frame).
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder refusing payloads longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            max,
            buf: Vec::new(),
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// True when no byte of an unfinished frame is buffered: an end of
    /// stream here is clean.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes buffered and not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame's payload, `Ok(None)` if more bytes are needed.
    /// Errors are reported as soon as the buffered bytes prove them (a
    /// length over the bound is refused before its payload arrives).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some((header, len)) = self.parse_header()? else {
            return Ok(None);
        };
        let Some(total) = header.checked_add(len).and_then(|n| n.checked_add(2)) else {
            return Err(FrameError::TooLong { len, max: self.max });
        };
        // Check the terminator's bytes as soon as they are here.
        let term_at = header + len;
        for (i, want) in [b'\r', b'\n'].into_iter().enumerate() {
            match self.buf.get(term_at + i) {
                Some(&b) if b != want => return Err(FrameError::BadTerminator),
                _ => {}
            }
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let payload = self.buf[header..term_at].to_vec();
        self.buf.drain(..total);
        Ok(Some(payload))
    }

    /// Parses the length line from the buffer start. `Ok(Some((header_len,
    /// payload_len)))` once the whole `<digits>\r\n` is here.
    fn parse_header(&self) -> Result<Option<(usize, usize)>, FrameError> {
        let mut len: usize = 0;
        for (i, &b) in self.buf.iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    if i >= MAX_LENGTH_DIGITS {
                        return Err(FrameError::BadLength(quote(&self.buf[..=i])));
                    }
                    let digit = usize::from(b - b'0');
                    len = match len.checked_mul(10).and_then(|n| n.checked_add(digit)) {
                        Some(n) if n <= self.max => n,
                        Some(n) => {
                            return Err(FrameError::TooLong {
                                len: n,
                                max: self.max,
                            })
                        }
                        None => {
                            return Err(FrameError::TooLong {
                                len: usize::MAX,
                                max: self.max,
                            })
                        }
                    };
                }
                b'\r' if i > 0 => {
                    return match self.buf.get(i + 1) {
                        None => Ok(None),
                        Some(b'\n') => Ok(Some((i + 2, len))),
                        Some(_) => Err(FrameError::BadTerminator),
                    };
                }
                _ => return Err(FrameError::BadLength(quote(&self.buf[..=i]))),
            }
        }
        Ok(None)
    }
}

/// Reads frames from a blocking reader; `Ok(None)` at clean EOF between
/// frames.
///
/// Reads in chunks of up to 64 KiB and keeps what goes past the current
/// frame for the next call, so wrap a raw socket directly (no `BufReader`
/// needed). Memory grows with the bytes actually received, never with the
/// announced length alone.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    decoder: FrameDecoder,
    eof: bool,
}

const CHUNK: usize = 64 << 10;

impl<R: Read> FrameReader<R> {
    /// A reader refusing payloads longer than `max` bytes.
    pub fn new(r: R, max: usize) -> Self {
        FrameReader {
            inner: r,
            decoder: FrameDecoder::new(max),
            eof: false,
        }
    }

    /// The next frame's payload; `Ok(None)` if the stream ended cleanly
    /// before a new frame began; an [`io::ErrorKind::UnexpectedEof`] error if
    /// it ended inside one.
    pub fn read_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let mut chunk = [0u8; CHUNK];
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Some(frame));
            }
            if self.eof {
                return self.end_of_stream();
            }
            match self.inner.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return self.end_of_stream();
                }
                Ok(n) => self.decoder.push(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FrameError::Io(e)),
            }
        }
    }

    fn end_of_stream(&self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.decoder.is_empty() {
            Ok(None)
        } else {
            Err(FrameError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "stream ended inside a frame ({} bytes buffered)",
                    self.decoder.buffered()
                ),
            )))
        }
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The wrapped reader, mutably (e.g. to write replies on a socket).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Gives the reader back; buffered bytes of a next frame are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its data one byte per read.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.is_empty()) {
                (Some((&b, rest)), false) => {
                    buf[0] = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    /// Fails with Interrupted on every other read.
    struct Interrupting<'a> {
        data: &'a [u8],
        flip: bool,
    }

    impl Read for Interrupting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.flip = !self.flip;
            if self.flip {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
            let n = self.data.len().min(buf.len()).min(3);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read_all(bytes: &[u8], max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut r = FrameReader::new(bytes, max);
        let mut out = Vec::new();
        while let Some(f) = r.read_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    fn payloads() -> Vec<Vec<u8>> {
        vec![
            b"".to_vec(),
            b"a".to_vec(),
            b"\r\n".to_vec(),
            b"12\r\n34\r\n".to_vec(),
            (0..=255u8).collect(),
            vec![0xffu8; 200_000],
        ]
    }

    #[test]
    fn encode_layout() {
        assert_eq!(encode_frame(b"hello"), b"5\r\nhello\r\n");
        assert_eq!(encode_frame(b""), b"0\r\n\r\n");
        let mut v = Vec::new();
        write_frame(&mut v, b"xy").unwrap();
        assert_eq!(v, b"2\r\nxy\r\n");
    }

    #[test]
    fn round_trip() {
        let mut stream = Vec::new();
        for p in payloads() {
            write_frame(&mut stream, &p).unwrap();
        }
        assert_eq!(read_all(&stream, DEFAULT_MAX_FRAME).unwrap(), payloads());
    }

    #[test]
    fn one_byte_at_a_time() {
        let mut stream = Vec::new();
        for p in payloads() {
            stream.extend(encode_frame(&p));
        }
        let mut r = FrameReader::new(Trickle(&stream), DEFAULT_MAX_FRAME);
        for p in payloads() {
            assert_eq!(r.read_frame().unwrap(), Some(p));
        }
        assert!(r.read_frame().unwrap().is_none());
        assert!(r.get_ref().0.is_empty());
    }

    #[test]
    fn interrupted_reads_are_retried() {
        let stream = [encode_frame(b"abcdefg"), encode_frame(b"")].concat();
        let mut r = FrameReader::new(
            Interrupting {
                data: &stream,
                flip: false,
            },
            100,
        );
        assert_eq!(r.read_frame().unwrap().unwrap(), b"abcdefg");
        assert_eq!(r.read_frame().unwrap().unwrap(), b"");
        assert!(r.read_frame().unwrap().is_none());
    }

    #[test]
    fn clean_eof() {
        assert!(read_all(b"", 10).unwrap().is_empty());
        let mut r = FrameReader::new(&b"1\r\nx\r\n"[..], 10);
        assert_eq!(r.read_frame().unwrap().unwrap(), b"x");
        assert!(r.read_frame().unwrap().is_none());
        assert!(r.read_frame().unwrap().is_none());
    }

    fn assert_eof_error(bytes: &[u8]) {
        match read_all(bytes, 100) {
            Err(FrameError::Io(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{bytes:?}")
            }
            other => panic!("{bytes:?}: expected UnexpectedEof, got {other:?}"),
        }
    }

    #[test]
    fn eof_mid_frame() {
        for cut in [
            &b"1"[..],
            b"12",
            b"5\r",
            b"5\r\n",
            b"5\r\nabc",
            b"5\r\nabcde",
            b"5\r\nabcde\r",
        ] {
            assert_eof_error(cut);
        }
        // A whole frame, then a partial one.
        assert_eof_error(b"1\r\nx\r\n3\r\nab");
    }

    fn assert_bad_length(bytes: &[u8]) -> String {
        match read_all(bytes, 1000) {
            Err(FrameError::BadLength(seen)) => seen,
            other => panic!("{bytes:?}: expected BadLength, got {other:?}"),
        }
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(assert_bad_length(b"\r\n\r\n"), "\\r");
        assert_eq!(assert_bad_length(b"abc\r\n"), "a");
        assert_eq!(assert_bad_length(b"12x\r\n"), "12x");
        assert_eq!(assert_bad_length(b"-1\r\n"), "-");
        assert_eq!(assert_bad_length(b" 1\r\n"), " ");
        assert_eq!(assert_bad_length(b"1 \r\n"), "1 ");
        assert_eq!(assert_bad_length(b"1\n"), "1\\n");
        assert_eq!(assert_bad_length(b"+1\r\n"), "+");
        assert_eq!(assert_bad_length(b"\xff\r\n"), "\\xff");
        // Endless digits (zeros never overflow) are cut off, and the quote
        // is truncated.
        let zeros = vec![b'0'; 10_000];
        let seen = assert_bad_length(&zeros);
        assert!(seen.len() <= QUOTE_LIMIT + 3, "{seen}");
        assert!(seen.starts_with("000"));
    }

    #[test]
    fn leading_zeros() {
        assert_eq!(
            read_all(b"003\r\nabc\r\n", 10).unwrap(),
            vec![b"abc".to_vec()]
        );
        assert_eq!(read_all(b"0\r\n\r\n", 10).unwrap(), vec![Vec::new()]);
        assert_eq!(read_all(b"00\r\n\r\n", 10).unwrap(), vec![Vec::new()]);
    }

    #[test]
    fn too_long_refused_before_payload() {
        // A 10^18-byte announcement with no payload behind it: refused at
        // once, nothing allocated.
        match read_all(b"1000000000000000000\r\n", DEFAULT_MAX_FRAME) {
            Err(FrameError::TooLong { len, max }) => {
                assert_eq!(max, DEFAULT_MAX_FRAME);
                assert!(len > max);
            }
            other => panic!("{other:?}"),
        }
        // Beyond usize.
        assert!(matches!(
            read_all(b"99999999999999999999999999\r\n", DEFAULT_MAX_FRAME),
            Err(FrameError::TooLong { .. })
        ));
        // Exactly the bound is fine, one more is not.
        assert_eq!(
            read_all(b"4\r\nabcd\r\n", 4).unwrap(),
            vec![b"abcd".to_vec()]
        );
        assert!(matches!(
            read_all(b"5\r\nabcde\r\n", 4),
            Err(FrameError::TooLong { len: 5, max: 4 })
        ));
        // The decoder says so before the length line is even finished.
        let mut d = FrameDecoder::new(100);
        d.push(b"1000");
        assert!(matches!(
            d.next_frame(),
            Err(FrameError::TooLong {
                len: 1000,
                max: 100
            })
        ));
    }

    #[test]
    fn bad_terminators() {
        for bytes in [
            &b"3\r\nabcXY"[..],
            b"3\r\nabc\n\r",
            b"3\r\nabc\rX",
            b"3\r\nabcd\r\n",
            b"3\rX",
            b"3\r\r\n",
            b"1\r\nx\r\n1\r\nyZZ",
        ] {
            assert!(
                matches!(read_all(bytes, 100), Err(FrameError::BadTerminator)),
                "{bytes:?}: {:?}",
                read_all(bytes, 100)
            );
        }
        // The decoder notices a wrong terminator byte before the rest of
        // the stream.
        let mut d = FrameDecoder::new(100);
        d.push(b"2\r\nab\n");
        assert!(matches!(d.next_frame(), Err(FrameError::BadTerminator)));
    }

    #[test]
    fn decoder_incremental() {
        let stream = [
            encode_frame(b"one"),
            encode_frame(b""),
            encode_frame(b"three"),
        ]
        .concat();
        let mut d = FrameDecoder::new(100);
        let mut got = Vec::new();
        for b in &stream {
            d.push(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, vec![b"one".to_vec(), b"".to_vec(), b"three".to_vec()]);
        assert!(d.is_empty());
    }

    #[test]
    fn error_display() {
        let e = FrameError::TooLong { len: 9, max: 4 };
        assert_eq!(e.to_string(), "frame of 9 bytes exceeds the limit of 4");
        assert!(FrameError::BadLength("x".into()).to_string().contains("x"));
    }
}
