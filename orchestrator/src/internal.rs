//! The library's own helper processes, started from the running executable
//! (wardenctl or wardend) with a hidden first argument: `__record JOBDIR
//! [--discard-output]` (a job's recorder) and `__oom-watch DIR` (a
//! container's OOM watcher). Each front end calls [`dispatch`] first.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

/// Runs the helper `args` (the whole command line, as `args_os` gives it)
/// asks for, if any.
pub fn dispatch(args: &[OsString]) -> Option<ExitCode> {
    let name = args.get(1)?.to_str()?;
    let rest = &args[2.min(args.len())..];
    let result = match (name, rest) {
        ("__record", [dir]) => crate::jobs::record(Path::new(dir), false),
        ("__record", [dir, flag]) if flag == "--discard-output" => {
            crate::jobs::record(Path::new(dir), true)
        }
        ("__oom-watch", [dir]) => crate::oom::watch(Path::new(dir)),
        ("__record" | "__oom-watch", _) => {
            eprintln!("{name}: bad arguments");
            return Some(ExitCode::from(2));
        }
        _ => return None,
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    })
}
