//! The default (v1) wsh forwards SIGTERM, SIGINT and SIGHUP to its remote
//! process group when this project's wshd says, in its features file, that
//! it can carry the session over v2; against the C wshd (here a fake that
//! aborts on anything but a v1 request, as the C one does) it sends v1 only
//! and behaves as before, whatever stale features file lies beside the
//! socket. Every test needs root and skips with a message otherwise.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tests::container::Container;
use tests::iomux_job::TempDir;
use tests::{paths, require_root};
use wire::features::{self, Features};
use wire::request::{decode_request, encode_response, Decoded, V1_SIZE};

macro_rules! root_only {
    () => {
        if !require_root(module_path!()) {
            return;
        }
    };
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

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The container's processes other than its wshd.
fn jobs(c: &Container) -> Vec<(i32, String)> {
    let init = c.pid().as_raw();
    c.processes()
        .into_iter()
        .filter(|&p| p != init)
        .map(|p| (p, comm(p)))
        .collect()
}

/// A wsh that is killed by the guard unless it was waited for.
struct Wsh(Option<Child>);

impl Wsh {
    fn spawn(mut cmd: Command) -> Wsh {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Wsh(Some(cmd.spawn().expect("spawning wsh")))
    }
    fn pid(&self) -> Pid {
        Pid::from_raw(self.0.as_ref().expect("running").id() as i32)
    }
    fn wait(mut self) -> Output {
        self.0
            .take()
            .expect("running")
            .wait_with_output()
            .expect("waiting for wsh")
    }
}

impl Drop for Wsh {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn wshd_writes_a_features_file_bound_to_itself() {
    root_only!();
    let c = Container::start();
    let path = features::path_for(&c.socket());
    let meta = std::fs::metadata(&path).expect("features file");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "as the socket");
    let text = std::fs::read_to_string(&path).unwrap();
    let f = Features::parse(&text).unwrap_or_else(|| panic!("malformed: {text:?}"));
    let sock = std::fs::metadata(c.socket()).unwrap();
    assert_eq!(f.pid, c.pid().as_raw(), "{text}");
    assert_eq!((f.dev, f.ino), (sock.dev(), sock.ino()), "{text}");
    assert_eq!(Some(f.starttime), features::starttime_of(f.pid), "{text}");
    assert_eq!(f.protocols, vec![1, 2]);
    // No temporary file is left next to it.
    let run: Vec<String> = std::fs::read_dir(c.dir().join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("features"))
        .collect();
    assert_eq!(run, vec!["wshd.sock.features".to_string()]);
    c.destroy().unwrap();
}

/// The required test: a v1 wsh killed with SIGTERM (and likewise SIGINT,
/// SIGHUP) leaves no process in the container, its shell's child included,
/// and exits 128+N as under --v2.
#[test]
fn a_v1_wsh_killed_with_sigterm_sigint_or_sighup_leaves_no_process() {
    root_only!();
    let c = Container::start();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // A shell with a child: the signal must reach the group, not only
        // the process wshd started.
        let wsh = Wsh::spawn(c.wsh_command(&["sh", "-c", "echo up; sleep 1000; echo never"]));
        assert!(
            eventually(|| jobs(&c).iter().any(|(_, n)| n == "sleep")),
            "{sig}: the job never started: {:?}",
            jobs(&c)
        );
        kill(wsh.pid(), sig).unwrap();
        let out = wsh.wait();
        let code = 128 + sig as i32;
        assert_eq!(out.status.code(), Some(code), "{sig}: {out:?}");
        assert_eq!(out.stdout, b"up\n", "{sig}");
        assert!(
            eventually(|| jobs(&c).is_empty()),
            "{sig}: left in the container: {:?}",
            jobs(&c)
        );
    }
    assert_eq!(c.processes(), vec![c.pid().as_raw()], "only wshd is left");
    c.destroy().unwrap();
}

/// A job that handles the signal decides wsh's exit code; its output is
/// all there, as with v1.
#[test]
fn a_job_that_traps_the_signal_gives_wsh_its_exit_code() {
    root_only!();
    let c = Container::start();
    let script = "trap 'echo caught; exit 7' TERM; echo up; sleep 1000 & wait";
    let wsh = Wsh::spawn(c.wsh_command(&["sh", "-c", script]));
    assert!(
        eventually(|| jobs(&c).iter().any(|(_, n)| n == "sleep")),
        "the job never started: {:?}",
        jobs(&c)
    );
    kill(wsh.pid(), Signal::SIGTERM).unwrap();
    let out = wsh.wait();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(out.stdout, b"up\ncaught\n");
    assert!(eventually(|| jobs(&c).is_empty()), "{:?}", jobs(&c));
    // Nothing forwarded: a v1 wsh reports a signal death as 255, as before.
    let out = c.wsh(&["sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    let out = c.wsh(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (out.status.code(), &out.stdout[..], &out.stderr[..]),
        (Some(3), &b"out\n"[..], &b"err\n"[..])
    );
    assert_eq!(c.processes(), vec![c.pid().as_raw()], "only wshd is left");
    c.destroy().unwrap();
}

/// A stand-in for the C wshd: serves v1 requests by running the command on
/// the host, and on anything else "aborts" as the C one does (stops
/// serving, as if its container died) and records it.
struct FakeCWshd {
    dir: TempDir,
    aborted: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    children: Arc<Mutex<Vec<u32>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeCWshd {
    fn start(tag: &str) -> FakeCWshd {
        let dir = TempDir::new(tag);
        let listener = UnixListener::bind(dir.join("wshd.sock")).expect("bind");
        listener.set_nonblocking(true).unwrap();
        let aborted = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let children = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (aborted, served, children, stop) = (
                aborted.clone(),
                served.clone(),
                children.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            if !serve_v1(conn, &children) {
                                aborted.store(true, Ordering::SeqCst);
                                return; // the listener goes with it
                            }
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        FakeCWshd {
            dir,
            aborted,
            served,
            children,
            stop,
            thread: Some(thread),
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("wshd.sock")
    }

    fn wsh(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(paths::bin("wsh"));
        cmd.arg("--socket").arg(self.socket()).args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        Wsh::spawn(self.wsh(args)).wait()
    }

    fn write_features(&self, f: &Features) {
        std::fs::write(features::path_for(&self.socket()), f.encode()).unwrap();
    }

    /// A features file that passes every check but the one under test.
    fn honest_features(&self) -> Features {
        let meta = std::fs::metadata(self.socket()).unwrap();
        let me = std::process::id() as i32;
        Features {
            pid: me,
            starttime: features::starttime_of(me).unwrap(),
            listener: me,
            dev: meta.dev(),
            ino: meta.ino(),
            protocols: vec![1, 2],
        }
    }

    fn assert_only_v1(&self, what: &str) {
        assert!(
            !self.aborted.load(Ordering::SeqCst),
            "{what}: the fake C wshd got a request it cannot parse"
        );
    }
}

impl Drop for FakeCWshd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for pid in self.children.lock().unwrap().drain(..) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

fn cloexec_pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe")
}

/// One connection as the C wshd would take it: exactly the v1 struct with
/// version 1, nothing after it. False for anything else (the C wshd's
/// abort).
fn serve_v1(mut conn: UnixStream, children: &Mutex<Vec<u32>>) -> bool {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; V1_SIZE];
    if conn.read_exact(&mut buf).is_err() {
        return false;
    }
    let version = i32::from_ne_bytes(buf[..4].try_into().unwrap());
    // wsh sends its request in one write: a v2 extension would be here.
    let mut more = [0u8; 1];
    conn.set_nonblocking(true).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let trailing = matches!(conn.read(&mut more), Ok(n) if n > 0);
    conn.set_nonblocking(false).unwrap();
    if version != 1 || trailing {
        return false;
    }
    let Ok(Decoded::Complete(req)) = decode_request(&buf) else {
        return false;
    };
    let argv: Vec<String> = req
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let (in_r, in_w) = cloexec_pipe();
    let (out_r, out_w) = cloexec_pipe();
    let (err_r, err_w) = cloexec_pipe();
    let (exit_r, exit_w) = cloexec_pipe();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::from(in_r))
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    let mut child = cmd.spawn().expect("the fake's child");
    drop(cmd);
    children.lock().unwrap().push(child.id());
    let fds = [in_w.as_fd(), out_r.as_fd(), err_r.as_fd(), exit_r.as_fd()];
    wire::fdpass::send_with_fds(conn.as_fd(), &encode_response(1), &fds).expect("respond");
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            if let Some(code) = status.code() {
                let _ = nix::unistd::write(&exit_w, &code.to_ne_bytes());
            }
        }
    });
    true
}

/// The fake is a fair stand-in: it does abort on a v2 request.
#[test]
fn the_fake_c_wshd_aborts_on_a_v2_request() {
    root_only!();
    let fake = FakeCWshd::start("wshsig-fake-v2");
    let out = fake.run(&["--v2", "true"]);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(eventually(|| fake.aborted.load(Ordering::SeqCst)));
}

#[test]
fn against_the_c_wshd_the_default_wsh_speaks_v1_only_whatever_lies_beside_the_socket() {
    root_only!();
    // A real features file, left behind by a wshd that is gone.
    let c = Container::start();
    let left_behind =
        std::fs::read_to_string(features::path_for(&c.socket())).expect("features file");
    c.destroy().unwrap();

    let fake = FakeCWshd::start("wshsig-fake-v1");
    let honest = fake.honest_features();
    let mut cases: Vec<(&str, Option<String>)> = vec![
        ("no features file", None),
        ("garbage", Some("wshd-features 1\npid x\n".into())),
    ];
    let mut dead = Features::parse(&left_behind).expect("parse");
    // The worst case: the new socket got the old one's inode.
    (dead.dev, dead.ino) = (honest.dev, honest.ino);
    dead.listener = honest.listener;
    cases.push(("left by a wshd that is gone", Some(dead.encode())));
    let mut wrong_start = honest.clone();
    wrong_start.starttime += 1;
    cases.push(("a reused pid", Some(wrong_start.encode())));
    let mut other_socket = honest.clone();
    other_socket.ino += 1;
    cases.push(("another socket's", Some(other_socket.encode())));
    let mut other_listener = honest.clone();
    other_listener.listener = 1;
    cases.push(("another listener's", Some(other_listener.encode())));
    let mut v1_only = honest.clone();
    v1_only.protocols = vec![1];
    cases.push(("v1 only", Some(v1_only.encode())));

    let path = features::path_for(&fake.socket());
    for (what, text) in &cases {
        match text {
            Some(t) => std::fs::write(&path, t).unwrap(),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
        let before = fake.served.load(Ordering::SeqCst);
        let out = fake.run(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
        fake.assert_only_v1(what);
        assert_eq!(
            (out.status.code(), &out.stdout[..], &out.stderr[..]),
            (Some(3), &b"out\n"[..], &b"err\n"[..]),
            "{what}: {out:?}"
        );
        assert_eq!(fake.served.load(Ordering::SeqCst), before + 1, "{what}");
    }

    // As before: a wsh killed by SIGTERM dies of it (nothing to forward
    // to), and has sent nothing but v1.
    fake.write_features(&dead);
    let wsh = Wsh::spawn(fake.wsh(&["sh", "-c", "echo up; exec sleep 1000"]));
    assert!(eventually(
        || fake.served.load(Ordering::SeqCst) == cases.len() + 1
    ));
    std::thread::sleep(Duration::from_millis(100));
    kill(wsh.pid(), Signal::SIGTERM).unwrap();
    let out = wsh.wait();
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{out:?}");
    fake.assert_only_v1("killed wsh");

    // The control: the honest file makes wsh send v2, which this fake
    // (like the C wshd) cannot take.
    fake.write_features(&honest);
    let out = fake.run(&["true"]);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    assert!(eventually(|| fake.aborted.load(Ordering::SeqCst)));
}
