//! wardend over its real socket, as root, with real containers of the
//! busybox rootfs: every request type and its errors, malformed input,
//! many clients at once, stalled readers, grace time, signals, restarts
//! (also after SIGKILL), and containers shared with wardenctl.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tests::ctl::{assert_gone, assert_ok, live_cmdlines, stdout, wait_for};
use tests::wardend::{error_text, Client, TestServer};
use warden_protocol::{pb, Response};

/// This binary's /24s: 10.255.160.0 .. 10.255.191.0.
const POOL_FIRST: u32 = 416;
const POOL_COUNT: u32 = 32;

fn server(test: &str) -> Option<TestServer> {
    TestServer::start(test, POOL_FIRST, POOL_COUNT, "")
}

fn server_with(test: &str, extra: &str) -> Option<TestServer> {
    TestServer::start(test, POOL_FIRST, POOL_COUNT, extra)
}

fn container_id(s: &TestServer, handle: &str) -> String {
    let out = s.depot.ctl(&["info", handle, "--json"]);
    assert_ok(&out, "wardenctl info");
    tests::ctl::json_str(&stdout(&out), "id").expect("an id")
}

#[test]
fn every_request_type() {
    let Some(s) = server("every-request") else {
        return;
    };
    let mut c = s.client();
    assert!(matches!(c.ok(pb::PingRequest {}), Response::Ping(_)));
    match c.ok(pb::EchoRequest {
        message: b"hi \xff there".to_vec(),
    }) {
        Response::Echo(r) => assert_eq!(r.message, b"hi \xff there"),
        r => panic!("{r:?}"),
    }

    let data = s.depot.data("binds");
    std::fs::write(data.join("file"), "bound\n").unwrap();
    let handle = match c.ok(pb::CreateRequest {
        handle: Some("every".into()),
        bind_mounts: vec![pb::create_request::BindMount {
            src_path: data.display().to_string(),
            dst_path: "/mnt/binds".into(),
            mode: pb::create_request::bind_mount::Mode::Ro as i32,
        }],
        grace_time: Some(3600),
        ..Default::default()
    }) {
        Response::Create(r) => r.handle,
        r => panic!("{r:?}"),
    };
    assert_eq!(handle, "every");
    let id = container_id(&s, &handle);
    match c.ok(pb::ListRequest {}) {
        Response::List(r) => assert_eq!(r.handles, vec!["every".to_string()]),
        r => panic!("{r:?}"),
    }

    // run: output and exit status, bytes kept exactly.
    let r = c.run(
        &handle,
        "cat /mnt/binds/file; printf '\\377\\n' >&2; exit 7",
    );
    assert_eq!(r.exit_status, Some(7));
    assert_eq!(r.stdout.as_deref(), Some(&b"bound\n"[..]));
    assert_eq!(r.stderr.as_deref(), Some(&b"\xff\n"[..]));
    assert_eq!(
        r.info.as_ref().and_then(|i| i.state.as_deref()),
        Some("active")
    );

    // privileged, rlimits, discard_output.
    match c.ok(pb::RunRequest {
        handle: handle.clone(),
        script: b"id -u; ulimit -n".to_vec(),
        privileged: Some(true),
        rlimits: Some(pb::ResourceLimits {
            nofile: Some(123),
            ..Default::default()
        }),
        ..Default::default()
    }) {
        Response::Run(r) => assert_eq!(r.stdout.as_deref(), Some(&b"0\n123\n"[..])),
        r => panic!("{r:?}"),
    }
    let r = c.run(&handle, "id -u");
    assert_ne!(
        r.stdout.as_deref(),
        Some(&b"0\n"[..]),
        "unprivileged runs as vcap"
    );
    match c.ok(pb::RunRequest {
        handle: handle.clone(),
        script: b"echo gone".to_vec(),
        discard_output: Some(true),
        ..Default::default()
    }) {
        Response::Run(r) => {
            assert_eq!(r.exit_status, Some(0));
            assert!(r.stdout.unwrap_or_default().is_empty());
        }
        r => panic!("{r:?}"),
    }

    // spawn, then link and stream (any number of times).
    let job = c.spawn(&handle, "echo out; echo err >&2; exit 3");
    match c.ok(pb::LinkRequest {
        handle: handle.clone(),
        job_id: job,
    }) {
        Response::Link(r) => {
            assert_eq!(r.exit_status, Some(3));
            assert_eq!(r.stdout.as_deref(), Some(&b"out\n"[..]));
            assert_eq!(r.stderr.as_deref(), Some(&b"err\n"[..]));
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(
        c.stream(&handle, job),
        (b"out\n".to_vec(), b"err\n".to_vec(), 3)
    );
    let job2 = c.spawn(&handle, "sleep 60");
    assert!(job2 > job, "job ids grow per container");

    // info with every field.
    match c.ok(pb::InfoRequest {
        handle: handle.clone(),
    }) {
        Response::Info(i) => {
            assert_eq!(i.state.as_deref(), Some("active"));
            assert!(i
                .host_ip
                .as_deref()
                .is_some_and(|ip| ip.starts_with("10.255.")));
            assert!(i
                .container_ip
                .as_deref()
                .is_some_and(|ip| ip.starts_with("10.255.")));
            assert_eq!(
                i.container_path.as_deref(),
                Some(s.depot.path(&handle).to_str().unwrap())
            );
            assert!(i
                .memory_stat
                .is_some_and(|m| m.rss.is_some() || m.cache.is_some()));
            assert!(i.cpu_stat.is_some_and(|c| c.usage.is_some()));
            assert!(i.disk_stat.is_some());
            assert!(i.bandwidth_stat.is_some());
            assert_eq!(i.job_ids, vec![u64::from(job2)]);
        }
        r => panic!("{r:?}"),
    }

    // limits return what is in force.
    match c.ok(pb::LimitMemoryRequest {
        handle: handle.clone(),
        limit_in_bytes: Some(64 << 20),
    }) {
        Response::LimitMemory(r) => assert_eq!(r.limit_in_bytes, Some(64 << 20)),
        r => panic!("{r:?}"),
    }
    match c.ok(pb::LimitMemoryRequest {
        handle: handle.clone(),
        limit_in_bytes: None,
    }) {
        Response::LimitMemory(r) => assert_eq!(r.limit_in_bytes, Some(64 << 20)),
        r => panic!("{r:?}"),
    }
    match c.ok(pb::LimitCpuRequest {
        handle: handle.clone(),
        limit_in_shares: Some(512),
    }) {
        Response::LimitCpu(r) => assert_eq!(r.limit_in_shares, Some(512)),
        r => panic!("{r:?}"),
    }
    match c.ok(pb::LimitBandwidthRequest {
        handle: handle.clone(),
        rate: 800_000,
        burst: 64_000,
    }) {
        Response::LimitBandwidth(r) => {
            assert_eq!((r.rate, r.burst), (800_000, 64_000));
        }
        r => panic!("{r:?}"),
    }
    // No disk image: limit_disk says why.
    let e = c.error(pb::LimitDiskRequest {
        handle: handle.clone(),
        byte_limit: Some(1 << 30),
        ..Default::default()
    });
    assert!(!e.is_empty());

    // net_in gives both ports; net_out takes a rule.
    match c.ok(pb::NetInRequest {
        handle: handle.clone(),
        host_port: None,
        container_port: Some(8080),
    }) {
        Response::NetIn(r) => {
            assert!(r.host_port >= 61001, "{r:?}");
            assert_eq!(r.container_port, 8080);
        }
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        c.ok(pb::NetOutRequest {
            handle: handle.clone(),
            network: Some("10.255.191.0/24".into()),
            port: Some(80),
            protocol: Some(pb::net_out_request::Protocol::Tcp as i32),
            ..Default::default()
        }),
        Response::NetOut(_)
    ));

    // copy_in / copy_out, with owner.
    std::fs::write(data.join("in"), "copied\n").unwrap();
    c.ok(pb::CopyInRequest {
        handle: handle.clone(),
        src_path: data.join("in").display().to_string(),
        dst_path: "/tmp/in".into(),
    });
    let r = c.run(&handle, "cat /tmp/in");
    assert_eq!(r.stdout.as_deref(), Some(&b"copied\n"[..]));
    let out_dir = s.depot.data("out");
    c.ok(pb::CopyOutRequest {
        handle: handle.clone(),
        src_path: "/tmp/in".into(),
        dst_path: out_dir.join("back").display().to_string(),
        owner: Some("nobody".into()),
    });
    assert_eq!(
        std::fs::read_to_string(out_dir.join("back")).unwrap(),
        "copied\n"
    );

    // stop, then destroy; nothing is left.
    c.ok(pb::StopRequest {
        handle: handle.clone(),
        kill: Some(true),
        ..Default::default()
    });
    match c.ok(pb::InfoRequest {
        handle: handle.clone(),
    }) {
        Response::Info(i) => assert_eq!(i.state.as_deref(), Some("stopped")),
        r => panic!("{r:?}"),
    }
    c.destroy(&handle);
    assert_gone(&s.depot, &handle, &id);
    match c.ok(pb::ListRequest {}) {
        Response::List(r) => assert!(r.handles.is_empty()),
        r => panic!("{r:?}"),
    }
}

#[test]
fn errors_keep_the_connection() {
    let Some(s) = server("errors") else {
        return;
    };
    let mut c = s.client();
    let unknown = |c: &mut Client, r: warden_protocol::Request| {
        let e = c.error(r);
        assert!(e.contains("nope"), "{e}");
    };
    for request in [
        pb::InfoRequest {
            handle: "nope".into(),
        }
        .into(),
        pb::StopRequest {
            handle: "nope".into(),
            ..Default::default()
        }
        .into(),
        pb::DestroyRequest {
            handle: "nope".into(),
        }
        .into(),
        pb::SpawnRequest {
            handle: "nope".into(),
            ..Default::default()
        }
        .into(),
        pb::RunRequest {
            handle: "nope".into(),
            ..Default::default()
        }
        .into(),
        pb::LinkRequest {
            handle: "nope".into(),
            job_id: 1,
        }
        .into(),
        pb::StreamRequest {
            handle: "nope".into(),
            job_id: 1,
        }
        .into(),
        pb::NetInRequest {
            handle: "nope".into(),
            ..Default::default()
        }
        .into(),
        pb::NetOutRequest {
            handle: "nope".into(),
            ..Default::default()
        }
        .into(),
        pb::CopyInRequest {
            handle: "nope".into(),
            src_path: "/etc/hostname".into(),
            dst_path: "/x".into(),
        }
        .into(),
        pb::CopyOutRequest {
            handle: "nope".into(),
            src_path: "/x".into(),
            dst_path: "/tmp/x".into(),
            owner: None,
        }
        .into(),
        pb::LimitMemoryRequest {
            handle: "nope".into(),
            limit_in_bytes: None,
        }
        .into(),
        pb::LimitDiskRequest {
            handle: "nope".into(),
            ..Default::default()
        }
        .into(),
        pb::LimitBandwidthRequest {
            handle: "nope".into(),
            rate: 1000,
            burst: 2000,
        }
        .into(),
        pb::LimitCpuRequest {
            handle: "nope".into(),
            limit_in_shares: None,
        }
        .into(),
    ] {
        unknown(&mut c, request);
    }
    // Bad arguments, each with its own message.
    let e = c.error(pb::CreateRequest {
        handle: Some("../x".into()),
        ..Default::default()
    });
    assert!(e.contains("handle"), "{e}");
    let e = c.error(pb::CreateRequest {
        rootfs: Some("/nonexistent-rootfs".into()),
        ..Default::default()
    });
    assert!(e.contains("rootfs"), "{e}");
    let e = c.error(pb::CreateRequest {
        network: Some("not-an-ip".into()),
        ..Default::default()
    });
    assert!(e.contains("not-an-ip"), "{e}");
    let e = c.error(pb::CreateRequest {
        bind_mounts: vec![pb::create_request::BindMount {
            src_path: "/nonexistent-src".into(),
            dst_path: "/mnt".into(),
            mode: 0,
        }],
        ..Default::default()
    });
    assert!(e.contains("/nonexistent-src"), "{e}");
    let handle = c.create("errs");
    let e = c.error(pb::CreateRequest {
        handle: Some("errs".into()),
        ..Default::default()
    });
    assert!(e.contains("exists"), "{e}");
    let e = c.error(pb::LinkRequest {
        handle: handle.clone(),
        job_id: 99,
    });
    assert!(e.contains("99"), "{e}");
    let e = c.error(pb::LimitMemoryRequest {
        handle: handle.clone(),
        limit_in_bytes: Some(1),
    });
    assert!(e.contains("out of range"), "{e}");
    let e = c.error(pb::NetInRequest {
        handle: handle.clone(),
        host_port: Some(70000),
        container_port: None,
    });
    assert!(e.contains("70000"), "{e}");
    let e = c.error(pb::NetOutRequest {
        handle: handle.clone(),
        network: Some("bogus".into()),
        ..Default::default()
    });
    assert!(!e.is_empty());
    let e = c.error(pb::CopyInRequest {
        handle: handle.clone(),
        src_path: "/nonexistent-copy".into(),
        dst_path: "/x".into(),
    });
    assert!(e.contains("/nonexistent-copy"), "{e}");
    // A request missing a required field is named.
    let mut bytes = Vec::new();
    prost::Message::encode(
        &pb::Message {
            r#type: pb::message::Type::Info as i32,
            payload: Vec::new(),
        },
        &mut bytes,
    )
    .unwrap();
    c.send_raw(&warden_protocol::framing::encode_frame(&bytes))
        .unwrap();
    match c.receive() {
        Response::Error(e) => assert!(error_text(&e).contains("handle"), "{}", error_text(&e)),
        r => panic!("{r:?}"),
    }
    // Still the same connection, still serving.
    assert!(matches!(c.ok(pb::PingRequest {}), Response::Ping(_)));
    c.destroy(&handle);
}

#[test]
fn malformed_frames_never_hurt_the_server() {
    let Some(s) = server("malformed") else {
        return;
    };
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut c = s.client();
    for i in 0..10_000u32 {
        // Framed garbage on one connection: an error each, the connection
        // goes on.
        let len = (next() % 64) as usize;
        let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let frame = match i % 4 {
            0 => warden_protocol::framing::encode_frame(&garbage),
            // An unknown type.
            1 => {
                let mut b = Vec::new();
                prost::Message::encode(
                    &pb::Message {
                        r#type: 1000 + i as i32,
                        payload: garbage.clone(),
                    },
                    &mut b,
                )
                .unwrap();
                warden_protocol::framing::encode_frame(&b)
            }
            // A known type whose payload is garbage (info: whatever it
            // decodes to names no container).
            2 => {
                let mut b = Vec::new();
                prost::Message::encode(
                    &pb::Message {
                        r#type: pb::message::Type::Info as i32,
                        payload: garbage.clone(),
                    },
                    &mut b,
                )
                .unwrap();
                warden_protocol::framing::encode_frame(&b)
            }
            // An error response is not a request.
            _ => {
                let mut b = Vec::new();
                prost::Message::encode(
                    &pb::Message {
                        r#type: pb::message::Type::Error as i32,
                        payload: Vec::new(),
                    },
                    &mut b,
                )
                .unwrap();
                warden_protocol::framing::encode_frame(&b)
            }
        };
        c.send_raw(&frame).unwrap();
        match c.receive() {
            Response::Error(_) => {}
            r => panic!("frame {i}: {r:?}"),
        }
    }
    // Unframeable input: an error, then the connection closes.
    for bad in [
        &b"abc\r\n"[..],
        b"99999999999999999999\r\n",
        b"5\r\nhello!!",
        b"-1\r\n",
        b"\r\n",
    ] {
        let mut c = s.client();
        c.send_raw(bad).unwrap();
        match c.try_receive() {
            Some(Response::Error(_)) | None => {}
            Some(r) => panic!("{bad:?}: {r:?}"),
        }
        assert!(c.try_receive().is_none(), "{bad:?}: the connection closes");
    }
    // A client that sends half a frame and hangs up.
    {
        let mut c = s.client();
        c.send_raw(b"100\r\nshort").unwrap();
    }
    // After all that, a normal request works.
    let mut c = s.client();
    assert!(matches!(c.ok(pb::PingRequest {}), Response::Ping(_)));
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.pid()), None).is_ok());
    match c.ok(pb::ListRequest {}) {
        Response::List(r) => assert!(
            r.handles.is_empty(),
            "garbage made no container: {:?}",
            r.handles
        ),
        r => panic!("{r:?}"),
    }
}

#[test]
fn concurrent_clients_each_run_a_job() {
    let Some(s) = server("concurrent") else {
        return;
    };
    let handle = s.client().create("busy");
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let socket = s.socket.clone();
            let handle = handle.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket);
                let r = c.run(&handle, &format!("echo {i}"));
                assert_eq!(r.exit_status, Some(0));
                assert_eq!(r.stdout, Some(format!("{i}\n").into_bytes()));
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client failed");
    }
    let mut c = s.client();
    c.destroy(&handle);
}

#[test]
fn a_large_stream_arrives_byte_exact() {
    // Above the default job output limit of 10 MiB.
    let Some(s) = server_with("large-stream", "  job_output_limit: 104857600\n") else {
        return;
    };
    let mut c = s.client();
    let handle = c.create("large");
    let blob = s.depot.data("blob").join("random");
    let mut bytes = vec![0u8; 50 << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    std::fs::write(&blob, &bytes).unwrap();
    c.ok(pb::CopyInRequest {
        handle: handle.clone(),
        src_path: blob.display().to_string(),
        dst_path: "/tmp/random".into(),
    });
    let job = c.spawn(&handle, "cat /tmp/random");
    let (out, err, status) = c.stream(&handle, job);
    assert_eq!(status, 0, "stderr: {}", String::from_utf8_lossy(&err));
    assert_eq!(out.len(), bytes.len());
    assert!(out == bytes, "the stream differs from the file");
    c.destroy(&handle);
}

#[test]
fn a_stalled_reader_stalls_no_one_else() {
    let Some(s) = server_with("stalled", "  job_output_limit: 104857600\n") else {
        return;
    };
    let mut c = s.client();
    let handle = c.create("stall");
    // A mebibyte, a pause (the stopped client stops within it), the rest.
    let job = c.spawn(
        &handle,
        "{ dd if=/dev/zero bs=1M count=1; sleep 1; dd if=/dev/zero bs=1M count=39; } 2>/dev/null | tr '\\0' x",
    );
    // A real client process (the warden REPL) streaming the job, stopped
    // with SIGSTOP once the output flows.
    let got = s.depot.data("stalled").join("out");
    let mut stalled = std::process::Command::new(tests::paths::bin("warden"))
        .arg("--socket")
        .arg(&s.socket)
        .args([
            "--",
            "stream",
            "--handle",
            &handle,
            "--job_id",
            &job.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&got).unwrap())
        .spawn()
        .unwrap();
    let stalled_pid = nix::unistd::Pid::from_raw(stalled.id() as i32);
    wait_for(
        "the stalled client's first bytes",
        Duration::from_secs(10),
        || std::fs::metadata(&got).is_ok_and(|m| m.len() > 0),
    );
    nix::sys::signal::kill(stalled_pid, Signal::SIGSTOP).unwrap();
    // Another one streams the same job at full speed, and others are
    // served meanwhile.
    let started = Instant::now();
    let (out, _, status) = s.client().stream(&handle, job);
    assert_eq!((out.len(), status), (40 << 20, 0));
    assert!(matches!(
        s.client().ok(pb::PingRequest {}),
        Response::Ping(_)
    ));
    eprintln!(
        "full-speed stream beside a stopped one: {:?}",
        started.elapsed()
    );
    let before = std::fs::metadata(&got).unwrap().len();
    assert!(
        before < 40 << 20,
        "the stopped client had not read it all yet"
    );
    // The server holds little for the stopped client: its RSS stays far
    // below the 40 MiB the job wrote.
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", s.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kib < 30 * 1024, "wardend holds {rss_kib} KiB");
    // Continued, the client gets every byte and the job's status.
    nix::sys::signal::kill(stalled_pid, Signal::SIGCONT).unwrap();
    let status = stalled.wait().unwrap();
    assert!(status.success(), "{status}");
    let total = std::fs::metadata(&got).unwrap().len();
    assert_eq!(total, 40 << 20);
    c.destroy(&handle);
}

#[test]
fn grace_time_expires_and_a_reference_cancels_it() {
    let Some(s) = server("grace") else {
        return;
    };
    let expiring = {
        let mut c = s.client();
        let h = match c.ok(pb::CreateRequest {
            handle: Some("expires".into()),
            grace_time: Some(1),
            ..Default::default()
        }) {
            Response::Create(r) => r.handle,
            r => panic!("{r:?}"),
        };
        let kept = match c.ok(pb::CreateRequest {
            handle: Some("kept".into()),
            grace_time: Some(2),
            ..Default::default()
        }) {
            Response::Create(r) => r.handle,
            r => panic!("{r:?}"),
        };
        assert_eq!(kept, "kept");
        h
    };
    let id = s
        .depot
        .path(&expiring)
        .join("etc/config")
        .exists()
        .then(|| container_id(&s, &expiring))
        .unwrap();
    // Another connection refers to "kept" before its time is up, and holds it.
    let mut holder = s.client();
    holder.ok(pb::InfoRequest {
        handle: "kept".into(),
    });
    wait_for(
        "the grace time to destroy the container",
        Duration::from_secs(10),
        || !s.depot.path(&expiring).exists(),
    );
    assert_gone(&s.depot, &expiring, &id);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        s.depot.path("kept").exists(),
        "a referenced container stays"
    );
    // Once the holder is gone, kept's timer starts.
    drop(holder);
    wait_for(
        "kept to expire after its holder left",
        Duration::from_secs(10),
        || !s.depot.path("kept").exists(),
    );
}

#[test]
fn sigterm_leaves_containers_and_a_restart_finds_them() {
    let Some(mut s) = server("restart") else {
        return;
    };
    let mut c = s.client();
    let handle = c.create("survivor");
    let job = c.spawn(&handle, "sleep 2; echo done");
    drop(c);
    let status = s.stop_with(Signal::SIGTERM);
    assert!(status.success(), "{status}");
    assert!(!s.socket.exists(), "the socket is removed");
    assert!(s.depot.path(&handle).exists(), "the container stays");
    s.launch();
    let mut c = s.client();
    match c.ok(pb::LinkRequest {
        handle: handle.clone(),
        job_id: job,
    }) {
        Response::Link(r) => {
            assert_eq!(r.exit_status, Some(0));
            assert_eq!(r.stdout.as_deref(), Some(&b"done\n"[..]));
        }
        r => panic!("{r:?}"),
    }
    c.destroy(&handle);
}

#[test]
fn sigkill_during_a_stream_and_a_create_then_restart() {
    let Some(mut s) = server("sigkill") else {
        return;
    };
    let mut c = s.client();
    let handle = c.create("streamed");
    let job = c.spawn(
        &handle,
        "for i in 1 2 3 4 5 6; do echo $i; sleep 0.5; done; exit 4",
    );
    c.send(pb::StreamRequest {
        handle: handle.clone(),
        job_id: job,
    });
    match c.receive() {
        Response::Stream(r) => assert_eq!(r.data.as_deref(), Some(&b"1\n"[..])),
        r => panic!("{r:?}"),
    }
    let status = s.stop_with(Signal::SIGKILL);
    assert!(!status.success());
    assert!(c.try_receive().is_none(), "the stream ends with the server");

    // A create cut down half-way.
    s.launch();
    let socket = s.socket.clone();
    let creator = std::thread::spawn(move || {
        let mut c = Client::connect(&socket);
        c.send(pb::CreateRequest {
            handle: Some("halfway".into()),
            ..Default::default()
        });
        c.try_receive()
    });
    wait_for("the create to begin", Duration::from_secs(10), || {
        s.depot.path("halfway").exists()
    });
    s.stop_with(Signal::SIGKILL);
    let _ = creator.join();

    s.launch();
    let mut c = s.client();
    // The job's whole output and status are still there.
    assert_eq!(
        c.stream(&handle, job),
        (b"1\n2\n3\n4\n5\n6\n".to_vec(), Vec::new(), 4)
    );
    // The half-made container is gone, or whole and usable; nothing of it
    // is half there.
    wait_for(
        "the half-made create to settle",
        Duration::from_secs(30),
        || {
            let p = s.depot.path("halfway");
            !p.exists()
                || std::fs::read_to_string(p.join("etc/state")).is_ok_and(|t| t.trim() == "active")
        },
    );
    if s.depot.path("halfway").exists() {
        c.destroy("halfway");
    }
    c.destroy(&handle);
    assert_no_process_of(&s.depot.dir);
}

/// A `run` is recorded by a thread of wardend (no recorder process, no
/// record.pid). Killed in the middle of one, wardend leaves the job
/// running; started again, it gives the job a recorder process, which goes
/// on from the thread's saved cursors: the output is whole, in order, and
/// no line is kept twice.
#[test]
fn sigkill_during_a_run_then_restart_keeps_every_byte_once() {
    let Some(mut s) = server("sigkill-run") else {
        return;
    };
    let mut c = s.client();
    let handle = c.create("ran");
    c.send(pb::RunRequest {
        handle: handle.clone(),
        script: b"i=0; while [ $i -lt 30 ]; do echo out $i; echo err $i >&2; i=$((i+1)); sleep 0.05; done; exit 3".to_vec(),
        ..Default::default()
    });
    let job = s.depot.path(&handle).join("jobs/1");
    wait_for("the run's first lines", Duration::from_secs(10), || {
        std::fs::read_to_string(job.join("stdout.log")).is_ok_and(|t| t.lines().count() >= 5)
    });
    assert!(
        !job.join("record.pid").exists(),
        "a run through wardend starts no recorder process"
    );
    let recorders = |dir: &std::path::Path| {
        live_cmdlines()
            .iter()
            .filter(|(_, text)| text.contains("__record") && text.contains(dir.to_str().unwrap()))
            .count()
    };
    assert_eq!(recorders(&job), 0, "no recorder process for a run");
    let status = s.stop_with(Signal::SIGKILL);
    assert!(!status.success());
    assert!(c.try_receive().is_none(), "the run ends with the server");
    // The job writes on while nobody records it (well within the ring).
    std::thread::sleep(Duration::from_millis(300));

    s.launch();
    wait_for(
        "a recorder process for the job",
        Duration::from_secs(10),
        || recorders(&job) == 1 || job.join("exit_status").exists(),
    );
    let mut c = s.client();
    let (out, err, code) = c.stream(&handle, 1);
    let want = |what: &str| -> Vec<u8> {
        (0..30)
            .map(|i| format!("{what} {i}\n"))
            .collect::<String>()
            .into_bytes()
    };
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want("out"))
    );
    assert_eq!(
        String::from_utf8_lossy(&err),
        String::from_utf8_lossy(&want("err"))
    );
    assert_eq!(code, 3);
    c.destroy(&handle);
    assert_no_process_of(&s.depot.dir);
}

#[test]
fn sigusr2_drains() {
    let Some(mut s) = server("drain") else {
        return;
    };
    let mut c = s.client();
    let handle = c.create("drained");
    // A request in flight when the drain begins finishes.
    let socket = s.socket.clone();
    let h = handle.clone();
    let in_flight = std::thread::spawn(move || {
        let mut c = Client::connect(&socket);
        c.send(pb::CopyInRequest {
            handle: h,
            src_path: "/etc/hostname".into(),
            dst_path: "/tmp/h".into(),
        });
        c.try_receive()
    });
    let idle = s.client();
    std::thread::sleep(Duration::from_millis(20));
    let status = s.stop_with(Signal::SIGUSR2);
    assert_eq!(status.code(), Some(0), "{status}");
    let answer = in_flight.join().unwrap();
    assert!(
        answer.is_none() || matches!(answer, Some(Response::CopyIn(_))),
        "{answer:?}"
    );
    drop(idle);
    assert!(
        UnixStream::connect(&s.socket).is_err(),
        "no longer accepting"
    );
    assert!(s.depot.path(&handle).exists(), "containers stay");
    s.launch();
    s.client().destroy(&handle);
}

#[test]
fn wardenctl_and_wardend_share_the_depot() {
    let Some(s) = server("shared") else {
        return;
    };
    let made_by_ctl = s.depot.create("by-ctl", &[]);
    let mut c = s.client();
    let r = c.run("by-ctl", "echo through wardend");
    assert_eq!(r.stdout.as_deref(), Some(&b"through wardend\n"[..]));
    let by_server = c.create("by-server");
    let out = s
        .depot
        .ctl(&["run", &by_server, "--", "echo", "through wardenctl"]);
    assert_ok(&out, "wardenctl run");
    assert_eq!(stdout(&out), "through wardenctl\n");
    match c.ok(pb::ListRequest {}) {
        Response::List(r) => {
            let set: HashSet<_> = r.handles.into_iter().collect();
            assert_eq!(
                set,
                HashSet::from(["by-ctl".to_string(), by_server.clone()])
            );
        }
        r => panic!("{r:?}"),
    }
    let id = container_id(&s, &by_server);
    assert_ok(&s.depot.ctl(&["destroy", &by_server]), "wardenctl destroy");
    assert_gone(&s.depot, &by_server, &id);
    made_by_ctl.destroy();
}

#[test]
fn the_socket_is_the_access_control() {
    let Some(s) = server("socket-default") else {
        return;
    };
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "default mode");
    assert!(
        !s.log_text().contains("unix_domain_permissions"),
        "no warning at 0600"
    );
    drop(s);

    let Some(s) = server_with("socket-open", "  unix_domain_permissions: 0777\n") else {
        return;
    };
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o777);
    let log = s.log_text();
    let warning: Vec<_> = log
        .lines()
        .filter(|l| l.contains("unix_domain_permissions"))
        .collect();
    assert_eq!(
        warning.len(),
        1,
        "one warning line naming the setting: {log}"
    );
    drop(s);

    // A socket directory others may write to is refused.
    let Some(depot) = tests::ctl::TestDepot::new_in("socket-dir", POOL_FIRST, POOL_COUNT) else {
        return;
    };
    let open_dir = depot.root.join("open");
    std::fs::create_dir_all(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = depot.root.join("linux.yml");
    std::fs::write(
        &config,
        format!(
            "server:\n  unix_domain_path: {}/warden.sock\n  container_depot_path: {}\n",
            open_dir.display(),
            depot.dir.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(tests::paths::bin("wardend"))
        .arg("--config")
        .arg(&config)
        .env("WARDEN_BIN_DIR", &depot.bin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not writable by others"), "{err}");
    assert!(!open_dir.join("warden.sock").exists());
}

#[test]
fn a_bad_config_is_one_clear_line() {
    let Some(depot) = tests::ctl::TestDepot::new_in("bad-config", POOL_FIRST, POOL_COUNT) else {
        return;
    };
    let config = depot.root.join("bad.yml");
    std::fs::write(&config, "network:\n  pool_size: 100\n").unwrap();
    let out = std::process::Command::new(tests::paths::bin("wardend"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("network.pool_size"), "{err}");
    let out = std::process::Command::new(tests::paths::bin("wardend"))
        .arg("--config")
        .arg(depot.root.join("missing.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yml"));
}

/// A client of another implementation (Python's protobuf, from a .proto
/// written for it alone) drives wardend.
#[test]
fn a_python_client_drives_wardend() {
    let Some(s) = server("python") else {
        return;
    };
    let python_dir = tests::paths::workspace().join("tests/python");
    let generated = s.depot.data("python");
    let out = std::process::Command::new("protoc")
        .arg(format!("--proto_path={}", python_dir.display()))
        .arg(format!("--python_out={}", generated.display()))
        .arg("warden_client.proto")
        .output()
        .expect("protoc (Debian's protobuf-compiler; scripts/install-deps.sh installs it)");
    assert_ok(&out, "protoc");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(python_dir.join("warden_client.py"))
        .arg(&s.socket)
        .arg(&generated)
        .arg("from-python")
        .output()
        .expect("/usr/bin/python3 (with Debian's python3-protobuf)");
    assert_ok(&out, "the python client");
    let text = stdout(&out);
    for step in [
        "ok ping",
        "ok create",
        "ok run stdout",
        "ok stream data",
        "ok destroy",
    ] {
        assert!(text.contains(step), "{step} missing from:\n{text}");
    }
    assert!(!s.depot.path("from-python").exists());
}

/// A restarted server starts the grace timers of what it finds.
#[test]
fn grace_timers_restart_with_the_server() {
    let Some(mut s) = server("grace-restart") else {
        return;
    };
    let mut c = s.client();
    c.ok(pb::CreateRequest {
        handle: Some("timed".into()),
        grace_time: Some(2),
        ..Default::default()
    });
    // Still referenced when the server goes: no timer runs while it is away.
    s.stop_with(Signal::SIGKILL);
    drop(c);
    std::thread::sleep(Duration::from_secs(3));
    assert!(s.depot.path("timed").exists());
    let args = s.depot.create_args("no-grace", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_ok(&s.depot.ctl(&args), "wardenctl create");
    let id = container_id(&s, "no-grace");
    s.launch();
    wait_for(
        "the restarted timer to fire",
        Duration::from_secs(10),
        || !s.depot.path("timed").exists(),
    );
    // wardenctl's container has no grace time: it stays.
    std::thread::sleep(Duration::from_secs(1));
    assert!(s.depot.path("no-grace").exists());
    assert_ok(&s.depot.ctl(&["destroy", "no-grace"]), "wardenctl destroy");
    assert_gone(&s.depot, "no-grace", &id);
}

fn thread_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// A client that hangs up while its link or stream waits on a job frees
/// the server's thread at once; the job goes on.
#[test]
fn a_client_that_hangs_up_frees_its_wait() {
    let Some(s) = server("hang-up") else {
        return;
    };
    let mut c = s.client();
    let handle = c.create("waited");
    let job = c.spawn(&handle, "sleep 30; echo late");
    let before = thread_count(s.pid());
    let mut waiters = Vec::new();
    for i in 0..20 {
        let mut waiter = s.client();
        if i % 2 == 0 {
            waiter.send(pb::LinkRequest {
                handle: handle.clone(),
                job_id: job,
            });
        } else {
            waiter.send(pb::StreamRequest {
                handle: handle.clone(),
                job_id: job,
            });
        }
        waiters.push(waiter);
    }
    // Every wait is being served (a thread each) while its client is there...
    wait_for("the 20 waits to be served", Duration::from_secs(10), || {
        thread_count(s.pid()) >= before + 20
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        thread_count(s.pid()) >= before + 20,
        "the waits go on while their clients are there"
    );
    // ...and ends once the client hangs up.
    drop(waiters);
    wait_for("the waits to be given up", Duration::from_secs(5), || {
        thread_count(s.pid()) <= before
    });
    // The job is untouched.
    match c.ok(pb::InfoRequest {
        handle: handle.clone(),
    }) {
        Response::Info(i) => assert_eq!(i.job_ids, vec![u64::from(job)]),
        r => panic!("{r:?}"),
    }
    c.destroy(&handle);
}

/// The warden shell against the real server: one command per invocation.
#[test]
fn the_warden_shell_drives_wardend() {
    let Some(s) = server("shell") else {
        return;
    };
    let warden = |args: &[&str]| {
        std::process::Command::new(tests::paths::bin("warden"))
            .arg("--socket")
            .arg(&s.socket)
            .arg("--")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = warden(&["create", "--handle", "shell", "--grace_time", "600"]);
    assert_ok(&out, "warden -- create");
    assert_eq!(stdout(&out), "handle : shell\n");
    let out = warden(&[
        "run",
        "--handle",
        "shell",
        "--script",
        "echo hi; echo oops >&2; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(stdout(&out), "hi\n");
    assert_eq!(tests::ctl::stderr(&out), "oops\n");
    let out = warden(&["info", "--handle", "shell"]);
    assert_ok(&out, "warden -- info");
    assert!(stdout(&out).contains("state : active"), "{}", stdout(&out));
    let out = warden(&["info", "--handle", "nope"]);
    assert!(!out.status.success());
    assert!(tests::ctl::stderr(&out).contains("nope"), "{out:?}");
    let id = container_id(&s, "shell");
    assert_ok(
        &warden(&["destroy", "--handle", "shell"]),
        "warden -- destroy",
    );
    assert_gone(&s.depot, "shell", &id);
}

/// No live process names anything under `dir` (the test's depot).
fn assert_no_process_of(dir: &std::path::Path) {
    for (pid, text) in live_cmdlines() {
        assert!(
            !text.contains(dir.to_str().unwrap()),
            "process {pid} is left: {text}"
        );
    }
}

/// The parent pid of a live process (field 4 of /proc/PID/stat).
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn holder_of(s: &TestServer, handle: &str, job: u32) -> i32 {
    let pid_file = s.depot.path(handle).join(format!("jobs/{job}/spawn.pid"));
    std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn is_live(pid: i32) -> bool {
    live_cmdlines().iter().any(|(p, _)| *p as i32 == pid)
}

#[test]
fn job_holders_are_forked_by_a_zygote_that_ends_with_the_server() {
    let Some(mut s) = server("zygote") else {
        return;
    };
    let mut c = s.client();
    let handle = c.create("forked");
    let job = c.spawn(&handle, "sleep 600");
    let holder = holder_of(&s, &handle, job);
    let zygote = parent_of(holder);
    assert_ne!(zygote, s.pid(), "the holder is not exec'd by wardend");
    assert_eq!(parent_of(zygote), s.pid(), "the zygote is wardend's child");
    let cmdline = |pid: i32| {
        live_cmdlines()
            .into_iter()
            .find(|(p, _)| *p as i32 == pid)
            .map(|(_, text)| text)
            .unwrap_or_default()
    };
    assert!(
        cmdline(zygote).trim_end().ends_with("iomux-spawn --zygote"),
        "{}",
        cmdline(zygote)
    );
    let dir = s.depot.path(&handle).join(format!("jobs/{job}"));
    assert!(
        cmdline(holder).contains(dir.to_str().unwrap()),
        "the holder's command line names its job: {}",
        cmdline(holder)
    );

    // A run goes through it too; a killed zygote is replaced at the next
    // job.
    let r = c.run(&handle, "echo forked");
    assert_eq!(r.stdout.as_deref(), Some(&b"forked\n"[..]));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(zygote), Signal::SIGKILL).unwrap();
    wait_for("the zygote's end", Duration::from_secs(10), || {
        !is_live(zygote)
    });
    let r = c.run(&handle, "echo after");
    assert_eq!(r.stdout.as_deref(), Some(&b"after\n"[..]));
    assert_eq!(r.exit_status, Some(0));
    assert!(
        s.log_text()
            .contains("the iomux-spawn zygote ended (signal: 9"),
        "the log says why there is another zygote: {}",
        s.log_text()
    );
    let next = c.spawn(&handle, "sleep 600");
    let second = parent_of(holder_of(&s, &handle, next));
    assert_ne!(second, zygote);
    assert_ne!(second, s.pid());
    assert!(cmdline(second).contains("--zygote"), "{}", cmdline(second));

    // One that hangs costs a job its answer timeout (the job then exec'd),
    // and is replaced too.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(second), Signal::SIGSTOP).unwrap();
    let r = c.run(&handle, "echo despite");
    assert_eq!(r.stdout.as_deref(), Some(&b"despite\n"[..]));
    assert!(
        s.log_text().contains("the iomux-spawn zygote failed"),
        "{}",
        s.log_text()
    );
    assert!(!is_live(second), "the hung zygote is killed");
    let last = c.spawn(&handle, "sleep 600");
    let third = parent_of(holder_of(&s, &handle, last));
    assert!(![zygote, second, s.pid()].contains(&third));

    // A container holding another iomux-spawn file gets it exec'd.
    let ours = s.depot.path(&handle).join("bin/iomux-spawn");
    let copy = s.depot.path(&handle).join("bin/iomux-spawn.copy");
    std::fs::copy(&ours, &copy).unwrap();
    std::fs::rename(&copy, &ours).unwrap();
    let other = c.spawn(&handle, "sleep 1; echo by-exec");
    let exec_holder = holder_of(&s, &handle, other);
    assert_eq!(parent_of(exec_holder), s.pid(), "exec'd by wardend");
    let (out, _, code) = c.stream(&handle, other);
    assert_eq!((out, code), (b"by-exec\n".to_vec(), 0));

    // The zygote ends with the server; the jobs it forked do not.
    drop(c);
    assert!(s.stop_with(Signal::SIGTERM).success());
    wait_for("the zygote's end", Duration::from_secs(10), || {
        !is_live(third)
    });
    assert!(is_live(holder), "a job outlives the server and the zygote");
    s.launch();
    let mut c = s.client();
    c.destroy(&handle);
    assert_no_process_of(&s.depot.dir);
}
