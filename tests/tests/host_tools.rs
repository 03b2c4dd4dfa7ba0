//! oom, repquota and closefds (crate host-tools), the host-side helpers of
//! Warden's Ruby server, run as the server runs them. oom is checked on a
//! real cgroup v1 memory group of the test's own; repquota only for its
//! errors, since this machine has no quota v2 (the VM tests cover real
//! numbers on a filesystem mounted with usrquota).

use std::fs;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tests::paths::bin;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// The exit status of `child` once it exits, or None after `limit`.
fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// stdout and stderr of a child that has exited.
fn drain(child: &mut Child) -> (String, String) {
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out).unwrap();
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut err).unwrap();
    }
    (out, err)
}

// ---------------------------------------------------------------- closefds

/// The descriptors `ls /proc/self/fd` lists for a command with fd 7 (and 9)
/// leaked into it: dup2 clears close-on-exec, as an fd a server forgot.
fn fds_seen(through_closefds: bool) -> Vec<u32> {
    let mut cmd = if through_closefds {
        let mut c = Command::new(bin("closefds"));
        c.args(["ls", "/proc/self/fd"]);
        c
    } else {
        let mut c = Command::new("ls");
        c.arg("/proc/self/fd");
        c
    };
    // SAFETY: dup2 is async-signal-safe, and the closure touches nothing
    // but descriptors 1, 7 and 9 of the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::dup2(1, 7) == -1 || libc::dup2(1, 9) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
    text(&out.stdout)
        .split_whitespace()
        .map(|f| f.parse().unwrap_or_else(|_| panic!("fd {f:?}")))
        .collect()
}

#[test]
fn closefds_leaves_only_stdin_stdout_stderr() {
    let leaked = fds_seen(false);
    assert!(
        leaked.contains(&7) && leaked.contains(&9),
        "the control run should see the leaked fds: {leaked:?}"
    );
    let seen = fds_seen(true);
    // ls itself holds one descriptor: the directory it lists.
    let extra: Vec<u32> = seen.iter().copied().filter(|&fd| fd > 2).collect();
    assert!(
        seen.starts_with(&[0, 1, 2]) && extra.len() <= 1,
        "closefds left {seen:?}"
    );
    assert!(!seen.contains(&7) && !seen.contains(&9), "{seen:?}");
}

#[test]
fn closefds_exits_with_the_commands_code() {
    let out = run(Command::new(bin("closefds")).args(["sh", "-c", "echo out; exit 7"]));
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(text(&out.stdout), "out\n");
    let out = run(Command::new(bin("closefds")).args(["sh", "-c", "kill -TERM $$"]));
    assert_eq!(out.status.signal(), Some(libc::SIGTERM));
}

#[test]
fn closefds_without_a_runnable_command_exits_255() {
    let out = run(Command::new(bin("closefds")).arg("warden-no-such-command"));
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        text(&out.stderr),
        "execvp warden-no-such-command: No such file or directory\n"
    );
    let out = run(&mut Command::new(bin("closefds")));
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).ends_with("closefds: No arguments provided\n"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

/// The C tool changes no signal disposition; a Rust runtime would leave
/// SIGPIPE ignored in the command.
#[test]
fn closefds_passes_signal_dispositions_on() {
    let ignored = |through: bool| -> u64 {
        let mut cmd = Command::new(if through {
            bin("closefds")
        } else {
            "sh".into()
        });
        if through {
            cmd.arg("sh");
        }
        cmd.args(["-c", "grep SigIgn /proc/self/status"]);
        let out = run(&mut cmd);
        let line = text(&out.stdout);
        let hex = line.split_whitespace().nth(1).expect("a SigIgn line");
        u64::from_str_radix(hex, 16).unwrap()
    };
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    assert_eq!(ignored(false) & sigpipe, 0, "control: SIGPIPE ignored");
    assert_eq!(ignored(true) & sigpipe, 0, "closefds left SIGPIPE ignored");
}

// --------------------------------------------------------------------- oom

const MEMORY_V1: &str = "/sys/fs/cgroup/memory";

/// A v1 memory group of the test's own, removed (its tasks killed first)
/// when dropped, also when the test fails.
struct Group(PathBuf);

impl Group {
    fn new(name: &str) -> Option<Group> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: a memory cgroup of the test's own needs root");
            return None;
        }
        if !Path::new(MEMORY_V1).join("cgroup.event_control").exists() {
            eprintln!(
                "skipped: no cgroup v1 memory hierarchy at {MEMORY_V1} \
                 (on cgroup v2 the VM tests cover the memory.events path)"
            );
            return None;
        }
        let dir =
            Path::new(MEMORY_V1).join(format!("warden-test-oom-{name}-{}", std::process::id()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Some(Group(dir))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, value: &str) {
        let path = self.file(name);
        fs::write(&path, value).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    fn tasks(&self) -> Vec<i32> {
        fs::read_to_string(self.file("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    fn remove(&self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for pid in self.tasks() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            match fs::remove_dir(&self.0) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                other => return other,
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

/// An oom watching `group`, returned once it has registered its eventfd
/// (the C contract has no readiness signal: the test looks at the
/// watcher's descriptors and waits for it to block).
fn start_oom(group: &Group) -> Child {
    let mut child = Command::new(bin("oom"))
        .arg(&group.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting oom");
    let pid = child.id();
    let control = group.file("cgroup.event_control");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let holds_control = fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                    .any(|target| target == control)
            })
            .unwrap_or(false);
        let sleeping = fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('S')
            })
            .unwrap_or(false);
        if holds_control && sleeping {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let (_, err) = drain(&mut child);
            panic!("oom exited early ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "oom did not register in 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn oom_exits_0_when_the_group_runs_out_of_memory() {
    let Some(group) = Group::new("fire") else {
        return;
    };
    group.write("memory.limit_in_bytes", &(8u64 << 20).to_string());
    let mut oom = start_oom(&group);
    assert!(
        wait_for(&mut oom, Duration::from_millis(300)).is_none(),
        "oom exited with no OOM"
    );
    // tail keeps a line without newline whole: 64 MiB in an 8 MiB group.
    let procs = group.file("cgroup.procs");
    let hog = run(Command::new("sh").args([
        "-c",
        &format!(
            "echo $$ > {}; exec sh -c 'head -c 64M /dev/zero | tail'",
            procs.display()
        ),
    ]));
    let status = wait_for(&mut oom, Duration::from_secs(10));
    let _ = oom.kill();
    let (out, err) = drain(&mut oom);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "oom: {status:?}, stderr {err:?}; the hog: {:?}",
        hog.status
    );
    assert_eq!(out, "");
    assert_eq!(err, "");
    assert!(
        !hog.status.success(),
        "64 MiB fit in 8 MiB: {:?}",
        hog.status
    );
}

#[test]
fn oom_exits_1_when_the_group_is_removed() {
    let Some(group) = Group::new("gone") else {
        return;
    };
    let mut oom = start_oom(&group);
    group.remove().expect("removing the group");
    let status = wait_for(&mut oom, Duration::from_secs(5));
    let _ = oom.kill();
    let (out, err) = drain(&mut oom);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "stderr {err:?}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "access {}: No such file or directory\n",
            group.file("cgroup.event_control").display()
        )
    );
}

#[test]
fn oom_usage_and_a_missing_group_exit_1() {
    let out = run(&mut Command::new(bin("oom")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("Usage: ")
            && text(&out.stderr).ends_with(" <path to cgroup>\n"),
        "{}",
        text(&out.stderr)
    );
    let out = run(Command::new(bin("oom")).args(["a", "b"]));
    assert_eq!(out.status.code(), Some(1));
    let out = run(Command::new(bin("oom")).arg("/nonexistent/warden-oom"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "open /nonexistent/warden-oom/memory.oom_control: No such file or directory\n"
    );
}

// ---------------------------------------------------------------- repquota

const USAGE: &str = "Usage: repquota [filesystem] [uid]+\n\
Reports quota information for the supplied uids on the given filesystem\n\
Format is: <uid> <bytes used> <soft> <hard> <grace> <inodes used> <soft> <hard> <grace>\n";

#[test]
fn repquota_usage_goes_to_stdout_with_exit_1() {
    for args in [&[][..], &["/"][..]] {
        let out = run(Command::new(bin("repquota")).args(args));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stdout), USAGE, "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn repquota_of_a_directory_that_is_no_mount_point_exits_1() {
    // Matched exactly against the mount table: no trailing slash allowed.
    for dir in ["/nonexistent", "//", "/proc/"] {
        let out = run(Command::new(bin("repquota")).args([dir, "0"]));
        assert_eq!(out.status.code(), Some(1), "{dir}");
        assert_eq!(
            text(&out.stdout),
            format!("Couldn't find device for {dir}\n")
        );
        assert!(out.stderr.is_empty(), "{dir}: {}", text(&out.stderr));
    }
}

/// What the kernel says for a filesystem without quotas; the C tool's
/// reasons, where it has one.
const REASONS: [&str; 6] = [
    "No quota for supplied user.",
    "Kernel doesn't haven quota support.",
    "Block device doesn't exist.",
    "Not a block device.",
    "Insufficient privilege.",
    "Block device invalid.",
];

#[test]
fn repquota_on_a_filesystem_without_quotas_exits_1() {
    let root_device = fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"/")).then(|| f[0].to_string())
        })
        .expect("/ in the mount table");
    // The uids after the failing first one are never asked; `abc` is uid 0.
    let out = run(Command::new(bin("repquota")).args(["/", "abc", "1000"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    let reason = err
        .strip_prefix("Failed retrieving quota for uid=0: ")
        .unwrap_or_else(|| panic!("stderr {err:?}"))
        .trim_end_matches('\n');
    eprintln!("repquota / (device {root_device}): {reason}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    if root_device.starts_with("/dev/") {
        assert!(REASONS.contains(&reason), "unexpected reason {reason:?}");
    }
    // proc's "device" is no path at all: from an empty directory, the
    // lookup of the block device fails with ENOENT.
    let empty = tempdir();
    let out = run(Command::new(bin("repquota"))
        .args(["/proc", "7"])
        .current_dir(&empty));
    let _ = fs::remove_dir(&empty);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Failed retrieving quota for uid=7: Block device doesn't exist.\n"
    );
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-test-repquota-{}", std::process::id()));
    let _ = fs::create_dir(&dir);
    dir
}
