//! The three listening sockets in SOCKET_DIR. They are unlinked when
//! dropped, so no error path leaves a socket file behind.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mio::net::UnixListener;
use nix::sys::stat::{umask, Mode};
use wire::iomux::{Stream, STATUS_SOCKET};

/// Index of each listener: stdout, stderr, status.
pub const SOCKET_NAMES: [&str; 3] = [
    Stream::Stdout.socket_name(),
    Stream::Stderr.socket_name(),
    STATUS_SOCKET,
];

/// Owner only: a job's output is its server's (root's), and connecting
/// needs write permission on the socket. (The reference helper made them
/// 0766, which let any host user read every job's output.)
const SOCKET_MODE: u32 = 0o600;
/// The umask bind(2) runs under: the socket is born with SOCKET_MODE, so
/// there is no moment in which another user could connect.
const BIND_UMASK: u32 = 0o177;

pub struct Listener {
    pub sock: UnixListener,
    pub path: PathBuf,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

pub fn bind_all(dir: &Path) -> Result<Vec<Listener>> {
    // Single-threaded here; the umask goes back before the job starts, as
    // the job inherits it.
    let old = umask(Mode::from_bits_truncate(BIND_UMASK));
    let result = bind_each(dir);
    umask(old);
    result
}

fn bind_each(dir: &Path) -> Result<Vec<Listener>> {
    let mut out = Vec::with_capacity(3);
    for name in SOCKET_NAMES {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing stale {}", path.display())),
        }
        let sock = UnixListener::bind(&path)
            .with_context(|| format!("creating socket at {}", path.display()))?;
        let listener = Listener { sock, path };
        fs::set_permissions(&listener.path, fs::Permissions::from_mode(SOCKET_MODE))
            .with_context(|| format!("chmod {}", listener.path.display()))?;
        out.push(listener);
    }
    Ok(out)
}
