//! Resource limits of a running container: memory and cpu through its
//! cgroups (v1 files, or their v2 equivalents), bandwidth through
//! net_rate.sh, egress rules through net.sh out. Limits are set on active
//! containers only, and every value is checked first, so a refused request
//! leaves the previous limit in force.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use crate::depot::Depot;
use crate::errors::{Error, Result};
use crate::instance::{Instance, State};
use crate::netrules::NetOut;
use crate::{oom, scripts};

/// Below this a container cannot even hold its wshd.
pub const MIN_MEMORY: u64 = 4 << 20;
/// cgroup v1 takes up to this (PAGE_COUNTER_MAX pages); more is absurd.
pub const MAX_MEMORY: u64 = 1 << 52;
/// tbf's rate is 64-bit; a terabit per second is past any link.
pub const MAX_RATE: u64 = 1_000_000_000_000;

fn instance_id(instance: &Instance) -> Result<String> {
    instance
        .config()?
        .id()
        .map(str::to_string)
        .ok_or_else(|| Error::Tool(format!("{}: etc/config holds no id", instance.handle)))
}

/// The first existing control file among the v1 and v2 candidates.
fn control_file(id: &str, v1: (&str, &str), v2: &str) -> Result<PathBuf> {
    let candidates = [
        PathBuf::from(format!("/sys/fs/cgroup/{}/instance-{id}/{}", v1.0, v1.1)),
        PathBuf::from(format!("/sys/fs/cgroup/instance-{id}/{v2}")),
    ];
    candidates
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| Error::Tool(format!("no cgroup control file {} for instance-{id}", v1.1)))
}

fn write_control(path: &PathBuf, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|e| {
        if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::EBUSY) {
            Error::BadArgument(format!("{} refused {value:?}: {e}", path.display()))
        } else {
            Error::io(format!("write {}", path.display()))(e)
        }
    })
}

fn read_control(path: &PathBuf) -> Result<String> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(Error::io(format!("read {}", path.display())))
}

/// Reading is allowed on a stopped container, setting only on an active one.
fn open_for(depot: &Depot, handle: &str, command: &'static str, set: bool) -> Result<Instance> {
    let instance = Instance::open(depot, handle)?;
    if set {
        instance.require_state(command, &[State::Active])?;
    } else {
        instance.require_state(command, &[State::Active, State::Stopped])?;
    }
    Ok(instance)
}

/// Sets (when given) and returns the memory limit in bytes. v1: the memory
/// and memory+swap limits move together (so swap never extends it); v2:
/// memory.max, with memory.swap.max 0.
pub fn memory(depot: &Depot, handle: &str, limit: Option<u64>) -> Result<String> {
    let instance = open_for(depot, handle, "limit-memory", limit.is_some())?;
    let _lock = instance.lock(false)?;
    let id = instance_id(&instance)?;
    let path = control_file(&id, ("memory", "memory.limit_in_bytes"), "memory.max")?;
    if let Some(limit) = limit {
        if !(MIN_MEMORY..=MAX_MEMORY).contains(&limit) {
            return Err(Error::BadArgument(format!(
                "memory limit {limit} out of range {MIN_MEMORY}..={MAX_MEMORY}"
            )));
        }
        let value = limit.to_string();
        let memsw = path.with_file_name("memory.memsw.limit_in_bytes");
        let swap_v2 = path.with_file_name("memory.swap.max");
        if memsw.exists() {
            // v1 keeps memory <= memsw at every moment: raising moves memsw
            // first, lowering memory first; a refusal of the second write
            // puts the first back.
            let old = read_control(&path)?;
            let old_memsw = read_control(&memsw)?;
            let raising = old.parse::<u64>().map_or(true, |old| limit >= old);
            let (first, first_old, second) = if raising {
                (&memsw, &old_memsw, &path)
            } else {
                (&path, &old, &memsw)
            };
            write_control(first, &value)?;
            if let Err(e) = write_control(second, &value) {
                let _ = fs::write(first, first_old);
                return Err(e);
            }
        } else {
            write_control(&path, &value)?;
            if swap_v2.exists() {
                write_control(&swap_v2, "0")?;
            }
        }
        fit_shm_to_memory(&instance, limit)?;
        oom::ensure_watcher(&instance)?;
    }
    read_control(&path)
}

/// /dev/shm's size under a memory limit of `limit` bytes: what the
/// container asked for, but at most half the limit (the kernel's own
/// default is half the memory). tmpfs pages are charged to the container
/// and cannot be reclaimed (there is no swap under these limits), so a
/// /dev/shm that may fill the whole limit turns a full /dev/shm into an OOM
/// kill of the container, where a full one should only fail the write.
pub fn shm_size_under(configured: u64, limit: u64) -> u64 {
    let half = limit / 2;
    if configured == 0 {
        half
    } else {
        configured.min(half)
    }
}

fn fit_shm_to_memory(instance: &Instance, limit: u64) -> Result<()> {
    let config = instance.config()?;
    let configured = config
        .get("container_shm_size")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(crate::instance::DEFAULT_SHM_SIZE);
    let Some(pid) = crate::process::read_pid(&instance.path.join("run/wshd.pid")) else {
        return Err(Error::Tool(format!(
            "{}: no run/wshd.pid to size /dev/shm by",
            instance.handle
        )));
    };
    let size = shm_size_under(configured, limit);
    // The mount's own flags are restated: a remount replaces them.
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    match crate::process::remount_in(pid, "/dev/shm", flags, &format!("size={size}")) {
        Ok(()) => {}
        // Already holding more than the new size (tmpfs refuses to shrink
        // below its use): it keeps its size.
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {}
        // The memory limit is in force either way; /dev/shm only keeps its
        // size (its mount point replaced from inside, say).
        Err(e) => eprintln!(
            "wardenctl: /dev/shm of {} keeps its size: {e}",
            instance.handle
        ),
    }
    Ok(())
}

/// Sets (when given) and returns the cpu shares (v1 cpu.shares; on v2 the
/// weight is set from shares the way runc converts them, and printed).
pub fn cpu(depot: &Depot, handle: &str, shares: Option<u64>) -> Result<String> {
    let instance = open_for(depot, handle, "limit-cpu", shares.is_some())?;
    let _lock = instance.lock(false)?;
    let id = instance_id(&instance)?;
    let path = control_file(&id, ("cpu", "cpu.shares"), "cpu.weight")?;
    let v2 = path.ends_with("cpu.weight");
    if let Some(shares) = shares {
        if !(2..=262144).contains(&shares) {
            return Err(Error::BadArgument(format!(
                "cpu shares {shares} out of range 2..=262144"
            )));
        }
        let value = if v2 {
            1 + ((shares - 2) * 9999) / 262142
        } else {
            shares
        };
        write_control(&path, &value.to_string())?;
    }
    read_control(&path)
}

/// Whether the container's cpu limit is v2's weight (else v1's shares):
/// what [`cpu`] returns.
pub fn cpu_is_weight(depot: &Depot, handle: &str) -> Result<bool> {
    let instance = Instance::open(depot, handle)?;
    let id = instance_id(&instance)?;
    Ok(control_file(&id, ("cpu", "cpu.shares"), "cpu.weight")?.ends_with("cpu.weight"))
}

/// RATE in bits per second, BURST in bytes (net_rate.sh's units).
pub fn bandwidth(depot: &Depot, handle: &str, rate: u64, burst: u64) -> Result<()> {
    let instance = open_for(depot, handle, "limit-bandwidth", true)?;
    let _lock = instance.lock(false)?;
    if !(8..=MAX_RATE).contains(&rate) {
        return Err(Error::BadArgument(format!(
            "rate {rate} bit/s out of range 8..={MAX_RATE}"
        )));
    }
    // tbf needs a bucket that holds a full-size packet, and counts it in 32 bits.
    if !(1600..=u64::from(u32::MAX)).contains(&burst) {
        return Err(Error::BadArgument(format!(
            "burst {burst} bytes out of range 1600..={}",
            u32::MAX
        )));
    }
    scripts::run(
        &instance.script("net_rate.sh"),
        &[] as &[&str],
        &[
            ("RATE".to_string(), rate.to_string()),
            ("BURST".to_string(), burst.to_string()),
        ],
    )?;
    Ok(())
}

/// tbf settings in force: `in_*` on the host veth (traffic into the
/// container), `out_*` on the ifb (traffic out of it); rates in bit/s,
/// bursts in bytes. Empty when none is set.
pub fn bandwidth_stat(instance: &Instance) -> Vec<(String, u64)> {
    let Ok(config) = instance.config() else {
        return Vec::new();
    };
    let Some(id) = config.id() else {
        return Vec::new();
    };
    let mut stat = Vec::new();
    for (dir, dev) in [("in", format!("w-{id}-0")), ("out", format!("w-{id}-2"))] {
        if !std::path::Path::new("/sys/class/net").join(&dev).exists() {
            continue;
        }
        let Ok(out) = Command::new("tc")
            .args(["-j", "qdisc", "show", "dev", &dev, "root"])
            .env("PATH", scripts::script_path_env())
            .output()
        else {
            continue;
        };
        if let Some((rate, burst)) = parse_tbf(&String::from_utf8_lossy(&out.stdout)) {
            stat.push((format!("{dir}_rate"), rate));
            stat.push((format!("{dir}_burst"), burst));
        }
    }
    stat
}

/// The root tbf of `tc -j qdisc show` (rate in bytes/s there) as bit/s and
/// bytes.
fn parse_tbf(json: &str) -> Option<(u64, u64)> {
    let qdiscs: serde_json::Value = serde_json::from_str(json).ok()?;
    qdiscs.as_array()?.iter().find_map(|q| {
        if q.get("kind")?.as_str()? != "tbf" {
            return None;
        }
        let options = q.get("options")?;
        let rate = options.get("rate")?.as_u64()?;
        let burst = options.get("burst")?.as_u64()?;
        Some((rate * 8, burst))
    })
}

/// Allows egress beyond the default rules (net.sh out).
pub fn net_out(depot: &Depot, handle: &str, rule: &NetOut) -> Result<()> {
    let instance = Instance::open(depot, handle)?;
    let _lock = instance.lock(false)?;
    instance.require_state("net-out", &[State::Active])?;
    let env = rule.env()?;
    scripts::run(&instance.script("net.sh"), &["out"], &env)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shm_takes_at_most_half_the_memory() {
        assert_eq!(shm_size_under(64 << 20, 32 << 20), 16 << 20);
        assert_eq!(shm_size_under(64 << 20, 1 << 30), 64 << 20);
        assert_eq!(shm_size_under(0, 1 << 30), 512 << 20);
    }

    #[test]
    fn tbf_is_read_from_tc_json() {
        let json = r#"[{"kind":"tbf","handle":"800d:","root":true,"refcnt":3,"options":{"rate":1000000,"burst":10000,"lat":25000}}]"#;
        assert_eq!(parse_tbf(json), Some((8_000_000, 10000)));
        assert_eq!(
            parse_tbf(r#"[{"kind":"noqueue","handle":"0:","root":true}]"#),
            None
        );
        assert_eq!(parse_tbf("garbage"), None);
    }
}
