use super::*;
use pb::create_request::{bind_mount::Mode, BindMount};
use prost_reflect::{DynamicMessage, Value};

fn envelope(t: Type, payload: Vec<u8>) -> Vec<u8> {
    pb::Message {
        r#type: t as i32,
        payload,
    }
    .encode_to_vec()
}

fn missing(message: &str, field: &str) -> DecodeError {
    DecodeError::MissingField {
        message: message.into(),
        field: field.into(),
    }
}

#[test]
fn descriptors_cover_every_type() {
    for &t in ALL_TYPES {
        let name = type_name(t);
        assert_eq!(type_from_name(name), Some(t));
        let req = request_descriptor(t);
        let resp = response_descriptor(t);
        if t == Type::Error {
            assert_eq!(req.full_name(), "warden.ErrorResponse");
        } else {
            let camel = format!("{t:?}");
            assert_eq!(req.full_name(), format!("warden.{camel}Request"));
            assert_eq!(resp.full_name(), format!("warden.{camel}Response"));
        }
    }
    assert_eq!(ALL_TYPES.len(), 20);
    assert_eq!(type_name(Type::CopyIn), "copy_in");
    assert_eq!(type_name(Type::LimitBandwidth), "limit_bandwidth");
    assert_eq!(type_name(Type::NetOut), "net_out");
    assert_eq!(type_from_name("nope"), None);
}

#[test]
fn envelope_round_trip() {
    let req = Request::Create(pb::CreateRequest {
        bind_mounts: vec![BindMount {
            src_path: "/a".into(),
            dst_path: "/b".into(),
            mode: Mode::Rw as i32,
        }],
        grace_time: Some(5),
        handle: Some("h".into()),
        network: None,
        rootfs: None,
    });
    let msg = req.to_message();
    assert_eq!(msg.r#type, 11);
    assert_eq!(Request::from_message(&msg).unwrap(), req);
    let frame = req.encode_frame();
    let mut r = framing::FrameReader::new(&frame[..], framing::DEFAULT_MAX_FRAME);
    let payload = r.read_frame().unwrap().unwrap();
    assert_eq!(Request::decode_payload(&payload).unwrap(), req);

    let resp = Response::error(b"boom\xff".to_vec());
    assert_eq!(resp.message_type(), Type::Error);
    let frame = resp.encode_frame();
    let mut r = framing::FrameReader::new(&frame[..], 1000);
    let payload = r.read_frame().unwrap().unwrap();
    assert_eq!(Response::decode_payload(&payload).unwrap(), resp);
}

#[test]
fn required_fields_emitted_even_when_default() {
    // Every required field holds its default: all are still on the wire.
    let m = Request::Echo(pb::EchoRequest {
        message: Vec::new(),
    })
    .to_message();
    assert_eq!(m.payload, [0x0a, 0x00]);
    let m = Response::LimitBandwidth(pb::LimitBandwidthResponse { rate: 0, burst: 0 }).to_message();
    assert_eq!(m.payload, [0x08, 0x00, 0x10, 0x00]);
    let bm = BindMount {
        src_path: String::new(),
        dst_path: String::new(),
        mode: 0,
    };
    assert_eq!(bm.encode_to_vec(), [0x0a, 0x00, 0x12, 0x00, 0x18, 0x00]);
    // The envelope too: Ping has an empty payload.
    let m = Request::Ping(pb::PingRequest {}).to_message();
    assert_eq!(m.encode_to_vec(), [0x08, 91, 0x12, 0x00]);
    assert_eq!(
        Request::decode_payload(&m.encode_to_vec()).unwrap(),
        Request::Ping(pb::PingRequest {})
    );
}

#[test]
fn missing_required_fields_are_named() {
    // Envelope.
    assert_eq!(
        Request::decode_payload(&[0x12, 0x00]),
        Err(missing("warden.Message", "type"))
    );
    assert_eq!(
        Request::decode_payload(&[0x08, 91]),
        Err(missing("warden.Message", "payload"))
    );
    // Top level: first missing in declaration order.
    assert_eq!(
        Request::decode_payload(&envelope(Type::CopyIn, vec![])),
        Err(missing("warden.CopyInRequest", "handle"))
    );
    let only_handle = pb::DestroyRequest { handle: "x".into() }.encode_to_vec();
    assert_eq!(
        Request::decode_payload(&envelope(Type::CopyIn, only_handle.clone())),
        Err(missing("warden.CopyInRequest", "src_path"))
    );
    assert_eq!(
        Request::decode_payload(&envelope(Type::Link, only_handle.clone())),
        Err(missing("warden.LinkRequest", "job_id"))
    );
    assert_eq!(
        Request::decode_payload(&envelope(Type::LimitBandwidth, only_handle)),
        Err(missing("warden.LimitBandwidthRequest", "rate"))
    );
    assert_eq!(
        Response::decode_payload(&envelope(Type::Spawn, vec![])),
        Err(missing("warden.SpawnResponse", "job_id"))
    );
    // Nested: a bind mount without src_path (second of two).
    let good = BindMount {
        src_path: "/s".into(),
        dst_path: "/d".into(),
        mode: 0,
    }
    .encode_to_vec();
    // dst_path and mode only.
    let bad = [&[0x12u8, 0x01, b'd'][..], &[0x18, 0x01]].concat();
    let mut payload = Vec::new();
    for bm in [&good, &bad] {
        payload.push(0x0a);
        payload.push(bm.len() as u8);
        payload.extend_from_slice(bm);
    }
    assert_eq!(
        Request::decode_payload(&envelope(Type::Create, payload)),
        Err(missing("warden.CreateRequest.BindMount", "src_path"))
    );
}

#[test]
fn singular_message_fields_are_merged_before_checking() {
    // A singular message field sent in two pieces is one merged message:
    // its required fields may be spread over the pieces. No Warden message
    // has a singular field whose type has required fields, so check the
    // checker on BindMount's bytes directly.
    let desc = message_descriptor("warden.CreateRequest.BindMount");
    let part1 = [0x0au8, 0x01, b's'];
    let part2 = [0x12u8, 0x01, b'd', 0x18, 0x00];
    let whole = [&part1[..], &part2[..]].concat();
    assert_eq!(required::check(&desc, &whole), Ok(None));
    assert!(required::check(&desc, &part1).unwrap().is_some());
}

#[test]
fn unknown_fields_are_ignored() {
    let mut payload = pb::EchoRequest {
        message: b"hi".to_vec(),
    }
    .encode_to_vec();
    // field 99 varint, field 100 length-delimited, field 101 fixed32,
    // field 102 fixed64, field 103 group containing a varint.
    payload.extend_from_slice(&[0x98, 0x06, 0x2a]);
    payload.extend_from_slice(&[0xa2, 0x06, 0x03, b'a', b'b', b'c']);
    payload.extend_from_slice(&[0xad, 0x06, 1, 2, 3, 4]);
    payload.extend_from_slice(&[0xb1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]);
    payload.extend_from_slice(&[0xbb, 0x06, 0x08, 0x01, 0xbc, 0x06]);
    let mut env = envelope(Type::Echo, payload);
    env.extend_from_slice(&[0x98, 0x06, 0x01]);
    assert_eq!(
        Request::decode_payload(&env).unwrap(),
        Request::Echo(pb::EchoRequest {
            message: b"hi".to_vec()
        })
    );
}

#[test]
fn type_errors() {
    assert_eq!(
        Request::decode_payload(&envelope(Type::Error, vec![])),
        Err(DecodeError::UnexpectedType(Type::Error))
    );
    let bad = pb::Message {
        r#type: 77,
        payload: vec![],
    };
    assert_eq!(
        Request::from_message(&bad),
        Err(DecodeError::UnknownType(77))
    );
    assert_eq!(
        Response::from_message(&bad),
        Err(DecodeError::UnknownType(77))
    );
    assert_eq!(
        Response::decode_payload(&envelope(Type::Error, vec![])).unwrap(),
        Response::Error(pb::ErrorResponse::default())
    );
}

#[test]
fn non_utf8_job_data_passes_through() {
    let junk = b"\xff\xfe\x00\xc3(".to_vec();
    let resp = Response::Stream(pb::StreamResponse {
        name: Some("stdout".into()),
        data: Some(junk.clone()),
        exit_status: None,
        info: None,
    });
    let back = Response::from_message(&resp.to_message()).unwrap();
    assert_eq!(back, resp);
    // A non-UTF-8 handle (a real string field) is refused, not mangled.
    let mut p = Vec::new();
    p.extend_from_slice(&[0x0a, 0x01, 0xff]);
    assert!(matches!(
        Request::decode_payload(&envelope(Type::Destroy, p)),
        Err(DecodeError::Protobuf(_))
    ));
}

/// A small deterministic generator, so the test needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Seeds: valid encodings of a few messages, then mutate them.
    let seeds: Vec<Vec<u8>> = vec![
        Request::Create(pb::CreateRequest {
            bind_mounts: vec![BindMount {
                src_path: "/a".into(),
                dst_path: "/b".into(),
                mode: 1,
            }],
            ..Default::default()
        })
        .to_message()
        .encode_to_vec(),
        Response::Info(pb::InfoResponse {
            state: Some("active".into()),
            job_ids: vec![1, 2, 3],
            memory_stat: Some(Default::default()),
            ..Default::default()
        })
        .to_message()
        .encode_to_vec(),
        Response::Run(pb::RunResponse {
            exit_status: Some(1),
            stdout: Some(b"x".to_vec()),
            info: Some(Default::default()),
            ..Default::default()
        })
        .to_message()
        .encode_to_vec(),
    ];
    for i in 0..20_000u32 {
        let mut buf = seeds[i as usize % seeds.len()].clone();
        let edits = 1 + rng.next() % 4;
        for _ in 0..edits {
            let r = rng.next();
            match r % 4 {
                0 if !buf.is_empty() => {
                    let at = (r >> 8) as usize % buf.len();
                    buf[at] = (r >> 32) as u8;
                }
                1 if !buf.is_empty() => {
                    let at = (r >> 8) as usize % buf.len();
                    buf.truncate(at);
                }
                _ => buf.push((r >> 16) as u8),
            }
        }
        let _ = Request::decode_payload(&buf);
        let _ = Response::decode_payload(&buf);
        for &t in ALL_TYPES {
            let m = pb::Message {
                r#type: t as i32,
                payload: buf.clone(),
            };
            let _ = Request::from_message(&m);
            let _ = Response::from_message(&m);
        }
    }
    // Pure noise, and a deep nesting bomb.
    for _ in 0..2_000 {
        let len = (rng.next() % 64) as usize;
        let buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = Request::decode_payload(&buf);
        let _ = Response::decode_payload(&buf);
    }
    let mut bomb = Vec::new();
    for _ in 0..10_000 {
        bomb.extend_from_slice(&[0xbb, 0x06]);
    }
    let _ = Request::decode_payload(&envelope(Type::Echo, bomb));
}

#[test]
fn dynamic_messages_by_field_name() {
    // What an interactive client does: build a request from names.
    let desc = request_descriptor(type_from_name("limit_disk").unwrap());
    let mut dm = DynamicMessage::new(desc);
    dm.set_field_by_name("handle", Value::String("c1".into()));
    dm.set_field_by_name("byte_hard", Value::U64(1 << 30));
    let m = pb::Message {
        r#type: Type::LimitDisk as i32,
        payload: dm.encode_to_vec(),
    };
    assert_eq!(
        Request::from_message(&m).unwrap(),
        Request::LimitDisk(pb::LimitDiskRequest {
            handle: "c1".into(),
            byte_hard: Some(1 << 30),
            ..Default::default()
        })
    );
    // And print a response by field name.
    let resp = Response::Info(pb::InfoResponse {
        state: Some("active".into()),
        cpu_stat: Some(pb::info_response::CpuStat {
            usage: Some(7),
            ..Default::default()
        }),
        ..Default::default()
    });
    let dm = DynamicMessage::decode(
        response_descriptor(Type::Info),
        &resp.to_message().payload[..],
    )
    .unwrap();
    let state = dm.get_field_by_name("state").unwrap();
    assert_eq!(state.as_str(), Some("active"));
    let text = format!("{dm}");
    assert!(
        text.contains("usage:7") || text.contains("usage: 7"),
        "{text}"
    );
}
