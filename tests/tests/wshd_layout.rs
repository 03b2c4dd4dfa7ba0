//! The release wshd carries its daemon code in one `.text.hot` section
//! (wshd/link/hot.ld), which is what keeps an idle wshd's resident text
//! small. A build that dropped the linker script (build.rs not applied, a
//! linker that ignored it) or whose globs stopped matching would still
//! work, only bigger in memory; this catches that without timing anything.

use std::fs;

use tests::paths::bin;

/// (name, size) of every section of a 64-bit little-endian ELF file.
fn sections(elf: &[u8]) -> Vec<(String, u64)> {
    assert!(elf.len() > 64 && &elf[..4] == b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    assert_eq!(elf[5], 1, "not a little-endian ELF file");
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(0x28) as usize,
        u16_at(0x3a),
        u16_at(0x3c),
        u16_at(0x3e),
    );
    let header = |i: usize| shoff + i * shentsize;
    let names = u64_at(header(shstrndx) + 0x18) as usize;
    (0..shnum)
        .map(|i| {
            let h = header(i);
            let start = names + u32_at(h);
            let end = start + elf[start..].iter().position(|&b| b == 0).unwrap();
            let name = String::from_utf8_lossy(&elf[start..end]).into_owned();
            (name, u64_at(h + 0x20))
        })
        .collect()
}

#[test]
fn wshd_has_its_hot_section() {
    let path = bin("wshd");
    let elf = fs::read(&path).unwrap();
    let sections = sections(&elf);
    let hot = sections.iter().find(|(name, _)| name == ".text.hot");
    let Some((_, size)) = hot else {
        panic!("{} has no .text.hot section: {sections:?}", path.display());
    };
    assert!(
        *size >= 64 * 1024,
        ".text.hot is only {size} bytes: hot.ld's patterns no longer match the code"
    );
}
