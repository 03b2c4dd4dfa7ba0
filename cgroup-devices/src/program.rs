//! The whitelist compiled to a BPF_PROG_TYPE_CGROUP_DEVICE program.
//!
//! The kernel runs the program on every device access (open, mknod) by a
//! process in the cgroup, with `r1` pointing at
//! `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`,
//! where `access_type` is `(access << 16) | type`; a return of 1 allows, 0
//! denies (EPERM). The program loads the four fields into r2..r5 once, then
//! each rule is one block that jumps to the next block on any mismatch and
//! returns 1 at its end; after the last block it returns 0. Fields a rule
//! leaves open (`a`, `*`, full access) emit no test at all.

use crate::rules::{Access, DeviceType, Rule};

/// One eBPF instruction as the kernel reads it (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The 8 bytes of `struct bpf_insn` (registers packed dst low, src high).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.dst & 0x0f) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

// Opcodes (linux/bpf.h, linux/bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

const R0: u8 = 0;
const R1: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;
/// Scratch for the access test; the context pointer is no longer needed.
const SCRATCH: u8 = 1;

/// BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    Insn {
        code: LDX_MEM_W,
        dst,
        src,
        off,
        imm: 0,
    }
}
fn alu_k(code: u8, dst: u8, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}
fn mov_x(dst: u8, src: u8) -> Insn {
    Insn {
        code: ALU64_MOV_X,
        dst,
        src,
        off: 0,
        imm: 0,
    }
}
/// `if dst != imm goto next block`; the offset is patched once the block's
/// length is known.
fn jne_next(dst: u8, imm: i32) -> Insn {
    Insn {
        code: JMP_JNE_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}
fn exit() -> Insn {
    Insn {
        code: JMP_EXIT,
        dst: 0,
        src: 0,
        off: 0,
        imm: 0,
    }
}

/// Compile the whitelist. Numbers above i32::MAX cannot be compared as BPF
/// immediates (they are sign-extended); no device has such a major or minor
/// (majors are 12 bits, minors 20), so such a rule can never match and is
/// left out.
pub fn compile(rules: &[Rule]) -> Vec<Insn> {
    let mut prog = vec![
        ldx_w(TYPE, R1, 0),
        alu_k(ALU64_AND_K, TYPE, 0xffff),
        ldx_w(ACCESS, R1, 0),
        alu_k(ALU64_RSH_K, ACCESS, 16),
        ldx_w(MAJOR, R1, 4),
        ldx_w(MINOR, R1, 8),
    ];
    for rule in rules {
        let (Ok(major), Ok(minor)) = (
            rule.major.map(i32::try_from).transpose(),
            rule.minor.map(i32::try_from).transpose(),
        ) else {
            continue;
        };
        let mut block = Vec::new();
        match rule.device {
            DeviceType::Any => {}
            DeviceType::Block => block.push(jne_next(TYPE, DEV_BLOCK)),
            DeviceType::Char => block.push(jne_next(TYPE, DEV_CHAR)),
        }
        if rule.access != Access::ALL {
            // Allowed only when nothing outside the rule's access is asked.
            block.push(mov_x(SCRATCH, ACCESS));
            block.push(alu_k(ALU64_AND_K, SCRATCH, !(rule.access.bits() as i32)));
            block.push(jne_next(SCRATCH, 0));
        }
        if let Some(major) = major {
            block.push(jne_next(MAJOR, major));
        }
        if let Some(minor) = minor {
            block.push(jne_next(MINOR, minor));
        }
        block.push(alu_k(ALU64_MOV_K, R0, 1));
        block.push(exit());
        let len = block.len();
        for (at, insn) in block.iter_mut().enumerate() {
            if insn.code == JMP_JNE_K {
                // Jumps count from the instruction after the jump.
                insn.off = (len - at - 1) as i16;
            }
        }
        prog.extend(block);
    }
    prog.push(alu_k(ALU64_MOV_K, R0, 0));
    prog.push(exit());
    prog
}

/// The program as the bytes handed to BPF_PROG_LOAD.
pub fn to_bytes(prog: &[Insn]) -> Vec<u8> {
    prog.iter().flat_map(|i| i.to_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel would decide, interpreting the program the way the
    /// BPF machine does: every opcode the compiler emits, with 64-bit
    /// registers and offsets relative to the next instruction.
    fn run(prog: &[Insn], device_type: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | device_type, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = (i.dst as usize, i.src as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(s, R1 as usize, "loads only from the context");
                    r[d] = ctx[(i.off / 4) as usize] as u64;
                }
                ALU64_AND_K => r[d] &= i.imm as i64 as u64,
                ALU64_RSH_K => r[d] >>= i.imm,
                ALU64_MOV_K => r[d] = i.imm as i64 as u64,
                ALU64_MOV_X => r[d] = r[s],
                JMP_JNE_K => {
                    if r[d] != i.imm as i64 as u64 {
                        pc = (pc as i64 + i.off as i64) as usize;
                    }
                }
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn rules(list: &[&str]) -> Vec<Rule> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    const R: u32 = Access::READ;
    const W: u32 = Access::WRITE;
    const M: u32 = Access::MKNOD;
    const C: u32 = DEV_CHAR as u32;
    const B: u32 = DEV_BLOCK as u32;

    #[test]
    fn the_warden_whitelist() {
        let prog = compile(&rules(&[
            "c 1:3 rwm",
            "c 1:9 rwm",
            "c 136:* rwm",
            "c 10:229 rwm",
        ]));
        assert_eq!(run(&prog, C, R | W, 1, 3), 1, "/dev/null");
        assert_eq!(run(&prog, C, M, 1, 9), 1, "mknod /dev/urandom");
        assert_eq!(run(&prog, C, R, 136, 7), 1, "a pty slave");
        assert_eq!(run(&prog, C, R | W, 10, 229), 1, "/dev/fuse");
        assert_eq!(run(&prog, C, R, 1, 1), 0, "/dev/mem");
        assert_eq!(run(&prog, B, R, 1, 3), 0, "block 1:3 is not char 1:3");
        assert_eq!(run(&prog, B, M, 8, 0), 0, "mknod of a disk");
        assert_eq!(run(&prog, C, R, 137, 0), 0);
        assert_eq!(run(&prog, C, R, 10, 200), 0, "/dev/net/tun");
    }

    #[test]
    fn access_and_wildcards() {
        let prog = compile(&rules(&["b 8:* r", "c *:5 m"]));
        assert_eq!(run(&prog, B, R, 8, 16), 1);
        assert_eq!(run(&prog, B, R | W, 8, 16), 0, "write is not granted");
        assert_eq!(run(&prog, B, M, 8, 0), 0);
        assert_eq!(run(&prog, C, M, 42, 5), 1);
        assert_eq!(run(&prog, C, R, 42, 5), 0);
        let all = compile(&rules(&["a"]));
        assert_eq!(run(&all, B, R | W | M, 8, 0), 1);
        let none = compile(&[]);
        assert_eq!(run(&none, C, R, 1, 3), 0);
        assert_eq!(none.len(), 8);
    }

    #[test]
    fn instruction_bytes() {
        // r4 = *(u32 *)(r1 + 4): code 0x61, dst 4 | src 1 << 4, off 4.
        assert_eq!(
            ldx_w(MAJOR, R1, 4).to_bytes(),
            [0x61, 0x14, 4, 0, 0, 0, 0, 0]
        );
        // if r2 != 2 goto +3
        let mut j = jne_next(TYPE, DEV_CHAR);
        j.off = 3;
        assert_eq!(j.to_bytes(), [0x55, 0x02, 3, 0, 2, 0, 0, 0]);
        assert_eq!(exit().to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(to_bytes(&compile(&[])).len(), 8 * 8);
    }

    #[test]
    fn numbers_beyond_an_immediate_never_match() {
        let prog = compile(&rules(&["c 4294967295:1 rwm"]));
        assert_eq!(run(&prog, C, R, u32::MAX, 1), 0);
    }
}
