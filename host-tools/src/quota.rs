//! `repquota FILESYSTEM UID...`: the current disk quota usage and limits of
//! each uid, as warden/src/repquota/repquota.c reports them for the Ruby
//! server (`Warden::Container::Features::Quota.repquota`, which splits each
//! line on white space and reads fields 0-3 and 5-7 as integers).
//!
//! - FILESYSTEM is a mount point, matched exactly against the mount table
//!   ([`crate::mounts`]); its device is asked with
//!   `quotactl(QCMD(Q_GETQUOTA, USRQUOTA), DEVICE, UID)`, which reads the
//!   kernel's live numbers (no `sync` needed, unlike quota-tools' repquota).
//! - Each UID is read as C's `atoi` ([`crate::numbers::atoi`]): `abc` is 0.
//! - stdout, one line per uid in argument order, nine decimal fields and a
//!   newline: `UID BYTES BSOFT BHARD BTIME INODES ISOFT IHARD ITIME\n`. UID
//!   is signed (`%d`), the rest unsigned 64-bit (`%llu`): bytes in use
//!   (dqb_curspace, in bytes), block soft and hard limits (1 KiB quota
//!   blocks), block grace expiry (seconds since the epoch, 0 when not
//!   running), inodes in use, inode soft and hard limits, inode grace expiry.
//! - Exit 0 when every uid was reported. Exit 1, with nothing on stderr, for
//!   fewer than two arguments (the three usage lines go to stdout) and for a
//!   FILESYSTEM not in the table (`Couldn't find device for FILESYSTEM` on
//!   stdout). Exit 1 at the first uid whose quotactl fails: the lines of the
//!   uids before it are printed, and stderr gets
//!   `Failed retrieving quota for uid=UID: REASON.` ([`describe_error`]).

use std::fmt;

use nix::errno::Errno;
use nix::sys::quota::{quotactl_get, QuotaType};

/// The C tool's usage text, printed to stdout.
pub const USAGE: &str = "Usage: repquota [filesystem] [uid]+\n\
Reports quota information for the supplied uids on the given filesystem\n\
Format is: <uid> <bytes used> <soft> <hard> <grace> <inodes used> <soft> <hard> <grace>\n";

/// One uid's numbers, in the kernel's units (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub block_soft: u64,
    pub block_hard: u64,
    pub block_grace: u64,
    pub inodes: u64,
    pub inode_soft: u64,
    pub inode_hard: u64,
    pub inode_grace: u64,
}

/// One output line, newline included.
pub struct Line {
    pub uid: i32,
    pub usage: Usage,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = &self.usage;
        writeln!(
            f,
            "{} {} {} {} {} {} {} {} {}",
            self.uid,
            u.bytes,
            u.block_soft,
            u.block_hard,
            u.block_grace,
            u.inodes,
            u.inode_soft,
            u.inode_hard,
            u.inode_grace
        )
    }
}

/// The stderr line for a failed quotactl: the C tool's wording for the
/// errors it names (its spelling included), strerror for the rest.
pub fn describe_error(uid: i32, errno: Errno) -> String {
    let reason = match errno {
        Errno::EFAULT => "Block device invalid.",
        Errno::ENOENT => "Block device doesn't exist.",
        Errno::ENOSYS => "Kernel doesn't haven quota support.",
        Errno::ENOTBLK => "Not a block device.",
        Errno::EPERM => "Insufficient privilege.",
        Errno::ESRCH => "No quota for supplied user.",
        other => other.desc(),
    };
    format!("Failed retrieving quota for uid={uid}: {reason}")
}

/// The kernel's quota record of `uid` on the filesystem of `device`.
pub fn get(device: &std::ffi::OsStr, uid: i32) -> Result<Usage, Errno> {
    let q = quotactl_get(QuotaType::USRQUOTA, device, uid)?;
    // Q_GETQUOTA always fills every field (the kernel sets QIF_ALL), so the
    // validity flags behind these Options are all set.
    Ok(Usage {
        bytes: q.occupied_space().unwrap_or(0),
        block_soft: q.blocks_soft_limit().unwrap_or(0),
        block_hard: q.blocks_hard_limit().unwrap_or(0),
        block_grace: q.block_time_limit().unwrap_or(0),
        inodes: q.allocated_inodes().unwrap_or(0),
        inode_soft: q.inodes_soft_limit().unwrap_or(0),
        inode_hard: q.inodes_hard_limit().unwrap_or(0),
        inode_grace: q.inode_time_limit().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_nine_fields_as_the_c_tool() {
        let line = Line {
            uid: 10001,
            usage: Usage {
                bytes: 8_388_608,
                block_soft: 0,
                block_hard: 8192,
                block_grace: 0,
                inodes: 12,
                inode_soft: 0,
                inode_hard: 200,
                inode_grace: 1_700_000_000,
            },
        };
        assert_eq!(
            line.to_string(),
            "10001 8388608 0 8192 0 12 0 200 1700000000\n"
        );
        let max = Line {
            uid: -1,
            usage: Usage {
                bytes: u64::MAX,
                ..Usage::default()
            },
        };
        assert_eq!(max.to_string(), "-1 18446744073709551615 0 0 0 0 0 0 0\n");
    }

    /// What the Ruby server reads from a line: fields 0-3 and 5-7.
    #[test]
    fn parses_as_the_ruby_server_does() {
        let text = Line {
            uid: 7,
            usage: Usage {
                bytes: 1,
                block_soft: 2,
                block_hard: 3,
                block_grace: 4,
                inodes: 5,
                inode_soft: 6,
                inode_hard: 7,
                inode_grace: 8,
            },
        }
        .to_string();
        let fields: Vec<u64> = text
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        assert_eq!(fields, [7, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn names_errors_as_the_c_tool() {
        assert_eq!(
            describe_error(0, Errno::ESRCH),
            "Failed retrieving quota for uid=0: No quota for supplied user."
        );
        assert_eq!(
            describe_error(5, Errno::ENOSYS),
            "Failed retrieving quota for uid=5: Kernel doesn't haven quota support."
        );
        assert_eq!(
            describe_error(-2, Errno::ENOENT),
            "Failed retrieving quota for uid=-2: Block device doesn't exist."
        );
        assert_eq!(
            describe_error(1, Errno::EINVAL),
            "Failed retrieving quota for uid=1: Invalid argument"
        );
    }

    #[test]
    fn usage_is_the_c_tools_three_lines() {
        assert_eq!(USAGE.lines().count(), 3);
        assert!(USAGE.starts_with("Usage: repquota [filesystem] [uid]+\n"));
        assert!(USAGE.ends_with("<inodes used> <soft> <hard> <grace>\n"));
    }
}
