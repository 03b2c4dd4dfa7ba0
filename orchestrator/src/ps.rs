//! `wardenctl ps H`: the processes of a container, found in its cgroups
//! ([`crate::cgroup`]), each read from /proc: the pid on the host and in the
//! container's pid namespace (the last NSpid of /proc/PID/status), parent,
//! user, state, resident memory and command line. A process that ends while
//! it is read is left out.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde_json::{json, Value};

use crate::cgroup::Groups;
use crate::depot::Depot;
use crate::errors::{Error, Result};
use crate::instance::Instance;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// As the host sees it.
    pub pid: i32,
    /// As the container sees it (none without NSpid: kernels before 4.1).
    pub ns_pid: Option<i32>,
    pub ppid: Option<i32>,
    /// Effective uid (there is no user namespace: the same inside).
    pub uid: Option<u32>,
    /// Its name in the container's /etc/passwd, when found there.
    pub user: Option<String>,
    /// One letter, as ps: R, S, D, Z, T, ...
    pub state: String,
    pub rss_bytes: Option<u64>,
    /// The argv joined by spaces; `[name]` when it has none (a zombie).
    pub command: String,
}

impl Process {
    pub fn to_json(&self) -> Value {
        json!({
            "pid": self.pid,
            "ns_pid": self.ns_pid,
            "ppid": self.ppid,
            "uid": self.uid,
            "user": self.user,
            "state": self.state,
            "rss_bytes": self.rss_bytes,
            "command": self.command,
        })
    }
}

/// The container's processes, by host pid.
pub fn list(depot: &Depot, handle: &str) -> Result<Vec<Process>> {
    let instance = Instance::open(depot, handle)?;
    let config = instance.config()?;
    let id = config
        .id()
        .ok_or_else(|| Error::Tool(format!("{handle}: etc/config holds no id")))?;
    let users = container_users(&instance, config.user_uid(), config.get("rootfs_path"));
    let mut processes: Vec<Process> = Groups::of(id)
        .pids()
        .into_iter()
        .filter_map(|pid| read_process(pid, &users))
        .collect();
    processes.sort_by_key(|p| p.pid);
    Ok(processes)
}

/// `ps`-like columns, RSS in KiB.
pub fn to_text(processes: &[Process]) -> String {
    let dash = || "-".to_string();
    let rows: Vec<[String; 6]> = processes
        .iter()
        .map(|p| {
            [
                p.pid.to_string(),
                p.ns_pid.map_or_else(dash, |n| n.to_string()),
                p.user
                    .clone()
                    .or_else(|| p.uid.map(|u| u.to_string()))
                    .unwrap_or_else(dash),
                p.state.clone(),
                p.rss_bytes.map_or_else(dash, |b| (b / 1024).to_string()),
                p.command.clone(),
            ]
        })
        .collect();
    let header = ["PID", "NSPID", "USER", "STATE", "RSS_KIB", "COMMAND"].map(str::to_string);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(rows.iter()) {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            match widths.get(i) {
                Some(&w) => line.push_str(&format!("{cell:<w$}  ")),
                None => line.push_str(cell),
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn read_process(pid: i32, users: &HashMap<u32, String>) -> Option<Process> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    };
    let uid = field("Uid")
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok());
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let command = if words.is_empty() {
        format!("[{}]", field("Name").unwrap_or("?"))
    } else {
        words.join(" ")
    };
    Some(Process {
        pid,
        ns_pid: field("NSpid")
            .and_then(|v| v.split_whitespace().last())
            .and_then(|v| v.parse().ok()),
        ppid: field("PPid").and_then(|v| v.parse().ok()),
        uid,
        user: uid.and_then(|u| users.get(&u).cloned()),
        state: field("State")
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("?")
            .to_string(),
        rss_bytes: field("VmRSS")
            .and_then(|v| v.strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024),
        command,
    })
}

/// uid -> name: root, vcap (its uid is the container's user_uid), then the
/// container's /etc/passwd as its writable layer holds it (setup.sh gives
/// vcap its uid there), else as the rootfs does.
fn container_users(
    instance: &Instance,
    vcap: Option<u32>,
    rootfs: Option<&str>,
) -> HashMap<u32, String> {
    let mut users = HashMap::from([(0, "root".to_string())]);
    if let Some(uid) = vcap {
        users.insert(uid, "vcap".to_string());
    }
    let upper = instance.path.join("tmp/rootfs");
    let passwd = match read_beneath(&upper, &["etc", "passwd"]) {
        Beneath::Absent => rootfs.map_or(Beneath::Absent, |r| {
            read_beneath(Path::new(r), &["etc", "passwd"])
        }),
        other => other,
    };
    if let Beneath::Found(text) = passwd {
        for line in text.lines() {
            let mut f = line.split(':');
            if let (Some(name), _, Some(uid)) = (f.next(), f.next(), f.next()) {
                if let (false, Ok(uid)) = (name.is_empty(), uid.parse()) {
                    users.insert(uid, name.to_string());
                }
            }
        }
    }
    users
}

enum Beneath {
    Found(String),
    Absent,
    /// There, but no regular file (a whiteout, a symlink, a fifo).
    Other,
}

/// /etc/passwd is the container's, and its root may have made any part of
/// the path a symlink (to a host file) or a fifo (to hang us): each
/// component is opened on its own with O_NOFOLLOW, through the descriptor
/// of the directory before it (/proc/self/fd/N/NAME), so nothing outside
/// `base` is ever read, and the file only when it is a regular one, at most
/// 1 MiB of it.
fn read_beneath(base: &Path, components: &[&str]) -> Beneath {
    let Ok(mut dir) = File::open(base) else {
        return Beneath::Absent;
    };
    for (i, name) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let path = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
        let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        if !last {
            flags |= libc::O_DIRECTORY;
        }
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Beneath::Absent,
            Err(_) => return Beneath::Other,
        };
        if last {
            if !file.metadata().is_ok_and(|m| m.is_file()) {
                return Beneath::Other;
            }
            let mut text = String::new();
            return match file.take(1 << 20).read_to_string(&mut text) {
                Ok(_) => Beneath::Found(text),
                Err(_) => Beneath::Other,
            };
        }
        dir = file;
    }
    Beneath::Absent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_out_of_the_container_are_not_followed() {
        let dir = std::env::temp_dir().join(format!("wardenctl-ps-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a/etc")).unwrap();
        fs::write(dir.join("a/etc/passwd"), "x:x:5:5::/:/bin/sh\n").unwrap();
        assert!(matches!(
            read_beneath(&dir.join("a"), &["etc", "passwd"]),
            Beneath::Found(t) if t.starts_with("x:x:5")
        ));
        fs::create_dir_all(dir.join("b")).unwrap();
        std::os::unix::fs::symlink(dir.join("a/etc"), dir.join("b/etc")).unwrap();
        assert!(matches!(
            read_beneath(&dir.join("b"), &["etc", "passwd"]),
            Beneath::Other
        ));
        fs::create_dir_all(dir.join("c/etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("c/etc/passwd")).unwrap();
        assert!(matches!(
            read_beneath(&dir.join("c"), &["etc", "passwd"]),
            Beneath::Other
        ));
        assert!(matches!(
            read_beneath(&dir.join("d"), &["etc", "passwd"]),
            Beneath::Absent
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn our_own_process_reads_back() {
        let me = std::process::id() as i32;
        let p = read_process(me, &HashMap::new()).unwrap();
        assert_eq!(p.pid, me);
        assert_eq!(p.ns_pid, Some(me), "the test runs in the host's namespace");
        assert!(p.rss_bytes.unwrap() > 0);
        assert!(!p.command.is_empty());
        let text = to_text(&[p]);
        assert!(text.starts_with("PID"), "{text}");
        assert_eq!(text.lines().count(), 2);
    }
}
