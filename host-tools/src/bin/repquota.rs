//! repquota FILESYSTEM UID...: one line of quota numbers per uid.
//! Contract: [`host_tools::quota`].
#![deny(unsafe_code)]
// See oom.rs: the C tools' entry point, so SIGPIPE kills as it kills them.
#![no_main]

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use host_tools::{mounts, numbers, quota};

// no_mangle is what makes this the program's `main`.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut out = std::io::stdout().lock();
    let code = run(&args, &mut out);
    // Without the runtime's clean-up nothing flushes stdout at exit.
    match out.flush() {
        Ok(()) => code,
        Err(e) => {
            eprintln!("write stdout: {e}");
            1
        }
    }
}

fn run(args: &[OsString], out: &mut impl Write) -> libc::c_int {
    if args.len() < 3 {
        let _ = out.write_all(quota::USAGE.as_bytes());
        return 1;
    }
    let filesystem = args[1].as_bytes();
    let Some(device) = mounts::lookup_device(mounts::MTAB.as_ref(), filesystem) else {
        let _ = out.write_all(b"Couldn't find device for ");
        let _ = out.write_all(filesystem);
        let _ = out.write_all(b"\n");
        return 1;
    };
    let device = std::ffi::OsStr::from_bytes(&device);
    for uid in args[2..].iter().map(|a| numbers::atoi(a.as_bytes())) {
        match quota::get(device, uid) {
            Ok(usage) => {
                if let Err(e) = write!(out, "{}", quota::Line { uid, usage }) {
                    eprintln!("write stdout: {e}");
                    return 1;
                }
            }
            Err(errno) => {
                // The lines so far stay: they are flushed on return.
                eprintln!("{}", quota::describe_error(uid, errno));
                return 1;
            }
        }
    }
    0
}
