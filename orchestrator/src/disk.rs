//! Disk limits. This host's kernel has no quota support, so a container
//! created with a disk limit gets its writable layer on an ext4 image of its
//! own (skeleton/disk.sh): the image's size is the hard byte limit, its inode
//! count (fixed by mkfs) the hard inode limit. Soft limits are recorded and
//! reported; only quotas could enforce them (grace periods), and where the
//! depot's filesystem has uid quotas they are set with setquota as Warden
//! does.
//!
//! Why at create: the overlay is mounted inside wshd's mount namespace when
//! the container starts and cannot be moved to another upper layer while it
//! runs, so the image must exist before start (`create --disk-limit`).
//! `limit-disk` later grows it online (truncate, `losetup -c`, resize2fs,
//! which needs CAP_SYS_RESOURCE); ext4 cannot shrink while mounted, so a
//! smaller limit is refused, with its own message when it is below what is
//! already used. resize2fs adds inodes with the block groups it adds, in
//! proportion; the inode limit cannot be changed on its own.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::depot::Depot;
use crate::errors::{Error, Result};
use crate::instance::{write_atomic, Instance, State};
use crate::scripts;

/// Quota blocks are 1 KiB, as in Warden's request.
pub const BLOCK: u64 = 1024;
/// Smallest image: ext4's own metadata must fit, with room to spare.
pub const MIN_BYTES: u64 = 1 << 20;

/// The fields of Warden's LimitDiskRequest; `*_limit` is the hard limit.
/// Also `wardenctl limit-disk`'s flags, one per field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::Args)]
pub struct DiskRequest {
    #[arg(long, value_name = "BYTES", value_parser = crate::units::size_arg)]
    pub byte_limit: Option<u64>,
    #[arg(long, value_name = "BYTES", value_parser = crate::units::size_arg)]
    pub byte_soft: Option<u64>,
    #[arg(long, value_name = "BYTES", value_parser = crate::units::size_arg)]
    pub byte_hard: Option<u64>,
    #[arg(long)]
    pub block_limit: Option<u64>,
    #[arg(long)]
    pub block_soft: Option<u64>,
    #[arg(long)]
    pub block_hard: Option<u64>,
    #[arg(long)]
    pub inode_limit: Option<u64>,
    #[arg(long)]
    pub inode_soft: Option<u64>,
    #[arg(long)]
    pub inode_hard: Option<u64>,
}

/// Limits in force, bytes and inodes; 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskLimits {
    pub byte_soft: u64,
    pub byte_hard: u64,
    pub inode_soft: u64,
    pub inode_hard: u64,
}

impl DiskRequest {
    pub fn is_empty(&self) -> bool {
        *self == DiskRequest::default()
    }

    /// The request applied on top of `current`; byte and block fields may
    /// not disagree, and a soft limit may not exceed its hard one.
    pub fn resolve(&self, current: DiskLimits) -> Result<DiskLimits> {
        let bytes = |byte: Option<u64>, block: Option<u64>, what: &str| -> Result<Option<u64>> {
            let block =
                match block {
                    Some(b) => Some(b.checked_mul(BLOCK).ok_or_else(|| {
                        Error::BadArgument(format!("block {what} {b} is too large"))
                    })?),
                    None => None,
                };
            match (byte, block) {
                (Some(a), Some(b)) if a != b => Err(Error::BadArgument(format!(
                    "byte {what} {a} and block {what} ({b} bytes) disagree"
                ))),
                (a, b) => Ok(a.or(b)),
            }
        };
        let pick = |a: Option<u64>, b: Option<u64>, what: &str| match (a, b) {
            (Some(x), Some(y)) if x != y => Err(Error::BadArgument(format!(
                "--{what}-limit {x} and --{what}-hard {y} disagree"
            ))),
            (x, y) => Ok(x.or(y)),
        };
        let byte_hard = pick(
            bytes(self.byte_limit, self.block_limit, "limit")?,
            bytes(self.byte_hard, self.block_hard, "hard")?,
            "byte",
        )?;
        let byte_soft = bytes(self.byte_soft, self.block_soft, "soft")?;
        let inode_hard = pick(self.inode_limit, self.inode_hard, "inode")?;
        let limits = DiskLimits {
            byte_soft: byte_soft.unwrap_or(current.byte_soft),
            byte_hard: byte_hard.unwrap_or(current.byte_hard),
            inode_soft: self.inode_soft.unwrap_or(current.inode_soft),
            inode_hard: inode_hard.unwrap_or(current.inode_hard),
        };
        if limits.byte_hard != 0 && limits.byte_hard < MIN_BYTES {
            return Err(Error::BadArgument(format!(
                "byte limit {} is below the minimum of {MIN_BYTES}",
                limits.byte_hard
            )));
        }
        if limits.byte_hard != 0 && limits.byte_soft > limits.byte_hard {
            return Err(Error::BadArgument(format!(
                "soft byte limit {} is above the hard one {}",
                limits.byte_soft, limits.byte_hard
            )));
        }
        if limits.inode_hard != 0 && limits.inode_soft > limits.inode_hard {
            return Err(Error::BadArgument(format!(
                "soft inode limit {} is above the hard one {}",
                limits.inode_soft, limits.inode_hard
            )));
        }
        if limits.inode_hard > u64::from(u32::MAX / 2) {
            return Err(Error::BadArgument(format!(
                "inode limit {} is too large",
                limits.inode_hard
            )));
        }
        Ok(limits)
    }
}

impl DiskLimits {
    fn parse(text: &str) -> Self {
        let mut l = DiskLimits::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().parse().unwrap_or(0);
            match k.trim() {
                "byte_soft" => l.byte_soft = v,
                "byte_hard" => l.byte_hard = v,
                "inode_soft" => l.inode_soft = v,
                "inode_hard" => l.inode_hard = v,
                _ => {}
            }
        }
        l
    }

    fn to_file(self) -> String {
        format!(
            "byte_soft={}\nbyte_hard={}\ninode_soft={}\ninode_hard={}\n",
            self.byte_soft, self.byte_hard, self.inode_soft, self.inode_hard
        )
    }

    /// What `limit-disk H` prints, Warden's response fields.
    pub fn to_text(self) -> String {
        format!(
            "byte_limit: {}\nbyte_soft: {}\nbyte_hard: {}\nblock_limit: {}\nblock_soft: {}\nblock_hard: {}\ninode_limit: {}\ninode_soft: {}\ninode_hard: {}\n",
            self.byte_hard,
            self.byte_soft,
            self.byte_hard,
            self.byte_hard / BLOCK,
            self.byte_soft / BLOCK,
            self.byte_hard / BLOCK,
            self.inode_hard,
            self.inode_soft,
            self.inode_hard,
        )
    }

    pub fn read(instance: &Instance) -> Self {
        fs::read_to_string(limits_file(instance))
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }
}

fn limits_file(instance: &Instance) -> PathBuf {
    instance.path.join("etc/disk_limits")
}

fn mount_point(instance: &Instance) -> PathBuf {
    instance.path.join("tmp/disk")
}

/// Whether the writable layer is on its own image (mounted).
pub fn has_image(instance: &Instance) -> bool {
    let mnt = mount_point(instance);
    fs::read_to_string("/proc/self/mounts")
        .map(|m| {
            m.lines().any(|l| {
                let mut f = l.split_whitespace();
                f.nth(1).map(Path::new) == Some(mnt.as_path()) && f.next() == Some("ext4")
            })
        })
        .unwrap_or(false)
}

/// At create, before start: the image for `limits` (called with the
/// instance not yet started; a failure is undone by destroy.sh).
pub fn setup_image(instance: &Instance, limits: DiskLimits) -> Result<()> {
    let mut args = vec!["setup".to_string(), limits.byte_hard.to_string()];
    if limits.inode_hard != 0 {
        args.push(limits.inode_hard.to_string());
    }
    scripts::run(&instance.script("disk.sh"), &args, &[])?;
    write_atomic(&limits_file(instance), limits.to_file().as_bytes())
}

/// Checks a create's disk limit before anything is made.
pub fn check_create(limits: DiskLimits, depot: &Depot) -> Result<()> {
    if limits.byte_hard < MIN_BYTES {
        return Err(Error::BadArgument(format!(
            "disk limit {} is below the minimum of {MIN_BYTES}",
            limits.byte_hard
        )));
    }
    check_fits(limits, depot.root())?;
    if limits.inode_hard != 0 && limits.inode_hard > limits.byte_hard / 1024 {
        return Err(Error::BadArgument(format!(
            "inode limit {} needs a byte limit of at least {} (1 KiB per inode)",
            limits.inode_hard,
            limits.inode_hard * 1024
        )));
    }
    Ok(())
}

/// An image larger than the filesystem holding it is refused as absurd
/// (images are sparse, so smaller ones may still overcommit, as quotas do).
fn check_fits(limits: DiskLimits, dir: &Path) -> Result<()> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| Error::Io {
        context: format!("statvfs {}", dir.display()),
        source: e.into(),
    })?;
    let total = st.blocks() * st.fragment_size();
    if limits.byte_hard > total {
        return Err(Error::BadArgument(format!(
            "byte limit {} is larger than the filesystem of {} ({total} bytes)",
            limits.byte_hard,
            dir.display()
        )));
    }
    Ok(())
}

/// Whether this process may resize a mounted ext4 (EXT4_IOC_RESIZE_FS
/// wants CAP_SYS_RESOURCE, which some sandboxes drop from the bounding set).
fn can_resize_online() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// `limit-disk`: sets what the request names (nothing: only reads) and
/// returns the limits in force. Everything is checked before anything
/// changes, so a refused request leaves the previous limits.
pub fn limit(depot: &Depot, handle: &str, request: &DiskRequest) -> Result<DiskLimits> {
    let instance = Instance::open(depot, handle)?;
    let _lock = instance.lock(true)?;
    instance.require_state("limit-disk", &[State::Active])?;
    let current = DiskLimits::read(&instance);
    if request.is_empty() {
        return Ok(current);
    }
    let wanted = request.resolve(current)?;
    if wanted == current {
        return Ok(current);
    }
    if !has_image(&instance) {
        return set_quota(depot, &instance, wanted);
    }
    if wanted.byte_hard == 0 {
        return Err(Error::BadArgument(
            "the byte limit of a disk image cannot be removed".into(),
        ));
    }
    if wanted.inode_hard != current.inode_hard {
        return Err(Error::Unsupported(format!(
            "the inode limit ({}) is fixed when the image is made; it grows only with the byte limit",
            current.inode_hard
        )));
    }
    if wanted.byte_hard < current.byte_hard {
        let used = stat(&instance).bytes_used;
        if wanted.byte_hard < used {
            return Err(Error::BadArgument(format!(
                "byte limit {} is below the {used} bytes already used",
                wanted.byte_hard
            )));
        }
        return Err(Error::Unsupported(format!(
            "byte limit {} is below the current {}: a mounted ext4 image cannot shrink",
            wanted.byte_hard, current.byte_hard
        )));
    }
    if wanted.byte_hard > current.byte_hard {
        check_fits(wanted, depot.root())?;
        if !can_resize_online() {
            return Err(Error::Unsupported(
                "growing the disk image needs online resize (CAP_SYS_RESOURCE), which this host denies"
                    .into(),
            ));
        }
        scripts::run(
            &instance.script("disk.sh"),
            &["grow".to_string(), wanted.byte_hard.to_string()],
            &[],
        )?;
    }
    write_atomic(&limits_file(&instance), wanted.to_file().as_bytes())?;
    Ok(wanted)
}

/// The mount point of the filesystem holding `path` and its options.
fn filesystem_of(path: &Path) -> Option<(PathBuf, String)> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    let path = path.canonicalize().ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((PathBuf::from(f.get(1)?), f.get(3)?.to_string()))
        })
        .filter(|(mp, _)| path.starts_with(mp))
        .max_by_key(|(mp, _)| mp.as_os_str().len())
}

/// Without an image: uid quotas on the depot's filesystem, as Warden.
fn set_quota(depot: &Depot, instance: &Instance, wanted: DiskLimits) -> Result<DiskLimits> {
    let (mount_point, options) = filesystem_of(depot.root()).ok_or_else(|| {
        Error::Unsupported(format!(
            "no filesystem found for {}",
            depot.root().display()
        ))
    })?;
    if !options
        .split(',')
        .any(|o| o == "usrquota" || o == "quota" || o == "usrjquota")
    {
        return Err(Error::Unsupported(format!(
            "container {} was created without --disk-limit and {} has no uid quotas",
            instance.handle,
            mount_point.display()
        )));
    }
    let uid = instance
        .config()?
        .user_uid()
        .ok_or_else(|| Error::Tool("etc/config holds no user_uid".into()))?;
    let blocks = |b: u64| b.div_ceil(BLOCK).to_string();
    let out = Command::new("setquota")
        .arg("-u")
        .arg(uid.to_string())
        .arg(blocks(wanted.byte_soft))
        .arg(blocks(wanted.byte_hard))
        .arg(wanted.inode_soft.to_string())
        .arg(wanted.inode_hard.to_string())
        .arg(&mount_point)
        .output()
        .map_err(Error::io("run setquota"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Tool(format!(
            "setquota: {}",
            err.lines().next().unwrap_or("failed")
        )));
    }
    write_atomic(&limits_file(instance), wanted.to_file().as_bytes())?;
    Ok(wanted)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStat {
    pub bytes_used: u64,
    pub inodes_used: u64,
}

/// Use of the writable layer: from the image's filesystem when it has one,
/// else by walking the upper directory.
pub fn stat(instance: &Instance) -> DiskStat {
    if has_image(instance) {
        if let Ok(st) = nix::sys::statvfs::statvfs(&mount_point(instance)) {
            return DiskStat {
                bytes_used: (st.blocks() - st.blocks_free()) * st.fragment_size(),
                inodes_used: st.files() - st.files_free(),
            };
        }
    }
    let mut stat = DiskStat::default();
    walk(&instance.path.join("tmp/rootfs"), &mut stat);
    stat
}

fn walk(dir: &Path, stat: &mut DiskStat) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        stat.inodes_used += 1;
        stat.bytes_used += meta.blocks() * 512;
        if meta.is_dir() {
            walk(&entry.path(), stat);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_bytes_resolve() {
        let r = DiskRequest {
            block_limit: Some(2048),
            inode_soft: Some(10),
            inode_hard: Some(20),
            ..Default::default()
        };
        let l = r.resolve(DiskLimits::default()).unwrap();
        assert_eq!(l.byte_hard, 2048 * 1024);
        assert_eq!((l.inode_soft, l.inode_hard), (10, 20));
        let back = DiskLimits::parse(&l.to_file());
        assert_eq!(back, l);
    }

    #[test]
    fn contradictions_are_refused() {
        let bad = [
            DiskRequest {
                byte_limit: Some(4 << 20),
                block_limit: Some(1),
                ..Default::default()
            },
            DiskRequest {
                byte_soft: Some(8 << 20),
                byte_hard: Some(4 << 20),
                ..Default::default()
            },
            DiskRequest {
                byte_limit: Some(1000),
                ..Default::default()
            },
            DiskRequest {
                inode_limit: Some(5),
                inode_hard: Some(6),
                ..Default::default()
            },
            DiskRequest {
                block_limit: Some(u64::MAX),
                ..Default::default()
            },
        ];
        for r in bad {
            assert_eq!(
                r.resolve(DiskLimits::default()).unwrap_err().exit_code(),
                5,
                "{r:?}"
            );
        }
    }
}
