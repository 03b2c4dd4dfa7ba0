//! Observability, as root, in real containers: `events` (timestamps, job
//! exits, stop, `--follow` showing an OOM within a second and ending at
//! destroy), `ps` (a sleeping job with its pid inside the container),
//! `stats` (plausible numbers, network counters that grow with traffic),
//! `net-in` answering on 127.0.0.1 (and every rule gone after destroy), and
//! `info` listing ports and limits. Every `--json` output is checked
//! against its schema in docs/schema/ with the small validator below.
//! Traffic goes only between the host's loopback or veth address, a
//! network namespace of the test's own and this test's containers.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tests::ctl::*;
use tests::netns::TestNetns;
use tests::paths;

/// This binary's networks: 10.255.224.0/20.
fn depot(test: &str) -> Option<TestDepot> {
    TestDepot::new_in(test, 480, 16)
}

fn ctl_ok(depot: &TestDepot, args: &[&str]) -> String {
    let out = depot.ctl(args);
    assert_ok(&out, &args.join(" "));
    stdout(&out)
}

// ---------------------------------------------------------------------------
// A JSON Schema (draft 2020-12) validator for the subset docs/schema uses:
// type (one or a list), required, properties, additionalProperties (false
// or a schema), items, enum, minimum. Keywords it does not know fail the
// check, so a schema cannot silently say more than is checked.

fn schema(name: &str) -> Value {
    let path = paths::workspace().join("docs/schema").join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        other => panic!("schema type {other:?} unknown to the validator"),
    }
}

fn validate(schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let s = schema
        .as_object()
        .ok_or_else(|| format!("{at}: schema is no object"))?;
    for key in s.keys() {
        let known = [
            "$schema",
            "$id",
            "title",
            "description",
            "type",
            "required",
            "properties",
            "additionalProperties",
            "items",
            "enum",
            "minimum",
        ];
        if !known.contains(&key.as_str()) {
            return Err(format!("{at}: schema keyword {key:?} is not checked"));
        }
    }
    if let Some(t) = s.get("type") {
        let names: Vec<&str> = match t {
            Value::String(n) => vec![n.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{at}: bad type keyword")),
        };
        if !names.iter().any(|n| type_matches(n, v)) {
            return Err(format!("{at}: {v} is not of type {t}"));
        }
    }
    if let Some(Value::Array(allowed)) = s.get("enum") {
        if !allowed.contains(v) {
            return Err(format!("{at}: {v} is not one of {allowed:?}"));
        }
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            return Err(format!("{at}: {n} is below the minimum {min}"));
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(Value::Array(required)) = s.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(key) {
                    return Err(format!("{at}: {key:?} is missing"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (key, value) in obj {
            let here = format!("{at}.{key}");
            match (
                props.and_then(|p| p.get(key)),
                s.get("additionalProperties"),
            ) {
                (Some(sub), _) => validate(sub, value, &here)?,
                (None, Some(Value::Bool(false))) => {
                    return Err(format!("{here}: not in the schema"))
                }
                (None, Some(sub @ Value::Object(_))) => validate(sub, value, &here)?,
                (None, _) => {}
            }
        }
    }
    if let (Some(items), Some(list)) = (s.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            validate(items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn assert_valid(schema_name: &str, v: &Value) {
    if let Err(e) = validate(&schema(schema_name), v, "$") {
        panic!("{schema_name}: {e}\nin {v}");
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

#[test]
fn the_validator_refuses_what_the_schemas_forbid() {
    let s = schema("events.json");
    let good =
        json(r#"{"time":"2026-12-01T15:40:00.123Z","kind":"oom","message":"out of memory"}"#);
    assert_eq!(validate(&s, &good, "$"), Ok(()));
    for bad in [
        r#"{"time":"t","kind":"oom"}"#,
        r#"{"time":"t","kind":"bogus","message":"m"}"#,
        r#"{"time":"t","kind":"oom","message":"m","extra":1}"#,
        r#"{"time":"t","kind":"oom","message":"m","job":-1}"#,
        r#"{"time":5,"kind":"oom","message":"m"}"#,
        r#"[]"#,
    ] {
        assert!(validate(&s, &json(bad), "$").is_err(), "{bad} passed");
    }
    let ps = schema("ps.json");
    assert!(validate(&ps, &json("[]"), "$").is_ok());
    assert!(validate(&ps, &json(r#"[{"pid":1}]"#), "$").is_err());
    let stats = schema("stats.json");
    assert!(validate(&stats, &json("{}"), "$").is_err());
    let unknown = json(r#"{"type":"string","pattern":"x"}"#);
    assert!(validate(&unknown, &json(r#""x""#), "$").is_err());
}

// ---------------------------------------------------------------------------

/// Milliseconds since the epoch of `2026-12-01T15:40:00.123Z` (the one form
/// the events use: RFC 3339, UTC, milliseconds); panics on anything else.
fn epoch_ms(time: &str) -> u64 {
    let b = time.as_bytes();
    assert!(
        b.len() == 24
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.'
            && b[23] == b'Z',
        "not RFC 3339 UTC with milliseconds: {time:?}"
    );
    let n = |r: std::ops::Range<usize>| -> i64 {
        time[r]
            .parse()
            .unwrap_or_else(|_| panic!("bad number in {time:?}"))
    };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // days_from_civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    (secs * 1000 + n(20..23)) as u64
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn times_parse_back() {
    assert_eq!(epoch_ms("1970-01-01T00:00:00.000Z"), 0);
    assert_eq!(epoch_ms("2026-12-01T15:40:00.123Z"), 1_796_139_600_123);
    assert_eq!(epoch_ms("2000-03-01T00:00:00.000Z"), 951_868_800_000);
}

/// `events H --json`, every line checked against the schema.
fn events(depot: &TestDepot, handle: &str) -> Vec<Value> {
    let text = ctl_ok(depot, &["events", handle, "--json"]);
    text.lines()
        .map(|l| {
            let v = json(l);
            assert_valid("events.json", &v);
            v
        })
        .collect()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

/// `wardenctl ARGS` with its stdout read line by line in a thread: each
/// line and when it arrived.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl Follower {
    fn start(depot: &TestDepot, args: &[&str]) -> Follower {
        let mut child = depot
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wardenctl");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    /// The next line, within `timeout`.
    fn next(&self, timeout: Duration) -> Option<(Instant, String)> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Lines until one satisfies `want`; panics after `timeout`.
    fn until(&self, timeout: Duration, mut want: impl FnMut(&str) -> bool) -> (Instant, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some((at, line)) if want(&line) => return (at, line),
                Some(_) => {}
                None => panic!("timed out waiting for a line"),
            }
        }
    }

    /// Waits (up to `timeout`) for it to end on its own; its exit code.
    fn wait_end(mut self, timeout: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                assert!(err.is_empty(), "stderr: {err}");
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < timeout,
                "the follower did not end with its container"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_have_times_and_follow_ends_at_destroy() {
    let Some(depot) = depot("events") else {
        return;
    };
    let before = now_ms();
    let c = depot.create("ev", &[]);
    assert_code(&c.run(&["sh", "-c", "exit 3"]), 3, "exit 3");
    assert_ok(&c.run(&["true"]), "true");
    let follower = Follower::start(&depot, &["events", "ev", "--follow"]);
    ctl_ok(&depot, &["stop", "ev", "--kill"]);
    let after = now_ms();

    let all = events(&depot, "ev");
    assert_eq!(
        kinds(&all),
        ["create", "job_exit", "job_exit", "stop"],
        "{all:?}"
    );
    assert_eq!(all[1]["job"], 1);
    assert_eq!(all[1]["exit_status"], 3);
    assert_eq!(all[1]["message"], "job 1 exited with status 3");
    assert_eq!(all[2]["job"], 2);
    assert_eq!(all[2]["exit_status"], 0);
    let times: Vec<u64> = all
        .iter()
        .map(|e| epoch_ms(e["time"].as_str().unwrap()))
        .collect();
    for w in times.windows(2) {
        assert!(w[0] <= w[1], "times go backwards: {all:?}");
    }
    assert!(
        times[0] >= before && times[3] <= after,
        "times {times:?} outside the test's {before}..{after}"
    );

    // The text form: time, then the message.
    let text = ctl_ok(&depot, &["events", "ev"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[1].ends_with(" job 1 exited with status 3")
            && lines[1].starts_with(all[1]["time"].as_str().unwrap()),
        "{text}"
    );

    // Warden's own events are unchanged: none of these.
    let info = json(&c.info());
    assert_eq!(info["events"], Value::Array(vec![]), "{info}");

    // The follower saw the same, and ends once the container is gone.
    let (_, first) = follower.next(Duration::from_secs(10)).expect("a line");
    assert_eq!(first, lines[0]);
    follower.until(Duration::from_secs(10), |l| {
        l.ends_with(" stopped (SIGKILL)")
    });
    c.destroy();
    follower.until(Duration::from_secs(10), |l| l.ends_with(" destroying"));
    assert_eq!(follower.wait_end(Duration::from_secs(5)), 0);

    let out = depot.ctl(&["events", "ev"]);
    assert_refused_with(&out, 3, "events of a destroyed container");
}

/// The container's oom_kill counter (v1 memory.oom_control, v2
/// memory.events).
fn oom_kills(id: &str) -> u64 {
    let files = [
        format!("/sys/fs/cgroup/memory/instance-{id}/memory.oom_control"),
        format!("/sys/fs/cgroup/instance-{id}/memory.events"),
    ];
    let text = files
        .iter()
        .find_map(|f| fs::read_to_string(f).ok())
        .expect("a memory group with an OOM counter");
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .expect("an oom_kill line")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn follow_shows_an_oom_within_a_second() {
    let Some(depot) = depot("oom") else {
        return;
    };
    let c = depot.create("oom", &[]);
    ctl_ok(&depot, &["limit-memory", "oom", &(48u64 << 20).to_string()]);
    let follower = Follower::start(&depot, &["events", "oom", "--follow", "--json"]);
    let (_, created) = follower.next(Duration::from_secs(10)).expect("create");
    assert_eq!(json(&created)["kind"], "create");
    assert_eq!(oom_kills(&c.id), 0);

    // A shell variable of 100 MB: the shell's heap grows past the limit.
    c.spawn("x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo alive");
    let mut killed = None;
    wait_for("the OOM kill", Duration::from_secs(60), || {
        if oom_kills(&c.id) > 0 {
            killed = Some(Instant::now());
        }
        killed.is_some()
    });
    let killed = killed.unwrap();
    let (at, line) = follower.until(Duration::from_secs(10), |l| l.contains("\"oom\""));
    let event = json(&line);
    assert_valid("events.json", &event);
    assert_eq!(event["message"], "out of memory");
    let late = at.saturating_duration_since(killed);
    assert!(
        late < Duration::from_secs(1),
        "the OOM showed {late:?} after the kill"
    );
    // The watcher stops the container; the job's end follows.
    follower.until(Duration::from_secs(30), |l| l.contains("\"stop\""));
    follower.until(Duration::from_secs(30), |l| l.contains("\"job_exit\""));
    c.destroy();
    follower.until(Duration::from_secs(10), |l| l.contains("\"destroy\""));
    assert_eq!(follower.wait_end(Duration::from_secs(5)), 0);
}

#[test]
fn ps_lists_a_sleeping_job() {
    let Some(depot) = depot("ps") else {
        return;
    };
    let c = depot.create("ps", &[]);
    c.spawn("echo $$ > /tmp/pid; exec sleep 1000");
    wait_for("the job's pid", Duration::from_secs(10), || {
        fs::read_to_string(c.upper("/tmp/pid")).is_ok_and(|s| s.ends_with('\n'))
    });
    let ns_pid: i64 = fs::read_to_string(c.upper("/tmp/pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut list = Value::Null;
    wait_for("sleep in ps", Duration::from_secs(10), || {
        list = json(&ctl_ok(&depot, &["ps", "ps", "--json"]));
        list.as_array()
            .unwrap()
            .iter()
            .any(|p| p["command"] == "sleep 1000" && p["state"] == "S")
    });
    assert_valid("ps.json", &list);
    let procs = list.as_array().unwrap();
    let sleep = procs.iter().find(|p| p["command"] == "sleep 1000").unwrap();
    assert_eq!(sleep["ns_pid"], ns_pid, "{list}");
    assert_eq!(sleep["user"], "vcap", "{list}");
    assert!(sleep["rss_bytes"].as_u64().unwrap() > 0, "{list}");
    // The host pid is that process, in the container's group.
    let pid = sleep["pid"].as_i64().unwrap();
    assert_ne!(pid, ns_pid, "host and container pids are the same: {list}");
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&format!("instance-{}", c.id)), "{cgroup}");
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x001000\x00");
    // wshd is the container's pid 1, run as root.
    let wshd = procs.iter().find(|p| p["ns_pid"] == 1).expect("pid 1");
    assert_eq!(wshd["user"], "root");
    assert!(
        wshd["command"].as_str().unwrap().starts_with("wshd:"),
        "{list}"
    );
    // Nothing of the host's.
    let me = std::process::id() as i64;
    assert!(procs.iter().all(|p| p["pid"] != me));

    let text = ctl_ok(&depot, &["ps", "ps"]);
    assert!(text.starts_with("PID "), "{text}");
    let row = text
        .lines()
        .find(|l| l.ends_with("sleep 1000"))
        .unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[0], pid.to_string(), "{text}");
    assert_eq!(cols[1], ns_pid.to_string(), "{text}");
    assert_eq!(cols[2], "vcap", "{text}");
    assert_eq!(cols[3], "S", "{text}");

    assert_refused_with(&depot.ctl(&["ps", "nosuch"]), 3, "ps of no container");
    c.destroy();
}

fn stats(depot: &TestDepot, handle: &str) -> Value {
    let v = json(&ctl_ok(depot, &["stats", handle, "--json"]));
    assert_valid("stats.json", &v);
    v
}

#[test]
fn stats_are_plausible() {
    let Some(depot) = depot("stats") else {
        return;
    };
    let c = depot.create("st", &[]);
    ctl_ok(&depot, &["limit-memory", "st", &(64u64 << 20).to_string()]);
    c.spawn("exec nc -l -p 7000 > /tmp/got");
    let s = stats(&depot, "st");
    assert_eq!(s["handle"], "st");
    assert_eq!(s["id"], c.id.as_str());
    assert_eq!(s["state"], "active");
    assert!(s["memory"]["usage_bytes"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["memory"]["limit_bytes"], 64u64 << 20, "{s}");
    assert!(s["cpu"]["usage_ns"].as_u64().unwrap() > 0, "{s}");
    assert!(s["pids"]["current"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["pids"]["max"], 4096, "{s}");
    assert!(s["disk"]["inodes_used"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["disk"]["byte_limit"], Value::Null, "{s}");
    assert_eq!(s["network"]["interface"], format!("w-{}-0", c.id));
    let rx0 = s["network"]["rx_bytes"].as_u64().unwrap();
    let rx_packets0 = s["network"]["rx_packets"].as_u64().unwrap();
    let tx_packets0 = s["network"]["tx_packets"].as_u64().unwrap();

    // 100 kB from the host to the container's nc.
    let info = json(&c.info());
    let ip = info["container_ip"].as_str().unwrap();
    let addr: SocketAddr = format!("{ip}:7000").parse().unwrap();
    let mut stream = None;
    wait_for("nc to listen", Duration::from_secs(10), || {
        stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok();
        stream.is_some()
    });
    let mut stream = stream.unwrap();
    stream.write_all(&vec![b'x'; 100_000]).unwrap();
    drop(stream);
    wait_for("nc to have it all", Duration::from_secs(10), || {
        fs::metadata(c.upper("/tmp/got")).is_ok_and(|m| m.len() == 100_000)
    });
    let s = stats(&depot, "st");
    let rx = s["network"]["rx_bytes"].as_u64().unwrap();
    assert!(rx >= rx0 + 100_000, "rx_bytes {rx0} -> {rx}");
    assert!(s["network"]["rx_packets"].as_u64().unwrap() > rx_packets0);
    assert!(
        s["network"]["tx_packets"].as_u64().unwrap() > tx_packets0,
        "acks"
    );

    let text = ctl_ok(&depot, &["stats", "st"]);
    assert!(
        text.contains("memory: usage_bytes=") && text.contains("limit_bytes=67108864"),
        "{text}"
    );
    assert!(text.contains("pids: current="), "{text}");

    // --follow: a sample a second, until the container is gone.
    let follower = Follower::start(&depot, &["stats", "st", "--follow", "--json"]);
    let (t1, l1) = follower.next(Duration::from_secs(10)).expect("a sample");
    let (t2, l2) = follower.next(Duration::from_secs(10)).expect("a second");
    for l in [&l1, &l2] {
        assert_valid("stats.json", &json(l));
    }
    let gap = t2 - t1;
    assert!(
        gap > Duration::from_millis(700) && gap < Duration::from_millis(1900),
        "samples {gap:?} apart"
    );
    c.destroy();
    assert_eq!(follower.wait_end(Duration::from_secs(5)), 0);
}

/// iptables-save lines naming the container (its id is in every chain and
/// device name of it).
fn rules_of(id: &str) -> Vec<String> {
    run_text("iptables-save", &[])
        .lines()
        .filter(|l| l.contains(id))
        .map(str::to_string)
        .collect()
}

/// Connects to ADDR and reads to the end.
fn fetch(addr: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}

/// One answer from a container server on PORT (busybox nc, once).
fn serve_once(c: &Container<'_>, port: u16, answer: &str) {
    c.spawn(&format!("echo {answer} | exec nc -l -p {port}"));
}

#[test]
fn net_in_answers_on_loopback_and_leaves_no_rule() {
    let Some(depot) = depot("loopback") else {
        return;
    };
    let c = depot.create("lo", &[]);
    let printed = ctl_ok(&depot, &["net-in", "lo", "--container-port", "8080"]);
    let host_port: u16 = printed.split_whitespace().next().unwrap().parse().unwrap();
    let host_ip = json(&c.info())["host_ip"].as_str().unwrap().to_string();

    for (i, ip) in ["127.0.0.1", &host_ip, "127.0.0.1"].iter().enumerate() {
        let answer = format!("served-{i}");
        serve_once(&c, 8080, &answer);
        let mut got = String::new();
        wait_for(
            &format!("an answer on {ip}"),
            Duration::from_secs(10),
            || {
                got = fetch(&format!("{ip}:{host_port}")).unwrap_or_default();
                !got.is_empty()
            },
        );
        assert_eq!(got, format!("{answer}\n"), "through {ip}:{host_port}");
    }

    // From the network, 127.0.0.1 is no way in: a namespace of the test's
    // own sends to 127.0.0.1:HOST_PORT through the host as a LAN peer
    // could (its own loopback gone, route_localnet set so it takes the
    // answer); the host's other addresses answer it (the control).
    let base = depot.pool.trim_end_matches(".0/24").to_string();
    let pid = std::process::id();
    let peer = TestNetns::new(
        &format!("wob-lo-{pid}"),
        &format!("wob{}", pid % 100000),
        &format!("{base}.253"),
        &format!("{base}.254"),
    );
    let setup = format!(
        "ip -n {ns} addr flush dev lo\n\
         ip -n {ns} link set lo down\n\
         ip -n {ns} route add 127.0.0.0/8 via {base}.253 dev eth0\n\
         ip netns exec {ns} sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1",
        ns = peer.name
    );
    assert_ok(
        &std::process::Command::new("sh")
            .args(["-ec", &setup])
            .output()
            .unwrap(),
        &setup,
    );
    let from_peer = |ip: &str, answer: &str| {
        serve_once(&c, 8080, answer);
        std::thread::sleep(Duration::from_millis(300));
        std::process::Command::new("ip")
            .args(["netns", "exec", &peer.name, "python3", "-c"])
            .arg(format!(
                "import socket\ns=socket.create_connection(('{ip}',{host_port}),timeout=2)\n\
                 print(s.recv(100).decode().strip())\n"
            ))
            .output()
            .unwrap()
    };
    let out = from_peer(&format!("{base}.253"), "to-the-peer");
    assert_ok(&out, "the peer through the host's address");
    assert_eq!(stdout(&out), "to-the-peer\n");
    let out = from_peer("127.0.0.1", "leaked");
    assert!(
        !out.status.success() && !stdout(&out).contains("leaked"),
        "a peer reached the container through 127.0.0.1: {}",
        stdout(&out)
    );
    // Its server is still waiting: one connection from the host takes it.
    assert_eq!(
        fetch(&format!("127.0.0.1:{host_port}")).unwrap(),
        "leaked\n"
    );
    peer.remove();

    // What makes loopback work, and what keeps it safe.
    let dev = format!("w-{}-0", c.id);
    let route_localnet = format!("/proc/sys/net/ipv4/conf/{dev}/route_localnet");
    assert_eq!(fs::read_to_string(&route_localnet).unwrap(), "1\n");
    let rules = rules_of(&c.id).join("\n");
    assert!(
        rules.contains(&format!("-A warden-source -d 127.0.0.0/8 -i {dev} -j DROP")),
        "{rules}"
    );
    assert!(rules.contains("-d 127.0.0.0/8 -o lo -p tcp"), "{rules}");
    assert!(
        rules.contains("! -d 127.0.0.0/8 -p tcp -m addrtype"),
        "{rules}"
    );
    // A second forward adds its DNATs only.
    ctl_ok(&depot, &["net-in", "lo", "--container-port", "9090"]);
    let more = rules_of(&c.id);
    let count = |needle: &str| more.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("-j SNAT"), 1, "{more:?}");
    assert_eq!(count("-d 127.0.0.0/8 -i"), 1, "{more:?}");
    assert_eq!(count("DNAT"), 4, "{more:?}");

    let id = c.id.clone();
    c.destroy();
    assert_eq!(rules_of(&id), Vec::<String>::new(), "rules left");
    assert!(!Path::new(&route_localnet).exists());
    assert!(
        fetch(&format!("127.0.0.1:{host_port}")).is_err(),
        "the port still answers"
    );
}

/// The raw rule that makes route_localnet safe: what the container sends to
/// 127.0.0.0/8 through its veth is dropped before the host routes it. Only
/// an unconfined container's root can route loopback addresses out of its
/// veth (a confined one lacks CAP_NET_ADMIN), so one is made here; a host
/// listener on 127.0.0.1 must see nothing, and the rule's counter shows
/// that it was the one to drop it.
#[test]
fn the_container_cannot_reach_the_hosts_loopback() {
    let Some(depot) = depot("lo-in") else {
        return;
    };
    let c = depot.create("nest", &["--allow-nested-warden"]);
    ctl_ok(&depot, &["net-in", "nest", "--container-port", "8080"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host_ip = json(&c.info())["host_ip"].as_str().unwrap().to_string();
    let dev = format!("w-{}-0", c.id);
    let counter = || -> u64 {
        let table = run_text(
            "iptables",
            &["-w", "-t", "raw", "-L", "warden-source", "-v", "-n", "-x"],
        );
        table
            .lines()
            .find(|l| l.contains(&dev) && l.contains("127.0.0.0/8"))
            .unwrap_or_else(|| panic!("no loopback rule for {dev}:\n{table}"))
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = counter();
    let out = c.run_root(&[
        "sh",
        "-c",
        &format!(
            "ip addr flush dev lo && ip link set lo down && \
             ip route add 127.0.0.0/8 via {host_ip} && \
             echo x | timeout 3 nc 127.0.0.1 {port}; echo nc=$?"
        ),
    ]);
    assert_ok(&out, "the attempt");
    assert!(stdout(&out).contains("nc="), "{}", stdout(&out));
    assert!(
        listener.accept().is_err(),
        "the host's 127.0.0.1 was reached"
    );
    assert!(counter() > before, "the raw rule dropped nothing");
    c.destroy();
}

#[test]
fn info_shows_ports_and_limits() {
    let Some(depot) = depot("info") else {
        return;
    };
    let c = depot.create(
        "inf",
        &[
            "--pids-limit",
            "100",
            "--disk-limit",
            "16777216",
            "--disk-inode-limit",
            "300",
        ],
    );
    ctl_ok(&depot, &["limit-memory", "inf", "67108864"]);
    ctl_ok(&depot, &["limit-cpu", "inf", "512"]);
    ctl_ok(
        &depot,
        &[
            "limit-bandwidth",
            "inf",
            "--rate",
            "1000000",
            "--burst",
            "10000",
        ],
    );
    let p1 = ctl_ok(&depot, &["net-in", "inf", "--container-port", "8080"]);
    let p2 = ctl_ok(&depot, &["net-in", "inf", "--container-port", "9090"]);
    let port =
        |printed: &str| -> u64 { printed.split_whitespace().next().unwrap().parse().unwrap() };
    let (h1, h2) = (port(&p1), port(&p2));

    let info = json(&c.info());
    // The keys info had stay.
    for key in [
        "handle",
        "id",
        "state",
        "events",
        "host_ip",
        "container_ip",
        "container_path",
        "job_ids",
        "wshd_pid",
        "memory_stat",
        "cpu_stat",
        "disk_stat",
        "bandwidth_stat",
    ] {
        assert!(info.get(key).is_some(), "{key} is gone: {info}");
    }
    if let Err(e) = validate(&info_additions(), &info, "$") {
        panic!("{e}\nin {info}");
    }
    assert_eq!(
        info["ports"],
        json(&format!(
            r#"[{{"host_port":{h1},"container_port":8080}},{{"host_port":{h2},"container_port":9090}}]"#
        ))
    );
    let l = &info["limits"];
    assert_eq!(l["memory_bytes"], 67108864, "{l}");
    assert_eq!(l["pids_max"], 100, "{l}");
    assert_eq!(l["disk_bytes"], 16777216, "{l}");
    assert_eq!(l["disk_inodes"], 300, "{l}");
    assert_eq!(l["bandwidth_rate"], 1000000, "{l}");
    assert_eq!(l["bandwidth_burst"], 10000, "{l}");
    assert_eq!(l["job_output_bytes"], 10485760, "{l}");
    // v1 keeps the shares, v2 the weight they convert to.
    assert!(l["cpu_shares"] == 512 || l["cpu_weight"] == 20, "{l}");

    let out = depot.ctl(&["info", "inf"]);
    assert_ok(&out, "info");
    let text = stdout(&out);
    assert!(
        text.contains(&format!("\nports: {h1}->8080 {h2}->9090\n")),
        "{text}"
    );
    let limits = text
        .lines()
        .find_map(|l| l.strip_prefix("limits: "))
        .unwrap_or_else(|| panic!("{text}"));
    for want in [
        "memory_bytes=67108864",
        "pids_max=100",
        "disk_bytes=16777216",
        "bandwidth_rate=1000000",
        "bandwidth_burst=10000",
    ] {
        assert!(limits.split(' ').any(|w| w == want), "{want}: {limits}");
    }
    // The lines info had come first, as before.
    assert!(text.starts_with("handle: inf\nid: "), "{text}");
    c.destroy();
}

/// What info --json adds for ports and limits, as docs/schema/info.json
/// should say it (that file belongs to info's own schema work); only these
/// two keys are checked here, the rest may be anything.
fn info_additions() -> Value {
    let limit = r#"{"type":["integer","null"],"minimum":0}"#;
    let limits = [
        "memory_bytes",
        "cpu_shares",
        "cpu_weight",
        "pids_max",
        "disk_bytes",
        "disk_inodes",
        "bandwidth_rate",
        "bandwidth_burst",
        "job_output_bytes",
    ];
    json(&format!(
        r#"{{"type":"object","required":["ports","limits"],"properties":{{
            "ports":{{"type":"array","items":{{"type":"object",
                "required":["host_port","container_port"],
                "properties":{{"host_port":{{"type":"integer","minimum":1}},
                              "container_port":{{"type":"integer","minimum":1}}}},
                "additionalProperties":false}}}},
            "limits":{{"type":"object","required":[{req}],
                "properties":{{{props}}},"additionalProperties":false}}}}}}"#,
        req = limits.map(|k| format!("{k:?}")).join(","),
        props = limits.map(|k| format!("{k:?}:{limit}")).join(","),
    ))
}
