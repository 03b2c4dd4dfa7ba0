//! The recent bytes of one output stream, addressed by stream position
//! (u32, wrapping) so that clients only need to remember where they are.
//! The child's output is copied into the ring once ([`crate::intake`]) and
//! clients are written straight from it: no copy in between.
//!
//! The ring holds more than the replay window ([`RING_SIZE`], the contract's
//! 65535 bytes): a fast job is read in chunks of up to the whole capacity,
//! so each wake-up moves more, and a client already connected may lag by up
//! to the capacity. What a new client is given, and what the tail files
//! hold, is exactly the window: the last [`RING_SIZE`] bytes.

use std::io::IoSliceMut;

use bytes::BytesMut;
use wire::iomux::{pos_before, pos_diff, RING_SIZE};

/// Bytes the ring holds. Untouched pages cost no memory: a quiet stream
/// stays small.
pub const RING_CAPACITY: usize = 256 << 10;

pub struct Ring {
    buf: BytesMut,
    /// Bytes of the replay window (at most the capacity).
    window: usize,
    /// Physical index where the next byte goes.
    head: usize,
    /// Bytes currently held (at most the capacity).
    len: usize,
    /// Stream position just after the newest byte.
    end: u32,
}

impl Ring {
    pub fn new() -> Self {
        Self::with_sizes_at(RING_CAPACITY, RING_SIZE, 0)
    }

    /// A ring of `cap` bytes with a replay window of `window` bytes whose
    /// stream starts at position `start` (tests use this to cross the
    /// 32-bit wrap without producing 4 GiB).
    pub fn with_sizes_at(cap: usize, window: usize, start: u32) -> Self {
        assert!(cap > 0 && window > 0 && window <= cap);
        Ring {
            buf: BytesMut::zeroed(cap),
            window,
            head: 0,
            len: 0,
            end: start,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Position of the oldest byte still held: a connected client that
    /// needs anything older has fallen behind.
    pub fn start(&self) -> u32 {
        self.end.wrapping_sub(self.len as u32)
    }

    /// Position of the oldest byte of the replay window: where a new client
    /// starts, and where the tail files start.
    pub fn window_start(&self) -> u32 {
        self.end.wrapping_sub(self.len.min(self.window) as u32)
    }

    pub fn end(&self) -> u32 {
        self.end
    }

    /// Where the next `max` (at most the capacity) bytes go, in one or two
    /// pieces; anything older is overwritten. Call [`Ring::commit`] with the
    /// count actually stored.
    pub fn spare(&mut self, max: usize) -> [IoSliceMut<'_>; 2] {
        let cap = self.capacity();
        let max = max.min(cap);
        let first = max.min(cap - self.head);
        let second = max - first;
        let head = self.head;
        let (low, high) = self.buf.split_at_mut(head);
        [
            IoSliceMut::new(&mut high[..first]),
            IoSliceMut::new(&mut low[..second]),
        ]
    }

    pub fn commit(&mut self, n: usize) {
        let cap = self.capacity();
        debug_assert!(n <= cap);
        self.head = (self.head + n) % cap;
        self.len = (self.len + n).min(cap);
        self.end = self.end.wrapping_add(n as u32);
    }

    /// Copy `data` in (tests, and iomux-spawn's own word on a job that
    /// could not start).
    pub fn push(&mut self, data: &[u8]) {
        for chunk in data.chunks(self.capacity()) {
            let mut off = 0;
            let spare = self.spare(chunk.len());
            for s in spare {
                let n = s.len();
                let mut s = s;
                s.copy_from_slice(&chunk[off..off + n]);
                off += n;
            }
            self.commit(chunk.len());
        }
    }

    /// True when `pos` is still held or is the end (nothing missing yet).
    pub fn holds(&self, pos: u32) -> bool {
        !pos_before(pos, self.start()) && !pos_before(self.end, pos)
    }

    /// The bytes from `pos` to the end, in one or two pieces; `None` when
    /// `pos` has been overwritten or lies in the future.
    pub fn from(&self, pos: u32) -> Option<(&[u8], &[u8])> {
        if !self.holds(pos) {
            return None;
        }
        let cap = self.capacity();
        let count = pos_diff(pos, self.end) as usize;
        let begin = (self.head + cap - count) % cap;
        if begin + count <= cap {
            Some((&self.buf[begin..begin + count], &[]))
        } else {
            Some((&self.buf[begin..], &self.buf[..self.head]))
        }
    }

    /// The replay window, oldest first, with its start position.
    pub fn snapshot(&self) -> (u32, Vec<u8>) {
        let start = self.window_start();
        let (a, b) = self.from(start).unwrap_or((&[], &[]));
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        (start, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(r: &Ring, pos: u32) -> Option<Vec<u8>> {
        r.from(pos).map(|(a, b)| [a, b].concat())
    }

    #[test]
    fn keeps_the_last_capacity_bytes() {
        let mut r = Ring::with_sizes_at(8, 8, 0);
        assert_eq!(r.snapshot(), (0, vec![]));
        r.push(b"abc");
        assert_eq!(r.snapshot(), (0, b"abc".to_vec()));
        r.push(b"defghij");
        assert_eq!(r.start(), 2);
        assert_eq!(r.end(), 10);
        assert_eq!(r.snapshot(), (2, b"cdefghij".to_vec()));
        assert_eq!(joined(&r, 5).unwrap(), b"fghij");
        assert_eq!(joined(&r, 10).unwrap(), b"");
        assert_eq!(joined(&r, 1), None, "overwritten");
        assert_eq!(joined(&r, 11), None, "future");
    }

    #[test]
    fn default_window_is_the_contract_size() {
        let mut r = Ring::new();
        assert!(r.capacity() > RING_SIZE);
        let data: Vec<u8> = (0..70000u32).map(|i| (i % 251) as u8).collect();
        r.push(&data);
        let (start, tail) = r.snapshot();
        assert_eq!(start, 70000 - 65535);
        assert_eq!(r.window_start(), 70000 - 65535);
        assert_eq!(tail, &data[70000 - 65535..]);
        assert_eq!(r.start(), 0, "the ring itself still holds everything");
        assert_eq!(joined(&r, 0).unwrap(), data);
        // past the capacity, both move on
        let more: Vec<u8> = (0..r.capacity() as u32).map(|i| (i % 13) as u8).collect();
        r.push(&more);
        let end = 70000 + more.len() as u32;
        assert_eq!(r.start(), end - r.capacity() as u32);
        assert_eq!(r.window_start(), end - 65535);
        assert_eq!(r.snapshot().1, &more[more.len() - 65535..]);
    }

    #[test]
    fn window_smaller_than_capacity() {
        let mut r = Ring::with_sizes_at(8, 3, u32::MAX - 1);
        assert_eq!(r.snapshot(), (u32::MAX - 1, vec![]));
        r.push(b"ab");
        assert_eq!(r.window_start(), u32::MAX - 1);
        assert_eq!(r.snapshot(), (u32::MAX - 1, b"ab".to_vec()));
        r.push(b"cdefg");
        assert_eq!(r.end(), 5);
        assert_eq!(r.window_start(), 2);
        assert_eq!(r.snapshot(), (2, b"efg".to_vec()));
        assert_eq!(r.start(), u32::MAX - 1);
        assert_eq!(joined(&r, 0).unwrap(), b"cdefg");
        r.push(b"hijk");
        assert_eq!(r.start(), 1);
        assert_eq!(r.window_start(), 6);
        assert_eq!(joined(&r, 1).unwrap(), b"defghijk");
        assert_eq!(joined(&r, 0), None);
    }

    #[test]
    fn positions_wrap_at_32_bits() {
        let mut r = Ring::with_sizes_at(8, 8, u32::MAX - 2);
        r.push(b"0123");
        assert_eq!(r.start(), u32::MAX - 2);
        assert_eq!(r.end(), 1);
        assert_eq!(joined(&r, u32::MAX).unwrap(), b"23");
        assert_eq!(joined(&r, 0).unwrap(), b"3");
        r.push(b"456789");
        assert_eq!(r.start(), u32::MAX);
        assert_eq!(r.end(), 7);
        assert_eq!(joined(&r, u32::MAX - 2), None);
        assert_eq!(joined(&r, u32::MAX).unwrap(), b"23456789");
        assert_eq!(joined(&r, 3).unwrap(), b"6789");
        assert!(r.holds(7));
        assert!(!r.holds(8));
        assert!(!r.holds(u32::MAX - 1));
    }

    #[test]
    fn spare_splits_at_the_physical_end() {
        let mut r = Ring::with_sizes_at(8, 8, 0);
        r.push(b"abcdef");
        let [a, b] = r.spare(5);
        assert_eq!((a.len(), b.len()), (2, 3));
        let [a, b] = r.spare(100);
        assert_eq!((a.len(), b.len()), (2, 6));
        r.commit(0);
        assert_eq!(r.end(), 6);
        r.push(b"XYZ");
        assert_eq!(r.snapshot(), (1, b"bcdefXYZ".to_vec()));
        let (a, b) = r.from(3).unwrap();
        assert_eq!((a, b), (&b"defXY"[..], &b"Z"[..]));
    }
}
