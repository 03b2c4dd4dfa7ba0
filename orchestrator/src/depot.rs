//! The depot: one directory per container, named by its handle, and the
//! pools (ids, networks, uids, host ports) rebuilt from those directories on
//! every allocation, under an flock on `DEPOT/.lock`. Nothing is kept in
//! memory between invocations, so any number of wardenctl processes can run
//! at once, and one killed at any point leaves a state the next one reads.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::net::Ipv4Addr;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::config::Config;
use crate::errors::{Error, Result};
use crate::network::{self, Ipv4Net};

pub const DEFAULT_DEPOT: &str = "/var/lib/warden";
pub const UID_BASE: u32 = 10000;
pub const UID_COUNT: u32 = 65536;
pub const PORT_BASE: u16 = 61001;
pub const PORT_LAST: u16 = 65000;
/// Interface names are `w-<id>-N`, at most 15 bytes (IFNAMSIZ - 1).
pub const ID_LEN: usize = 11;

#[derive(Debug, Clone)]
pub struct Depot {
    root: PathBuf,
    uids: Range<u32>,
    ports: RangeInclusive<u16>,
}

/// Held while allocating; released on drop (or when the process dies and
/// no script it handed the lock to still runs).
pub struct DepotLock {
    lock: Flock<File>,
}

impl DepotLock {
    /// A descriptor of the same lock without close-on-exec, for a script
    /// that must hold the lock even if wardenctl is killed while it runs
    /// (create.sh: until its etc/config exists, the container's network
    /// and uid are known nowhere else). flock belongs to the open file, so
    /// the lock lasts until every process holding it has exited. Drop it
    /// right after the spawn: only that script may inherit it.
    pub fn inheritable(&self) -> Result<File> {
        const CONTEXT: &str = "duplicate the depot lock for a script";
        let copy = self.lock.try_clone().map_err(Error::io(CONTEXT))?;
        nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&copy),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(|errno| Error::io(CONTEXT)(errno.into()))?;
        Ok(copy)
    }
}

impl Depot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Depot {
            root: root.into(),
            uids: UID_BASE..UID_BASE + UID_COUNT,
            ports: PORT_BASE..=PORT_LAST,
        }
    }

    /// The same depot with other uid and host port pools (a Warden config's
    /// user.pool_* and port pool); containers already holding ids outside
    /// them keep them.
    pub fn with_pools(mut self, uids: Range<u32>, ports: RangeInclusive<u16>) -> Self {
        self.uids = uids;
        self.ports = ports;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes the depot, mode 0700 whatever the umask (an existing one is
    /// made so too): container root plants setuid files in the writable
    /// layers below it, on a filesystem without nosuid, and job output lives
    /// there; no other host user may so much as look up a name in it.
    pub fn ensure(&self) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(&self.root)
            .map_err(Error::io(format!("create depot {}", self.root.display())))?;
        let mode = fs::metadata(&self.root)
            .map_err(Error::io(format!("stat depot {}", self.root.display())))?
            .permissions()
            .mode()
            & 0o7777;
        if mode == 0o700 {
            return Ok(());
        }
        // A shared directory (/tmp, say) is no depot: closing it would lock
        // everyone else out.
        if mode & 0o1000 != 0 {
            return Err(Error::BadArgument(format!(
                "depot {} is a shared directory (sticky bit): give the depot a directory of its own",
                self.root.display()
            )));
        }
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .map_err(Error::io(format!("chmod depot {}", self.root.display())))
    }

    pub fn lock(&self) -> Result<DepotLock> {
        self.ensure()?;
        let path = self.root.join(".lock");
        let file = open_lock_file(&path)?;
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| Error::Io {
            context: format!("flock {}", path.display()),
            source: errno.into(),
        })?;
        Ok(DepotLock { lock })
    }

    pub fn instance_path(&self, handle: &str) -> PathBuf {
        self.root.join(handle)
    }

    /// The path of an existing container, or UnknownHandle.
    pub fn existing(&self, handle: &str) -> Result<PathBuf> {
        validate_handle(handle).map_err(|_| Error::UnknownHandle(handle.to_string()))?;
        let path = self.instance_path(handle);
        if path.is_dir() {
            Ok(path)
        } else {
            Err(Error::UnknownHandle(handle.to_string()))
        }
    }

    /// Every container directory, by handle, sorted. Names starting with a
    /// dot are the depot's own files.
    pub fn handles(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("read {}", self.root.display()))(e)),
        };
        let mut handles = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io(format!("read {}", self.root.display())))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            handles.push(name);
        }
        handles.sort();
        Ok(handles)
    }

    /// What the containers of this depot hold, read from their etc/config
    /// (and etc/ports for forwarded host ports).
    pub fn allocated(&self) -> Result<Allocated> {
        let mut taken = Allocated {
            uid_pool: self.uids.clone(),
            port_pool: self.ports.clone(),
            ..Allocated::default()
        };
        for handle in self.handles()? {
            let dir = self.instance_path(&handle);
            taken.ids.insert(handle.clone());
            if let Ok(config) = Config::read(&dir.join("etc/config")) {
                if let Some(id) = config.id() {
                    taken.ids.insert(id.to_string());
                }
                if let Some(ip) = config.host_ip() {
                    taken.networks.insert(Ipv4Net::container_network_of(ip));
                }
                if let Some(uid) = config.user_uid() {
                    taken.uids.insert(uid);
                }
            }
            if let Ok(ports) = fs::read_to_string(dir.join("etc/ports")) {
                for line in ports.lines() {
                    if let Some(port) = line.split_whitespace().next().and_then(|p| p.parse().ok())
                    {
                        taken.ports.insert(port);
                    }
                }
            }
        }
        Ok(taken)
    }
}

#[derive(Debug)]
pub struct Allocated {
    pub ids: BTreeSet<String>,
    pub networks: BTreeSet<Ipv4Net>,
    pub uids: BTreeSet<u32>,
    pub ports: BTreeSet<u16>,
    uid_pool: Range<u32>,
    port_pool: RangeInclusive<u16>,
}

impl Default for Allocated {
    fn default() -> Self {
        Allocated {
            ids: BTreeSet::new(),
            networks: BTreeSet::new(),
            uids: BTreeSet::new(),
            ports: BTreeSet::new(),
            uid_pool: UID_BASE..UID_BASE + UID_COUNT,
            port_pool: PORT_BASE..=PORT_LAST,
        }
    }
}

impl Allocated {
    /// The first free /30 of the pool (or the one holding `wanted`), skipping
    /// those the host already routes.
    pub fn network(&self, pool: &Ipv4Net, wanted: Option<Ipv4Addr>) -> Result<Ipv4Net> {
        let routed = network::routed_networks();
        let in_use = |net: &Ipv4Net| {
            self.networks.contains(net) || routed.iter().any(|r| r.contains_net(net))
        };
        match wanted {
            Some(ip) => {
                let net = Ipv4Net::container_network_of(ip);
                if !pool.contains_net(&net) {
                    return Err(Error::BadArgument(format!(
                        "network {ip} is outside the pool {pool}"
                    )));
                }
                if ip == net.addr() || ip == Ipv4Addr::from(u32::from(net.addr()) + 3) {
                    return Err(Error::BadArgument(format!(
                        "network {ip} is the network or broadcast address of {net}"
                    )));
                }
                if in_use(&net) {
                    return Err(Error::Exhausted(format!("network {net} is already in use")));
                }
                Ok(net)
            }
            None => pool
                .subnets()
                .find(|net| !in_use(net))
                .ok_or_else(|| Error::Exhausted(format!("no free network left in {pool}"))),
        }
    }

    pub fn uid(&self) -> Result<u32> {
        self.uid_pool
            .clone()
            .find(|uid| !self.uids.contains(uid))
            .ok_or_else(|| Error::Exhausted("no free uid left".into()))
    }

    pub fn port(&self) -> Result<u16> {
        self.port_pool
            .clone()
            .find(|port| !self.ports.contains(port))
            .ok_or_else(|| Error::Exhausted("no free host port left".into()))
    }

    /// A fresh container id: 11 base-32 characters (as Warden's), random so
    /// that separate depots on one host do not collide on interface, cgroup
    /// and chain names; checked against this depot and the host's
    /// interfaces.
    pub fn id(&self) -> Result<String> {
        for _ in 0..100 {
            let id = random_id()?;
            if !self.ids.contains(&id) && !Path::new(&format!("/sys/class/net/w-{id}-0")).exists() {
                return Ok(id);
            }
        }
        Err(Error::Exhausted(
            "could not find a free container id".into(),
        ))
    }
}

fn random_id() -> Result<String> {
    let mut bytes = [0u8; 8];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(Error::io("read /dev/urandom"))?;
    let mut n = u64::from_ne_bytes(bytes);
    const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut id = String::with_capacity(ID_LEN);
    for _ in 0..ID_LEN {
        id.push(DIGITS[(n & 31) as usize] as char);
        n >>= 5;
    }
    Ok(id)
}

/// A handle names a directory of the depot and travels through scripts and
/// logs: printable ASCII without `/`, not `.`-leading (the depot's own
/// files), no `..`, no `,` or `:` (overlay options), at most 128 bytes.
pub fn validate_handle(handle: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::BadHandle {
            handle: handle.to_string(),
            reason,
        })
    };
    if handle.is_empty() {
        return bad("empty");
    }
    if handle.len() > 128 {
        return bad("longer than 128 bytes");
    }
    if handle.contains('/') {
        return bad("contains '/'");
    }
    if handle.contains("..") {
        return bad("contains '..'");
    }
    if handle.starts_with('.') {
        return bad("starts with '.'");
    }
    if handle.starts_with('-') {
        return bad("starts with '-'");
    }
    if handle.contains([',', ':']) {
        // The instance path ends up in the overlay's mount options.
        return bad("contains ',' or ':'");
    }
    if !handle.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("contains a space, a non-printable or a non-ASCII character");
    }
    Ok(())
}

/// Open (creating it if needed, private to root) a file that exists only to
/// be flock'd: the depot's, a job recorder's, an OOM watcher's.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(format!("open {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_checked() {
        for good in ["abc", "my-container_1", "A.b", "x@y+z"] {
            assert!(validate_handle(good).is_ok(), "{good}");
        }
        for bad in [
            "", "a/b", "..", "a..b", ".hidden", "-x", "a b", "tab\t", "nl\n", "é", "\u{7f}", "a,b",
            "a:b",
        ] {
            let err = validate_handle(bad).unwrap_err();
            assert_eq!(err.exit_code(), 5, "{bad:?}");
        }
        assert!(validate_handle(&"x".repeat(129)).is_err());
    }

    #[test]
    fn ids_fit_interface_names() {
        let taken = Allocated::default();
        let id = taken.id().unwrap();
        assert_eq!(id.len(), ID_LEN);
        assert!(format!("w-{id}-0").len() <= 15);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn configured_pools_are_used() {
        let mut taken = Allocated {
            uid_pool: 500..502,
            port_pool: 2000..=2000,
            ..Allocated::default()
        };
        taken.uids.insert(500);
        assert_eq!(taken.uid().unwrap(), 501);
        assert_eq!(taken.port().unwrap(), 2000);
        taken.uids.insert(501);
        taken.ports.insert(2000);
        assert_eq!(taken.uid().unwrap_err().exit_code(), 9);
        assert_eq!(taken.port().unwrap_err().exit_code(), 9);
    }

    #[test]
    fn pools_skip_what_is_taken() {
        let mut taken = Allocated::default();
        taken.uids.insert(UID_BASE);
        taken.ports.insert(PORT_BASE);
        assert_eq!(taken.uid().unwrap(), UID_BASE + 1);
        assert_eq!(taken.port().unwrap(), PORT_BASE + 1);
        // A pool outside anything the host routes.
        let pool: Ipv4Net = "10.253.252.0/29".parse().unwrap();
        let first = taken.network(&pool, None).unwrap();
        taken.networks.insert(first);
        let second = taken.network(&pool, None).unwrap();
        assert_ne!(first, second);
        taken.networks.insert(second);
        assert_eq!(taken.network(&pool, None).unwrap_err().exit_code(), 9);
        let wanted = taken.network(&pool, Some(Ipv4Addr::new(10, 253, 252, 6)));
        assert_eq!(wanted.unwrap_err().exit_code(), 9);
        let outside = taken.network(&pool, Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(outside.unwrap_err().exit_code(), 5);
    }

    #[test]
    fn allocations_are_read_back_from_disk() {
        let dir = std::env::temp_dir().join(format!("wardenctl-depot-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let depot = Depot::new(&dir);
        fs::create_dir_all(dir.join("one/etc")).unwrap();
        fs::write(
            dir.join("one/etc/config"),
            "id='abc'\nnetwork_host_ip='10.254.0.5'\nuser_uid='10003'\n",
        )
        .unwrap();
        fs::write(dir.join("one/etc/ports"), "61001 8080\n").unwrap();
        fs::create_dir_all(dir.join(".hidden")).unwrap();
        let _lock = depot.lock().unwrap();
        assert_eq!(depot.handles().unwrap(), vec!["one".to_string()]);
        let taken = depot.allocated().unwrap();
        assert!(taken.ids.contains("abc"));
        assert!(taken.uids.contains(&10003));
        assert!(taken.ports.contains(&61001));
        assert!(taken
            .networks
            .contains(&"10.254.0.4/30".parse::<Ipv4Net>().unwrap()));
        fs::remove_dir_all(&dir).unwrap();
    }
}
