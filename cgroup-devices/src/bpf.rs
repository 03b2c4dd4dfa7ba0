//! The two bpf(2) calls the filter needs: load the program, attach it to a
//! cgroup v2 directory. The attachment holds the program, so it outlives
//! this process and goes when the cgroup is removed.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::program::{self, Insn};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Others (a nested manager, a later second program) may add their own
/// programs below or beside ours; every attached program must allow.
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("open cgroup {path}: {source}")]
    Cgroup {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a cgroup v2 directory")]
    NotCgroup2 { path: String },
    #[error("load the device program: {source}{verifier}")]
    Load {
        source: std::io::Error,
        verifier: String,
    },
    #[error("attach the device program to {path}: {source}")]
    Attach {
        path: String,
        source: std::io::Error,
    },
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`; the
/// kernel zero-fills what a shorter attr leaves out.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr is a live, initialized repr(C) value laid out as the
    // kernel's union bpf_attr for `cmd`, and its size is passed with it; any
    // pointers inside it (instructions, license, log) point at buffers the
    // caller keeps alive across this call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Load the program; on refusal, again with the verifier's log for the error.
fn load(prog: &[Insn]) -> Result<OwnedFd, BpfError> {
    let insns = program::to_bytes(prog);
    let license = CString::new("Apache-2.0").expect("no NUL in a literal");
    let mut name = [0u8; 16];
    name[..14].copy_from_slice(b"warden_devices");
    let attr_for = |log: &mut Vec<u8>| ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name,
        ..Default::default()
    };
    let mut no_log = Vec::new();
    let source = match bpf(BPF_PROG_LOAD, &mut attr_for(&mut no_log)) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor that
        // nothing else owns (the kernel opens it O_CLOEXEC).
        Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => e,
    };
    let mut log = vec![0u8; 64 * 1024];
    let _ = bpf(BPF_PROG_LOAD, &mut attr_for(&mut log));
    let log = String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)]);
    let text = log
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .map(|l| format!(" (verifier: {l})"))
        .unwrap_or_default();
    Err(BpfError::Load {
        source,
        verifier: text,
    })
}

/// CGROUP2_SUPER_MAGIC, from statfs(2).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Load the whitelist program and attach it to the cgroup at `path`.
pub fn attach(path: &Path, prog: &[Insn]) -> Result<(), BpfError> {
    let shown = path.display().to_string();
    let dir = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| BpfError::Cgroup {
            path: shown.clone(),
            source,
        })?;
    let mut fs = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: fs is a writable statfs buffer and dir an open descriptor;
    // the buffer is only read after the call reported success.
    let fs_type = unsafe {
        if libc::fstatfs(dir.as_raw_fd(), fs.as_mut_ptr()) != 0 {
            return Err(BpfError::Cgroup {
                path: shown,
                source: std::io::Error::last_os_error(),
            });
        }
        fs.assume_init().f_type
    };
    if fs_type as i64 != CGROUP2_SUPER_MAGIC {
        return Err(BpfError::NotCgroup2 { path: shown });
    }
    let prog_fd = load(prog)?;
    let mut attr = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|source| BpfError::Attach {
        path: shown,
        source,
    })?;
    Ok(())
}
