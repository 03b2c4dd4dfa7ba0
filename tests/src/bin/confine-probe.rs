//! `confine-probe PROBE [ARGS]`: one thing an attacker inside a container
//! would try, reduced to its system call, for tests/tests/confine.rs. It
//! prints `ok` (with a detail for some) when the kernel let it through and
//! the errno's name (`EPERM`, ...) when it refused, and exits 0 either way:
//! the test decides which answer is right. Static like every binary of the
//! workspace, so it runs in the busybox rootfs.

use std::ffi::CString;
use std::io::Read;

fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EACCES => "EACCES",
        libc::EROFS => "EROFS",
        libc::EINVAL => "EINVAL",
        libc::ENOSYS => "ENOSYS",
        libc::ESRCH => "ESRCH",
        libc::EBADF => "EBADF",
        libc::ESTALE => "ESTALE",
        libc::EAGAIN => "EAGAIN",
        libc::ENOSPC => "ENOSPC",
        libc::EEXIST => "EEXIST",
        libc::EFAULT => "EFAULT",
        libc::ENODEV => "ENODEV",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        _ => return format!("errno{e}"),
    };
    name.to_string()
}

fn last() -> String {
    errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// `ok` for a non-negative return, the errno's name otherwise.
fn verdict(rv: i64) -> String {
    if rv >= 0 {
        "ok".to_string()
    } else {
        last()
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| usage())
}

fn usage() -> ! {
    eprintln!(
        "usage: confine-probe PROBE [ARGS]\n\
         probes: mount FSTYPE DIR | open_by_handle PATH | keyctl | bpf | perf_event_open |\n\
         \x20 userfaultfd | unshare_user | clone_user | ptrace PID | raw_socket |\n\
         \x20 mknod PATH MAJOR MINOR | open PATH | write PATH TEXT | read PATH |\n\
         \x20 sethostname NAME | setns PATH | chroot DIR | setuid UID | kill PID SIG |\n\
         \x20 ping IPV4 (an ICMP echo over a datagram socket, 1 s)"
    );
    std::process::exit(2)
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i).map(String::as_str).unwrap_or_else(|| usage())
}

fn num(args: &[String], i: usize) -> i64 {
    arg(args, i).parse().unwrap_or_else(|_| usage())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let probe = arg(&args, 0);
    // SAFETY (every block below): the system calls get valid pointers to
    // buffers that live for the call, or none; their results are only
    // reported.
    let answer = unsafe {
        match probe {
            "mount" => {
                let fstype = cstr(arg(&args, 1));
                let dir = cstr(arg(&args, 2));
                verdict(libc::mount(
                    fstype.as_ptr(),
                    dir.as_ptr(),
                    fstype.as_ptr(),
                    0,
                    std::ptr::null(),
                ) as i64)
            }
            "open_by_handle" => open_by_handle(arg(&args, 1)),
            "keyctl" => {
                // KEYCTL_GET_KEYRING_ID of the session keyring, creating it.
                verdict(libc::syscall(libc::SYS_keyctl, 0, -3i32, 1))
            }
            "bpf" => {
                // BPF_PROG_LOAD of a kprobe program: refused before the
                // attributes are even read when bpf is denied.
                let attr = [0u8; 128];
                verdict(libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len()))
            }
            "perf_event_open" => {
                let mut attr = [0u8; 128];
                // size field (u32 at offset 4) = PERF_ATTR_SIZE_VER0.
                attr[4..8].copy_from_slice(&64u32.to_ne_bytes());
                verdict(libc::syscall(
                    libc::SYS_perf_event_open,
                    attr.as_ptr(),
                    0,
                    -1,
                    -1,
                    0,
                ))
            }
            "userfaultfd" => verdict(libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC)),
            "unshare_user" => verdict(libc::unshare(libc::CLONE_NEWUSER) as i64),
            "clone_user" => {
                let pid = libc::syscall(
                    libc::SYS_clone,
                    (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
                    0,
                    0,
                    0,
                    0,
                );
                if pid == 0 {
                    libc::_exit(0);
                }
                if pid > 0 {
                    libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
                }
                verdict(pid)
            }
            "ptrace" => {
                let pid = num(&args, 1) as libc::pid_t;
                let rv = libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0);
                if rv == 0 {
                    libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
                }
                verdict(rv)
            }
            "raw_socket" => {
                verdict(libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) as i64)
            }
            "mknod" => {
                let path = cstr(arg(&args, 1));
                let dev = libc::makedev(num(&args, 2) as u32, num(&args, 3) as u32);
                verdict(libc::mknod(path.as_ptr(), libc::S_IFBLK | 0o600, dev) as i64)
            }
            "open" => {
                let path = cstr(arg(&args, 1));
                verdict(libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) as i64)
            }
            "write" => {
                let path = cstr(arg(&args, 1));
                let text = arg(&args, 2);
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    last()
                } else {
                    let rv = libc::write(fd, text.as_ptr().cast(), text.len());
                    libc::close(fd);
                    verdict(rv as i64)
                }
            }
            "read" => match std::fs::File::open(arg(&args, 1)) {
                Ok(mut f) => {
                    let mut buf = vec![0u8; 1 << 16];
                    match f.read(&mut buf) {
                        Ok(n) => format!("ok {n}"),
                        Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
                    }
                }
                Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
            },
            "sethostname" => {
                let name = arg(&args, 1);
                verdict(libc::sethostname(name.as_ptr().cast(), name.len()) as i64)
            }
            "setns" => {
                let path = cstr(arg(&args, 1));
                let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    last()
                } else {
                    verdict(libc::setns(fd, 0) as i64)
                }
            }
            "chroot" => {
                let dir = cstr(arg(&args, 1));
                verdict(libc::chroot(dir.as_ptr()) as i64)
            }
            "setuid" => verdict(libc::syscall(libc::SYS_setuid, num(&args, 1))),
            "ping" => ping(arg(&args, 1)),
            "kill" => verdict(libc::kill(num(&args, 1) as i32, num(&args, 2) as i32) as i64),
            _ => usage(),
        }
    };
    println!("{answer}");
}

/// name_to_handle_at on PATH, then open_by_handle_at through a descriptor
/// of its filesystem: the way out through a host descriptor. Reports the first
/// refusal.
unsafe fn open_by_handle(path: &str) -> String {
    #[repr(C)]
    struct FileHandle {
        handle_bytes: u32,
        handle_type: i32,
        f_handle: [u8; 128],
    }
    let mut fh = FileHandle {
        handle_bytes: 128,
        handle_type: 0,
        f_handle: [0; 128],
    };
    let p = cstr(path);
    let mut mount_id: libc::c_int = 0;
    let rv = libc::syscall(
        libc::SYS_name_to_handle_at,
        libc::AT_FDCWD,
        p.as_ptr(),
        &mut fh as *mut FileHandle,
        &mut mount_id as *mut libc::c_int,
        0,
    );
    if rv < 0 {
        return format!("name_to_handle_at {}", last());
    }
    // Any descriptor on the same filesystem serves as the mount descriptor.
    let dirfd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
    let fd = libc::syscall(
        libc::SYS_open_by_handle_at,
        dirfd,
        &mut fh as *mut FileHandle,
        libc::O_RDONLY,
    );
    if fd < 0 {
        return format!("open_by_handle_at {}", last());
    }
    "ok".to_string()
}

/// One ICMP echo to `ip` through an ICMP datagram socket (what
/// net.ipv4.ping_group_range allows without CAP_NET_RAW): `ok` when the
/// reply came within a second.
unsafe fn ping(ip: &str) -> String {
    let addr: std::net::Ipv4Addr = ip.parse().unwrap_or_else(|_| usage());
    let fd = libc::socket(
        libc::AF_INET,
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        libc::IPPROTO_ICMP,
    );
    if fd < 0 {
        return format!("socket {}", last());
    }
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    libc::setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_RCVTIMEO,
        (&tv as *const libc::timeval).cast(),
        std::mem::size_of::<libc::timeval>() as libc::socklen_t,
    );
    let mut sin: libc::sockaddr_in = std::mem::zeroed();
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_addr.s_addr = u32::from(addr).to_be();
    // Echo request: type 8, code 0; the kernel fills in id and checksum.
    let echo = [8u8, 0, 0, 0, 0, 0, 0, 1, b'w', b'a', b'r', b'd'];
    let sent = libc::sendto(
        fd,
        echo.as_ptr().cast(),
        echo.len(),
        0,
        (&sin as *const libc::sockaddr_in).cast(),
        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
    );
    if sent < 0 {
        return format!("sendto {}", last());
    }
    let mut reply = [0u8; 64];
    loop {
        let n = libc::recv(fd, reply.as_mut_ptr().cast(), reply.len(), 0);
        if n < 0 {
            return format!("recv {}", last());
        }
        // Type 0: echo reply (errors arrive as errno, not as packets).
        if n >= 8 && reply[0] == 0 {
            return "ok".to_string();
        }
    }
}
