//! Where the tests find the workspace's binaries and the busybox rootfs.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate has a parent")
        .to_path_buf()
}

/// The directory holding the built binaries: `WARDEN_BIN_DIR` when set,
/// else whichever of target/<triple>/{release,debug} has the newer wshd.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WARDEN_BIN_DIR") {
        return PathBuf::from(d);
    }
    let base = workspace().join("target").join(TARGET);
    let mtime = |p: &Path| {
        std::fs::metadata(p.join("wshd"))
            .and_then(|m| m.modified())
            .ok()
    };
    let (rel, dbg) = (base.join("release"), base.join("debug"));
    match (mtime(&rel), mtime(&dbg)) {
        (Some(r), Some(d)) if d > r => dbg,
        (Some(_), _) => rel,
        _ => dbg,
    }
}

/// A binary of the workspace, which must have been built first.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` (or `make build`) first",
        p.display()
    );
    p
}

/// The busybox test rootfs: `WARDEN_TEST_ROOTFS` when set, else built once
/// (under a lock, so parallel tests wait for one build) at
/// `<workspace>/target/rootfs/busybox`.
pub fn rootfs() -> PathBuf {
    if let Some(d) = std::env::var_os("WARDEN_TEST_ROOTFS") {
        return PathBuf::from(d);
    }
    let dir = workspace().join("target").join("rootfs");
    let target = dir.join("busybox");
    std::fs::create_dir_all(&dir).expect("creating target/rootfs");
    let lock = std::fs::File::create(dir.join(".lock")).expect("creating the rootfs lock");
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("locking target/rootfs/.lock");
    // busybox.sh writes etc/passwd after the binary and its links, so a
    // build that was cut short is rebuilt (the Makefile's own build counts).
    if !target.join("etc/passwd").exists() || !target.join("bin/busybox").exists() {
        let _ = std::fs::remove_dir_all(&target);
        let script = workspace().join("setup-scripts/rootfs/busybox.sh");
        let status = Command::new(&script)
            .args(["--with", "rsync"])
            .arg(&target)
            .status()
            .expect("running busybox.sh");
        assert!(status.success(), "{} failed: {status}", script.display());
    }
    target
}
