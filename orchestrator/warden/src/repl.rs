//! The loop: read a line, split it into words, run it, again.
//!
//! As upstream's `Repl#start`: the server is connected to first (a dead
//! server ends the REPL at once); the prompt is `warden> `; TAB completes
//! command names; the history is kept in `~/.warden-history` as a JSON
//! array of lines (upstream's format, so the two share it) and written
//! after every command; an error is printed on stderr and the prompt
//! comes back, unless `--exit_on_error`, which also stops at the first job
//! that exits non-zero and exits with its status. Ctrl-D ends the REPL,
//! Ctrl-C too (with "Exiting...", as upstream's INT trap).
//!
//! When stdin is not a terminal, upstream still runs GNU readline, which
//! then prints the prompt and echoes every line it reads into the output.
//! We read the lines plainly instead: no prompt, no echo, no editing and
//! no history, so `warden < script` prints only what the commands print.

use std::borrow::Cow;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::MemHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};

use crate::client::Client;
use crate::exec::{self, Failure};
use crate::{args, help, words};

/// The prompt, exactly upstream's.
pub const PROMPT: &str = "warden> ";

/// How the REPL behaves (the top-level flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The server's socket.
    pub socket: PathBuf,
    /// Trace every command, request and response on stderr.
    pub trace: bool,
    /// Stop at the first failed command.
    pub exit_on_error: bool,
}

/// What to do after a line.
enum Next {
    Go,
    Stop(i32),
}

/// Runs one line: splits, executes, reports. Blank lines do nothing.
fn run_line(client: &mut Client, opts: &Options, line: &[u8]) -> Next {
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    let result = match words::split(line) {
        Ok(w) if w.is_empty() => return Next::Go,
        Ok(w) => exec::execute(client, &w, opts.trace, &mut out, &mut err),
        Err(e) => Err(Failure::Usage {
            message: e.to_string(),
            help: None,
        }),
    };
    match result {
        Ok(done) => match done.exit_status {
            Some(status) if status != 0 && opts.exit_on_error => Next::Stop(status as i32),
            _ => Next::Go,
        },
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Next::Stop(1),
        Err(f) => {
            let _ = f.report(&mut err);
            if opts.exit_on_error {
                Next::Stop(1)
            } else {
                Next::Go
            }
        }
    }
}

fn connect_first(client: &mut Client) -> Result<(), i32> {
    client.connect().map_err(|e| {
        let _ = Failure::Client(e).report(&mut io::stderr());
        1
    })
}

/// Reads commands from stdin, which is not a terminal, one per line.
pub fn batch(opts: &Options) -> i32 {
    let mut client = Client::new(&opts.socket, opts.trace);
    if let Err(code) = connect_first(&mut client) {
        return code;
    }
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => return 0,
            Ok(_) => {}
            Err(e) => {
                eprintln!("warden: reading stdin failed: {e}");
                return 1;
            }
        }
        if let Next::Stop(code) = run_line(&mut client, opts, &line) {
            return code;
        }
    }
}

/// The interactive REPL on a terminal.
pub fn interactive(opts: &Options) -> i32 {
    let mut client = Client::new(&opts.socket, opts.trace);
    if let Err(code) = connect_first(&mut client) {
        return code;
    }
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .max_history_size(10_000)
        .expect("a valid history size")
        .build();
    let history = MemHistory::with_config(&config);
    let mut editor: Editor<Completion, MemHistory> = match Editor::with_history(config, history) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("warden: cannot set up the terminal: {e}");
            return 1;
        }
    };
    editor.set_helper(Some(Completion));
    let history_path = history_path();
    if let Some(path) = &history_path {
        for line in load_history(path) {
            let _ = editor.add_history_entry(line);
        }
    }
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                if let Some(path) = &history_path {
                    let entries: Vec<&str> =
                        editor.history().into_iter().map(String::as_str).collect();
                    if let Err(e) = save_history(path, &entries) {
                        eprintln!("warden: cannot write {}: {e}", path.display());
                    }
                }
                if let Next::Stop(code) = run_line(&mut client, opts, line.as_bytes()) {
                    return code;
                }
            }
            Err(rustyline::error::ReadlineError::Eof) => return 0,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                eprintln!("\nExiting...");
                return 0;
            }
            Err(e) => {
                eprintln!("warden: reading the terminal failed: {e}");
                return 1;
            }
        }
    }
}

/// `~/.warden-history`, when `HOME` is set.
pub fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".warden-history"))
}

/// The lines of a history file: a JSON array of strings. A missing file
/// is an empty history; an unreadable one too, with a warning.
pub fn load_history(path: &Path) -> Vec<String> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            eprintln!("warden: cannot read {}: {e}", path.display());
            return Vec::new();
        }
    };
    match serde_json::from_slice::<Vec<String>>(&text) {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!(
                "warden: ignoring {}: not a JSON array of strings ({e})",
                path.display()
            );
            Vec::new()
        }
    }
}

/// Writes the history file (a temporary file renamed over it, so a crash
/// never leaves half a history).
pub fn save_history(path: &Path, lines: &[&str]) -> io::Result<()> {
    let json = serde_json::to_vec(lines).map_err(io::Error::other)?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(&json)?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// TAB completion: command names for the first word; the request's field
/// flags (`--handle `, `--rlimits.`, `--bind_mounts[`) for a later word
/// that starts with `-`.
pub struct Completion;

/// The completions of the word being typed, which starts at the returned
/// offset of `line[..pos]`.
pub fn complete(line: &str, pos: usize) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before
        .rfind(|c: char| c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let word = &before[start..];
    let first = before[..start].trim().is_empty();
    if first {
        let names = help::command_names()
            .into_iter()
            .filter(|n| n.starts_with(word))
            .map(|n| format!("{n} "))
            .collect();
        return (start, names);
    }
    let command = before.split_ascii_whitespace().next().unwrap_or_default();
    let Some(t) = args::command_type(command) else {
        return (start, Vec::new());
    };
    if !word.starts_with('-') || word.contains('.') || word.contains('[') {
        return (start, Vec::new());
    }
    let desc = warden_protocol::request_descriptor(t);
    let mut flags: Vec<String> = args::fields_in_order(&desc)
        .into_iter()
        .map(|f| {
            let suffix = match (f.is_list(), f.kind().as_message().is_some()) {
                (true, _) => "[",
                (false, true) => ".",
                (false, false) => " ",
            };
            format!("--{}{suffix}", f.name())
        })
        .chain(std::iter::once("--help ".to_string()))
        .filter(|f| f.starts_with(word))
        .collect();
    flags.sort();
    (start, flags)
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = complete(line, pos);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.trim_end().to_string(),
                    replacement: w,
                })
                .collect(),
        ))
    }
}

impl Hinter for Completion {
    type Hint = String;
}

impl Highlighter for Completion {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Borrowed(line)
    }
}

impl Validator for Completion {}

impl Helper for Completion {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_command_names() {
        assert_eq!(complete("cr", 2), (0, vec!["create ".to_string()]));
        assert_eq!(
            complete("  co", 4),
            (2, vec!["copy_in ".to_string(), "copy_out ".to_string()])
        );
        assert_eq!(complete("he", 2), (0, vec!["help ".to_string()]));
        assert_eq!(complete("limit_", 6).1.len(), 4);
        assert!(complete("zz", 2).1.is_empty());
    }

    #[test]
    fn completes_field_flags() {
        assert_eq!(
            complete("run --handle h --r", 18),
            (15, vec!["--rlimits.".to_string()])
        );
        assert_eq!(
            complete("create --b", 10),
            (7, vec!["--bind_mounts[".to_string()])
        );
        assert_eq!(
            complete("stop --", 7).1,
            ["--background ", "--handle ", "--help ", "--kill "]
        );
        assert!(complete("run --handle h", 14).1.is_empty());
        assert!(complete("nope --h", 8).1.is_empty());
    }

    #[test]
    fn history_round_trips_as_a_json_array() {
        let dir = std::env::temp_dir().join(format!("warden-repl-hist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".warden-history");
        assert!(load_history(&path).is_empty());
        save_history(&path, &["ping", "run --script \"echo \\\"x\\\"\""]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            r#"["ping","run --script \"echo \\\"x\\\"\""]"#
        );
        assert_eq!(
            load_history(&path),
            ["ping", "run --script \"echo \\\"x\\\"\""]
        );
        std::fs::write(&path, "not json").unwrap();
        assert!(load_history(&path).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
