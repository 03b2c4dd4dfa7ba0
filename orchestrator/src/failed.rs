//! The logs of failed creates. The undo of a failed create removes the
//! container directory, and with it everything that said why it failed, so
//! the create's log (every script's output, wshd's own log) is moved to
//! `DEPOT/.failed/HANDLE.log` first; the newest [`KEEP`] are kept.
//!
//! `.failed` cannot be a container: handles never start with a dot, and
//! the depot's listing (`Depot::handles`, used by `list`, allocation and
//! wardend's recovery) skips dot entries.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::depot::Depot;
use crate::errors::{Error, Result};

/// The directory under the depot.
pub const DIR: &str = ".failed";

/// How many logs stay; older ones are removed when a new one is kept.
pub const KEEP: usize = 10;

/// `DEPOT/.failed`.
pub fn dir(depot: &Depot) -> PathBuf {
    depot.root().join(DIR)
}

/// Writes `log` to `DEPOT/.failed/HANDLE.log` (0600 in a 0700 directory:
/// it holds the container's environment and paths) and prunes to the
/// newest KEEP; returns the path.
pub fn keep(depot: &Depot, handle: &str, log: &[u8]) -> Result<PathBuf> {
    let dir = dir(depot);
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(format!("mkdir {}", dir.display()))(e)),
    }
    let path = dir.join(format!("{handle}.log"));
    // A new file each time (a later failure of the same handle replaces
    // the earlier log), written beside and renamed so a reader never sees
    // half of it.
    let tmp = dir.join(format!(".{handle}.log.{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(log))
        .and_then(|()| fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(format!("write {}", path.display()))(e));
    }
    prune(&dir, KEEP);
    Ok(path)
}

/// Leaves the `keep` newest `*.log` files of `dir` (by modification time,
/// then name); best effort: a log another create removed first is fine.
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name.ends_with(".log")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    logs.sort();
    let excess = logs.len().saturating_sub(keep);
    for (_, path) in logs.into_iter().take(excess) {
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_only_them() {
        let root = std::env::temp_dir().join(format!("failed-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let depot = Depot::new(&root);
        for i in 0..KEEP + 3 {
            let path = keep(&depot, &format!("h{i:02}"), b"log\n").unwrap();
            // Distinct modification times, oldest first.
            let t =
                std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        keep(&depot, "last", b"x\n").unwrap();
        let mut names: Vec<String> = fs::read_dir(dir(&depot))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut want: Vec<String> = (4..KEEP + 3).map(|i| format!("h{i:02}.log")).collect();
        want.push("last.log".into());
        want.sort();
        assert_eq!(names, want);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir(&depot)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = fs::metadata(dir(&depot).join("last.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            depot.handles().unwrap().is_empty(),
            ".failed is no container"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
