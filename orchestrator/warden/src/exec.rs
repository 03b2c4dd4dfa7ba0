//! Running one command: words → request → server → what is printed.
//!
//! As upstream's `process_command`:
//!
//! - `help` prints the command list, `CMD --help` the command's options;
//! - `run` is sent as `spawn`, then `stream` of the job it started, so the
//!   output shows as it comes: the job's stdout is written to our stdout,
//!   its stderr to our stderr, raw; the command's status is the job's
//!   exit status;
//! - `stream` writes the chunks the same way; its status is the job's
//!   exit status too (upstream leaves it 0);
//! - every other response is printed as `KEY : VALUE` lines (see
//!   [`crate::print`]); for `link` that includes `exit_status`, `stdout`
//!   and `stderr`, and the command's status is the job's exit status
//!   (upstream leaves it 0).

use std::fmt;
use std::io::{self, Write};

use prost::Message as _;
use prost_reflect::{DynamicMessage, Value};
use warden_protocol::pb::message::Type;

use crate::args::{self, ArgError, Command};
use crate::client::{Client, ClientError};
use crate::{help, print};

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong; `help` is the command's help, when the
    /// command is known.
    Usage {
        /// What is wrong.
        message: String,
        /// `CMD --help`, to show after the message.
        help: Option<String>,
    },
    /// The server could not be reached or refused the request.
    Client(ClientError),
    /// Our own stdout or stderr could not be written.
    Output(io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage { message, .. } => f.write_str(message),
            Failure::Client(e) => e.fmt(f),
            Failure::Output(e) => write!(f, "writing the output failed: {e}"),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

impl Failure {
    /// Writes the failure as the REPL reports it on stderr: a server's
    /// error message as the server sent it (bytes, raw), anything else as
    /// text; a usage error followed by the command's help.
    pub fn report(&self, err: &mut dyn Write) -> io::Result<()> {
        match self {
            Failure::Client(ClientError::Server(m)) => {
                err.write_all(m)?;
                err.write_all(b"\n")?;
            }
            Failure::Client(e @ (ClientError::Connect { .. } | ClientError::Io { .. })) => {
                writeln!(err, "warden: {e}")?;
            }
            Failure::Usage { message, help } => {
                writeln!(err, "{message}")?;
                match help {
                    Some(h) => write!(err, "\n{h}")?,
                    None => writeln!(err, "Use help to list the commands.")?,
                }
            }
            other => writeln!(err, "warden: {other}")?,
        }
        err.flush()
    }
}

/// What a command did, when it worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Done {
    /// The job's exit status, for `run`, `stream` and `link`.
    pub exit_status: Option<u32>,
}

/// Runs the command `words` (not empty) against `client`, writing its
/// output to `out` and a job's stderr to `err`.
pub fn execute(
    client: &mut Client,
    words: &[Vec<u8>],
    trace: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Done, Failure> {
    if trace {
        let line: Vec<String> = words
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        writeln!(err, "+ {}", line.join(" "))?;
        err.flush()?;
    }
    let command = args::parse_command(words).map_err(|ArgError(message)| Failure::Usage {
        help: args::command_type(&String::from_utf8_lossy(&words[0])).map(help::command),
        message,
    })?;
    let (t, msg) = match command {
        Command::Help => {
            out.write_all(help::commands(0).as_bytes())?;
            out.flush()?;
            return Ok(Done::default());
        }
        Command::HelpFor(t) => {
            out.write_all(help::command(t).as_bytes())?;
            out.flush()?;
            return Ok(Done::default());
        }
        Command::Request(t, msg) => (t, msg),
    };
    match t {
        Type::Run => {
            let spawn = spawn_of_run(&msg);
            let spawned = client.call(Type::Spawn, &spawn)?;
            let job_id = u32_field(&spawned, "job_id").unwrap_or_default();
            let mut stream = DynamicMessage::new(warden_protocol::request_descriptor(Type::Stream));
            stream.set_field_by_name(
                "handle",
                msg.get_field_by_name("handle").unwrap().into_owned(),
            );
            stream.set_field_by_name("job_id", Value::U32(job_id));
            stream_job(client, &stream, out, err)
        }
        Type::Stream => stream_job(client, &msg, out, err),
        _ => {
            let response = client.call(t, &msg)?;
            print::write_response(out, &response)?;
            out.flush()?;
            Ok(Done {
                exit_status: if t == Type::Link {
                    u32_field(&response, "exit_status")
                } else {
                    None
                },
            })
        }
    }
}

/// The `SpawnRequest` with the fields of a `RunRequest` (they are the
/// same fields, numbered alike).
fn spawn_of_run(run: &DynamicMessage) -> DynamicMessage {
    DynamicMessage::decode(
        warden_protocol::request_descriptor(Type::Spawn),
        run.encode_to_vec().as_slice(),
    )
    .expect("a RunRequest decodes as a SpawnRequest")
}

fn u32_field(msg: &DynamicMessage, name: &str) -> Option<u32> {
    if !msg.has_field_by_name(name) {
        return None;
    }
    match msg.get_field_by_name(name).as_deref() {
        Some(Value::U32(n)) => Some(*n),
        _ => None,
    }
}

fn stream_job(
    client: &mut Client,
    request: &DynamicMessage,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Done, Failure> {
    let last = client.stream(request, |name, data| {
        let w: &mut dyn Write = match name.to_ascii_lowercase().as_str() {
            "stdout" => &mut *out,
            "stderr" => &mut *err,
            _ => return Ok(()),
        };
        w.write_all(data)?;
        w.flush()
    })?;
    Ok(Done {
        exit_status: u32_field(&last, "exit_status"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_protocol::pb;

    #[test]
    fn run_becomes_spawn_with_the_same_fields() {
        let words = crate::words::split(
            b"run --handle h --script 'exit 3' --privileged --rlimits.nofile 9 --log_tag t",
        )
        .unwrap();
        let Ok(Command::Request(Type::Run, run)) = args::parse_command(&words) else {
            panic!()
        };
        let spawn =
            pb::SpawnRequest::decode(spawn_of_run(&run).encode_to_vec().as_slice()).unwrap();
        assert_eq!(spawn.handle, "h");
        assert_eq!(spawn.script, b"exit 3");
        assert_eq!(spawn.privileged, Some(true));
        assert_eq!(spawn.rlimits.unwrap().nofile, Some(9));
        assert_eq!(spawn.log_tag.as_deref(), Some("t"));
    }

    #[test]
    fn usage_errors_show_the_command_help() {
        let mut client = Client::new("/nonexistent/warden.sock", false);
        let words = crate::words::split(b"destroy --bogus 1").unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let f = execute(&mut client, &words, false, &mut out, &mut err).unwrap_err();
        f.report(&mut err).unwrap();
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("In flag: '--bogus', the field: 'bogus' is invalid"));
        assert!(err.contains("\ncommand: destroy\n"));
        assert!(out.is_empty());
    }

    #[test]
    fn help_needs_no_server() {
        let mut client = Client::new("/nonexistent/warden.sock", false);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let words = crate::words::split(b"help").unwrap();
        execute(&mut client, &words, true, &mut out, &mut err).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("\tping "));
        assert_eq!(err, b"+ help\n");
    }

    #[test]
    fn a_dead_server_is_one_line_naming_the_socket() {
        let mut client = Client::new("/nonexistent/warden.sock", false);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let words = crate::words::split(b"ping").unwrap();
        let f = execute(&mut client, &words, false, &mut out, &mut err).unwrap_err();
        f.report(&mut err).unwrap();
        let err = String::from_utf8(err).unwrap();
        assert!(
            err.starts_with("warden: cannot connect to /nonexistent/warden.sock: "),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1);
    }
}
