//! Warden's wire protocol: the protobuf messages (from `proto/warden.proto`)
//! and the framing that carries them over a stream socket.
//!
//! # Framing, byte by byte
//!
//! A connection carries a sequence of frames in each direction. One frame is
//!
//! ```text
//! <decimal ASCII length> \r \n <payload: exactly length bytes> \r \n
//! ```
//!
//! 1. The length: one or more ASCII digits `0`..`9` (0x30..0x39), the
//!    payload's size in bytes, in decimal. No sign, no spaces; leading zeros
//!    are accepted on input (`003` is 3) and never written. At most
//!    [`framing::MAX_LENGTH_DIGITS`] digits are read, and a length above the
//!    reader's bound ([`framing::DEFAULT_MAX_FRAME`], 64 MiB, unless chosen
//!    otherwise) is refused before any payload is read.
//! 2. `\r\n` (0x0D 0x0A).
//! 3. The payload: exactly that many bytes, any values (it is binary; a
//!    `\r\n` inside it means nothing).
//! 4. `\r\n` (0x0D 0x0A) again.
//!
//! So the 5-byte payload `hello` travels as the 10 bytes
//! `35 0D 0A 68 65 6C 6C 6F 0D 0A` (`5\r\nhello\r\n`), and an empty payload
//! as `30 0D 0A 0D 0A`. A stream that ends between frames has ended
//! cleanly; one that ends inside a frame has not.
//!
//! The payload is a serialized [`pb::Message`]:
//!
//! ```text
//! message Message {
//!   required Type  type    = 1;   // which request/response (pb::message::Type)
//!   required bytes payload = 2;   // that request/response, serialized
//! }
//! ```
//!
//! A client sends requests; the server answers each one with a response of
//! the same type, or with an `Error` message holding a
//! [`pb::ErrorResponse`]. A `Stream` request is answered by several
//! `StreamResponse` frames, the last of which has `exit_status` set.
//!
//! # Decoding
//!
//! prost does not enforce proto2 `required` fields, so
//! [`Request::from_message`] / [`Response::from_message`] check them
//! themselves (recursively, e.g. `CreateRequest.BindMount.src_path`) and
//! report the first missing one as [`DecodeError::MissingField`]. Unknown
//! fields are skipped. Decoding never panics, whatever the bytes.
//!
//! Fields that carry job data (scripts, output, stream chunks, echo and
//! error text) are `bytes` here (`Vec<u8>`), although the original protocol
//! declares them `string`: the encoding is identical, and non-UTF-8 output
//! is passed through untouched instead of being refused.

#![deny(unsafe_code)]
#![warn(missing_docs)]

use std::sync::OnceLock;

use prost::Message as _;
use prost_reflect::{DescriptorPool, MessageDescriptor};

pub mod framing;
mod required;

/// The generated protobuf types (prost), package `warden`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/warden.rs"));
}

use pb::message::Type;

/// The encoded `FileDescriptorSet` of `proto/warden.proto`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/warden_descriptor.bin"));

/// Why a payload could not be turned into a [`Request`] or [`Response`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not valid protobuf for the expected message (or a
    /// `string` field is not UTF-8).
    #[error("malformed protobuf: {0}")]
    Protobuf(String),
    /// `Message.type` holds a value that is not a known type.
    #[error("unknown message type {0}")]
    UnknownType(i32),
    /// A `required` field is absent. `message` is the full name of the
    /// message lacking it (e.g. `warden.CreateRequest.BindMount`), `field`
    /// its name (e.g. `src_path`).
    #[error("missing required field {field} in {message}")]
    MissingField {
        /// Full protobuf name of the message lacking the field.
        message: String,
        /// Name of the absent field.
        field: String,
    },
    /// A known type that cannot appear here: `Error` as a request.
    #[error("message type {0:?} is not valid here")]
    UnexpectedType(Type),
}

/// The embedded descriptors of every Warden message, for building, reading
/// and printing messages by field name (`prost_reflect::DynamicMessage`).
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // Built from our own .proto at compile time; the tests decode it.
        DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("embedded descriptor set is valid")
    })
}

fn message_descriptor(full_name: &str) -> MessageDescriptor {
    descriptor_pool()
        .get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("{full_name} is in the embedded descriptor set"))
}

/// Descriptor of `warden.Message`, the envelope.
pub fn envelope_descriptor() -> MessageDescriptor {
    message_descriptor("warden.Message")
}

fn decode_checked<T: prost::Message + Default>(
    buf: &[u8],
    desc: &MessageDescriptor,
) -> Result<T, DecodeError> {
    let msg = T::decode(buf).map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    match required::check(desc, buf) {
        Ok(None) => Ok(msg),
        Ok(Some(missing)) => Err(DecodeError::MissingField {
            message: missing.message,
            field: missing.field,
        }),
        Err(required::Malformed(why)) => Err(DecodeError::Protobuf(why.to_string())),
    }
}

fn decode_envelope(frame_payload: &[u8]) -> Result<pb::Message, DecodeError> {
    decode_checked(frame_payload, &envelope_descriptor())
}

fn message_type_of(m: &pb::Message) -> Result<Type, DecodeError> {
    Type::try_from(m.r#type).map_err(|_| DecodeError::UnknownType(m.r#type))
}

macro_rules! protocol {
    ($( $variant:ident, $name:literal, $req:ident, $resp:ident; )*) => {
        /// Every message type, in the order of their numbers.
        pub const ALL_TYPES: &[Type] = &[Type::Error, $( Type::$variant, )*];

        /// The command name of a type, as the REPL spells it: `"create"`,
        /// `"copy_in"`, `"limit_memory"`, ... (`"error"` for `Error`).
        pub fn type_name(t: Type) -> &'static str {
            match t {
                Type::Error => "error",
                $( Type::$variant => $name, )*
            }
        }

        /// The type whose [`type_name`] is `name`.
        pub fn type_from_name(name: &str) -> Option<Type> {
            match name {
                "error" => Some(Type::Error),
                $( $name => Some(Type::$variant), )*
                _ => None,
            }
        }

        /// Descriptor of the request message for `t` (`warden.CreateRequest`
        /// for `Create`, ...). There is no error request: for `Error` this is
        /// `warden.ErrorResponse`, the payload an `Error` message carries.
        pub fn request_descriptor(t: Type) -> MessageDescriptor {
            match t {
                Type::Error => message_descriptor("warden.ErrorResponse"),
                $( Type::$variant => message_descriptor(concat!("warden.", stringify!($req))), )*
            }
        }

        /// Descriptor of the response message for `t` (`warden.ErrorResponse`
        /// for `Error`).
        pub fn response_descriptor(t: Type) -> MessageDescriptor {
            match t {
                Type::Error => message_descriptor("warden.ErrorResponse"),
                $( Type::$variant => message_descriptor(concat!("warden.", stringify!($resp))), )*
            }
        }

        /// A request, as a client sends it.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(missing_docs)]
        pub enum Request {
            $( $variant(pb::$req), )*
        }

        /// A response, as the server sends it: the one for the request's
        /// type, or `Error`.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(missing_docs)]
        pub enum Response {
            Error(pb::ErrorResponse),
            $( $variant(pb::$resp), )*
        }

        $(
            impl From<pb::$req> for Request {
                fn from(m: pb::$req) -> Self {
                    Request::$variant(m)
                }
            }

            impl From<pb::$resp> for Response {
                fn from(m: pb::$resp) -> Self {
                    Response::$variant(m)
                }
            }
        )*

        impl From<pb::ErrorResponse> for Response {
            fn from(m: pb::ErrorResponse) -> Self {
                Response::Error(m)
            }
        }

        impl Request {
            /// The envelope type of this request.
            pub fn message_type(&self) -> Type {
                match self {
                    $( Request::$variant(_) => Type::$variant, )*
                }
            }

            fn encode_payload(&self) -> Vec<u8> {
                match self {
                    $( Request::$variant(m) => m.encode_to_vec(), )*
                }
            }

            /// Parses the envelope's payload as the request its type names,
            /// checking required fields.
            pub fn from_message(m: &pb::Message) -> Result<Request, DecodeError> {
                let t = message_type_of(m)?;
                let desc = request_descriptor(t);
                match t {
                    Type::Error => Err(DecodeError::UnexpectedType(t)),
                    $( Type::$variant => decode_checked(&m.payload, &desc).map(Request::$variant), )*
                }
            }
        }

        impl Response {
            /// The envelope type of this response (`Error` for an error).
            pub fn message_type(&self) -> Type {
                match self {
                    Response::Error(_) => Type::Error,
                    $( Response::$variant(_) => Type::$variant, )*
                }
            }

            fn encode_payload(&self) -> Vec<u8> {
                match self {
                    Response::Error(m) => m.encode_to_vec(),
                    $( Response::$variant(m) => m.encode_to_vec(), )*
                }
            }

            /// Parses the envelope's payload as the response its type names
            /// (`Error` gives [`Response::Error`]), checking required fields.
            pub fn from_message(m: &pb::Message) -> Result<Response, DecodeError> {
                let t = message_type_of(m)?;
                let desc = response_descriptor(t);
                match t {
                    Type::Error => decode_checked(&m.payload, &desc).map(Response::Error),
                    $( Type::$variant => decode_checked(&m.payload, &desc).map(Response::$variant), )*
                }
            }
        }
    };
}

protocol! {
    Create, "create", CreateRequest, CreateResponse;
    Stop, "stop", StopRequest, StopResponse;
    Destroy, "destroy", DestroyRequest, DestroyResponse;
    Info, "info", InfoRequest, InfoResponse;
    Spawn, "spawn", SpawnRequest, SpawnResponse;
    Link, "link", LinkRequest, LinkResponse;
    Run, "run", RunRequest, RunResponse;
    Stream, "stream", StreamRequest, StreamResponse;
    NetIn, "net_in", NetInRequest, NetInResponse;
    NetOut, "net_out", NetOutRequest, NetOutResponse;
    CopyIn, "copy_in", CopyInRequest, CopyInResponse;
    CopyOut, "copy_out", CopyOutRequest, CopyOutResponse;
    LimitMemory, "limit_memory", LimitMemoryRequest, LimitMemoryResponse;
    LimitDisk, "limit_disk", LimitDiskRequest, LimitDiskResponse;
    LimitBandwidth, "limit_bandwidth", LimitBandwidthRequest, LimitBandwidthResponse;
    LimitCpu, "limit_cpu", LimitCpuRequest, LimitCpuResponse;
    Ping, "ping", PingRequest, PingResponse;
    List, "list", ListRequest, ListResponse;
    Echo, "echo", EchoRequest, EchoResponse;
}

impl Request {
    /// The request wrapped in its envelope.
    pub fn to_message(&self) -> pb::Message {
        pb::Message {
            r#type: self.message_type() as i32,
            payload: self.encode_payload(),
        }
    }

    /// The envelope, encoded and framed, ready to write to the socket.
    pub fn encode_frame(&self) -> Vec<u8> {
        framing::encode_frame(&self.to_message().encode_to_vec())
    }

    /// Decodes a frame's payload: the envelope, then the request in it.
    pub fn decode_payload(frame_payload: &[u8]) -> Result<Request, DecodeError> {
        Request::from_message(&decode_envelope(frame_payload)?)
    }
}

impl Response {
    /// The response wrapped in its envelope.
    pub fn to_message(&self) -> pb::Message {
        pb::Message {
            r#type: self.message_type() as i32,
            payload: self.encode_payload(),
        }
    }

    /// The envelope, encoded and framed, ready to write to the socket.
    pub fn encode_frame(&self) -> Vec<u8> {
        framing::encode_frame(&self.to_message().encode_to_vec())
    }

    /// Decodes a frame's payload: the envelope, then the response in it.
    pub fn decode_payload(frame_payload: &[u8]) -> Result<Response, DecodeError> {
        Response::from_message(&decode_envelope(frame_payload)?)
    }

    /// An error response with `message` as its text.
    pub fn error(message: impl Into<Vec<u8>>) -> Response {
        Response::Error(pb::ErrorResponse {
            message: Some(message.into()),
            data: None,
            backtrace: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests;
