//! Where the setup scripts and helper binaries are, and running a script the
//! way a Warden server does: environment in, exit status out, the last line
//! of its error output as the message when it fails.

use std::env;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::depot::DepotLock;
use crate::errors::{Error, Result};

/// The helper binaries an instance needs in its bin/.
pub const HELPERS: [&str; 5] = ["wshd", "wsh", "iomux-spawn", "iomux-link", "cgroup-devices"];

#[derive(Debug, Clone)]
pub struct Paths {
    /// Holds root/ and skeleton/.
    pub scripts: PathBuf,
    /// Holds the helpers (HELPERS) and normally wardenctl.
    pub bin: PathBuf,
}

/// Where `make install` puts the helpers and the scripts, relative to the
/// directory of the installed wardenctl/wardend (PREFIX/bin).
pub const INSTALLED_HELPERS: &str = "../lib/warden";
pub const INSTALLED_SCRIPTS: &str = "../share/warden";

impl Paths {
    /// Explicit paths (flags, WARDEN_BIN_DIR, WARDEN_SCRIPTS_DIR) win.
    /// Else the helpers are taken from the executable's own directory when
    /// wshd is there (a build tree, or everything in one directory), then
    /// from the installed layout, PREFIX/lib/warden; the scripts from
    /// setup-scripts/ next to the executable, the installed
    /// PREFIX/share/warden, then the source tree it was built from.
    pub fn discover(scripts: Option<PathBuf>, bin: Option<PathBuf>) -> Result<Self> {
        let exe_dir = env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        Self::discover_from(exe_dir.as_deref(), scripts, bin)
    }

    /// `discover` for an executable living in `exe_dir`.
    pub fn discover_from(
        exe_dir: Option<&Path>,
        scripts: Option<PathBuf>,
        bin: Option<PathBuf>,
    ) -> Result<Self> {
        let bin = match bin {
            Some(bin) => bin,
            None => {
                let Some(exe_dir) = exe_dir else {
                    return Err(Error::Tool(
                        "cannot locate the helper binaries: set WARDEN_BIN_DIR".into(),
                    ));
                };
                let installed = exe_dir.join(INSTALLED_HELPERS);
                if !exe_dir.join("wshd").is_file() && installed.join("wshd").is_file() {
                    installed
                } else {
                    // check_helpers names what is missing here.
                    exe_dir.to_path_buf()
                }
            }
        };
        let scripts = match scripts {
            Some(dir) => {
                if !dir.join("root/create.sh").is_file() {
                    return Err(Error::MissingPath {
                        what: "setup scripts (root/create.sh)",
                        path: dir,
                    });
                }
                dir
            }
            None => {
                let mut candidates = Vec::new();
                if let Some(exe_dir) = exe_dir {
                    candidates.push(exe_dir.join("setup-scripts"));
                    candidates.push(exe_dir.join(INSTALLED_SCRIPTS));
                }
                candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../setup-scripts"));
                candidates
                    .into_iter()
                    .find(|dir| dir.join("root/create.sh").is_file())
                    .ok_or_else(|| {
                        Error::Tool(
                            "cannot locate the setup scripts: set WARDEN_SCRIPTS_DIR".into(),
                        )
                    })?
            }
        };
        let scripts = scripts.canonicalize().unwrap_or(scripts);
        let bin = bin.canonicalize().unwrap_or(bin);
        Ok(Paths { scripts, bin })
    }

    pub fn root_script(&self, name: &str) -> PathBuf {
        self.scripts.join("root").join(name)
    }

    pub fn helper(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Fails with the first helper that is missing.
    pub fn check_helpers(&self) -> Result<()> {
        for name in HELPERS {
            if !self.helper(name).is_file() {
                return Err(Error::Tool(format!(
                    "helper binary {} is missing (build it, or set WARDEN_BIN_DIR)",
                    self.helper(name).display()
                )));
            }
        }
        Ok(())
    }
}

/// PATH with the sbin directories a script needs (ip, iptables, mount), which
/// a user's PATH often lacks.
pub fn script_path_env() -> String {
    let mut path = env::var("PATH").unwrap_or_default();
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        if !path.split(':').any(|p| p == dir) {
            if !path.is_empty() {
                path.push(':');
            }
            path.push_str(dir);
        }
    }
    path
}

/// Runs `script ARGS` with `env` added to ours; returns its stdout.
pub fn run<S: AsRef<OsStr>>(script: &Path, args: &[S], env: &[(String, String)]) -> Result<String> {
    run_inheriting(script, args, env, None)
}

/// As `run`, the script also holding the depot lock (see
/// `DepotLock::inheritable`), so that a wardenctl killed meanwhile does not
/// let another allocate what the script is still setting up.
pub fn run_locked<S: AsRef<OsStr>>(
    script: &Path,
    args: &[S],
    env: &[(String, String)],
    lock: &DepotLock,
) -> Result<String> {
    run_inheriting(script, args, env, Some(lock))
}

fn run_inheriting<S: AsRef<OsStr>>(
    script: &Path,
    args: &[S],
    env: &[(String, String)],
    lock: Option<&DepotLock>,
) -> Result<String> {
    let debug = debug();
    let mut command = Command::new(script);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PATH", script_path_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if debug {
        // Every script and hook starts with `[ -n "${DEBUG:-}" ] && set -x`.
        command.env("DEBUG", "1");
    }
    let inherited = lock.map(DepotLock::inheritable).transpose()?;
    let child = command.spawn();
    // Only this script inherits the lock; later children of ours must not.
    drop(inherited);
    let context = || format!("run {}", script.display());
    let mut child = child.map_err(Error::io(context()))?;
    // stderr is read on a thread of its own (both pipes must drain, or the
    // script blocks), echoed as it comes when debugging.
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let err_reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match err_pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    if debug {
                        let _ = std::io::stderr().write_all(&chunk[..n]);
                    }
                    all.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        all
    });
    let mut stdout = Vec::new();
    let read = child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_end(&mut stdout);
    let stderr = err_reader.join().unwrap_or_default();
    let status = child.wait().map_err(Error::io(context()))?;
    read.map_err(Error::io(context()))?;
    capture::record(script, args, &stdout, &stderr, status);
    if status.success() {
        return Ok(String::from_utf8_lossy(&stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&stderr);
    let message = last_error_line(&stderr).unwrap_or_else(|| match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "killed by a signal".to_string(),
    });
    Err(Error::Script {
        script: script.display().to_string(),
        message,
    })
}

static DEBUG: AtomicBool = AtomicBool::new(false);

/// `wardenctl --debug`: scripts run with DEBUG=1 (they `set -x`) and their
/// stderr is copied to ours as it comes.
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// --debug given, or WARDEN_DEBUG set to anything but "", 0, false, no, off
/// (so `WARDEN_DEBUG=1 wardend` debugs too).
pub fn debug() -> bool {
    DEBUG.load(Ordering::Relaxed)
        || env::var("WARDEN_DEBUG").is_ok_and(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "false" | "no" | "off"
            )
        })
}

/// What the scripts run on this thread printed, kept while a
/// [`capture::Capture`] lives (create keeps it as its log).
pub mod capture {
    use std::cell::RefCell;
    use std::ffi::OsStr;
    use std::path::Path;
    use std::process::ExitStatus;

    thread_local! {
        static LOG: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    }

    /// Collects the output of every script run on this thread until it is
    /// taken or dropped.
    pub struct Capture(());

    impl Capture {
        pub fn start() -> Capture {
            LOG.with(|log| *log.borrow_mut() = Some(Vec::new()));
            Capture(())
        }

        /// Adds a note of our own (a step, a file's contents).
        pub fn note(&self, text: &str) {
            append(text.as_bytes());
        }

        /// The log so far; the capture goes on.
        pub fn contents(&self) -> Vec<u8> {
            LOG.with(|log| log.borrow().clone().unwrap_or_default())
        }
    }

    impl Drop for Capture {
        fn drop(&mut self) {
            LOG.with(|log| *log.borrow_mut() = None);
        }
    }

    fn append(bytes: &[u8]) {
        LOG.with(|log| {
            if let Some(buf) = log.borrow_mut().as_mut() {
                buf.extend_from_slice(bytes);
            }
        });
    }

    pub(super) fn record<S: AsRef<OsStr>>(
        script: &Path,
        args: &[S],
        stdout: &[u8],
        stderr: &[u8],
        status: ExitStatus,
    ) {
        if LOG.with(|log| log.borrow().is_none()) {
            return;
        }
        let mut head = format!("== {}", script.display());
        for arg in args {
            head.push(' ');
            head.push_str(&arg.as_ref().to_string_lossy());
        }
        append(
            format!(
                "{head}: {status}
"
            )
            .as_bytes(),
        );
        for (name, bytes) in [("stdout", stdout), ("stderr", stderr)] {
            if bytes.is_empty() {
                continue;
            }
            append(format!("-- {name}\n").as_bytes());
            append(bytes);
            if !bytes.ends_with(b"\n") {
                append(b"\n");
            }
        }
    }
}

/// The last line worth showing: `set -x` traces (starting with `+`) and
/// blank lines are skipped.
pub fn last_error_line(stderr: &str) -> Option<String> {
    last_error_lines(stderr, 1).pop()
}

/// The last `n` lines worth showing, oldest first (as `last_error_line`).
pub fn last_error_lines(stderr: &str, n: usize) -> Vec<String> {
    let mut lines: Vec<String> = stderr
        .lines()
        .rev()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('+'))
        .take(n)
        .map(str::to_string)
        .collect();
    lines.reverse();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_skips_traces() {
        assert_eq!(
            last_error_line("first\nreal error\n+ trace\n\n").as_deref(),
            Some("real error")
        );
        assert_eq!(last_error_line("+ only\n"), None);
    }

    #[test]
    fn path_gets_sbin() {
        let p = script_path_env();
        assert!(p.split(':').any(|d| d == "/usr/sbin"));
        assert!(p.split(':').any(|d| d == "/sbin"));
    }

    #[test]
    fn the_installed_layout_is_found() {
        let prefix = env::temp_dir().join(format!("paths-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&prefix);
        std::fs::create_dir_all(prefix.join("bin")).unwrap();
        std::fs::create_dir_all(prefix.join("lib/warden")).unwrap();
        std::fs::create_dir_all(prefix.join("share/warden/root")).unwrap();
        std::fs::write(prefix.join("lib/warden/wshd"), "").unwrap();
        std::fs::write(prefix.join("share/warden/root/create.sh"), "").unwrap();
        let paths = Paths::discover_from(Some(&prefix.join("bin")), None, None).unwrap();
        let prefix_real = prefix.canonicalize().unwrap();
        assert_eq!(paths.bin, prefix_real.join("lib/warden"));
        assert_eq!(paths.scripts, prefix_real.join("share/warden"));
        // wshd beside the executable (a build tree) wins.
        std::fs::write(prefix.join("bin/wshd"), "").unwrap();
        let paths = Paths::discover_from(Some(&prefix.join("bin")), None, None).unwrap();
        assert_eq!(paths.bin, prefix_real.join("bin"));
        std::fs::remove_dir_all(&prefix).unwrap();
    }

    #[test]
    fn the_source_tree_scripts_are_found() {
        let paths = Paths::discover(None, Some(PathBuf::from("/nonexistent"))).unwrap();
        assert!(paths.root_script("create.sh").is_file());
        assert!(paths.scripts.join("skeleton/setup.sh").is_file());
    }
}
