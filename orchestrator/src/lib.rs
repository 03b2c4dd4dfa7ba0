//! wardenctl as a library: every command is a function here, so that a
//! server speaking Warden's protocol can call the same code the CLI does.
//! Containers are made and run by the setup scripts and the helper binaries,
//! run as processes; all state is on disk in the depot.
#![deny(unsafe_code)]

pub mod attach;
pub mod cgroup;
pub mod config;
pub mod container;
pub mod depot;
pub mod disk;
pub mod errors;
pub mod events;
pub mod exits;
pub mod failed;
pub mod image;
pub mod instance;
pub mod internal;
pub mod jobs;
pub mod limits;
pub mod netrules;
pub mod network;
pub mod oom;
pub mod output;
#[allow(unsafe_code)]
pub mod process;
#[allow(unsafe_code)]
pub mod profile;
pub mod ps;
pub mod report;
pub mod scripts;
pub mod stats;
pub mod units;
pub mod zygote;

pub use container::{BindMount, CreateOptions, Info, StopOptions};
pub use depot::Depot;
pub use errors::{Error, Result};
pub use instance::{Instance, State};
pub use jobs::SpawnOptions;
pub use scripts::Paths;

#[derive(Debug, Clone, Default)]
pub struct SetupOptions {
    pub pool_network: Option<network::Ipv4Net>,
    pub allow_networks: Vec<String>,
    pub deny_networks: Vec<String>,
    pub allow_host_access: bool,
    pub rootfs: Option<std::path::PathBuf>,
}

/// Once per host: the depot directory, cgroups, the global iptables chains
/// (root/setup.sh).
pub fn setup(depot: &Depot, paths: &Paths, opts: &SetupOptions) -> Result<()> {
    depot.ensure()?;
    let pool = opts
        .pool_network
        .map(|p| p.to_string())
        .unwrap_or_else(|| network::DEFAULT_POOL.to_string());
    let mut env = vec![
        ("POOL_NETWORK".to_string(), pool),
        ("ALLOW_NETWORKS".to_string(), opts.allow_networks.join(" ")),
        ("DENY_NETWORKS".to_string(), opts.deny_networks.join(" ")),
        (
            "ALLOW_HOST_ACCESS".to_string(),
            opts.allow_host_access.to_string(),
        ),
        (
            "CONTAINER_DEPOT_PATH".to_string(),
            depot.root().display().to_string(),
        ),
        ("DISK_QUOTA_ENABLED".to_string(), "false".to_string()),
    ];
    if let Some(rootfs) = &opts.rootfs {
        env.push((
            "CONTAINER_ROOTFS_PATH".to_string(),
            rootfs.display().to_string(),
        ));
    }
    scripts::run(&paths.root_script("setup.sh"), &[] as &[&str], &env)?;
    Ok(())
}
