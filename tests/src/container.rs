//! A throw-away container started by the real wshd, for black-box tests.
//!
//! Layout of an instance (a fresh `/tmp/wshd-test-XXXXXX`):
//! `run/` (wshd.sock, wshd.pid, logs), `lib/` (minimal hooks written here,
//! not the real skeleton), `upper/` and `work/` (the overlay's writable
//! layers) and `mnt/` (the overlay over the busybox rootfs, the container's
//! root). The overlay is mounted by `hook-parent-before-clone.sh` inside
//! wshd's own mount namespace, so nothing is ever mounted on the host.
//!
//! The test process makes itself a child subreaper, so the container's
//! init (orphaned when the wshd parent exits) becomes its child: dropping a
//! [`Container`] kills and reaps it deterministically and then checks that
//! nothing of it is left (no process in its pid namespace, no mount naming
//! its directory) before removing the directory.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::paths;

/// The fd number a leaked descriptor gets in wshd (see
/// [`Builder::leak_fd`]).
pub const LEAKED_FD: i32 = 77;

const HOOK_BEFORE_CLONE: &str = r#"#!/bin/sh
set -e
cd "$(dirname "$0")/.."
mount -t overlay overlay -o "lowerdir=@ROOTFS@,upperdir=$PWD/upper,workdir=$PWD/work" mnt
cp "@WSHD@" mnt/sbin/wshd
chmod 0755 mnt/sbin/wshd
mkdir -p mnt/dev mnt/proc
rm -rf mnt/dev/null mnt/dev/zero mnt/dev/random mnt/dev/urandom mnt/dev/tty mnt/dev/ptmx mnt/dev/pts mnt/dev/shm
mknod -m 0666 mnt/dev/null c 1 3
mknod -m 0666 mnt/dev/zero c 1 5
mknod -m 0666 mnt/dev/random c 1 8
mknod -m 0666 mnt/dev/urandom c 1 9
mknod -m 0666 mnt/dev/tty c 5 0
ln -s pts/ptmx mnt/dev/ptmx
mkdir -p mnt/dev/pts mnt/dev/shm
"#;

const HOOK_AFTER_CLONE: &str = r#"#!/bin/sh
set -e
cd "$(dirname "$0")/.."
echo "$PID" > run/wshd.pid
"#;

const HOOK_BEFORE_PIVOT: &str = "#!/bin/sh\nexit 0\n";

const HOOK_AFTER_PIVOT: &str = r#"#!/bin/sh
set -e
mount -t proc proc /proc
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
hostname "@HOSTNAME@"
"#;

/// Options of a container to start.
#[derive(Default)]
pub struct Builder {
    files: Vec<(PathBuf, Vec<u8>)>,
    leak_fd: bool,
    ignore_signals: bool,
    hostname: Option<String>,
    failing_hook: Option<String>,
}

impl Builder {
    /// Put a file at `path` (absolute, inside the container) before start,
    /// shadowing the rootfs's (e.g. an /etc/group with extra groups).
    pub fn file(mut self, path: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((PathBuf::from(path), contents.into()));
        self
    }

    /// Start wshd with an extra open descriptor (fd [`LEAKED_FD`], not
    /// close-on-exec), as a careless parent would.
    pub fn leak_fd(mut self) -> Self {
        self.leak_fd = true;
        self
    }

    /// Start wshd with SIGHUP and SIGUSR1 ignored, as `nohup` and careless
    /// supervisors do; the container's processes must not inherit that.
    pub fn ignore_signals(mut self) -> Self {
        self.ignore_signals = true;
        self
    }

    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = Some(name.to_string());
        self
    }

    /// Make the hook called `name` exit 3 (to test wshd's failure path).
    pub fn failing_hook(mut self, name: &str) -> Self {
        self.failing_hook = Some(name.to_string());
        self
    }

    /// Start it; panics with wshd's own messages when it does not come up.
    pub fn start(self) -> Container {
        match self.try_start() {
            Ok(c) => c,
            Err(e) => panic!("starting a container: {e}"),
        }
    }

    /// Start it, or say why it did not come up. A failed start is cleaned
    /// up here; it is an error (a panic) if wshd left the container's init
    /// running or anything else behind.
    pub fn try_start(self) -> Result<Container, String> {
        let dir =
            nix::unistd::mkdtemp("/tmp/wshd-test-XXXXXX").expect("mkdtemp /tmp/wshd-test-XXXXXX");
        let mut c = Container {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir,
            pid: None,
            pidns: None,
            done: false,
        };
        match c.setup(self) {
            Ok(()) => Ok(c),
            Err(e) => {
                if let Some(pid) = c.pid {
                    let alive = Path::new(&format!("/proc/{pid}")).exists();
                    assert!(!alive, "wshd failed ({e}) but left its init {pid} behind");
                }
                if let Err(leak) = c.teardown() {
                    panic!("after a failed start ({e}): {leak}");
                }
                Err(format!("in {}: {e}", c.dir.display()))
            }
        }
    }
}

/// A running container. Drop (or [`Container::destroy`]) kills it and
/// checks that it left nothing behind.
pub struct Container {
    name: String,
    dir: PathBuf,
    pid: Option<Pid>,
    pidns: Option<PathBuf>,
    done: bool,
}

fn write_exec(path: &Path, text: &str) -> io::Result<()> {
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

/// The write end of a pipe whose bytes a thread appends to `path` until
/// every writer is gone.
fn log_through_pipe(path: &Path) -> io::Result<OwnedFd> {
    use std::io::{Read, Write};
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let mut file = fs::File::create(path)?;
    std::thread::spawn(move || {
        let mut reader = fs::File::from(r);
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || file.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    Ok(w)
}

fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a process flag.
    let rv = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rv, 0, "prctl(PR_SET_CHILD_SUBREAPER)");
}

impl Container {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A container with default options.
    pub fn start() -> Container {
        Builder::default().start()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/wshd.sock")
    }

    /// The container's init (wshd --continue) as the host sees it.
    pub fn pid(&self) -> Pid {
        self.pid.expect("container is running")
    }

    /// The hostname the container was given.
    pub fn hostname(&self) -> String {
        fs::read_to_string(self.dir.join("hostname"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// wshd's stderr (run/wshd.err.log): its log, once nothing more has
    /// arrived for a moment (it comes through a pipe and a thread).
    pub fn log(&self) -> String {
        let path = self.dir.join("run/wshd.err.log");
        let mut last = fs::read_to_string(&path).unwrap_or_default();
        for _ in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let now = fs::read_to_string(&path).unwrap_or_default();
            if now == last {
                break;
            }
            last = now;
        }
        last
    }

    /// Path inside the container's writable layer (what the container wrote
    /// to `path`, seen from the host).
    pub fn upper(&self, path: &str) -> PathBuf {
        self.dir.join("upper").join(path.trim_start_matches('/'))
    }

    fn setup(&mut self, b: Builder) -> Result<(), String> {
        let err = |what: &str, e: io::Error| format!("{what}: {e}");
        become_subreaper();
        let rootfs = paths::rootfs();
        let wshd = paths::bin("wshd");
        for d in ["run", "lib", "mnt", "upper", "work"] {
            fs::create_dir(self.dir.join(d)).map_err(|e| err(d, e))?;
        }
        let hostname = b.hostname.unwrap_or_else(|| self.name.replace('_', "-"));
        fs::write(self.dir.join("hostname"), &hostname).map_err(|e| err("hostname", e))?;
        let lib = self.dir.join("lib");
        let before = HOOK_BEFORE_CLONE
            .replace("@ROOTFS@", &rootfs.to_string_lossy())
            .replace("@WSHD@", &wshd.to_string_lossy());
        write_exec(&lib.join("hook-parent-before-clone.sh"), &before)
            .map_err(|e| err("hook", e))?;
        write_exec(&lib.join("hook-parent-after-clone.sh"), HOOK_AFTER_CLONE)
            .map_err(|e| err("hook", e))?;
        write_exec(&lib.join("hook-child-before-pivot.sh"), HOOK_BEFORE_PIVOT)
            .map_err(|e| err("hook", e))?;
        write_exec(
            &lib.join("hook-child-after-pivot.sh"),
            &HOOK_AFTER_PIVOT.replace("@HOSTNAME@", &hostname),
        )
        .map_err(|e| err("hook", e))?;
        if let Some(name) = &b.failing_hook {
            write_exec(&lib.join(name), "#!/bin/sh\nexit 3\n").map_err(|e| err("hook", e))?;
        }
        for (path, contents) in &b.files {
            let p = self.upper(&path.to_string_lossy());
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).map_err(|e| err("upper dir", e))?;
            }
            fs::write(&p, contents).map_err(|e| err(&p.to_string_lossy(), e))?;
        }

        let run = self.dir.join("run");
        let out = fs::File::create(run.join("wshd.out.log")).map_err(|e| err("log", e))?;
        // A confined wshd keeps its stderr after start-up only when it is a
        // pipe (a host file would be a handle on the host's filesystem), so
        // the log arrives through one and a thread writes it down.
        let errlog = log_through_pipe(&run.join("wshd.err.log")).map_err(|e| err("log", e))?;
        let mut cmd = Command::new(&wshd);
        cmd.arg("--run")
            .arg(&run)
            .arg("--lib")
            .arg(&lib)
            .arg("--root")
            .arg(self.dir.join("mnt"))
            .arg("--title")
            .arg(format!("wshd: {}", self.name))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(errlog);
        let leak: Option<OwnedFd> = if b.leak_fd {
            Some(
                fs::File::create(self.dir.join("leaked"))
                    .map_err(|e| err("leaked", e))?
                    .into(),
            )
        } else {
            None
        };
        if let Some(fd) = &leak {
            let raw = fd.as_raw_fd();
            // SAFETY: dup2 is async-signal-safe; the new descriptor is left
            // inheritable on purpose.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(raw, LEAKED_FD) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        if b.ignore_signals {
            // SAFETY: signal() is async-signal-safe and runs no code of ours.
            unsafe {
                cmd.pre_exec(|| {
                    libc::signal(libc::SIGHUP, libc::SIG_IGN);
                    libc::signal(libc::SIGUSR1, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let status = cmd.status().map_err(|e| err("running wshd", e))?;
        drop(leak);
        // Record the pid first, so a failure below still cleans it up.
        if let Ok(text) = fs::read_to_string(run.join("wshd.pid")) {
            if let Ok(n) = text.trim().parse::<i32>() {
                self.pid = Some(Pid::from_raw(n));
                self.pidns = fs::read_link(format!("/proc/{n}/ns/pid")).ok();
            }
        }
        if !status.success() {
            return Err(format!("wshd exited with {status}; log:\n{}", self.log()));
        }
        if self.pid.is_none() || self.pidns.is_none() {
            return Err("no usable run/wshd.pid after start".into());
        }
        if !self.socket().exists() {
            return Err("wshd came up without run/wshd.sock".into());
        }
        Ok(())
    }

    /// Host pids of the container's processes, zombies included (a zombie
    /// has no namespace links, so walk the children of its init instead).
    pub fn tree(&self) -> Vec<i32> {
        let mut all = vec![self.pid().as_raw()];
        let mut i = 0;
        while i < all.len() {
            let p = all[i];
            for task in fs::read_dir(format!("/proc/{p}/task"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
                all.extend(
                    children
                        .split_whitespace()
                        .filter_map(|s| s.parse::<i32>().ok()),
                );
            }
            i += 1;
        }
        all
    }

    /// `wsh --socket run/wshd.sock ARGS...` with no stdin.
    pub fn wsh<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.wsh_with(args, &[], &[])
    }

    /// `wsh` with `stdin` fed in and `env` added to wsh's environment.
    pub fn wsh_with<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        stdin: &[u8],
        env: &[(&str, &str)],
    ) -> Output {
        let mut cmd = self.wsh_command(args);
        cmd.envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning wsh");
        let mut input = child.stdin.take().expect("piped stdin");
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().expect("waiting for wsh");
        let _ = writer.join();
        out
    }

    /// A `wsh --socket ...` command with ARGS, for tests that plumb it
    /// themselves.
    pub fn wsh_command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(paths::bin("wsh"));
        cmd.arg("--socket").arg(self.socket()).args(args);
        cmd
    }

    /// Host pids of every process in the container's pid namespace.
    pub fn processes(&self) -> Vec<i32> {
        let Some(ns) = &self.pidns else {
            return Vec::new();
        };
        processes_in(ns)
    }

    /// Kill the container and check that it left nothing behind.
    pub fn destroy(mut self) -> Result<(), String> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let mut problems = Vec::new();
        if let Some(pid) = self.pid.take() {
            // Killing pid 1 of a pid namespace kills every process in it.
            let _ = kill(pid, Signal::SIGKILL);
            if waitpid(pid, None).is_err() {
                // Not our child after all: wait for it to go away.
                for _ in 0..1000 {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
        if let Some(ns) = &self.pidns {
            let left = processes_in(ns);
            if !left.is_empty() {
                problems.push(format!("processes left in the container: {left:?}"));
            }
        }
        let mounts = mounts_under(&self.dir);
        if !mounts.is_empty() {
            problems.push(format!("mounts left on the host: {mounts:?}"));
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            problems.push(format!("removing {}: {e}", self.dir.display()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            if std::thread::panicking() {
                eprintln!("container cleanup: {e}");
            } else {
                panic!("container cleanup: {e}");
            }
        }
    }
}

/// Host pids whose pid namespace is `ns` (a readlink of /proc/PID/ns/pid).
pub fn processes_in(ns: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if fs::read_link(format!("/proc/{pid}/ns/pid")).ok().as_deref() == Some(ns) {
            out.push(pid);
        }
    }
    out
}

/// Mount points in this process's mount table that lie under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let table = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let needle = dir.to_string_lossy().into_owned();
    table
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// Which of `pids` are zombies.
pub fn zombies(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| {
                    s.rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(false)
        })
        .collect()
}
