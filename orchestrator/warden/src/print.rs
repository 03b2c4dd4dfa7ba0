//! A response → the lines the REPL prints, as upstream's `serialize` and
//! `describe_response` make them: one `KEY : VALUE` line per set scalar,
//! nested messages flattened with `.` (`info.state : active`), repeated
//! fields indexed (`handles[0] : a`, `bind_mounts[1].mode : RW`), enums by
//! name, absent optional fields left out. Values are written as they are:
//! bytes and strings raw (a job's output may be anything), numbers in
//! decimal, bools as `true`/`false`.

use std::io::{self, Write};

use prost_reflect::{DynamicMessage, Kind, ReflectMessage, Value};

use crate::args::fields_in_order;

/// The flattened fields of `msg`: `(key, value)` in declaration order.
pub fn fields(msg: &DynamicMessage) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    flatten(msg, "", &mut out);
    out
}

fn flatten(msg: &DynamicMessage, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for field in fields_in_order(&msg.descriptor()) {
        if !msg.has_field(&field) {
            continue;
        }
        let key = format!("{prefix}{}", field.name());
        let kind = field.kind();
        match &*msg.get_field(&field) {
            Value::List(list) => {
                for (i, v) in list.iter().enumerate() {
                    one(&format!("{key}[{i}]"), &kind, v, out);
                }
            }
            v => one(&key, &kind, v, out),
        }
    }
}

fn one(key: &str, kind: &Kind, v: &Value, out: &mut Vec<(String, Vec<u8>)>) {
    match v {
        Value::Message(inner) => flatten(inner, &format!("{key}."), out),
        v => out.push((key.to_string(), scalar(kind, v))),
    }
}

fn scalar(kind: &Kind, v: &Value) -> Vec<u8> {
    match v {
        Value::Bytes(b) => b.to_vec(),
        Value::String(s) => s.clone().into_bytes(),
        Value::Bool(b) => b.to_string().into_bytes(),
        Value::I32(n) => n.to_string().into_bytes(),
        Value::I64(n) => n.to_string().into_bytes(),
        Value::U32(n) => n.to_string().into_bytes(),
        Value::U64(n) => n.to_string().into_bytes(),
        Value::F32(x) => x.to_string().into_bytes(),
        Value::F64(x) => x.to_string().into_bytes(),
        Value::EnumNumber(n) => match kind {
            Kind::Enum(e) => match e.get_value(*n) {
                Some(v) => v.name().as_bytes().to_vec(),
                None => n.to_string().into_bytes(),
            },
            _ => n.to_string().into_bytes(),
        },
        Value::Message(_) | Value::List(_) | Value::Map(_) => Vec::new(),
    }
}

/// Writes `msg` as `KEY : VALUE` lines.
pub fn write_response(w: &mut dyn Write, msg: &DynamicMessage) -> io::Result<()> {
    for (key, value) in fields(msg) {
        w.write_all(key.as_bytes())?;
        w.write_all(b" : ")?;
        w.write_all(&value)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// `msg` for `--trace`: its type, then one `KEY : VALUE` per line, each
/// after `mark`, with values escaped so that every entry stays one line.
pub fn trace_lines(mark: &str, msg: &DynamicMessage) -> String {
    let mut s = format!("{mark} {}\n", msg.descriptor().name());
    for (key, value) in fields(msg) {
        s.push_str(&format!("{mark}   {key} : {}\n", value.escape_ascii()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_protocol::pb;

    fn dynamic<T: prost::Message>(m: &T, name: &str) -> DynamicMessage {
        let d = warden_protocol::descriptor_pool()
            .get_message_by_name(name)
            .unwrap();
        DynamicMessage::decode(d, m.encode_to_vec().as_slice()).unwrap()
    }

    fn text(msg: &DynamicMessage) -> Vec<u8> {
        let mut out = Vec::new();
        write_response(&mut out, msg).unwrap();
        out
    }

    #[test]
    fn one_scalar() {
        let m = dynamic(
            &pb::CreateResponse {
                handle: "17527e1o5nv".into(),
            },
            "warden.CreateResponse",
        );
        assert_eq!(text(&m), b"handle : 17527e1o5nv\n");
        let m = dynamic(&pb::SpawnResponse { job_id: 1 }, "warden.SpawnResponse");
        assert_eq!(text(&m), b"job_id : 1\n");
    }

    #[test]
    fn empty_response_prints_nothing() {
        let m = dynamic(&pb::PingResponse {}, "warden.PingResponse");
        assert_eq!(text(&m), b"");
        let m = dynamic(&pb::ListResponse { handles: vec![] }, "warden.ListResponse");
        assert_eq!(text(&m), b"");
    }

    #[test]
    fn repeated_are_indexed() {
        let m = dynamic(
            &pb::ListResponse {
                handles: vec!["a".into(), "b".into()],
            },
            "warden.ListResponse",
        );
        assert_eq!(text(&m), b"handles[0] : a\nhandles[1] : b\n");
    }

    #[test]
    fn nested_are_flattened_and_absent_fields_left_out() {
        let info = pb::InfoResponse {
            state: Some("active".into()),
            events: vec!["oom".into()],
            container_ip: Some("10.254.0.2".into()),
            memory_stat: Some(pb::info_response::MemoryStat {
                rss: Some(4096),
                ..Default::default()
            }),
            job_ids: vec![1, 2],
            ..Default::default()
        };
        let m = dynamic(
            &pb::LinkResponse {
                exit_status: Some(0),
                stdout: Some(b"out\n".to_vec()),
                stderr: None,
                info: Some(info),
            },
            "warden.LinkResponse",
        );
        assert_eq!(
            String::from_utf8(text(&m)).unwrap(),
            "exit_status : 0\n\
             stdout : out\n\n\
             info.state : active\n\
             info.events[0] : oom\n\
             info.container_ip : 10.254.0.2\n\
             info.memory_stat.rss : 4096\n\
             info.job_ids[0] : 1\n\
             info.job_ids[1] : 2\n"
        );
    }

    #[test]
    fn bytes_are_raw_and_bools_and_enums_named() {
        let m = dynamic(
            &pb::EchoResponse {
                message: b"\xff\x00z".to_vec(),
            },
            "warden.EchoResponse",
        );
        assert_eq!(text(&m), b"message : \xff\x00z\n");
        let m = dynamic(
            &pb::CreateRequest {
                bind_mounts: vec![pb::create_request::BindMount {
                    src_path: "/a".into(),
                    dst_path: "/b".into(),
                    mode: 1,
                }],
                ..Default::default()
            },
            "warden.CreateRequest",
        );
        assert_eq!(
            text(&m),
            b"bind_mounts[0].src_path : /a\nbind_mounts[0].dst_path : /b\nbind_mounts[0].mode : RW\n"
        );
        let m = dynamic(
            &pb::StopRequest {
                handle: "h".into(),
                background: Some(false),
                kill: Some(true),
            },
            "warden.StopRequest",
        );
        assert_eq!(text(&m), b"handle : h\nbackground : false\nkill : true\n");
    }

    #[test]
    fn trace_escapes() {
        let m = dynamic(
            &pb::EchoRequest {
                message: b"a\nb".to_vec(),
            },
            "warden.EchoRequest",
        );
        assert_eq!(trace_lines(">", &m), "> EchoRequest\n>   message : a\\nb\n");
    }
}
