//! Running the hook scripts. Each is executed by its own path (it starts
//! with `#!/bin/sh`), inheriting wshd's environment, stdio and working
//! directory, so a hook's `cd $(dirname $0)/..` finds its instance.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum HookError {
    #[error("cannot run {path}: {source}")]
    Spawn { path: PathBuf, source: io::Error },
    #[error("{path} failed: {status}")]
    Failed { path: PathBuf, status: ExitStatus },
}

/// Run the hook at `path` with `env` added, and wait for it. Anything but a
/// zero exit is an error.
pub fn run(path: &Path, env: &[(&str, String)]) -> Result<(), HookError> {
    let mut cmd = Command::new(path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().map_err(|source| HookError::Spawn {
        path: path.to_path_buf(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(HookError::Failed {
            path: path.to_path_buf(),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_missing_and_failing_hooks() {
        let dir = std::env::temp_dir().join(format!("wshd-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.sh");
        assert!(matches!(run(&missing, &[]), Err(HookError::Spawn { .. })));
        let hook = dir.join("hook.sh");
        std::fs::write(&hook, "#!/bin/sh\nexit \"$CODE\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(run(&hook, &[("CODE", "0".into())]).is_ok());
        let err = run(&hook, &[("CODE", "3".into())]).unwrap_err();
        assert!(err.to_string().contains("hook.sh failed"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
