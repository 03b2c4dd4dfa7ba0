//! How the end of a session with wshd becomes the client's exit code and
//! its status file, alike for wsh and for iomux-spawn asking wshd itself
//! (`--wshd`): a job's recorded code must not depend on which of the two
//! held its pipes.
//!
//! The exit pipe's word ([`Exit`]) is an exit code under version 1 and a
//! raw wait status under version 2 ([`crate::request`]).
//!
//! # Status file (`--status-file FILE`)
//!
//! One line, replaced whole (a temporary file renamed over it), mode 0600:
//! `exited N`, or `signaled N`, with ` core` appended when the process
//! dumped one. Not written when wshd did not say: a version-1 session
//! reports only a code (255 for a signal), a closed exit pipe nothing.

use std::path::Path;

/// The client's own failures, a lost session, and a process killed by a
/// signal under version 1: the C wsh's code.
pub const EXIT_FAILURE: i32 = 255;

/// What the exit pipe said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The 4-byte word: an exit code (v1) or a raw wait status (v2).
    Word(i32),
    /// EOF without a word.
    Closed,
}

/// Whose exit-code rules apply.
#[derive(Clone, Copy)]
pub enum Protocol {
    /// The version wshd answered with: 1 reports the exit code (255 for a
    /// signal), 2 the wait status (128+N for signal N).
    Spoken(i32),
    /// A v1 session carried over v2: v1's codes, except that a process
    /// killed by a signal after wsh forwarded one gives 128+N as under
    /// --v2 (what a shell reports for a wsh that died of that signal, as a
    /// v1 wsh without forwarding did).
    Upgraded { forwarded: bool },
}

/// The exit code the client reports for what the exit pipe said.
pub fn exit_code(protocol: Protocol, exit: Exit) -> i32 {
    match (protocol, exit) {
        (_, Exit::Closed) => EXIT_FAILURE,
        (Protocol::Spoken(1), Exit::Word(code)) => code & 0xff,
        (_, Exit::Word(status)) => {
            if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                match protocol {
                    Protocol::Upgraded { forwarded: false } => EXIT_FAILURE,
                    _ => 128 + libc::WTERMSIG(status),
                }
            } else {
                EXIT_FAILURE
            }
        }
    }
}

/// How the process ended, for the status file: `exited N` or `signaled N`
/// (`core` appended when it dumped one); None when wshd did not say (a v1
/// session reports only a code, 255 for a signal, and a closed exit pipe
/// nothing).
pub fn status_text(protocol: Protocol, exit: Exit) -> Option<String> {
    match (protocol, exit) {
        (_, Exit::Closed) | (Protocol::Spoken(1), _) => None,
        (_, Exit::Word(status)) if libc::WIFEXITED(status) => {
            Some(format!("exited {}\n", libc::WEXITSTATUS(status)))
        }
        (_, Exit::Word(status)) if libc::WIFSIGNALED(status) => Some(format!(
            "signaled {}{}\n",
            libc::WTERMSIG(status),
            if libc::WCOREDUMP(status) { " core" } else { "" }
        )),
        _ => None,
    }
}

/// Writes the status file: its reader's alone (0600, as every job file),
/// and replaced whole, so a reader sees the old file or the new one.
pub fn write_status(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_texts() {
        let v1 = Protocol::Spoken(1);
        let v2 = Protocol::Spoken(2);
        let up = Protocol::Upgraded { forwarded: false };
        assert_eq!(status_text(v1, Exit::Word(3)), None);
        assert_eq!(status_text(v2, Exit::Closed), None);
        assert_eq!(
            status_text(v2, Exit::Word(137 << 8)).unwrap(),
            "exited 137\n"
        );
        assert_eq!(
            status_text(up, Exit::Word(libc::SIGKILL)).unwrap(),
            "signaled 9\n"
        );
        assert_eq!(
            status_text(v2, Exit::Word(libc::SIGSEGV | 0x80)).unwrap(),
            "signaled 11 core\n"
        );
    }

    #[test]
    fn exit_codes() {
        let v1 = Protocol::Spoken(1);
        let v2 = Protocol::Spoken(2);
        assert_eq!(exit_code(v1, Exit::Word(42)), 42);
        assert_eq!(exit_code(v1, Exit::Word(256 + 3)), 3);
        assert_eq!(exit_code(v1, Exit::Closed), 255);
        assert_eq!(exit_code(v2, Exit::Word(42 << 8)), 42);
        assert_eq!(exit_code(v2, Exit::Word(libc::SIGKILL)), 128 + 9);
        assert_eq!(exit_code(v2, Exit::Word(libc::SIGTERM | 0x80)), 128 + 15);
        assert_eq!(exit_code(v2, Exit::Closed), 255);
    }

    #[test]
    fn upgraded_sessions_keep_v1_codes_unless_wsh_forwarded_a_signal() {
        let quiet = Protocol::Upgraded { forwarded: false };
        let fwd = Protocol::Upgraded { forwarded: true };
        for p in [quiet, fwd] {
            assert_eq!(exit_code(p, Exit::Word(42 << 8)), 42);
            assert_eq!(exit_code(p, Exit::Word(0)), 0);
            assert_eq!(exit_code(p, Exit::Closed), 255);
        }
        assert_eq!(exit_code(quiet, Exit::Word(libc::SIGKILL)), 255);
        assert_eq!(exit_code(fwd, Exit::Word(libc::SIGTERM)), 128 + 15);
        assert_eq!(exit_code(fwd, Exit::Word(libc::SIGINT | 0x80)), 128 + 2);
    }
}
