//! The `warden` REPL binary against a fake Warden server this test runs in
//! a thread on a Unix socket of its own (speaking the real protocol through
//! warden_protocol): interactively under a pseudo-terminal the test opens
//! (prompt, help, TAB completion, history file and Up-arrow, a job's
//! output, a server error and the prompt after it), then with `-- COMMAND`
//! and with commands on a pipe. Needs no root and no container.

#![deny(unsafe_code)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{openpty, Winsize};
use tests::paths;
use warden_protocol::framing::{FrameReader, DEFAULT_MAX_FRAME};
use warden_protocol::{pb, Request, Response};

/// The handle the fake server gives a container created without one.
const NEW_HANDLE: &str = "17527e1o5nv";

/// The commands `help` lists, with their descriptions.
const COMMANDS: &[(&str, &str)] = &[
    ("copy_in", "Copy files/directories into the container."),
    ("copy_out", "Copy files/directories out of the container."),
    ("create", "Create a container, optionally pass options."),
    ("destroy", "Shutdown a container."),
    ("echo", "Echo a message."),
    ("info", "Show metadata for a container."),
    (
        "limit_bandwidth",
        "Set the bandwidth limit (rate and burst) for the container.",
    ),
    (
        "limit_cpu",
        "Set or get the CPU limit in shares for the container.",
    ),
    ("limit_disk", "set or get the disk limit for the container."),
    (
        "limit_memory",
        "Set or get the memory limit for the container.",
    ),
    ("link", "Do blocking read on results from a job."),
    ("list", "List containers."),
    ("net_in", "Forward port on external interface to container."),
    ("net_out", "Allow traffic from the container to address."),
    ("ping", "Ping warden."),
    (
        "run",
        "Short hand for spawn(stream(cmd)) i.e. spawns a command, streams the result.",
    ),
    (
        "spawn",
        "Spawns a command inside a container and returns the job id.",
    ),
    ("stop", "Stop all processes inside a container."),
    ("stream", "Do blocking stream on results from a job."),
    ("help", "Show help."),
];

// ---------------------------------------------------------------------------
// Guards: everything a test makes goes away when it ends, failed or not.

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "warden-repl-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process, killed and reaped on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------
// The fake server.

#[derive(Default)]
struct State {
    handles: HashSet<String>,
    /// The scripts of the jobs spawned, by job id - 1.
    jobs: Vec<Vec<u8>>,
}

/// A Warden server of the test's own, answering from a thread until dropped.
struct FakeServer {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    fn start(dir: &Path) -> FakeServer {
        let socket = dir.join("warden.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State {
            handles: ["h".to_string()].into(),
            jobs: Vec::new(),
        }));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let state = state.clone();
                std::thread::spawn(move || serve(conn, &state));
            }
        });
        FakeServer {
            socket,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn unknown(handle: &str) -> Response {
    Response::error(format!("unknown handle: {handle}"))
}

fn job_output(script: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut out = b"stdout of ".to_vec();
    out.extend_from_slice(script);
    out.push(b'\n');
    let mut err = b"stderr of ".to_vec();
    err.extend_from_slice(script);
    err.push(b'\n');
    (out, err)
}

fn serve(conn: UnixStream, state: &Mutex<State>) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = FrameReader::new(conn, DEFAULT_MAX_FRAME);
    while let Ok(Some(frame)) = reader.read_frame() {
        let request = match Request::decode_payload(&frame) {
            Ok(r) => r,
            Err(e) => {
                let _ = writer.write_all(&Response::error(e.to_string()).encode_frame());
                continue;
            }
        };
        let mut st = state.lock().unwrap();
        let known = |h: &str, st: &State| st.handles.contains(h);
        let responses: Vec<Response> = match request {
            Request::Ping(_) => vec![pb::PingResponse {}.into()],
            Request::Echo(r) => vec![pb::EchoResponse { message: r.message }.into()],
            Request::Create(r) => {
                let handle = r.handle.unwrap_or_else(|| NEW_HANDLE.to_string());
                st.handles.insert(handle.clone());
                vec![pb::CreateResponse { handle }.into()]
            }
            Request::List(_) => {
                let mut handles: Vec<String> = st.handles.iter().cloned().collect();
                handles.sort();
                vec![pb::ListResponse { handles }.into()]
            }
            Request::Destroy(r) if known(&r.handle, &st) => {
                st.handles.remove(&r.handle);
                vec![pb::DestroyResponse {}.into()]
            }
            Request::Destroy(r) => vec![unknown(&r.handle)],
            Request::Spawn(r) if known(&r.handle, &st) => {
                st.jobs.push(r.script);
                vec![pb::SpawnResponse {
                    job_id: st.jobs.len() as u32,
                }
                .into()]
            }
            Request::Spawn(r) => vec![unknown(&r.handle)],
            Request::Run(r) if known(&r.handle, &st) => {
                let (stdout, stderr) = job_output(&r.script);
                vec![pb::RunResponse {
                    exit_status: Some(3),
                    stdout: Some(stdout),
                    stderr: Some(stderr),
                    info: None,
                }
                .into()]
            }
            Request::Run(r) => vec![unknown(&r.handle)],
            Request::Link(r) => match st.jobs.get((r.job_id as usize).wrapping_sub(1)) {
                Some(script) if known(&r.handle, &st) => {
                    let (stdout, stderr) = job_output(script);
                    vec![pb::LinkResponse {
                        exit_status: Some(3),
                        stdout: Some(stdout),
                        stderr: Some(stderr),
                        info: Some(pb::InfoResponse {
                            state: Some("active".into()),
                            ..Default::default()
                        }),
                    }
                    .into()]
                }
                _ => vec![Response::error(format!("no such job: {}", r.job_id))],
            },
            Request::Stream(r) => match st.jobs.get((r.job_id as usize).wrapping_sub(1)) {
                Some(script) if known(&r.handle, &st) => {
                    let (stdout, stderr) = job_output(script);
                    let chunk = |name: &str, data: Vec<u8>| -> Response {
                        pb::StreamResponse {
                            name: Some(name.into()),
                            data: Some(data),
                            exit_status: None,
                            info: None,
                        }
                        .into()
                    };
                    vec![
                        chunk("stdout", stdout),
                        chunk("stderr", stderr),
                        pb::StreamResponse {
                            exit_status: Some(3),
                            ..Default::default()
                        }
                        .into(),
                    ]
                }
                _ => vec![Response::error(format!("no such job: {}", r.job_id))],
            },
            other => vec![Response::error(format!(
                "the fake server does not do {:?}",
                other.message_type()
            ))],
        };
        drop(st);
        for r in responses {
            if writer.write_all(&r.encode_frame()).is_err() {
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Running warden.

fn warden() -> PathBuf {
    paths::bin("warden")
}

/// `warden ARGS` with stdin from `input`, HOME in `home`.
fn run_warden(args: &[&str], input: &[u8], home: &Path) -> Output {
    let mut child = KillOnDrop(
        Command::new(warden())
            .args(args)
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "warden {args:?} did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = Vec::new();
    let mut err = Vec::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut err)
        .unwrap();
    Output {
        status: child.0.wait().unwrap(),
        stdout: out,
        stderr: err,
    }
}

/// Spawning with the pty's slave as the controlling terminal.
#[allow(unsafe_code)]
mod controlling_tty {
    use std::io;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Makes the child a session leader whose controlling terminal is its
    /// stdin (which the caller set to the pty's slave).
    pub fn set(cmd: &mut Command) {
        // SAFETY: the closure runs between fork and exec and calls only
        // setsid(2) and ioctl(2), both async-signal-safe; it allocates
        // nothing and touches no state of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// warden under a pseudo-terminal.
struct Session {
    master: OwnedFd,
    screen: Vec<u8>,
    /// How far `expect` has looked: each expectation is met by output
    /// after the previous one's.
    seen: usize,
    child: KillOnDrop,
}

impl Session {
    fn start(socket: &Path, home: &Path) -> Session {
        let size = Winsize {
            ws_row: 40,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).unwrap();
        // The child must not hold the master: it would never see a hangup.
        fcntl(
            pty.master.as_raw_fd(),
            FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC),
        )
        .unwrap();
        let mut cmd = Command::new(warden());
        cmd.arg("--socket")
            .arg(socket)
            .env_clear()
            .env("HOME", home)
            .env("TERM", "xterm")
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
        controlling_tty::set(&mut cmd);
        let child = KillOnDrop(cmd.spawn().unwrap());
        drop(pty.slave);
        Session {
            master: pty.master,
            screen: Vec::new(),
            seen: 0,
            child,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.screen).into_owned()
    }

    /// Reads until `needle` shows up after what earlier expectations
    /// matched, or 10 s pass.
    fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(at) = find(&self.screen[self.seen..], needle.as_bytes()) {
                self.seen += at + needle.len();
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {needle:?}; screen so far: {:?}",
                self.text()
            );
            if !self.fill(left) {
                panic!("terminal closed before {needle:?}: {:?}", self.text());
            }
        }
    }

    /// Reads what is there within `left`; false once the terminal closed.
    fn fill(&mut self, left: Duration) -> bool {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        if poll(&mut fds, PollTimeout::from(ms)).unwrap() == 0 {
            return true;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(self.master.as_raw_fd(), &mut buf) {
            Ok(0) | Err(nix::errno::Errno::EIO) => false,
            Ok(n) => {
                self.screen.extend_from_slice(&buf[..n]);
                true
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => true,
            Err(e) => panic!("read master: {e}"),
        }
    }

    fn send(&mut self, keys: &[u8]) {
        nix::unistd::write(&self.master, keys).unwrap();
    }

    /// Ctrl-D at an empty prompt; the REPL's exit status.
    fn quit(mut self) -> Option<i32> {
        self.send(b"\x04");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                Instant::now() < deadline,
                "warden did not exit on Ctrl-D: {:?}",
                self.text()
            );
            // Keep the terminal drained so that warden never blocks on it.
            self.fill(Duration::from_millis(20));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

fn history(home: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(home.join(".warden-history")).expect("history written");
    serde_json::from_str(&text).expect("history is a JSON array of strings")
}

// ---------------------------------------------------------------------------
// Interactive.

#[test]
fn interactive_prompt_help_completion_history_jobs_and_errors() {
    let dir = TempDir::new("pty");
    let server = FakeServer::start(&dir.0);
    let home = dir.0.join("home");
    std::fs::create_dir(&home).unwrap();
    let mut s = Session::start(&server.socket, &home);

    s.expect("warden> ");

    s.send(b"help\r");
    s.expect("Use --help with each command for more information.");
    let text = s.text();
    for (name, description) in COMMANDS {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("help lacks {name}: {text:?}"));
        assert!(line.trim_end().ends_with(description), "{name}: {line:?}");
    }
    s.expect("warden> ");

    // TAB completes the command's name; the line then runs as `create ...`.
    s.send(b"cr\t");
    s.expect("create");
    s.send(b"--handle tabbed\r");
    s.expect("handle : tabbed");
    s.expect("warden> ");

    // A job's output, from run (spawn, then stream).
    s.send(b"run --handle h --script \"echo hi\"\r");
    s.expect("stdout of echo hi");
    s.expect("stderr of echo hi");
    s.expect("warden> ");

    // The server's error, then the prompt again, and the REPL goes on.
    s.send(b"destroy --handle nope\r");
    s.expect("unknown handle: nope");
    s.expect("warden> ");
    s.send(b"echo --message still-here\r");
    s.expect("message : still-here");
    s.expect("warden> ");

    // Up recalls the previous line.
    s.send(b"\x1b[A\r");
    s.expect("message : still-here");
    s.expect("warden> ");
    assert_eq!(
        count(&s.text(), "message : still-here"),
        2,
        "{:?}",
        s.text()
    );

    // A usage error shows the command's usage and keeps the prompt.
    s.send(b"list --bogus\r");
    s.expect("the field: 'bogus' is invalid");
    s.expect("command: list");
    s.expect("warden> ");

    assert_eq!(s.quit(), Some(0));

    let lines = history(&home);
    assert_eq!(
        lines,
        [
            "help",
            "create --handle tabbed",
            "run --handle h --script \"echo hi\"",
            "destroy --handle nope",
            "echo --message still-here",
            "list --bogus",
        ],
        "consecutive duplicates are kept once"
    );

    // A new session starts with that history: Up shows the last line.
    let mut s = Session::start(&server.socket, &home);
    s.expect("warden> ");
    s.send(b"\x1b[A");
    s.expect("list --bogus");
    s.send(b"\x15"); // Ctrl-U: an empty line again, for Ctrl-D.
    assert_eq!(s.quit(), Some(0));
}

#[test]
fn interactive_with_a_dead_server_is_one_line_and_fails() {
    let dir = TempDir::new("pty-dead");
    let socket = dir.0.join("nobody.sock");
    let mut s = Session::start(&socket, &dir.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(st) = s.child.0.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < deadline, "warden did not give up");
        s.fill(Duration::from_millis(20));
    };
    // Drain what it wrote: the master reads EIO once the slave is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.fill(Duration::from_millis(50)) && Instant::now() < deadline {}
    assert_eq!(code, Some(1));
    let text = s.text();
    assert_eq!(text.trim_end().lines().count(), 1, "{text:?}");
    assert!(text.contains(&socket.display().to_string()), "{text:?}");
}

// ---------------------------------------------------------------------------
// One command after `--`.

#[test]
fn one_command_run_exits_with_the_jobs_status_and_splits_its_output() {
    let dir = TempDir::new("once-run");
    let server = FakeServer::start(&dir.0);
    let sock = server.socket.to_str().unwrap();
    let out = run_warden(
        &[
            "--socket", sock, "--", "run", "--handle", "h", "--script", "x",
        ],
        b"",
        &dir.0,
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(out.stdout, b"stdout of x\n");
    assert_eq!(out.stderr, b"stderr of x\n");

    // stream and link of that job (id 1): the job's status too.
    let out = run_warden(
        &[
            "--socket", sock, "--", "stream", "--handle", "h", "--job_id", "1",
        ],
        b"",
        &dir.0,
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(out.stdout, b"stdout of x\n");
    assert_eq!(out.stderr, b"stderr of x\n");
    let out = run_warden(
        &[
            "--socket", sock, "--", "link", "--handle", "h", "--job_id", "1",
        ],
        b"",
        &dir.0,
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "exit_status : 3\nstdout : stdout of x\n\nstderr : stderr of x\n\ninfo.state : active\n"
    );
}

#[test]
fn one_command_create_prints_the_handle() {
    let dir = TempDir::new("once-create");
    let server = FakeServer::start(&dir.0);
    let sock = server.socket.to_str().unwrap();
    let out = run_warden(&["--socket", sock, "--", "create"], b"", &dir.0);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("handle : {NEW_HANDLE}\n")
    );
    assert!(out.stderr.is_empty(), "{out:?}");

    let out = run_warden(&["--socket", sock, "--", "list"], b"", &dir.0);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("handles[0] : {NEW_HANDLE}\nhandles[1] : h\n")
    );
}

#[test]
fn one_command_errors_fail() {
    let dir = TempDir::new("once-err");
    let server = FakeServer::start(&dir.0);
    let sock = server.socket.to_str().unwrap();

    let out = run_warden(
        &["--socket", sock, "--", "destroy", "--handle", "nope"],
        b"",
        &dir.0,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(out.stderr, b"unknown handle: nope\n");

    let out = run_warden(&["--socket", sock, "--", "destroy"], b"", &dir.0);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("Missing required field: '--handle'.\n"),
        "{err}"
    );
    assert!(err.contains("usage: destroy [options]"), "{err}");

    let out = run_warden(&["--socket", "/nonexistent", "--", "ping"], b"", &dir.0);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent"), "{err}");
    assert!(out.stdout.is_empty());

    let out = run_warden(&["--bogus"], b"", &dir.0);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: warden [options] -- [commands]"));
}

#[test]
fn help_needs_no_server() {
    let dir = TempDir::new("help");
    let out = run_warden(&["--socket", "/nonexistent", "--", "help"], b"", &dir.0);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for (name, description) in COMMANDS {
        assert!(text.contains(&format!("\t{name}")), "{name}");
        assert!(text.contains(description), "{name}");
    }
    let out = run_warden(&["--help"], b"", &dir.0);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Usage: warden [options] -- [commands]\n"));
    assert!(text.contains("--exit_on_error"));
    let out = run_warden(&["--", "create", "--help"], b"", &dir.0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\t\t.mode <mode> (RO, RW)  # required\n"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// Commands on a pipe.

#[test]
fn piped_commands_print_no_prompt() {
    let dir = TempDir::new("pipe");
    let server = FakeServer::start(&dir.0);
    let sock = server.socket.to_str().unwrap();
    let out = run_warden(
        &["--socket", sock],
        b"ping\necho --message 'a b'\n\ndestroy --handle nope\nrun --handle h --script 'exit 3'\nlist\n",
        &dir.0,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "message : a b\nstdout of exit 3\nhandles[0] : h\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "unknown handle: nope\nstderr of exit 3\n"
    );
    assert!(!dir.0.join(".warden-history").exists());

    // --exit_on_error stops at the first error, failing...
    let out = run_warden(
        &["--socket", sock, "--exit_on_error"],
        b"destroy --handle nope\necho --message never\n",
        &dir.0,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    // ... and at the first job that fails, with its status.
    let out = run_warden(
        &["--socket", sock, "--exit_on_error"],
        b"run --handle h --script x\necho --message never\n",
        &dir.0,
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(out.stdout, b"stdout of x\n");
}

#[test]
fn trace_shows_commands_requests_and_responses_on_stderr() {
    let dir = TempDir::new("trace");
    let server = FakeServer::start(&dir.0);
    let sock = server.socket.to_str().unwrap();
    let out = run_warden(
        &["--socket", sock, "--trace", "--", "echo", "--message", "hi"],
        b"",
        &dir.0,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"message : hi\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "+ echo --message hi\n> EchoRequest\n>   message : hi\n< EchoResponse\n<   message : hi\n"
    );
}
