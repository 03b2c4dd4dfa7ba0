//! Help texts, laid out as upstream's: `help` (the commands with their
//! descriptions), `CMD --help` (the request's fields with their types,
//! required ones first, then repeated, then optional), and `warden --help`.

use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};
use warden_protocol::pb::message::Type;

use crate::args::{command_types, enum_names, fields_in_order};

/// Upstream's `run` entry in the command list and in `run --help`: our
/// `run` spawns the job and streams its output, as upstream's does.
const RUN: &str = "Short hand for spawn(stream(cmd)) i.e. spawns a command, streams the result.";

/// The one-line description of a command (upstream's wording; upstream
/// has none for limit_bandwidth, which its REPL does not list).
pub fn description(t: Type) -> &'static str {
    match t {
        Type::CopyIn => "Copy files/directories into the container.",
        Type::CopyOut => "Copy files/directories out of the container.",
        Type::Create => "Create a container, optionally pass options.",
        Type::Destroy => "Shutdown a container.",
        Type::Echo => "Echo a message.",
        Type::Info => "Show metadata for a container.",
        Type::LimitBandwidth => "Set the bandwidth limit (rate and burst) for the container.",
        Type::LimitCpu => "Set or get the CPU limit in shares for the container.",
        Type::LimitDisk => "set or get the disk limit for the container.",
        Type::LimitMemory => "Set or get the memory limit for the container.",
        Type::Link => "Do blocking read on results from a job.",
        Type::List => "List containers.",
        Type::NetIn => "Forward port on external interface to container.",
        Type::NetOut => "Allow traffic from the container to address.",
        Type::Ping => "Ping warden.",
        Type::Run => RUN,
        Type::Spawn => "Spawns a command inside a container and returns the job id.",
        Type::Stop => "Stop all processes inside a container.",
        Type::Stream => "Do blocking stream on results from a job.",
        Type::Error => "",
    }
}

/// The command names, sorted, then `help`: what TAB completes.
pub fn command_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = command_types().map(warden_protocol::type_name).collect();
    names.sort_unstable();
    names.push("help");
    names
}

/// The list of commands. `width` is the column the descriptions start
/// at after the tab; 0 means two more than the longest name.
pub fn commands(width: usize) -> String {
    let mut names: Vec<(&str, Type)> = command_types()
        .map(|t| (warden_protocol::type_name(t), t))
        .collect();
    names.sort_unstable_by_key(|(n, _)| *n);
    let width = if width > 0 {
        width
    } else {
        names.iter().map(|(n, _)| n.len()).max().unwrap_or(0) + 2
    };
    let mut s = String::from("\n");
    for (name, t) in names {
        s.push_str(&format!("\t{name:<width$}{}\n", description(t)));
    }
    s.push_str(&format!("\t{:<width$}{}\n", "help", "Show help."));
    s.push_str("\nUse --help with each command for more information.\n");
    s
}

/// `CMD --help`.
pub fn command(t: Type) -> String {
    let name = warden_protocol::type_name(t);
    let mut s = format!("command: {name}\ndescription: {}\n", description(t));
    let mut options = String::new();
    describe_fields(
        &warden_protocol::request_descriptor(t),
        "--",
        1,
        &mut options,
    );
    if !options.is_empty() {
        s.push_str(&format!(
            "usage: {name} [options]\n\n[options] can be one of the following:\n\n"
        ));
        s.push_str(&options);
    }
    s
}

fn describe_fields(desc: &MessageDescriptor, prefix: &str, indent: usize, out: &mut String) {
    let fields = fields_in_order(desc);
    for rule in [
        Cardinality::Required,
        Cardinality::Repeated,
        Cardinality::Optional,
    ] {
        for f in fields.iter().filter(|f| f.cardinality() == rule) {
            out.push_str(&"\t".repeat(indent));
            out.push_str(&describe_field(f, prefix));
            out.push('\n');
            if let Kind::Message(inner) = f.kind() {
                describe_fields(&inner, ".", indent + 1, out);
            }
        }
    }
}

/// The type as upstream names it: the proto type; `string` for our
/// `bytes` fields (which carry what the original protocol declares
/// `string`); an enum's values; nothing for a message or a bool.
fn type_text(f: &FieldDescriptor) -> Option<String> {
    Some(match f.kind() {
        Kind::Message(_) | Kind::Bool => return None,
        Kind::Enum(e) => enum_names(&e).join(", "),
        Kind::Bytes | Kind::String => "string".into(),
        Kind::Uint32 => "uint32".into(),
        Kind::Uint64 => "uint64".into(),
        Kind::Int32 => "int32".into(),
        Kind::Int64 => "int64".into(),
        Kind::Sint32 => "sint32".into(),
        Kind::Sint64 => "sint64".into(),
        Kind::Fixed32 => "fixed32".into(),
        Kind::Fixed64 => "fixed64".into(),
        Kind::Sfixed32 => "sfixed32".into(),
        Kind::Sfixed64 => "sfixed64".into(),
        Kind::Float => "float".into(),
        Kind::Double => "double".into(),
    })
}

fn describe_field(f: &FieldDescriptor, prefix: &str) -> String {
    let name = f.name();
    let (mut text, mut suffix) = match f.cardinality() {
        Cardinality::Repeated => (format!("{prefix}{name}[index]"), "  # array".to_string()),
        Cardinality::Required => (format!("{prefix}{name}"), "  # required".to_string()),
        Cardinality::Optional => (format!("{prefix}{name}"), "  # optional".to_string()),
    };
    if let Some(ty) = type_text(f) {
        text.push_str(&format!(" <{name}> ({ty})"));
        if let Some(default) = &f.field_descriptor_proto().default_value {
            suffix.push_str(&format!(" (default: {default})"));
        }
    }
    if f.cardinality() == Cardinality::Optional {
        text = format!("[{text}]");
    }
    text + &suffix
}

/// `warden --help`, laid out as Ruby's OptionParser lays out upstream's
/// (4 spaces, the option in 32 columns, its description), then the
/// commands aligned with the option descriptions.
pub fn usage() -> String {
    let mut s = String::from(
        "Usage: warden [options] -- [commands]\n\
         Runs an interactive REPL by default.\n\
         \n\
         [options] can be one of the following:\n\
         \n",
    );
    let options = [
        (
            "--socket socket",
            "Warden socket path (default: /tmp/warden.sock).",
        ),
        (
            "--trace",
            "Writes each command preceded by a '+', and each request and response, to stderr.",
        ),
        (
            "--exit_on_error",
            "Exit after the first unsuccessful command.",
        ),
        ("--help", "Show help."),
    ];
    for (opt, text) in options {
        s.push_str(&format!("        {opt:<28} {text}\n"));
    }
    s.push_str("\n[commands] can be one of the following separated by a newline.\n");
    s.push_str(&commands(29));
    s.push('\n');
    s
}

/// The short usage shown after a bad top-level option.
pub const SHORT_USAGE: &str = "Usage: warden [options] -- [commands] (warden --help lists them)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_description() {
        for t in command_types() {
            assert!(!description(t).is_empty(), "{t:?}");
        }
    }

    #[test]
    fn command_list() {
        let text = commands(0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "");
        // limit_bandwidth is the longest name: 15 + 2 columns.
        assert_eq!(
            lines[1],
            "\tcopy_in          Copy files/directories into the container."
        );
        assert_eq!(lines[16], format!("\trun              {RUN}"));
        assert_eq!(lines[20], "\thelp             Show help.");
        assert_eq!(lines[21], "");
        assert_eq!(
            lines[22],
            "Use --help with each command for more information."
        );
        assert_eq!(lines.len(), 23);
        for name in command_names() {
            assert!(text.contains(&format!("\t{name} ")), "{name}");
        }
    }

    #[test]
    fn simple_command_help() {
        assert_eq!(
            command(Type::Destroy),
            "command: destroy\n\
             description: Shutdown a container.\n\
             usage: destroy [options]\n\n\
             [options] can be one of the following:\n\n\
             \t--handle <handle> (string)  # required\n"
        );
        assert_eq!(
            command(Type::Ping),
            "command: ping\ndescription: Ping warden.\n"
        );
    }

    #[test]
    fn nested_command_help() {
        let text = command(Type::Create);
        assert!(text.contains(
            "\t--bind_mounts[index]  # array\n\
             \t\t.src_path <src_path> (string)  # required\n\
             \t\t.dst_path <dst_path> (string)  # required\n\
             \t\t.mode <mode> (RO, RW)  # required\n\
             \t[--grace_time <grace_time> (uint32)]  # optional\n\
             \t[--handle <handle> (string)]  # optional\n"
        ));
        let text = command(Type::Run);
        assert!(text.starts_with(&format!("command: run\ndescription: {RUN}\n")));
        assert!(text.contains(
            "\t--handle <handle> (string)  # required\n\
             \t--script <script> (string)  # required\n\
             \t[--privileged]  # optional\n\
             \t[--rlimits]  # optional\n\
             \t\t[.as <as> (uint64)]  # optional\n"
        ));
    }

    #[test]
    fn top_level_usage_aligns_commands_with_options() {
        let text = usage();
        assert!(text.contains(
            "        --socket socket              Warden socket path (default: /tmp/warden.sock).\n"
        ));
        // A tab is 8 columns: 8 + 29 = 4 + 32 + 1.
        assert!(text.contains("\tcreate                       Create a container"));
        assert!(text.ends_with("information.\n\n"));
    }
}
