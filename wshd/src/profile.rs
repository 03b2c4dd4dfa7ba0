//! wshd's start-up phases in the wall-time profile that
//! `WARDEN_PROFILE=FILE` asks for (orchestrator/src/profile.rs describes the
//! whole scheme): each phase is a line `NS B PATH`, PATH being
//! `$WARDEN_PROFILE_SCOPE/<phase>`; a phase lasts until the next one or
//! until wshd's own step ends. Lines go to `WARDEN_PROFILE_PIPE` when
//! wardenctl gave one, else are appended to FILE. The hooks learn their
//! scope from the environment they are run with ([`Profile::hook_env`]).
//!
//! Unset (the normal case) nothing is opened or written. A profile never
//! fails wshd: what cannot be written is dropped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Profile {
    out: Option<File>,
    scope: String,
}

impl Profile {
    pub fn from_env() -> Profile {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let target = var("WARDEN_PROFILE").map(|file| var("WARDEN_PROFILE_PIPE").unwrap_or(file));
        // Close-on-exec: neither the hooks nor the container's pid 1 get
        // the descriptor (hooks open the path themselves).
        let out = target.and_then(|path| {
            OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .ok()
        });
        Profile {
            out,
            scope: var("WARDEN_PROFILE_SCOPE").unwrap_or_default(),
        }
    }

    /// Phase `name` begins now.
    pub fn mark(&self, name: &str) {
        let Some(out) = &self.out else { return };
        let ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // One write per line: lines of concurrent writers do not mix.
        let line = format!("{ns} B {}/{name}\n", self.scope);
        let _ = (&*out).write_all(line.as_bytes());
    }

    /// What the hook run as phase `name` reports under, when profiling.
    pub fn hook_env(&self, name: &str) -> Vec<(&'static str, String)> {
        match self.out {
            Some(_) => vec![("WARDEN_PROFILE_SCOPE", format!("{}/{name}", self.scope))],
            None => Vec::new(),
        }
    }

    /// The profile of the container's side: its phases nest in `name`.
    pub fn nested(&self, name: &str) -> Profile {
        Profile {
            out: self.out.as_ref().and_then(|f| f.try_clone().ok()),
            scope: format!("{}/{name}", self.scope),
        }
    }
}
