//! Where a container's cgroups are and how to read them, found the way the
//! scripts find them (lib/common.sh): cgroup v2 when /sys/fs/cgroup holds the
//! unified hierarchy (the group is `$WARDEN_CGROUP2_PARENT/instance-<id>`,
//! parent /sys/fs/cgroup by default), else one group `instance-<id>` in every
//! mounted v1 hierarchy, whose mount points come from the mount table.
//! Read-only: the groups are made and removed by the scripts.

use std::fs;
use std::path::{Path, PathBuf};

const V2_ROOT: &str = "/sys/fs/cgroup";

/// The container's groups that exist right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    /// The one unified group.
    V2(PathBuf),
    /// (controllers of the hierarchy, the group in it), one per hierarchy.
    V1(Vec<(Vec<String>, PathBuf)>),
}

impl Groups {
    /// The groups of container `id` (an empty v1 list when none exists).
    pub fn of(id: &str) -> Groups {
        let name = format!("instance-{id}");
        if Path::new(V2_ROOT).join("cgroup.controllers").is_file() {
            let parent = std::env::var("WARDEN_CGROUP2_PARENT").unwrap_or_else(|_| V2_ROOT.into());
            return Groups::V2(Path::new(&parent).join(name));
        }
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        Groups::V1(
            v1_hierarchies(&mounts)
                .into_iter()
                .map(|(controllers, mount_point)| (controllers, mount_point.join(&name)))
                .filter(|(_, group)| group.is_dir())
                .collect(),
        )
    }

    pub fn is_v2(&self) -> bool {
        matches!(self, Groups::V2(_))
    }

    /// The group of the v1 hierarchy holding `controller`.
    fn v1_group(&self, controller: &str) -> Option<&Path> {
        match self {
            Groups::V1(groups) => groups
                .iter()
                .find(|(c, _)| c.iter().any(|c| c == controller))
                .map(|(_, g)| g.as_path()),
            Groups::V2(_) => None,
        }
    }

    /// A control file: `v1_file` in the hierarchy of `v1_controller`, or
    /// `v2_file` in the unified group; none when it does not exist.
    pub fn file(&self, v1_controller: &str, v1_file: &str, v2_file: &str) -> Option<PathBuf> {
        let path = match self {
            Groups::V2(group) => group.join(v2_file),
            Groups::V1(_) => self.v1_group(v1_controller)?.join(v1_file),
        };
        path.exists().then_some(path)
    }

    /// Every process of the container: the tgids in cgroup.procs of its
    /// groups and of any group below them (a nested Warden makes some),
    /// sorted, without repeats. v1 reads the pids hierarchy when it is
    /// mounted (every process is in each hierarchy), else every one.
    pub fn pids(&self) -> Vec<i32> {
        let roots: Vec<&Path> = match self {
            Groups::V2(group) => vec![group.as_path()],
            Groups::V1(groups) => match self.v1_group("pids") {
                Some(group) => vec![group],
                None => groups.iter().map(|(_, g)| g.as_path()).collect(),
            },
        };
        let mut pids = Vec::new();
        for root in roots {
            collect_pids(root, &mut pids, 0);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}

/// Mounted v1 hierarchies: (controllers, mount point) from mount table
/// lines of type `cgroup` (the controllers are among the mount options).
fn v1_hierarchies(mounts: &str) -> Vec<(Vec<String>, PathBuf)> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, mount_point, kind, options) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            (kind == "cgroup").then(|| {
                (
                    options.split(',').map(str::to_string).collect(),
                    PathBuf::from(mount_point),
                )
            })
        })
        .collect()
}

/// Groups nest as deep as anyone makes them; 32 levels is past any use and
/// keeps a hostile tree from recursing without end.
const MAX_DEPTH: u32 = 32;

fn collect_pids(group: &Path, pids: &mut Vec<i32>, depth: u32) {
    if let Ok(text) = fs::read_to_string(group.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = fs::read_dir(group) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&entry.path(), pids, depth + 1);
        }
    }
}

/// A number in a control file; none for `max` (no limit), a missing file
/// or anything else.
pub fn read_u64(path: Option<&Path>) -> Option<u64> {
    fs::read_to_string(path?).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, memory.events).
pub fn read_keyed(path: Option<&Path>) -> Vec<(String, u64)> {
    let Some(path) = path else {
        return Vec::new();
    };
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (k, v) = line.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The value of `key` in `key value` lines.
pub fn keyed(pairs: &[(String, u64)], key: &str) -> Option<u64> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// cgroup v1 writes "no limit" as the largest page-aligned i64 (memory) or
/// as a huge number; anything at or past 2^62 is taken for unlimited.
pub fn v1_limit(value: Option<u64>) -> Option<u64> {
    value.filter(|v| *v < 1 << 62)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_hierarchies_come_from_the_mount_table() {
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n\
                      cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0\n\
                      cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        let h = v1_hierarchies(mounts);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].1, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(h[0].0.iter().any(|c| c == "cpuacct"));
        assert!(h[1].0.iter().any(|c| c == "pids"));
        let groups = Groups::V1(
            h.into_iter()
                .map(|(c, m)| (c, m.join("instance-x")))
                .collect(),
        );
        assert_eq!(
            groups.v1_group("cpu"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct/instance-x"))
        );
        assert_eq!(groups.v1_group("memory"), None);
    }

    #[test]
    fn unlimited_values_are_none() {
        assert_eq!(v1_limit(Some(0x7fff_ffff_ffff_f000)), None);
        assert_eq!(v1_limit(Some(50 << 20)), Some(50 << 20));
        let pairs = vec![("oom_kill".to_string(), 2)];
        assert_eq!(keyed(&pairs, "oom_kill"), Some(2));
        assert_eq!(keyed(&pairs, "oom"), None);
    }
}
