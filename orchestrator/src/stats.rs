//! `wardenctl stats H`: what a container uses, read from its cgroups (v1 or
//! v2, [`crate::cgroup`]), its writable layer ([`crate::disk::stat`]) and its
//! host-side veth's counters; and the limits in force, which `info` shows.
//! A value the host cannot tell (no such controller, no device) is none:
//! `null` in JSON, `-` in text; a limit that is none means no limit.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::cgroup::{self, keyed, read_keyed, read_u64, v1_limit, Groups};
use crate::depot::Depot;
use crate::disk;
use crate::errors::{Error, Result};
use crate::events::rfc3339;
use crate::instance::Instance;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    pub usage_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// Page cache (v1 total_cache, v2 file).
    pub cache_bytes: Option<u64>,
    /// Anonymous memory (v1 total_rss, v2 anon).
    pub rss_bytes: Option<u64>,
    pub oom_kills: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpu {
    pub usage_ns: Option<u64>,
    pub user_ns: Option<u64>,
    pub system_ns: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pids {
    pub current: Option<u64>,
    pub max: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disk {
    pub bytes_used: u64,
    pub inodes_used: u64,
    pub byte_limit: Option<u64>,
    pub inode_limit: Option<u64>,
}

/// The container's traffic as the container sees it: rx is what it
/// received, i.e. what the host veth sent (its tx counters), and so on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// The host-side veth the counters are read from.
    pub interface: String,
    pub rx_bytes: Option<u64>,
    pub rx_packets: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub tx_packets: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub time: String,
    pub handle: String,
    pub id: String,
    pub state: String,
    /// "v1" or "v2".
    pub cgroup: &'static str,
    pub memory: Memory,
    pub cpu: Cpu,
    pub pids: Pids,
    pub disk: Disk,
    pub network: Network,
}

impl Stats {
    pub fn to_json(&self) -> Value {
        let (m, c, p, d, n) = (
            &self.memory,
            &self.cpu,
            &self.pids,
            &self.disk,
            &self.network,
        );
        json!({
            "time": self.time,
            "handle": self.handle,
            "id": self.id,
            "state": self.state,
            "cgroup": self.cgroup,
            "memory": {
                "usage_bytes": m.usage_bytes,
                "limit_bytes": m.limit_bytes,
                "cache_bytes": m.cache_bytes,
                "rss_bytes": m.rss_bytes,
                "oom_kills": m.oom_kills,
            },
            "cpu": {
                "usage_ns": c.usage_ns,
                "user_ns": c.user_ns,
                "system_ns": c.system_ns,
            },
            "pids": { "current": p.current, "max": p.max },
            "disk": {
                "bytes_used": d.bytes_used,
                "inodes_used": d.inodes_used,
                "byte_limit": d.byte_limit,
                "inode_limit": d.inode_limit,
            },
            "network": {
                "interface": n.interface,
                "rx_bytes": n.rx_bytes,
                "rx_packets": n.rx_packets,
                "tx_bytes": n.tx_bytes,
                "tx_packets": n.tx_packets,
            },
        })
    }

    pub fn to_text(&self) -> String {
        let (m, c, p, d, n) = (
            &self.memory,
            &self.cpu,
            &self.pids,
            &self.disk,
            &self.network,
        );
        format!(
            "time: {}\nhandle: {}\nstate: {}\ncgroup: {}\n\
             memory: usage_bytes={} limit_bytes={} cache_bytes={} rss_bytes={} oom_kills={}\n\
             cpu: usage_ns={} user_ns={} system_ns={}\n\
             pids: current={} max={}\n\
             disk: bytes_used={} inodes_used={} byte_limit={} inode_limit={}\n\
             network: interface={} rx_bytes={} rx_packets={} tx_bytes={} tx_packets={}\n",
            self.time,
            self.handle,
            self.state,
            self.cgroup,
            text(m.usage_bytes),
            limit_text(m.limit_bytes),
            text(m.cache_bytes),
            text(m.rss_bytes),
            text(m.oom_kills),
            text(c.usage_ns),
            text(c.user_ns),
            text(c.system_ns),
            text(p.current),
            limit_text(p.max),
            d.bytes_used,
            d.inodes_used,
            limit_text(d.byte_limit),
            limit_text(d.inode_limit),
            n.interface,
            text(n.rx_bytes),
            text(n.rx_packets),
            text(n.tx_bytes),
            text(n.tx_packets),
        )
    }
}

fn text(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn limit_text(v: Option<u64>) -> String {
    v.map_or_else(|| "none".to_string(), |v| v.to_string())
}

fn id_of(instance: &Instance) -> Result<String> {
    instance
        .config()?
        .id()
        .map(str::to_string)
        .ok_or_else(|| Error::Tool(format!("{}: etc/config holds no id", instance.handle)))
}

/// One sample of the container's use.
pub fn sample(instance: &Instance) -> Result<Stats> {
    let id = id_of(instance)?;
    let groups = Groups::of(&id);
    let disk_limits = disk::DiskLimits::read(instance);
    let used = disk::stat(instance);
    Ok(Stats {
        time: rfc3339(SystemTime::now()),
        handle: instance.handle.clone(),
        state: instance.state().to_string(),
        cgroup: if groups.is_v2() { "v2" } else { "v1" },
        memory: memory(&groups),
        cpu: cpu(&groups),
        pids: pids(&groups),
        disk: Disk {
            bytes_used: used.bytes_used,
            inodes_used: used.inodes_used,
            byte_limit: nonzero(disk_limits.byte_hard),
            inode_limit: nonzero(disk_limits.inode_hard),
        },
        network: network(&format!("w-{id}-0")),
        id,
    })
}

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

fn memory(g: &Groups) -> Memory {
    let file = |v1: &str, v2: &str| g.file("memory", v1, v2);
    let stat = read_keyed(file("memory.stat", "memory.stat").as_deref());
    if g.is_v2() {
        Memory {
            usage_bytes: read_u64(file("", "memory.current").as_deref()),
            limit_bytes: read_u64(file("", "memory.max").as_deref()),
            cache_bytes: keyed(&stat, "file"),
            rss_bytes: keyed(&stat, "anon"),
            oom_kills: keyed(
                &read_keyed(file("", "memory.events").as_deref()),
                "oom_kill",
            ),
        }
    } else {
        let oom = read_keyed(file("memory.oom_control", "").as_deref());
        Memory {
            usage_bytes: read_u64(file("memory.usage_in_bytes", "").as_deref()),
            limit_bytes: v1_limit(read_u64(file("memory.limit_in_bytes", "").as_deref())),
            cache_bytes: keyed(&stat, "total_cache").or_else(|| keyed(&stat, "cache")),
            rss_bytes: keyed(&stat, "total_rss").or_else(|| keyed(&stat, "rss")),
            // Kernels before 4.13 have no oom_kill line.
            oom_kills: keyed(&oom, "oom_kill"),
        }
    }
}

fn cpu(g: &Groups) -> Cpu {
    if g.is_v2() {
        let stat = read_keyed(g.file("", "", "cpu.stat").as_deref());
        let ns = |key: &str| keyed(&stat, key).map(|us| us * 1000);
        return Cpu {
            usage_ns: ns("usage_usec"),
            user_ns: ns("user_usec"),
            system_ns: ns("system_usec"),
        };
    }
    // cpuacct.stat counts USER_HZ ticks.
    let tick_ns = match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => 1_000_000_000 / hz as u64,
        _ => 10_000_000,
    };
    let stat = read_keyed(g.file("cpuacct", "cpuacct.stat", "").as_deref());
    Cpu {
        usage_ns: read_u64(g.file("cpuacct", "cpuacct.usage", "").as_deref()),
        user_ns: keyed(&stat, "user").map(|t| t * tick_ns),
        system_ns: keyed(&stat, "system").map(|t| t * tick_ns),
    }
}

fn pids(g: &Groups) -> Pids {
    Pids {
        current: read_u64(g.file("pids", "pids.current", "pids.current").as_deref()),
        max: read_u64(g.file("pids", "pids.max", "pids.max").as_deref()),
    }
}

fn network(dev: &str) -> Network {
    let counter = |name: &str| {
        let path = Path::new("/sys/class/net")
            .join(dev)
            .join("statistics")
            .join(name);
        cgroup::read_u64(Some(&path))
    };
    Network {
        interface: dev.to_string(),
        rx_bytes: counter("tx_bytes"),
        rx_packets: counter("tx_packets"),
        tx_bytes: counter("rx_bytes"),
        tx_packets: counter("rx_packets"),
    }
}

/// Hands samples to `sink`: one, or with `follow` one a second until the
/// container is destroyed (or the sink fails: its reader went away).
pub fn show(
    depot: &Depot,
    handle: &str,
    follow: bool,
    mut sink: impl FnMut(&Stats) -> std::io::Result<()>,
) -> Result<()> {
    let instance = Instance::open(depot, handle)?;
    let identity = instance.dir_identity();
    loop {
        let started = Instant::now();
        let stats = match sample(&instance) {
            Ok(s) => s,
            // Destroyed between two samples.
            Err(_) if follow && instance.dir_identity() != identity => return Ok(()),
            Err(e) => return Err(e),
        };
        sink(&stats).map_err(Error::io("write the stats"))?;
        if !follow {
            return Ok(());
        }
        // The next sample a second after this one began; a destroy ends
        // the wait within a tenth of it.
        while started.elapsed() < Duration::from_secs(1) {
            if instance.dir_identity() != identity {
                return Ok(());
            }
            std::thread::sleep(
                Duration::from_millis(100)
                    .min(Duration::from_secs(1).saturating_sub(started.elapsed())),
            );
        }
    }
}

/// The limits in force on a container; none means no limit (or, for the
/// cpu entries, not this cgroup version: shares on v1, weight on v2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub cpu_weight: Option<u64>,
    pub pids_max: Option<u64>,
    pub disk_bytes: Option<u64>,
    pub disk_inodes: Option<u64>,
    /// bit/s and bytes (limit-bandwidth; both directions get the same).
    pub bandwidth_rate: Option<u64>,
    pub bandwidth_burst: Option<u64>,
    /// A job's output on the host (job_output_limit).
    pub job_output_bytes: Option<u64>,
}

impl Limits {
    /// The limits of `instance`; the bandwidth ones from `bandwidth_stat`
    /// (`in_rate`, `in_burst`), which `tc` has to be asked for.
    pub fn read(instance: &Instance, bandwidth_stat: &[(String, u64)]) -> Limits {
        let config = instance.config().unwrap_or_default();
        let groups = config.id().map(Groups::of);
        let file = |c: &str, v1: &str, v2: &str| groups.as_ref().and_then(|g| g.file(c, v1, v2));
        let v2 = groups.as_ref().is_some_and(Groups::is_v2);
        let memory = read_u64(file("memory", "memory.limit_in_bytes", "memory.max").as_deref());
        let disk = disk::DiskLimits::read(instance);
        let bw = |key: &str| keyed(bandwidth_stat, key);
        Limits {
            memory_bytes: if v2 { memory } else { v1_limit(memory) },
            cpu_shares: if v2 {
                None
            } else {
                read_u64(file("cpu", "cpu.shares", "").as_deref())
            },
            cpu_weight: if v2 {
                read_u64(file("", "", "cpu.weight").as_deref())
            } else {
                None
            },
            pids_max: read_u64(file("pids", "pids.max", "pids.max").as_deref()),
            disk_bytes: nonzero(disk.byte_hard),
            disk_inodes: nonzero(disk.inode_hard),
            bandwidth_rate: bw("in_rate"),
            bandwidth_burst: bw("in_burst"),
            job_output_bytes: config
                .get("job_output_limit")
                .and_then(|v| v.trim().parse().ok())
                .and_then(nonzero),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "memory_bytes": self.memory_bytes,
            "cpu_shares": self.cpu_shares,
            "cpu_weight": self.cpu_weight,
            "pids_max": self.pids_max,
            "disk_bytes": self.disk_bytes,
            "disk_inodes": self.disk_inodes,
            "bandwidth_rate": self.bandwidth_rate,
            "bandwidth_burst": self.bandwidth_burst,
            "job_output_bytes": self.job_output_bytes,
        })
    }

    /// `key=value ...`, `none` for no limit; the cpu entry of the other
    /// cgroup version is left out.
    pub fn to_text(&self) -> String {
        let mut parts = vec![format!("memory_bytes={}", limit_text(self.memory_bytes))];
        if let Some(shares) = self.cpu_shares {
            parts.push(format!("cpu_shares={shares}"));
        }
        if let Some(weight) = self.cpu_weight {
            parts.push(format!("cpu_weight={weight}"));
        }
        for (k, v) in [
            ("pids_max", self.pids_max),
            ("disk_bytes", self.disk_bytes),
            ("disk_inodes", self.disk_inodes),
            ("bandwidth_rate", self.bandwidth_rate),
            ("bandwidth_burst", self.bandwidth_burst),
            ("job_output_bytes", self.job_output_bytes),
        ] {
            parts.push(format!("{k}={}", limit_text(v)));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_read_as_none_or_dash() {
        let l = Limits {
            memory_bytes: Some(50 << 20),
            cpu_shares: Some(1024),
            ..Default::default()
        };
        let t = l.to_text();
        assert!(
            t.starts_with("memory_bytes=52428800 cpu_shares=1024 pids_max=none"),
            "{t}"
        );
        assert!(!t.contains("cpu_weight"), "{t}");
        assert_eq!(l.to_json()["cpu_weight"], Value::Null);
        assert_eq!(text(None), "-");
    }

    #[test]
    fn a_missing_device_has_no_counters() {
        let n = network("w-no-such-device-0");
        assert_eq!(n.rx_bytes, None);
        assert_eq!(n.interface, "w-no-such-device-0");
    }
}
