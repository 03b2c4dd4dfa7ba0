//! A command's words → the request, as a `DynamicMessage` built from the
//! protocol's descriptors, so every request and field works without code
//! of its own.
//!
//! The grammar is the upstream REPL's (`commands_manager.rb`):
//!
//! - `--FIELD VALUE` sets a field; `--A.B VALUE` a field of a nested
//!   message; `--A[I].B VALUE` a field of the I-th element of a repeated
//!   message; `--A[I] VALUE` the I-th element of a repeated scalar. An index
//!   must be the list's length (a new element) or its length − 1 (the last
//!   one again), so elements are given in order.
//! - A `bool` field is a switch: `--privileged` sets it. (Unlike upstream,
//!   `--privileged true` and `--privileged false` are accepted too.)
//! - An enum takes the value's name (`--bind_mounts[0].mode RO`); we also
//!   take its number.
//! - Integers are decimal, or `0x`/`0o`/`0b` prefixed, `_` allowed between
//!   digits, as Ruby's `Integer()` reads them (but a leading `0` does not
//!   mean octal).
//! - A value may not look like a flag (`--x`): upstream refuses that too.
//! - `--help` anywhere asks for the command's help instead.
//! - Required fields missing are refused before anything is sent, all of
//!   them named.

use std::fmt;

use prost_reflect::{
    Cardinality, DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    ReflectMessage, Value,
};
use warden_protocol::pb::message::Type;

/// A command that could not be turned into a request. The text says what
/// and where, in the upstream REPL's style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ArgError> {
    Err(ArgError(msg.into()))
}

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `help` or `--help`: the list of commands.
    Help,
    /// `CMD ... --help`: that command's options.
    HelpFor(Type),
    /// A request to send.
    Request(Type, DynamicMessage),
}

/// The command types a user may name: all but `Error`.
pub fn command_types() -> impl Iterator<Item = Type> {
    warden_protocol::ALL_TYPES
        .iter()
        .copied()
        .filter(|t| *t != Type::Error)
}

/// The type named `name` (any case), if it is a command.
pub fn command_type(name: &str) -> Option<Type> {
    warden_protocol::type_from_name(&name.to_ascii_lowercase()).filter(|t| *t != Type::Error)
}

fn is_help(word: &[u8]) -> bool {
    word.eq_ignore_ascii_case(b"--help") || word.eq_ignore_ascii_case(b"help")
}

/// Whether `word` looks like a flag: `--` and at least one more
/// non-space character (upstream's `/^--\S+/`).
pub fn looks_like_flag(word: &[u8]) -> bool {
    word.len() > 2 && word.starts_with(b"--") && !word[2].is_ascii_whitespace()
}

/// Parses a whole command: its name, then its flags. `words` is not empty.
pub fn parse_command(words: &[Vec<u8>]) -> Result<Command, ArgError> {
    let (name, rest) = words.split_first().expect("a command has a name");
    if is_help(name) {
        return Ok(Command::Help);
    }
    let name = String::from_utf8_lossy(name);
    let Some(t) = command_type(&name) else {
        return err(format!(
            "Command: '{}' is non-existent.",
            name.to_lowercase()
        ));
    };
    if rest.iter().any(|w| w.eq_ignore_ascii_case(b"--help")) {
        return Ok(Command::HelpFor(t));
    }
    let msg = parse_fields(warden_protocol::request_descriptor(t), rest)?;
    Ok(Command::Request(t, msg))
}

/// One element of a flag's path: `bind_mounts[0]` is `("bind_mounts",
/// Some(0))`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element<'a> {
    name: &'a str,
    index: Option<usize>,
}

impl fmt::Display for Element<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}[{i}]", self.name),
            None => f.write_str(self.name),
        }
    }
}

fn parse_element<'a>(flag: &str, s: &'a str) -> Result<Element<'a>, ArgError> {
    let bad = || err(format!("In flag: '{flag}', Invalid flag element: '{s}'."));
    let (name, index) = match s.find('[') {
        None => (s, None),
        Some(open) => {
            let Some(digits) = s[open + 1..].strip_suffix(']') else {
                return bad();
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return bad();
            }
            match digits.parse::<usize>() {
                Ok(i) => (&s[..open], Some(i)),
                Err(_) => return bad(),
            }
        }
    };
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return bad();
    }
    Ok(Element { name, index })
}

/// The fields of `desc` in the order the .proto declares them (the order
/// upstream lists and prints them in).
pub fn fields_in_order(desc: &MessageDescriptor) -> Vec<FieldDescriptor> {
    desc.descriptor_proto()
        .field
        .iter()
        .filter_map(|f| desc.get_field_by_name(f.name()))
        .collect()
}

fn field_names(desc: &MessageDescriptor) -> String {
    let names: Vec<String> = fields_in_order(desc)
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Parses the flags of a command into a message of type `desc`, then
/// checks that every required field is there.
pub fn parse_fields(desc: MessageDescriptor, args: &[Vec<u8>]) -> Result<DynamicMessage, ArgError> {
    let mut msg = DynamicMessage::new(desc);
    let mut i = 0;
    while i < args.len() {
        let word = &args[i];
        let flag = String::from_utf8_lossy(word).into_owned();
        if !looks_like_flag(word) {
            return err(format!("Invalid flag: '{flag}'."));
        }
        let path: Vec<Element> = flag[2..]
            .split('.')
            .map(|s| parse_element(&flag, s))
            .collect::<Result<_, _>>()?;
        let next = args.get(i + 1).map(Vec::as_slice);
        let consumed = set_path(&mut msg, &path, next, &flag)?;
        i += if consumed { 2 } else { 1 };
    }
    check_required(&msg)?;
    Ok(msg)
}

/// Walks `path` from `msg` and sets its last element from `next` (the word
/// after the flag). Returns whether `next` was used.
fn set_path(
    msg: &mut DynamicMessage,
    path: &[Element],
    next: Option<&[u8]>,
    flag: &str,
) -> Result<bool, ArgError> {
    let (elem, rest) = path.split_first().expect("a flag has a path");
    let desc = msg.descriptor();
    let Some(field) = desc.get_field_by_name(elem.name) else {
        return err(format!(
            "In flag: '{flag}', the field: '{elem}' is invalid (the fields of {} are: {}).",
            desc.name(),
            field_names(&desc)
        ));
    };
    if field.is_list() && elem.index.is_none() {
        return err(format!(
            "In flag: '{flag}', the field: '{elem}' is not indexed."
        ));
    }
    if !field.is_list() && elem.index.is_some() {
        return err(format!(
            "In flag: '{flag}', the field: '{elem}' is not a repeated field and takes no index."
        ));
    }
    let kind = field.kind();
    match (kind, rest.is_empty()) {
        (Kind::Message(_), true) => err(format!(
            "In flag: '{flag}', the field: '{elem}' is a message: set its fields ('{flag}.FIELD')."
        )),
        (Kind::Message(_), false) => {
            let inner = if let Some(index) = elem.index {
                let list = list_mut(msg, &field);
                slot(list, index, flag, elem, || {
                    Value::Message(DynamicMessage::new(
                        field.kind().as_message().expect("message field").clone(),
                    ))
                })?
                .as_message_mut()
                .expect("a message list holds messages")
            } else {
                msg.get_field_mut(&field)
                    .as_message_mut()
                    .expect("a message field holds a message")
            };
            set_path(inner, rest, next, flag)
        }
        (_, false) => err(format!(
            "In flag: '{flag}', the field: '{elem}' is not a message and has no fields."
        )),
        (kind, true) => {
            let (value, consumed) = scalar_value(&kind, next, flag)?;
            if let Some(index) = elem.index {
                let list = list_mut(msg, &field);
                let fresh = value.clone();
                *slot(list, index, flag, elem, || fresh)? = value;
            } else {
                msg.set_field(&field, value);
            }
            Ok(consumed)
        }
    }
}

fn list_mut<'m>(msg: &'m mut DynamicMessage, field: &FieldDescriptor) -> &'m mut Vec<Value> {
    match msg.get_field_mut(field) {
        Value::List(list) => list,
        _ => unreachable!("a repeated field holds a list"),
    }
}

/// The list's element at `index`, which must be the last one or a new one
/// (made by `new`).
fn slot<'l>(
    list: &'l mut Vec<Value>,
    index: usize,
    flag: &str,
    elem: &Element,
    new: impl FnOnce() -> Value,
) -> Result<&'l mut Value, ArgError> {
    if index == list.len() {
        list.push(new());
    } else if index + 1 != list.len() {
        let want = if list.is_empty() {
            "0".to_string()
        } else {
            format!("{} or {}", list.len() - 1, list.len())
        };
        return err(format!(
            "In flag: '{flag}', the field: '{elem}' is not indexed correctly (the index here must be {want}: elements are given in order)."
        ));
    }
    Ok(list.last_mut().expect("not empty"))
}

/// The value for a scalar field from the word after its flag; whether that
/// word was used.
fn scalar_value(kind: &Kind, next: Option<&[u8]>, flag: &str) -> Result<(Value, bool), ArgError> {
    if let Kind::Bool = kind {
        return Ok(match next {
            Some(b"true") => (Value::Bool(true), true),
            Some(b"false") => (Value::Bool(false), true),
            _ => (Value::Bool(true), false),
        });
    }
    let Some(word) = next.filter(|w| !looks_like_flag(w)) else {
        return err(format!("In flag: '{flag}', a value is missing."));
    };
    if let Kind::Bytes = kind {
        return Ok((Value::Bytes(word.to_vec().into()), true));
    }
    let Ok(text) = std::str::from_utf8(word) else {
        return err(format!("In flag: '{flag}', the value is not UTF-8."));
    };
    let bad_number = |what: &str| {
        err(format!(
            "In flag: '{flag}', invalid value for {what}: '{text}'."
        ))
    };
    let value = match kind {
        Kind::String => Value::String(text.to_string()),
        Kind::Uint32 | Kind::Fixed32 => match parse_int(text).and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Value::U32(n),
            None => return bad_number("uint32"),
        },
        Kind::Uint64 | Kind::Fixed64 => match parse_int(text).and_then(|n| u64::try_from(n).ok()) {
            Some(n) => Value::U64(n),
            None => return bad_number("uint64"),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            match parse_int(text).and_then(|n| i32::try_from(n).ok()) {
                Some(n) => Value::I32(n),
                None => return bad_number("int32"),
            }
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            match parse_int(text).and_then(|n| i64::try_from(n).ok()) {
                Some(n) => Value::I64(n),
                None => return bad_number("int64"),
            }
        }
        Kind::Float => match text.trim().parse::<f32>() {
            Ok(x) => Value::F32(x),
            Err(_) => return bad_number("float"),
        },
        Kind::Double => match text.trim().parse::<f64>() {
            Ok(x) => Value::F64(x),
            Err(_) => return bad_number("double"),
        },
        Kind::Enum(e) => Value::EnumNumber(enum_number(e, text, flag)?),
        Kind::Bool | Kind::Bytes | Kind::Message(_) => unreachable!("handled above"),
    };
    Ok((value, true))
}

/// The names of an enum's values, sorted (as upstream lists them).
pub fn enum_names(e: &EnumDescriptor) -> Vec<String> {
    let mut names: Vec<String> = e.values().map(|v| v.name().to_string()).collect();
    names.sort();
    names
}

fn enum_number(e: &EnumDescriptor, text: &str, flag: &str) -> Result<i32, ArgError> {
    if let Some(v) = e.get_value_by_name(text) {
        return Ok(v.number());
    }
    let folded: Vec<_> = e
        .values()
        .filter(|v| v.name().eq_ignore_ascii_case(text))
        .collect();
    if let [v] = folded.as_slice() {
        return Ok(v.number());
    }
    if let Some(v) = parse_int(text)
        .and_then(|n| i32::try_from(n).ok())
        .and_then(|n| e.get_value(n))
    {
        return Ok(v.number());
    }
    err(format!(
        "In flag: '{flag}', '{text}' is not a value of {}: expected one of {}.",
        e.name(),
        enum_names(e).join(", ")
    ))
}

/// An integer as Ruby's `Integer()` reads one, without the octal leading
/// zero: optional sign, optional `0x`/`0o`/`0b`, digits with single `_`
/// between them. Surrounding whitespace is allowed.
pub fn parse_int(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let n = i128::from_str_radix(&clean, radix).ok()?;
    Some(if neg { -n } else { n })
}

/// Refuses `msg` if a required field is absent, in it or in the messages
/// it holds, naming every one as its flag (`--handle`,
/// `--bind_mounts[0].src_path`).
pub fn check_required(msg: &DynamicMessage) -> Result<(), ArgError> {
    let mut missing = Vec::new();
    missing_required(msg, "--", &mut missing);
    match missing.as_slice() {
        [] => Ok(()),
        [one] => err(format!("Missing required field: '{one}'.")),
        many => err(format!("Missing required fields: '{}'.", many.join("', '"))),
    }
}

fn missing_required(msg: &DynamicMessage, prefix: &str, out: &mut Vec<String>) {
    for field in fields_in_order(&msg.descriptor()) {
        let name = format!("{prefix}{}", field.name());
        if field.cardinality() == Cardinality::Required && !msg.has_field(&field) {
            out.push(name);
            continue;
        }
        if !msg.has_field(&field) {
            continue;
        }
        match &*msg.get_field(&field) {
            Value::Message(inner) => missing_required(inner, &format!("{name}."), out),
            Value::List(list) => {
                for (i, v) in list.iter().enumerate() {
                    if let Value::Message(inner) = v {
                        missing_required(inner, &format!("{name}[{i}]."), out);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use warden_protocol::pb;

    fn words(s: &str) -> Vec<Vec<u8>> {
        crate::words::split(s.as_bytes()).unwrap()
    }

    fn request(line: &str) -> (Type, DynamicMessage) {
        match parse_command(&words(line)) {
            Ok(Command::Request(t, m)) => (t, m),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        match parse_command(&words(line)) {
            Err(ArgError(m)) => m,
            other => panic!("{line}: expected an error, got {other:?}"),
        }
    }

    /// The message as prost's own type, through the wire.
    fn typed<T: prost::Message + Default>(m: &DynamicMessage) -> T {
        T::decode(m.encode_to_vec().as_slice()).unwrap()
    }

    fn descriptor(name: &str) -> MessageDescriptor {
        warden_protocol::descriptor_pool()
            .get_message_by_name(name)
            .unwrap()
    }

    #[test]
    fn string_field() {
        let (t, m) = request("destroy --handle abc");
        assert_eq!(t, Type::Destroy);
        assert_eq!(typed::<pb::DestroyRequest>(&m).handle, "abc");
    }

    #[test]
    fn bytes_field_takes_raw_bytes() {
        let mut args = words("spawn --handle h --script");
        args.push(b"echo \xff\xfe".to_vec());
        let m = parse_fields(descriptor("warden.SpawnRequest"), &args[1..]).unwrap();
        let r = typed::<pb::SpawnRequest>(&m);
        assert_eq!(r.script, b"echo \xff\xfe");
        let (_, m) = request(r#"run --handle h --script "echo hi; exit 3""#);
        assert_eq!(typed::<pb::RunRequest>(&m).script, b"echo hi; exit 3");
    }

    #[test]
    fn uint32_and_uint64_fields() {
        let (_, m) = request("create --grace_time 300");
        assert_eq!(typed::<pb::CreateRequest>(&m).grace_time, Some(300));
        let (_, m) = request("limit_memory --handle h --limit_in_bytes 0x1_0000_0000");
        assert_eq!(
            typed::<pb::LimitMemoryRequest>(&m).limit_in_bytes,
            Some(1 << 32)
        );
        let (_, m) = request("link --handle h --job_id 0");
        let r = typed::<pb::LinkRequest>(&m);
        assert_eq!((r.handle.as_str(), r.job_id), ("h", 0));
        // A required field set to its default value is still sent.
        assert!(m.encode_to_vec().ends_with(&[0x10, 0]));
    }

    #[test]
    fn int32_takes_negative_numbers() {
        let (_, m) = request("net_out --handle h --icmp_type -1 --icmp_code 3");
        let r = typed::<pb::NetOutRequest>(&m);
        assert_eq!((r.icmp_type, r.icmp_code), (Some(-1), Some(3)));
    }

    #[test]
    fn bool_is_a_switch() {
        let (_, m) = request("stop --handle h --kill");
        let r = typed::<pb::StopRequest>(&m);
        assert_eq!((r.kill, r.background), (Some(true), None));
        let (_, m) = request("stop --kill --handle h --background false");
        let r = typed::<pb::StopRequest>(&m);
        assert_eq!((r.kill, r.background), (Some(true), Some(false)));
        let (_, m) = request("stop --kill true --handle h");
        assert_eq!(typed::<pb::StopRequest>(&m).kill, Some(true));
    }

    #[test]
    fn enum_by_name_or_number() {
        let (_, m) = request("net_out --handle h --protocol UDP");
        assert_eq!(typed::<pb::NetOutRequest>(&m).protocol, Some(1));
        let (_, m) = request("net_out --handle h --protocol icmp");
        assert_eq!(typed::<pb::NetOutRequest>(&m).protocol, Some(2));
        let (_, m) = request("net_out --handle h --protocol 3");
        assert_eq!(typed::<pb::NetOutRequest>(&m).protocol, Some(3));
        let e = error("net_out --handle h --protocol SCTP");
        assert_eq!(
            e,
            "In flag: '--protocol', 'SCTP' is not a value of Protocol: expected one of ALL, ICMP, TCP, UDP."
        );
    }

    #[test]
    fn nested_message() {
        let (_, m) = request("run --handle h --script x --rlimits.nofile 64 --rlimits.as 1024");
        let r = typed::<pb::RunRequest>(&m);
        let l = r.rlimits.unwrap();
        assert_eq!((l.nofile, l.r#as, l.cpu), (Some(64), Some(1024), None));
    }

    #[test]
    fn repeated_message_with_indices() {
        let (_, m) = request(
            "create --bind_mounts[0].src_path /a --bind_mounts[0].dst_path /b \
             --bind_mounts[0].mode RO --bind_mounts[1].src_path /c \
             --bind_mounts[1].dst_path /d --bind_mounts[1].mode RW --handle x",
        );
        let r = typed::<pb::CreateRequest>(&m);
        assert_eq!(r.handle.as_deref(), Some("x"));
        let mounts: Vec<_> = r
            .bind_mounts
            .iter()
            .map(|b| (b.src_path.as_str(), b.dst_path.as_str(), b.mode))
            .collect();
        assert_eq!(mounts, [("/a", "/b", 0), ("/c", "/d", 1)]);
    }

    #[test]
    fn repeated_scalar_with_indices() {
        let d = descriptor("warden.InfoResponse");
        let m = parse_fields(
            d,
            &words("--job_ids[0] 5 --job_ids[1] 6 --job_ids[1] 7 --events[0] oom"),
        )
        .unwrap();
        let r = typed::<pb::InfoResponse>(&m);
        assert_eq!(r.job_ids, [5, 7]);
        assert_eq!(r.events, ["oom"]);
    }

    #[test]
    fn later_flags_win() {
        let (_, m) = request("echo --message a --message b");
        assert_eq!(typed::<pb::EchoRequest>(&m).message, b"b");
    }

    #[test]
    fn command_names_and_help() {
        assert_eq!(parse_command(&words("help")), Ok(Command::Help));
        assert_eq!(parse_command(&words("--HELP")), Ok(Command::Help));
        assert_eq!(
            parse_command(&words("create --grace_time x --help")),
            Ok(Command::HelpFor(Type::Create))
        );
        let (t, _) = request("PING");
        assert_eq!(t, Type::Ping);
        assert_eq!(
            error("frobnicate"),
            "Command: 'frobnicate' is non-existent."
        );
        assert_eq!(error("error"), "Command: 'error' is non-existent.");
        assert_eq!(command_types().count(), 19);
    }

    #[test]
    fn unknown_field_names_the_valid_ones() {
        assert_eq!(
            error("destroy --handle h --force"),
            "In flag: '--force', the field: 'force' is invalid (the fields of DestroyRequest are: handle)."
        );
        assert!(error("create --bind_mounts[0].source /a").contains(
            "the field: 'source' is invalid (the fields of BindMount are: src_path, dst_path, mode)"
        ));
    }

    #[test]
    fn bad_numbers() {
        assert_eq!(
            error("create --grace_time soon"),
            "In flag: '--grace_time', invalid value for uint32: 'soon'."
        );
        assert_eq!(
            error("create --grace_time 4294967296"),
            "In flag: '--grace_time', invalid value for uint32: '4294967296'."
        );
        assert!(error("create --grace_time -1").contains("invalid value for uint32"));
        assert!(error("link --handle h --job_id 1__0").contains("invalid value"));
        assert_eq!(parse_int("0b101"), Some(5));
        assert_eq!(parse_int("010"), Some(10));
        assert_eq!(parse_int("-0x10"), Some(-16));
        assert_eq!(parse_int("1_000"), Some(1000));
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("0x"), None);
    }

    #[test]
    fn missing_required_fields_are_all_named() {
        assert_eq!(
            error("run"),
            "Missing required fields: '--handle', '--script'."
        );
        assert_eq!(
            error("run --script x"),
            "Missing required field: '--handle'."
        );
        assert_eq!(
            error("create --bind_mounts[0].src_path /a"),
            "Missing required fields: '--bind_mounts[0].dst_path', '--bind_mounts[0].mode'."
        );
        assert!(matches!(
            parse_command(&words("ping")),
            Ok(Command::Request(Type::Ping, _))
        ));
    }

    #[test]
    fn malformed_flags() {
        assert_eq!(error("destroy handle"), "Invalid flag: 'handle'.");
        assert_eq!(error("destroy --"), "Invalid flag: '--'.");
        assert_eq!(
            error("destroy --handle"),
            "In flag: '--handle', a value is missing."
        );
        assert_eq!(
            error("destroy --handle --handle"),
            "In flag: '--handle', a value is missing."
        );
        assert!(error("create --bind_mounts.src_path /a").contains("is not indexed."));
        assert!(error("create --bind_mounts[1].src_path /a").contains("is not indexed correctly"));
        assert!(error("create --bind_mounts[x].src_path /a").contains("Invalid flag element"));
        assert!(error("create --handle[0] a").contains("is not a repeated field"));
        assert!(error("run --handle h --script x --rlimits 3").contains("is a message"));
        assert!(error("create --handle.x a").contains("is not a message"));
    }

    #[test]
    fn a_string_field_wants_utf8() {
        let mut args = words("--handle");
        args.push(b"\xff".to_vec());
        let e = parse_fields(descriptor("warden.DestroyRequest"), &args).unwrap_err();
        assert_eq!(e.0, "In flag: '--handle', the value is not UTF-8.");
    }
}
