//! The container commands: create, stop, destroy, info, copy, net-in; each
//! runs the container's scripts on an [`Instance`] of the depot.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use crate::config::shell_quote;
use crate::depot::{self, Depot};
use crate::disk;
use crate::errors::{Error, Result};
use crate::events::{self, Event, Kind};
use crate::instance::open_private;
pub use crate::instance::{
    Instance, State, DEFAULT_JOB_OUTPUT_LIMIT, DEFAULT_PIDS_LIMIT, DEFAULT_SHM_SIZE, MAX_PIDS_LIMIT,
};
use crate::jobs;
use crate::network::Ipv4Net;
use crate::process;
use crate::scripts::{self, Paths};

/// `SRC:DST[:ro|rw]`, read-only unless `rw` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub src: PathBuf,
    pub dst: String,
    pub read_only: bool,
}

impl FromStr for BindMount {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::BadArgument(format!("invalid bind mount {s:?}: {why}"));
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, read_only) = match parts.as_slice() {
            [src, dst] => (*src, *dst, true),
            [src, dst, "ro"] => (*src, *dst, true),
            [src, dst, "rw"] => (*src, *dst, false),
            [_, _, mode] => return Err(bad(&format!("mode {mode:?} is neither ro nor rw"))),
            _ => return Err(bad("want SRC:DST[:ro|rw]")),
        };
        if !src.starts_with('/') || !dst.starts_with('/') {
            return Err(bad("SRC and DST must be absolute paths"));
        }
        if dst.split('/').any(|c| c == "..") || dst == "/" {
            return Err(bad("DST may not be / or contain '..'"));
        }
        if s.bytes().any(|b| b.is_ascii_control()) {
            return Err(bad("control characters"));
        }
        Ok(BindMount {
            src: PathBuf::from(src),
            dst: dst.to_string(),
            read_only,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub handle: Option<String>,
    pub rootfs: PathBuf,
    pub bind_mounts: Vec<BindMount>,
    pub network: Option<Ipv4Addr>,
    pub pool: Option<Ipv4Net>,
    /// Puts the writable layer on an ext4 image of this size (and inode
    /// count); see [`crate::disk`].
    pub disk: Option<disk::DiskLimits>,
    /// Bytes a job's output may take on the host (0: unlimited); default
    /// [`DEFAULT_JOB_OUTPUT_LIMIT`].
    pub job_output_limit: Option<u64>,
    /// pids.max (0: none); default [`DEFAULT_PIDS_LIMIT`].
    pub pids_limit: Option<u64>,
    /// /dev/shm's size in bytes; default [`DEFAULT_SHM_SIZE`].
    pub shm_size: Option<u64>,
    /// Confinement off (no device whitelist, ...), so that Warden can run
    /// inside: root in such a container is root on the host.
    pub allow_nested_warden: bool,
    /// Nameservers for the container's /etc/resolv.conf (none: the host's,
    /// a loopback one replaced by the host's veth address).
    pub dns_servers: Vec<Ipv4Addr>,
    /// Seconds a server may leave the container unreferenced before it
    /// destroys it, kept in etc/grace_time (none: never).
    pub grace_time: Option<u32>,
    /// MTU of the container's interface; default [`DEFAULT_MTU`].
    pub mtu: Option<u32>,
}

pub const DEFAULT_MTU: u32 = 1500;

/// Creates and starts a container; returns its handle. A failure at any step
/// undoes the earlier ones.
pub fn create(depot: &Depot, paths: &Paths, opts: &CreateOptions) -> Result<String> {
    // Steps of the profile (WARDEN_PROFILE): each lasts until it is dropped.
    let step = crate::profile::step("check arguments");
    if let Some(handle) = &opts.handle {
        depot::validate_handle(handle)?;
    }
    let rootfs = check_rootfs(&opts.rootfs)?;
    let image = crate::image::ImageRecord::of_rootfs(&rootfs)?;
    if let Some(limits) = opts.disk {
        disk::check_create(limits, depot)?;
    }
    for bind in &opts.bind_mounts {
        if !bind.src.exists() {
            return Err(Error::MissingPath {
                what: "bind mount source",
                path: bind.src.clone(),
            });
        }
    }
    if let Some(n) = opts.pids_limit {
        if n > MAX_PIDS_LIMIT {
            return Err(Error::BadArgument(format!(
                "pids limit {n} is above the kernel's maximum of {MAX_PIDS_LIMIT}"
            )));
        }
    }
    paths.check_helpers()?;
    let pool = match opts.pool {
        Some(pool) => pool,
        None => crate::network::DEFAULT_POOL.parse()?,
    };

    drop(step);

    // Every script's output from here on: kept in the container's
    // run/create.log, or in DEPOT/.failed/HANDLE.log when the create fails.
    let log = scripts::capture::Capture::start();
    let (instance, id) = {
        let step = crate::profile::step("allocate (depot lock)");
        let lock = depot.lock()?;
        let taken = depot.allocated()?;
        let id = taken.id()?;
        let handle = opts.handle.clone().unwrap_or_else(|| id.clone());
        let path = depot.instance_path(&handle);
        if path.exists() || fs::symlink_metadata(&path).is_ok() {
            return Err(Error::HandleExists(handle));
        }
        let network = taken.network(&pool, opts.network)?;
        let uid = taken.uid()?;
        let env = vec![
            ("id".to_string(), id.clone()),
            ("network_host_ip".to_string(), network.host_ip().to_string()),
            (
                "network_container_ip".to_string(),
                network.container_ip().to_string(),
            ),
            ("network_netmask".to_string(), network.netmask().to_string()),
            ("user_uid".to_string(), uid.to_string()),
            ("rootfs_path".to_string(), rootfs.display().to_string()),
            (
                "allow_nested_warden".to_string(),
                opts.allow_nested_warden.to_string(),
            ),
            (
                "container_iface_mtu".to_string(),
                opts.mtu.unwrap_or(DEFAULT_MTU).to_string(),
            ),
            // Joined by newlines, as the Ruby server passes them.
            (
                "dns_servers".to_string(),
                opts.dns_servers
                    .iter()
                    .map(Ipv4Addr::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            (
                "job_output_limit".to_string(),
                opts.job_output_limit
                    .unwrap_or(DEFAULT_JOB_OUTPUT_LIMIT)
                    .to_string(),
            ),
            (
                "container_pids_limit".to_string(),
                opts.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT).to_string(),
            ),
            (
                "container_shm_size".to_string(),
                opts.shm_size.unwrap_or(DEFAULT_SHM_SIZE).to_string(),
            ),
            (
                "WARDEN_BIN_DIR".to_string(),
                paths.bin.display().to_string(),
            ),
        ];
        drop(step);
        // create.sh removes the directory itself when it fails. It holds
        // the lock too: killed here, wardenctl would otherwise free the
        // network and uid while setup.sh has not yet recorded them.
        let step = crate::profile::step("create.sh");
        log.note(&format!("wardenctl create {handle} (container id {id})\n"));
        if let Err(e) = scripts::run_locked(&paths.root_script("create.sh"), &[&path], &env, &lock)
        {
            return Err(failed(depot, paths, &handle, None, "create.sh", e, &log));
        }
        drop(step);
        let _step = crate::profile::step("state born");
        let instance = Instance { handle, path };
        // Still under the depot lock, so that whoever finds a container
        // born without a live creator (see `abandoned`) knows it will
        // never be finished.
        let recorded = instance
            .record_creator()
            .and_then(|()| match opts.grace_time {
                Some(seconds) => instance.set_grace_time(seconds),
                None => Ok(()),
            })
            .and_then(|()| instance.set_state(State::Born));
        if let Err(e) = recorded {
            return Err(failed(
                depot,
                paths,
                &instance.handle.clone(),
                Some(&instance),
                "record state",
                e,
                &log,
            ));
        }
        (instance, id)
    };

    let step = std::cell::Cell::new("bind mounts");
    let started = append_bind_mounts(&instance, &opts.bind_mounts)
        .and_then(|()| {
            step.set("image config");
            match &image {
                Some(record) => record.save(&instance.path.join(crate::image::INSTANCE_FILE)),
                None => Ok(()),
            }
        })
        .and_then(|()| match opts.disk {
            Some(limits) => {
                step.set("disk image");
                let _step = crate::profile::step("disk image");
                disk::setup_image(&instance, limits)
            }
            None => Ok(()),
        })
        .and_then(|()| {
            step.set("start.sh");
            let _step = crate::profile::step("start.sh");
            scripts::run(&instance.script("start.sh"), &[] as &[&str], &[])
        })
        .and_then(|_| {
            step.set("state active");
            let _step = crate::profile::step("state active");
            instance.set_state(State::Active)
        });
    if let Err(e) = started {
        let e = match e {
            Error::Script { script, message } => Error::Script {
                script: format!("{script} (container id {id}, undone)"),
                message,
            },
            other => other,
        };
        let handle = instance.handle.clone();
        return Err(failed(
            depot,
            paths,
            &handle,
            Some(&instance),
            step.get(),
            e,
            &log,
        ));
    }
    let _step = crate::profile::step("create log");
    note_wshd_logs(&instance, &log);
    // Best effort: the container works without its create log.
    if let Ok(mut file) = open_private(&instance.path.join(CREATE_LOG), false) {
        let _ = file.write_all(&log.contents());
    }
    events::note(&instance, &Event::now(Kind::Create, "created"));
    Ok(instance.handle)
}

/// wshd's logs (where start.sh sends wshd's and the hooks' output, their
/// traces under --debug) join the create log, and stderr under --debug;
/// returns the error log's text.
fn note_wshd_logs(instance: &Instance, log: &scripts::capture::Capture) -> Option<String> {
    let mut err_log = None;
    for name in ["run/wshd.err.log", "run/wshd.out.log"] {
        let Ok(mut content) = fs::read_to_string(instance.path.join(name)) else {
            continue;
        };
        if content.is_empty() {
            continue;
        }
        if !content.ends_with('\n') {
            content.push('\n');
        }
        let text = format!("== {name}\n{content}");
        log.note(&text);
        if scripts::debug() {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
        if name.ends_with("err.log") {
            err_log = Some(content);
        }
    }
    err_log
}

/// A container's create log, relative to its directory.
pub const CREATE_LOG: &str = "run/create.log";

/// Lines of error output a failed create shows under its message.
const TAIL_LINES: usize = 5;

/// A create failed at `step`: wshd's log (start.sh sends wshd's and the
/// hooks' output there) joins the create's log, the container is undone,
/// and the log moves to DEPOT/.failed/HANDLE.log. The error names the step,
/// the log and the last lines of error output that the message does not
/// already hold.
fn failed(
    depot: &Depot,
    paths: &Paths,
    handle: &str,
    instance: Option<&Instance>,
    step: &'static str,
    error: Error,
    log: &scripts::capture::Capture,
) -> Error {
    // The failing script's record is the log's last one so far.
    let text = String::from_utf8_lossy(&log.contents()).into_owned();
    let mut lines_from = text
        .rfind("\n== ")
        .map_or(text.as_str(), |i| &text[i + 1..])
        .to_string();
    if let Some(instance) = instance {
        if let Some(content) = note_wshd_logs(instance, log) {
            lines_from = format!("{content}\n{lines_from}");
        }
        log.note("== undo\n");
        undo(paths, instance);
    }
    let message = error.to_string();
    log.note(&format!("== failed at {step}: {message}\n"));
    let candidates: Vec<&str> = lines_from
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("== ") && !l.starts_with("-- ") && !message.contains(l))
        .collect();
    // Under --debug the scripts' stderr was shown as it came, and in a
    // trace (--debug, or the scripts' own DEBUG=1) a continuation line of
    // a multi-line argument has no `+` to tell it from an error: no tail.
    let traced = scripts::debug() || std::env::var_os("DEBUG").is_some_and(|v| !v.is_empty());
    let tail = if traced {
        Vec::new()
    } else {
        scripts::last_error_lines(&candidates.join("\n"), TAIL_LINES)
    };
    let kept = match crate::failed::keep(depot, handle, &log.contents()) {
        Ok(path) => Some(path),
        Err(e) => {
            eprintln!("create {handle}: its log was not kept: {e}");
            None
        }
    };
    Error::CreateFailed {
        step,
        source: Box::new(error),
        log: kept,
        tail,
    }
}

/// The rootfs as an absolute path without symlinks (a relative one is taken
/// from the current directory), refused when overlay's option syntax could
/// not carry it.
fn check_rootfs(rootfs: &Path) -> Result<PathBuf> {
    let missing = || Error::MissingPath {
        what: "rootfs",
        path: rootfs.to_path_buf(),
    };
    if !rootfs.is_dir() {
        return Err(missing());
    }
    let rootfs = rootfs.canonicalize().map_err(|_| missing())?;
    let text = rootfs.to_string_lossy();
    if text.contains([',', ':']) {
        return Err(Error::BadArgument(format!(
            "rootfs {text} may not contain ',' or ':' (overlay options)"
        )));
    }
    Ok(rootfs)
}

/// Bind mounts become lines of hook-child-before-pivot.sh, as a Warden
/// server writes them; the destination is resolved inside the container's
/// root (path_in_root) so a symlink in the rootfs cannot point it at the host.
fn append_bind_mounts(instance: &Instance, binds: &[BindMount]) -> Result<()> {
    if binds.is_empty() {
        return Ok(());
    }
    let hook = instance.path.join("lib/hook-child-before-pivot.sh");
    let mut text = String::from("\n# Bind mounts of the create request.\n");
    for bind in binds {
        let src = shell_quote(&bind.src.to_string_lossy());
        let dst = shell_quote(&bind.dst);
        text.push_str(&format!("dst=$(path_in_root \"$PWD/mnt\" {dst})\n"));
        if bind.src.is_dir() {
            text.push_str("mkdir -p \"$dst\"\n");
        } else {
            text.push_str("mkdir -p \"$(dirname \"$dst\")\"\n[ -e \"$dst\" ] || : > \"$dst\"\n");
        }
        text.push_str(&format!("mount -n --bind {src} \"$dst\"\n"));
        let mode = if bind.read_only { "ro" } else { "rw" };
        text.push_str(&format!("mount -n -o remount,bind,{mode} \"$dst\"\n"));
    }
    let mut file = OpenOptions::new()
        .append(true)
        .open(&hook)
        .map_err(Error::io(format!("open {}", hook.display())))?;
    file.write_all(text.as_bytes())
        .map_err(Error::io(format!("write {}", hook.display())))
}

/// Best effort: what create did is taken apart again, the directory last.
fn undo(paths: &Paths, instance: &Instance) {
    jobs::reap(instance);
    let _ = scripts::run(&paths.root_script("destroy.sh"), &[&instance.path], &[]);
    if instance.path.exists() {
        let _ = fs::remove_dir_all(&instance.path);
    }
}

#[derive(Debug, Clone, Default)]
pub struct StopOptions {
    pub kill: bool,
    pub background: bool,
}

pub fn stop(depot: &Depot, handle: &str, opts: &StopOptions) -> Result<()> {
    let instance = Instance::open(depot, handle)?;
    let _lock = instance.lock(true)?;
    instance.require_state("stop", &[State::Active])?;
    instance.set_state(State::Stopped)?;
    let how = if opts.kill {
        "stopped (SIGKILL)"
    } else {
        "stopped (SIGTERM, SIGKILL after 10 s)"
    };
    events::note(&instance, &Event::now(Kind::Stop, how));
    let mut args: Vec<&str> = Vec::new();
    if opts.kill {
        args.extend(["-w", "0"]);
    }
    if opts.background {
        let log = instance.path.join("run/stop.log");
        let out = open_private(&log, false)?;
        let err = out
            .try_clone()
            .map_err(Error::io(format!("dup {}", log.display())))?;
        let mut command = Command::new(instance.script("stop.sh"));
        command
            .args(&args)
            .env("PATH", scripts::script_path_env())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        process::spawn_detached(&mut command, "stop.sh")?;
        return Ok(());
    }
    scripts::run(&instance.script("stop.sh"), &args, &[])?;
    // As Warden: stop returns once every job has ended.
    jobs::wait_all(&instance, Duration::from_secs(10));
    Ok(())
}

pub fn destroy(depot: &Depot, paths: &Paths, handle: &str) -> Result<()> {
    let step = crate::profile::step("lock, oom watcher");
    let instance = Instance::open(depot, handle)?;
    let _lock = instance.lock(true)?;
    // Read by `events --follow` before it sees the directory go.
    events::note(&instance, &Event::now(Kind::Destroy, "destroying"));
    crate::oom::kill_watcher(&instance);
    drop(step);
    // Kill the container first so the jobs' helpers on the host see their
    // jobs end, then wait for (or kill) those helpers, then remove it all.
    if instance.script("destroy.sh").is_file() {
        let _step = crate::profile::step("destroy.sh");
        scripts::run(&instance.script("destroy.sh"), &[] as &[&str], &[])?;
    }
    let step = crate::profile::step("reap jobs");
    jobs::reap(&instance);
    drop(step);
    let _step = crate::profile::step("root destroy.sh");
    scripts::run(&paths.root_script("destroy.sh"), &[&instance.path], &[])?;
    Ok(())
}

/// Containers whose create will never finish: born, and the process that
/// made them is gone (killed mid-create). Looked at under the depot lock,
/// which every create holds until its creator is on record.
pub fn abandoned(depot: &Depot) -> Result<Vec<String>> {
    let _lock = depot.lock()?;
    let mut found = Vec::new();
    for handle in depot.handles()? {
        let instance = Instance::open(depot, &handle)?;
        if instance.state() == State::Born && !instance.creator_alive() {
            found.push(handle);
        }
    }
    Ok(found)
}

pub fn list(depot: &Depot) -> Result<Vec<String>> {
    depot.handles()
}

#[derive(Debug, Clone)]
pub struct Info {
    pub handle: String,
    pub id: String,
    pub state: State,
    pub events: Vec<String>,
    pub host_ip: String,
    pub container_ip: String,
    pub container_path: PathBuf,
    pub job_ids: Vec<u32>,
    pub wshd_pid: Option<i32>,
    pub memory_stat: Vec<(String, u64)>,
    pub cpu_stat: Vec<(String, u64)>,
    pub disk_stat: Vec<(String, u64)>,
    pub bandwidth_stat: Vec<(String, u64)>,
    /// Forwarded ports (net-in): (host port, container port).
    pub ports: Vec<(u16, u16)>,
    /// The limits in force (the bandwidth ones only when the stats are
    /// all read: they come from `tc`).
    pub limits: crate::stats::Limits,
}

impl Info {
    pub fn to_json(&self) -> serde_json::Value {
        let map = |pairs: &[(String, u64)]| {
            serde_json::Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
                    .collect(),
            )
        };
        serde_json::json!({
            "handle": self.handle,
            "id": self.id,
            "state": self.state.as_str(),
            "events": self.events,
            "host_ip": self.host_ip,
            "container_ip": self.container_ip,
            "container_path": self.container_path.display().to_string(),
            "job_ids": self.job_ids,
            "wshd_pid": self.wshd_pid,
            "memory_stat": map(&self.memory_stat),
            "cpu_stat": map(&self.cpu_stat),
            "disk_stat": map(&self.disk_stat),
            "bandwidth_stat": map(&self.bandwidth_stat),
            "ports": self
                .ports
                .iter()
                .map(|(h, c)| serde_json::json!({"host_port": h, "container_port": c}))
                .collect::<Vec<_>>(),
            "limits": self.limits.to_json(),
        })
    }

    pub fn to_text(&self) -> String {
        let jobs: Vec<String> = self.job_ids.iter().map(u32::to_string).collect();
        let pairs = |p: &[(String, u64)]| {
            p.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "handle: {}\nid: {}\nstate: {}\nevents: {}\nhost_ip: {}\ncontainer_ip: {}\ncontainer_path: {}\njob_ids: {}\nmemory_stat: {}\ncpu_stat: {}\ndisk_stat: {}\nbandwidth_stat: {}\nports: {}\nlimits: {}\n",
            self.handle,
            self.id,
            self.state,
            self.events.join(", "),
            self.host_ip,
            self.container_ip,
            self.container_path.display(),
            jobs.join(" "),
            pairs(&self.memory_stat),
            pairs(&self.cpu_stat),
            pairs(&self.disk_stat),
            pairs(&self.bandwidth_stat),
            self.ports
                .iter()
                .map(|(h, c)| format!("{h}->{c}"))
                .collect::<Vec<_>>()
                .join(" "),
            self.limits.to_text(),
        )
    }
}

pub fn info(depot: &Depot, handle: &str) -> Result<Info> {
    info_of(depot, handle, true)
}

/// [`info`] without the disk and bandwidth stats, which cost a walk of the
/// writable layer and two `tc` runs: what a server puts in every link, run
/// and stream response, where a job's round trip should not pay for them.
pub fn info_brief(depot: &Depot, handle: &str) -> Result<Info> {
    info_of(depot, handle, false)
}

fn info_of(depot: &Depot, handle: &str, all_stats: bool) -> Result<Info> {
    let instance = Instance::open(depot, handle)?;
    let config = instance.config().unwrap_or_default();
    let id = config.id().unwrap_or_default().to_string();
    let bandwidth_stat = if all_stats {
        crate::limits::bandwidth_stat(&instance)
    } else {
        Vec::new()
    };
    Ok(Info {
        handle: instance.handle.clone(),
        state: instance.state(),
        events: instance.events(),
        host_ip: config
            .get("network_host_ip")
            .unwrap_or_default()
            .to_string(),
        container_ip: config
            .get("network_container_ip")
            .unwrap_or_default()
            .to_string(),
        container_path: instance.path.clone(),
        job_ids: jobs::running(&instance),
        wshd_pid: process::read_pid(&instance.path.join("run/wshd.pid")),
        memory_stat: memory_stat(&id),
        cpu_stat: cpu_stat(&id),
        disk_stat: if all_stats {
            let d = disk::stat(&instance);
            vec![
                ("bytes_used".to_string(), d.bytes_used),
                ("inodes_used".to_string(), d.inodes_used),
            ]
        } else {
            Vec::new()
        },
        limits: crate::stats::Limits::read(&instance, &bandwidth_stat),
        ports: forwarded_ports(&instance),
        bandwidth_stat,
        id,
    })
}

/// etc/ports: a "HOST CONTAINER" line per net-in.
fn forwarded_ports(instance: &Instance) -> Vec<(u16, u16)> {
    fs::read_to_string(instance.path.join("etc/ports"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
        })
        .collect()
}

fn memory_stat(id: &str) -> Vec<(String, u64)> {
    if id.is_empty() {
        return Vec::new();
    }
    let parse = |text: &str| -> Vec<(String, u64)> {
        text.lines()
            .filter_map(|line| {
                let (k, v) = line.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect()
    };
    if let Ok(text) = fs::read_to_string(format!("/sys/fs/cgroup/memory/instance-{id}/memory.stat"))
    {
        return parse(&text);
    }
    let group = format!("/sys/fs/cgroup/instance-{id}");
    match fs::read_to_string(format!("{group}/memory.stat")) {
        Ok(text) => {
            let read = |file: &str| fs::read_to_string(format!("{group}/{file}")).ok();
            v2_memory_stat(
                parse(&text),
                read("memory.max").as_deref(),
                read("memory.swap.current").as_deref(),
            )
        }
        Err(_) => Vec::new(),
    }
}

/// cgroup v1's memory.stat is what Warden clients read (cache, rss, ...);
/// on v2 those keys are derived from v2's own (file, anon, ...), which
/// follow them unchanged. An unlimited memory.max reads as v1's
/// unlimited value, the largest page-aligned i64.
fn v2_memory_stat(
    v2: Vec<(String, u64)>,
    max: Option<&str>,
    swap_current: Option<&str>,
) -> Vec<(String, u64)> {
    const V1_UNLIMITED: u64 = 0x7fff_ffff_ffff_f000;
    let get = |key: &str| v2.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    let limit = match max.map(str::trim) {
        Some("max") => Some(V1_UNLIMITED),
        Some(n) => n.parse().ok(),
        None => None,
    };
    let mut stat = Vec::new();
    for (v1, value) in [
        ("cache", get("file")),
        ("rss", get("anon")),
        ("mapped_file", get("file_mapped")),
        ("swap", swap_current.and_then(|s| s.trim().parse().ok())),
        ("pgfault", get("pgfault")),
        ("pgmajfault", get("pgmajfault")),
        ("inactive_anon", get("inactive_anon")),
        ("active_anon", get("active_anon")),
        ("inactive_file", get("inactive_file")),
        ("active_file", get("active_file")),
        ("unevictable", get("unevictable")),
        ("hierarchical_memory_limit", limit),
    ] {
        if let Some(value) = value {
            stat.push((v1.to_string(), value));
        }
    }
    let totals: Vec<(String, u64)> = stat
        .iter()
        .filter(|(k, _)| k != "hierarchical_memory_limit")
        .map(|(k, v)| (format!("total_{k}"), *v))
        .collect();
    stat.extend(totals);
    stat.extend(v2);
    stat
}

fn cpu_stat(id: &str) -> Vec<(String, u64)> {
    if id.is_empty() {
        return Vec::new();
    }
    // usage in nanoseconds (cpuacct.usage), user and system in USER_HZ
    // ticks (cpuacct.stat), as Warden reports them; v2's microseconds are
    // converted to the same units.
    let mut stat = Vec::new();
    let acct = format!("/sys/fs/cgroup/cpuacct/instance-{id}");
    if let Ok(usage) = fs::read_to_string(format!("{acct}/cpuacct.usage")) {
        if let Ok(ns) = usage.trim().parse() {
            stat.push(("usage".to_string(), ns));
        }
        if let Ok(text) = fs::read_to_string(format!("{acct}/cpuacct.stat")) {
            for line in text.lines() {
                if let Some((k @ ("user" | "system"), v)) = line.split_once(' ') {
                    if let Ok(ticks) = v.trim().parse::<u64>() {
                        stat.push((k.to_string(), ticks));
                    }
                }
            }
        }
    } else if let Ok(text) = fs::read_to_string(format!("/sys/fs/cgroup/instance-{id}/cpu.stat")) {
        for line in text.lines() {
            let Some((k, v)) = line.split_once(' ') else {
                continue;
            };
            let Ok(us) = v.trim().parse::<u64>() else {
                continue;
            };
            match k {
                "usage_usec" => stat.push(("usage".to_string(), us * 1000)),
                "user_usec" => stat.push(("user".to_string(), us / 10_000)),
                "system_usec" => stat.push(("system".to_string(), us / 10_000)),
                _ => {}
            }
        }
    }
    stat
}

/// rsync over `wsh --rsh`, as Warden: recursive, permissions and symlinks
/// kept, hard links copied as separate files.
fn rsync(instance: &Instance, src: &str, dst: &str) -> Result<()> {
    let rsh = format!(
        "{} --socket {} --rsh",
        rsync_quote(&instance.wsh().to_string_lossy()),
        rsync_quote(&instance.socket().to_string_lossy())
    );
    let output = Command::new("rsync")
        .arg("-e")
        .arg(rsh)
        .args(["-r", "-p", "--links"])
        .arg("--")
        .arg(src)
        .arg(dst)
        .env("PATH", scripts::script_path_env())
        .stdin(Stdio::null())
        .output()
        .map_err(Error::io("run rsync"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("failed")
        .to_string();
    Err(Error::Tool(format!("rsync {src} {dst}: {message}")))
}

/// rsync splits its -e string on spaces, honouring single quotes.
fn rsync_quote(s: &str) -> String {
    if s.contains([' ', '\'', '"', '\\']) {
        format!("'{}'", s.replace('\'', r"'\''"))
    } else {
        s.to_string()
    }
}

pub fn copy_in(depot: &Depot, handle: &str, src: &Path, dst: &str) -> Result<()> {
    let instance = Instance::open(depot, handle)?;
    let _lock = instance.lock(false)?;
    instance.require_state("copy-in", &[State::Active])?;
    if fs::symlink_metadata(src).is_err() {
        return Err(Error::MissingPath {
            what: "copy-in source",
            path: src.to_path_buf(),
        });
    }
    rsync(
        &instance,
        &src.to_string_lossy(),
        &format!("vcap@container:{dst}"),
    )
}

pub fn copy_out(
    depot: &Depot,
    handle: &str,
    src: &str,
    dst: &Path,
    owner: Option<&str>,
) -> Result<()> {
    let instance = Instance::open(depot, handle)?;
    let _lock = instance.lock(false)?;
    instance.require_state("copy-out", &[State::Active, State::Stopped])?;
    if let Some(owner) = owner {
        if owner.is_empty()
            || owner.starts_with('-')
            || owner.bytes().any(|b| !b.is_ascii_graphic())
        {
            return Err(Error::BadArgument(format!("invalid owner {owner:?}")));
        }
    }
    rsync(
        &instance,
        &format!("vcap@container:{src}"),
        &dst.to_string_lossy(),
    )?;
    if let Some(owner) = owner {
        let status = Command::new("chown")
            .arg("-R")
            .arg(owner)
            .arg("--")
            .arg(dst)
            .status()
            .map_err(Error::io("run chown"))?;
        if !status.success() {
            return Err(Error::BadArgument(format!(
                "chown -R {owner} {} failed",
                dst.display()
            )));
        }
    }
    Ok(())
}

/// Forwards a host tcp port (from the pool when not given) to a container
/// port (the host port when not given), on every local address of the
/// host; returns both.
pub fn net_in(
    depot: &Depot,
    handle: &str,
    host_port: Option<u16>,
    container_port: Option<u16>,
) -> Result<(u16, u16)> {
    use crate::netrules::{check_port, listening_ports};
    let instance = Instance::open(depot, handle)?;
    if let Some(p) = host_port {
        check_port(p, "host port")?;
    }
    if let Some(p) = container_port {
        check_port(p, "container port")?;
    }
    let _ilock = instance.lock(false)?;
    instance.require_state("net-in", &[State::Active])?;
    let _lock = depot.lock()?;
    let mut taken = depot.allocated()?;
    let listening = listening_ports();
    let host_port = match host_port {
        Some(p) if taken.ports.contains(&p) => {
            return Err(Error::Exhausted(format!(
                "host port {p} is already forwarded"
            )))
        }
        // A host service on the port would be shadowed for every address.
        Some(p) if listening.contains(&p) => {
            return Err(Error::Exhausted(format!(
                "host port {p} is taken by a listening socket on the host"
            )))
        }
        Some(p) => p,
        None => {
            taken.ports.extend(listening.iter().copied());
            taken.port()?
        }
    };
    let container_port = container_port.unwrap_or(host_port);
    scripts::run(
        &instance.script("net.sh"),
        &["in"],
        &[
            ("HOST_PORT".to_string(), host_port.to_string()),
            ("CONTAINER_PORT".to_string(), container_port.to_string()),
        ],
    )?;
    let ports = instance.path.join("etc/ports");
    let mut file = open_private(&ports, true)?;
    writeln!(file, "{host_port} {container_port}")
        .map_err(Error::io(format!("write {}", ports.display())))?;
    Ok((host_port, container_port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_mounts_parse() {
        let b: BindMount = "/a:/b".parse().unwrap();
        assert!(b.read_only);
        let b: BindMount = "/a:/b/c:rw".parse().unwrap();
        assert!(!b.read_only);
        assert_eq!(b.dst, "/b/c");
        for bad in [
            "/a",
            "/a:/b:xx",
            "a:/b",
            "/a:b",
            "/a:/../x",
            "/a:/",
            "/a:/b:ro:x",
        ] {
            assert_eq!(
                bad.parse::<BindMount>().unwrap_err().exit_code(),
                5,
                "{bad}"
            );
        }
    }

    #[test]
    fn rsync_quoting() {
        assert_eq!(rsync_quote("/a/b"), "/a/b");
        assert_eq!(rsync_quote("/a b"), "'/a b'");
    }
}

#[cfg(test)]
mod memory_stat_tests {
    use super::v2_memory_stat;

    #[test]
    fn v2_keys_are_given_warden_names() {
        let v2 = vec![
            ("anon".to_string(), 4096),
            ("file".to_string(), 8192),
            ("file_mapped".to_string(), 1024),
            ("pgfault".to_string(), 7),
        ];
        let stat = v2_memory_stat(v2, Some("50331648\n"), Some("0\n"));
        let get = |k: &str| stat.iter().find(|(key, _)| key == k).map(|(_, v)| *v);
        assert_eq!(get("rss"), Some(4096));
        assert_eq!(get("cache"), Some(8192));
        assert_eq!(get("mapped_file"), Some(1024));
        assert_eq!(get("swap"), Some(0));
        assert_eq!(get("total_rss"), Some(4096));
        assert_eq!(get("hierarchical_memory_limit"), Some(50331648));
        assert_eq!(get("total_hierarchical_memory_limit"), None);
        assert_eq!(get("anon"), Some(4096), "v2's own keys follow");
        assert_eq!(get("active_file"), None, "absent keys are left out");
        let unlimited = v2_memory_stat(Vec::new(), Some("max\n"), None);
        assert_eq!(
            unlimited,
            vec![(
                "hierarchical_memory_limit".to_string(),
                0x7fff_ffff_ffff_f000
            )]
        );
    }
}
