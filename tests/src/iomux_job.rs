//! The harness the iomux tests share: a scratch directory, an iomux-spawn
//! job and iomux-link processes as guards that clean up even when a test
//! panics, so no run leaves processes or directories behind.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::paths::bin;

/// How long [`Spawn::wait_ok`] and [`Link::wait`] wait: far longer than any
/// of these jobs needs; it only stops a hung test.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// A fresh scratch directory, removed on drop. The tag and a counter keep
/// tests running in parallel in one process apart.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "iomux-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("creating the test directory");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A running iomux-spawn; killed with its whole session on drop, so a
/// failed test does not leave its job running.
pub struct Spawn {
    /// `None` once a test has waited for it (or taken it to kill it itself).
    pub child: Option<Child>,
    stdout: BufReader<ChildStdout>,
    pub job_pid: i32,
}

impl Spawn {
    pub fn start(dir: &Path, script: &str) -> Spawn {
        Spawn::start_with(dir, script, &[])
    }

    pub fn start_with(dir: &Path, script: &str, env: &[(&str, &str)]) -> Spawn {
        let mut child = Command::new(bin("iomux-spawn"))
            .envs(env.iter().copied())
            .arg(dir)
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting iomux-spawn");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reading child_pid=");
        let job_pid = line
            .strip_prefix("child_pid=")
            .and_then(|s| s.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        assert!(line.ends_with('\n'));
        Spawn {
            child: Some(child),
            stdout,
            job_pid,
        }
    }

    /// The second line, printed once a client is on each socket.
    pub fn read_active(&mut self) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "child active\n");
    }

    /// Wait for iomux-spawn to exit; it must exit 0 and leave no job behind.
    pub fn wait_ok(mut self) {
        let mut child = self.child.take().unwrap();
        let st = wait_deadline(&mut child, DEADLINE);
        assert_eq!(st.code(), Some(0), "iomux-spawn exit status {st}");
        assert!(
            !alive(self.job_pid),
            "job {} outlived iomux-spawn",
            self.job_pid
        );
    }
}

impl Drop for Spawn {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // iomux-spawn leads its own session: take the job down with it.
            let _ = kill(Pid::from_raw(-(c.id() as i32)), Signal::SIGKILL);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running iomux-link writing its stdout and stderr to `<tag>.out` and
/// `<tag>.err`, so the tests can read them whole after it exits (a pipe
/// would need a reader thread); killed on drop.
pub struct Link {
    child: Option<Child>,
    pub out: PathBuf,
    pub err: PathBuf,
}

impl Link {
    pub fn start(dir: &Path, cursors: Option<&Path>, tag: &str, outdir: &Path) -> Link {
        let out = outdir.join(format!("{tag}.out"));
        let err = outdir.join(format!("{tag}.err"));
        let mut cmd = Command::new(bin("iomux-link"));
        if let Some(c) = cursors {
            cmd.arg("-w").arg(c);
        }
        let child = cmd
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("creating the link's stdout file"))
            .stderr(fs::File::create(&err).expect("creating the link's stderr file"))
            .spawn()
            .expect("starting iomux-link");
        Link {
            child: Some(child),
            out,
            err,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    pub fn wait(&mut self) -> ExitStatus {
        let st = wait_deadline(self.child.as_mut().expect("running"), DEADLINE);
        self.child = None;
        st
    }

    pub fn out(&self) -> Vec<u8> {
        fs::read(&self.out).unwrap()
    }

    pub fn err(&self) -> String {
        fs::read_to_string(&self.err).unwrap()
    }

    /// Both streams as bytes (stderr need not be text).
    pub fn output(&self) -> (Vec<u8>, Vec<u8>) {
        (
            fs::read(&self.out).expect("reading the link's stdout"),
            fs::read(&self.err).expect("reading the link's stderr"),
        )
    }

    /// True once the link has its three sockets open.
    pub fn connected(&self) -> bool {
        let dir = format!("/proc/{}/fd", self.pid());
        let Ok(entries) = fs::read_dir(dir) else {
            return false;
        };
        entries
            .flatten()
            .filter(|e| {
                fs::read_link(e.path())
                    .map(|t| t.to_string_lossy().starts_with("socket:"))
                    .unwrap_or(false)
            })
            .count()
            >= 3
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A test may have stopped it; a stopped process still dies of
            // SIGKILL, but continuing it first keeps the reap prompt.
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits for `child`, killing it and failing the test after `deadline`, so
/// a hung process stops the test instead of hanging it.
pub fn wait_deadline(child: &mut Child, deadline: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("waiting for a child") {
            return st;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} did not finish", child.id());
        }
        sleep(Duration::from_millis(2));
    }
}

/// True while `pid` exists (a zombie counts as alive).
pub fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}
