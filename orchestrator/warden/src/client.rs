//! The connection to the Warden server: a Unix stream socket carrying
//! framed `Message`s (see `warden_protocol`). One request at a time; a
//! response of the request's type or an `Error` comes back; a `Stream`
//! request gets `StreamResponse`s until one holds `exit_status`.

use std::fmt;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use prost::Message as _;
use prost_reflect::{DynamicMessage, Value};
use warden_protocol::framing::{self, FrameReader};
use warden_protocol::pb::{self, message::Type};
use warden_protocol::Response;

use crate::print;

/// What went wrong talking to the server.
#[derive(Debug)]
pub enum ClientError {
    /// The socket could not be connected to.
    Connect {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
    /// Reading or writing the socket failed, or the server closed it.
    Io {
        /// The socket's path.
        path: PathBuf,
        /// What failed.
        what: String,
    },
    /// The server answered with an `ErrorResponse`; its message.
    Server(Vec<u8>),
    /// The server's answer is not a valid response to the request.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { path, err } => {
                write!(f, "cannot connect to {}: {err}", path.display())
            }
            ClientError::Io { path, what } => write!(f, "{} ({})", what, path.display()),
            ClientError::Server(m) => f.write_str(&String::from_utf8_lossy(m)),
            ClientError::Protocol(m) => write!(f, "bad response from the server: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

struct Conn {
    reader: FrameReader<UnixStream>,
}

/// A client of one server socket, connecting when first needed.
pub struct Client {
    path: PathBuf,
    conn: Option<Conn>,
    trace: bool,
}

impl Client {
    /// A client of the server at `path`; with `trace`, every request and
    /// response is written to stderr.
    pub fn new(path: impl Into<PathBuf>, trace: bool) -> Self {
        Client {
            path: path.into(),
            conn: None,
            trace,
        }
    }

    /// Connects, unless connected already.
    pub fn connect(&mut self) -> Result<(), ClientError> {
        if self.conn.is_none() {
            let sock = UnixStream::connect(&self.path).map_err(|err| ClientError::Connect {
                path: self.path.clone(),
                err,
            })?;
            self.conn = Some(Conn {
                reader: FrameReader::new(sock, framing::DEFAULT_MAX_FRAME),
            });
        }
        Ok(())
    }

    fn io_error(&mut self, what: String) -> ClientError {
        // The connection is in an unknown state: start afresh next time.
        self.conn = None;
        ClientError::Io {
            path: self.path.clone(),
            what,
        }
    }

    /// Sends the request `msg` of type `t`. A connection the server has
    /// closed (EPIPE on write) is made again once, as upstream does.
    fn send(&mut self, t: Type, msg: &DynamicMessage) -> Result<(), ClientError> {
        if self.trace {
            eprint!("{}", print::trace_lines(">", msg));
        }
        let envelope = pb::Message {
            r#type: t as i32,
            payload: msg.encode_to_vec(),
        };
        let frame = framing::encode_frame(&envelope.encode_to_vec());
        for attempt in 0..2 {
            self.connect()?;
            let conn = self.conn.as_mut().expect("connected");
            match conn.reader.get_mut().write_all(&frame) {
                Ok(()) => return Ok(()),
                Err(e)
                    if attempt == 0
                        && matches!(
                            e.kind(),
                            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                        ) =>
                {
                    eprintln!("Reconnecting...");
                    self.conn = None;
                }
                Err(e) => return Err(self.io_error(format!("sending the request failed: {e}"))),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Reads one response to a request of type `t`: the response as a
    /// message of `t`'s response type, or the server's error.
    fn receive(&mut self, t: Type) -> Result<DynamicMessage, ClientError> {
        let conn = self.conn.as_mut().expect("connected before receiving");
        let frame = match conn.reader.read_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => return Err(self.io_error("the server closed the connection".into())),
            Err(e) => return Err(self.io_error(format!("reading the response failed: {e}"))),
        };
        let response = match Response::decode_payload(&frame) {
            Ok(r) => r,
            Err(e) => {
                self.conn = None;
                return Err(ClientError::Protocol(e.to_string()));
            }
        };
        if let Response::Error(e) = &response {
            if self.trace {
                let m = e.message.as_deref().unwrap_or_default();
                eprintln!("< ErrorResponse\n<   message : {}", m.escape_ascii());
            }
            return Err(ClientError::Server(
                e.message.clone().unwrap_or_else(|| b"error".to_vec()),
            ));
        }
        if response.message_type() != t {
            self.conn = None;
            return Err(ClientError::Protocol(format!(
                "a {} response to a {} request",
                warden_protocol::type_name(response.message_type()),
                warden_protocol::type_name(t)
            )));
        }
        let envelope = pb::Message::decode(frame.as_slice())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let msg = DynamicMessage::decode(
            warden_protocol::response_descriptor(t),
            envelope.payload.as_slice(),
        )
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if self.trace {
            eprint!("{}", print::trace_lines("<", &msg));
        }
        Ok(msg)
    }

    /// Sends a request and returns its response.
    pub fn call(&mut self, t: Type, msg: &DynamicMessage) -> Result<DynamicMessage, ClientError> {
        self.send(t, msg)?;
        self.receive(t)
    }

    /// Sends a `Stream` request and hands each chunk to `chunk(name,
    /// data)` until the response holding `exit_status`, which it returns.
    pub fn stream(
        &mut self,
        msg: &DynamicMessage,
        mut chunk: impl FnMut(&str, &[u8]) -> io::Result<()>,
    ) -> Result<DynamicMessage, ClientError> {
        self.send(Type::Stream, msg)?;
        loop {
            let r = self.receive(Type::Stream)?;
            if r.has_field_by_name("exit_status") {
                return Ok(r);
            }
            let name = match r.get_field_by_name("name").as_deref() {
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            if let Some(Value::Bytes(data)) = r.get_field_by_name("data").as_deref() {
                if let Err(e) = chunk(&name, data) {
                    return Err(self.io_error(format!("writing the job's output failed: {e}")));
                }
            }
        }
    }
}
