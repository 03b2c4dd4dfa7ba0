//! One connected client. A stream client is just a position in its stream:
//! whatever it still needs is served from the ring, so its queue is bounded
//! by the ring and costs nothing. A client whose next byte has been
//! overwritten fell behind and is disconnected; it may re-link with its
//! cursor.

use std::io::{self, IoSlice, Read, Write};

use mio::net::UnixStream;
use wire::iomux::{encode_offset, pos_before, WaitStatus, OFFSET_LEN, STATUS_LEN};

use crate::ring::Ring;

/// Why a client was let go.
#[derive(Debug)]
pub enum Gone {
    /// The peer closed or a write failed.
    Closed,
    /// The job overwrote bytes the client had not received yet.
    FellBehind { pos: u32, start: u32 },
}

pub enum Flush {
    /// Everything in the ring has been handed to the socket.
    CaughtUp,
    /// The socket is full; wait for it to become writable.
    Blocked,
}

pub struct StreamClient {
    pub sock: UnixStream,
    header: [u8; OFFSET_LEN],
    header_sent: usize,
    /// Stream position of the next byte to send.
    pos: u32,
    /// The last write hit EAGAIN and no writable event came since.
    pub blocked: bool,
}

impl StreamClient {
    /// A client that starts at the oldest byte of the replay window, as the
    /// contract says: offset header, buffered bytes (the last 65535 at
    /// most), live data.
    pub fn new(sock: UnixStream, ring: &Ring) -> Self {
        let start = ring.window_start();
        StreamClient {
            sock,
            header: encode_offset(start),
            header_sent: 0,
            pos: start,
            blocked: false,
        }
    }

    pub fn caught_up(&self, ring: &Ring) -> bool {
        self.header_sent == OFFSET_LEN && self.pos == ring.end()
    }

    /// Whether the job has overwritten what this client still needs.
    pub fn check_window(&self, ring: &Ring) -> Result<(), Gone> {
        if pos_before(self.pos, ring.start()) {
            return Err(Gone::FellBehind {
                pos: self.pos,
                start: ring.start(),
            });
        }
        Ok(())
    }

    /// Write as much as the socket takes without blocking.
    pub fn flush(&mut self, ring: &Ring) -> Result<Flush, Gone> {
        while self.header_sent < OFFSET_LEN {
            match self.sock.write(&self.header[self.header_sent..]) {
                Ok(0) => return Err(Gone::Closed),
                Ok(n) => self.header_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(self.block()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Gone::Closed),
            }
        }
        loop {
            self.check_window(ring)?;
            let Some((a, b)) = ring.from(self.pos) else {
                // Cannot happen after check_window unless pos is in the
                // future, which would be a bug; treat the client as lost.
                return Err(Gone::FellBehind {
                    pos: self.pos,
                    start: ring.start(),
                });
            };
            if a.is_empty() {
                return Ok(Flush::CaughtUp);
            }
            let bufs = [IoSlice::new(a), IoSlice::new(b)];
            let want = a.len() + b.len();
            match self.sock.write_vectored(&bufs) {
                Ok(0) => return Err(Gone::Closed),
                Ok(n) => {
                    self.pos = self.pos.wrapping_add(n as u32);
                    // A stream socket takes less only when its buffer is
                    // full; freeing space raises a writable edge.
                    if n < want {
                        return Ok(self.block());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(self.block()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Gone::Closed),
            }
        }
    }

    fn block(&mut self) -> Flush {
        self.blocked = true;
        Flush::Blocked
    }
}

pub struct StatusClient {
    pub sock: UnixStream,
}

impl StatusClient {
    /// Send the status word. The socket has never carried anything else, so
    /// 4 bytes always fit; a short write or error means the peer is gone.
    pub fn send(&mut self, status: WaitStatus) -> io::Result<()> {
        let word = status.encode();
        let n = self.sock.write(&word)?;
        if n != STATUS_LEN {
            return Err(io::ErrorKind::WriteZero.into());
        }
        Ok(())
    }
}

/// Read and discard what a client sends (clients have nothing to say);
/// `Ok(true)` when the peer has closed its sending side.
pub fn drain_input(sock: &mut UnixStream) -> io::Result<bool> {
    let mut scratch = [0u8; 256];
    loop {
        match sock.read(&mut scratch) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
