//! The Ruby server's config file (`config/linux.yml`), read as it reads it:
//! sections `server`, `network`, `user`, `port`, `logging`, defaults for
//! whatever is left out. Keys this server does not know are reported (one
//! warning each) and otherwise ignored, so the file an existing deployment
//! has works as it is.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use orchestrator::network::Ipv4Net;
use thiserror::Error;
use yaml_rust2::{Yaml, YamlLoader};

pub const DEFAULT_CONFIG: &str = "/etc/warden/linux.yml";
pub const DEFAULT_SOCKET: &str = "/tmp/warden.sock";
/// The socket is the only access control the protocol has: by default only
/// root may connect.
pub const DEFAULT_PERMISSIONS: u32 = 0o600;
pub const DEFAULT_GRACE_TIME: u32 = 300;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not YAML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub socket: PathBuf,
    pub socket_permissions: u32,
    pub rootfs: Option<PathBuf>,
    pub depot: PathBuf,
    /// None: containers are never destroyed for lack of references.
    pub grace_time: Option<u32>,
    /// (`RLIMIT_NAME`, `"CUR MAX"`), applied to every job under the
    /// request's own.
    pub rlimits: Vec<(String, String)>,
    pub job_output_limit: Option<u64>,
    pub disk_quota_enabled: bool,
    pub allow_nested_warden: bool,
    pub pidfile: Option<PathBuf>,
    pub pool: Ipv4Net,
    pub mtu: u32,
    pub allow_networks: Vec<String>,
    pub deny_networks: Vec<String>,
    pub allow_host_access: bool,
    pub dns_servers: Vec<Ipv4Addr>,
    pub uid_pool: std::ops::Range<u32>,
    pub port_pool: std::ops::RangeInclusive<u16>,
    pub log_level: String,
    pub log_file: Option<PathBuf>,
    /// One line per key that was ignored.
    pub warnings: Vec<String>,
}

/// Keys each section knows; anything else gets a warning.
const SERVER_KEYS: &[&str] = &[
    "unix_domain_path",
    "unix_domain_permissions",
    "container_rootfs_path",
    "container_depot_path",
    "container_grace_time",
    "container_rlimits",
    "job_output_limit",
    "quota",
    "allow_nested_warden",
    "pidfile",
    "container_klass",
    "container_limits_conf",
];
/// The Ruby server's container class: this server has one, so any value
/// is accepted without a word.
const QUIET_KEYS: &[&str] = &["container_klass"];
/// Known to the Ruby server, without effect here: each gets a warning
/// saying what to use instead.
const KEYS_WITHOUT_EFFECT: &[(&str, &str)] = &[(
    "container_limits_conf",
    "limits.conf is not applied; use server.container_rlimits",
)];
const NETWORK_KEYS: &[&str] = &[
    "pool_start_address",
    "pool_size",
    "mtu",
    "allow_networks",
    "deny_networks",
    "allow_host_access",
    "dns_servers",
];
const USER_KEYS: &[&str] = &["pool_start_uid", "pool_size"];
const PORT_KEYS: &[&str] = &["pool_start_port", "pool_size"];
const LOGGING_KEYS: &[&str] = &["level", "file", "syslog"];
const SECTIONS: &[&str] = &["server", "network", "user", "port", "logging"];

impl Config {
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let docs = YamlLoader::load_from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let empty = Yaml::Hash(Default::default());
        let root = docs.first().unwrap_or(&empty);
        let root = match root {
            Yaml::Null => &empty,
            Yaml::Hash(_) => root,
            _ => {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: "(top level)".into(),
                    message: "want a mapping of sections".into(),
                })
            }
        };
        let mut reader = Reader {
            path,
            warnings: Vec::new(),
        };
        reader.check_keys("", root, SECTIONS)?;
        let server = reader.section(root, "server", SERVER_KEYS)?;
        let network = reader.section(root, "network", NETWORK_KEYS)?;
        let user = reader.section(root, "user", USER_KEYS)?;
        let port = reader.section(root, "port", PORT_KEYS)?;
        let logging = reader.section(root, "logging", LOGGING_KEYS)?;
        let quota = match server.get("quota") {
            Some(q @ Yaml::Hash(_)) => {
                reader.check_keys("server.quota", q, &["disk_quota_enabled"])?;
                reader.bool(q, "server.quota.disk_quota_enabled")?
            }
            Some(Yaml::Null) | None => None,
            Some(_) => return Err(reader.invalid("server.quota", "want a mapping")),
        };

        let pool_start: Ipv4Addr = match reader.string(&network, "network.pool_start_address")? {
            Some(text) => text.parse().map_err(|_| {
                reader.invalid(
                    "network.pool_start_address",
                    &format!("{text:?} is not an IPv4 address"),
                )
            })?,
            None => Ipv4Addr::new(10, 254, 0, 0),
        };
        let pool_size = reader.uint(&network, "network.pool_size")?.unwrap_or(256);
        let pool = pool_network(pool_start, pool_size)
            .map_err(|why| reader.invalid("network.pool_size", &why))?;

        let uid_start = reader.uint(&user, "user.pool_start_uid")?.unwrap_or(10000);
        let uid_size = reader.uint(&user, "user.pool_size")?.unwrap_or(65536);
        let uid_end = uid_start
            .checked_add(uid_size)
            .filter(|end| *end <= u64::from(u32::MAX) && uid_start > 0 && uid_size > 0)
            .ok_or_else(|| reader.invalid("user.pool_size", "the uid pool is out of range"))?;
        let port_start = reader.uint(&port, "port.pool_start_port")?.unwrap_or(61001);
        let port_size = reader.uint(&port, "port.pool_size")?.unwrap_or(4000);
        let port_last = port_start
            .checked_add(port_size.saturating_sub(1))
            .filter(|last| *last <= 65535 && port_start >= 1024 && port_size > 0)
            .ok_or_else(|| {
                reader.invalid("port.pool_size", "the port pool must lie in 1024..=65535")
            })?;

        let grace_time = match server.get("container_grace_time") {
            None => Some(DEFAULT_GRACE_TIME),
            Some(Yaml::Null) => None,
            Some(_) => reader.uint32(&server, "server.container_grace_time")?,
        };
        let permissions = match server.get("unix_domain_permissions") {
            None | Some(Yaml::Null) => DEFAULT_PERMISSIONS,
            Some(value) => permissions(value).ok_or_else(|| {
                reader.invalid(
                    "server.unix_domain_permissions",
                    "want an octal mode such as 0600",
                )
            })?,
        };
        let rlimits = match server.get("container_rlimits") {
            None | Some(Yaml::Null) => Vec::new(),
            Some(Yaml::Hash(map)) => {
                let mut out = BTreeMap::new();
                for (k, v) in map {
                    let name = k.as_str().unwrap_or_default();
                    let value = match v {
                        Yaml::Integer(n) if *n >= 0 => n.to_string(),
                        Yaml::String(s) => s.clone(),
                        _ => {
                            return Err(reader.invalid(
                                &format!("server.container_rlimits.{name}"),
                                "want a number or \"unlimited\"",
                            ))
                        }
                    };
                    let (key, value) = orchestrator::jobs::parse_rlimit(&format!("{name}={value}"))
                        .map_err(|e| {
                            reader.invalid(
                                &format!("server.container_rlimits.{name}"),
                                &e.to_string(),
                            )
                        })?;
                    out.insert(key, value);
                }
                out.into_iter().collect()
            }
            Some(_) => return Err(reader.invalid("server.container_rlimits", "want a mapping")),
        };
        let dns_servers = reader
            .strings(&network, "network.dns_servers")?
            .into_iter()
            .map(|s| {
                s.parse::<Ipv4Addr>().map_err(|_| {
                    reader.invalid(
                        "network.dns_servers",
                        &format!("{s:?} is not an IPv4 address"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mtu = reader.uint32(&network, "network.mtu")?.unwrap_or(1500);
        if !(576..=65535).contains(&mtu) {
            return Err(reader.invalid("network.mtu", "want 576..=65535"));
        }

        let config = Config {
            socket: reader
                .string(&server, "server.unix_domain_path")?
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            socket_permissions: permissions,
            rootfs: reader
                .string(&server, "server.container_rootfs_path")?
                .map(from_here),
            depot: reader
                .string(&server, "server.container_depot_path")?
                .map(from_here)
                .unwrap_or_else(|| PathBuf::from(orchestrator::depot::DEFAULT_DEPOT)),
            grace_time,
            rlimits,
            job_output_limit: reader.uint(&server, "server.job_output_limit")?,
            disk_quota_enabled: quota.unwrap_or(false),
            allow_nested_warden: reader
                .bool(&server, "server.allow_nested_warden")?
                .unwrap_or(false),
            pidfile: reader.string(&server, "server.pidfile")?.map(from_here),
            pool,
            mtu,
            allow_networks: reader.strings(&network, "network.allow_networks")?,
            deny_networks: reader.strings(&network, "network.deny_networks")?,
            allow_host_access: reader
                .bool(&network, "network.allow_host_access")?
                .unwrap_or(false),
            dns_servers,
            uid_pool: uid_start as u32..uid_end as u32,
            port_pool: port_start as u16..=port_last as u16,
            log_level: reader
                .string(&logging, "logging.level")?
                .unwrap_or_else(|| "info".into()),
            log_file: reader.string(&logging, "logging.file")?.map(PathBuf::from),
            warnings: reader.warnings,
        };
        Ok(config)
    }

    /// Whether the socket lets users other than its owner connect.
    pub fn socket_open_to_others(&self) -> bool {
        self.socket_permissions & 0o077 != 0
    }
}

/// The CIDR of `size` /30 networks from `start`: Warden counts its pool in
/// /30s; the orchestrator takes an aligned network.
pub fn pool_network(start: Ipv4Addr, size: u64) -> Result<Ipv4Net, String> {
    if size == 0 || !size.is_power_of_two() || size > 1 << 22 {
        return Err(format!(
            "{size} networks: want a power of two (the pool is one aligned network)"
        ));
    }
    let prefix = 32 - (size * 4).trailing_zeros() as u8;
    let net = Ipv4Net::new(start, prefix).map_err(|e| e.to_string())?;
    if net.addr() != start {
        return Err(format!(
            "pool_start_address {start} is not aligned to a /{prefix} (use {})",
            net.addr()
        ));
    }
    Ok(net)
}

/// Ruby reads `0777` as octal; a YAML 1.2 reader sees 777. Either way the
/// digits are the mode's octal digits. A string ("0600", "0o600") is read
/// the same way.
fn permissions(value: &Yaml) -> Option<u32> {
    let digits = match value {
        Yaml::Integer(n) if *n >= 0 => n.to_string(),
        Yaml::String(s) => s.trim_start_matches("0o").to_string(),
        _ => return None,
    };
    let mode = u32::from_str_radix(&digits, 8).ok()?;
    (mode <= 0o777).then_some(mode)
}

struct Reader<'a> {
    path: &'a Path,
    warnings: Vec<String>,
}

type Section = BTreeMap<String, Yaml>;

impl Reader<'_> {
    fn invalid(&self, key: &str, message: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    fn check_keys(&mut self, prefix: &str, node: &Yaml, known: &[&str]) -> Result<(), ConfigError> {
        let Yaml::Hash(map) = node else {
            return Ok(());
        };
        for key in map.keys() {
            let name = match key {
                Yaml::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            let full = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if !known.contains(&name.as_str()) {
                self.warnings.push(format!(
                    "{}: unknown key {full} ignored",
                    self.path.display()
                ));
            } else if prefix == "server" && !QUIET_KEYS.contains(&name.as_str()) {
                if let Some((_, why)) = KEYS_WITHOUT_EFFECT.iter().find(|(k, _)| *k == name) {
                    self.warnings.push(format!(
                        "{}: {full} has no effect: {why}",
                        self.path.display()
                    ));
                }
            }
        }
        Ok(())
    }

    fn section(&mut self, root: &Yaml, name: &str, known: &[&str]) -> Result<Section, ConfigError> {
        let node = &root[name];
        match node {
            Yaml::BadValue | Yaml::Null => Ok(Section::new()),
            Yaml::Hash(map) => {
                self.check_keys(name, node, known)?;
                Ok(map
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                    .collect())
            }
            _ => Err(self.invalid(name, "want a mapping")),
        }
    }

    fn leaf<'s>(section: &'s Section, key: &str) -> Option<&'s Yaml> {
        let name = key.rsplit('.').next().unwrap_or(key);
        section.get(name).filter(|v| !matches!(v, Yaml::Null))
    }

    fn string(&self, section: &Section, key: &str) -> Result<Option<String>, ConfigError> {
        match Self::leaf(section, key) {
            None => Ok(None),
            Some(Yaml::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.invalid(key, "want a string")),
        }
    }

    fn uint(&self, section: &Section, key: &str) -> Result<Option<u64>, ConfigError> {
        match Self::leaf(section, key) {
            None => Ok(None),
            Some(Yaml::Integer(n)) if *n >= 0 => Ok(Some(*n as u64)),
            Some(_) => Err(self.invalid(key, "want a non-negative integer")),
        }
    }

    fn uint32(&self, section: &Section, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.uint(section, key)? {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| self.invalid(key, "too large")),
        }
    }

    fn bool(&self, node: &impl BoolSource, key: &str) -> Result<Option<bool>, ConfigError> {
        match node.value(key) {
            None => Ok(None),
            Some(Yaml::Boolean(b)) => Ok(Some(*b)),
            Some(_) => Err(self.invalid(key, "want true or false")),
        }
    }

    fn strings(&self, section: &Section, key: &str) -> Result<Vec<String>, ConfigError> {
        match Self::leaf(section, key) {
            None => Ok(Vec::new()),
            Some(Yaml::Array(items)) => items
                .iter()
                .filter(|i| !matches!(i, Yaml::Null))
                .map(|i| match i {
                    Yaml::String(s) => Ok(s.clone()),
                    _ => Err(self.invalid(key, "want a list of strings")),
                })
                .collect(),
            Some(Yaml::String(s)) => Ok(vec![s.clone()]),
            Some(_) => Err(self.invalid(key, "want a list of strings")),
        }
    }
}

/// Where a boolean may be looked up: a section, or a nested mapping.
trait BoolSource {
    fn value(&self, key: &str) -> Option<&Yaml>;
}

impl BoolSource for Section {
    fn value(&self, key: &str) -> Option<&Yaml> {
        Reader::leaf(self, key)
    }
}

impl BoolSource for Yaml {
    fn value(&self, key: &str) -> Option<&Yaml> {
        let name = key.rsplit('.').next().unwrap_or(key);
        match &self[name] {
            Yaml::BadValue | Yaml::Null => None,
            v => Some(v),
        }
    }
}

/// A path of the config as wardend's working directory sees it, made
/// absolute: the scripts that get it run in directories of their own.
fn from_here(path: String) -> PathBuf {
    let path = PathBuf::from(path);
    std::path::absolute(&path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.yml"))
    }

    #[test]
    fn the_ruby_servers_sample_reads() {
        let config = parse(
            "---\nserver:\n  container_klass: Warden::Container::Linux\n  container_grace_time: 300\n  unix_domain_permissions: 0777\n  container_rootfs_path: /tmp/warden/rootfs\n  container_depot_path: /tmp/warden/containers\n  container_limits_conf:\n    nofile: 8192\n  quota:\n    disk_quota_enabled: true\nlogging:\n  level: debug2\nnetwork:\n  pool_start_address: 10.254.0.0\n  pool_size: 256\nuser:\n  pool_start_uid: 10000\n  pool_size: 256\n",
        )
        .unwrap();
        assert_eq!(config.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(config.socket_permissions, 0o777);
        assert!(config.socket_open_to_others());
        assert_eq!(config.grace_time, Some(300));
        assert_eq!(config.depot, PathBuf::from("/tmp/warden/containers"));
        assert_eq!(config.pool.to_string(), "10.254.0.0/22");
        assert_eq!(config.uid_pool, 10000..10256);
        assert!(config.disk_quota_enabled);
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(config.warnings[0].contains("server.container_limits_conf"));
    }

    #[test]
    fn the_example_config_reads_without_a_warning() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/linux.yml");
        let config = Config::read(&path).unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert_eq!(config.socket_permissions, 0o600);
        // Relative in the file, taken from the working directory (the
        // scripts that get it run elsewhere).
        let here = std::env::current_dir().unwrap();
        assert_eq!(config.rootfs, Some(here.join("target/rootfs/busybox")));
        assert_eq!(config.pool.to_string(), "10.254.0.0/22");
        assert_eq!(config.rlimits.len(), 2);
    }

    #[test]
    fn defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.socket_permissions, 0o600);
        assert!(!config.socket_open_to_others());
        assert_eq!(config.grace_time, Some(DEFAULT_GRACE_TIME));
        assert_eq!(config.port_pool, 61001..=65000);
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn values() {
        let config = parse(
            "server:\n  container_grace_time: ~\n  unix_domain_permissions: \"0660\"\n  container_rlimits:\n    nofile: 1024\n    core: unlimited\n  job_output_limit: 100\n  allow_nested_warden: true\nnetwork:\n  pool_start_address: 10.1.0.0\n  pool_size: 64\n  mtu: 1400\n  deny_networks: [0.0.0.0/0]\n  allow_networks: [10.0.0.0/8, ~]\n  dns_servers: [8.8.8.8]\n  allow_host_access: true\nport:\n  pool_start_port: 20000\n  pool_size: 10\nbogus: 1\n",
        )
        .unwrap();
        assert_eq!(config.grace_time, None);
        assert_eq!(config.socket_permissions, 0o660);
        assert_eq!(
            config.rlimits,
            vec![
                (
                    "RLIMIT_CORE".to_string(),
                    format!("{} {}", u64::MAX, u64::MAX)
                ),
                ("RLIMIT_NOFILE".to_string(), "1024 1024".to_string()),
            ]
        );
        assert_eq!(config.job_output_limit, Some(100));
        assert!(config.allow_nested_warden);
        assert_eq!(config.pool.to_string(), "10.1.0.0/24");
        assert_eq!(config.mtu, 1400);
        assert_eq!(config.allow_networks, vec!["10.0.0.0/8".to_string()]);
        assert_eq!(config.dns_servers, vec![Ipv4Addr::new(8, 8, 8, 8)]);
        assert!(config.allow_host_access);
        assert_eq!(config.port_pool, 20000..=20009);
        assert_eq!(
            config.warnings,
            vec!["test.yml: unknown key bogus ignored".to_string()]
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("server: [1]", "server"),
            (
                "server:\n  unix_domain_permissions: 0999\n",
                "server.unix_domain_permissions",
            ),
            (
                "server:\n  container_grace_time: soon\n",
                "server.container_grace_time",
            ),
            ("network:\n  pool_size: 100\n", "network.pool_size"),
            (
                "network:\n  pool_start_address: 10.0.0.4\n",
                "network.pool_size",
            ),
            (
                "network:\n  pool_start_address: nope\n",
                "network.pool_start_address",
            ),
            (
                "server:\n  container_rlimits:\n    bogus: 1\n",
                "server.container_rlimits.bogus",
            ),
            ("port:\n  pool_start_port: 80\n", "port.pool_size"),
            (
                "server:\n  allow_nested_warden: 3\n",
                "server.allow_nested_warden",
            ),
        ] {
            match parse(text) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(parse("a: [b"), Err(ConfigError::Syntax { .. })));
    }
}
