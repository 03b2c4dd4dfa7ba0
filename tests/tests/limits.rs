//! Limits, networking and info, as root, in real containers: memory with
//! OOM, disk (the writable layer's own ext4 image), cpu shares, bandwidth,
//! net-out and net-in. Traffic goes only between this test's containers and
//! network namespaces it creates itself. Every container is destroyed and
//! checked to leave nothing behind (chains, qdiscs, ifb, veths, cgroups,
//! loop devices, watcher processes).

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tests::ctl::*;
use tests::netns::TestNetns;

/// This binary's networks: 10.254.192.0/18, away from wardenctl.rs's.
fn depot(test: &str) -> Option<TestDepot> {
    TestDepot::new_in(test, 192, 64)
}

fn info_json(c: &Container<'_>) -> serde_json::Value {
    serde_json::from_str(&c.info()).expect("info --json is JSON")
}

fn ctl_ok(depot: &TestDepot, args: &[&str]) -> String {
    let out = depot.ctl(args);
    assert_ok(&out, &args.join(" "));
    stdout(&out)
}

/// `wardenctl ARGS` fails with CODE: a usage error (2) with the usage,
/// anything else one line naming the program.
fn refused(depot: &TestDepot, args: &[&str], code: i32) {
    let out = depot.ctl(args);
    tests::ctl::assert_refused_with(&out, code, &args.join(" "));
}

fn v1_group(controller: &str, id: &str) -> Option<PathBuf> {
    let p = PathBuf::from(format!("/sys/fs/cgroup/{controller}/instance-{id}"));
    p.is_dir().then_some(p)
}

fn read_trim(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn memory_limit_and_oom() {
    let Some(depot) = depot("memory") else {
        return;
    };
    let c = depot.create("mem", &[]);
    let limit = (48u64 << 20).to_string();
    assert_eq!(
        ctl_ok(&depot, &["limit-memory", "mem", &limit]),
        limit + "\n"
    );
    assert_eq!(
        ctl_ok(&depot, &["limit-memory", "mem"]),
        format!("{}\n", 48u64 << 20)
    );
    if let Some(group) = v1_group("memory", &c.id) {
        assert_eq!(
            read_trim(&group.join("memory.limit_in_bytes")),
            (48u64 << 20).to_string()
        );
        if group.join("memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                read_trim(&group.join("memory.memsw.limit_in_bytes")),
                (48u64 << 20).to_string()
            );
        }
    }
    // Bad values are refused and the limit stays.
    refused(&depot, &["limit-memory", "mem", "1000"], 5);
    refused(&depot, &["limit-memory", "mem", "-5"], 2);
    refused(&depot, &["limit-memory", "mem", "99999999999999999999"], 2);
    refused(&depot, &["limit-memory", "nosuch", "100000000"], 3);
    assert_eq!(
        ctl_ok(&depot, &["limit-memory", "mem"]),
        format!("{}\n", 48u64 << 20)
    );
    assert!(info_json(&c)["events"].as_array().unwrap().is_empty());

    // A shell variable of 100 MB: the shell's heap grows past the limit.
    let out = c.run(&[
        "sh",
        "-c",
        "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo alive",
    ]);
    assert!(
        !stdout(&out).contains("alive"),
        "the allocation survived the limit"
    );
    wait_for("the container to stop", Duration::from_secs(30), || {
        info_json(&c)["state"] == "stopped"
    });
    let info = info_json(&c);
    assert!(
        info["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "out of memory"),
        "{info}"
    );
    // Limits are for running containers.
    refused(&depot, &["limit-memory", "mem", "100000000"], 8);
    c.destroy();
}

#[test]
fn disk_limits() {
    let Some(depot) = depot("disk") else {
        return;
    };
    let limited = depot.create(
        "limited",
        &["--disk-limit", "16777216", "--disk-inode-limit", "300"],
    );
    let free = depot.create("free", &[]);
    let limits = ctl_ok(&depot, &["limit-disk", "limited"]);
    assert!(limits.contains("byte_limit: 16777216\n"), "{limits}");
    assert!(limits.contains("block_limit: 16384\n"), "{limits}");
    assert!(limits.contains("inode_limit: 300\n"), "{limits}");
    let image = depot.path("limited").join("tmp/disk.img");
    let loops = run_text("losetup", &["-a"]);
    assert!(
        loops.contains(&image.to_string_lossy().into_owned()),
        "{loops}"
    );

    // Most of the limit can be used; past it, ENOSPC.
    let out = limited.run(&["sh", "-c", "dd if=/dev/zero of=/tmp/a bs=1M count=15 2>&1"]);
    assert_ok(&out, "writing 15 MiB of 16");
    let stat = info_json(&limited)["disk_stat"].clone();
    assert!(
        stat["bytes_used"].as_u64().unwrap() >= 15 << 20,
        "disk_stat {stat}"
    );
    let out = limited.run(&["sh", "-c", "dd if=/dev/zero of=/tmp/b bs=1M count=2 2>&1"]);
    assert!(!out.status.success(), "writing past the limit succeeded");
    assert!(
        stdout(&out).contains("No space left on device"),
        "{}",
        stdout(&out)
    );
    limited.sh("rm -f /tmp/a /tmp/b");

    // Inodes: files until the filesystem refuses.
    let count = limited.sh(
        "mkdir /tmp/many; i=0; while touch /tmp/many/$i 2>/dev/null; do i=$((i+1)); \
         [ $i -lt 5000 ] || break; done; echo $i",
    );
    let count: u32 = count.trim().parse().unwrap();
    assert!(
        (295..=320).contains(&count),
        "{count} files fit under an inode limit of 300"
    );
    let inodes = info_json(&limited)["disk_stat"]["inodes_used"]
        .as_u64()
        .unwrap();
    assert!(inodes >= u64::from(count), "inodes_used {inodes}");

    // The other container is not limited by it.
    let out = free.run(&["sh", "-c", "dd if=/dev/zero of=/tmp/a bs=1M count=24 2>&1"]);
    assert_ok(&out, "writing 24 MiB without a limit");
    let out = free.sh("i=0; while [ $i -lt 500 ]; do : > /tmp/f$i; i=$((i+1)); done; echo ok");
    assert_eq!(out, "ok\n");

    // Refusals leave the limit as it was.
    refused(
        &depot,
        &["limit-disk", "free", "--byte-limit", "100000000"],
        12,
    );
    refused(
        &depot,
        &["limit-disk", "limited", "--byte-limit", "1000"],
        5,
    );
    refused(
        &depot,
        &["limit-disk", "limited", "--byte-soft", "99999999"],
        5,
    );
    refused(
        &depot,
        &[
            "limit-disk",
            "limited",
            "--byte-limit",
            "9000000",
            "--block-limit",
            "1",
        ],
        5,
    );
    refused(
        &depot,
        &["limit-disk", "limited", "--byte-limit", "8388608"],
        12,
    );
    limited.sh("rm -rf /tmp/many; dd if=/dev/zero of=/tmp/fill bs=1M count=10 2>/dev/null");
    refused(
        &depot,
        &["limit-disk", "limited", "--byte-limit", "4194304"],
        5,
    );
    // Growing needs online resize (CAP_SYS_RESOURCE); without it, refused.
    let out = depot.ctl(&["limit-disk", "limited", "--byte-limit", "33554432"]);
    if out.status.success() {
        limited.sh("rm -f /tmp/fill; dd if=/dev/zero of=/tmp/a bs=1M count=24 2>&1");
    } else {
        assert_code(&out, 12, "growing without CAP_SYS_RESOURCE");
    }
    let soft = ctl_ok(&depot, &["limit-disk", "limited", "--inode-soft", "200"]);
    assert!(soft.contains("inode_soft: 200\n"), "{soft}");
    assert!(ctl_ok(&depot, &["limit-disk", "limited"]).contains("inode_limit: 300\n"));
    refused(
        &depot,
        &[
            "create",
            "--handle",
            "x",
            "--rootfs",
            "/",
            "--disk-limit",
            "100",
        ],
        5,
    );
    refused(
        &depot,
        &[
            "create",
            "--handle",
            "x",
            "--rootfs",
            "/",
            "--disk-limit",
            "999999999999999999",
        ],
        5,
    );
    assert!(!depot.path("x").exists());

    limited.destroy();
    free.destroy();
    let loops = run_text("losetup", &["-a"]);
    assert!(
        !loops.contains(&image.to_string_lossy().into_owned()),
        "{loops}"
    );
}

/// cpuacct usage (ns) of a container's group.
fn cpu_usage(id: &str) -> u64 {
    let v1 = PathBuf::from(format!(
        "/sys/fs/cgroup/cpuacct/instance-{id}/cpuacct.usage"
    ));
    if v1.exists() {
        return read_trim(&v1).parse().unwrap();
    }
    let stat = read_trim(Path::new(&format!("/sys/fs/cgroup/instance-{id}/cpu.stat")));
    stat.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1000
}

fn pin_to_one_cpu(id: &str, cpu: &str) {
    let group = v1_group("cpuset", id)
        .unwrap_or_else(|| PathBuf::from(format!("/sys/fs/cgroup/instance-{id}")));
    fs::write(group.join("cpuset.cpus"), cpu).expect("pinning to one cpu");
}

#[test]
fn cpu_shares_divide_a_core() {
    let Some(depot) = depot("cpu") else {
        return;
    };
    let low = depot.create("low", &[]);
    let high = depot.create("high", &[]);
    let v2 = v1_group("cpu", &low.id).is_none();
    let expect = |shares: u64| {
        if v2 {
            1 + ((shares - 2) * 9999) / 262142
        } else {
            shares
        }
    };
    assert_eq!(
        ctl_ok(&depot, &["limit-cpu", "low", "256"]),
        format!("{}\n", expect(256))
    );
    assert_eq!(
        ctl_ok(&depot, &["limit-cpu", "high", "768"]),
        format!("{}\n", expect(768))
    );
    assert_eq!(
        ctl_ok(&depot, &["limit-cpu", "low"]),
        format!("{}\n", expect(256))
    );
    if let Some(group) = v1_group("cpu", &low.id) {
        assert_eq!(read_trim(&group.join("cpu.shares")), "256");
    }
    refused(&depot, &["limit-cpu", "low", "1"], 5);
    refused(&depot, &["limit-cpu", "low", "999999999"], 5);
    refused(&depot, &["limit-cpu", "low", "-3"], 2);
    assert_eq!(
        ctl_ok(&depot, &["limit-cpu", "low"]),
        format!("{}\n", expect(256))
    );

    // Both on the last cpu, both busy: time divides about 1:3.
    let cpu = (std::thread::available_parallelism().map_or(1, |n| n.get()) - 1).to_string();
    pin_to_one_cpu(&low.id, &cpu);
    pin_to_one_cpu(&high.id, &cpu);
    low.spawn("while :; do :; done");
    high.spawn("while :; do :; done");
    std::thread::sleep(Duration::from_millis(500));
    let (l0, h0) = (cpu_usage(&low.id), cpu_usage(&high.id));
    std::thread::sleep(Duration::from_secs(2));
    let (l1, h1) = (cpu_usage(&low.id), cpu_usage(&high.id));
    let ratio = (h1 - h0) as f64 / (l1 - l0).max(1) as f64;
    assert!(
        (2.0..=4.5).contains(&ratio),
        "cpu time high/low = {ratio:.2} ({} ns / {} ns)",
        h1 - h0,
        l1 - l0
    );
    let stat = info_json(&high)["cpu_stat"].clone();
    assert!(stat["usage"].as_u64().unwrap() >= h1, "{stat}");
    assert!(stat["user"].as_u64().is_some() && stat["system"].as_u64().is_some());
    low.destroy();
    high.destroy();
}

/// A job in the container that receives one tcp connection on PORT into
/// /tmp/got-PORT (its stdin held open: busybox nc stops reading the socket
/// when its stdin ends).
fn tcp_sink(c: &Container<'_>, port: u16) -> PathBuf {
    c.spawn(&format!("sleep 120 | nc -l -p {port} > /tmp/got-{port}"));
    wait_listening(c, port);
    c.upper(&format!("/tmp/got-{port}"))
}

/// Waits until FILE holds BYTES.
fn wait_size(file: &Path, bytes: u64) {
    wait_for(
        &format!("{bytes} bytes in {}", file.display()),
        Duration::from_secs(60),
        || fs::metadata(file).is_ok_and(|m| m.len() >= bytes),
    );
}

fn wait_listening(c: &Container<'_>, port: u16) {
    let needle = format!(":{port} ");
    wait_for("the listener", Duration::from_secs(10), || {
        c.sh("netstat -ltn 2>/dev/null || true").contains(&needle)
    });
}

/// `nc` from FROM to TO_IP:PORT sending BYTES; whether it connected.
fn tcp_send(from: &Container<'_>, to_ip: &str, port: u16, bytes: u64) -> Output {
    from.run(&[
        "sh",
        "-c",
        &format!("head -c {bytes} /dev/zero | nc -w 3 {to_ip} {port}"),
    ])
}

#[test]
fn bandwidth_is_shaped() {
    let Some(depot) = depot("bandwidth") else {
        return;
    };
    let rx = depot.create("rx", &[]);
    let tx = depot.create("tx", &[]);
    let rx_ip = json_str(&rx.info(), "container_ip").unwrap();
    ctl_ok(
        &depot,
        &["net-out", "tx", "--network", &rx_ip, "--port", "5001"],
    );
    ctl_ok(
        &depot,
        &[
            "limit-bandwidth",
            "rx",
            "--rate",
            "8000000",
            "--burst",
            "10000",
        ],
    );
    for dev in [format!("w-{}-0", rx.id), format!("w-{}-2", rx.id)] {
        let q = run_text("tc", &["qdisc", "show", "dev", &dev]);
        assert!(q.contains("tbf") && q.contains("rate 8Mbit"), "{dev}: {q}");
    }
    let stat = info_json(&rx)["bandwidth_stat"].clone();
    assert_eq!(stat["in_rate"], 8_000_000, "{stat}");
    assert_eq!(stat["out_rate"], 8_000_000, "{stat}");
    assert_eq!(stat["in_burst"], 10000, "{stat}");

    refused(
        &depot,
        &["limit-bandwidth", "rx", "--rate", "0", "--burst", "10000"],
        5,
    );
    refused(
        &depot,
        &[
            "limit-bandwidth",
            "rx",
            "--rate",
            "8000000",
            "--burst",
            "10",
        ],
        5,
    );
    refused(
        &depot,
        &["limit-bandwidth", "rx", "--rate", "-8", "--burst", "10000"],
        2,
    );
    let q = run_text("tc", &["qdisc", "show", "dev", &format!("w-{}-0", rx.id)]);
    assert!(q.contains("rate 8Mbit"), "the limit stays: {q}");

    // 2 MB at 8 Mbit/s: about two seconds (unshaped it takes milliseconds).
    let got = tcp_sink(&rx, 5001);
    let start = Instant::now();
    let out = tcp_send(&tx, &rx_ip, 5001, 2_000_000);
    assert_ok(&out, "sending 2 MB");
    wait_size(&got, 2_000_000);
    let elapsed = start.elapsed();
    assert_eq!(fs::metadata(&got).unwrap().len(), 2_000_000);
    assert!(
        (1.2..=30.0).contains(&elapsed.as_secs_f64()),
        "2 MB at 8 Mbit/s took {elapsed:?}"
    );
    rx.destroy();
    tx.destroy();
}

/// A udp exchange run by the host's python3 inside a container's network
/// namespace (busybox nc has no udp).
fn in_netns(pid: &str, script: &str) -> Child {
    Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["python3", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsenter python3")
}

fn udp_reaches(from_pid: &str, to_pid: &str, to_ip: &str, port: u16) -> bool {
    let server = in_netns(
        to_pid,
        &format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.bind(('{to_ip}',{port}))\ns.settimeout(3)\nprint('ready',flush=True)\n\
             try:\n  d,_=s.recvfrom(100)\n  print(d.decode())\nexcept OSError:\n  print('nothing')\n"
        ),
    );
    let mut server = server;
    let mut stdout = server.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    stdout.read_exact(&mut ready).unwrap();
    let client = in_netns(
        from_pid,
        &format!(
            "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             for i in range(5):\n  s.sendto(b'hello',('{to_ip}',{port}))\n  time.sleep(0.1)\n"
        ),
    );
    let _ = client.wait_with_output();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    server.wait().unwrap();
    rest.contains("hello")
}

#[test]
fn net_out_opens_only_what_it_names() {
    let Some(depot) = depot("netout") else {
        return;
    };
    let a = depot.create("a", &[]);
    let b = depot.create("b", &[]);
    let info_a = info_json(&a);
    let info_b = info_json(&b);
    let b_ip = info_b["container_ip"].as_str().unwrap().to_string();
    let a_pid = info_a["wshd_pid"].to_string();
    let b_pid = info_b["wshd_pid"].to_string();

    // Before: containers cannot reach each other, tcp nor udp; tcp is
    // refused at once.
    let got = tcp_sink(&b, 5002);
    assert_refused_at_once(&a, &b_ip, 5002, "a to b before net-out");
    assert!(!udp_reaches(&a_pid, &b_pid, &b_ip, 5003));

    let chain = format!("warden-i-{}", a.id);
    let rules_before = run_text("iptables", &["-w", "-S", &chain]);
    for (args, code) in [
        (vec!["--network", "10.0.0.0/33"], 5),
        (vec!["--network", "10.0.0.300"], 5),
        (vec!["--network", "10.0.0.9-10.0.0.1"], 5),
        (vec!["--port", "70000"], 5),
        (vec!["--port", "0"], 5),
        (vec!["--port-range", "90:80"], 5),
        (vec!["--protocol", "tcp", "--icmp-type", "8"], 5),
        (vec!["--protocol", "icmp", "--icmp-code", "1"], 5),
        (vec!["--protocol", "all", "--port", "80"], 5),
        (vec!["--protocol", "sctp"], 5),
        (vec![], 5),
    ] {
        let mut full = vec!["net-out", "a"];
        full.extend(args);
        refused(&depot, &full, code);
    }
    refused(&depot, &["net-out", "nosuch", "--port", "80"], 3);
    assert_eq!(run_text("iptables", &["-w", "-S", &chain]), rules_before);

    // After: exactly what was allowed.
    ctl_ok(
        &depot,
        &["net-out", "a", "--network", &b_ip, "--port", "5002"],
    );
    let out = tcp_send(&a, &b_ip, 5002, 10);
    assert_ok(&out, "a to b after net-out");
    wait_size(&got, 10);
    assert!(
        !udp_reaches(&a_pid, &b_pid, &b_ip, 5003),
        "udp was not allowed"
    );
    ctl_ok(
        &depot,
        &[
            "net-out",
            "a",
            "--network",
            &format!("{b_ip}/32"),
            "--port-range",
            "5003:5004",
            "--protocol",
            "udp",
            "--log",
        ],
    );
    assert!(
        udp_reaches(&a_pid, &b_pid, &b_ip, 5003),
        "udp after net-out"
    );
    ctl_ok(
        &depot,
        &[
            "net-out",
            "a",
            "--protocol",
            "icmp",
            "--icmp-type",
            "8",
            "--icmp-code",
            "0",
        ],
    );
    // Only a's rules changed: b still cannot reach a.
    let a_ip = info_a["container_ip"].as_str().unwrap().to_string();
    tcp_sink(&a, 5005);
    assert_refused_at_once(&b, &a_ip, 5005, "b to a");
    // Nor anything else a's rules do not name: a port of b not allowed.
    tcp_sink(&b, 5006);
    assert_refused_at_once(&a, &b_ip, 5006, "a to b on a port not named");

    // The host (its end of a's veth) is refused without ALLOW_HOST_ACCESS,
    // whatever net-out allowed.
    let host_ip: Ipv4Addr = info_a["host_ip"].as_str().unwrap().parse().unwrap();
    let listener = TcpListener::bind((host_ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    assert_refused_at_once(&a, &host_ip.to_string(), port, "a to the host");
    assert!(listener.accept().is_err(), "the host got a connection");
    a.destroy();
    b.destroy();
}

#[test]
fn net_in_forwards_a_host_port() {
    let Some(depot) = depot("netin") else {
        return;
    };
    let c = depot.create("srv", &[]);
    // A /30 of this depot's pool that no container got (the pool's last).
    let base = depot.pool.trim_end_matches(".0/24").to_string();
    let pid = std::process::id();
    let netns = TestNetns::new(
        &format!("wlt-in-{pid}"),
        &format!("wlt{}", pid % 100000),
        &format!("{base}.253"),
        &format!("{base}.254"),
    );

    c.spawn("while :; do echo hello-from-container | nc -l -p 8080; done");
    wait_listening(&c, 8080);
    // A port nothing on the host listens on (the kernel's pick, released).
    let host_port = TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    refused(
        &depot,
        &[
            "net-in",
            "srv",
            "--host-port",
            "0",
            "--container-port",
            "8080",
        ],
        5,
    );
    refused(
        &depot,
        &[
            "net-in",
            "srv",
            "--host-port",
            "70000",
            "--container-port",
            "8080",
        ],
        2,
    );
    let out = ctl_ok(
        &depot,
        &[
            "net-in",
            "srv",
            "--host-port",
            &host_port.to_string(),
            "--container-port",
            "8080",
        ],
    );
    assert_eq!(out, format!("{host_port} 8080\n"));
    refused(
        &depot,
        &["net-in", "srv", "--host-port", &host_port.to_string()],
        9,
    );
    // A port something on the host listens on is refused too.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    refused(&depot, &["net-in", "srv", "--host-port", &busy_port], 9);
    drop(busy);

    let client = Command::new("ip")
        .args(["netns", "exec", &netns.name, "python3", "-c"])
        .arg(format!(
            "import socket\ns=socket.create_connection(('{base}.253',{host_port}),timeout=5)\n\
             print(s.recv(100).decode().strip())\n"
        ))
        .output()
        .unwrap();
    assert_ok(&client, "client in the test namespace");
    assert_eq!(stdout(&client), "hello-from-container\n");

    // A port from the pool when none is asked for; both printed.
    let out = ctl_ok(&depot, &["net-in", "srv", "--container-port", "8081"]);
    let ports: Vec<u16> = out.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(ports.len(), 2, "{out}");
    assert_eq!(ports[1], 8081);
    drop(netns);
    c.destroy();
}

#[test]
fn relative_rootfs_is_canonicalized() {
    let Some(depot) = depot("relroot") else {
        return;
    };
    let rootfs = tests::paths::rootfs();
    let parent = rootfs.parent().unwrap();
    let name = rootfs.file_name().unwrap().to_str().unwrap();
    let out = depot
        .command()
        .current_dir(parent)
        .args([
            "create",
            "--handle",
            "rel",
            "--pool-network",
            &depot.pool,
            "--rootfs",
            &format!("./{name}/../{name}"),
        ])
        .output()
        .unwrap();
    assert_ok(&out, "create with a relative rootfs");
    let config = fs::read_to_string(depot.path("rel").join("etc/config")).unwrap();
    let expected = format!("rootfs_path='{}'", rootfs.canonicalize().unwrap().display());
    assert!(config.contains(&expected), "{config}");
    let json = stdout(&depot.ctl(&["info", "rel", "--json"]));
    let id = json_str(&json, "id").unwrap();
    assert_ok(&depot.ctl(&["destroy", "rel"]), "destroy");
    assert_gone(&depot, "rel", &id);
    let _ = std::io::stdout().flush();
}
