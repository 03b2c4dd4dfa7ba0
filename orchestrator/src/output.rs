//! A job's output on the host, bounded (Warden's `job_output_limit`): the
//! recorder reads iomux-link's stdout and stderr through pipes and appends
//! them to the job's logs, counting what it keeps; once a byte arrives past
//! the container's limit it keeps nothing more, kills the job and says why
//! (`jobs/N/killed`, and `job N killed: ...` in etc/events).
//!
//! Killing from the host: a job is `iomux-spawn -> wsh -> (wshd) the job's
//! shell in the container`, and wsh holds the read ends of the pipes the
//! job writes to (wshd passed them). Every process of the container holding
//! one of those pipes is part of the job, wherever it came from (a
//! background `&`, a daemon that kept its stdout); they are SIGKILLed until
//! none is left. wsh then sees EOF and the shell's death, and ends as for
//! any killed job: iomux-spawn reports it (255), the recorder writes
//! exit_status, link and stream end normally.
//!
//! With a disk image (create --disk-limit) the logs are also paid for in
//! the image (see `DiskCharge`), so they count against the container's
//! disk limit; what no longer fits there is dropped, not kept.
//!
//! What is kept counts; discarded output (`spawn --discard-output`) costs
//! the host nothing and is not counted, as in Warden. The count is the size
//! of the two logs, so a recorder started again (see [`crate::jobs`])
//! goes on from where the last one stopped.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::errors::{Error, Result};
use crate::events::{record_warden, Event, Kind};
use crate::instance::{open_private, poll_until, write_atomic, Instance, DEFAULT_JOB_OUTPUT_LIMIT};
use crate::process;

/// What one read takes from a pipe, and so at most what one step may bring
/// past the limit before the recorder notices.
pub const CHUNK: usize = 64 << 10;
/// What the recorder asks of its pipes: iomux-link splices up to 1 MiB at
/// once, and a wider pipe means fewer wake-ups.
const PIPE_SIZE: libc::c_int = 1 << 20;
/// How long the job's processes are hunted before wsh itself is killed.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// The container's limit from its etc/config; the default when absent (a
/// container made by a Warden server, or before the setting existed) or
/// unreadable, never unlimited by accident.
pub fn limit(instance: &Instance) -> u64 {
    instance
        .config()
        .ok()
        .and_then(|c| c.get("job_output_limit")?.trim().parse().ok())
        .unwrap_or(DEFAULT_JOB_OUTPUT_LIMIT)
}

/// Bytes kept against the limit (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    limit: u64,
    kept: u64,
    exceeded: bool,
}

impl Budget {
    pub fn new(limit: u64, kept: u64, exceeded: bool) -> Self {
        Budget {
            limit,
            kept,
            exceeded,
        }
    }

    /// How many of `n` bytes that just arrived may be kept: all while they
    /// fit, what fits of them, then none. A job writing exactly the limit
    /// is not over it; one more byte is.
    pub fn take(&mut self, n: usize) -> usize {
        if self.exceeded {
            return 0;
        }
        if self.limit == 0 {
            self.kept = self.kept.saturating_add(n as u64);
            return n;
        }
        let room = self.limit.saturating_sub(self.kept);
        let keep = (n as u64).min(room);
        self.kept += keep;
        if n as u64 > room {
            self.exceeded = true;
        }
        keep as usize
    }

    pub fn exceeded(&self) -> bool {
        self.exceeded
    }
}

/// The reason a job was killed, as `jobs/N/killed` holds it.
fn reason(limit: u64) -> String {
    format!("output limit of {limit} bytes exceeded")
}

/// What the container's event says when a job's output no longer fits its
/// disk image.
fn dropped_event(job: &str) -> String {
    format!("job {job}: output dropped, the container's disk limit is reached")
}

/// A container with a disk image pays for its jobs' logs there: the logs
/// live outside the image (host helpers hold them open, which would keep
/// the image from being unmounted at destroy), so as many bytes as the logs
/// keep are allocated in `tmp/disk/job-output`, a file of the image outside
/// the container's view (skeleton/disk.sh makes it with the image, so no
/// inode is needed later). What the logs hold is then space the container
/// cannot use; output that no longer fits is dropped, as a full disk drops
/// a write, and the job goes on (it may be the one freeing space).
struct DiskCharge {
    path: PathBuf,
}

impl DiskCharge {
    fn open(instance: &Instance) -> Option<DiskCharge> {
        crate::disk::has_image(instance).then(|| DiskCharge {
            path: instance.path.join("tmp/disk/job-output"),
        })
    }

    /// Allocate `n` more bytes; false when the image has no room for them.
    /// Opened for each charge and closed at once: held open, it would keep
    /// destroy from unmounting the image while the recorder finishes.
    fn charge(&self, n: usize) -> bool {
        match self.try_charge(n) {
            Ok(()) => true,
            Err(e) => !matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)),
        }
    }

    fn try_charge(&self, n: usize) -> io::Result<()> {
        // Missing: the image is gone (a destroy) or predates the file.
        let file = match fs::OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        // At the end as it is now: recorders of several jobs share it.
        let end = file.metadata()?.len();
        nix::fcntl::fallocate(
            file.as_raw_fd(),
            nix::fcntl::FallocateFlags::empty(),
            end as libc::off_t,
            n as libc::off_t,
        )
        .map_err(io::Error::from)
    }
}

/// A job's two logs and what may still go into them: the container's
/// limit, its disk image, the hunt for a job over its limit. Both
/// recorders feed it, the process one from iomux-link's pipes ([`record`]),
/// wardend's from iomux-spawn's sockets ([`crate::attach`]).
pub struct Logs {
    instance: Instance,
    dir: PathBuf,
    limit: u64,
    files: [File; 2],
    budget: Budget,
    disk: Option<DiskCharge>,
    disk_full: bool,
    write_failed: [bool; 2],
    killer: Option<std::thread::JoinHandle<()>>,
}

impl Logs {
    /// The logs of the job in `dir`, opened for appending (made when
    /// missing); the budget goes on from what they already hold.
    pub fn open(instance: &Instance, dir: &Path) -> Result<Logs> {
        let limit = limit(instance);
        let files = [
            open_private(&dir.join("stdout.log"), true)?,
            open_private(&dir.join("stderr.log"), true)?,
        ];
        let kept = files
            .iter()
            .map(|f| f.metadata().map(|m| m.len()).unwrap_or(0))
            .sum();
        let budget = Budget::new(limit, kept, dir.join("killed").exists());
        // A recorder started again after the job was found over its limit
        // hunts it down again: the last one may have died doing so.
        let killer = budget.exceeded().then(|| start_killer(instance, dir));
        Ok(Logs {
            instance: instance.clone(),
            dir: dir.to_path_buf(),
            limit,
            files,
            budget,
            disk: DiskCharge::open(instance),
            disk_full: false,
            write_failed: [false; 2],
            killer,
        })
    }

    /// Appends what may be kept of `bytes`, which stream `index` (0 stdout,
    /// 1 stderr) just produced; past the limit, the job is killed.
    pub fn append(&mut self, index: usize, bytes: &[u8]) {
        let mut keep = self.budget.take(bytes.len());
        if keep > 0 && !self.disk_full {
            if let Some(d) = &self.disk {
                self.disk_full = !d.charge(keep);
                if self.disk_full {
                    note_dropped(&self.instance, &self.dir);
                }
            }
        }
        if self.disk_full {
            keep = 0;
        }
        if keep > 0 && !self.write_failed[index] {
            // A full disk must not stop the job: what cannot be kept is
            // dropped, and said once.
            if let Err(e) = self.files[index].write_all(&bytes[..keep]) {
                self.write_failed[index] = true;
                eprintln!(
                    "wardenctl: append to the log of {}: {e}",
                    self.dir.display()
                );
            }
        }
        if self.budget.exceeded() && self.killer.is_none() {
            mark_killed(&self.instance, &self.dir, self.limit);
            self.killer = Some(start_killer(&self.instance, &self.dir));
        }
    }

    /// Waits for the hunt of a job over its limit, if there was one.
    pub fn finish(self) {
        if let Some(killer) = self.killer {
            let _ = killer.join();
        }
    }
}

/// Runs `link` (iomux-link for the job in `dir`) with its output through
/// pipes into `dir`'s logs, within the container's limit; returns its exit
/// status.
pub fn record(instance: &Instance, dir: &Path, mut link: Command) -> Result<ExitStatus> {
    let mut logs = Logs::open(instance, dir)?;
    let mut child = link
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::io(format!("run iomux-link for {}", dir.display())))?;
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(Error::Tool("iomux-link started without its pipes".into()));
    };
    for fd in [out.as_raw_fd(), err.as_raw_fd()] {
        // Narrower pipes still work, in smaller steps.
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    let mut pipes = [
        Some(File::from(OwnedFd::from(out))),
        Some(File::from(OwnedFd::from(err))),
    ];
    let mut buf = vec![0u8; CHUNK];
    while pipes.iter().any(Option::is_some) {
        let ready = match wait_readable(&pipes) {
            Ok(ready) => ready,
            Err(e) => {
                // Nothing to wait on that we could trust: kill the link
                // rather than spin; the job's output is still in iomux-spawn.
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        for i in ready {
            let Some(pipe) = pipes[i].as_mut() else {
                continue;
            };
            match pipe.read(&mut buf) {
                Ok(0) => pipes[i] = None,
                Ok(n) => logs.append(i, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => pipes[i] = None,
            }
        }
    }
    let status = child.wait().map_err(Error::io(format!(
        "wait for iomux-link of {}",
        dir.display()
    )))?;
    logs.finish();
    Ok(status)
}

/// Bytes a log holds past its saved cursor were appended by a recorder
/// that died before it saved the cursors; the next link delivers them
/// again from the cursor on, so they go and the log stays exact. A log
/// behind its cursor (output past the limit, or dropped on a full disk) is
/// left as it is. Positions wrap at 2^32 as iomux's do.
pub fn trim_to_cursors(dir: &Path) {
    if dir.join("killed").exists() {
        return;
    }
    let cursors = match wire::iomux::Cursors::read(&dir.join("cursors")) {
        Ok(c) => c.unwrap_or_default(),
        Err(_) => return,
    };
    for stream in wire::iomux::Stream::ALL {
        let path = dir.join(format!("{}.log", stream.name()));
        let Ok(file) = fs::OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        let Ok(len) = file.metadata().map(|m| m.len()) else {
            continue;
        };
        let ahead = (len as u32).wrapping_sub(cursors.get(stream));
        if ahead != 0 && ahead < 1 << 31 && u64::from(ahead) <= len {
            if let Err(e) = file.set_len(len - u64::from(ahead)) {
                eprintln!("wardenctl: trim {}: {e}", path.display());
            }
        }
    }
}

/// Indexes of the pipes that have something to read (or hung up).
fn wait_readable(pipes: &[Option<File>; 2]) -> Result<Vec<usize>> {
    let open: Vec<usize> = (0..pipes.len()).filter(|&i| pipes[i].is_some()).collect();
    let mut fds: Vec<PollFd<'_>> = open
        .iter()
        .filter_map(|&i| pipes[i].as_ref())
        .map(|p| PollFd::new(p.as_fd(), PollFlags::POLLIN))
        .collect();
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(Error::Io {
                    context: "poll iomux-link's output".into(),
                    source: e.into(),
                })
            }
        }
    }
    Ok(open
        .into_iter()
        .zip(fds.iter())
        .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
        .map(|(i, _)| i)
        .collect())
}

/// `jobs/N/killed` and the container's event, before the kill, so that
/// whoever sees the job end can also see why.
fn note_dropped(instance: &Instance, dir: &Path) {
    let job = dir.file_name().unwrap_or_default().to_string_lossy();
    let event = Event::now(Kind::OutputDropped, dropped_event(&job));
    if let Err(e) = record_warden(instance, &with_job(event, &job)) {
        eprintln!("wardenctl: {e}");
    }
}

/// The job's number on its event, when its directory is named by one.
fn with_job(event: Event, job: &str) -> Event {
    match job.parse() {
        Ok(n) => event.with_job(n),
        Err(_) => event,
    }
}

fn mark_killed(instance: &Instance, dir: &Path, limit: u64) {
    let why = reason(limit);
    if let Err(e) = write_atomic(&dir.join("killed"), format!("{why}\n").as_bytes()) {
        eprintln!("wardenctl: {e}");
    }
    let job = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let event = Event::now(Kind::JobKilled, format!("job {job} killed: {why}"));
    if let Err(e) = record_warden(instance, &with_job(event, &job)) {
        eprintln!("wardenctl: {e}");
    }
}

fn start_killer(instance: &Instance, dir: &Path) -> std::thread::JoinHandle<()> {
    let instance = instance.clone();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || kill_job(&instance, &dir))
}

/// Kills the job in `dir`: every process of the container holding one of
/// the pipes its wsh (or iomux-spawn) got from wshd, again until none is
/// left; a wsh itself only when that does not end it (a process out of
/// reach still holds a pipe), so that the job ends in any case.
pub fn kill_job(instance: &Instance, dir: &Path) {
    let Some(wsh) = job_wsh(instance, dir) else {
        return;
    };
    let pipes = pipes_of(wsh);
    let wshd = process::read_pid(&instance.path.join("run/wshd.pid"));
    let id = instance
        .config()
        .ok()
        .and_then(|c| c.id().map(str::to_string));
    if let (false, Some(id)) = (pipes.is_empty(), id) {
        poll_until(KILL_TIMEOUT, || {
            let victims: Vec<i32> = container_pids(&id)
                .into_iter()
                // wshd holds the write end of the job's exit pipe, whose
                // read end is wsh's too; it is the container, not the job.
                .filter(|&pid| Some(pid) != wshd && holds_any(pid, &pipes))
                .collect();
            for &pid in &victims {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            victims.is_empty()
        });
    }
    // An iomux-spawn that asked wshd itself (`--wshd`) holds the pipes;
    // it ends the job once the shell's status is in, whoever else holds
    // them. Killing it would lose that status.
    if process::read_pid(&dir.join("spawn.pid")) == Some(wsh) {
        return;
    }
    let socket = instance.socket();
    if !poll_until(KILL_TIMEOUT, || !process::alive_with(wsh, &socket)) {
        let _ = kill(Pid::from_raw(wsh), Signal::SIGKILL);
    }
}

/// The host process holding the job's pipes (`child_pid=` in spawn.out):
/// iomux-spawn's child wsh, or iomux-spawn itself when it asked wshd
/// (`--wshd`); if it still runs and talks to this container's wshd (a pid
/// can be reused).
fn job_wsh(instance: &Instance, dir: &Path) -> Option<i32> {
    let out = fs::read_to_string(dir.join("spawn.out")).ok()?;
    let pid = out
        .lines()
        .find_map(|l| l.strip_prefix("child_pid="))?
        .trim()
        .parse()
        .ok()?;
    process::alive_with(pid, &instance.socket()).then_some(pid)
}

/// What `fd` of `pid` is (`pipe:[INODE]`, `socket:[...]`, a path).
fn fd_target(pid: i32, fd: &OsString) -> Option<OsString> {
    fs::read_link(PathBuf::from(format!("/proc/{pid}/fd")).join(fd))
        .ok()
        .map(PathBuf::into_os_string)
}

/// The pipes among the holder's descriptors past 0-2 (those are its own:
/// to iomux-spawn, or iomux-spawn's script and log files): the job's
/// stdin, stdout, stderr and exit pipes.
fn pipes_of(wsh: i32) -> HashSet<OsString> {
    let Ok(entries) = fs::read_dir(format!("/proc/{wsh}/fd")) else {
        return HashSet::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|fd| {
            fd.to_str()
                .and_then(|s| s.parse::<u32>().ok())
                .is_some_and(|n| n > 2)
        })
        .filter_map(|fd| fd_target(wsh, &fd))
        .filter(|t| t.as_encoded_bytes().starts_with(b"pipe:"))
        .collect()
}

fn holds_any(pid: i32, pipes: &HashSet<OsString>) -> bool {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| fd_target(pid, &e.file_name()))
        .any(|t| pipes.contains(&t))
}

/// Every process in any of the container's groups, as the scripts find
/// them (lib/common.sh's all_instance_pids): the v2 group, and the group in
/// each mounted v1 hierarchy.
fn container_pids(id: &str) -> Vec<i32> {
    let parent =
        std::env::var("WARDEN_CGROUP2_PARENT").unwrap_or_else(|_| "/sys/fs/cgroup".to_string());
    let mut groups = vec![PathBuf::from(parent)];
    if let Ok(mounts) = fs::read_to_string("/proc/self/mounts") {
        groups.extend(mounts.lines().filter_map(|l| {
            let mut f = l.split_whitespace();
            let mount_point = f.nth(1)?;
            (f.next() == Some("cgroup")).then(|| PathBuf::from(mount_point))
        }));
    }
    let mut pids: Vec<i32> = groups
        .iter()
        .filter_map(|g| fs::read_to_string(g.join(format!("instance-{id}/cgroup.procs"))).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_up_to_the_limit_and_no_more() {
        let mut b = Budget::new(10, 0, false);
        assert_eq!(b.take(4), 4);
        assert_eq!(b.take(6), 6);
        assert!(!b.exceeded(), "exactly the limit is allowed");
        assert_eq!(b.take(1), 0);
        assert!(b.exceeded());
        assert_eq!(b.take(5), 0);

        let mut b = Budget::new(10, 8, false);
        assert_eq!(b.take(5), 2, "what fits of a chunk is kept");
        assert!(b.exceeded());

        let mut b = Budget::new(0, 0, false);
        assert_eq!(b.take(usize::MAX / 2), usize::MAX / 2);
        assert!(!b.exceeded(), "0 is unlimited");

        let mut b = Budget::new(10, 0, true);
        assert_eq!(b.take(1), 0, "a job found over its limit keeps nothing");
    }

    #[test]
    fn the_limit_comes_from_etc_config_or_the_default() {
        let root =
            std::env::temp_dir().join(format!("wardenctl-output-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("etc")).unwrap();
        let instance = Instance {
            handle: "h".into(),
            path: root.clone(),
        };
        assert_eq!(limit(&instance), DEFAULT_JOB_OUTPUT_LIMIT);
        fs::write(root.join("etc/config"), "id='x'\njob_output_limit='0'\n").unwrap();
        assert_eq!(limit(&instance), 0);
        fs::write(root.join("etc/config"), "job_output_limit='lots'\n").unwrap();
        assert_eq!(limit(&instance), DEFAULT_JOB_OUTPUT_LIMIT);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn logs_past_their_cursors_are_trimmed_and_others_left() {
        let dir = std::env::temp_dir().join(format!("wardenctl-trim-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let cursors = |stdout, stderr| {
            wire::iomux::Cursors { stdout, stderr }
                .write(&dir.join("cursors"))
                .unwrap()
        };
        let logs = |out: &[u8], err: &[u8]| {
            fs::write(dir.join("stdout.log"), out).unwrap();
            fs::write(dir.join("stderr.log"), err).unwrap();
        };
        let read = |name: &str| fs::read(dir.join(name)).unwrap();

        // Ahead: appended, cursors not saved; behind: dropped output.
        logs(b"abcdef", b"xy");
        cursors(4, 5);
        trim_to_cursors(&dir);
        assert_eq!(read("stdout.log"), b"abcd");
        assert_eq!(read("stderr.log"), b"xy");

        // No cursors file: the next link starts at 0.
        fs::remove_file(dir.join("cursors")).unwrap();
        trim_to_cursors(&dir);
        assert_eq!(read("stdout.log"), b"");

        // Positions wrap at 2^32: a cursor at 2^32-1 is 7 short of a
        // 6-byte log, which cannot be that far ahead (a log that did not
        // start at 0): left.
        logs(b"abcdef", b"");
        cursors(u32::MAX, 0);
        trim_to_cursors(&dir);
        assert_eq!(read("stdout.log"), b"abcdef");

        // A job over its limit keeps what it kept.
        logs(b"abcdef", b"");
        cursors(1, 0);
        fs::write(dir.join("killed"), b"output limit\n").unwrap();
        trim_to_cursors(&dir);
        assert_eq!(read("stdout.log"), b"abcdef");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reasons_name_the_limit() {
        assert_eq!(reason(10485760), "output limit of 10485760 bytes exceeded");
        assert_eq!(
            dropped_event("3"),
            "job 3: output dropped, the container's disk limit is reached"
        );
    }
}
