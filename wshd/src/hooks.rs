//! Running the hook scripts. Each is executed by its own path (it starts
//! with `#!/bin/sh`), inheriting wshd's environment, stdio and working
//! directory, so a hook's `cd $(dirname $0)/..` finds its instance.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum HookError {
    // `error`, not `source`: the reason is in the message already, and a
    // source would print it twice in an anyhow chain.
    #[error("cannot run {path}: {error}{}", interpreter_note(path, error))]
    Spawn { path: PathBuf, error: io::Error },
    #[error("{path} failed: {status}")]
    Failed { path: PathBuf, status: ExitStatus },
}

/// ENOENT for a hook that is there means its `#!` interpreter is not: in a
/// container, a rootfs without /bin/sh.
fn interpreter_note(path: &Path, error: &io::Error) -> String {
    if error.kind() != io::ErrorKind::NotFound {
        return String::new();
    }
    let Ok(text) = std::fs::read(path) else {
        return String::new();
    };
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    match first.strip_prefix(b"#!") {
        Some(interpreter) => format!(
            " (the hook is there: its interpreter, {}, is missing; is the rootfs complete?)",
            String::from_utf8_lossy(interpreter).trim()
        ),
        None => String::new(),
    }
}

/// Run the hook at `path` with `env` added, and wait for it. Anything but a
/// zero exit is an error.
pub fn run(path: &Path, env: &[(&str, String)]) -> Result<(), HookError> {
    let mut cmd = Command::new(path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd.status().map_err(|error| HookError::Spawn {
        path: path.to_path_buf(),
        error,
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
        let no_sh = dir.join("no-interpreter.sh");
        std::fs::write(&no_sh, "#!/nonexistent/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&no_sh, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = run(&no_sh, &[]).unwrap_err().to_string();
        assert!(
            err.contains("interpreter, /nonexistent/sh, is missing"),
            "{err}"
        );
        let hook = dir.join("hook.sh");
        std::fs::write(&hook, "#!/bin/sh\nexit \"$CODE\"\n").unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(run(&hook, &[("CODE", "0".into())]).is_ok());
        let err = run(&hook, &[("CODE", "3".into())]).unwrap_err();
        assert!(err.to_string().contains("hook.sh failed"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
