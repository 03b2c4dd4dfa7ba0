//! wshd as a black box: real containers (namespaces, overlay, pivot_root)
//! driven through the real wsh binary and a raw client (tests::client).
//! Every test needs root and skips with a message otherwise.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::client::{self, Outcome};
use tests::container::{self, Container};
use tests::{paths, require_root};
use wire::request::V1_SIZE;

macro_rules! root_only {
    () => {
        if !require_root(module_path!()) {
            return;
        }
    };
}

fn run(c: &Container, argv: &[&str], user: &str) -> Outcome {
    client::run(&c.socket(), &client::request(argv, user), b"").expect("request")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Wait (up to a generous bound) for `cond`; false if it never held.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn exit_codes_are_reported() {
    root_only!();
    let c = Container::start();
    for code in [0, 1, 42] {
        let script = format!("exit {code}");
        let out = run(&c, &["sh", "-c", &script], "");
        assert_eq!(out.version, 1);
        assert_eq!(out.exit, Some(code), "raw client, exit {code}");
        let out = c.wsh(&["sh", "-c", &script]);
        assert_eq!(out.status.code(), Some(code), "wsh, exit {code}: {out:?}");
    }
    c.destroy().unwrap();
}

#[test]
fn killed_by_a_signal_writes_no_exit_code() {
    root_only!();
    let c = Container::start();
    let out = run(&c, &["sh", "-c", "kill -9 $$"], "");
    assert_eq!(out.exit, None, "v1 exit pipe closes without a word");
    let out = c.wsh(&["sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    c.destroy().unwrap();
}

#[test]
fn stdout_and_stderr_are_separate_and_stdin_ends() {
    root_only!();
    let c = Container::start();
    let out = run(&c, &["sh", "-c", "echo out; echo err >&2"], "");
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        ("out\n".into(), "err\n".into())
    );

    let req = client::request(&["sh", "-c", "cat; echo done >&2"], "vcap");
    let out = client::run(&c.socket(), &req, b"line one\nline two\n").unwrap();
    assert_eq!(text(&out.stdout), "line one\nline two\n");
    assert_eq!(text(&out.stderr), "done\n");
    assert_eq!(out.exit, Some(0));

    let out = c.wsh_with(&["sh", "-c", "wc -c; echo e >&2"], b"12345", &[]);
    assert_eq!(text(&out.stdout).trim(), "5");
    assert_eq!(text(&out.stderr), "e\n");
    assert_eq!(out.status.code(), Some(0));
    c.destroy().unwrap();
}

#[test]
fn a_gibibyte_of_output_arrives_exactly() {
    root_only!();
    let c = Container::start();
    const GIB: u64 = 1 << 30;
    let mut child = c
        .wsh_command(&["head", "-c", &GIB.to_string(), "/dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut nonzero = false;
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        nonzero |= buf[..n].iter().any(|&b| b != 0);
        total += n as u64;
    }
    let status = child.wait().unwrap();
    assert_eq!(total, GIB);
    assert!(!nonzero);
    assert_eq!(status.code(), Some(0));
    c.destroy().unwrap();
}

#[test]
fn user_switch_sets_uid_gid_and_groups() {
    root_only!();
    let group =
        "root:x:0:\nvcap:x:10000:\nextra:x:2001:vcap\nother:x:2002:root,vcap\nnotme:x:2003:vcapx\n";
    let c = Container::builder().file("/etc/group", group).start();
    let out = run(&c, &["sh", "-c", "id -u; id -g; id -G"], "vcap");
    assert_eq!(
        text(&out.stdout),
        "10000\n10000\n10000 2001 2002\n",
        "{out:?}"
    );
    let out = run(&c, &["sh", "-c", "id -u; id -g; id -G"], "");
    assert_eq!(text(&out.stdout), "0\n0\n0 2002\n", "{out:?}");
    let out = run(&c, &["sh", "-c", "id -u"], "root");
    assert_eq!(text(&out.stdout), "0\n");
    let out = c.wsh(&["--user", "vcap", "id", "-u"]);
    assert_eq!(text(&out.stdout), "10000\n", "{out:?}");
    c.destroy().unwrap();
}

#[test]
fn unknown_user_and_missing_program_exit_255() {
    root_only!();
    let c = Container::start();
    let out = run(&c, &["true"], "ghost");
    assert_eq!(out.exit, Some(255));
    assert!(text(&out.stderr).contains("ghost"), "{out:?}");
    let out = run(&c, &["no-such-program"], "vcap");
    assert_eq!(out.exit, Some(255));
    assert!(text(&out.stderr).contains("no-such-program"), "{out:?}");
    let out = c.wsh(&["--user", "ghost", "true"]);
    assert_eq!(out.status.code(), Some(255));
    c.destroy().unwrap();
}

fn env_set(out: &[u8]) -> BTreeSet<String> {
    text(out).lines().map(str::to_string).collect()
}

#[test]
fn environment_is_exactly_the_contracts() {
    root_only!();
    let c = Container::start();
    let mut req = client::request(&["env"], "vcap");
    req.lang = b"en_US.UTF-8".to_vec();
    let out = client::run(&c.socket(), &req, b"").unwrap();
    let want: BTreeSet<String> = [
        "HOME=/home/vcap",
        "USER=vcap",
        "PATH=/bin:/usr/bin",
        "LANG=en_US.UTF-8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(env_set(&out.stdout), want);

    let out = run(&c, &["env"], "");
    let want: BTreeSet<String> = [
        "HOME=/root",
        "USER=root",
        "PATH=/sbin:/bin:/usr/sbin:/usr/bin",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(env_set(&out.stdout), want, "empty LANG is left out");

    let out = Command::new(paths::bin("wsh"))
        .env_clear()
        .env("LANG", "C.UTF-8")
        .env("SECRET", "not for the container")
        .arg("--socket")
        .arg(c.socket())
        .args(["--user", "vcap", "env"])
        .output()
        .unwrap();
    let want: BTreeSet<String> = [
        "HOME=/home/vcap",
        "USER=vcap",
        "PATH=/bin:/usr/bin",
        "LANG=C.UTF-8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(env_set(&out.stdout), want, "through wsh: {out:?}");
    c.destroy().unwrap();
}

#[test]
fn working_directory_is_home() {
    root_only!();
    let c = Container::start();
    assert_eq!(text(&run(&c, &["pwd"], "vcap").stdout), "/home/vcap\n");
    assert_eq!(text(&run(&c, &["pwd"], "").stdout), "/root\n");
    c.destroy().unwrap();
}

#[test]
fn rlimits_come_from_wsh_environment() {
    root_only!();
    let c = Container::start();
    let out = c.wsh_with(&["sh", "-c", "ulimit -n"], b"", &[("RLIMIT_NOFILE", "256")]);
    assert_eq!(text(&out.stdout), "256\n", "{out:?}");
    let out = c.wsh(&["--user", "vcap", "sh", "-c", "ulimit -n"]);
    assert_eq!(text(&out.stdout), "1024\n", "{out:?}");
    c.destroy().unwrap();
}

#[test]
fn the_container_has_its_own_pid_namespace_and_hostname() {
    root_only!();
    let c = Container::builder().hostname("box-under-test").start();
    let out = run(
        &c,
        &["sh", "-c", "ls /proc | grep -E '^[0-9]+$' | sort -n"],
        "vcap",
    );
    let pids: Vec<i32> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert_eq!(pids.first(), Some(&1), "{pids:?}");
    // wshd, the shell, ls, grep, sort: a handful, never the host's hundreds.
    assert!(pids.len() <= 6, "{pids:?}");
    let out = run(&c, &["cat", "/proc/1/comm"], "vcap");
    assert_eq!(text(&out.stdout), "wshd\n");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", c.pid())).unwrap();
    assert!(
        cmdline.starts_with(b"wshd: "),
        "--title names pid 1: {:?}",
        text(&cmdline)
    );
    let out = run(&c, &["hostname"], "vcap");
    assert_eq!(text(&out.stdout), "box-under-test\n");
    // The host's processes are invisible: the test process is not there.
    let me = std::process::id().to_string();
    let out = run(
        &c,
        &[
            "sh",
            "-c",
            &format!("test -e /proc/{me}/comm && cat /proc/{me}/comm; true"),
        ],
        "",
    );
    assert!(!text(&out.stdout).contains("wshd-"), "{out:?}");
    c.destroy().unwrap();
}

#[test]
fn only_stdio_reaches_the_child_even_with_a_leaked_descriptor() {
    root_only!();
    let c = Container::builder().leak_fd().start();
    let fds = std::fs::read_dir(format!("/proc/{}/fd", c.pid()))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .collect::<Vec<_>>();
    assert!(
        !fds.contains(&container::LEAKED_FD),
        "wshd kept the leaked fd: {fds:?}"
    );
    for user in ["", "vcap"] {
        // `; :` keeps sh from exec'ing ls, so $$ is the shell's own fds.
        let out = run(&c, &["sh", "-c", "ls /proc/$$/fd; :"], user);
        assert_eq!(text(&out.stdout), "0\n1\n2\n", "{out:?}");
    }
    let out = c.wsh(&["sh", "-c", "ls /proc/$$/fd; :"]);
    assert_eq!(text(&out.stdout), "0\n1\n2\n", "{out:?}");
    c.destroy().unwrap();
}

#[test]
fn signal_dispositions_and_mask_start_clean_even_when_wshd_inherited_ignores() {
    root_only!();
    let c = Container::builder().ignore_signals().start();
    let ignored = std::fs::read_to_string(format!("/proc/{}/status", c.pid())).unwrap();
    assert!(
        ignored.contains("SigIgn:\t0000000000001000"),
        "wshd itself should ignore only SIGPIPE: {ignored}"
    );
    for user in ["", "vcap"] {
        let out = run(
            &c,
            &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"],
            user,
        );
        assert_eq!(
            text(&out.stdout),
            "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
            "{out:?}"
        );
    }
    c.destroy().unwrap();
}

#[test]
fn a_tty_request_gets_a_pty_as_controlling_terminal() {
    root_only!();
    let c = Container::start();
    let mut req = client::request(
        &[
            "sh",
            "-c",
            "test -t 0 && test -t 1 && test -t 2 && tty && exit 7",
        ],
        "vcap",
    );
    req.tty = true;
    let resp = client::call(&c.socket(), &req).unwrap();
    assert_eq!(resp.fds.len(), 2);
    let mut fds = resp.fds.into_iter();
    let (master, exit) = (fds.next().unwrap(), fds.next().unwrap());
    let mut word = Vec::new();
    std::fs::File::from(exit).read_to_end(&mut word).unwrap();
    assert_eq!(word, 7i32.to_ne_bytes());
    let mut screen = Vec::new();
    // EIO once the slave is gone ends the stream.
    let _ = std::fs::File::from(master).read_to_end(&mut screen);
    assert!(
        text(&screen).starts_with("/dev/pts/"),
        "{:?}",
        text(&screen)
    );
    c.destroy().unwrap();
}

#[test]
fn version_2_env_dir_raw_status_and_pidfd() {
    root_only!();
    let c = Container::start();
    let mut req = client::request(&["env"], "vcap");
    req.version = 2;
    req.env = vec![
        CString::new("FOO=bar baz").unwrap(),
        CString::new("PATH=/usr/bin:/bin").unwrap(),
    ];
    req.dir = Some(CString::new("/tmp").unwrap());
    let out = client::run(&c.socket(), &req, b"").unwrap();
    assert_eq!(out.version, 2);
    let want: BTreeSet<String> = [
        "HOME=/home/vcap",
        "USER=vcap",
        "PATH=/usr/bin:/bin",
        "FOO=bar baz",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(env_set(&out.stdout), want);
    assert_eq!(out.exit, Some(0));

    req.argv = vec![
        CString::new("sh").unwrap(),
        CString::new("-c").unwrap(),
        CString::new("pwd; exit 3").unwrap(),
    ];
    let out = client::run(&c.socket(), &req, b"").unwrap();
    assert_eq!(text(&out.stdout), "/tmp\n");
    assert_eq!(out.exit, Some(3 << 8), "raw wait status");

    req.dir = Some(CString::new("/no/such/dir").unwrap());
    let out = client::run(&c.socket(), &req, b"").unwrap();
    assert_eq!(
        out.exit,
        Some(255 << 8),
        "a named dir that is missing fails"
    );
    assert!(text(&out.stderr).contains("/no/such/dir"), "{out:?}");

    let mut req = client::request(&["sh", "-c", "kill -9 $$"], "");
    req.version = 2;
    let out = client::run(&c.socket(), &req, b"").unwrap();
    assert_eq!(out.exit, Some(9), "a signal is reported as a raw status");

    let mut req = client::request(&["sleep", "1000"], "vcap");
    req.version = 2;
    req.want_pidfd = true;
    let resp = client::call(&c.socket(), &req).unwrap();
    assert_eq!((resp.version, resp.fds.len()), (2, 5));
    let mut fds = resp.fds.into_iter();
    let exit = fds.nth(3).unwrap();
    let pidfd: OwnedFd = fds.next().unwrap();
    // SAFETY: pidfd_send_signal on a descriptor we own; no siginfo.
    let rv = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGTERM,
            0usize,
            0u32,
        )
    };
    assert_eq!(rv, 0, "pidfd_send_signal");
    let mut word = Vec::new();
    std::fs::File::from(exit).read_to_end(&mut word).unwrap();
    assert_eq!(word, libc::SIGTERM.to_ne_bytes());
    c.destroy().unwrap();
}

/// A tiny deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Send `bytes`, end the write side and read until wshd closes. Returns
/// whether a response came (it never should for malformed requests).
fn send_and_drain(sock: &std::path::Path, bytes: &[u8]) -> bool {
    let Ok(mut s) = UnixStream::connect(sock) else {
        panic!("wshd stopped accepting");
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    match client::read_response(&s) {
        Ok(Some(_)) => true,
        Ok(None) => false,
        Err(e) => {
            // A reset is fine; a timeout means wshd held the connection.
            assert_ne!(
                e.kind(),
                std::io::ErrorKind::WouldBlock,
                "wshd did not close: {e}"
            );
            false
        }
    }
}

fn put(buf: &mut [u8], off: usize, v: i32) {
    buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

#[test]
fn a_thousand_malformed_requests_do_not_disturb_wshd() {
    root_only!();
    let c = Container::start();
    let sock = c.socket();
    let good = client::request(&["sh", "-c", "echo ok"], "vcap")
        .encode()
        .unwrap();
    // Clients that stall mid-request stay connected throughout.
    let stalled: Vec<UnixStream> = (0..5)
        .map(|i| {
            let mut s = UnixStream::connect(&sock).unwrap();
            s.write_all(&good[..100 * (i + 1)]).unwrap();
            s
        })
        .collect();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut answered = 0;
    for i in 0..1000 {
        let mut b = good.clone();
        let bytes: Vec<u8> = match i % 12 {
            0 => (0..rng.below(20000)).map(|_| rng.next() as u8).collect(),
            1 => good[..rng.below(V1_SIZE)].to_vec(),
            2 => Vec::new(),
            3 => {
                put(&mut b, 0, [0, 3, -1, i32::MAX, i32::MIN][rng.below(5)]);
                b
            }
            4 => {
                // More strings than the buffer can hold, even as empty ones.
                put(&mut b, 8, [8192, 8190, -3, i32::MAX][rng.below(4)]);
                b
            }
            5 => {
                b[12..8204].fill(b'x');
                b
            }
            6 => {
                b[8600..8632].fill(b'u');
                b
            }
            7 => {
                b[8632..9656].fill(b'l');
                b
            }
            8 => {
                put(&mut b, 4, 7);
                b
            }
            9 => {
                put(&mut b, 8208, [17, -1, 99][rng.below(3)]);
                b
            }
            10 => {
                // v2 with a bad or truncated extension.
                put(&mut b, 0, 2);
                let ext_len = [0u32, 8, u32::MAX, 1 << 20, 100][rng.below(5)];
                b.extend_from_slice(&ext_len.to_ne_bytes());
                b.extend_from_slice(&[0xff; 20]);
                b
            }
            _ => {
                put(&mut b, 0, 1);
                let off = OFF_RLIM_ID;
                put(&mut b, off, 99);
                b
            }
        };
        if send_and_drain(&sock, &bytes) {
            answered += 1;
        }
    }
    assert_eq!(answered, 0, "malformed requests must not be answered");
    // An unknown user is well-formed: answered, and the child exits 255.
    let out = run(&c, &["true"], "nobody-here");
    assert_eq!(out.exit, Some(255));
    // A client vanishing right after a complete request.
    drop(client::send_raw(&sock, &good).unwrap());

    let out = run(&c, &["sh", "-c", "echo ok"], "vcap");
    assert_eq!((text(&out.stdout), out.exit), ("ok\n".to_string(), Some(0)));
    let out = c.wsh(&["echo", "still here"]);
    assert_eq!(text(&out.stdout), "still here\n");
    drop(stalled);
    assert!(
        c.log().contains("refusing request"),
        "wshd logs what it refuses"
    );
    c.destroy().unwrap();
}

const OFF_RLIM_ID: usize = wire::request::OFF_RLIM;

#[test]
fn a_request_sent_byte_by_byte_is_served() {
    root_only!();
    let c = Container::start();
    let good = client::request(&["echo", "slow"], "").encode().unwrap();
    let mut s = UnixStream::connect(c.socket()).unwrap();
    for chunk in good.chunks(1000) {
        s.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let resp = client::read_response(&s).unwrap().expect("a response");
    assert_eq!(resp.fds.len(), 4);
    let mut out = String::new();
    std::fs::File::from(resp.fds.into_iter().nth(1).unwrap())
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "slow\n");
    c.destroy().unwrap();
}

#[test]
fn orphans_are_reaped_by_wshd() {
    root_only!();
    let c = Container::start();
    for _ in 0..50 {
        let out = run(&c, &["sh", "-c", "sleep 0.1 &"], "vcap");
        assert_eq!(out.exit, Some(0));
    }
    let init = c.pid().as_raw();
    assert!(
        eventually(|| {
            let tree = c.tree();
            tree.len() == 1 && container::zombies(&tree).is_empty()
        }),
        "left behind: {:?}",
        c.tree()
            .into_iter()
            .filter(|&p| p != init)
            .collect::<Vec<_>>()
    );
    c.destroy().unwrap();
}

#[test]
fn killing_wshd_leaves_nothing_behind() {
    root_only!();
    let c = Container::start();
    // Background processes that would outlive their request.
    for _ in 0..3 {
        let out = run(&c, &["sh", "-c", "sleep 1000 >/dev/null 2>&1 &"], "vcap");
        assert_eq!(out.exit, Some(0));
    }
    let tree = c.tree();
    assert!(tree.len() >= 4, "{tree:?}");
    c.destroy().unwrap();
    let left: Vec<i32> = tree
        .iter()
        .copied()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(left.is_empty(), "still there (zombies or alive): {left:?}");
}

#[test]
fn the_host_mount_table_does_not_gain_the_overlay() {
    root_only!();
    let c = Container::start();
    assert!(
        container::mounts_under(c.dir()).is_empty(),
        "{:?}",
        container::mounts_under(c.dir())
    );
    // The container itself does see its overlay root and its own mounts.
    let out = run(&c, &["cat", "/proc/self/mountinfo"], "");
    let mounts = text(&out.stdout);
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" / / ") && l.contains("overlay")),
        "{mounts}"
    );
    let points: Vec<&str> = mounts.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    assert!(
        !points.iter().any(|p| p.starts_with("/mnt")),
        "old root detached: {points:?}"
    );
    // Besides those, only the masks confinement lays over /proc.
    let own: Vec<&str> = points
        .iter()
        .copied()
        .filter(|p| !p.starts_with("/proc/"))
        .collect();
    assert_eq!(own, ["/", "/proc", "/dev/pts", "/dev/shm"], "{points:?}");
    assert!(
        points.contains(&"/proc/sys"),
        "/proc/sys frozen: {points:?}"
    );
    c.destroy().unwrap();
}

#[test]
fn bad_directories_are_refused() {
    // No root needed: wshd checks its flags before anything else.
    let wshd = paths::bin("wshd");
    let out = Command::new(&wshd)
        .args(["--run", "/nonexistent-run", "--lib", "/", "--root", "/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent-run"), "{out:?}");
    let out = Command::new(&wshd).args(["--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_failing_hook_is_fatal_and_leaves_nothing() {
    root_only!();
    for hook in [
        "hook-parent-before-clone.sh",
        "hook-parent-after-clone.sh",
        "hook-child-before-pivot.sh",
        "hook-child-after-pivot.sh",
    ] {
        let r = Container::builder().failing_hook(hook).try_start();
        let err = match r {
            Ok(_) => panic!("{hook} failing did not stop wshd"),
            Err(e) => e,
        };
        assert!(
            err.contains(hook) && err.contains("failed"),
            "{hook}: {err}"
        );
    }
}

#[test]
fn a_half_sent_request_is_dropped_after_a_while() {
    root_only!();
    let c = Container::start();
    let good = client::request(&["true"], "").encode().unwrap();
    let mut s = UnixStream::connect(c.socket()).unwrap();
    s.write_all(&good[..1000]).unwrap();
    // Blocks until wshd gives up on the request (its timeout is 5 s).
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut rest = Vec::new();
    let n = s
        .read_to_end(&mut rest)
        .expect("wshd closes the connection");
    assert_eq!(n, 0);
    assert!(c.log().contains("sent 1000 of 9656 bytes"), "{}", c.log());
    assert_eq!(run(&c, &["true"], "").exit, Some(0));
    c.destroy().unwrap();
}

#[test]
fn running_out_of_descriptors_does_not_stop_wshd() {
    root_only!();
    let c = Container::start();
    // Lower the soft limit only: children still raise theirs to the
    // request's RLIMIT_NOFILE, which a hard limit below it would forbid.
    let limit = libc::rlimit {
        rlim_cur: 32,
        rlim_max: 4096,
    };
    // SAFETY: prlimit on the container's init with a valid rlimit.
    let rv = unsafe {
        libc::prlimit(
            c.pid().as_raw(),
            libc::RLIMIT_NOFILE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rv, 0, "prlimit");
    let good = client::request(&["true"], "").encode().unwrap();
    // Far more stalled clients than wshd has descriptors for.
    let stalled: Vec<UnixStream> = (0..60)
        .map(|_| {
            let mut s = UnixStream::connect(c.socket()).unwrap();
            let _ = s.write_all(&good[..10]);
            s
        })
        .collect();
    // Those wshd could not take were turned away: they see EOF, not a hang.
    let mut turned_away = 0;
    for s in &stalled {
        s.set_nonblocking(true).unwrap();
    }
    assert!(
        eventually(|| {
            turned_away = stalled
                .iter()
                .filter(|s| {
                    let mut b = [0u8; 1];
                    matches!((&**s).read(&mut b), Ok(0)) || matches!((&**s).read(&mut b), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
                })
                .count();
            turned_away >= 30
        }),
        "only {turned_away} clients were turned away"
    );
    assert!(c.log().contains("turned a client away"), "{}", c.log());
    drop(stalled);
    assert!(
        eventually(|| {
            let req = client::request(&["sh", "-c", "echo back"], "");
            client::run(&c.socket(), &req, b"").is_ok_and(|o| o.stdout == b"back\n")
        }),
        "wshd serves again once descriptors are free: {:?}",
        client::run(
            &c.socket(),
            &client::request(&["sh", "-c", "echo back"], ""),
            b""
        )
    );
    c.destroy().unwrap();
}

#[test]
fn rsync_over_wsh_rsh_round_trips_modes_and_symlinks() {
    root_only!();
    use std::os::unix::fs::PermissionsExt;
    let c = Container::start();
    let host = std::env::temp_dir().join(format!("wsh-rsync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&host);
    struct RemoveOnDrop(std::path::PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = RemoveOnDrop(host.clone());
    let src = host.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("script"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(src.join("script"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::write(src.join("sub/data"), vec![7u8; 100_000]).unwrap();
    std::fs::set_permissions(src.join("sub/data"), std::fs::Permissions::from_mode(0o604)).unwrap();
    std::os::unix::fs::symlink("sub/data", src.join("link")).unwrap();
    let rsh = format!(
        "{} --socket {} --rsh",
        paths::bin("wsh").display(),
        c.socket().display()
    );
    let rsync = |from: &str, to: &str| {
        let out = Command::new("rsync")
            .args(["-e", &rsh, "-r", "-p", "--links", from, to])
            .output()
            .expect("rsync on the host");
        assert!(out.status.success(), "rsync {from} {to}: {out:?}");
    };
    rsync(
        &format!("{}/", src.display()),
        "vcap@container:/home/vcap/dst",
    );
    let inside = run(
        &c,
        &[
            "sh",
            "-c",
            "cd /home/vcap/dst && stat -c '%n %a %U' script sub/data && readlink link",
        ],
        "vcap",
    );
    assert_eq!(
        text(&inside.stdout),
        "script 750 vcap\nsub/data 604 vcap\nsub/data\n",
        "{inside:?}"
    );
    let back = host.join("back");
    rsync(
        "vcap@container:/home/vcap/dst/",
        &format!("{}/", back.display()),
    );
    for (name, mode) in [("script", 0o750), ("sub/data", 0o604)] {
        let meta = std::fs::metadata(back.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{name}");
        assert_eq!(
            std::fs::read(back.join(name)).unwrap(),
            std::fs::read(src.join(name)).unwrap()
        );
    }
    assert_eq!(
        std::fs::read_link(back.join("link")).unwrap(),
        std::path::PathBuf::from("sub/data")
    );
    c.destroy().unwrap();
}
