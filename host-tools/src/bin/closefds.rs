//! closefds CMD [ARG...]: exec CMD with only descriptors 0-2 open.
//! Contract: [`host_tools::fds`].
#![deny(unsafe_code)]
// The Rust runtime's start-up would set SIGPIPE to ignored, and CMD would
// inherit that; a C `main` passes on the caller's dispositions untouched.
#![no_main]

use std::ffi::CString;
use std::os::unix::ffi::OsStringExt;

use host_tools::failure::Failure;

// no_mangle is what makes this the program's `main`.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() < 2 {
        let argv0 = args
            .first()
            .map_or("closefds".into(), |a| a.to_string_lossy().into_owned());
        eprintln!("{argv0}: No arguments provided");
        return 255;
    }
    // Arguments from the kernel hold no NUL, so the conversion cannot fail.
    let argv: Vec<CString> = args[1..]
        .iter()
        .map(|a| CString::new(a.clone().into_vec()).expect("argv strings hold no NUL"))
        .collect();
    if let Err(e) = host_tools::fds::close_above_stderr() {
        eprintln!("{e}");
        return 255;
    }
    let errno = match nix::unistd::execvp(&argv[0], &argv) {
        Err(errno) => errno,
        Ok(never) => match never {},
    };
    eprintln!(
        "{}",
        Failure::new("execvp", args[1].to_string_lossy(), errno)
    );
    255
}
