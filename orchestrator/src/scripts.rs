//! Where the setup scripts and helper binaries are, and running a script the
//! way a Warden server does: environment in, exit status out, the last line
//! of its error output as the message when it fails.

use std::env;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

impl Paths {
    /// Explicit paths win; else the scripts are looked for next to the
    /// executable, in ../share/warden, and in the source tree it was built
    /// from; the binaries next to the executable.
    pub fn discover(scripts: Option<PathBuf>, bin: Option<PathBuf>) -> Result<Self> {
        let exe_dir = env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        let bin = match bin.or_else(|| exe_dir.clone()) {
            Some(bin) => bin,
            None => {
                return Err(Error::Tool(
                    "cannot locate the helper binaries: set WARDEN_BIN_DIR".into(),
                ))
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
                if let Some(exe_dir) = &exe_dir {
                    candidates.push(exe_dir.join("setup-scripts"));
                    candidates.push(exe_dir.join("../share/warden/setup-scripts"));
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
    let mut command = Command::new(script);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PATH", script_path_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let inherited = lock.map(DepotLock::inheritable).transpose()?;
    let child = command.spawn();
    // Only this script inherits the lock; later children of ours must not.
    drop(inherited);
    let output = child
        .and_then(|c| c.wait_with_output())
        .map_err(Error::io(format!("run {}", script.display())))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = last_error_line(&stderr).unwrap_or_else(|| match output.status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "killed by a signal".to_string(),
    });
    Err(Error::Script {
        script: script.display().to_string(),
        message,
    })
}

/// The last line worth showing: `set -x` traces (starting with `+`) and
/// blank lines are skipped.
pub fn last_error_line(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('+'))
        .map(str::to_string)
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
    fn the_source_tree_scripts_are_found() {
        let paths = Paths::discover(None, Some(PathBuf::from("/nonexistent"))).unwrap();
        assert!(paths.root_script("create.sh").is_file());
        assert!(paths.scripts.join("skeleton/setup.sh").is_file());
    }
}
