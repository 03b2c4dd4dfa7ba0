//! A seccomp-BPF filter for a request's process, equivalent for our purposes
//! to Docker's default profile, compiled here without libseccomp.
//!
//! Docker's profile is an allow list, but nearly everything it leaves out
//! is either a syscall that already needs a capability the container lacks,
//! or a syscall whose attack surface is large even without one. This
//! filter is the second group as a deny list: keyrings, bpf,
//! perf_event_open, userfaultfd, io_uring, file handles, kernel modules and
//! kexec, mounts (old and new API), swap, reboot, clocks, I/O ports,
//! setns, the NUMA calls, cross-process memory access and kcmp, and the
//! obsolete calls (`_sysctl`, `uselib`, ...). They fail with EPERM, as in
//! Docker. Argument rules, as in Docker:
//! - `clone` and `unshare` may not create a user namespace (inside one a
//!   process gets every capability, and so all of the surface above);
//!   other namespace flags already need CAP_SYS_ADMIN;
//! - `clone3` gets ENOSYS: its flags are in memory that BPF cannot read,
//!   and ENOSYS makes glibc fall back to `clone`, which is checked;
//! - `personality` accepts only the values Docker accepts.
//!
//! Architecture: a process can also enter the kernel through the i386 ABI
//! (`int 0x80`), where the numbers mean different syscalls, so any
//! architecture but x86_64 kills the process. The x32 ABI shares x86_64's
//! architecture value and is marked by bit 30 of the number, so those
//! numbers get EPERM; otherwise x32 `mount` would be allowed.
//!
//! The program is generated from the tables below and every comparison
//! jumps only a short way, to a return next to it or past a small block.
//! Tests run it in a classic-BPF interpreter that checks every jump and
//! load, for every decision, and install it in a forked child to check the
//! kernel accepts and enforces it.

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the filter's syscall numbers and audit architecture are x86_64's");

use std::mem::offset_of;

use libc::{c_long, seccomp_data, sock_filter, sock_fprog};
use nix::errno::Errno;

/// From linux/audit.h: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// EM_386 | __AUDIT_ARCH_LE; only the tests need it.
#[cfg(test)]
const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
/// __X32_SYSCALL_BIT from asm/unistd.h.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// CLONE_NEWUSER, as u32 to compare with an argument's low word.
const CLONE_NEWUSER: u32 = libc::CLONE_NEWUSER as u32;

// Removed in Linux 2.6; libc no longer names them, but the numbers are
// still reserved in syscall_64.tbl and Docker denies them.
const SYS_CREATE_MODULE: c_long = 174;
const SYS_GET_KERNEL_SYMS: c_long = 177;
const SYS_QUERY_MODULE: c_long = 178;

/// Denied with EPERM whatever their arguments.
const DENIED: &[c_long] = &[
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    SYS_CREATE_MODULE,
    SYS_GET_KERNEL_SYMS,
    SYS_QUERY_MODULE,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_setns,
    libc::SYS_syslog,
    libc::SYS_quotactl,
    libc::SYS_nfsservctl,
    libc::SYS_lookup_dcookie,
    libc::SYS_uselib,
    libc::SYS__sysctl,
    libc::SYS_sysfs,
    libc::SYS_ustat,
    libc::SYS_kcmp,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_fanotify_init,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_move_pages,
    libc::SYS_migrate_pages,
    libc::SYS_mbind,
    libc::SYS_set_mempolicy,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
];

/// Denied with ENOSYS, so that libc falls back to an older, checkable call.
const UNIMPLEMENTED: &[c_long] = &[libc::SYS_clone3];

/// How one argument decides a syscall. Only the argument's low 32 bits can
/// be compared (classic BPF loads words); each rule says why that is enough.
enum Check {
    /// EPERM if any of these bits is set, else allowed.
    DenyBits(u32),
    /// Allowed for exactly these values, else EPERM.
    AllowOnly(&'static [u32]),
}

struct ArgRule {
    nr: c_long,
    arg: usize,
    check: Check,
}

const ARG_RULES: &[ArgRule] = &[
    // The kernel's clone takes only the low 32 bits of its flags
    // (lower_32_bits in kernel/fork.c); the high word cannot matter.
    ArgRule {
        nr: libc::SYS_clone,
        arg: 0,
        check: Check::DenyBits(CLONE_NEWUSER),
    },
    // unshare takes 64 bits, but any bit above 31 is an unknown flag and
    // fails with EINVAL, so a user namespace needs the low-word bit.
    ArgRule {
        nr: libc::SYS_unshare,
        arg: 0,
        check: Check::DenyBits(CLONE_NEWUSER),
    },
    // personality takes an unsigned int; the kernel drops the high word.
    // Docker's values: PER_LINUX, PER_LINUX32, UNAME26,
    // UNAME26 | PER_LINUX32, and 0xffffffff (query, change nothing).
    ArgRule {
        nr: libc::SYS_personality,
        arg: 0,
        check: Check::AllowOnly(&[0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff]),
    },
];

const fn errno_ret(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA)
}
const RET_EPERM: u32 = errno_ret(libc::EPERM);

const OFF_NR: u32 = offset_of!(seccomp_data, nr) as u32;
const OFF_ARCH: u32 = offset_of!(seccomp_data, arch) as u32;

/// Offset of argument `i`'s low word: x86_64 is little-endian, so the low
/// half of the u64 comes first.
fn off_arg_low(i: usize) -> u32 {
    (offset_of!(seccomp_data, args) + i * std::mem::size_of::<u64>()) as u32
}

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: usize, jf: usize) -> sock_filter {
    let off = |n: usize| u8::try_from(n).expect("seccomp: jump beyond 255 instructions");
    sock_filter {
        code: code as u16,
        jt: off(jt),
        jf: off(jf),
        k,
    }
}

fn load(off: u32) -> sock_filter {
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, off)
}

fn ret(k: u32) -> sock_filter {
    stmt(libc::BPF_RET | libc::BPF_K, k)
}

const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;

/// The body of an argument rule: it loads the argument and ends in a
/// return on every path, since the syscall number is gone from A.
fn rule_body(rule: &ArgRule) -> Vec<sock_filter> {
    let mut body = vec![load(off_arg_low(rule.arg))];
    match rule.check {
        Check::DenyBits(mask) => {
            body.push(jump(JSET, mask, 0, 1));
            body.push(ret(RET_EPERM));
        }
        Check::AllowOnly(values) => {
            // Value i is followed by the rest, then RET_EPERM, then ALLOW.
            for (i, &v) in values.iter().enumerate() {
                body.push(jump(JEQ, v, values.len() - i, 0));
            }
            body.push(ret(RET_EPERM));
        }
    }
    body.push(ret(libc::SECCOMP_RET_ALLOW));
    body
}

/// The compiled program, built once at start-up (may allocate).
pub struct Filter {
    insns: Vec<sock_filter>,
}

impl Filter {
    /// Docker's default profile, as a deny list (see the module docs).
    pub fn docker_default() -> Filter {
        let mut p = vec![
            load(OFF_ARCH),
            jump(JEQ, AUDIT_ARCH_X86_64, 1, 0),
            ret(libc::SECCOMP_RET_KILL_PROCESS),
            load(OFF_NR),
            jump(JGE, X32_SYSCALL_BIT, 0, 1),
            ret(RET_EPERM),
        ];
        let fixed = DENIED.iter().map(|&nr| (nr, RET_EPERM)).chain(
            UNIMPLEMENTED
                .iter()
                .map(|&nr| (nr, errno_ret(libc::ENOSYS))),
        );
        for (nr, action) in fixed {
            p.push(jump(JEQ, nr as u32, 0, 1));
            p.push(ret(action));
        }
        for rule in ARG_RULES {
            let body = rule_body(rule);
            p.push(jump(JEQ, rule.nr as u32, 0, body.len()));
            p.extend(body);
        }
        p.push(ret(libc::SECCOMP_RET_ALLOW));
        assert!(p.len() <= libc::BPF_MAXINSNS as usize);
        Filter { insns: p }
    }

    /// The instructions, for the interpreter of the tests.
    #[cfg(test)]
    pub fn instructions(&self) -> &[sock_filter] {
        &self.insns
    }

    /// A sock_fprog pointing into self; valid while self lives.
    pub fn fprog(&self) -> sock_fprog {
        sock_fprog {
            // docker_default keeps the length within BPF_MAXINSNS.
            len: self.insns.len() as u16,
            // The kernel only reads the program; the type wants *mut.
            filter: self.insns.as_ptr().cast_mut(),
        }
    }
}

/// Install `prog` on the calling thread: raw syscall
/// seccomp(SECCOMP_SET_MODE_FILTER, 0, prog), falling back to
/// prctl(PR_SET_SECCOMP) on kernels before 3.17. Async-signal-safe and
/// allocates nothing; the caller has already set PR_SET_NO_NEW_PRIVS.
pub fn install(prog: &sock_fprog) -> Result<(), Errno> {
    let ptr: *const sock_fprog = prog;
    // SAFETY: `ptr` points to a live sock_fprog for the whole call, and the
    // kernel copies the program it describes before returning.
    let rv = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            ptr,
        )
    };
    if rv == 0 {
        return Ok(());
    }
    let e = Errno::last();
    if e != Errno::ENOSYS {
        return Err(e);
    }
    // SAFETY: as above; prctl reads the same structure.
    let rv = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            ptr,
        )
    };
    if rv == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const EPERM: u32 = RET_EPERM;
    const ENOSYS: u32 = errno_ret(libc::ENOSYS);
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    /// What the program does next at one instruction.
    enum Step {
        Load(u32),
        And(u32),
        Jump(usize),
        Cond(fn(u32, u32) -> bool, u32, usize, usize),
        Ret(u32),
    }

    /// Decode instruction `pc` as the kernel's seccomp checker would
    /// accept it; jump targets are absolute and inside the program.
    fn decode(prog: &[sock_filter], pc: usize) -> Result<Step, String> {
        let ins = prog.get(pc).ok_or(format!("pc {pc} is past the end"))?;
        let target = |off: usize| {
            let t = pc + 1 + off;
            if t < prog.len() {
                Ok(t)
            } else {
                Err(format!("jump from {pc} to {t}, past the end"))
            }
        };
        let k = ins.k;
        let code = u32::from(ins.code);
        let cond = |f: fn(u32, u32) -> bool| -> Result<Step, String> {
            Ok(Step::Cond(
                f,
                k,
                target(ins.jt.into())?,
                target(ins.jf.into())?,
            ))
        };
        let plain = ins.jt == 0 && ins.jf == 0;
        match code {
            c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS && plain => {
                if k % 4 != 0 || k as usize >= std::mem::size_of::<seccomp_data>() {
                    return Err(format!("load at {pc} from bad offset {k}"));
                }
                Ok(Step::Load(k))
            }
            c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K && plain => Ok(Step::And(k)),
            c if c == libc::BPF_JMP | libc::BPF_JA && plain => Ok(Step::Jump(target(k as usize)?)),
            JEQ => cond(|a, k| a == k),
            c if c == libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K => cond(|a, k| a > k),
            JGE => cond(|a, k| a >= k),
            JSET => cond(|a, k| a & k != 0),
            c if c == libc::BPF_RET | libc::BPF_K && plain => Ok(Step::Ret(k)),
            _ => Err(format!(
                "unknown instruction at {pc}: code {:#x} jt {} jf {} k {k:#x}",
                ins.code, ins.jt, ins.jf
            )),
        }
    }

    fn image(d: &seccomp_data) -> [u8; 64] {
        assert_eq!(std::mem::size_of::<seccomp_data>(), 64);
        let mut b = [0u8; 64];
        let mut put = |off: usize, bytes: &[u8]| b[off..off + bytes.len()].copy_from_slice(bytes);
        put(offset_of!(seccomp_data, nr), &d.nr.to_ne_bytes());
        put(offset_of!(seccomp_data, arch), &d.arch.to_ne_bytes());
        put(
            offset_of!(seccomp_data, instruction_pointer),
            &d.instruction_pointer.to_ne_bytes(),
        );
        for (i, a) in d.args.iter().enumerate() {
            put(offset_of!(seccomp_data, args) + 8 * i, &a.to_ne_bytes());
        }
        b
    }

    /// Run `prog` on `d` as the kernel would; the action word, or why the
    /// program is malformed.
    fn run(prog: &[sock_filter], d: &seccomp_data) -> Result<u32, String> {
        let data = image(d);
        let mut a = 0u32;
        let mut pc = 0;
        loop {
            match decode(prog, pc)? {
                Step::Load(off) => {
                    let off = off as usize;
                    a = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap());
                    pc += 1;
                }
                Step::And(k) => {
                    a &= k;
                    pc += 1;
                }
                Step::Jump(t) => pc = t,
                Step::Cond(f, k, jt, jf) => pc = if f(a, k) { jt } else { jf },
                Step::Ret(k) => return Ok(k),
            }
        }
    }

    fn data(arch: u32, nr: i32, args: [u64; 6]) -> seccomp_data {
        seccomp_data {
            nr,
            arch,
            instruction_pointer: 0x7f00_dead_beef,
            args,
        }
    }

    fn decide_on(f: &Filter, nr: c_long, args: [u64; 6]) -> u32 {
        let d = data(AUDIT_ARCH_X86_64, nr as i32, args);
        run(f.instructions(), &d).unwrap_or_else(|e| panic!("malformed program: {e}"))
    }

    fn decide(nr: c_long, args: [u64; 6]) -> u32 {
        decide_on(&Filter::docker_default(), nr, args)
    }

    fn arg0(v: u64) -> [u64; 6] {
        [v, 0, 0, 0, 0, 0]
    }

    /// The brief's list, written out apart from `DENIED` so that a slip
    /// in the table shows.
    const SPEC_DENIED: &[(&str, c_long)] = &[
        ("keyctl", 250),
        ("add_key", 248),
        ("request_key", 249),
        ("bpf", 321),
        ("perf_event_open", 298),
        ("userfaultfd", 323),
        ("open_by_handle_at", 304),
        ("name_to_handle_at", 303),
        ("kexec_load", 246),
        ("kexec_file_load", 320),
        ("init_module", 175),
        ("finit_module", 313),
        ("delete_module", 176),
        ("create_module", 174),
        ("get_kernel_syms", 177),
        ("query_module", 178),
        ("mount", 165),
        ("umount2", 166),
        ("pivot_root", 155),
        ("swapon", 167),
        ("swapoff", 168),
        ("reboot", 169),
        ("acct", 163),
        ("settimeofday", 164),
        ("clock_settime", 227),
        ("clock_adjtime", 305),
        ("iopl", 172),
        ("ioperm", 173),
        ("setns", 308),
        ("syslog", 103),
        ("quotactl", 179),
        ("nfsservctl", 180),
        ("lookup_dcookie", 212),
        ("uselib", 134),
        ("_sysctl", 156),
        ("sysfs", 139),
        ("ustat", 136),
        ("kcmp", 312),
        ("process_vm_readv", 310),
        ("process_vm_writev", 311),
        ("fanotify_init", 300),
        ("sethostname", 170),
        ("setdomainname", 171),
        ("move_pages", 279),
        ("migrate_pages", 256),
        ("mbind", 237),
        ("set_mempolicy", 238),
        ("io_uring_setup", 425),
        ("io_uring_enter", 426),
        ("io_uring_register", 427),
        ("open_tree", 428),
        ("move_mount", 429),
        ("fsopen", 430),
        ("fsconfig", 431),
        ("fsmount", 432),
        ("fspick", 433),
        ("mount_setattr", 442),
    ];

    #[test]
    fn seccomp_program_is_well_formed() {
        let f = Filter::docker_default();
        let p = f.instructions();
        assert!(!p.is_empty() && p.len() <= libc::BPF_MAXINSNS as usize);
        let fp = f.fprog();
        assert_eq!(usize::from(fp.len), p.len());
        assert_eq!(fp.filter.cast_const(), p.as_ptr());

        // Every instruction decodes, every jump lands inside, and every
        // instruction is reachable. Offsets are unsigned, so control only
        // moves forward and, with nothing falling off the end, every path
        // ends in a RET.
        let mut reached = vec![false; p.len()];
        reached[0] = true;
        for pc in 0..p.len() {
            let step = decode(p, pc).unwrap_or_else(|e| panic!("{e}"));
            if !reached[pc] {
                panic!("instruction {pc} is unreachable");
            }
            let next: Vec<usize> = match step {
                Step::Load(_) | Step::And(_) => vec![pc + 1],
                Step::Jump(t) => vec![t],
                Step::Cond(_, _, jt, jf) => vec![jt, jf],
                Step::Ret(_) => vec![],
            };
            for n in next {
                assert!(n > pc && n < p.len(), "{pc} falls through to {n}");
                reached[n] = true;
            }
        }
        eprintln!("seccomp filter: {} instructions", p.len());
    }

    #[test]
    fn seccomp_tables_are_disjoint_and_match_the_spec() {
        let mut all: Vec<c_long> = DENIED
            .iter()
            .chain(UNIMPLEMENTED)
            .copied()
            .chain(ARG_RULES.iter().map(|r| r.nr))
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a syscall is in two tables");

        let mut spec: Vec<c_long> = SPEC_DENIED.iter().map(|&(_, nr)| nr).collect();
        spec.sort_unstable();
        let mut denied = DENIED.to_vec();
        denied.sort_unstable();
        assert_eq!(denied, spec);
    }

    #[test]
    fn seccomp_denies_every_listed_syscall_with_eperm() {
        let f = Filter::docker_default();
        for &(name, nr) in SPEC_DENIED {
            assert_eq!(decide_on(&f, nr, [0; 6]), EPERM, "{name}");
            // Arguments do not rescue it.
            assert_eq!(decide_on(&f, nr, [u64::MAX; 6]), EPERM, "{name}");
        }
    }

    #[test]
    fn seccomp_allows_everything_else() {
        let f = Filter::docker_default();
        for (name, nr) in [
            ("read", libc::SYS_read),
            ("write", libc::SYS_write),
            ("execve", libc::SYS_execve),
            ("openat", libc::SYS_openat),
            ("exit_group", libc::SYS_exit_group),
            ("ptrace", libc::SYS_ptrace),
            ("prctl", libc::SYS_prctl),
            ("seccomp", libc::SYS_seccomp),
            ("capset", libc::SYS_capset),
            ("getpid", libc::SYS_getpid),
            ("unknown 1000", 1000),
        ] {
            assert_eq!(decide_on(&f, nr, [0; 6]), ALLOW, "{name}");
        }
        let special: Vec<c_long> = DENIED
            .iter()
            .chain(UNIMPLEMENTED)
            .copied()
            .chain(ARG_RULES.iter().map(|r| r.nr))
            .collect();
        for nr in 0..600 {
            if !special.contains(&nr) {
                assert_eq!(decide_on(&f, nr, [u64::MAX; 6]), ALLOW, "syscall {nr}");
            }
        }
    }

    #[test]
    fn seccomp_clone_may_not_make_a_user_namespace() {
        let newuser = libc::CLONE_NEWUSER as u64;
        let sigchld = libc::SIGCHLD as u64;
        let ns = (libc::CLONE_NEWNS | libc::CLONE_NEWPID) as u64;
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        let clone = libc::SYS_clone;
        assert_eq!(decide(clone, arg0(newuser)), EPERM);
        assert_eq!(decide(clone, arg0(newuser | sigchld | ns)), EPERM);
        assert_eq!(decide(clone, arg0(newuser | 0xffff_ffff_0000_0000)), EPERM);
        assert_eq!(decide(clone, arg0(sigchld)), ALLOW);
        assert_eq!(decide(clone, arg0(ns | sigchld)), ALLOW);
        assert_eq!(decide(clone, arg0(thread)), ALLOW);
        // The kernel ignores the high word, so must the filter.
        assert_eq!(decide(clone, arg0(0xffff_ffff_0000_0000 | sigchld)), ALLOW);
        assert_eq!(decide(clone, arg0(newuser << 32)), ALLOW);
        // Only the flags argument counts.
        assert_eq!(decide(clone, [sigchld, newuser, newuser, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn seccomp_unshare_may_not_make_a_user_namespace() {
        let unshare = libc::SYS_unshare;
        let flags = |f: i32| arg0(f as u64);
        assert_eq!(decide(unshare, flags(libc::CLONE_NEWUSER)), EPERM);
        assert_eq!(
            decide(unshare, flags(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)),
            EPERM
        );
        assert_eq!(decide(unshare, flags(libc::CLONE_FILES)), ALLOW);
        assert_eq!(decide(unshare, flags(libc::CLONE_FS)), ALLOW);
        assert_eq!(decide(unshare, flags(libc::CLONE_NEWNS)), ALLOW);
        assert_eq!(decide(unshare, flags(0)), ALLOW);
    }

    #[test]
    fn seccomp_clone3_gets_enosys() {
        assert_eq!(decide(libc::SYS_clone3, [0; 6]), ENOSYS);
        assert_eq!(decide(libc::SYS_clone3, [0x1000, 88, 0, 0, 0, 0]), ENOSYS);
    }

    #[test]
    fn seccomp_personality_allows_only_dockers_values() {
        let f = Filter::docker_default();
        let p = |v: u64| decide_on(&f, libc::SYS_personality, arg0(v));
        for v in [0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff] {
            assert_eq!(p(v), ALLOW, "personality({v:#x})");
        }
        // 0x40000 is ADDR_NO_RANDOMIZE, 0x80000 FDPIC_FUNCPTRS.
        for v in [1, 0x4_0000, 0x8_0000, 0x2_0001, 0xffff_fffe, 0x0400_0000] {
            assert_eq!(p(v), EPERM, "personality({v:#x})");
        }
        // The kernel reads an unsigned int: the high word is not part of it.
        assert_eq!(p(0x1_0000_0000), ALLOW);
    }

    #[test]
    fn seccomp_x32_numbers_are_denied() {
        let x32 = X32_SYSCALL_BIT as c_long;
        assert_eq!(decide(x32 | libc::SYS_read, [0; 6]), EPERM);
        assert_eq!(decide(x32 | libc::SYS_mount, [0; 6]), EPERM);
        assert_eq!(decide(x32 | libc::SYS_clone, arg0(0)), EPERM);
        assert_eq!(decide(-1, [0; 6]), EPERM);
    }

    #[test]
    fn seccomp_other_architectures_are_killed() {
        let f = Filter::docker_default();
        for arch in [AUDIT_ARCH_I386, 0, AUDIT_ARCH_X86_64 & !0x8000_0000] {
            for nr in [libc::SYS_read, libc::SYS_getpid, libc::SYS_keyctl] {
                let d = data(arch, nr as i32, [0; 6]);
                assert_eq!(run(f.instructions(), &d), Ok(KILL), "arch {arch:#x}");
            }
        }
    }

    #[test]
    fn seccomp_interpreter_refuses_malformed_programs() {
        let eq = |k, jt, jf| jump(JEQ, k, jt, jf);
        let d = data(AUDIT_ARCH_X86_64, 0, [0; 6]);
        // A jump past the end.
        assert!(run(&[load(0), eq(0, 5, 0), ret(ALLOW)], &d).is_err());
        // Falling off the end.
        assert!(run(&[load(0)], &d).is_err());
        // Loads outside seccomp_data or misaligned.
        assert!(run(&[load(64), ret(ALLOW)], &d).is_err());
        assert!(run(&[load(2), ret(ALLOW)], &d).is_err());
        // An opcode it does not know (BPF_LDX).
        assert!(run(
            &[
                stmt(libc::BPF_LDX | libc::BPF_W | libc::BPF_MEM, 0),
                ret(ALLOW)
            ],
            &d
        )
        .is_err());
    }

    /// The child's checks, in order; its exit code is the failing one's
    /// number, 0 when all pass.
    fn child_checks(prog: &sock_fprog) -> i32 {
        // SAFETY: each call is a plain system call on arguments that are
        // valid for it; none touches memory the forked child does not own.
        unsafe {
            let fails_with = |rv: c_long, e: Errno| rv == -1 && Errno::last() == e;
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return 1;
            }
            if install(prog).is_err() {
                return 2;
            }
            // KEYCTL_GET_KEYRING_ID of KEY_SPEC_SESSION_KEYRING.
            if !fails_with(libc::syscall(libc::SYS_keyctl, 0, -3, 0), Errno::EPERM) {
                return 3;
            }
            if !fails_with(libc::unshare(libc::CLONE_NEWUSER).into(), Errno::EPERM) {
                return 4;
            }
            // A zeroed clone_args (CLONE_ARGS_SIZE_VER2) would start a
            // process if the call got through; that copy leaves at once.
            let args = [0u64; 11];
            let rv = libc::syscall(libc::SYS_clone3, args.as_ptr(), 88usize);
            if rv == 0 {
                libc::_exit(100);
            }
            if !fails_with(rv, Errno::ENOSYS) {
                return 5;
            }
            if libc::syscall(libc::SYS_personality, 0xffff_ffffu64) < 0 {
                return 6;
            }
            if !fails_with(libc::syscall(libc::SYS_personality, 1u64), Errno::EPERM) {
                return 7;
            }
            if libc::syscall(libc::SYS_getpid) <= 0 {
                return 8;
            }
            if libc::unshare(libc::CLONE_FILES) != 0 {
                return 9;
            }
            if !fails_with(
                libc::syscall(libc::SYS_mount, 0usize, 0usize, 0usize, 0usize, 0usize),
                Errno::EPERM,
            ) {
                return 10;
            }
            0
        }
    }

    #[test]
    fn seccomp_kernel_enforces_the_filter() {
        let filter = Filter::docker_default();
        let prog = filter.fprog();
        // SAFETY: the child runs only system calls on memory that existed
        // before the fork (`prog` and `filter`), then _exit; it never
        // returns into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", Errno::last());
        if pid == 0 {
            let code = child_checks(&prog);
            // SAFETY: _exit ends the child without running the parent's
            // atexit handlers or touching its locks.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid, "waitpid: {}", Errno::last());
        assert!(
            libc::WIFEXITED(status),
            "child did not exit (signal {})",
            libc::WTERMSIG(status)
        );
        assert_eq!(libc::WEXITSTATUS(status), 0, "check failed in the child");
        drop(filter);
    }
}
