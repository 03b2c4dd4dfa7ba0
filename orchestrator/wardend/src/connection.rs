//! One client connection: frames in, requests served one after another,
//! responses out, on a thread of its own, so a client that stalls (a
//! stopped reader of a stream, a link waiting for its job) holds only its
//! own thread and at most one chunk of output.
//!
//! A frame that cannot be framed (a length that is not a number, or too
//! large, or a missing terminator) leaves the byte stream out of step: it
//! gets an ErrorResponse and the connection is closed. A frame that is
//! framed but does not decode (garbage protobuf, unknown type, a missing
//! required field) gets an ErrorResponse and the connection goes on.

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use warden_protocol::framing::{FrameError, FrameReader};
use warden_protocol::{Request, Response};

use crate::handlers::{self, Server};
use crate::live::Live;

/// The largest request frame taken: requests carry scripts and paths,
/// never bulk data.
pub const MAX_REQUEST: usize = 16 << 20;

/// Whether the client closed its end (it cannot be waiting for an answer):
/// a peek that finds the end of the stream. A client with bytes pending
/// (a request sent ahead) is there; so is one that sent nothing more.
fn hung_up(stream: &UnixStream) -> bool {
    use nix::sys::socket::{recv, MsgFlags};
    let mut byte = [0u8; 1];
    match recv(
        stream.as_raw_fd(),
        &mut byte,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(0) => true,
        Ok(_) => false,
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => false,
        // ECONNRESET and the like: nobody is there to answer.
        Err(_) => true,
    }
}

pub fn serve(server: Arc<Server>, live: Arc<Live>, id: u64, stream: UnixStream) {
    let mut referred: HashSet<String> = HashSet::new();
    if let Err(e) = serve_requests(&server, &live, id, &stream, &mut referred) {
        crate::debug!("connection {id}: {e}");
    }
    for handle in referred {
        let grace = handlers::grace_of(&server.depot, &handle);
        server.grace.release(&handle, grace);
    }
    live.connection_closed(id);
}

fn serve_requests(
    server: &Server,
    live: &Live,
    id: u64,
    stream: &UnixStream,
    referred: &mut HashSet<String>,
) -> std::io::Result<()> {
    let mut reader = FrameReader::new(stream, MAX_REQUEST);
    let mut writer = BufWriter::with_capacity(64 << 10, stream);
    let present = || !hung_up(stream);
    let mut send = |response: Response| -> std::io::Result<()> {
        writer.write_all(&response.encode_frame())?;
        writer.flush()
    };
    loop {
        if live.draining() {
            return Ok(());
        }
        let payload = match reader.read_frame() {
            Ok(Some(payload)) => payload,
            Ok(None) => return Ok(()),
            Err(FrameError::Io(e)) => return Err(e),
            Err(e) => {
                send(handlers::error_response(format!("malformed frame: {e}")))?;
                return Ok(());
            }
        };
        let request = match Request::decode_payload(&payload) {
            Ok(request) => request,
            Err(e) => {
                send(handlers::error_response(format!("malformed request: {e}")))?;
                continue;
            }
        };
        // Naming a container cancels its grace timer before the request
        // runs, so a timer cannot destroy it under the request.
        if let Some(handle) = handlers::handle_of(&request) {
            if referred.insert(handle.to_string()) {
                server.grace.reference(handle);
            }
        }
        let kind = warden_protocol::type_name(request.message_type());
        if !live.begin_request(id, handlers::waits_on_a_job(&request)) {
            return Ok(());
        }
        crate::debug!("connection {id}: {kind}");
        let served = handlers::serve(server, request, &mut send, &present);
        live.end_request(id);
        match served {
            Ok(Some(handle)) => {
                if referred.insert(handle.clone()) {
                    server.grace.reference(&handle);
                }
            }
            Ok(None) => {}
            Err(e) => return Err(e),
        }
        // A destroyed container needs no reference any more.
        referred.retain(|h| {
            let exists = server.depot.existing(h).is_ok();
            if !exists {
                server.grace.release(h, None);
            }
            exists
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_peer_is_seen_as_gone() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        assert!(!hung_up(&ours), "the peer is there");
        drop(theirs);
        assert!(hung_up(&ours), "the peer closed its end");
    }

    #[test]
    fn a_peer_with_requests_pending_is_there() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        theirs.write_all(b"5\r\nhello\r\n").unwrap();
        assert!(!hung_up(&ours));
    }
}
