//! Which device a mount point is on, found as repquota.c finds it: the
//! first entry of the mount table (`/etc/mtab`, read as glibc's getmntent
//! reads it) whose directory is exactly the argument, byte for byte: no
//! trailing-slash or symlink normalisation, so `/var/vcap/data/` does not
//! match `/var/vcap/data`, as in the C tool.

use std::path::Path;

/// The table the C tool reads (`_PATH_MOUNTED`); on current systems a
/// symlink to /proc/self/mounts.
pub const MTAB: &str = "/etc/mtab";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// First field: for a block filesystem, the device path.
    pub fsname: Vec<u8>,
    pub dir: Vec<u8>,
}

/// getmntent's escapes in a field: `\040` space, `\011` tab, `\012`
/// newline, `\134` and `\\` backslash; any other backslash is literal.
fn decode(field: &[u8]) -> Vec<u8> {
    const ESCAPES: [(&[u8], u8); 5] = [
        (b"\\040", b' '),
        (b"\\011", b'\t'),
        (b"\\012", b'\n'),
        (b"\\134", b'\\'),
        (b"\\\\", b'\\'),
    ];
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field;
    'scan: while let Some((&first, tail)) = rest.split_first() {
        if first == b'\\' {
            for (escape, plain) in ESCAPES {
                if let Some(after) = rest.strip_prefix(escape) {
                    out.push(plain);
                    rest = after;
                    continue 'scan;
                }
            }
        }
        out.push(first);
        rest = tail;
    }
    out
}

/// One line of the table, or None for the lines getmntent skips (blank, or
/// `#` after leading blanks). Fields are separated by runs of blanks; a
/// missing directory is empty, as in glibc. Bytes, not text: a path in the
/// table need not be UTF-8.
pub fn parse_line(line: &[u8]) -> Option<Mount> {
    let mut fields = line
        .split(|&b| b == b' ' || b == b'\t' || b == b'\n')
        .filter(|f| !f.is_empty());
    let fsname = fields.next()?;
    if fsname.starts_with(b"#") {
        return None;
    }
    Some(Mount {
        fsname: decode(fsname),
        dir: fields.next().map(decode).unwrap_or_default(),
    })
}

/// The device of the first mount whose directory is `dir`.
pub fn device_of(table: &[u8], dir: &[u8]) -> Option<Vec<u8>> {
    table
        .split(|&b| b == b'\n')
        .filter_map(parse_line)
        .find(|m| m.dir == dir)
        .map(|m| m.fsname)
}

/// [`device_of`] in the table at `path`; None also when it cannot be read
/// (the C tool says the same thing in both cases).
pub fn lookup_device(path: &Path, dir: &[u8]) -> Option<Vec<u8>> {
    device_of(&std::fs::read(path).ok()?, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid 0 0
# a comment line
   \t
/dev/loop3 /var/vcap/data ext4 rw,usrquota 0 0
/dev/loop4 /var/vcap/data ext4 rw 0 0
/dev/sdb1 /mnt/with\\040space xfs rw 0 0
/dev/sdc\\134x /mnt/tab\\011here ext4 rw 0 0
\t/dev/sdd  /mnt/blanks\t\text4 rw 0 0
";

    #[test]
    fn finds_the_first_exact_match() {
        assert_eq!(
            device_of(TABLE.as_bytes(), b"/").as_deref(),
            Some(&b"/dev/vda"[..])
        );
        assert_eq!(
            device_of(TABLE.as_bytes(), b"/var/vcap/data").as_deref(),
            Some(&b"/dev/loop3"[..])
        );
        assert_eq!(
            device_of(TABLE.as_bytes(), b"/proc").as_deref(),
            Some(&b"proc"[..])
        );
    }

    #[test]
    fn matches_bytes_not_paths() {
        assert_eq!(device_of(TABLE.as_bytes(), b"/var/vcap/data/"), None);
        assert_eq!(device_of(TABLE.as_bytes(), b"/var/vcap"), None);
        assert_eq!(device_of(TABLE.as_bytes(), b""), None);
    }

    #[test]
    fn decodes_getmntent_escapes() {
        assert_eq!(
            device_of(TABLE.as_bytes(), b"/mnt/with space").as_deref(),
            Some(&b"/dev/sdb1"[..])
        );
        assert_eq!(
            device_of(TABLE.as_bytes(), b"/mnt/tab\there").as_deref(),
            Some(&b"/dev/sdc\\x"[..])
        );
        assert_eq!(decode(b"a\\012b\\\\c\\9"), b"a\nb\\c\\9");
    }

    #[test]
    fn skips_blank_and_comment_lines_and_splits_on_blank_runs() {
        assert_eq!(parse_line(b"# x /y"), None);
        assert_eq!(parse_line(b"  #x /y"), None);
        assert_eq!(parse_line(b""), None);
        assert_eq!(
            parse_line(b"nodir"),
            Some(Mount {
                fsname: b"nodir".to_vec(),
                dir: Vec::new()
            })
        );
        assert_eq!(
            device_of(TABLE.as_bytes(), b"/mnt/blanks").as_deref(),
            Some(&b"/dev/sdd"[..])
        );
        // Not UTF-8, and still found.
        assert_eq!(
            device_of(b"/dev/x /mnt/\xff 0 0\n", b"/mnt/\xff").as_deref(),
            Some(&b"/dev/x"[..])
        );
    }

    #[test]
    fn an_unreadable_table_finds_nothing() {
        assert_eq!(lookup_device(Path::new("/nonexistent/mtab"), b"/"), None);
    }
}
