//! Confinement of jobs and of the container's pid 1, tried as an attacker
//! would from inside, as root (`run --privileged`) and as vcap: every probe
//! (tests/src/bin/confine-probe.rs, bind-mounted read-only into the
//! container) must be refused with the errno the kernel gives a confined
//! process, and the same probes succeed in an `--allow-nested-warden`
//! container (the control, where it is safe: everything there stays inside
//! that container's namespaces). The network side is tests/confine_net.rs,
//! the host side (modes, bounded output, pids) tests/confine_host.rs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use tests::ctl::*;
use tests::paths;

/// This binary's networks: 10.255.96.0/20.
fn depot(test: &str) -> Option<TestDepot> {
    TestDepot::new_in(test, 352, 16)
}

fn probe_mount() -> String {
    format!(
        "{}:/bin/confine-probe:ro",
        paths::bin("confine-probe").display()
    )
}

fn create<'a>(depot: &'a TestDepot, handle: &str, extra: &[&str]) -> Container<'a> {
    let bind = probe_mount();
    let mut args = vec!["--bind-mount", bind.as_str()];
    args.extend_from_slice(extra);
    depot.create(handle, &args)
}

/// Run the probe as root or vcap; its one-word answer.
fn probe(c: &Container<'_>, root: bool, args: &[&str]) -> String {
    let mut argv = vec!["/bin/confine-probe"];
    argv.extend_from_slice(args);
    let out = if root {
        c.run_root(&argv)
    } else {
        c.run(&argv)
    };
    assert_ok(&out, &format!("confine-probe {}", args.join(" ")));
    stdout(&out).trim().to_string()
}

/// `Name:\tvalue` lines of the job's own /proc/self/status.
fn status_field(c: &Container<'_>, root: bool, field: &str) -> String {
    let argv = ["cat", "/proc/self/status"];
    let out = if root {
        c.run_root(&argv)
    } else {
        c.run(&argv)
    };
    assert_ok(&out, "cat /proc/self/status");
    stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
        .trim()
        .to_string()
}

fn sh(c: &Container<'_>, root: bool, script: &str) -> std::process::Output {
    let argv = ["sh", "-c", script];
    if root {
        c.run_root(&argv)
    } else {
        c.run(&argv)
    }
}

/// Docker's default set less CAP_NET_RAW, as /proc shows it.
const ROOT_CAPS: &str = "00000000a80405fb";
const NO_CAPS: &str = "0000000000000000";

#[test]
fn jobs_hold_only_their_capabilities_under_seccomp() {
    let Some(depot) = depot("caps") else {
        return;
    };
    let c = create(&depot, "caps", &[]);
    for (root, caps) in [(true, ROOT_CAPS), (false, NO_CAPS)] {
        let who = if root { "root" } else { "vcap" };
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd"] {
            assert_eq!(status_field(&c, root, set), caps, "{who} {set}");
        }
        assert_eq!(status_field(&c, root, "CapAmb"), NO_CAPS, "{who} CapAmb");
        assert_eq!(status_field(&c, root, "Seccomp"), "2", "{who} Seccomp");
        assert_eq!(
            status_field(&c, root, "NoNewPrivs"),
            "1",
            "{who} NoNewPrivs"
        );
    }
    // Root keeps uid 0 and what Docker's default grants it.
    let out = sh(&c, true, "id -u; chown vcap /tmp && echo chowned");
    assert_ok(&out, "id; chown as root");
    assert_eq!(stdout(&out), "0\nchowned\n");
    c.destroy();
}

/// The probes that must fail for root and vcap alike, with their errno.
const REFUSED_FOR_BOTH: &[(&[&str], &str)] = &[
    (&["open_by_handle", "/dev/shm"], "name_to_handle_at EPERM"),
    (&["mount", "tmpfs", "/tmp"], "EPERM"),
    (&["mount", "proc", "/mnt"], "EPERM"),
    (&["mount", "sysfs", "/mnt"], "EPERM"),
    (&["mount", "cgroup", "/mnt"], "EPERM"),
    (&["mount", "cgroup2", "/mnt"], "EPERM"),
    (&["keyctl"], "EPERM"),
    (&["bpf"], "EPERM"),
    (&["perf_event_open"], "EPERM"),
    (&["userfaultfd"], "EPERM"),
    (&["unshare_user"], "EPERM"),
    (&["clone_user"], "EPERM"),
    (&["ptrace", "1"], "EPERM"),
    (&["raw_socket"], "EPERM"),
    (&["sethostname", "evil"], "EPERM"),
    (&["setns", "/proc/self/ns/net"], "EPERM"),
    // pid 1 is not dumpable: its descriptors, root and namespaces are
    // root's on the host alone.
    (&["open", "/proc/1/fd/0"], "EACCES"),
    (&["open", "/proc/1/root/etc/passwd"], "EACCES"),
    (&["open", "/proc/1/ns/mnt"], "EACCES"),
    (&["mknod", "/tmp/disk", "8", "0"], "EPERM"),
    // The cgroup tree is neither mounted nor reachable.
    (
        &["write", "/sys/fs/cgroup/devices/devices.allow", "a"],
        "ENOENT",
    ),
    (
        &["write", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "-1"],
        "ENOENT",
    ),
    // Masked: /dev/null reads empty (kcore is absent from some kernels).
    (&["read", "/proc/keys"], "ok 0"),
    (&["read", "/proc/timer_list"], "ok 0"),
    (&["read", "/proc/kallsyms"], "ok 0"),
];

/// Kernel-wide files root may read but not write: the mount is read-only.
const READ_ONLY_FOR_ROOT: &[(&[&str], &str)] = &[
    (&["write", "/proc/sys/kernel/domainname", "evil"], "EROFS"),
    (&["write", "/proc/sys/vm/drop_caches", "3"], "EROFS"),
    (&["write", "/proc/sysrq-trigger", "h"], "EROFS"),
];

#[test]
fn escapes_are_refused_for_root_and_vcap() {
    let Some(depot) = depot("escapes") else {
        return;
    };
    let c = create(&depot, "escapes", &[]);
    let mut wrong = Vec::new();
    for root in [true, false] {
        let who = if root { "root" } else { "vcap" };
        for (args, want) in REFUSED_FOR_BOTH {
            let got = probe(&c, root, args);
            if got != *want {
                wrong.push(format!("{who} {args:?}: {got} (want {want})"));
            }
        }
        for (args, want) in READ_ONLY_FOR_ROOT {
            let got = probe(&c, root, args);
            // vcap is refused earlier, by the files' modes; a kernel
            // without the file (this one has no sysrq) has nothing to refuse.
            let ok = match (root, got.as_str()) {
                (_, "ENOENT") => args[1] == "/proc/sysrq-trigger",
                (true, got) => got == *want,
                (false, got) => got.starts_with('E'),
            };
            if !ok {
                wrong.push(format!("{who} {args:?}: {got} (want {want})"));
            }
        }
        // pid 1 keeps its environment and descriptors to itself.
        let environ = probe(&c, root, &["read", "/proc/1/environ"]);
        if environ != "EACCES" && environ != "ok 0" {
            wrong.push(format!("{who} reads /proc/1/environ: {environ}"));
        }
        for masked in ["/proc/kcore", "/proc/sched_debug", "/proc/latency_stats"] {
            let got = probe(&c, root, &["read", masked]);
            if got != "ok 0" && got != "ENOENT" {
                wrong.push(format!("{who} reads {masked}: {got}"));
            }
        }
        // The cgroup namespace: the container's groups are its root.
        let out = sh(
            &c,
            root,
            "cat /proc/self/cgroup; grep -c cgroup /proc/mounts",
        );
        let text = stdout(&out);
        let mut lines: Vec<&str> = text.lines().collect();
        let mounted = lines.pop().unwrap_or_default();
        if mounted != "0" || lines.is_empty() || lines.iter().any(|l| !l.ends_with(":/")) {
            wrong.push(format!("{who} sees cgroups: {text}"));
        }
        // Its own address and link stay as given (no CAP_NET_ADMIN).
        let out = sh(
            &c,
            root,
            &format!(
                "ip addr add 10.9.9.9/32 dev w-{id}-1 2>&1; echo rc=$?; \
                 ip link set w-{id}-1 address 02:00:00:00:00:01 2>&1; echo rc=$?",
                id = c.id
            ),
        );
        if stdout(&out).matches("rc=0").count() != 0 {
            wrong.push(format!("{who} changes its address: {}", stdout(&out)));
        }
    }
    assert!(wrong.is_empty(), "not confined:\n{}", wrong.join("\n"));
    c.destroy();
}

#[test]
fn shm_is_sized_and_pid_1_holds_no_host_file() {
    let Some(depot) = depot("shm") else {
        return;
    };
    let c = create(&depot, "shm", &[]);
    // 100 MiB into the default 64 MiB /dev/shm stops at the size.
    let out = sh(
        &c,
        false,
        "dd if=/dev/zero of=/dev/shm/fill bs=1048576 count=100 2>/dev/null; \
         echo rc=$?; stat -c %s /dev/shm/fill; rm -f /dev/shm/fill",
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_ne!(lines.next(), Some("rc=0"), "{text}");
    let size: u64 = lines.next().and_then(|l| l.parse().ok()).expect("size");
    assert_eq!(size, 64 << 20, "{text}");

    // From the host: pid 1's environment is empty and none of its
    // descriptors is a file of the host (its start-up log included).
    let pid = fs::read_to_string(depot.path("shm").join("run/wshd.pid")).unwrap();
    let pid = pid.trim();
    // pid 1 runs under the filter its jobs inherit.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("\nSeccomp:\t2\n"), "{status}");
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(environ.is_empty(), "{}", String::from_utf8_lossy(&environ));
    for fd in fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let target = fs::read_link(fd.path()).unwrap();
        let t = target.to_string_lossy();
        let inside = t == "/dev/null"
            || t.starts_with("socket:")
            || t.starts_with("pipe:")
            || t.starts_with("anon_inode:");
        assert!(inside, "pid 1 holds {t} as fd {:?}", fd.file_name());
    }
    c.destroy();
}

#[test]
fn wshd_socket_is_private_whatever_the_umask() {
    let Some(depot) = depot("umask") else {
        return;
    };
    let mut cmd = depot.command();
    cmd.args(depot.create_args("umask", &[]));
    // SAFETY: umask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let out = cmd.output().expect("running wardenctl create");
    assert_ok(&out, "create under umask 000");
    let sock = depot.path("umask").join("run/wshd.sock");
    let mode = fs::metadata(&sock).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "{}: {mode:o}", sock.display());
    let out = depot.ctl(&["destroy", "umask"]);
    assert_ok(&out, "destroy");
}

#[test]
fn allow_nested_warden_is_the_unconfined_control() {
    let Some(depot) = depot("nested") else {
        return;
    };
    let c = create(&depot, "nested", &["--allow-nested-warden"]);
    // Every capability, no filter: the probes that stay inside this
    // container's own namespaces now succeed, so the refusals above are
    // confinement and not a broken probe.
    assert_eq!(status_field(&c, true, "Seccomp"), "0");
    let eff = u64::from_str_radix(&status_field(&c, true, "CapEff"), 16).unwrap();
    assert_ne!(eff & (1 << 21), 0, "CAP_SYS_ADMIN in {eff:x}");
    let mut wrong = Vec::new();
    for args in [
        &["open_by_handle", "/dev/shm"][..],
        &["mount", "tmpfs", "/tmp"],
        &["keyctl"],
        &["unshare_user"],
        &["clone_user"],
        &["raw_socket"],
        &["sethostname", "nested"],
        &["write", "/proc/sys/kernel/domainname", "nested"],
    ] {
        let got = probe(&c, true, args);
        if got != "ok" {
            wrong.push(format!("{args:?}: {got}"));
        }
    }
    let timers = probe(&c, true, &["read", "/proc/timer_list"]);
    if timers == "ok 0" || !timers.starts_with("ok") {
        wrong.push(format!("/proc/timer_list unmasked: {timers}"));
    }
    assert!(wrong.is_empty(), "control failed:\n{}", wrong.join("\n"));
    c.destroy();
}
