//! Where one stream stands: the next byte to write out, and what arrives on
//! the socket. Skipping to a saved position and detecting loss are pure
//! position arithmetic (u32, wrapping), tested here byte by byte.

use wire::iomux::{decode_offset, pos_before, pos_diff, Tail, OFFSET_LEN};

/// Bytes between `next` and `available` are gone: overwritten before this
/// link (or the one whose cursor it continues) read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub next: u32,
    pub available: u32,
}

impl Gap {
    pub fn lost(&self) -> u32 {
        self.available.wrapping_sub(self.next)
    }
}

#[derive(Debug, Clone)]
pub struct StreamCursor {
    next: u32,
    /// A gap is an error. False only before the first data of a link run
    /// without a cursors file, which simply starts where the stream does.
    strict: bool,
    header: [u8; OFFSET_LEN],
    header_len: usize,
    /// Position of the next byte to arrive on the current connection.
    recv: u32,
}

impl StreamCursor {
    pub fn new(next: u32, strict: bool) -> Self {
        StreamCursor {
            next,
            strict,
            header: [0; OFFSET_LEN],
            header_len: 0,
            recv: 0,
        }
    }

    pub fn next(&self) -> u32 {
        self.next
    }

    /// A new connection starts with a new offset header.
    pub fn new_connection(&mut self) {
        self.header_len = 0;
    }

    pub fn has_header(&self) -> bool {
        self.header_len == OFFSET_LEN
    }

    /// Take bytes received on the socket; returns those to write out (the
    /// caller reports what it wrote with [`StreamCursor::wrote`]).
    pub fn feed<'a>(&mut self, mut data: &'a [u8]) -> Result<&'a [u8], Gap> {
        if self.header_len < OFFSET_LEN {
            let n = (OFFSET_LEN - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len < OFFSET_LEN {
                return Ok(&[]);
            }
            let offset = decode_offset(self.header);
            self.start_at(offset)?;
            self.recv = offset;
        }
        let skip = if pos_before(self.recv, self.next) {
            (pos_diff(self.recv, self.next) as usize).min(data.len())
        } else {
            0
        };
        self.recv = self.recv.wrapping_add(data.len() as u32);
        Ok(&data[skip..])
    }

    /// True when every byte still to arrive on this connection is to be
    /// written out as it comes (header read, nothing to skip, nothing
    /// pending): the bytes may then bypass [`StreamCursor::feed`].
    pub fn passes_through(&self) -> bool {
        self.has_header() && self.recv == self.next
    }

    /// Account for `n` bytes taken off the socket without
    /// [`StreamCursor::feed`], all of them to be written out; valid only
    /// while [`StreamCursor::passes_through`].
    pub fn received(&mut self, n: usize) {
        debug_assert!(self.passes_through());
        self.recv = self.recv.wrapping_add(n as u32);
    }

    pub fn wrote(&mut self, n: usize) {
        self.next = self.next.wrapping_add(n as u32);
    }

    /// What of a job's tail file is still to be written out.
    pub fn rest_of_tail<'a>(&mut self, tail: &'a Tail) -> Result<&'a [u8], Gap> {
        self.start_at(tail.offset)?;
        if !pos_before(self.next, tail.end()) {
            return Ok(&[]);
        }
        Ok(&tail.data[pos_diff(tail.offset, self.next) as usize..])
    }

    /// The oldest byte available is `offset`: fine if we need nothing older.
    fn start_at(&mut self, offset: u32) -> Result<(), Gap> {
        if pos_before(self.next, offset) {
            if self.strict {
                return Err(Gap {
                    next: self.next,
                    available: offset,
                });
            }
            self.next = offset;
        }
        self.strict = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `chunks`, writing out everything returned.
    fn run(c: &mut StreamCursor, chunks: &[&[u8]]) -> Result<Vec<u8>, Gap> {
        let mut out = Vec::new();
        for chunk in chunks {
            let w = c.feed(chunk)?;
            out.extend_from_slice(w);
            c.wrote(w.len());
        }
        Ok(out)
    }

    fn framed(offset: u32, data: &[u8]) -> Vec<u8> {
        let mut v = offset.to_be_bytes().to_vec();
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn fresh_link_gets_everything() {
        let mut c = StreamCursor::new(0, true);
        assert_eq!(run(&mut c, &[&framed(0, b"hello")]).unwrap(), b"hello");
        assert_eq!(c.next(), 5);
    }

    #[test]
    fn header_split_at_every_byte() {
        let f = framed(3, b"abcdef");
        for cut in 0..=f.len() {
            let mut c = StreamCursor::new(5, true);
            let out = run(&mut c, &[&f[..cut], &f[cut..]]).unwrap();
            assert_eq!(out, b"cdef", "cut at {cut}");
            assert_eq!(c.next(), 9);
        }
    }

    #[test]
    fn skips_to_saved_position_across_chunks() {
        let mut c = StreamCursor::new(7, true);
        let out = run(&mut c, &[&framed(2, b"ab"), b"cd", b"efgh"]).unwrap();
        assert_eq!(out, b"fgh");
        assert_eq!(c.next(), 10);
    }

    #[test]
    fn saved_position_beyond_the_data_skips_it_all() {
        let mut c = StreamCursor::new(100, true);
        assert_eq!(run(&mut c, &[&framed(0, b"abc")]).unwrap(), b"");
        assert_eq!(c.next(), 100);
    }

    #[test]
    fn gap_is_an_error_with_a_cursor_and_a_start_without() {
        let mut c = StreamCursor::new(10, true);
        let g = run(&mut c, &[&framed(20, b"x")]).unwrap_err();
        assert_eq!(
            g,
            Gap {
                next: 10,
                available: 20
            }
        );
        assert_eq!(g.lost(), 10);
        let mut c = StreamCursor::new(0, false);
        assert_eq!(run(&mut c, &[&framed(70000, b"late")]).unwrap(), b"late");
        assert_eq!(c.next(), 70004);
        // once started, a later connection must continue without a gap
        c.new_connection();
        assert!(run(&mut c, &[&framed(70010, b"z")]).is_err());
    }

    #[test]
    fn reconnect_continues_exactly() {
        let mut c = StreamCursor::new(0, true);
        assert_eq!(run(&mut c, &[&framed(0, b"abc")]).unwrap(), b"abc");
        c.new_connection();
        assert_eq!(run(&mut c, &[&framed(1, b"bcdef")]).unwrap(), b"def");
        assert_eq!(c.next(), 6);
    }

    #[test]
    fn passes_through_only_once_nothing_is_left_to_skip() {
        let mut c = StreamCursor::new(6, true);
        assert!(!c.passes_through(), "no header yet");
        // positions 2, 3, 4: all before the saved position
        let f = framed(2, b"abc");
        assert_eq!(c.feed(&f).unwrap(), b"");
        assert!(!c.passes_through(), "position 5 still to skip");
        let w = c.feed(b"defgh").unwrap();
        assert_eq!(w, b"efgh");
        assert!(!c.passes_through(), "efgh not written yet");
        c.wrote(3);
        assert!(!c.passes_through());
        c.wrote(1);
        assert!(c.passes_through());
        c.received(5);
        assert!(!c.passes_through());
        c.wrote(5);
        assert!(c.passes_through());
        assert_eq!(c.next(), 15);
        // a new connection needs its header again, and to skip what this
        // link already wrote
        c.new_connection();
        assert!(!c.passes_through());
        let f = framed(12, b"abc");
        assert_eq!(c.feed(&f).unwrap(), b"");
        assert!(c.passes_through());
        assert_eq!(c.next(), 15);
    }

    #[test]
    fn partial_write_moves_only_what_was_written() {
        let mut c = StreamCursor::new(0, true);
        let f = framed(0, b"abcdef");
        let w = c.feed(&f).unwrap();
        assert_eq!(w, b"abcdef");
        c.wrote(2);
        assert_eq!(c.next(), 2);
    }

    #[test]
    fn positions_wrap_at_32_bits() {
        // saved just before the wrap, offset well before it
        let mut c = StreamCursor::new(u32::MAX - 1, true);
        let out = run(&mut c, &[&framed(u32::MAX - 3, b"abcdef")]).unwrap();
        assert_eq!(out, b"cdef");
        assert_eq!(c.next(), 2);
        // saved after the wrap, offset before it: skip across the wrap
        let mut c = StreamCursor::new(1, true);
        let out = run(&mut c, &[&framed(u32::MAX - 1, b"abcdef")]).unwrap();
        assert_eq!(out, b"def");
        assert_eq!(c.next(), 4);
        // offset after the wrap, saved before it: a gap of 4
        let mut c = StreamCursor::new(u32::MAX - 1, true);
        let g = run(&mut c, &[&framed(2, b"x")]).unwrap_err();
        assert_eq!(g.lost(), 4);
    }

    #[test]
    fn tail_after_live_data() {
        let tail = Tail {
            offset: 100,
            data: b"0123456789".to_vec(),
        };
        let mut c = StreamCursor::new(104, true);
        assert_eq!(c.rest_of_tail(&tail).unwrap(), b"456789");
        let mut c = StreamCursor::new(110, true);
        assert_eq!(c.rest_of_tail(&tail).unwrap(), b"");
        let mut c = StreamCursor::new(120, true);
        assert_eq!(c.rest_of_tail(&tail).unwrap(), b"");
        let mut c = StreamCursor::new(99, true);
        assert_eq!(
            c.rest_of_tail(&tail).unwrap_err(),
            Gap {
                next: 99,
                available: 100
            }
        );
        let mut c = StreamCursor::new(0, false);
        assert_eq!(c.rest_of_tail(&tail).unwrap(), b"0123456789");
        let wrap = Tail {
            offset: u32::MAX - 4,
            data: b"0123456789".to_vec(),
        };
        let mut c = StreamCursor::new(3, true);
        assert_eq!(c.rest_of_tail(&wrap).unwrap(), b"89");
    }
}
