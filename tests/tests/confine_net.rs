//! The network part of container confinement, as root, in real containers:
//! egress denied by default and refused at once (tcp reset, icmp port
//! unreachable) until net-out names it, the host and other containers
//! refused alike, forged source addresses dropped (raw warden-source), IPv6
//! off on both ends of the veth, ICMP datagram sockets (ping without
//! CAP_NET_RAW), and root/net.sh setup idempotent over an older rule set.
//!
//! Traffic goes only to loopback, this test's containers and network
//! namespaces it creates itself (a veth to the host, addresses of its own
//! pool's last /30). Every container, namespace and server is removed also
//! when a test fails (drop guards), and each test checks that nothing of
//! its own is left: no rule naming a container id in any table, no w-*
//! device, no namespace.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tests::ctl::*;
use tests::netns::TestNetns;

/// This binary's networks: one /24 per test from 10.254.4.0/24 to
/// 10.254.15.0/24, between the default pool (10.254.0.0/22) and
/// torture_wardenctl.rs's 10.254.16.0/20; so at most 12 tests here.
fn depot(test: &str) -> Option<TestDepot> {
    let depot = TestDepot::new_in(test, 4, 16)?;
    let third: u32 = depot.pool.split('.').nth(2).unwrap().parse().unwrap();
    assert!(
        depot.pool.starts_with("10.254.") && (4..16).contains(&third),
        "pool {} is outside 10.254.4.0-10.254.15.255: more than 12 tests in confine_net.rs?",
        depot.pool
    );
    Some(depot)
}

fn ctl_ok(depot: &TestDepot, args: &[&str]) -> String {
    let out = depot.ctl(args);
    assert_ok(&out, &args.join(" "));
    stdout(&out)
}

fn info_json(c: &Container<'_>) -> serde_json::Value {
    serde_json::from_str(&c.info()).expect("info --json is JSON")
}

fn field(c: &Container<'_>, key: &str) -> String {
    let info = info_json(c);
    match &info[key] {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The host's python3, readable by any uid (a pyenv shim under /root is not).
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn sh(script: &str) -> Output {
    let out = Command::new("sh").args(["-ec", script]).output().unwrap();
    assert_ok(&out, script);
    out
}

/// `python3 -c SCRIPT ARGS` in the network namespace of the container's
/// wshd (pid), as host root, or as UID:GID with no capabilities, or as root
/// without CAP_NET_RAW.
enum As {
    Root,
    User(u32, u32),
    RootWithoutNetRaw,
}

fn py_in_container(pid: &str, who: As, script: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/proc/{pid}/ns/net"));
    match who {
        As::Root => {}
        As::User(uid, gid) => {
            cmd.args([
                "setpriv",
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ]);
        }
        As::RootWithoutNetRaw => {
            cmd.args([
                "setpriv",
                "--inh-caps=-net_raw",
                "--bounding-set=-net_raw",
                "--",
            ]);
        }
    }
    cmd.args([python(), "-c", script])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("nsenter python3")
}

/// A network namespace with a veth to the host, in the depot's pool's last
/// /30 (.253 on the host end, .254 inside, routed through the host), and
/// the servers the test runs in it. All removed on drop.
struct Netns {
    // Fields drop in order: the servers before their namespace.
    servers: Servers,
    ns: TestNetns,
}

/// The servers a test runs in its namespace, killed on drop.
#[derive(Default)]
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl std::ops::Deref for Netns {
    type Target = TestNetns;
    fn deref(&self) -> &TestNetns {
        &self.ns
    }
}

impl Netns {
    fn new(depot: &TestDepot, tag: char) -> Self {
        let pid = std::process::id();
        let base = depot.pool.trim_end_matches(".0/24");
        Netns {
            ns: TestNetns::new(
                &format!("wcn-{tag}-{pid}"),
                &format!("wcn{tag}{}", pid % 100000),
                &format!("{base}.253"),
                &format!("{base}.254"),
            ),
            servers: Servers::default(),
        }
    }

    /// A server in the namespace on its address and PORT (tcp or udp): it
    /// appends "SOURCE DATA" to LOG for every connection or datagram.
    fn serve(&mut self, proto: &str, port: u16, log: &Path) {
        let script = match proto {
            "tcp" => TCP_SERVER,
            "udp" => UDP_SERVER,
            _ => unreachable!(),
        };
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, python(), "-c", script])
            .args([&self.ip, &port.to_string(), log.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 in the test namespace");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.servers.0.push(child);
        assert_eq!(line, "ready\n", "the {proto} server on port {port}");
    }

    /// Stops its servers, removes it and checks nothing of it is left.
    fn remove(self) {
        let Netns { servers, ns } = self;
        drop(servers);
        ns.remove();
    }
}

const TCP_SERVER: &str = "
import socket, sys
ip, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, port))
s.listen(16)
print('ready', flush=True)
while True:
    c, peer = s.accept()
    c.settimeout(5)
    data = b''
    try:
        while True:
            d = c.recv(4096)
            if not d:
                break
            data += d
    except OSError:
        pass
    c.close()
    with open(log, 'a') as f:
        f.write('%s %s\\n' % (peer[0], data.decode(errors='replace').strip()))
";

const UDP_SERVER: &str = "
import socket, sys
ip, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((ip, port))
print('ready', flush=True)
while True:
    d, peer = s.recvfrom(4096)
    with open(log, 'a') as f:
        f.write('%s %s\\n' % (peer[0], d.decode(errors='replace').strip()))
";

/// Sends one datagram to IP:PORT on a connected udp socket and waits for an
/// answer: prints `refused SECONDS` (an icmp port unreachable came back),
/// `answer` or `timeout`.
const UDP_PROBE: &str = "
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect((sys.argv[1], int(sys.argv[2])))
t = time.monotonic()
try:
    s.send(b'probe')
    s.recv(100)
    print('answer')
except ConnectionRefusedError:
    print('refused %.3f' % (time.monotonic() - t))
except socket.timeout:
    print('timeout')
";

/// Sends datagrams from SOURCE (bound: the address must be the
/// namespace's) to IP:PORT, each `TAG N`.
const UDP_SEND: &str = "
import socket, sys
src, ip, port, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 0))
for i in range(count):
    s.sendto(('%s %d' % (tag, i)).encode(), (ip, port))
";

/// One ICMP echo to ADDR on a datagram socket (no CAP_NET_RAW needed; the
/// namespace's ping_group_range must hold the caller's group): prints
/// `reply`, `timeout`, or the error of socket() (`socket EACCES`).
const ICMP_DGRAM_ECHO: &str = "
import errno, socket, sys
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
except OSError as e:
    print('socket', errno.errorcode[e.errno])
    sys.exit(0)
s.settimeout(2)
s.sendto(b'\\x08\\x00\\x00\\x00\\x00\\x00\\x00\\x01warden', (sys.argv[1], 0))
try:
    while True:
        d, _ = s.recvfrom(100)
        if d[0] == 0:
            print('reply')
            break
except socket.timeout:
    print('timeout')
except OSError as e:
    print('error', errno.errorcode[e.errno])
";

/// Whether a raw ICMP socket can be made: `ok` or the errno's name.
const RAW_SOCKET: &str = "
import errno, socket
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    print('ok')
except OSError as e:
    print(errno.errorcode[e.errno])
";

/// A tcp connection to [ADDR%IFACE]:PORT: `connected` or the errno's name.
const TCP6_CONNECT: &str = "
import errno, socket, sys
addr, iface, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.settimeout(4)
try:
    s.connect((addr, port, 0, socket.if_nametoindex(iface)))
    print('connected')
except socket.timeout:
    print('timeout')
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
";

/// A udp datagram from C's namespace to IP:PORT is answered at once with an
/// icmp port unreachable.
fn assert_udp_refused_at_once(pid: &str, ip: &str, port: u16, what: &str) {
    let out = py_in_container(pid, As::Root, UDP_PROBE, &[ip, &port.to_string()]);
    assert_ok(&out, what);
    let text = stdout(&out);
    let secs: f64 = text
        .strip_prefix("refused ")
        .unwrap_or_else(|| panic!("{what}: {text}"))
        .trim()
        .parse()
        .unwrap();
    assert!(secs < 2.0, "{what}: refused only after {secs:.2} s");
}

fn read_log(log: &Path) -> String {
    fs::read_to_string(log).unwrap_or_default()
}

/// Waits for DATA from the container at FROM_IP in the namespace's LOG.
/// The source may also be the host end of the namespace's veth: when some
/// `wardenctl setup --pool-network` on this host named a network holding
/// this test's pool, its traffic leaving through the namespace's veth (not
/// a w-+ device) is masqueraded.
fn wait_log(log: &Path, ns: &Netns, from_ip: &str, data: &str) {
    let wanted = [
        format!("{from_ip} {data}"),
        format!("{} {data}", ns.host_ip),
    ];
    let start = std::time::Instant::now();
    while !read_log(log).lines().any(|l| wanted.iter().any(|w| w == l)) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {:?} in {}, which holds {:?}",
            wanted[0],
            log.display(),
            read_log(log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nothing on the host names the container any more: no rule in any
/// iptables table, no device, no chain (and what assert_gone checks).
fn destroy(c: Container<'_>) {
    let id = c.id.clone();
    c.destroy();
    let rules = run_text("iptables-save", &[]);
    assert!(
        !rules.contains(&id),
        "a rule names {id} after destroy:\n{rules}"
    );
    for dev in fs::read_dir("/sys/class/net").unwrap().flatten() {
        let name = dev.file_name().to_string_lossy().into_owned();
        assert!(!name.contains(&id), "device {name} is left");
    }
}

/// The rules of a chain that mention NEEDLE.
fn rules_with(table: &str, chain: &str, needle: &str) -> Vec<String> {
    run_text("iptables", &["-w", "-t", table, "-S", chain])
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn egress_is_refused_at_once_until_net_out() {
    let Some(depot) = depot("egress") else {
        return;
    };
    let mut ns = Netns::new(&depot, 'e');
    let log = depot.data("egress").join("tcp.log");
    ns.serve("tcp", 7001, &log);
    ns.serve("tcp", 7002, &log);
    ns.serve("udp", 7003, &depot.data("egress").join("udp.log"));
    let c = depot.create("out", &[]);
    let other = depot.create("other", &[]);
    let c_ip = field(&c, "container_ip");
    let pid = field(&c, "wshd_pid");

    // Default: nothing is reachable, and the refusal is immediate.
    assert_refused_at_once(&c, &ns.ip, 7001, "before net-out");
    assert_refused_at_once(&c, &ns.ip, 7002, "before net-out");
    assert_udp_refused_at_once(&pid, &ns.ip, 7003, "udp before net-out");
    assert_eq!(read_log(&log), "", "the namespace got a connection");

    // net-out opens exactly what it names, for that container only.
    ctl_ok(
        &depot,
        &[
            "net-out",
            "out",
            "--network",
            &format!("{}/32", ns.ip),
            "--port",
            "7001",
        ],
    );
    let (rc, _, err) = nc_attempt(&c, &ns.ip, 7001);
    assert_eq!(rc, 0, "after net-out: {err}");
    wait_log(&log, &ns, &c_ip, "hello");
    assert_refused_at_once(&c, &ns.ip, 7002, "a port net-out did not name");
    assert_udp_refused_at_once(&pid, &ns.ip, 7003, "udp, not named");
    assert_refused_at_once(&other, &ns.ip, 7001, "another container");
    assert_eq!(read_log(&log).lines().count(), 1, "{}", read_log(&log));

    destroy(c);
    destroy(other);
    ns.remove();
}

#[test]
fn host_and_other_containers_are_refused_at_once() {
    let Some(depot) = depot("host") else {
        return;
    };
    let a = depot.create("a", &[]);
    let b = depot.create("b", &[]);
    let a_host_ip = field(&a, "host_ip");
    let b_host_ip = field(&b, "host_ip");
    let b_ip = field(&b, "container_ip");
    let a_pid = field(&a, "wshd_pid");

    // The host, on every address of its own, tcp and udp.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    assert_refused_at_once(&a, &a_host_ip, port, "the host end of a's veth");
    assert_refused_at_once(&a, &b_host_ip, port, "the host end of b's veth");
    assert_udp_refused_at_once(&a_pid, &a_host_ip, udp_port, "udp to the host");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the host listener got {other:?}"),
    }
    let mut buf = [0u8; 64];
    match udp.recv_from(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the host udp socket got {other:?}"),
    }

    // Another container.
    b.spawn("sleep 120 | nc -l -p 5002 > /tmp/got");
    wait_for("b's listener", Duration::from_secs(10), || {
        b.sh("netstat -ltn").contains(":5002 ")
    });
    assert_refused_at_once(&a, &b_ip, 5002, "another container");
    assert_udp_refused_at_once(&a_pid, &b_ip, 5003, "udp to another container");
    assert_eq!(fs::read(b.upper("/tmp/got")).unwrap_or_default(), b"");

    // The host still reaches a container, and the replies get back in
    // (established traffic is accepted on the way to the host).
    let mut stream = TcpStream::connect((b_ip.as_str(), 5002)).unwrap();
    std::io::Write::write_all(&mut stream, b"from-the-host\n").unwrap();
    drop(stream);
    wait_for("the host's line in b", Duration::from_secs(10), || {
        fs::read(b.upper("/tmp/got")).unwrap_or_default() == b"from-the-host\n"
    });

    destroy(a);
    destroy(b);
}

/// fe80::/64 + the EUI-64 of a MAC address.
fn link_local(mac: &str) -> String {
    let b: Vec<u8> = mac
        .trim()
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    format!(
        "fe80::{:02x}{:02x}:{:02x}ff:fe{:02x}:{:02x}{:02x}",
        b[0] ^ 2,
        b[1],
        b[2],
        b[3],
        b[4],
        b[5]
    )
}

#[test]
fn ipv6_is_off_on_both_ends() {
    let Some(depot) = depot("ipv6") else {
        return;
    };
    let c = depot.create("v6", &[]);
    let pid = field(&c, "wshd_pid");
    let (host_dev, dev) = (format!("w-{}-0", c.id), format!("w-{}-1", c.id));
    let sysctl = |iface: &str| format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6");
    if !Path::new("/proc/sys/net/ipv6").exists() {
        eprintln!("ipv6_is_off_on_both_ends: the host has no IPv6 at all");
        destroy(c);
        return;
    }
    assert_eq!(fs::read_to_string(sysctl(&host_dev)).unwrap(), "1\n");
    let inside = c.sh(&format!(
        "cat {} {} {} {}",
        sysctl("all"),
        sysctl("default"),
        sysctl("lo"),
        sysctl(&dev)
    ));
    assert_eq!(inside, "1\n1\n1\n1\n");
    assert_eq!(c.sh("cat /proc/net/if_inet6"), "", "an IPv6 address inside");
    let host_v6 = fs::read_to_string("/proc/net/if_inet6").unwrap();
    assert!(
        !host_v6.contains(&host_dev),
        "the host end has IPv6: {host_v6}"
    );

    // The host listens on every IPv6 address; the container tries the
    // link-local address its end would have.
    let listener = TcpListener::bind("[::]:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mac = fs::read_to_string(format!("/sys/class/net/{host_dev}/address")).unwrap();
    let target = link_local(&mac);
    let out = py_in_container(&pid, As::Root, TCP6_CONNECT, &[&target, &dev, &port]);
    assert_ok(&out, "the IPv6 attempt");
    assert_ne!(stdout(&out).trim(), "connected");

    // Even with IPv6 switched back on inside (as host root: the container's
    // own root cannot, /proc/sys is read-only there), the host end takes
    // none of it.
    sh(&format!(
        "nsenter --net=/proc/{pid}/ns/net sh -c 'echo 0 > {}'",
        sysctl(&dev)
    ));
    wait_for(
        "a link-local address inside",
        Duration::from_secs(10),
        || {
            let a = run_text(
                "nsenter",
                &[
                    &format!("--net=/proc/{pid}/ns/net"),
                    "ip",
                    "-6",
                    "addr",
                    "show",
                    "dev",
                    &dev,
                ],
            );
            a.contains("scope link") && !a.contains("tentative")
        },
    );
    let out = py_in_container(&pid, As::Root, TCP6_CONNECT, &[&target, &dev, &port]);
    assert_ok(&out, "the IPv6 attempt with IPv6 on inside");
    assert_ne!(stdout(&out).trim(), "connected");
    assert_eq!(fs::read_to_string(sysctl(&host_dev)).unwrap(), "1\n");
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the host listener got {other:?}"),
    }
    destroy(c);
}

/// Packets counted by the anti-spoofing rule of DEV.
fn spoof_drops(dev: &str) -> u64 {
    let table = run_text(
        "iptables",
        &["-w", "-t", "raw", "-L", "warden-source", "-n", "-v", "-x"],
    );
    let line = table
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == dev))
        .unwrap_or_else(|| panic!("no rule for {dev} in raw warden-source:\n{table}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn forged_source_addresses_are_dropped() {
    let Some(depot) = depot("spoof") else {
        return;
    };
    let mut ns = Netns::new(&depot, 's');
    let log = depot.data("spoof").join("udp.log");
    ns.serve("udp", 7004, &log);
    let a = depot.create("a", &[]);
    let b = depot.create("b", &[]);
    let a_ip = field(&a, "container_ip");
    let a_host_ip = field(&a, "host_ip");
    let b_ip = field(&b, "container_ip");
    let pid = field(&a, "wshd_pid");
    let (host_dev, dev) = (format!("w-{}-0", a.id), format!("w-{}-1", a.id));
    ctl_ok(
        &depot,
        &[
            "net-out",
            "a",
            "--network",
            &format!("{}/32", ns.ip),
            "--port",
            "7004",
            "--protocol",
            "udp",
        ],
    );
    // The rule, once, for a's veth and address.
    assert_eq!(
        rules_with("raw", "warden-source", &host_dev),
        vec![format!(
            "-A warden-source ! -s {a_ip}/32 -i {host_dev} -j DROP"
        )]
    );

    // Root in the container cannot take another address (no CAP_NET_ADMIN).
    let out = a.run_root(&["ip", "addr", "add", "192.0.2.1/32", "dev", &dev]);
    assert!(
        !out.status.success(),
        "root in the container added an address"
    );
    assert!(!a.sh("ip addr").contains("192.0.2.1"));

    // Host root adds them in a's namespace: b's address and one from nowhere.
    let netns = format!("--net=/proc/{pid}/ns/net");
    for forged in [b_ip.as_str(), "192.0.2.1"] {
        let out = Command::new("nsenter")
            .args([
                &netns,
                "ip",
                "addr",
                "add",
                &format!("{forged}/32"),
                "dev",
                &dev,
            ])
            .output()
            .unwrap();
        assert_ok(&out, "adding a forged address");
    }
    let send = |src: &str, to: &str, port: u16, tag: &str, count: u32| {
        let out = py_in_container(
            &pid,
            As::Root,
            UDP_SEND,
            &[src, to, &port.to_string(), tag, &count.to_string()],
        );
        assert_ok(&out, &format!("sending from {src}"));
    };

    // The real source arrives (control), forged ones do not: through the
    // host (FORWARD) ...
    send(&a_ip, &ns.ip, 7004, "real", 1);
    wait_log(&log, &ns, &a_ip, "real 0");
    let before = spoof_drops(&host_dev);
    send(&b_ip, &ns.ip, 7004, "forged-b", 3);
    send("192.0.2.1", &ns.ip, 7004, "forged-x", 3);
    send(&a_ip, &ns.ip, 7004, "after", 1);
    wait_log(&log, &ns, &a_ip, "after 0");
    let got = read_log(&log);
    assert_eq!(got.lines().count(), 2, "forged datagrams arrived: {got}");
    assert!(!got.contains("forged"), "forged datagrams arrived: {got}");
    // ... and to the host (INPUT), where the same rule counts them.
    let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let port = udp.local_addr().unwrap().port();
    send(&b_ip, &a_host_ip, port, "forged-b", 3);
    send("192.0.2.1", &a_host_ip, port, "forged-x", 3);
    let after = spoof_drops(&host_dev);
    assert!(
        after >= before + 12,
        "the rule dropped {} of 12 forged datagrams",
        after - before
    );
    let mut buf = [0u8; 64];
    match udp.recv_from(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the host got {other:?}"),
    }

    destroy(a);
    destroy(b);
    assert!(
        rules_with("raw", "warden-source", &host_dev).is_empty(),
        "the anti-spoofing rule is left"
    );
    ns.remove();
}

#[test]
fn icmp_datagram_sockets_work_without_cap_net_raw() {
    let Some(depot) = depot("ping") else {
        return;
    };
    let host_range = fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let a = depot.create("a", &[]);
    let b = depot.create("b", &[]);
    let b_ip = field(&b, "container_ip");
    let pid = field(&a, "wshd_pid");
    assert_eq!(
        a.sh("cat /proc/sys/net/ipv4/ping_group_range"),
        "0\t2147483647\n"
    );
    let uid: u32 = a.sh("id -u").trim().parse().unwrap();
    let gid: u32 = a.sh("id -g").trim().parse().unwrap();
    let echo = |who: As, to: &str| {
        let out = py_in_container(&pid, who, ICMP_DGRAM_ECHO, &[to]);
        assert_ok(&out, "the icmp probe");
        stdout(&out).trim().to_string()
    };

    // vcap's uid and gid in a's namespace, no capabilities at all; and root
    // without CAP_NET_RAW, which has no raw socket.
    assert_eq!(echo(As::User(uid, gid), "127.0.0.1"), "reply");
    let raw = py_in_container(&pid, As::RootWithoutNetRaw, RAW_SOCKET, &[]);
    assert_eq!(stdout(&raw).trim(), "EPERM", "{}", stderr(&raw));
    assert_eq!(echo(As::RootWithoutNetRaw, "127.0.0.1"), "reply");

    // Another container: refused until net-out allows icmp to it.
    assert_ne!(echo(As::User(uid, gid), &b_ip), "reply");
    ctl_ok(
        &depot,
        &[
            "net-out",
            "a",
            "--network",
            &format!("{b_ip}/32"),
            "--protocol",
            "icmp",
        ],
    );
    assert_eq!(echo(As::User(uid, gid), &b_ip), "reply");
    assert_eq!(echo(As::RootWithoutNetRaw, &b_ip), "reply");

    // The setting is the container's namespace's own: the host's is as it was.
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap(),
        host_range
    );
    destroy(a);
    destroy(b);
}

#[test]
fn setup_again_keeps_containers_and_replaces_old_rules() {
    let Some(depot) = depot("resetup") else {
        return;
    };
    let mut ns = Netns::new(&depot, 'r');
    let log = depot.data("resetup").join("tcp.log");
    ns.serve("tcp", 7005, &log);
    ns.serve("tcp", 7006, &log);
    let c = depot.create("c", &[]);
    let c_ip = field(&c, "container_ip");
    let host_dev = format!("w-{}-0", c.id);
    let chain = format!("warden-i-{}", c.id);
    ctl_ok(
        &depot,
        &[
            "net-out",
            "c",
            "--network",
            &format!("{}/32", ns.ip),
            "--port",
            "7005",
        ],
    );
    let chain_before = run_text("iptables", &["-w", "-S", &chain]);

    // What the earlier version put at the ends of warden-input and
    // warden-default (appended behind the refusals, so never reached by
    // other tests' containers meanwhile).
    sh("iptables -w -A warden-input -j DROP\n\
        iptables -w -A warden-default -o w-+ -j DROP");
    ctl_ok(&depot, &["setup"]);
    ctl_ok(&depot, &["setup"]);
    let input = run_text("iptables", &["-w", "-S", "warden-input"]);
    assert_eq!(
        input,
        "-N warden-input\n\
         -A warden-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A warden-input -p tcp -j REJECT --reject-with tcp-reset\n\
         -A warden-input -j REJECT --reject-with icmp-port-unreachable\n"
    );
    let default = run_text("iptables", &["-w", "-S", "warden-default"]);
    assert_eq!(
        default,
        "-N warden-default\n\
         -A warden-default -p tcp -j REJECT --reject-with tcp-reset\n\
         -A warden-default -j REJECT --reject-with icmp-port-unreachable\n"
    );
    // The container's rules are kept, each once.
    assert_eq!(run_text("iptables", &["-w", "-S", &chain]), chain_before);
    assert_eq!(
        rules_with("filter", "warden-forward", &host_dev).len(),
        1,
        "{}",
        run_text("iptables", &["-w", "-S", "warden-forward"])
    );
    assert_eq!(rules_with("raw", "warden-source", &host_dev).len(), 1);
    for (table, chain, rule) in [
        ("raw", "PREROUTING", "-j warden-source"),
        ("filter", "INPUT", "-j warden-input"),
        ("filter", "FORWARD", "-j warden-forward"),
    ] {
        assert_eq!(
            rules_with(table, chain, rule).len(),
            1,
            "{table} {chain}: {}",
            run_text("iptables", &["-w", "-t", table, "-S", chain])
        );
    }

    // And it still works as before.
    let (rc, _, err) = nc_attempt(&c, &ns.ip, 7005);
    assert_eq!(rc, 0, "the named port after setup: {err}");
    wait_log(&log, &ns, &c_ip, "hello");
    assert_refused_at_once(&c, &ns.ip, 7006, "another port after setup");

    destroy(c);
    ns.remove();
}

/// root/net.sh in a network namespace of its own (its own iptables): over
/// the rules of the earlier version, run twice, with host access on and off,
/// then torn down.
#[test]
fn root_net_sh_over_an_earlier_rule_set() {
    if !tests::require_root("root_net_sh_over_an_earlier_rule_set") {
        return;
    }
    let script: PathBuf = tests::paths::workspace().join("setup-scripts/root/net.sh");
    let out = Command::new("unshare")
        .args(["--net", "sh", "-ec"])
        .arg(format!(
            "net={script}\n\
             iptables -w -N warden-input\n\
             iptables -w -A warden-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
             iptables -w -A warden-input -j DROP\n\
             iptables -w -N warden-forward\n\
             iptables -w -A warden-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
             iptables -w -A warden-forward -j DROP\n\
             iptables -w -N warden-default\n\
             iptables -w -A warden-default -o w-+ -j DROP\n\
             iptables -w -A warden-default -j ACCEPT\n\
             iptables -w -I INPUT 1 -i w-+ -j warden-input\n\
             iptables -w -I FORWARD 1 -i w-+ -j warden-forward\n\
             iptables -w -N warden-i-x\n\
             iptables -w -A warden-i-x -g warden-default\n\
             iptables -w -I warden-forward 2 -i w-x-0 -g warden-i-x\n\
             $net setup\n\
             iptables-save | grep '^-' > /tmp/once.$$\n\
             $net setup\n\
             iptables-save | grep '^-' > /tmp/twice.$$\n\
             cmp /tmp/once.$$ /tmp/twice.$$ || echo NOT-IDEMPOTENT\n\
             rm -f /tmp/once.$$ /tmp/twice.$$\n\
             echo '# default'\n\
             iptables -w -S warden-input; iptables -w -S warden-default\n\
             iptables -w -S warden-forward; iptables -w -t raw -S PREROUTING\n\
             ALLOW_HOST_ACCESS=true ALLOW_NETWORKS=10.9.0.0/16 DENY_NETWORKS=10.9.9.0/24 $net setup\n\
             echo '# host access'\n\
             iptables -w -S warden-input; iptables -w -S warden-default\n\
             $net setup\n\
             echo '# off again'\n\
             iptables -w -S warden-input\n\
             $net teardown\n\
             echo '# torn down'\n\
             iptables-save | grep -c warden || true",
            script = script.display()
        ))
        .output()
        .unwrap();
    assert_ok(&out, "root/net.sh in a namespace of its own");
    let text = stdout(&out);
    let expected = "\
# default
-N warden-input
-A warden-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A warden-input -p tcp -j REJECT --reject-with tcp-reset
-A warden-input -j REJECT --reject-with icmp-port-unreachable
-N warden-default
-A warden-default -p tcp -j REJECT --reject-with tcp-reset
-A warden-default -j REJECT --reject-with icmp-port-unreachable
-N warden-forward
-A warden-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A warden-forward -i w-x-0 -g warden-i-x
-A warden-forward -j DROP
-P PREROUTING ACCEPT
-A PREROUTING -i w-+ -j warden-source
# host access
-N warden-input
-A warden-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A warden-input -j ACCEPT
-N warden-default
-A warden-default -d 10.9.0.0/16 -j ACCEPT
-A warden-default -d 10.9.9.0/24 -p tcp -j REJECT --reject-with tcp-reset
-A warden-default -d 10.9.9.0/24 -j REJECT --reject-with icmp-port-unreachable
-A warden-default -p tcp -j REJECT --reject-with tcp-reset
-A warden-default -j REJECT --reject-with icmp-port-unreachable
# off again
-N warden-input
-A warden-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A warden-input -p tcp -j REJECT --reject-with tcp-reset
-A warden-input -j REJECT --reject-with icmp-port-unreachable
# torn down
0
";
    assert_eq!(text, expected, "stderr: {}", stderr(&out));
}
