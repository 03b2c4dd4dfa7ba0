//! `iomux-spawn --zygote`: the real binary asked over its socketpair, as
//! wardend asks it (bytes in wire::zygote). A holder it forks must be what
//! an exec'd `iomux-spawn ARGS...` is: the same command line, executable,
//! session, descriptors 0-2 (and none of the zygote's), environment and
//! job; bad requests are refused and the zygote goes on; it ends with its
//! socket and leaves its holders running, reaped by nobody but it.
//!
//! No container: the holders run local jobs (iomux-spawn's own child), so
//! no root is needed.

use std::ffi::OsString;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::Pid;
use tests::ctl::live_cmdlines;
use tests::iomux_job::{alive, wait_deadline, Link, TempDir};
use tests::paths::bin;
use wire::fdpass::{recv_with_fds, send_with_fds};
use wire::zygote::{self, Reply, Request};

const DEADLINE: Duration = Duration::from_secs(30);
const PADDING: usize = 4096;

/// A running zygote and our end of its socket; killed on drop.
struct Zygote {
    child: Option<Child>,
    socket: Option<OwnedFd>,
    room: usize,
}

impl Zygote {
    fn start() -> Zygote {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let child = Command::new(bin("iomux-spawn"))
            .arg("--zygote")
            .arg("p".repeat(PADDING))
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .spawn()
            .expect("starting iomux-spawn --zygote");
        let mut buf = [0u8; 64];
        let (n, fds) = recv_with_fds(ours.as_fd(), &mut buf).unwrap();
        assert!(fds.is_empty());
        let room = zygote::decode_hello(&buf[..n]).expect("a hello") as usize;
        Zygote {
            child: Some(child),
            socket: Some(ours),
            room,
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn socket(&self) -> &OwnedFd {
        self.socket.as_ref().unwrap()
    }

    /// Sends `bytes` with `fds`, returns the reply and any descriptor.
    fn ask(&self, bytes: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) -> (Reply, Option<OwnedFd>) {
        send_with_fds(self.socket().as_fd(), bytes, fds).unwrap();
        let mut buf = [0u8; zygote::MAX_REPLY + 1];
        let (n, mut got) = recv_with_fds(self.socket().as_fd(), &mut buf).unwrap();
        assert!(n > 0, "the zygote answers");
        assert!(got.len() <= 1, "one pidfd at most");
        (Reply::decode(&buf[..n]).unwrap(), got.pop())
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        drop(self.socket.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Files for a holder's 0-2, and the request for `iomux-spawn DIR sh -c SCRIPT`.
struct Job {
    dir: TempDir,
    stdin: fs::File,
    stdout: fs::File,
    stderr: fs::File,
    argv: Vec<OsString>,
}

impl Job {
    fn new(tag: &str, script: &str) -> Job {
        let dir = TempDir::new(tag);
        let sockets = dir.join("sockets");
        fs::create_dir(&sockets).unwrap();
        let argv = vec![
            bin("iomux-spawn").into(),
            sockets.into(),
            "/bin/sh".into(),
            "-c".into(),
            script.into(),
        ];
        Job {
            stdin: fs::File::open("/dev/null").unwrap(),
            stdout: fs::File::create(dir.join("spawn.out")).unwrap(),
            stderr: fs::File::create(dir.join("spawn.err")).unwrap(),
            argv,
            dir,
        }
    }

    fn sockets(&self) -> std::path::PathBuf {
        self.dir.join("sockets")
    }

    fn request(&self, env: &[(&str, &str)]) -> Vec<u8> {
        Request {
            argv: self.argv.clone(),
            env: env.iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
        .encode()
        .unwrap()
    }

    fn fork(&self, zygote: &Zygote, env: &[(&str, &str)]) -> (i32, OwnedFd) {
        let (reply, pidfd) = zygote.ask(
            &self.request(env),
            &[self.stdin.as_fd(), self.stdout.as_fd(), self.stderr.as_fd()],
        );
        match reply {
            Reply::Started { pid } => (pid, pidfd.expect("a pidfd with the pid")),
            Reply::Refused(why) => panic!("refused: {why}"),
        }
    }
}

/// The job's holder (and its held child) must be gone by the end of a test
/// that passed; whatever is left, also of a failed one, is killed.
impl Drop for Job {
    fn drop(&mut self) {
        let marker = self.sockets().to_string_lossy().into_owned();
        let left = || -> Vec<u32> {
            live_cmdlines()
                .into_iter()
                .filter(|(_, text)| text.contains(&marker))
                .map(|(pid, _)| pid)
                .collect()
        };
        let start = Instant::now();
        while !left().is_empty() && start.elapsed() < Duration::from_secs(10) {
            if std::thread::panicking() {
                break;
            }
            sleep(Duration::from_millis(10));
        }
        let leaked = left();
        for &pid in &leaked {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        if !std::thread::panicking() {
            assert!(leaked.is_empty(), "processes of {marker} left: {leaked:?}");
        }
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        sleep(Duration::from_millis(5));
    }
}

fn stat_field(pid: i32, n: usize) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(n - 3).unwrap().to_string()
}

fn cmdline(pid: i32) -> Vec<u8> {
    let mut line = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    while line.last() == Some(&0) {
        line.pop();
    }
    line
}

fn joined(argv: &[OsString]) -> Vec<u8> {
    argv.iter()
        .map(|a| a.as_bytes())
        .collect::<Vec<_>>()
        .join(&0u8)
}

fn fd_targets(pid: i32) -> Vec<(i32, String)> {
    let mut fds: Vec<(i32, String)> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            Some((
                n,
                fs::read_link(e.path()).ok()?.to_string_lossy().into_owned(),
            ))
        })
        .collect();
    fds.sort();
    fds
}

fn pidfd_readable(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// The job's whole output and exit code through iomux-link, once the
/// holder listens (it says `child_pid=` then).
fn link_all(job: &Job) -> (Vec<u8>, Vec<u8>, Option<i32>) {
    wait_until("child_pid=", || {
        fs::read_to_string(job.dir.join("spawn.out")).is_ok_and(|t| t.contains("child_pid="))
    });
    let mut link = Link::start(&job.sockets(), None, "link", job.dir.path());
    let status = link.wait();
    let (out, err) = link.output();
    (out, err, status.code())
}

#[test]
fn the_zygote_has_room_and_its_own_short_command_line() {
    let z = Zygote::start();
    assert!(
        z.room > PADDING,
        "room {} for a padding of {PADDING}",
        z.room
    );
    let want = [bin("iomux-spawn").into(), OsString::from("--zygote")];
    assert_eq!(
        String::from_utf8_lossy(&cmdline(z.pid())),
        String::from_utf8_lossy(&joined(&want))
    );
    // Its session, off the test's.
    assert_eq!(stat_field(z.pid(), 6), z.pid().to_string(), "session id");
    // Only 0-2 and its socket and signalfd: nothing of ours leaked in.
    let fds = fd_targets(z.pid());
    assert_eq!(fds[0], (0, "/dev/null".to_string()), "{fds:?}");
    assert_eq!(fds.len(), 5, "0-2, the socket, the signalfd: {fds:?}");
}

#[test]
fn a_forked_holder_is_what_an_exec_would_start() {
    let z = Zygote::start();
    let job = Job::new(
        "zygote-holder",
        "echo \"$FOO\"; echo to-err >&2; ls /proc/self/fd | wc -l; exit 7",
    );
    let (pid, pidfd) = job.fork(&z, &[("FOO", "from the request")]);

    assert_eq!(
        String::from_utf8_lossy(&cmdline(pid)),
        String::from_utf8_lossy(&joined(&job.argv)),
        "the command line an exec would have"
    );
    let exe = fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    let binary = fs::metadata(bin("iomux-spawn")).unwrap();
    assert_eq!((exe.dev(), exe.ino()), (binary.dev(), binary.ino()));
    assert_eq!(
        stat_field(pid, 4),
        z.pid().to_string(),
        "the zygote's child"
    );
    wait_until("the holder's own session", || {
        stat_field(pid, 6) == pid.to_string()
    });

    // 0-2 are the request's; the zygote's socket and signalfd are not here.
    wait_until("child_pid=", || {
        fs::read_to_string(job.dir.join("spawn.out")).is_ok_and(|t| t.contains("child_pid="))
    });
    let fds = fd_targets(pid);
    assert_eq!(fds[0], (0, "/dev/null".to_string()));
    assert_eq!(fds[1].1, job.dir.join("spawn.out").to_string_lossy());
    assert_eq!(fds[2].1, job.dir.join("spawn.err").to_string_lossy());
    let zygote_fds: Vec<String> = fd_targets(z.pid()).into_iter().map(|(_, t)| t).collect();
    for (n, target) in &fds[3..] {
        assert!(
            !zygote_fds.contains(target) && !target.contains("signalfd"),
            "fd {n} ({target}) is the zygote's: {fds:?}"
        );
    }
    assert!(!pidfd_readable(&pidfd), "the holder runs");

    let (out, err, code) = link_all(&job);
    assert_eq!(code, Some(7), "the job's exit code through iomux-link");
    // The job itself has 0-2 and ls's own directory descriptor.
    assert_eq!(String::from_utf8_lossy(&out), "from the request\n4\n");
    assert_eq!(String::from_utf8_lossy(&err), "to-err\n");

    wait_until("the holder's end", || pidfd_readable(&pidfd));
    // Reaped by the zygote: no zombie is left of it.
    wait_until("the holder reaped", || !alive(pid));
    assert!(fs::read_to_string(job.dir.join("spawn.out"))
        .unwrap()
        .contains("child active"));
}

#[test]
fn bad_requests_are_refused_and_the_zygote_goes_on() {
    let z = Zygote::start();
    let job = Job::new("zygote-refusals", "echo fine");
    let three = [job.stdin.as_fd(), job.stdout.as_fd(), job.stderr.as_fd()];
    let refused = |bytes: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]| match z.ask(bytes, fds) {
        (Reply::Refused(why), None) => why,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refused(b"garbage of no kind", &three),
        "not a zygote request: bad magic"
    );
    assert_eq!(
        refused(&job.request(&[]), &three[..1]),
        "a request carries 1 descriptors, not 3"
    );
    let long = Request {
        argv: vec![bin("iomux-spawn").into(), "d".repeat(z.room).into()],
        env: vec![],
    };
    assert!(
        refused(&long.encode().unwrap(), &three).contains("over the"),
        "a command line without room"
    );
    let nine: Vec<_> = (0..9).map(|_| job.stdin.as_fd()).collect();
    assert_eq!(
        refused(&job.request(&[]), &nine),
        "more than 8 descriptors sent"
    );
    let mut huge = b"IZR1".to_vec();
    huge.resize(zygote::MAX_REQUEST + 100, b'x');
    assert!(
        refused(&huge, &three).contains("over"),
        "an oversized request"
    );
    // None of these started anything.
    assert!(fs::read_to_string(job.dir.join("spawn.out"))
        .unwrap()
        .is_empty());

    let (_pid, _pidfd) = job.fork(&z, &[]);
    let (out, _, code) = link_all(&job);
    assert_eq!((out, code), (b"fine\n".to_vec(), Some(0)));
}

#[test]
fn a_bad_command_line_fails_as_an_exec_would() {
    let z = Zygote::start();
    let job = Job::new("zygote-usage", "true");
    let request = Request {
        argv: vec![bin("iomux-spawn").into(), "--tty".into()],
        env: vec![],
    };
    let (reply, pidfd) = z.ask(
        &request.encode().unwrap(),
        &[job.stdin.as_fd(), job.stdout.as_fd(), job.stderr.as_fd()],
    );
    assert!(matches!(reply, Reply::Started { .. }), "{reply:?}");
    let pidfd = pidfd.unwrap();
    wait_until("the holder's end", || pidfd_readable(&pidfd));
    let err = fs::read_to_string(job.dir.join("spawn.err")).unwrap();
    let exec = Command::new(bin("iomux-spawn"))
        .arg("--tty")
        .output()
        .unwrap();
    assert_eq!(
        err,
        String::from_utf8_lossy(&exec.stderr),
        "the same usage error"
    );
    assert_eq!(exec.status.code(), Some(1));
}

#[test]
fn the_zygote_ends_with_its_socket_and_leaves_holders_running() {
    let mut z = Zygote::start();
    let job = Job::new("zygote-end", "read line; echo got $line");
    let (pid, pidfd) = job.fork(&z, &[]);
    let zygote_pid = z.pid();
    drop(z.socket.take());
    let status = wait_deadline(z.child.as_mut().unwrap(), DEADLINE);
    z.child = None;
    assert_eq!(status.code(), Some(0), "the zygote's end at end of file");
    assert!(!alive(zygote_pid));
    assert!(!pidfd_readable(&pidfd), "its holder runs on");
    assert!(alive(pid));

    // The job is still there to link to; its stdin is /dev/null.
    let (out, _, code) = link_all(&job);
    assert_eq!(
        (String::from_utf8_lossy(&out).into_owned(), code),
        ("got\n".into(), Some(0))
    );
    wait_until("the holder's end", || pidfd_readable(&pidfd));
}

#[test]
fn a_zygote_without_its_socket_says_so() {
    let out = Command::new(bin("iomux-spawn"))
        .arg("--zygote")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("iomux-spawn --zygote: stdin must be the server's SOCK_SEQPACKET socket"),
        "{err}"
    );
    // Past its one argument, --zygote is an unknown option like any other.
    let out = Command::new(bin("iomux-spawn"))
        .args(["--zygote", "pad", "more"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option --zygote"));
}
