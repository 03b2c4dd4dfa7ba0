//! The wardenctl test harness: a depot of its own per test (a fresh
//! directory under /tmp and a /24 no other test uses), containers made with
//! the real `wardenctl`, and checks that nothing of a container is left.
//! Shared by tests/wardenctl.rs and tests/limits.rs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::paths;

/// Each test takes the next /24 of its binary's range, away from the
/// default pool (10.254.0.0/22) other tools may use.
static NEXT_POOL: AtomicU32 = AtomicU32::new(0);

pub struct TestDepot {
    /// Holds the depot and the test's own files.
    pub root: PathBuf,
    /// The depot.
    pub dir: PathBuf,
    pub pool: String,
    /// The directory of the wardenctl run.
    pub bin: PathBuf,
    /// Whether wardenctl is told WARDEN_BIN_DIR=bin; false for an installed
    /// wardenctl, which must find its helpers and scripts by itself.
    pub bin_env: bool,
}

impl TestDepot {
    /// None (after saying why) when not root. The pool is a /24 of
    /// 10.254.64.0/18.
    pub fn new(test: &str) -> Option<Self> {
        Self::new_in(test, 64, 128)
    }

    /// As `new`, with the pool a /24 of the COUNT (a multiple of 16) /24s
    /// from 10.254.FIRST.0 (FIRST 256 and above: 10.255.(FIRST-256).0): test
    /// binaries with their own ranges never share a network.
    pub fn new_in(test: &str, first: u32, count: u32) -> Option<Self> {
        if !crate::require_root(test) {
            return None;
        }
        Some(Self::with_bin(test, first, count, paths::bin_dir(), true))
    }

    /// As `new_in` (for a caller that checked it runs as root), with the
    /// wardenctl of `bin`, run without WARDEN_BIN_DIR or WARDEN_SCRIPTS_DIR
    /// (an installed one: `make install`).
    pub fn installed(test: &str, first: u32, count: u32, bin: PathBuf) -> Self {
        Self::with_bin(test, first, count, bin, false)
    }

    fn with_bin(test: &str, first: u32, count: u32, bin: PathBuf, bin_env: bool) -> Self {
        assert!(
            bin.join("wardenctl").is_file(),
            "{}/wardenctl is missing: build the workspace (make build) or set WARDEN_BIN_DIR",
            bin.display()
        );
        let n = NEXT_POOL.fetch_add(1, Ordering::SeqCst);
        // Tests of one binary run in one process: pid + counter are unique
        // on the host while it runs.
        // Past 255 the /24s continue in 10.255.0.0/16.
        let third = first + (std::process::id() % (count / 16)) * 16 + n % 16;
        let pool = format!("10.{}.{}.0/24", 254 + third / 256, third % 256);
        let root = PathBuf::from(format!(
            "/tmp/wardenctl-test-{test}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        let dir = root.join("depot");
        fs::create_dir_all(&dir).unwrap();
        let depot = TestDepot {
            root,
            dir,
            pool,
            bin,
            bin_env,
        };
        let out = depot.ctl(&["setup"]);
        assert_ok(&out, "wardenctl setup");
        depot
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(self.bin.join("wardenctl"));
        self.with_env(&mut c);
        c
    }

    /// The environment a wardenctl of this depot runs with, for commands
    /// that start it through another program (sh, unshare).
    pub fn with_env<'c>(&self, c: &'c mut Command) -> &'c mut Command {
        if self.bin_env {
            c.env("WARDEN_BIN_DIR", &self.bin);
        } else {
            c.env_remove("WARDEN_BIN_DIR")
                .env_remove("WARDEN_SCRIPTS_DIR");
        }
        c.env("WARDEN_DEPOT", &self.dir)
            .env_remove("WARDEN_DEBUG")
            .env_remove("DEBUG")
            .env_remove("WARDEN_POOL_NETWORK")
            .env_remove("WARDEN_ROOTFS")
            .stdin(Stdio::null())
    }

    /// `create` with this depot's pool and the busybox rootfs, then EXTRA.
    pub fn create_args(&self, handle: &str, extra: &[&str]) -> Vec<String> {
        let rootfs = paths::rootfs();
        let mut args: Vec<String> = [
            "create",
            "--handle",
            handle,
            "--pool-network",
            &self.pool,
            "--rootfs",
            &rootfs.to_string_lossy(),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("running wardenctl")
    }

    /// `wardenctl create` with this depot's pool and the busybox rootfs.
    pub fn create(&self, handle: &str, extra: &[&str]) -> Container<'_> {
        let out = self
            .command()
            .args(self.create_args(handle, extra))
            .output()
            .expect("running wardenctl");
        assert_ok(&out, "wardenctl create");
        assert_eq!(stdout(&out), format!("{handle}\n"));
        let info = self.ctl(&["info", handle, "--json"]);
        assert_ok(&info, "wardenctl info");
        let json = stdout(&info);
        Container {
            depot: self,
            handle: handle.to_string(),
            id: json_str(&json, "id").expect("info has an id"),
        }
    }

    pub fn path(&self, handle: &str) -> PathBuf {
        self.dir.join(handle)
    }

    /// A directory for the test's own files, outside the depot.
    pub fn data(&self, name: &str) -> PathBuf {
        let dir = self.root.join("data").join(name);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}

impl Drop for TestDepot {
    fn drop(&mut self) {
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    let _ = self.ctl(&["destroy", &name]);
                }
            }
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

pub struct Container<'a> {
    pub depot: &'a TestDepot,
    pub handle: String,
    pub id: String,
}

impl Container<'_> {
    pub fn run(&self, argv: &[&str]) -> Output {
        let mut args = vec!["run", &self.handle, "--"];
        args.extend_from_slice(argv);
        self.depot.ctl(&args)
    }

    pub fn run_root(&self, argv: &[&str]) -> Output {
        let mut args = vec!["run", &self.handle, "--privileged", "--"];
        args.extend_from_slice(argv);
        self.depot.ctl(&args)
    }

    /// `sh -c SCRIPT` in the container; its stdout, asserting success.
    pub fn sh(&self, script: &str) -> String {
        let out = self.run(&["sh", "-c", script]);
        assert_ok(&out, script);
        stdout(&out)
    }

    pub fn spawn(&self, script: &str) -> String {
        let out = self
            .depot
            .ctl(&["spawn", &self.handle, "--", "sh", "-c", script]);
        assert_ok(&out, "wardenctl spawn");
        let job = stdout(&out).trim().to_string();
        assert!(job.parse::<u32>().is_ok(), "job id {job:?}");
        job
    }

    pub fn info(&self) -> String {
        let out = self.depot.ctl(&["info", &self.handle, "--json"]);
        assert_ok(&out, "wardenctl info");
        stdout(&out)
    }

    /// A file of the container's writable layer, seen from the host.
    pub fn upper(&self, path: &str) -> PathBuf {
        self.depot
            .path(&self.handle)
            .join("tmp/rootfs")
            .join(path.trim_start_matches('/'))
    }

    /// Destroys it and checks nothing of it is left.
    pub fn destroy(self) {
        let out = self.depot.ctl(&["destroy", &self.handle]);
        assert_ok(&out, "wardenctl destroy");
        assert_gone(self.depot, &self.handle, &self.id);
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

pub fn assert_code(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// A usage error (exit code 2): clap's whole message, which ends by
/// pointing at --help (a missing or unknown argument also shows the usage
/// line; an invalid value names the argument and why).
pub fn assert_usage_error(out: &Output) {
    let err = stderr(out);
    assert!(err.starts_with("error: "), "stderr: {err:?}");
    assert!(
        err.trim_end()
            .ends_with("For more information, try '--help'."),
        "stderr: {err:?}"
    );
}

/// A refusal with exit code CODE: a usage error for 2, else one line.
pub fn assert_refused_with(out: &Output, code: i32, what: &str) {
    assert_code(out, code, what);
    if code == 2 {
        assert_usage_error(out);
    } else {
        assert_one_line_error(out);
    }
}

/// A one-line message on stderr, naming the program.
pub fn assert_one_line_error(out: &Output) {
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
    assert!(err.starts_with("wardenctl: "), "stderr: {err:?}");
}

/// `"key":"value"` in compact JSON.
pub fn json_str(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = json[start..].find('"')? + start;
    Some(json[start..end].to_string())
}

/// `"key":[1,2]` in compact JSON.
pub fn json_ids(json: &str, key: &str) -> Vec<String> {
    let Some(start) = json.find(&format!("\"{key}\":[")) else {
        return Vec::new();
    };
    let start = start + key.len() + 4;
    let end = json[start..].find(']').unwrap() + start;
    json[start..end]
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn run_text(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Nothing of the container is left: cgroups, network devices, iptables
/// chains, mounts, loop devices, live processes, depot entry.
pub fn assert_gone(depot: &TestDepot, handle: &str, id: &str) {
    let instance = depot.path(handle);
    assert!(!instance.exists(), "{} is left", instance.display());
    for entry in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let cg = entry.path().join(format!("instance-{id}"));
        assert!(!cg.exists(), "cgroup {} is left", cg.display());
    }
    assert!(
        !Path::new("/sys/fs/cgroup")
            .join(format!("instance-{id}"))
            .exists(),
        "cgroup v2 group is left"
    );
    for suffix in ["0", "1", "2"] {
        let dev = format!("/sys/class/net/w-{id}-{suffix}");
        assert!(!Path::new(&dev).exists(), "{dev} is left");
    }
    let chain = format!("warden-i-{id}");
    for table in ["filter", "nat"] {
        let rules = run_text("iptables", &["-w", "-t", table, "-S"]);
        assert!(
            !rules.contains(&chain),
            "{table} still has {chain}:\n{rules}"
        );
    }
    let depot_path = depot.dir.to_string_lossy().into_owned();
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(&depot_path),
        "a mount of {depot_path} is left"
    );
    let loops = run_text("losetup", &["-a"]);
    assert!(
        !loops.contains(&depot_path),
        "a loop device is left: {loops}"
    );
    let instance_path = instance.to_string_lossy().into_owned();
    for (pid, cmdline) in live_cmdlines() {
        assert!(
            !cmdline.contains(&instance_path) && !cmdline.contains(&format!("wshd: {id}")),
            "process {pid} is left: {cmdline}"
        );
    }
}

/// Live processes with their command lines (words joined by spaces).
pub fn live_cmdlines() -> Vec<(u32, String)> {
    live_pids()
        .into_iter()
        .map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            (pid, String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect()
}

/// Pids of processes that are not zombies.
pub fn live_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, r)| r.trim_start().chars().next())
                })
                .is_some_and(|state| state != 'Z' && state != 'X')
        })
        .collect()
}

/// `echo | nc IP PORT` from C (busybox nc, bounded by timeout 10): nc's
/// exit code, how long it took in seconds, and the job's stderr.
pub fn nc_attempt(c: &Container<'_>, ip: &str, port: u16) -> (i32, f64, String) {
    let out = c.run(&[
        "sh",
        "-c",
        &format!(
            "read a _ < /proc/uptime; echo hello | timeout 10 nc {ip} {port}; rc=$?; \
             read b _ < /proc/uptime; echo \"$rc $a $b\""
        ),
    ]);
    assert_ok(&out, "the nc script");
    let text = stdout(&out);
    let last: Vec<&str> = text.lines().last().unwrap().split(' ').collect();
    let secs = last[2].parse::<f64>().unwrap() - last[1].parse::<f64>().unwrap();
    (last[0].parse().unwrap(), secs, stderr(&out))
}

/// A tcp connection from C to IP:PORT is refused, and at once: a reset,
/// not a drop that leaves the client waiting (2 s is a bound against a
/// hang, not a speed test).
pub fn assert_refused_at_once(c: &Container<'_>, ip: &str, port: u16, what: &str) {
    let (rc, secs, err) = nc_attempt(c, ip, port);
    assert_eq!(rc, 1, "{what}: nc exited {rc} after {secs:.2} s: {err}");
    assert!(
        err.contains("Connection refused"),
        "{what}: not refused: {err}"
    );
    assert!(secs < 2.0, "{what}: refused only after {secs:.2} s");
}
