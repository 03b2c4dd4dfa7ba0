//! How a job ended, as wardenctl reports it: its code, or the signal that
//! killed it and why (the container ran out of memory, the job passed its
//! output limit).
//!
//! The job's recorded code (`jobs/N/exit_status`, what iomux-spawn
//! reported of wsh, or of the shell wshd ran for it with `--wshd`: the
//! code wsh would have exited with) stays what Warden reports, 255 for a
//! killed job, since a Warden server hands it to its clients unchanged.
//! That code cannot tell `exit 137` from a SIGKILL, so every job's wsh (or
//! iomux-spawn) gets `--status-file jobs/N/wsh.status` and writes the wait
//! status wshd sent (`exited N` or `signaled N [core]`) when wshd sent one
//! (our wshd does, for every session it can carry over version 2; the C
//! wshd does not). When a wsh itself was killed (the last resort of the
//! output limit), its own wait status in iomux-spawn's `status` file names
//! the signal.
//!
//! wardenctl run, link and stream then exit 128+N for signal N, as a shell
//! does, and say on stderr `job N killed by SIGKILL (out of memory)`; where
//! only the 255 is known they keep it and say so.

use std::fs;
use std::path::Path;

use nix::sys::signal::Signal;

use crate::instance::Instance;

/// The file wsh writes the job's wait status to, in the job's directory.
pub const WSH_STATUS: &str = "wsh.status";

/// Where a container keeps what its wsh was found to take (see
/// [`wsh_writes_status`]).
const WSH_PROBE: &str = "etc/wsh-status-file";

/// Whether the container's own wsh (copied in when it was made, perhaps by
/// an older build, or the C one) takes `--status-file`: asked once, by its
/// `--help`, and the answer kept in the container, since giving a wsh an
/// option it does not know fails every job.
pub fn wsh_writes_status(instance: &Instance) -> bool {
    let probe = instance.path.join(WSH_PROBE);
    if let Ok(answer) = fs::read_to_string(&probe) {
        return answer.trim() == "yes";
    }
    // The usage goes to stdout or stderr, depending on the wsh.
    let yes = std::process::Command::new(instance.wsh())
        .arg("--help")
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|out| {
            [out.stdout, out.stderr].iter().any(|text| {
                text.windows(b"--status-file".len())
                    .any(|w| w == b"--status-file")
            })
        });
    let _ = crate::instance::write_atomic(&probe, if yes { b"yes\n" } else { b"no\n" });
    yes
}

/// Where a container keeps whether its iomux-spawn takes `--wshd`.
const SPAWN_PROBE: &str = "etc/iomux-spawn-wshd";

/// What this project's iomux-spawn says in its usage, and the C one (and
/// ours before `--wshd`) nowhere.
const SPAWN_MARKER: &[u8] = b"--wshd SOCKET";

/// Whether the container's iomux-spawn can ask wshd for a job itself
/// (`--wshd`), so that no wsh process runs between them: found once by
/// looking for its usage line in the binary (a read of the file, where
/// asking `--help` would cost a process on the container's first job) and
/// the answer kept in the container. Such an iomux-spawn writes the status
/// file as wsh does.
pub fn spawn_asks_wshd(instance: &Instance) -> bool {
    let probe = instance.path.join(SPAWN_PROBE);
    if let Ok(answer) = fs::read_to_string(&probe) {
        return answer.trim() == "yes";
    }
    let yes = fs::File::open(instance.path.join("bin/iomux-spawn"))
        .and_then(|file| contains(file, SPAWN_MARKER))
        .unwrap_or(false);
    let _ = crate::instance::write_atomic(&probe, if yes { b"yes\n" } else { b"no\n" });
    yes
}

/// Whether `needle` occurs in what `reader` holds, read a chunk at a time
/// (a daemon reading a whole binary would keep the freed megabyte in its
/// allocator's arena).
pub(crate) fn contains(mut reader: impl std::io::Read, needle: &[u8]) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 64 << 10];
    // The end of the last chunk, where a match may begin.
    let mut kept = 0;
    loop {
        let n = match reader.read(&mut buf[kept..]) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let filled = kept + n;
        if buf[..filled].windows(needle.len()).any(|w| w == needle) {
            return Ok(true);
        }
        kept = (needle.len() - 1).min(filled);
        buf.copy_within(filled - kept..filled, 0);
    }
}

/// What a job's end was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnd {
    pub job: u32,
    /// The recorded code (255 for a killed job, as Warden's).
    pub code: i32,
    /// The signal that killed the job's shell (or its wsh), when known.
    pub signal: Option<i32>,
    /// It dumped core.
    pub core: bool,
    /// Killed with SIGKILL in a container whose memory group saw an OOM
    /// kill: the kernel's OOM killer, or the stop that follows it.
    pub oom: bool,
    /// Why the host killed it (`jobs/N/killed`: its output limit).
    pub killed: Option<String>,
    /// No wait status came from the container (a 255 may be a signal, or
    /// wsh's own failure).
    pub status_unknown: bool,
}

/// What wsh's status file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WshStatus {
    Exited(i32),
    Signaled { signal: i32, core: bool },
}

fn parse_wsh_status(text: &str) -> Option<WshStatus> {
    let mut words = text.split_whitespace();
    let kind = words.next()?;
    let n: i32 = words.next()?.parse().ok()?;
    let rest = words.next();
    match (kind, rest) {
        ("exited", None) => Some(WshStatus::Exited(n)),
        ("signaled", None) => Some(WshStatus::Signaled {
            signal: n,
            core: false,
        }),
        ("signaled", Some("core")) => Some(WshStatus::Signaled {
            signal: n,
            core: true,
        }),
        _ => None,
    }
}

impl JobEnd {
    /// The end of the job in `dir` (which has ended), its code `code`.
    pub fn read(instance: &Instance, dir: &Path, code: i32) -> JobEnd {
        let job = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let wsh = fs::read_to_string(dir.join(WSH_STATUS))
            .ok()
            .as_deref()
            .and_then(parse_wsh_status);
        let wsh_killed = || match wire::iomux::read_status_file(dir) {
            Ok(Some(status)) => status.signal(),
            _ => None,
        };
        let (signal, core, status_unknown) = match wsh {
            Some(WshStatus::Signaled { signal, core }) => (Some(signal), core, false),
            Some(WshStatus::Exited(_)) => (None, false, false),
            None => match wsh_killed() {
                Some(signal) => (Some(signal), false, false),
                None => (None, false, true),
            },
        };
        let killed = fs::read_to_string(dir.join("killed"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let oom = signal == Some(libc::SIGKILL)
            && instance.events().iter().any(|e| e == crate::oom::EVENT);
        JobEnd {
            job,
            code,
            signal,
            core,
            oom,
            killed,
            status_unknown,
        }
    }

    /// What wardenctl exits with: 128+N for signal N, else the code.
    pub fn exit_code(&self) -> u8 {
        match self.signal {
            Some(n) => u8::try_from(128 + n).unwrap_or(255),
            None => u8::try_from(self.code).unwrap_or(255),
        }
    }

    /// The signal's name (`SIGKILL`), or `signal N` for one nix does not
    /// know.
    pub fn signal_name(&self) -> Option<String> {
        self.signal.map(signal_name)
    }

    /// Why it was killed, in words: `out of memory`, the output limit.
    pub fn cause(&self) -> Option<String> {
        if self.oom {
            Some(crate::oom::EVENT.to_string())
        } else {
            self.killed.clone()
        }
    }

    /// The line for stderr (without `wardenctl: `), when the job did not
    /// simply exit.
    pub fn message(&self) -> Option<String> {
        let cause = self.cause().map(|c| format!(" ({c})")).unwrap_or_default();
        let core = if self.core { ", core dumped" } else { "" };
        match (self.signal_name(), self.status_unknown && self.code == 255) {
            (Some(name), _) => Some(format!("job {} killed by {name}{core}{cause}", self.job)),
            (None, true) => Some(format!(
                "job {} ended with 255: killed by a signal, or wsh failed (the container reported no wait status){cause}",
                self.job
            )),
            (None, false) => None,
        }
    }
}

pub fn signal_name(n: i32) -> String {
    Signal::try_from(n)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes `step` at a time, as a file read may.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_marker_is_found_across_reads_and_only_where_it_is() {
        let mut binary = vec![b'x'; 200_000];
        binary.extend_from_slice(SPAWN_MARKER);
        binary.extend_from_slice(b" [--user NAME]");
        for step in [1, 3, 7, 4096, 65536, 1 << 20] {
            let found = contains(
                Trickle {
                    bytes: &binary,
                    step,
                },
                SPAWN_MARKER,
            )
            .unwrap();
            assert!(found, "read {step} at a time");
        }
        let mut cut = binary.clone();
        cut.truncate(200_000 + SPAWN_MARKER.len() - 1);
        assert!(!contains(
            Trickle {
                bytes: &cut,
                step: 5
            },
            SPAWN_MARKER
        )
        .unwrap());
        assert!(!contains(&b""[..], SPAWN_MARKER).unwrap());
    }

    fn end(signal: Option<i32>) -> JobEnd {
        JobEnd {
            job: 3,
            code: 255,
            signal,
            core: false,
            oom: false,
            killed: None,
            status_unknown: false,
        }
    }

    #[test]
    fn wsh_status_lines() {
        assert_eq!(parse_wsh_status("exited 0\n"), Some(WshStatus::Exited(0)));
        assert_eq!(
            parse_wsh_status("signaled 9\n"),
            Some(WshStatus::Signaled {
                signal: 9,
                core: false
            })
        );
        assert_eq!(
            parse_wsh_status("signaled 11 core\n"),
            Some(WshStatus::Signaled {
                signal: 11,
                core: true
            })
        );
        for bad in [
            "",
            "exited",
            "exited x",
            "exited 1 2",
            "died 9",
            "signaled 9 x",
        ] {
            assert_eq!(parse_wsh_status(bad), None, "{bad}");
        }
    }

    #[test]
    fn signals_exit_128_plus_n_and_say_so() {
        let mut e = end(Some(9));
        assert_eq!(e.exit_code(), 137);
        assert_eq!(e.message().unwrap(), "job 3 killed by SIGKILL");
        e.oom = true;
        assert_eq!(
            e.message().unwrap(),
            "job 3 killed by SIGKILL (out of memory)"
        );
        let mut e = end(Some(15));
        assert_eq!(e.exit_code(), 143);
        assert_eq!(e.message().unwrap(), "job 3 killed by SIGTERM");
        e.core = true;
        e.signal = Some(11);
        assert_eq!(e.message().unwrap(), "job 3 killed by SIGSEGV, core dumped");
        assert_eq!(signal_name(99), "signal 99");
    }

    #[test]
    fn exits_keep_their_code() {
        let e = JobEnd {
            code: 137,
            ..end(None)
        };
        assert_eq!(e.exit_code(), 137);
        assert_eq!(e.message(), None);
        let e = JobEnd {
            code: 255,
            ..end(None)
        };
        assert_eq!(e.message(), None, "exit 255, reported as such");
        let e = JobEnd {
            status_unknown: true,
            ..end(None)
        };
        assert_eq!(e.exit_code(), 255);
        assert!(e.message().unwrap().contains("killed by a signal"));
    }
}
