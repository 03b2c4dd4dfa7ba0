//! wardenctl's command line beyond the basics, as root, in real
//! containers: every `--json` output checked against its schema in
//! docs/schema/ (by a small validator of the schema keywords those files
//! use), `--env`/`--dir`/`--user` on run, spawn and shell, TERM in a shell,
//! several handles for stop and destroy, a job killed by a signal (its
//! message, 128+N, the OOM killer named), sizes with K/M/G.

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tests::ctl::*;

fn depot(test: &str) -> Option<TestDepot> {
    TestDepot::new_in(test, 464, 16)
}

// ---------------------------------------------------------------------------
// The validator: type (a name or a list), enum, const, minimum, maximum,
// required, properties, additionalProperties (false or a schema), items,
// oneOf. Annotations ($schema, $id, title, description) are skipped; any
// other keyword fails, so a schema cannot say more than is checked.

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_u64() || v.is_i64(),
        other => panic!("unknown type {other:?} in a schema"),
    }
}

fn validate(schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = schema
        .as_object()
        .unwrap_or_else(|| panic!("{at}: a schema is an object"));
    for (key, want) in schema {
        match key.as_str() {
            "$schema" | "$id" | "title" | "description" => {}
            "type" => {
                let names: Vec<&str> = match want {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().map(|n| n.as_str().unwrap()).collect(),
                    _ => panic!("{at}: bad type keyword"),
                };
                if !names.iter().any(|n| type_matches(n, v)) {
                    return Err(format!("{at}: {v} is not of type {want}"));
                }
            }
            "enum" => {
                if !want.as_array().unwrap().contains(v) {
                    return Err(format!("{at}: {v} is not one of {want}"));
                }
            }
            "const" => {
                if want != v {
                    return Err(format!("{at}: {v} is not {want}"));
                }
            }
            "minimum" => {
                if let Some(n) = v.as_f64() {
                    if n < want.as_f64().unwrap() {
                        return Err(format!("{at}: {v} is below {want}"));
                    }
                }
            }
            "maximum" => {
                if let Some(n) = v.as_f64() {
                    if n > want.as_f64().unwrap() {
                        return Err(format!("{at}: {v} is above {want}"));
                    }
                }
            }
            "required" => {
                if let Some(obj) = v.as_object() {
                    for name in want.as_array().unwrap() {
                        let name = name.as_str().unwrap();
                        if !obj.contains_key(name) {
                            return Err(format!("{at}: {name:?} is missing from {v}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(obj) = v.as_object() {
                    for (name, sub) in want.as_object().unwrap() {
                        if let Some(value) = obj.get(name) {
                            validate(sub, value, &format!("{at}.{name}"))?;
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(obj) = v.as_object() {
                    let known = schema.get("properties").and_then(Value::as_object);
                    for (name, value) in obj {
                        if known.is_some_and(|k| k.contains_key(name)) {
                            continue;
                        }
                        match want {
                            Value::Bool(false) => {
                                return Err(format!("{at}: {name:?} is not in the schema"))
                            }
                            Value::Bool(true) => {}
                            sub => validate(sub, value, &format!("{at}.{name}"))?,
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = v.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        validate(want, item, &format!("{at}[{i}]"))?;
                    }
                }
            }
            "oneOf" => {
                let passing = want
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|sub| validate(sub, v, at).is_ok())
                    .count();
                if passing != 1 {
                    return Err(format!("{at}: {v} matches {passing} of oneOf, not 1"));
                }
            }
            other => panic!("{at}: keyword {other:?} is not supported by this validator"),
        }
    }
    Ok(())
}

fn schema(command: &str) -> Value {
    let path = tests::paths::workspace().join(format!("docs/schema/{command}.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every line of stdout (one for all but stream) is JSON valid under the
/// command's schema; the parsed lines.
fn check_lines(command: &str, out: &Output) -> Vec<Value> {
    let schema = schema(command);
    let text = stdout(out);
    assert!(text.ends_with('\n'), "{command}: {text:?}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{command}: {l:?} is not JSON: {e}"))
        })
        .collect();
    for v in &lines {
        if let Err(e) = validate(&schema, v, command) {
            panic!("{command} --json does not match docs/schema/{command}.json: {e}");
        }
    }
    lines
}

/// `wardenctl ARGS`, asserting success, its one object checked against
/// COMMAND's schema.
fn json_ok(depot: &TestDepot, command: &str, args: &[&str]) -> Value {
    let out = depot.ctl(args);
    assert_ok(&out, &args.join(" "));
    let mut lines = check_lines(command, &out);
    assert_eq!(lines.len(), 1, "{command}: {}", stdout(&out));
    lines.remove(0)
}

#[test]
fn the_validator_refuses_what_the_schema_does_not_allow() {
    let s = schema("link");
    let good = serde_json::json!({
        "handle": "h", "job_id": 1, "exit_status": 137, "signal": "SIGKILL",
        "signal_number": 9, "core_dumped": false, "cause": null,
        "stdout": "", "stderr": "", "output_lossy": false
    });
    validate(&s, &good, "link").unwrap();
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("stdout");
    assert!(validate(&s, &missing, "link").is_err());
    let mut extra = good.clone();
    extra["surprise"] = 1.into();
    assert!(validate(&s, &extra, "link").is_err());
    let mut wrong = good.clone();
    wrong["exit_status"] = "137".into();
    assert!(validate(&s, &wrong, "link").is_err());
    wrong["exit_status"] = 256.into();
    assert!(validate(&s, &wrong, "link").is_err());
    let stream = schema("stream");
    let chunk = serde_json::json!({"type": "output", "stream": "stdout", "data": "x"});
    validate(&stream, &chunk, "stream").unwrap();
    let bad = serde_json::json!({"type": "output", "stream": "stdin", "data": "x"});
    assert!(validate(&stream, &bad, "stream").is_err());
    let info = schema("info");
    let mut i = serde_json::json!({
        "handle": "h", "id": "x", "state": "active", "events": [], "host_ip": "",
        "container_ip": "", "container_path": "/", "job_ids": [1], "wshd_pid": null,
        "memory_stat": {"rss": 1}, "cpu_stat": {}, "disk_stat": {}, "bandwidth_stat": {},
        "ports": [{"host_port": 61001, "container_port": 8080}],
        "limits": {"memory_bytes": null, "cpu_shares": 512, "cpu_weight": null,
                   "pids_max": 1024, "disk_bytes": null, "disk_inodes": null,
                   "bandwidth_rate": null, "bandwidth_burst": null,
                   "job_output_bytes": 10485760}
    });
    validate(&info, &i, "info").unwrap();
    i["memory_stat"]["rss"] = "1".into();
    assert!(validate(&info, &i, "info").is_err());
    i["memory_stat"]["rss"] = 1.into();
    i["state"] = "sleeping".into();
    assert!(validate(&info, &i, "info").is_err());
    i["state"] = "active".into();
    i["job_ids"] = serde_json::json!([-1]);
    assert!(validate(&info, &i, "info").is_err());
}

#[test]
fn every_json_output_matches_its_schema() {
    let Some(depot) = depot("json") else {
        return;
    };
    let mut checked = Vec::new();
    let mut check = |command: &str| checked.push(command.to_string());

    // create, with sizes in K/M/G.
    let args = depot.create_args(
        "js",
        &[
            "--json",
            "--disk-limit",
            "32M",
            "--shm-size",
            "8MiB",
            "--job-output-limit",
            "1k",
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = json_ok(&depot, "create", &args);
    check("create");
    assert_eq!(v["handle"], "js");
    let info = json_ok(&depot, "info", &["info", "js", "--json"]);
    check("info");
    let c = Container {
        depot: &depot,
        handle: "js".into(),
        id: info["id"].as_str().unwrap().to_string(),
    };
    // The sizes took: the image, /dev/shm, the output limit.
    let limits = json_ok(&depot, "limit-disk", &["limit-disk", "js", "--json"]);
    check("limit-disk");
    assert_eq!(limits["byte_limit"], 32 << 20);
    assert_eq!(limits["block_limit"], 32 << 10);
    let shm = c.sh("df -k /dev/shm | tail -1");
    assert_eq!(
        shm.split_whitespace().nth(1),
        Some("8192"),
        "/dev/shm: {shm}"
    );

    let v = json_ok(&depot, "list", &["list", "--json"]);
    check("list");
    assert_eq!(v["handles"], serde_json::json!(["js"]));

    let v = json_ok(
        &depot,
        "spawn",
        &[
            "spawn",
            "js",
            "--json",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    check("spawn");
    let job = v["job_id"].as_u64().unwrap().to_string();
    let out = depot.ctl(&["link", "js", &job, "--json"]);
    assert_code(&out, 3, "link --json of exit 3");
    let v = &check_lines("link", &out)[0];
    check("link");
    assert_eq!(v["stdout"], "out\n");
    assert_eq!(v["stderr"], "err\n");
    assert_eq!(v["exit_status"], 3);
    assert_eq!(v["signal"], Value::Null);
    assert_eq!(stderr(&out), "", "link --json writes no raw output");

    let out = depot.ctl(&["stream", "js", &job, "--json"]);
    assert_code(&out, 3, "stream --json");
    let lines = check_lines("stream", &out);
    check("stream");
    let data = |name: &str| -> String {
        lines
            .iter()
            .filter(|l| l["type"] == "output" && l["stream"] == name)
            .map(|l| l["data"].as_str().unwrap())
            .collect()
    };
    assert_eq!(data("stdout"), "out\n");
    assert_eq!(data("stderr"), "err\n");
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "exit");
    assert_eq!(last["exit_status"], 3);

    // run: non-UTF-8 output is replaced and flagged.
    let out = depot.ctl(&["run", "js", "--json", "--", "printf", "a\\377b"]);
    assert_ok(&out, "run --json");
    let v = &check_lines("run", &out)[0];
    check("run");
    assert_eq!(v["stdout"], "a\u{fffd}b");
    assert_eq!(v["output_lossy"], true);
    assert_eq!(v["exit_status"], 0);

    // Past the 1 KiB output limit: killed, and the report says why.
    let out = depot.ctl(&[
        "run",
        "js",
        "--json",
        "--",
        "sh",
        "-c",
        "head -c 5000 /dev/zero; sleep 5",
    ]);
    assert_code(&out, 137, "a job past its output limit");
    let v = &check_lines("run", &out)[0];
    assert_eq!(v["signal"], "SIGKILL", "{v}");
    assert_eq!(v["cause"], "output limit of 1024 bytes exceeded", "{v}");
    assert!(
        stderr(&out).contains("killed by SIGKILL (output limit of 1024 bytes exceeded)"),
        "{}",
        stderr(&out)
    );

    let v = json_ok(
        &depot,
        "net-in",
        &["net-in", "js", "--json", "--container-port", "8080"],
    );
    check("net-in");
    assert_eq!(v["container_port"], 8080);
    assert!(v["host_port"].as_u64().unwrap() > 0);

    let v = json_ok(
        &depot,
        "limit-memory",
        &["limit-memory", "js", "64M", "--json"],
    );
    check("limit-memory");
    assert_eq!(v["limit_in_bytes"], 64 << 20);
    let v = json_ok(&depot, "limit-memory", &["limit-memory", "js", "--json"]);
    assert_eq!(v["limit_in_bytes"], 64 << 20);

    let v = json_ok(&depot, "limit-cpu", &["limit-cpu", "js", "512", "--json"]);
    check("limit-cpu");
    assert!(
        v["cpu_shares"] == 512 || v["cpu_weight"].is_u64(),
        "limit-cpu: {v}"
    );

    let v = json_ok(
        &depot,
        "limit-disk",
        &["limit-disk", "js", "--byte-soft", "16MiB", "--json"],
    );
    assert_eq!(v["byte_soft"], 16 << 20);
    assert_eq!(v["block_soft"], 16 << 10);
    assert_eq!(v["byte_limit"], 32 << 20);

    let v = json_ok(
        &depot,
        "limit-bandwidth",
        &["limit-bandwidth", "js", "--json"],
    );
    check("limit-bandwidth");
    assert_eq!(v["in_rate"], Value::Null, "no bandwidth limit yet: {v}");
    let v = json_ok(
        &depot,
        "limit-bandwidth",
        &[
            "limit-bandwidth",
            "js",
            "--rate",
            "8M",
            "--burst",
            "10K",
            "--json",
        ],
    );
    assert_eq!(v["in_rate"], 8_000_000);
    assert_eq!(v["out_rate"], 8_000_000);
    assert_eq!(v["in_burst"], 10240);
    // Without --json: the same settings as lines.
    let text = stdout(&depot.ctl(&["limit-bandwidth", "js"]));
    assert!(
        text.contains("in_rate: 8000000\n") && text.contains("out_burst: 10240\n"),
        "{text}"
    );

    let v = json_ok(&depot, "ping", &["ping", "--json"]);
    check("ping");
    assert_eq!(v["message"], "pong");
    let v = json_ok(&depot, "echo", &["echo", "a \"quoted\" word", "--json"]);
    check("echo");
    // The observing commands (tests/tests/observe.rs has their details).
    let out = depot.ctl(&["events", "js", "--json"]);
    assert_ok(&out, "events --json");
    assert!(
        !check_lines("events", &out).is_empty(),
        "the create, at least"
    );
    check("events");
    let out = depot.ctl(&["ps", "js", "--json"]);
    assert_ok(&out, "ps --json");
    check_lines("ps", &out);
    check("ps");
    let out = depot.ctl(&["stats", "js", "--json"]);
    assert_ok(&out, "stats --json");
    check_lines("stats", &out);
    check("stats");
    assert_eq!(v["message"], "a \"quoted\" word");

    // Every schema was used.
    let mut documented: Vec<String> = fs::read_dir(tests::paths::workspace().join("docs/schema"))
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".json")?.to_string())
        })
        .collect();
    documented.sort();
    checked.sort();
    checked.dedup();
    assert_eq!(
        checked, documented,
        "schemas without a check, or checks without a schema"
    );
    c.destroy();
}

#[test]
fn sizes_take_units_and_bad_ones_are_refused() {
    let Some(depot) = depot("sizes") else {
        return;
    };
    let c = depot.create("sz", &[]);
    let out = depot.ctl(&["limit-memory", "sz", "1.5G"]);
    assert_ok(&out, "limit-memory 1.5G");
    assert_eq!(stdout(&out), format!("{}\n", 3u64 << 29));
    let out = depot.ctl(&["limit-memory", "sz", "48m"]);
    assert_ok(&out, "limit-memory 48m");
    assert_eq!(stdout(&out), format!("{}\n", 48u64 << 20));
    for bad in ["10X", "1.1K", "99999999999T", "M", "5 M"] {
        let out = depot.ctl(&["limit-memory", "sz", bad]);
        assert_refused_with(&out, 2, &format!("limit-memory {bad}"));
        assert!(stderr(&out).contains("invalid size"), "{}", stderr(&out));
    }
    // In range of the parser, out of the kernel's: the limit's own check.
    let out = depot.ctl(&["limit-memory", "sz", "1K"]);
    assert_refused_with(&out, 5, "limit-memory 1K");
    let out = depot.ctl(&["limit-bandwidth", "sz", "--rate", "8MB", "--burst", "10K"]);
    assert_refused_with(&out, 2, "a rate in bytes");
    let out = depot.ctl(&["limit-bandwidth", "sz", "--rate", "8M"]);
    assert_refused_with(&out, 2, "a rate without a burst");
    let out = depot.ctl(&["limit-memory", "sz"]);
    assert_eq!(
        stdout(&out),
        format!("{}\n", 48u64 << 20),
        "the limit stays"
    );
    c.destroy();
}

#[test]
fn env_dir_and_user() {
    let Some(depot) = depot("env") else {
        return;
    };
    let c = depot.create("env", &[]);
    let script = "echo \"A=$A B=$B\"; pwd; id -un";
    let out = depot.ctl(&[
        "run",
        "env",
        "--env",
        "A=1",
        "--env",
        "B=two words 'quoted'",
        "--dir",
        "/tmp",
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert_ok(&out, "run --env --dir");
    assert_eq!(stdout(&out), "A=1 B=two words 'quoted'\n/tmp\nvcap\n");
    // The last --env of a name wins; the user's home without --dir.
    let out = depot.ctl(&[
        "run", "env", "--env", "A=1", "--env", "A=2", "--user", "root", "--", "sh", "-c", script,
    ]);
    assert_ok(&out, "run --user root");
    assert_eq!(stdout(&out), "A=2 B=\n/root\nroot\n");
    let out = depot.ctl(&["run", "env", "--privileged", "--", "id", "-u"]);
    assert_ok(&out, "--privileged");
    assert_eq!(stdout(&out), "0\n");

    // spawn takes them too; link shows the result.
    let out = depot.ctl(&[
        "spawn",
        "env",
        "--env",
        "X=spawned",
        "--dir",
        "/",
        "--",
        "sh",
        "-c",
        "echo $X; pwd",
    ]);
    assert_ok(&out, "spawn --env");
    let job = stdout(&out).trim().to_string();
    let out = depot.ctl(&["link", "env", &job]);
    assert_ok(&out, "link");
    assert_eq!(stdout(&out), "spawned\n/\n");

    // shell: the same options, through wsh.
    let out = depot.ctl(&[
        "shell",
        "env",
        "--env",
        "A=sh",
        "--dir",
        "/tmp",
        "--user",
        "root",
        "--",
        "sh",
        "-c",
        "echo $A; pwd; id -un",
    ]);
    assert_ok(&out, "shell --env --dir --user");
    assert_eq!(stdout(&out), "sh\n/tmp\nroot\n");

    // Bad input: refused before anything runs.
    let jobs_before = fs::read_dir(depot.path("env").join("jobs"))
        .unwrap()
        .count();
    for (args, code) in [
        (vec!["--env", "1A=x"], 5),
        (vec!["--env", "A-B=x"], 5),
        (vec!["--env", "NOVALUE"], 5),
        (vec!["--user", "a b"], 5),
        (vec!["--user", "x:y"], 5),
        (vec!["--privileged", "--user", "vcap"], 2),
    ] {
        for cmd in ["run", "spawn", "shell"] {
            let mut all = vec![cmd, "env"];
            all.extend(&args);
            all.extend(["--", "true"]);
            let out = depot.ctl(&all);
            assert_refused_with(&out, code, &all.join(" "));
        }
    }
    let jobs_after = fs::read_dir(depot.path("env").join("jobs"))
        .unwrap()
        .count();
    assert_eq!(
        jobs_before, jobs_after,
        "a refused job left a job directory"
    );
    // A directory that is not there: the job's shell says so and fails.
    let out = depot.ctl(&["run", "env", "--dir", "/nonexistent", "--", "true"]);
    assert_code(&out, 1, "run --dir /nonexistent");
    assert!(stderr(&out).contains("/nonexistent"), "{}", stderr(&out));
    c.destroy();
}

#[test]
fn shell_passes_the_callers_term() {
    let Some(depot) = depot("term") else {
        return;
    };
    let c = depot.create("term", &[]);
    let shell = |term: Option<&str>| {
        let mut cmd = depot.command();
        cmd.args([
            "shell",
            "term",
            "--",
            "sh",
            "-c",
            "echo \"[${TERM-unset}]\"",
        ]);
        match term {
            Some(t) => cmd.env("TERM", t),
            None => cmd.env_remove("TERM"),
        };
        let out = cmd.output().unwrap();
        assert_ok(&out, "shell");
        stdout(&out)
    };
    assert_eq!(shell(Some("xterm-256color")), "[xterm-256color]\n");
    assert_eq!(shell(Some("vt100")), "[vt100]\n");
    assert_eq!(shell(None), "[unset]\n");
    c.destroy();
}

#[test]
fn stop_and_destroy_take_several_handles() {
    let Some(depot) = depot("several") else {
        return;
    };
    let a = depot.create("sev-a", &[]);
    let b = depot.create("sev-b", &[]);
    let state = |h: &str| {
        let out = depot.ctl(&["info", h, "--json"]);
        json_str(&stdout(&out), "state").unwrap()
    };
    // Every handle is tried; one line per failure; the first failure's code.
    let out = depot.ctl(&["stop", "sev-a", "nosuch", "sev-b", "bad/handle"]);
    assert!(
        !out.status.success(),
        "stop with an unknown handle succeeded"
    );
    assert_code(&out, 3, "stop with an unknown handle");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.lines().all(|l| l.starts_with("wardenctl: ")), "{err}");
    assert!(err.lines().next().unwrap().contains("nosuch"), "{err}");
    assert_eq!(state("sev-a"), "stopped");
    assert_eq!(state("sev-b"), "stopped");
    // Stopping again fails for both (state), each named.
    let out = depot.ctl(&["stop", "sev-a", "sev-b"]);
    assert_code(&out, 8, "stop of stopped containers");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("sev-a") && err.contains("sev-b"), "{err}");

    let out = depot.ctl(&["destroy", "sev-a", "gone", "sev-b"]);
    assert_code(&out, 3, "destroy with an unknown handle");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert_gone(&depot, "sev-a", &a.id);
    assert_gone(&depot, "sev-b", &b.id);
    let out = depot.ctl(&["destroy"]);
    assert_refused_with(&out, 2, "destroy without a handle");
}

#[test]
fn a_job_killed_by_a_signal_says_so() {
    let Some(depot) = depot("signal") else {
        return;
    };
    let c = depot.create("sig", &[]);
    let out = c.run(&["sh", "-c", "echo before; kill -TERM $$"]);
    assert_code(&out, 143, "a job killed by SIGTERM");
    assert_eq!(stdout(&out), "before\n");
    let job = stderr(&out);
    assert!(
        job.starts_with("wardenctl: job ") && job.ends_with(" killed by SIGTERM\n"),
        "{job:?}"
    );
    // An exit with the same code is an exit: no message.
    let out = c.run(&["sh", "-c", "exit 143"]);
    assert_code(&out, 143, "exit 143");
    assert_eq!(stderr(&out), "");
    let out = c.run(&["sh", "-c", "exit 255"]);
    assert_code(&out, 255, "exit 255");
    assert_eq!(stderr(&out), "");
    // stream and link of a killed job: the same.
    let id = c.spawn("kill -INT $$");
    for cmd in ["link", "stream"] {
        let out = depot.ctl(&[cmd, "sig", &id]);
        assert_code(&out, 130, &format!("{cmd} of a job killed by SIGINT"));
        assert_eq!(
            stderr(&out),
            format!("wardenctl: job {id} killed by SIGINT\n")
        );
    }

    // The OOM killer: named, 137.
    let out = depot.ctl(&["limit-memory", "sig", "48M"]);
    assert_ok(&out, "limit-memory 48M");
    let out = depot.ctl(&[
        "run",
        "sig",
        "--json",
        "--",
        "sh",
        "-c",
        "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo alive",
    ]);
    assert_code(&out, 137, "an OOM-killed job");
    let v = &check_lines("run", &out)[0];
    assert_eq!(v["signal"], "SIGKILL", "{v}");
    assert_eq!(v["cause"], "out of memory", "{v}");
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l.starts_with("wardenctl: job ")
            && l.ends_with(" killed by SIGKILL (out of memory)")),
        "{err}"
    );
    wait_for("the container to stop", Duration::from_secs(30), || {
        json_str(&c.info(), "state").as_deref() == Some("stopped")
    });
    // wsh wrote the status it got, 0600.
    let jobs = depot.path("sig").join("jobs");
    let status = jobs.join(v["job_id"].to_string()).join("wsh.status");
    assert_eq!(fs::read_to_string(&status).unwrap(), "signaled 9\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(Path::new(&status))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    c.destroy();
}

/// A container made by an earlier build keeps its own wsh, which knows no
/// `--status-file`, and its own iomux-spawn, which knows no `--wshd`: its
/// jobs still run through that wsh (each option left out, found once by
/// asking that wsh's --help and by looking for iomux-spawn's usage line),
/// and a killed job is reported as before.
#[test]
fn a_container_whose_wsh_predates_status_files_runs_jobs() {
    let Some(depot) = depot("old-wsh") else {
        return;
    };
    let c = depot.create("oldwsh", &[]);
    let bin = depot.path("oldwsh").join("bin");
    // A container that old has an iomux-spawn without --wshd too (no usage
    // line naming it): its jobs go through its wsh.
    fs::rename(bin.join("iomux-spawn"), bin.join("iomux-spawn.real")).unwrap();
    let old_spawn = format!(
        "#!/bin/sh\nexec {} \"$@\"\n",
        bin.join("iomux-spawn.real").display()
    );
    fs::write(bin.join("iomux-spawn"), old_spawn).unwrap();
    fs::rename(bin.join("wsh"), bin.join("wsh.real")).unwrap();
    // An older wsh: its usage on stderr without the option, which it
    // refuses, as it refuses any option it does not know.
    let fake = format!(
        "#!/bin/sh\n\
         for a in \"$@\"; do case $a in\n\
           --help) echo 'Usage: wsh [OPTION]... (an older one)' >&2; exit 0;;\n\
           --status-file) echo 'wsh: unknown option --status-file' >&2; exit 1;;\n\
         esac; done\n\
         exec {} \"$@\"\n",
        bin.join("wsh.real").display()
    );
    fs::write(bin.join("wsh"), fake).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for helper in ["wsh", "iomux-spawn"] {
        fs::set_permissions(bin.join(helper), fs::Permissions::from_mode(0o755)).unwrap();
    }

    let out = c.run(&["echo", "still runs"]);
    assert_ok(&out, "a job through the older wsh");
    assert_eq!(stdout(&out), "still runs\n");
    assert_eq!(
        fs::read_to_string(depot.path("oldwsh").join("etc/wsh-status-file")).unwrap(),
        "no\n"
    );
    assert_eq!(
        fs::read_to_string(depot.path("oldwsh").join("etc/iomux-spawn-wshd")).unwrap(),
        "no\n"
    );
    let out = c.run(&["sh", "-c", "kill -TERM $$"]);
    assert_code(&out, 255, "a killed job, its signal unknown");
    c.destroy();
}
