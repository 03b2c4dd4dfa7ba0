//! What a Warden server relies on from the scripts, as root, in real
//! containers: resolv.conf from a host file without a trailing newline,
//! dns servers joined by newlines (as the Ruby server passes them), vcap's
//! files renumbered with vcap, the ifb device there from start to destroy
//! (in the container's device group with the veth, or deleted by name when
//! not), the out rate read back through net.sh, and the instance's
//! destroy.sh run alone. Every container is destroyed
//! and checked to leave nothing behind; the depot's Drop destroys what a
//! failed test left.

use std::fs;
use std::os::unix::fs::{chown, lchown, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use tests::ctl::*;

/// This binary's networks: 10.255.144.0/20.
fn depot(test: &str) -> Option<TestDepot> {
    TestDepot::new_in(test, 400, 16)
}

fn info_json(c: &Container<'_>) -> serde_json::Value {
    serde_json::from_str(&c.info()).expect("info --json is JSON")
}

/// No network device of the container is left (w-<id>-0, -1, -2, ...).
fn assert_no_devices(id: &str) {
    let prefix = format!("w-{id}-");
    for entry in fs::read_dir("/sys/class/net").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(&prefix), "device {name} is left");
    }
}

/// The device group lib/common.sh gives the container: its host address as
/// a number, top bit cleared.
fn device_group(c: &Container<'_>) -> u32 {
    let json = info_json(c);
    let ip: std::net::Ipv4Addr = json["host_ip"].as_str().expect("host_ip").parse().unwrap();
    u32::from(ip) & 0x7fff_ffff
}

fn netdev_group(dev: &str) -> u32 {
    let path = format!("/sys/class/net/{dev}/netdev_group");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {text:?}: {e}"))
}

/// ip link set dev DEV group default: as a device made before the groups.
fn ungroup(dev: &str) {
    let out = Command::new("ip")
        .args(["link", "set", "dev", dev, "group", "default"])
        .output()
        .expect("running ip");
    assert_ok(&out, &format!("ip link set dev {dev} group default"));
    assert_eq!(netdev_group(dev), 0, "{dev} is still in a group");
}

fn destroy(c: Container<'_>) {
    let id = c.id.clone();
    c.destroy();
    assert_no_devices(&id);
}

/// Runs the instance's net.sh COMMAND with the ID a server passes; its stdout.
fn net_sh(c: &Container<'_>, command: &str) -> String {
    let out = Command::new(c.depot.path(&c.handle).join("net.sh"))
        .arg(command)
        .env("ID", &c.id)
        .stdin(Stdio::null())
        .output()
        .expect("running net.sh");
    assert_ok(&out, &format!("net.sh {command}"));
    stdout(&out)
}

#[test]
fn resolv_conf_without_trailing_newline() {
    let Some(depot) = depot("resolv") else {
        return;
    };
    // The host's file, seen only by this create: a private mount namespace
    // with a file bound over /etc/resolv.conf. Its last line, a loopback
    // nameserver, has no newline.
    let data = depot.data("resolv");
    let file = data.join("resolv.conf");
    fs::write(&file, "search example.test\nnameserver 127.0.0.53").unwrap();
    let out = depot
        .with_env(
            Command::new("unshare")
                .args(["-m", "--propagation", "private", "sh", "-c"])
                .arg(r#"mount --bind "$1" /etc/resolv.conf && shift && exec "$@""#)
                .arg("sh")
                .arg(&file)
                .arg(depot.bin.join("wardenctl"))
                .args(depot.create_args("resolv", &[])),
        )
        .output()
        .expect("running unshare");
    assert_ok(&out, "wardenctl create in a mount namespace of its own");
    let info = depot.ctl(&["info", "resolv", "--json"]);
    assert_ok(&info, "wardenctl info");
    let json = stdout(&info);
    let c = Container {
        depot: &depot,
        handle: "resolv".to_string(),
        id: json_str(&json, "id").expect("info has an id"),
    };
    let host_ip = json_str(&json, "host_ip").expect("info has a host_ip");
    assert_eq!(
        c.sh("cat /etc/resolv.conf"),
        format!("search example.test\nnameserver {host_ip}\n")
    );
    destroy(c);
}

#[test]
fn dns_servers_joined_by_newlines() {
    let Some(depot) = depot("dns") else {
        return;
    };
    let c = depot.create(
        "dns",
        &[
            "--dns-server",
            "192.0.2.1",
            "--dns-server",
            "192.0.2.2",
            "--dns-server",
            "198.51.100.3",
        ],
    );
    assert_eq!(
        c.sh("cat /etc/resolv.conf"),
        "nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 198.51.100.3\n"
    );
    // What the script got: the servers one a line, as the Ruby server
    // passes them.
    let config = fs::read_to_string(depot.path("dns").join("etc/config")).unwrap();
    assert!(
        config.contains("dns_servers='192.0.2.1\n192.0.2.2\n198.51.100.3'"),
        "{config}"
    );
    // A bad address is refused by the command line.
    let out = depot.ctl(&["create", "--dns-server", "not-an-ip", "--rootfs", "/"]);
    assert_code(&out, 2, "create --dns-server not-an-ip");
    destroy(c);
}

/// A small copy of the busybox rootfs whose vcap (uid and gid 10000, as the
/// busybox rootfs has it) owns its home, a file in it, a symlink to a
/// root-owned file, and a root-owned file of its group.
fn rootfs_with_vcap_files(dir: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(tests::paths::rootfs().join("."))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "copying the rootfs");
    let passwd = fs::read_to_string(dir.join("etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("vcap:x:10000:10000:")),
        "the busybox rootfs's vcap is not 10000: {passwd}"
    );
    let home = dir.join("home/vcap");
    fs::create_dir_all(&home).unwrap();
    chown(&home, Some(10000), Some(10000)).unwrap();
    let mine = home.join("mine");
    fs::write(&mine, "old\n").unwrap();
    fs::set_permissions(&mine, fs::Permissions::from_mode(0o644)).unwrap();
    chown(&mine, Some(10000), Some(10000)).unwrap();
    let group_file = home.join("group-file");
    fs::write(&group_file, "").unwrap();
    chown(&group_file, Some(0), Some(10000)).unwrap();
    fs::write(dir.join("home/root-file"), "").unwrap();
    let link = home.join("link");
    std::os::unix::fs::symlink("/home/root-file", &link).unwrap();
    lchown(&link, Some(10000), Some(10000)).unwrap();
}

#[test]
fn vcap_files_follow_the_new_uid() {
    let Some(depot) = depot("vcapuid") else {
        return;
    };
    let rootfs = depot.data("rootfs");
    rootfs_with_vcap_files(&rootfs);
    // The pool's first uid is 10000, the rootfs's own: a first container
    // takes it, so that the second gets another.
    let first = depot.create("first", &[]);
    let rootfs_arg = rootfs.to_str().unwrap();
    let out = depot.ctl(&[
        "create",
        "--handle",
        "vcap",
        "--pool-network",
        &depot.pool,
        "--rootfs",
        rootfs_arg,
    ]);
    assert_ok(&out, "wardenctl create");
    let id =
        json_str(&stdout(&depot.ctl(&["info", "vcap", "--json"])), "id").expect("info has an id");
    let c = Container {
        depot: &depot,
        handle: "vcap".to_string(),
        id,
    };
    let uid = c.sh("id -u").trim().to_string();
    assert_ne!(uid, "10000", "the second container got the rootfs's uid");
    assert_eq!(c.sh("id -g").trim(), uid);
    let owners = c.sh(
        "stat -c '%n %u %g' /home/vcap /home/vcap/mine /home/vcap/group-file \
         /home/vcap/link /home/root-file",
    );
    assert_eq!(
        owners,
        format!(
            "/home/vcap {uid} {uid}\n/home/vcap/mine {uid} {uid}\n\
             /home/vcap/group-file 0 {uid}\n/home/vcap/link {uid} {uid}\n\
             /home/root-file 0 0\n"
        )
    );
    // vcap can write its own file.
    assert_eq!(
        c.sh("echo new >> /home/vcap/mine && cat /home/vcap/mine"),
        "old\nnew\n"
    );
    // The shared rootfs keeps its owners; the changes are in the writable layer.
    let lower = fs::metadata(rootfs.join("home/vcap/mine")).unwrap();
    assert_eq!((lower.uid(), lower.gid()), (10000, 10000));
    assert_eq!(
        fs::read_to_string(rootfs.join("home/vcap/mine")).unwrap(),
        "old\n"
    );
    let link = fs::symlink_metadata(rootfs.join("home/vcap/link")).unwrap();
    assert_eq!(link.uid(), 10000);
    assert_eq!(
        fs::metadata(c.upper("home/vcap/mine"))
            .unwrap()
            .uid()
            .to_string(),
        uid
    );
    destroy(c);
    destroy(first);
}

#[test]
fn ifb_from_start_to_destroy_and_out_rate_read_back() {
    let Some(depot) = depot("ifb") else {
        return;
    };
    let c = depot.create("ifb", &[]);
    let ifb = format!("/sys/class/net/w-{}-2", c.id);
    assert!(Path::new(&ifb).exists(), "{ifb} is missing after create");
    let flags = fs::read_to_string(format!("{ifb}/flags")).unwrap();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "{ifb} is down");
    assert_eq!(
        fs::read_to_string(format!("{ifb}/type")).unwrap().trim(),
        "1",
        "{ifb}: not an ethernet-like (ifb) device"
    );
    // Both host-side devices in the container's group (destroy.sh deletes
    // it in one request): its host address as a number.
    let group = device_group(&c);
    for dev in [format!("w-{}-0", c.id), format!("w-{}-2", c.id)] {
        assert_eq!(netdev_group(&dev), group, "{dev}'s device group");
    }

    let out = depot.ctl(&[
        "limit-bandwidth",
        "ifb",
        "--rate",
        "1000000",
        "--burst",
        "10000",
    ]);
    assert_ok(&out, "limit-bandwidth");
    // As a Warden server reads it: get_ingress_info is the traffic out of
    // the container, get_egress_info the traffic into it.
    let ingress = net_sh(&c, "get_ingress_info");
    assert!(
        ingress.contains("tbf") && ingress.contains("rate 1Mbit burst 10000b"),
        "get_ingress_info: {ingress}"
    );
    let egress = net_sh(&c, "get_egress_info");
    assert!(
        egress.contains("tbf") && egress.contains("rate 1Mbit burst 10000b"),
        "get_egress_info: {egress}"
    );
    let stat = info_json(&c)["bandwidth_stat"].clone();
    assert_eq!(stat["out_rate"], 1_000_000, "{stat}");
    assert_eq!(stat["out_burst"], 10000, "{stat}");
    assert_eq!(stat["in_rate"], 1_000_000, "{stat}");
    assert_eq!(stat["in_burst"], 10000, "{stat}");

    destroy(c);
    assert!(!Path::new(&ifb).exists(), "{ifb} is left");
}

/// lib/common.sh's device_group_var, in the host's sh and in the rootfs's
/// busybox sh (which sources the same file): an address's group, and none
/// where ip(8) would refuse it or /etc/iproute2/group's small numbers are.
#[test]
fn device_group_of_an_address() {
    let common = tests::paths::workspace().join("setup-scripts/skeleton/lib/common.sh");
    let cases = [
        ("10.254.0.1", "184418305"),
        ("192.168.1.1", "1084752129"), // top bit cleared: ip(8) takes up to 2^31-1
        ("255.255.255.254", "2147483646"),
        ("128.1.0.1", "65537"),
        ("128.0.0.1", ""), // under 65536
        ("010.1.1.1", ""), // sh would read 010 as octal
        ("10.1.1.256", ""),
        ("10.1.1", ""),
        ("10.1.1.1.1", ""),
        ("", ""),
        ("fe80::1", ""),
    ];
    let busybox = tests::paths::rootfs().join("bin/busybox");
    let shells: [Vec<std::ffi::OsString>; 2] = [
        vec!["sh".into()],
        vec![busybox.into_os_string(), "sh".into()],
    ];
    // An empty directory: common.sh reads ./etc/config when there is one.
    let cwd = tests::iomux_job::TempDir::new("device-group");
    for shell in &shells {
        for (address, want) in cases {
            let out = Command::new(&shell[0])
                .args(&shell[1..])
                .arg("-c")
                .arg(r#". "$0"; device_group_var "$1"; printf '%s' "$device_group""#)
                .arg(&common)
                .arg(address)
                .current_dir(cwd.path())
                .output()
                .expect("running sh");
            assert_ok(&out, &format!("{shell:?}: device_group_var {address}"));
            assert_eq!(
                stdout(&out),
                want,
                "{shell:?}: device_group_var {address:?}"
            );
        }
    }
}

/// A container made before the device groups (both devices in the default
/// group), and one whose veth alone left the group: each device is still
/// deleted, by name, and no other container's device goes with them.
#[test]
fn devices_outside_the_group_are_deleted_by_name() {
    let Some(depot) = depot("groupless") else {
        return;
    };
    let old = depot.create("groupless", &[]);
    let half = depot.create("half", &[]);
    let bystander = depot.create("bystander", &[]);
    ungroup(&format!("w-{}-0", old.id));
    ungroup(&format!("w-{}-2", old.id));
    ungroup(&format!("w-{}-0", half.id));
    destroy(old);
    destroy(half);
    let group = device_group(&bystander);
    for dev in [
        format!("w-{}-0", bystander.id),
        format!("w-{}-2", bystander.id),
    ] {
        assert_eq!(
            netdev_group(&dev),
            group,
            "{dev} after its neighbours' destroy"
        );
    }
    destroy(bystander);
}

/// The instance's destroy.sh run alone, as a Warden server runs it before
/// root/destroy.sh: the container, its groups, devices and chains gone, and
/// its writable layer (removed while the kernel unregisters the devices),
/// but the jobs' state left for whoever reaps the jobs' helpers; a second
/// run does nothing; root/destroy.sh (wardenctl destroy) removes the rest.
#[test]
fn destroy_sh_alone_leaves_the_jobs_and_the_scripts() {
    let Some(depot) = depot("alone") else {
        return;
    };
    let c = depot.create("alone", &[]);
    let out = c.run(&["/bin/sh", "-c", "echo data > /home/vcap/file"]);
    assert_ok(&out, "a job writing to the writable layer");
    let path = depot.path(&c.handle);
    assert!(
        path.join("tmp/rootfs/home/vcap/file").exists(),
        "no file in the upper layer"
    );
    for _ in 0..2 {
        let out = Command::new(path.join("destroy.sh"))
            .stdin(Stdio::null())
            .output()
            .expect("running destroy.sh");
        assert_ok(&out, "destroy.sh");
    }
    assert!(path.join("run/destroyed").exists(), "no run/destroyed");
    for gone in ["tmp/rootfs", "tmp/work", "run/wshd.pid"] {
        assert!(!path.join(gone).exists(), "{gone} is left after destroy.sh");
    }
    for kept in ["jobs/1", "etc/config", "destroy.sh"] {
        assert!(path.join(kept).exists(), "{kept} is gone after destroy.sh");
    }
    assert_no_devices(&c.id);
    for entry in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let cg = entry.path().join(format!("instance-{}", c.id));
        assert!(
            !cg.exists(),
            "cgroup {} is left after destroy.sh",
            cg.display()
        );
    }
    let rules = run_text("iptables-save", &[]);
    assert!(
        !rules.contains(&format!("w-{}-", c.id)),
        "rules are left:\n{rules}"
    );
    c.destroy();
}

/// /dev/shm filled under a 32 MiB memory limit: tmpfs pages count against
/// the limit and cannot be reclaimed, so a /dev/shm that could hold the
/// whole limit turned a full /dev/shm into an OOM kill of the container
/// (the original's /dev/shm was a plain directory of the writable layer).
/// limit-memory now gives /dev/shm at most half the limit: the write stops
/// with ENOSPC and the container stays active.
#[test]
fn shm_fills_under_a_memory_limit_without_oom() {
    let Some(depot) = depot("shm") else {
        return;
    };
    for round in 0..3 {
        let handle = format!("shm{round}");
        let c = depot.create(&handle, &[]);
        let out = depot.ctl(&["limit-memory", &handle, "33554432"]);
        assert_ok(&out, "limit-memory 32 MiB");
        let out = c.run(&[
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/shm/fill bs=1048576 count=31 2>/dev/null; \
             stat -c %s /dev/shm/fill; rm -f /dev/shm/fill",
        ]);
        assert_ok(&out, "31 MiB into /dev/shm");
        assert_eq!(stdout(&out), format!("{}\n", 16 << 20), "round {round}");
        let info = info_json(&c);
        assert_eq!(info["state"], "active", "round {round}: {info}");
        let events = info["events"].as_array().cloned().unwrap_or_default();
        assert!(events.is_empty(), "round {round}: {events:?}");
        // Raised again, /dev/shm gets its own size back (64 MiB < half).
        let out = depot.ctl(&["limit-memory", &handle, "268435456"]);
        assert_ok(&out, "limit-memory 256 MiB");
        let out = c.run(&["sh", "-c", "grep ' /dev/shm ' /proc/mounts"]);
        assert!(stdout(&out).contains("size=65536k"), "{}", stdout(&out));
        destroy(c);
    }
}
