//! wardenctl end to end, as root, in real containers made by the real setup
//! scripts and helpers.
//!
//! Every test has its own depot (a fresh directory under /tmp) and its own
//! network pool (a /24 no other test uses), and removes what it made even
//! when it fails: [`TestDepot`]'s drop destroys every container left in the
//! depot. Leak checks look for this test's own container ids and paths only,
//! since other tests create containers at the same time.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tests::ctl::*;
use tests::paths;

#[test]
fn lifecycle() {
    let Some(depot) = TestDepot::new("lifecycle") else {
        return;
    };
    let c = depot.create("life", &[]);

    let list = depot.ctl(&["list"]);
    assert_ok(&list, "list");
    assert_eq!(stdout(&list), "life\n");

    let info = c.info();
    assert_eq!(json_str(&info, "state").as_deref(), Some("active"));
    let host_ip = json_str(&info, "host_ip").unwrap();
    let container_ip = json_str(&info, "container_ip").unwrap();
    let prefix = depot.pool.trim_end_matches("0/24");
    assert!(
        host_ip.starts_with(prefix),
        "{host_ip} not in {}",
        depot.pool
    );
    assert!(container_ip.starts_with(prefix));
    assert_ne!(host_ip, container_ip);
    assert_eq!(
        json_str(&info, "container_path").unwrap(),
        depot.path("life").to_string_lossy()
    );
    assert!(info.contains("\"events\":[]"), "{info}");
    assert!(json_ids(&info, "job_ids").is_empty());

    // run: output, exit code, user.
    let out = c.run(&["echo", "hello"]);
    assert_ok(&out, "run echo");
    assert_eq!(stdout(&out), "hello\n");
    let out = c.run(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_code(&out, 7, "run exit 7");
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    assert_eq!(c.sh("id -un"), "vcap\n");
    assert_eq!(c.run_root(&["id", "-un"]).stdout, b"root\n");
    // The script goes on stdin to a shell.
    let script = depot.data("script").join("script.sh");
    fs::write(&script, "x=41\necho $((x + 1))\nexit 3\n").unwrap();
    let out = depot.ctl(&["run", "life", "--script", script.to_str().unwrap()]);
    assert_code(&out, 3, "run --script");
    assert_eq!(stdout(&out), "42\n");
    // rlimits reach the job.
    let out = depot.ctl(&[
        "run",
        "life",
        "--rlimit",
        "nofile=77",
        "--",
        "sh",
        "-c",
        "ulimit -n",
    ]);
    assert_ok(&out, "run --rlimit");
    assert_eq!(stdout(&out), "77\n");

    // spawn + link, spawn + stream.
    let job = c.spawn("echo linked; echo linked-err >&2; exit 5");
    let out = depot.ctl(&["link", "life", &job]);
    assert_code(&out, 5, "link");
    assert_eq!(stdout(&out), "linked\n");
    assert_eq!(stderr(&out), "linked-err\n");
    let job = c.spawn("for i in 1 2 3; do echo line$i; done; exit 0");
    let out = depot.ctl(&["stream", "life", &job]);
    assert_ok(&out, "stream");
    assert_eq!(stdout(&out), "line1\nline2\nline3\n");

    // A running job is listed by info.
    let running = c.spawn("while [ ! -e /tmp/release ]; do sleep 0.05; done");
    assert!(json_ids(&c.info(), "job_ids").contains(&running));
    c.sh("touch /tmp/release");
    assert_ok(&depot.ctl(&["link", "life", &running]), "link released job");
    assert!(!json_ids(&c.info(), "job_ids").contains(&running));

    // net-in: a host port from the pool, forwarded by the container's chain.
    let out = depot.ctl(&["net-in", "life", "--container-port", "8080"]);
    assert_ok(&out, "net-in");
    let printed = stdout(&out);
    let ports: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(ports.len(), 2, "net-in prints both ports: {printed:?}");
    let host_port = ports[0].to_string();
    assert_eq!(ports[1], "8080");
    assert!(
        host_port.parse::<u16>().is_ok_and(|p| p >= 61001),
        "a port of the pool: {printed:?}"
    );
    let rules = run_text(
        "iptables",
        &["-w", "-t", "nat", "-S", &format!("warden-i-{}", c.id)],
    );
    assert!(
        rules.contains(&format!("--dport {host_port}"))
            && rules.contains(&format!("{container_ip}:8080")),
        "{rules}"
    );

    // stop honours the grace period: the job's TERM handler runs.
    let job = c.spawn(
        "trap 'echo term > /tmp/got-term; exit 0' TERM; touch /tmp/ready; \
         while :; do sleep 0.05; done",
    );
    wait_for("the job's trap", Duration::from_secs(10), || {
        c.upper("/tmp/ready").exists()
    });
    let out = depot.ctl(&["stop", "life"]);
    assert_ok(&out, "stop");
    assert_eq!(
        fs::read_to_string(c.upper("/tmp/got-term")).unwrap(),
        "term\n"
    );
    assert_ok(
        &depot.ctl(&["link", "life", &job]),
        "link of the stopped job",
    );

    let info = c.info();
    assert_eq!(json_str(&info, "state").as_deref(), Some("stopped"));
    let out = depot.ctl(&["run", "life", "--", "true"]);
    assert_code(&out, 8, "run after stop");
    assert_one_line_error(&out);

    c.destroy();
    let list = depot.ctl(&["list"]);
    assert_ok(&list, "list");
    assert_eq!(stdout(&list), "");
}

#[test]
fn stop_kill_is_immediate() {
    let Some(depot) = TestDepot::new("stopkill") else {
        return;
    };
    let c = depot.create("stopkill", &[]);
    let job = c.spawn(
        "trap 'echo term > /tmp/got-term; exit 0' TERM; touch /tmp/ready; \
         while :; do sleep 0.05; done",
    );
    wait_for("the job's trap", Duration::from_secs(10), || {
        c.upper("/tmp/ready").exists()
    });
    let out = depot.ctl(&["stop", "stopkill", "--kill"]);
    assert_ok(&out, "stop --kill");
    assert!(!c.upper("/tmp/got-term").exists(), "SIGTERM was sent");
    // Killed by a signal: 128+9, and said so (this was 255, what wsh
    // reports, before wsh's --status-file told wardenctl the signal).
    let out = depot.ctl(&["link", "stopkill", &job]);
    assert_code(&out, 137, "link of a killed job");
    assert_eq!(
        stderr(&out),
        format!("wardenctl: job {job} killed by SIGKILL\n")
    );
    c.destroy();
}

#[test]
fn two_containers_are_isolated() {
    let Some(depot) = TestDepot::new("isolation") else {
        return;
    };
    // busybox's ping needs a raw socket, which no job has (CAP_NET_RAW is
    // cut); the probe's ping uses an ICMP datagram socket, as iputils does.
    let probe = format!(
        "{}:/bin/confine-probe:ro",
        tests::paths::bin("confine-probe").display()
    );
    let a = depot.create("iso-a", &["--bind-mount", &probe]);
    let b = depot.create("iso-b", &["--bind-mount", &probe]);

    // Hostnames.
    assert_eq!(a.sh("hostname"), format!("{}\n", a.id));
    assert_eq!(b.sh("hostname"), format!("{}\n", b.id));

    // Namespaces differ from each other's and from the host's.
    for ns in ["pid", "mnt", "uts", "ipc", "net"] {
        let host = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let in_a = a.sh(&format!("readlink /proc/self/ns/{ns}"));
        let in_b = b.sh(&format!("readlink /proc/self/ns/{ns}"));
        assert_ne!(in_a, in_b, "{ns}");
        assert_ne!(in_a.trim(), host.to_string_lossy(), "{ns}");
    }

    // Pids: a process of b is invisible in a.
    let job = b.spawn("exec sleep 4242");
    wait_for("b's sleep", Duration::from_secs(10), || {
        b.sh("ps -o args").contains("sleep 4242")
    });
    assert!(!a.sh("ps -o args").contains("sleep 4242"));

    // Mounts: a sees its own root, nothing of b.
    let mounts_a = a.sh("cat /proc/mounts");
    assert!(mounts_a.contains(&depot.path("iso-a").to_string_lossy().into_owned()));
    assert!(!mounts_a.contains(&depot.path("iso-b").to_string_lossy().into_owned()));

    // IPC: a shared memory file of a is not in b.
    a.sh("echo a > /dev/shm/only-a");
    assert_eq!(b.sh("ls /dev/shm"), "");

    // Network: a reaches itself, not b nor the host; the host reaches a.
    let info_a = a.info();
    let info_b = b.info();
    let a_ip = json_str(&info_a, "container_ip").unwrap();
    let a_host_ip = json_str(&info_a, "host_ip").unwrap();
    let b_ip = json_str(&info_b, "container_ip").unwrap();
    let b_host_ip = json_str(&info_b, "host_ip").unwrap();
    let ping = |c: &Container, ip: &str| {
        let out = c.run_root(&["/bin/confine-probe", "ping", ip]);
        assert_ok(&out, "confine-probe ping");
        stdout(&out).trim() == "ok"
    };
    assert!(ping(&a, &a_ip), "a cannot ping itself");
    assert!(!ping(&a, &b_ip), "a reaches b");
    assert!(!ping(&b, &a_ip), "b reaches a");
    assert!(!ping(&a, &b_host_ip), "a reaches b's host end");
    assert!(!ping(&a, &a_host_ip), "a reaches the host");
    let host_ping = Command::new("busybox")
        .args(["ping", "-c", "1", "-W", "2", &a_ip])
        .output()
        .unwrap();
    assert_ok(&host_ping, "the host pings a");

    let _ = depot.ctl(&["stop", "iso-b", "--kill"]);
    let _ = job;
    a.destroy();
    b.destroy();
}

#[test]
fn link_of_a_finished_job() {
    let Some(depot) = TestDepot::new("finished") else {
        return;
    };
    let c = depot.create("finished", &[]);
    let job = c.spawn("echo done; echo done-err >&2; exit 5");
    wait_for("the job to end", Duration::from_secs(10), || {
        !json_ids(&c.info(), "job_ids").contains(&job)
    });
    for command in ["link", "link", "stream"] {
        let out = depot.ctl(&[command, "finished", &job]);
        assert_code(&out, 5, command);
        assert_eq!(stdout(&out), "done\n", "{command}");
        assert_eq!(stderr(&out), "done-err\n", "{command}");
    }
    c.destroy();
}

/// Waits until `child` (a wardenctl link/run) has printed `needle`, then
/// SIGKILLs it.
fn kill_when_printed(mut child: Child, needle: &str) {
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "wardenctl ended before printing {needle:?}");
        seen.extend_from_slice(&buf[..n]);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn job_survives_wardenctl_killed() {
    let Some(depot) = TestDepot::new("survive") else {
        return;
    };
    let c = depot.create("survive", &[]);
    let script = "echo before; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo after; exit 4";

    // Killed mid-stream.
    let job = c.spawn(script);
    let child = depot
        .command()
        .args(["stream", "survive", &job])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    kill_when_printed(child, "before");

    // Killed mid-link (link prints at the end: kill it while it waits).
    let mut child = depot
        .command()
        .args(["link", "survive", &job])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();

    // Killed mid-run (the job was spawned by the run that died).
    let run_script = format!("touch /tmp/run-started; {script}");
    let mut run = depot
        .command()
        .args(["run", "survive", "--", "sh", "-c", &run_script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("run's job", Duration::from_secs(10), || {
        c.upper("/tmp/run-started").exists()
    });
    run.kill().unwrap();
    run.wait().unwrap();
    let jobs = json_ids(&c.info(), "job_ids");
    assert_eq!(jobs.len(), 2, "both jobs still run: {jobs:?}");

    c.sh("touch /tmp/go");
    for job in jobs {
        let out = depot.ctl(&["link", "survive", &job]);
        assert_code(&out, 4, "link after the kill");
        assert_eq!(stdout(&out), "before\nafter\n");
    }
    c.destroy();
}

/// A destroy whose destroy.sh fails leaves the container's jobs alone: the
/// jobs' helpers (killed by a destroy when they outlive the container) are
/// not killed, and the job still answers a link once destroy.sh is
/// repaired and the job let go; the destroy after that leaves nothing.
#[test]
fn a_failed_destroy_leaves_the_jobs_alone() {
    let Some(depot) = TestDepot::new("faildestroy") else {
        return;
    };
    let c = depot.create("faildestroy", &[]);
    let job = c.spawn("while [ ! -e /tmp/go ]; do sleep 0.05; done; echo after; exit 3");
    let path = depot.path(&c.handle);
    let destroy_sh = path.join("destroy.sh");
    // Put back before the depot's Drop destroys what a failure left.
    struct Restore(std::path::PathBuf, Vec<u8>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = fs::write(&self.0, &self.1);
        }
    }
    let real = Restore(destroy_sh.clone(), fs::read(&destroy_sh).unwrap());
    fs::write(&destroy_sh, "#!/bin/sh\necho refused >&2\nexit 7\n").unwrap();
    let out = depot.ctl(&["destroy", "faildestroy"]);
    assert!(
        !out.status.success(),
        "destroy with a failing destroy.sh succeeded"
    );
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    let spawn_pid: i32 = fs::read_to_string(path.join(format!("jobs/{job}/spawn.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // A destroy kills the helpers before it returns: had this one, the
    // SIGKILL would have been sent by now; a moment for it to land.
    std::thread::sleep(Duration::from_millis(300));
    let state = fs::read_to_string(format!("/proc/{spawn_pid}/status")).unwrap_or_default();
    assert!(
        state
            .lines()
            .any(|l| l.starts_with("State:") && !l.contains("zombie")),
        "job {job}'s iomux-spawn ({spawn_pid}) was killed by a destroy that failed: {state}"
    );
    drop(real);
    c.sh("touch /tmp/go");
    let out = depot.ctl(&["link", "faildestroy", &job]);
    assert_code(&out, 3, "link after the failed destroy");
    assert_eq!(stdout(&out), "after\n");
    c.destroy();
}

/// SIGINT or SIGTERM to a `run` (its job recorded by a thread of
/// wardenctl): a recorder process takes the job over, wardenctl says so and
/// exits 128+N, and everything the job writes afterwards is kept once,
/// in order: far more than iomux-spawn's ring would hold for nobody.
#[test]
fn an_interrupted_run_hands_its_job_to_a_recorder() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let Some(depot) = TestDepot::new("interrupt") else {
        return;
    };
    let c = depot.create("interrupt", &[]);
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // A marker of its own per round: the upper layer is not to be
        // changed from the host under a mounted overlay.
        let started = format!("/tmp/started-{}", signal.as_str());
        let script = format!(
            "rm -f /tmp/go; touch {started}; echo start; \
             while [ ! -e /tmp/go ]; do sleep 0.05; done; seq 1 200000; exit 6"
        );
        let mut run = depot
            .command()
            .args(["run", "interrupt", "--", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for("run's job", Duration::from_secs(10), || {
            c.upper(&started).exists() || matches!(run.try_wait(), Ok(Some(_)))
        });
        if let Ok(Some(status)) = run.try_wait() {
            let mut err = String::new();
            run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("run ended before its job started ({status}): {err}");
        }
        kill(Pid::from_raw(run.id() as i32), signal).unwrap();
        let out = run.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(128 + signal as i32), "{err}");
        let job = err
            .split_once("; job ")
            .and_then(|(_, rest)| rest.split_once(' '))
            .map(|(job, _)| job.to_string())
            .unwrap_or_else(|| panic!("no job named in {err:?}"));
        assert!(
            err.contains(&format!("interrupted by {}", signal.as_str())),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "run printed before the end");
        // The recorder is there before the job goes on. (A child it is
        // forking, iomux-link before its exec, bears its command line too.)
        let root = depot.root.display().to_string();
        let job_dir = format!("/interrupt/jobs/{job}");
        let recorders: Vec<u32> = live_cmdlines()
            .into_iter()
            .filter(|(_, cmd)| {
                cmd.contains("__record")
                    && cmd
                        .split(' ')
                        .any(|arg| arg.starts_with(&root) && arg.ends_with(&job_dir))
            })
            .map(|(pid, _)| pid)
            .collect();
        let parent_of = |pid: u32| -> Option<u32> {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            stat.rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        let heads = recorders
            .iter()
            .filter(|&&pid| parent_of(pid).is_none_or(|ppid| !recorders.contains(&ppid)))
            .count();
        assert_eq!(heads, 1, "one recorder for job {job}: {recorders:?}");

        c.sh("touch /tmp/go");
        let linked = depot.ctl(&["link", "interrupt", &job]);
        assert_code(&linked, 6, "link after the interrupt");
        let mut want = String::from("start\n");
        for n in 1..=200000 {
            want.push_str(&format!("{n}\n"));
        }
        let got = stdout(&linked);
        assert!(
            got == want,
            "{} bytes linked, {} written",
            got.len(),
            want.len()
        );
    }
    c.destroy();
}

#[test]
fn copy_in_and_out() {
    let Some(depot) = TestDepot::new("copy") else {
        return;
    };
    let c = depot.create("copy", &[]);
    let src = depot.data("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a"), "alpha").unwrap();
    fs::set_permissions(src.join("a"), fs::Permissions::from_mode(0o754)).unwrap();
    fs::write(src.join("sub/b"), "beta").unwrap();
    fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o710)).unwrap();
    std::os::unix::fs::symlink("a", src.join("link")).unwrap();
    fs::hard_link(src.join("a"), src.join("hard")).unwrap();

    let out = depot.ctl(&[
        "copy-in",
        "copy",
        &format!("{}/", src.display()),
        "/home/vcap/in",
    ]);
    assert_ok(&out, "copy-in");
    assert_eq!(
        c.sh(
            "cd /home/vcap/in && stat -c '%n %a %h %U' a hard sub sub/b && readlink link && cat a"
        ),
        "a 754 1 vcap\nhard 754 1 vcap\nsub 710 2 vcap\nsub/b 644 1 vcap\na\nalpha"
    );

    let dst = depot.data("out").join("dst");
    let out = depot.ctl(&[
        "copy-out",
        "copy",
        "/home/vcap/in/",
        dst.to_str().unwrap(),
        "--owner",
        "nobody:nogroup",
    ]);
    assert_ok(&out, "copy-out");
    let meta = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap();
    assert_eq!(meta("a").mode() & 0o7777, 0o754);
    assert_eq!(meta("sub").mode() & 0o7777, 0o710);
    assert_eq!(fs::read_link(dst.join("link")).unwrap(), Path::new("a"));
    assert_eq!(fs::read_to_string(dst.join("sub/b")).unwrap(), "beta");
    assert_ne!(
        meta("a").ino(),
        meta("hard").ino(),
        "hard link not materialized"
    );
    for p in ["a", "hard", "sub", "sub/b", "link"] {
        assert_eq!(meta(p).uid(), 65534, "{p} owner");
        assert_eq!(meta(p).gid(), 65534, "{p} group");
    }

    let out = depot.ctl(&["copy-in", "copy", "/no/such/path", "/tmp/x"]);
    assert_code(&out, 6, "copy-in of a missing source");
    c.destroy();
}

#[test]
fn bind_mounts_ro_and_rw() {
    let Some(depot) = TestDepot::new("bind") else {
        return;
    };
    let ro = depot.data("ro-src");
    let rw = depot.data("rw-src");
    fs::write(ro.join("file"), "from the host").unwrap();
    let c = depot.create(
        "bind",
        &[
            "--bind-mount",
            &format!("{}:/data/ro:ro", ro.display()),
            "--bind-mount",
            &format!("{}:/data/rw:rw", rw.display()),
        ],
    );
    assert_eq!(c.sh("cat /data/ro/file"), "from the host");
    let out = c.run_root(&["touch", "/data/ro/new"]);
    assert!(!out.status.success(), "a read-only bind mount was written");
    assert!(!ro.join("new").exists());
    let out = c.run_root(&["sh", "-c", "echo written > /data/rw/new"]);
    assert_ok(&out, "write to the rw bind mount");
    assert_eq!(fs::read_to_string(rw.join("new")).unwrap(), "written\n");
    c.destroy();
    // The sources are untouched by destroy.
    assert_eq!(
        fs::read_to_string(ro.join("file")).unwrap(),
        "from the host"
    );
}

#[test]
fn bad_input_is_refused_cleanly() {
    let Some(depot) = TestDepot::new("badinput") else {
        return;
    };
    let rootfs = paths::rootfs();
    let rootfs = rootfs.to_str().unwrap();
    let pool = depot.pool.clone();
    let create = |extra: &[&str]| {
        let mut args = vec!["create", "--pool-network", &pool, "--rootfs", rootfs];
        args.extend_from_slice(extra);
        depot.ctl(&args)
    };
    let entries = || {
        let mut names: Vec<String> = fs::read_dir(&depot.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    };

    for handle in ["a/b", "..", "x..y", "bad\u{1}name", "with space", ".hidden"] {
        let out = create(&["--handle", handle]);
        assert_code(&out, 5, handle);
        assert_one_line_error(&out);
    }
    let out = depot.ctl(&["create", "--rootfs", "/no/such/rootfs", "--handle", "x"]);
    assert_code(&out, 6, "missing rootfs");
    assert_one_line_error(&out);
    let out = create(&["--handle", "x", "--bind-mount", "/no/such/src:/data"]);
    assert_code(&out, 6, "missing bind mount source");
    assert_one_line_error(&out);
    let out = create(&["--handle", "x", "--bind-mount", "relative:/data"]);
    assert_code(&out, 5, "relative bind mount source");
    assert_eq!(entries(), Vec::<String>::new(), "something was left");

    for args in [
        vec!["info", "nope"],
        vec!["destroy", "nope"],
        vec!["stop", "nope"],
        vec!["link", "nope", "1"],
        vec!["run", "nope", "--", "true"],
    ] {
        let out = depot.ctl(&args);
        assert_code(&out, 3, &args.join(" "));
        assert_one_line_error(&out);
    }

    let c = depot.create("dup", &[]);
    let out = create(&["--handle", "dup"]);
    assert_code(&out, 4, "duplicate handle");
    assert_one_line_error(&out);
    for job in ["99", "x", "../1"] {
        let out = depot.ctl(&["link", "dup", job]);
        assert_code(&out, 7, "unknown job");
        assert_one_line_error(&out);
    }
    let out = depot.ctl(&["run", "dup", "--rlimit", "bogus=1", "--", "true"]);
    assert_code(&out, 5, "bad rlimit");
    let out = depot.ctl(&[
        "create",
        "--handle",
        "y",
        "--pool-network",
        &pool,
        "--rootfs",
        rootfs,
        "--network",
        "10.1.2.3",
    ]);
    assert_code(&out, 5, "network outside the pool");
    assert_eq!(entries(), vec!["dup".to_string()]);
    c.destroy();
}

#[test]
fn a_failed_create_is_undone() {
    let Some(depot) = TestDepot::new("undo") else {
        return;
    };
    // A rootfs without /bin/sh: setup and the first hooks succeed, the hook
    // run inside the container cannot, so start fails after cgroups, veth
    // and iptables chains exist.
    let rootfs = depot.data("empty-rootfs");
    for d in ["etc", "dev", "proc", "sbin", "mnt", "tmp", "home"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    let out = depot.ctl(&[
        "create",
        "--handle",
        "undo",
        "--pool-network",
        &depot.pool,
        "--rootfs",
        rootfs.to_str().unwrap(),
    ]);
    // One line naming the step and the kept log, then (indented) the last
    // lines of error output: tests/tests/create_log.rs.
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("wardenctl: create failed at start.sh: "),
        "{err}"
    );
    let id = err
        .split("container id ")
        .nth(1)
        .and_then(|s| s.split([',', ')']).next())
        .unwrap_or_else(|| panic!("no container id in {err:?}"))
        .to_string();
    assert_gone(&depot, "undo", &id);
}

#[test]
fn concurrent_creates_get_distinct_resources() {
    let Some(depot) = TestDepot::new("concurrent") else {
        return;
    };
    let rootfs = paths::rootfs();
    // One container asks for a given address; the others take from the
    // pool, first free first: the address asked for lies past the /30s
    // they take (.0, .4, .8), whoever gets the lock first.
    let prefix = depot.pool.trim_end_matches("0/24").to_string();
    let wanted = format!("{prefix}201");
    let children: Vec<(String, Child)> = (0..4)
        .map(|i| {
            let handle = format!("conc-{i}");
            let mut command = depot.command();
            command.args([
                "create",
                "--handle",
                &handle,
                "--pool-network",
                &depot.pool,
                "--rootfs",
                rootfs.to_str().unwrap(),
            ]);
            if i == 0 {
                command.args(["--network", &wanted]);
            }
            let child = command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (handle, child)
        })
        .collect();
    let mut seen_ips = Vec::new();
    let mut seen_ids = Vec::new();
    for (handle, child) in children {
        let out = child.wait_with_output().unwrap();
        assert_ok(&out, &format!("concurrent create {handle}"));
        let info = depot.ctl(&["info", &handle, "--json"]);
        assert_ok(&info, "info");
        let info = stdout(&info);
        let ip = json_str(&info, "container_ip").unwrap();
        if handle == "conc-0" {
            assert_eq!(ip, format!("{prefix}202"), "--network was not honoured");
        }
        seen_ips.push(ip);
        seen_ids.push(json_str(&info, "id").unwrap());
    }
    let mut ips = seen_ips.clone();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 4, "addresses handed out twice: {seen_ips:?}");
    let mut uids = Vec::new();
    for (i, id) in seen_ids.into_iter().enumerate() {
        let c = Container {
            depot: &depot,
            handle: format!("conc-{i}"),
            id,
        };
        uids.push(c.sh("id -u"));
        c.destroy();
    }
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), 4, "uids handed out twice");
    let list = depot.ctl(&["list"]);
    assert_eq!(stdout(&list), "");
}

#[test]
fn limits_and_egress_rules() {
    let Some(depot) = TestDepot::new("limits") else {
        return;
    };
    let c = depot.create("limits", &[]);
    let out = depot.ctl(&["limit-memory", "limits", "--limit", "67108864"]);
    assert_ok(&out, "limit-memory");
    assert_eq!(stdout(&out), "67108864\n");
    let out = depot.ctl(&["limit-cpu", "limits", "--shares", "512"]);
    assert_ok(&out, "limit-cpu");
    // v1 prints the shares; v2 the weight they convert to.
    assert!(
        ["512\n", "20\n"].contains(&stdout(&out).as_str()),
        "{}",
        stdout(&out)
    );
    let out = depot.ctl(&["limit-cpu", "limits", "--shares", "1"]);
    assert_code(&out, 5, "shares out of range");

    let out = depot.ctl(&[
        "limit-bandwidth",
        "limits",
        "--rate",
        "1000000",
        "--burst",
        "10000",
    ]);
    assert_ok(&out, "limit-bandwidth");
    let qdiscs = run_text("tc", &["qdisc", "show", "dev", &format!("w-{}-0", c.id)]);
    assert!(
        qdiscs.contains("tbf") && qdiscs.contains("rate 1Mbit"),
        "{qdiscs}"
    );

    let network = depot.pool.replace(".0/24", ".128/25");
    let out = depot.ctl(&[
        "net-out",
        "limits",
        "--network",
        &network,
        "--port",
        "80:90",
    ]);
    assert_ok(&out, "net-out");
    let rules = run_text("iptables", &["-w", "-S", &format!("warden-i-{}", c.id)]);
    assert!(
        rules.contains(&format!("-d {network}")) && rules.contains("--dports 80:90"),
        "{rules}"
    );
    let out = depot.ctl(&["net-out", "limits", "--protocol", "bogus", "--port", "1"]);
    assert_code(&out, 5, "bad protocol");
    c.destroy();
}

/// Whether the container's last job was asked of wshd by iomux-spawn
/// itself: then the host process holding its pipes (`child_pid=`) is
/// iomux-spawn (`spawn.pid`), not a wsh child of it.
fn last_job_was_direct(container: &Path) -> bool {
    let jobs = container.join("jobs");
    let last = fs::read_dir(&jobs)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .expect("a job");
    let dir = jobs.join(last.to_string());
    let spawn_pid = fs::read_to_string(dir.join("spawn.pid")).unwrap();
    let out = fs::read_to_string(dir.join("spawn.out")).unwrap();
    let child = out
        .lines()
        .find_map(|l| l.strip_prefix("child_pid="))
        .expect("child_pid= in spawn.out");
    child.trim() == spawn_pid.trim()
}

/// A job's iomux-spawn asks wshd for it (no wsh process between them) when
/// the container's iomux-spawn can; when it cannot (the C helper, or an
/// older build: `etc/iomux-spawn-wshd` then says no), a wsh child does it.
/// Either way a job gives the same output, code and end.
#[test]
fn jobs_end_alike_with_and_without_a_wsh_between() {
    let Some(depot) = TestDepot::new("wshless") else {
        return;
    };
    let c = depot.create("wshless", &[]);
    let path = depot.path("wshless");
    let scripts: [&[&str]; 4] = [
        &["sh", "-c", "echo out; echo err >&2; exit 7"],
        &["sh", "-c", "kill -9 $$"],
        &["sh", "-c", "id -un; cat"],
        &["true"],
    ];
    let run_all = || -> Vec<(Option<i32>, String, String)> {
        scripts
            .iter()
            .map(|argv| {
                let out = c.run(argv);
                (out.status.code(), stdout(&out), stderr(&out))
            })
            .collect()
    };
    let direct = run_all();
    assert!(last_job_was_direct(&path), "a job ran through a wsh");
    assert_eq!(
        fs::read_to_string(path.join("etc/iomux-spawn-wshd")).unwrap(),
        "yes\n"
    );
    assert_eq!(direct[0], (Some(7), "out\n".into(), "err\n".into()));
    assert_eq!(direct[1].0, Some(128 + 9), "{:?}", direct[1]);
    assert!(direct[1].2.contains("killed by SIGKILL"), "{:?}", direct[1]);
    assert_eq!(direct[2], (Some(0), "vcap\n".into(), String::new()));

    fs::write(path.join("etc/iomux-spawn-wshd"), "no\n").unwrap();
    let through_wsh = run_all();
    assert!(
        !last_job_was_direct(&path),
        "the wsh fallback was not taken"
    );
    // The job numbers in the messages differ; nothing else may.
    let renumbered = |runs: Vec<(Option<i32>, String, String)>| -> Vec<_> {
        runs.into_iter()
            .map(|(code, out, err)| {
                let err: String = err.chars().filter(|ch| !ch.is_ascii_digit()).collect();
                (code, out, err)
            })
            .collect()
    };
    assert_eq!(renumbered(through_wsh), renumbered(direct));
    c.destroy();
}
