//! Resource limits of a running container: memory and cpu through its
//! cgroups (v1 files, or their v2 equivalents), bandwidth through
//! net_rate.sh, egress rules through net.sh out.

use std::fs;
use std::path::PathBuf;

use crate::container::{Instance, State};
use crate::depot::Depot;
use crate::errors::{Error, Result};
use crate::scripts;

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

/// Sets (when given) and returns the memory limit in bytes
/// (`u64::MAX`-like values mean none).
pub fn memory(depot: &Depot, handle: &str, limit: Option<u64>) -> Result<String> {
    let instance = Instance::open(depot, handle)?;
    let _lock = instance.lock(false)?;
    instance.require_state("limit-memory", &[State::Active, State::Stopped])?;
    let id = instance_id(&instance)?;
    let path = control_file(&id, ("memory", "memory.limit_in_bytes"), "memory.max")?;
    if let Some(limit) = limit {
        // v1 refuses a limit below the memsw limit and the other way round;
        // raising memsw first (when present) keeps both in step.
        let memsw = path.with_file_name("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            let _ = fs::write(&memsw, limit.to_string());
            write_control(&path, &limit.to_string())?;
            write_control(&memsw, &limit.to_string())?;
        } else {
            write_control(&path, &limit.to_string())?;
        }
    }
    read_control(&path)
}

/// Sets (when given) and returns the cpu shares (v1 cpu.shares; on v2 the
/// weight is set from shares the way runc converts them).
pub fn cpu(depot: &Depot, handle: &str, shares: Option<u64>) -> Result<String> {
    let instance = Instance::open(depot, handle)?;
    let _lock = instance.lock(false)?;
    instance.require_state("limit-cpu", &[State::Active, State::Stopped])?;
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

/// RATE in bytes per second (as Warden's protocol), BURST in bytes.
pub fn bandwidth(depot: &Depot, handle: &str, rate: u64, burst: u64) -> Result<()> {
    let instance = Instance::open(depot, handle)?;
    let _lock = instance.lock(false)?;
    instance.require_state("limit-bandwidth", &[State::Active, State::Stopped])?;
    if rate == 0 || burst == 0 {
        return Err(Error::BadArgument("rate and burst must be positive".into()));
    }
    scripts::run(
        &instance.script("net_rate.sh"),
        &[] as &[&str],
        &[
            ("RATE".to_string(), (rate.saturating_mul(8)).to_string()),
            ("BURST".to_string(), burst.to_string()),
        ],
    )?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct NetOut {
    pub network: Option<String>,
    pub ports: Option<String>,
    pub protocol: Option<String>,
    pub icmp_type: Option<i32>,
    pub icmp_code: Option<i32>,
    pub log: bool,
}

/// Allows egress beyond the default rules (net.sh out).
pub fn net_out(depot: &Depot, handle: &str, rule: &NetOut) -> Result<()> {
    let instance = Instance::open(depot, handle)?;
    let _lock = instance.lock(false)?;
    instance.require_state("net-out", &[State::Active])?;
    if rule.network.is_none() && rule.ports.is_none() {
        return Err(Error::BadArgument(
            "net-out needs --network and/or --port".into(),
        ));
    }
    let safe = |what: &str, v: &str, extra: &[u8]| {
        if v.is_empty()
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
        {
            Err(Error::BadArgument(format!("invalid {what} {v:?}")))
        } else {
            Ok(())
        }
    };
    let mut env = Vec::new();
    if let Some(network) = &rule.network {
        safe("network", network, b"./-")?;
        env.push(("NETWORK".to_string(), network.clone()));
    }
    if let Some(ports) = &rule.ports {
        safe("port", ports, b":,")?;
        env.push(("PORTS".to_string(), ports.clone()));
    }
    if let Some(protocol) = &rule.protocol {
        if !["tcp", "udp", "icmp", "all"].contains(&protocol.as_str()) {
            return Err(Error::BadArgument(format!(
                "invalid protocol {protocol:?} (tcp, udp, icmp or all)"
            )));
        }
        env.push(("PROTOCOL".to_string(), protocol.clone()));
    }
    if let Some(t) = rule.icmp_type {
        env.push(("ICMP_TYPE".to_string(), t.to_string()));
    }
    if let Some(c) = rule.icmp_code {
        env.push(("ICMP_CODE".to_string(), c.to_string()));
    }
    if rule.log {
        env.push(("LOG".to_string(), "true".to_string()));
    }
    scripts::run(&instance.script("net.sh"), &["out"], &env)?;
    Ok(())
}
