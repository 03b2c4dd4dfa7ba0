//! Confinement on the host side, as root, in real containers: what a
//! container leaves on the host is root's alone whatever the caller's umask
//! (depot, instance, run/ and job directories 0700; sockets, state, job
//! output and logs 0600), so no other host user reads a job's output or
//! runs a setuid file container root planted; a job's output is bounded
//! (job_output_limit: past it the job is killed); pids.max is set by
//! default. Every container is destroyed and checked to leave nothing
//! behind, also when a test fails (TestDepot's drop).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tests::ctl::*;
use tests::paths;

/// nobody: a host user with no business in the depot.
const NOBODY: u32 = 65534;

/// This binary's networks: 10.255.128.0/24 and up, one /24 per test, a range
/// no other test binary uses.
fn depot(test: &str) -> Option<TestDepot> {
    TestDepot::new_in(test, 384, 16)
}

/// `wardenctl ARGS` under umask 000, as a careless caller would run it.
fn ctl_umask0<S: AsRef<std::ffi::OsStr>>(depot: &TestDepot, args: &[S]) -> Output {
    depot
        .with_env(
            Command::new("/bin/sh")
                .arg("-c")
                .arg("umask 000; exec \"$0\" \"$@\"")
                .arg(depot.bin.join("wardenctl"))
                .args(args),
        )
        .output()
        .expect("running wardenctl under umask 000")
}

/// `wardenctl create` with the busybox rootfs and the depot's pool, under
/// umask 000 when asked.
fn create_with<'a>(
    depot: &'a TestDepot,
    handle: &str,
    extra: &[&str],
    umask0: bool,
) -> Container<'a> {
    let args = depot.create_args(handle, extra);
    let out = if umask0 {
        ctl_umask0(depot, &args)
    } else {
        depot
            .command()
            .args(&args)
            .output()
            .expect("running wardenctl")
    };
    assert_ok(&out, "wardenctl create");
    let info = depot.ctl(&["info", handle, "--json"]);
    assert_ok(&info, "wardenctl info");
    Container {
        depot,
        handle: handle.to_string(),
        id: json_str(&stdout(&info), "id").expect("info has an id"),
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn assert_mode(path: &Path, want: u32) {
    assert_eq!(
        mode(path),
        want,
        "{} is {:o}, want {want:o}",
        path.display(),
        mode(path)
    );
}

/// `program ARGS` as nobody (no groups, no capabilities: std drops the
/// groups and setuid(2)s before exec, so the exec itself is nobody's).
fn as_nobody(program: &Path, args: &[&str]) -> std::io::Result<Output> {
    Command::new(program)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
}

fn config_has(instance: &Path, line: &str) -> bool {
    fs::read_to_string(instance.join("etc/config"))
        .unwrap_or_default()
        .lines()
        .any(|l| l == line)
}

/// The container's pids group: v1's pids hierarchy, or the v2 group.
fn pids_group(id: &str) -> PathBuf {
    let v1 = PathBuf::from(format!("/sys/fs/cgroup/pids/instance-{id}"));
    if v1.is_dir() {
        v1
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/instance-{id}"))
    }
}

/// Processes of the container but wshd.
fn container_processes(c: &Container<'_>) -> Vec<String> {
    let wshd = fs::read_to_string(c.depot.path(&c.handle).join("run/wshd.pid")).unwrap();
    fs::read_to_string(pids_group(&c.id).join("cgroup.procs"))
        .unwrap()
        .lines()
        .filter(|p| p.trim() != wshd.trim())
        .map(str::to_string)
        .collect()
}

#[test]
fn host_side_files_are_private_whatever_the_umask() {
    let Some(depot) = depot("modes") else {
        return;
    };
    // An existing depot left open is closed by setup.
    fs::set_permissions(&depot.dir, fs::Permissions::from_mode(0o777)).unwrap();
    assert_ok(&ctl_umask0(&depot, &["setup"]), "setup under umask 000");
    assert_mode(&depot.dir, 0o700);

    let c = create_with(&depot, "modes", &[], true);
    let instance = depot.path("modes");
    // The defaults are recorded, as a Warden server would get them.
    for line in [
        "job_output_limit='10485760'",
        "container_pids_limit='4096'",
        "container_shm_size='67108864'",
        "allow_nested_warden='false'",
    ] {
        assert!(config_has(&instance, line), "etc/config lacks {line}");
    }
    assert_eq!(
        fs::read_to_string(pids_group(&c.id).join("pids.max"))
            .unwrap()
            .trim(),
        "4096"
    );

    let out = ctl_umask0(
        &depot,
        &[
            "spawn",
            "modes",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; sleep 30",
        ],
    );
    assert_ok(&out, "spawn under umask 000");
    let job = stdout(&out).trim().to_string();
    let dir = instance.join("jobs").join(&job);
    wait_for(
        "the job's output in its logs",
        Duration::from_secs(10),
        || {
            fs::read(dir.join("stdout.log")).is_ok_and(|b| b == b"out\n")
                && fs::read(dir.join("stderr.log")).is_ok_and(|b| b == b"err\n")
        },
    );

    for d in [
        depot.dir.clone(),
        instance.clone(),
        instance.join("run"),
        instance.join("etc"),
        instance.join("tmp"),
        instance.join("jobs"),
        dir.clone(),
    ] {
        assert_mode(&d, 0o700);
    }
    // While the job runs: its sockets, and every file so far.
    for name in ["stdout.sock", "stderr.sock", "status.sock"] {
        let sock = dir.join(name);
        assert!(
            fs::symlink_metadata(&sock).unwrap().file_type().is_socket(),
            "{name}"
        );
        assert_mode(&sock, 0o600);
    }
    for f in [
        "etc/config",
        "etc/state",
        "run/wshd.pid",
        "run/wshd.out.log",
        "run/wshd.err.log",
    ] {
        assert_mode(&instance.join(f), 0o600);
    }
    for f in [
        "script",
        "spawn.out",
        "spawn.err",
        "spawn.pid",
        "record.pid",
        "record.err",
        "record.lock",
        "stdout.log",
        "stderr.log",
    ] {
        assert_mode(&dir.join(f), 0o600);
    }
    // What the container reads keeps the modes it needs.
    assert_mode(&instance.join("tmp/rootfs"), 0o755);
    assert_mode(&c.upper("/etc/passwd"), 0o644);
    assert_eq!(c.sh("cat /etc/hostname"), format!("{}\n", c.id));

    // nobody reaches nothing: neither the job's socket nor its files.
    let connect = "use Socket; socket(S, PF_UNIX, SOCK_STREAM, 0) or die \"socket: $!\\n\"; \
                   connect(S, pack_sockaddr_un($ARGV[0])) or die \"$!\\n\"; print \"connected\\n\"";
    let sock = dir.join("stdout.sock");
    let out = as_nobody(
        Path::new("/usr/bin/perl"),
        &["-e", connect, sock.to_str().unwrap()],
    )
    .expect("perl");
    assert!(
        !out.status.success(),
        "nobody connected to {}",
        sock.display()
    );
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    for f in ["stdout.log", "script"] {
        let path = dir.join(f);
        let out = as_nobody(Path::new("/bin/cat"), &[path.to_str().unwrap()]).unwrap();
        assert!(!out.status.success(), "nobody read {}", path.display());
        assert!(out.stdout.is_empty());
    }
    // The socket's own mode guards it too: a hard link of it (same inode,
    // same mode) in a directory anyone may search is still refused.
    let open = depot.data("open");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&depot.root, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(depot.root.join("data"), fs::Permissions::from_mode(0o755)).unwrap();
    let link = open.join("stdout.sock");
    fs::hard_link(&sock, &link).unwrap();
    let out = as_nobody(
        Path::new("/usr/bin/perl"),
        &["-e", connect, link.to_str().unwrap()],
    )
    .expect("perl");
    fs::remove_file(&link).unwrap();
    assert!(!out.status.success(), "nobody connected to the socket");
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );

    // Once it has ended: the end-of-job files too.
    assert_ok(&depot.ctl(&["stop", "modes", "--kill"]), "stop");
    wait_for("the job's end", Duration::from_secs(10), || {
        dir.join("exit_status").exists()
    });
    for f in [
        "status",
        "stdout.tail",
        "stderr.tail",
        "cursors",
        "exit_status",
    ] {
        assert_mode(&dir.join(f), 0o600);
    }
    c.destroy();
}

/// A copy of a setuid file, removed when dropped (also when the test fails).
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn a_setuid_file_planted_by_container_root_runs_for_no_host_user() {
    let Some(depot) = depot("setuid") else {
        return;
    };
    // The payload prints the effective uid. busybox would not do: it drops
    // a setuid bit for applets that do not need it (id among them), so the
    // host's own id(1) is brought in, as any file could be.
    let id = fs::canonicalize("/usr/bin/id").expect("/usr/bin/id");
    let bind = format!("{}:/hostid", id.display());
    let c = create_with(&depot, "suid", &["--bind-mount", &bind], false);
    let out = c.run_root(&[
        "sh",
        "-c",
        "cp /hostid /tmp/suid && chown 0:0 /tmp/suid && chmod 4755 /tmp/suid",
    ]);
    assert_ok(&out, "plant a setuid file as container root");
    let planted = c.upper("/tmp/suid");
    let meta = fs::metadata(&planted).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o4755));

    // From the host, nobody cannot even reach it: the depot is 0700.
    match as_nobody(&planted, &["-u"]) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}"),
        Ok(out) => panic!(
            "nobody ran {}: {}{}",
            planted.display(),
            stdout(&out),
            stderr(&out)
        ),
    }

    // The control: the same file where nobody may reach it, on a
    // filesystem without nosuid, makes nobody root; removed at once.
    let open = depot.data("control");
    for d in [&depot.root, &depot.root.join("data"), &open] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let copy = Removed(open.join("suid"));
    fs::copy(&planted, &copy.0).unwrap();
    fs::set_permissions(&copy.0, fs::Permissions::from_mode(0o4755)).unwrap();
    let out = as_nobody(&copy.0, &["-u"]);
    drop(copy);
    let out = out.expect("nobody runs the control copy");
    assert_ok(&out, "the control copy");
    assert_eq!(
        stdout(&out),
        "0\n",
        "a setuid-root file reachable by nobody gives euid 0 here"
    );
    c.destroy();
}

#[test]
fn a_job_past_its_output_limit_is_killed() {
    let Some(depot) = depot("output") else {
        return;
    };
    const LIMIT: u64 = 1 << 20;
    const MARGIN: u64 = 64 << 10;
    let limit = LIMIT.to_string();
    let c = create_with(&depot, "out", &["--job-output-limit", &limit], false);
    let instance = depot.path("out");
    assert!(config_has(&instance, "job_output_limit='1048576'"));

    // Endless output on both streams, one writer in the background: every
    // process holding the job's pipes must go. The first line comes before
    // either writer: which of the two fills the limit first is the
    // scheduler's business (stderr alone did, in one run of twelve).
    let job = c.spawn("echo xxxxxxxx; yes xxxxxxxx & yes yyyyyyyy >&2");
    let dir = instance.join("jobs").join(&job);
    let out = depot.ctl(&["link", "out", &job]);
    // SIGKILLed: 128+9, and said why (was 255 before wardenctl knew the
    // signal).
    assert_code(&out, 137, "link of the killed job");
    let said = format!(
        "wardenctl: job {job} killed by SIGKILL (output limit of 1048576 bytes exceeded)\n"
    );
    assert!(out.stderr.ends_with(said.as_bytes()), "no {said:?}");
    let shown = (out.stdout.len() + out.stderr.len()) as u64;
    assert!(shown <= LIMIT + MARGIN, "link printed {shown} bytes");
    assert!(out.stdout.starts_with(b"xxxxxxxx\n"));
    let logs: u64 = ["stdout.log", "stderr.log"]
        .iter()
        .map(|f| fs::metadata(dir.join(f)).unwrap().len())
        .sum();
    assert!(logs <= LIMIT + MARGIN, "the logs hold {logs} bytes");
    assert!(
        logs >= LIMIT,
        "the logs hold {logs} bytes: less than the limit"
    );
    assert_eq!(
        fs::read_to_string(dir.join("killed")).unwrap(),
        "output limit of 1048576 bytes exceeded\n"
    );
    let info: serde_json::Value = serde_json::from_str(&c.info()).unwrap();
    let event = format!("job {job} killed: output limit of 1048576 bytes exceeded");
    assert!(
        info["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str() == Some(event.as_str())),
        "events: {}",
        info["events"]
    );
    assert!(
        info["job_ids"].as_array().unwrap().is_empty(),
        "{}",
        info["job_ids"]
    );
    wait_for(
        "the killed job's processes to go",
        Duration::from_secs(5),
        || container_processes(&c).is_empty(),
    );
    // stream of the killed job ends too, the same way.
    let out = depot.ctl(&["stream", "out", &job]);
    assert_code(&out, 137, "stream of the killed job");
    assert!(out.stderr.ends_with(said.as_bytes()), "no {said:?}");
    assert!((out.stdout.len() + out.stderr.len()) as u64 <= LIMIT + MARGIN);

    // Exactly the limit is not past it; the container goes on.
    let out = c.run(&["head", "-c", &limit, "/dev/zero"]);
    assert_ok(&out, "a job writing exactly the limit");
    assert_eq!(out.stdout.len() as u64, LIMIT);
    // Discarded output costs the host nothing and is not counted (as
    // Warden): the job runs to its end.
    let out = depot.ctl(&[
        "run",
        "out",
        "--discard-output",
        "--",
        "sh",
        "-c",
        "head -c 3145728 /dev/zero; echo done >&2",
    ]);
    assert_ok(&out, "a job discarding its output");
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    // 0 is unlimited.
    c.destroy();
    let c = create_with(&depot, "unlimited", &["--job-output-limit", "0"], false);
    let out = c.run(&["head", "-c", "3145728", "/dev/zero"]);
    assert_ok(&out, "a job of an unlimited container");
    assert_eq!(out.stdout.len(), 3 << 20);
    c.destroy();
}

/// With a disk image, a job's logs are paid for in the image: what the logs
/// hold is space the container no longer has, and output that no longer
/// fits the container's disk limit is dropped (here before the larger
/// output limit would kill the job).
#[test]
fn job_output_counts_against_the_disk_limit() {
    let Some(depot) = depot("outdisk") else {
        return;
    };
    let c = create_with(
        &depot,
        "outdisk",
        &["--disk-limit", "16777216", "--job-output-limit", "67108864"],
        false,
    );
    let free = || -> u64 {
        let out = c.run(&["sh", "-c", "df -k / | tail -n 1"]);
        assert_ok(&out, "df in the container");
        let text = stdout(&out);
        text.split_whitespace()
            .nth(3)
            .and_then(|k| k.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("df: {text}"))
            * 1024
    };
    let before = free();
    // 4 MiB of output kept: about as much less room in the container.
    let out = c.run(&["head", "-c", "4194304", "/dev/zero"]);
    assert_ok(&out, "a job writing 4 MiB");
    let after = free();
    assert!(
        before.saturating_sub(after) >= 4 << 20,
        "free space {before} -> {after}: the logs were not charged"
    );
    // Far more than the image holds: the output past the room left is
    // dropped (the job runs to its end) and the event says so.
    let out = c.run(&["head", "-c", "33554432", "/dev/zero"]);
    assert_ok(&out, "a job writing more than the disk holds");
    assert!(
        out.stdout.len() < 16 << 20,
        "{} bytes kept",
        out.stdout.len()
    );
    assert!(
        c.info()
            .contains("output dropped, the container's disk limit is reached"),
        "{}",
        c.info()
    );
    c.destroy();
}

#[test]
fn pids_limit_and_the_other_create_settings() {
    let Some(depot) = depot("pids") else {
        return;
    };
    let out = depot
        .command()
        .env("WARDEN_SHM_SIZE", "33554432")
        .env("WARDEN_ALLOW_NESTED_WARDEN", "true")
        .args(["create", "--handle", "pids", "--pool-network", &depot.pool])
        .args(["--rootfs", paths::rootfs().to_str().unwrap()])
        .args(["--pids-limit", "64"])
        .output()
        .unwrap();
    assert_ok(&out, "create --pids-limit 64");
    let info = depot.ctl(&["info", "pids", "--json"]);
    let c = Container {
        depot: &depot,
        handle: "pids".into(),
        id: json_str(&stdout(&info), "id").expect("info has an id"),
    };
    let instance = depot.path("pids");
    for line in [
        "container_pids_limit='64'",
        "container_shm_size='33554432'",
        "allow_nested_warden='true'",
        "job_output_limit='10485760'",
    ] {
        assert!(config_has(&instance, line), "etc/config lacks {line}");
    }
    let group = pids_group(&c.id);
    assert_eq!(
        fs::read_to_string(group.join("pids.max")).unwrap().trim(),
        "64"
    );

    // vcap forks until the kernel refuses.
    let out = c.run(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do sleep 30 </dev/null >/dev/null 2>&1 & i=$((i+1)); echo $i; done",
    ]);
    assert!(!out.status.success(), "200 processes in a group of 64");
    assert!(
        stderr(&out).contains("Resource temporarily unavailable"),
        "{}",
        stderr(&out)
    );
    let started: u32 = stdout(&out)
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!(started < 64, "{started} started");
    let current: u32 = fs::read_to_string(group.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 64, "pids.current {current}");

    assert_ok(&depot.ctl(&["stop", "pids", "--kill"]), "stop --kill");
    assert!(container_processes(&c).is_empty());
    c.destroy();
}

/// Invalid settings are refused before anything is made.
#[test]
fn bad_settings_are_refused() {
    let Some(depot) = depot("refused") else {
        return;
    };
    let rootfs = paths::rootfs();
    for (flag, value, code) in [
        ("--pids-limit", "4194305", 5),
        ("--pids-limit", "-1", 2),
        ("--job-output-limit", "lots", 2),
        ("--shm-size", "1.5", 2),
    ] {
        let out = depot.ctl(&[
            "create",
            "--handle",
            "bad",
            "--pool-network",
            &depot.pool,
            "--rootfs",
            rootfs.to_str().unwrap(),
            flag,
            value,
        ]);
        tests::ctl::assert_refused_with(&out, code, &format!("{flag} {value}"));
        assert!(!depot.path("bad").exists());
    }
}
