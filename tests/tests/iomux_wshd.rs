//! `iomux-spawn --wshd`: the job asked of a real container's wshd by
//! iomux-spawn itself, against the same job through a wsh child (the C
//! helpers' way): the same streams, exit codes and status file, the whole
//! script however large and whatever stdin is, the hold until each socket
//! has a client, a failure that is the job's, and only 0-2 in the job.
//!
//! Root: wshd makes namespaces. Every container is a throw-away one
//! ([`tests::container`]), killed and checked for leftovers on drop.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tests::container::Container;
use tests::iomux_job::{Link, TempDir};
use tests::paths::bin;

const DEADLINE: Duration = Duration::from_secs(120);

fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root (wshd makes namespaces)");
    false
}

/// How the job gets to wshd.
#[derive(Clone, Copy, Debug)]
enum Way {
    /// `iomux-spawn DIR wsh --socket S [--status-file F] [--user U] CMD`.
    ThroughWsh,
    /// `iomux-spawn --wshd S [--user U] [--status-file F] DIR CMD`.
    Direct,
}

/// A running iomux-spawn; killed (with its session) on drop.
struct Spawned {
    child: Option<Child>,
    stdout: BufReader<ChildStdout>,
    pid: i32,
    job_pid: i32,
}

impl Spawned {
    fn wait_ok(mut self) {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                assert_eq!(st.code(), Some(0), "iomux-spawn exit status {st}");
                return;
            }
            assert!(start.elapsed() < DEADLINE, "iomux-spawn did not exit");
            sleep(Duration::from_millis(5));
        }
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(-(c.id() as i32)),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts the job `/bin/sh` reading `stdin` (a file, or bytes through a
/// pipe when `piped`), in `dir`, the way given.
fn spawn(
    way: Way,
    c: &Container,
    dir: &Path,
    user: Option<&str>,
    status_file: Option<&Path>,
    stdin: Stdin<'_>,
) -> Spawned {
    let mut cmd = Command::new(bin("iomux-spawn"));
    match way {
        Way::ThroughWsh => {
            cmd.arg(dir).arg(bin("wsh")).arg("--socket").arg(c.socket());
            if let Some(f) = status_file {
                cmd.arg("--status-file").arg(f);
            }
            if let Some(u) = user {
                cmd.args(["--user", u]);
            }
        }
        Way::Direct => {
            cmd.arg("--wshd").arg(c.socket());
            if let Some(u) = user {
                cmd.args(["--user", u]);
            }
            if let Some(f) = status_file {
                cmd.arg("--status-file").arg(f);
            }
            cmd.arg(dir);
        }
    }
    cmd.arg("/bin/sh");
    start(cmd, stdin)
}

/// Starts a prepared iomux-spawn command and reads its `child_pid=` line,
/// printed once its sockets listen.
fn start(mut cmd: Command, stdin: Stdin<'_>) -> Spawned {
    cmd.stdout(Stdio::piped());
    let feed = match stdin {
        Stdin::File(path) => {
            cmd.stdin(fs::File::open(path).unwrap());
            None
        }
        Stdin::Pipe(bytes) => {
            cmd.stdin(Stdio::piped());
            Some(bytes.to_vec())
        }
    };
    let mut child = cmd.spawn().expect("starting iomux-spawn");
    if let Some(bytes) = feed {
        let mut input = child.stdin.take().expect("piped");
        std::thread::spawn(move || {
            let _ = input.write_all(&bytes);
        });
    }
    let pid = child.id() as i32;
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut s = Spawned {
        child: Some(child),
        stdout,
        pid,
        job_pid: 0,
    };
    let line = s.read_line();
    s.job_pid = line
        .strip_prefix("child_pid=")
        .and_then(|p| p.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    s
}

enum Stdin<'a> {
    File(&'a Path),
    Pipe(&'a [u8]),
}

/// What one job gave a link: stdout, stderr, link exit code, status file.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    out: Vec<u8>,
    err: Vec<u8>,
    code: Option<i32>,
    status_file: Option<String>,
}

fn run_job(
    way: Way,
    c: &Container,
    t: &TempDir,
    tag: &str,
    user: Option<&str>,
    script: &[u8],
) -> Outcome {
    let dir = t.join(tag);
    fs::create_dir(&dir).unwrap();
    let script_path = t.join(&format!("{tag}.sh"));
    fs::write(&script_path, script).unwrap();
    let status_file = t.join(&format!("{tag}.status"));
    let spawned = spawn(
        way,
        c,
        &dir,
        user,
        Some(&status_file),
        Stdin::File(&script_path),
    );
    let mut link = Link::start(&dir, None, tag, t.path());
    let st = link.wait();
    let (out, err) = link.output();
    spawned.wait_ok();
    Outcome {
        out,
        err,
        code: st.code(),
        status_file: fs::read_to_string(&status_file).ok(),
    }
}

#[test]
fn a_job_asked_directly_gives_what_the_same_job_through_wsh_gives() {
    if !require_root() {
        return;
    }
    let c = Container::start();
    let t = TempDir::new("wshd-same");
    let cases: [(&str, Option<&str>, &[u8]); 5] = [
        (
            "mixed",
            Some("vcap"),
            b"echo out1; echo err1 >&2; id -u; id -un >&2; printf 'no newline'; exit 3\n",
        ),
        ("root", None, b"id -u; pwd; echo $LANG-$HOME\n"),
        (
            "killed",
            Some("vcap"),
            b"echo before; kill -9 $$; echo after\n",
        ),
        (
            "bytes",
            None,
            b"printf '\\000\\377\\001'; printf '\\376' >&2\n",
        ),
        ("empty", None, b""),
    ];
    for (tag, user, script) in cases {
        let through = run_job(Way::ThroughWsh, &c, &t, &format!("{tag}-wsh"), user, script);
        let direct = run_job(Way::Direct, &c, &t, &format!("{tag}-direct"), user, script);
        assert_eq!(direct, through, "{tag}");
    }
    let mixed = run_job(Way::Direct, &c, &t, "again", Some("vcap"), cases[0].2);
    assert_eq!(mixed.out, b"out1\n10000\nno newline");
    assert_eq!(mixed.err, b"err1\nvcap\n");
    assert_eq!(mixed.code, Some(3));
    assert_eq!(mixed.status_file.as_deref(), Some("exited 3\n"));
    let killed = run_job(
        Way::Direct,
        &c,
        &t,
        "killed-again",
        Some("vcap"),
        cases[2].2,
    );
    assert_eq!(
        (killed.code, killed.out.as_slice()),
        (Some(255), &b"before\n"[..])
    );
    assert_eq!(killed.status_file.as_deref(), Some("signaled 9\n"));
    c.destroy().unwrap();
}

#[test]
fn the_whole_script_reaches_the_shell_from_a_file_or_a_pipe() {
    if !require_root() {
        return;
    }
    let c = Container::start();
    let t = TempDir::new("wshd-stdin");
    // ~2.4 MB: far more than a pipe holds, so the copy must wait for the
    // shell to read.
    let mut script = Vec::new();
    for i in 0..200_000 {
        script.extend_from_slice(format!("x={i}\n").as_bytes());
    }
    script.extend_from_slice(b"echo \"last $x\"\n");
    let script_path = t.join("big.sh");
    fs::write(&script_path, &script).unwrap();
    for (tag, stdin) in [
        ("file", Stdin::File(&script_path)),
        ("pipe", Stdin::Pipe(&script)),
    ] {
        let dir = t.join(tag);
        fs::create_dir(&dir).unwrap();
        let spawned = spawn(Way::Direct, &c, &dir, Some("vcap"), None, stdin);
        let mut link = Link::start(&dir, None, tag, t.path());
        assert_eq!(link.wait().code(), Some(0), "{tag}: {}", link.err());
        assert_eq!(link.out(), b"last 199999\n", "{tag}");
        spawned.wait_ok();
    }
    // A shell that stops reading its stdin early (the rest of a big
    // script unread) ends the copy, not the job.
    let mut early = b"exec </dev/null\necho closed\n".to_vec();
    early.extend(std::iter::repeat_n(b'#', 3 << 20));
    let dir = t.join("early");
    fs::create_dir(&dir).unwrap();
    let spawned = spawn(Way::Direct, &c, &dir, None, None, Stdin::Pipe(&early));
    let mut link = Link::start(&dir, None, "early", t.path());
    assert_eq!(link.wait().code(), Some(0), "{}", link.err());
    assert_eq!(link.out(), b"closed\n");
    spawned.wait_ok();
    c.destroy().unwrap();
}

#[test]
fn the_job_waits_for_a_client_on_each_socket_and_sees_only_0_1_2() {
    if !require_root() {
        return;
    }
    let c = Container::start();
    let t = TempDir::new("wshd-held");
    let dir = t.join("job");
    fs::create_dir(&dir).unwrap();
    let script = t.join("held.sh");
    // `; true` keeps sh from exec'ing ls, so $$ is the shell itself.
    fs::write(&script, "touch /tmp/ran; ls /proc/$$/fd; true\n").unwrap();
    let mut spawned = spawn(Way::Direct, &c, &dir, None, None, Stdin::File(&script));
    // With --wshd, the host process holding the job's pipes is iomux-spawn.
    assert_eq!(spawned.job_pid, spawned.pid);
    let marker = c.upper("/tmp/ran");
    let out = std::os::unix::net::UnixStream::connect(dir.join("stdout.sock")).unwrap();
    let err = std::os::unix::net::UnixStream::connect(dir.join("stderr.sock")).unwrap();
    // Not a speed assertion: ample time for a job that was not held.
    sleep(Duration::from_millis(200));
    assert!(
        !marker.exists(),
        "the job ran before status.sock had a client"
    );
    drop((out, err));
    let mut link = Link::start(&dir, None, "l", t.path());
    assert_eq!(link.wait().code(), Some(0), "{}", link.err());
    assert_eq!(spawned.read_line(), "child active\n");
    assert_eq!(String::from_utf8(link.out()).unwrap(), "0\n1\n2\n");
    spawned.wait_ok();
    c.destroy().unwrap();
}

#[test]
fn a_wshd_that_cannot_be_reached_fails_the_job_not_iomux_spawn() {
    let t = TempDir::new("wshd-gone");
    let dir = t.join("job");
    fs::create_dir(&dir).unwrap();
    let missing: PathBuf = t.join("no-such-wshd.sock");
    let mut cmd = Command::new(bin("iomux-spawn"));
    cmd.arg("--wshd").arg(&missing).arg(&dir).arg("/bin/sh");
    let spawned = start(cmd, Stdin::File(Path::new("/dev/null")));
    let mut link = Link::start(&dir, None, "l", t.path());
    assert_eq!(link.wait().code(), Some(255));
    let err = link.err();
    assert!(
        err.starts_with("iomux-spawn: connect ") && err.contains("no-such-wshd.sock"),
        "{err}"
    );
    spawned.wait_ok();
    assert_eq!(
        wire::iomux::read_status_file(&dir).unwrap(),
        Some(wire::iomux::WaitStatus(255 << 8)),
        "the status file says what the link said"
    );
}

#[test]
fn bad_command_lines_show_the_whole_usage() {
    let t = TempDir::new("wshd-usage");
    for args in [
        &["--wshd"][..],
        &["--wshd", "s", "dir"][..],
        &["--user", "vcap", "dir", "cmd"][..],
        &["--nope", "dir", "cmd"][..],
    ] {
        let out = Command::new(bin("iomux-spawn"))
            .args(args)
            .current_dir(t.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("iomux-spawn: "), "{args:?}: {err}");
        assert!(err.contains("Usage: iomux-spawn [--wshd SOCKET"), "{err}");
        assert!(err.contains("--status-file FILE"), "{err}");
        assert_eq!(
            fs::read_dir(t.path()).unwrap().count(),
            0,
            "{args:?} made something"
        );
    }
}
