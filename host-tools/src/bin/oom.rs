//! oom CGROUP_PATH: exit 0 at the memory cgroup's next OOM, 1 otherwise.
//! Contract: [`host_tools::oom`].
#![deny(unsafe_code)]
// A C `main` instead of the Rust runtime's, as in the three tools: what the
// C tools inherit (signal dispositions above all) stays inherited.
#![no_main]

use std::path::Path;

use host_tools::failure::Failure;

// no_mangle is what makes this the program's `main`.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() != 2 {
        let argv0 = args.first().map_or("oom".into(), |a| a.to_string_lossy());
        eprintln!("Usage: {argv0} <path to cgroup>");
        return 1;
    }
    // Before anything else, as the C tool: a watcher whose server is gone
    // has no one to tell.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        eprintln!("{}", Failure::new("prctl", "PR_SET_PDEATHSIG", e));
        return 1;
    }
    match host_tools::oom::wait(Path::new(&args[1])) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}
