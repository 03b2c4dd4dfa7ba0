//! cgroup-devices: the device whitelist as a BPF_CGROUP_DEVICE program, on
//! a real cgroup v2 group. BPF device programs act on the v2 hierarchy even
//! where the controllers are on v1 (this machine mounts cgroup2 without
//! controllers), so the program is checked here as well as in the v2 VM.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tests::paths::bin;

/// Where cgroup2 is mounted, if anywhere.
fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
    })
}

/// A group of this test's own, removed (with whatever still runs in it)
/// when dropped.
struct Group(PathBuf);

impl Group {
    fn new(name: &str) -> Option<Group> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: attaching a BPF device program needs root");
            return None;
        }
        let Some(root) = cgroup2_mount() else {
            eprintln!("skipped: no cgroup2 filesystem is mounted");
            return None;
        };
        let dir = root.join(format!("warden-test-devices-{name}-{}", std::process::id()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Some(Group(dir))
    }

    fn attach(&self, rules: &[&str]) -> Output {
        attach_to(&self.0, rules)
    }

    /// Run a shell script as a member of the group; its output.
    fn sh(&self, script: &str) -> String {
        let procs = self.0.join("cgroup.procs");
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("echo $$ > {} && {script}", procs.display()))
            .output()
            .expect("run sh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(pids) = fs::read_to_string(self.0.join("cgroup.procs")) {
            for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for _ in 0..100 {
            if fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !std::thread::panicking() {
            panic!("cannot remove {}", self.0.display());
        }
    }
}

fn attach_to(dir: &Path, rules: &[&str]) -> Output {
    Command::new(bin("cgroup-devices"))
        .arg("attach")
        .arg(dir)
        .args(rules)
        .output()
        .expect("run cgroup-devices")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-devices-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// One line on stderr naming the program, and the exit code.
fn refused(out: &Output, code: i32) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(
        err.starts_with("cgroup-devices: ") || err.starts_with("usage:"),
        "{err:?}"
    );
}

#[test]
fn whitelist_allows_listed_nodes_and_refuses_the_rest() {
    let Some(group) = Group::new("whitelist") else {
        return;
    };
    let out = group.attach(&["c 1:3 rwm", "c 1:9 rwm", "c 1:5 r", "c 136:* rwm"]);
    assert!(
        out.status.success(),
        "attach: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = scratch("whitelist");
    let d = dir.display();
    let got = group.sh(&format!(
        "cat /dev/null && echo null-read; \
         echo x > /dev/null && echo null-write; \
         echo urandom-$(head -c 8 /dev/urandom | wc -c); \
         head -c 1 /dev/zero > /dev/null && echo zero-read; \
         (echo x > /dev/zero) 2>/dev/null && echo zero-write; \
         mknod {d}/null c 1 3 && echo mknod-null; \
         cat {d}/null && echo made-null-read; \
         mknod {d}/disk b 7 0 2>/dev/null && echo mknod-block; \
         head -c 1 /dev/full > /dev/null 2>&1 && echo full-read; \
         echo done"
    ));
    let _ = fs::remove_dir_all(&dir);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(
        lines,
        [
            "null-read",
            "null-write",
            "urandom-8",
            "zero-read",
            "mknod-null",
            "made-null-read",
            "done"
        ],
        "what the group's process could do"
    );
}

#[test]
fn bad_input_is_refused_and_attaches_nothing() {
    let Some(group) = Group::new("bad") else {
        return;
    };
    // A malformed rule: usage error, nothing attached, so /dev/zero still opens.
    refused(&group.attach(&["c 1:3 rwm", "c 1:3 rwx"]), 2);
    refused(&group.attach(&["q 1:3 rwm"]), 2);
    assert_eq!(
        group.sh("head -c 1 /dev/zero | wc -c"),
        "1\n",
        "a refused rule list attached something"
    );
    // Not a cgroup2 directory, or none at all.
    let dir = scratch("bad");
    refused(&attach_to(&dir, &["c 1:3 rwm"]), 1);
    refused(&attach_to(&dir.join("missing"), &["c 1:3 rwm"]), 1);
    let _ = fs::remove_dir_all(&dir);
    let usage = Command::new(bin("cgroup-devices")).output().unwrap();
    refused(&usage, 2);
}
