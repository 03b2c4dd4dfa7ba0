//! Jobs: a script fed to a shell in the container, run under iomux-spawn,
//! read with iomux-link, as a Warden server does. iomux-spawn asks the
//! container's wshd for the shell itself (`iomux-spawn --wshd`, the request
//! wsh would send) when the container's iomux-spawn can, else through a wsh
//! child, as the Ruby server runs it ([`crate::exits::spawn_asks_wshd`]).
//! Every job lives in INSTANCE/jobs/N:
//!
//! | file           | written by  | holds                                          |
//! |----------------|-------------|------------------------------------------------|
//! | script         | spawn       | the shell script (the job's stdin)             |
//! | spawn.out/.err | iomux-spawn | its own output (`child_pid=`: wsh, or iomux-spawn itself; `child active`) |
//! | spawn.pid      | spawn       | iomux-spawn's pid                              |
//! | *.sock, status, *.tail | iomux-spawn | its sockets and end-of-job files       |
//! | record.pid     | spawn       | the recorder's pid                             |
//! | record.lock    | recorder    | flocked by the recorder while it runs          |
//! | discard_output | spawn       | present: the recorder keeps no output          |
//! | cursors        | iomux-link  | the recorder's positions                       |
//! | stdout.log, stderr.log | recorder | what the job wrote, up to the output limit |
//! | killed         | recorder    | why the job was killed (its output limit)      |
//! | wsh.status     | wsh or iomux-spawn | how the job's shell ended (`exited N`, `signaled N`), see [`crate::exits`] |
//! | exit_status    | recorder    | the job's exit code, once it has ended         |
//!
//! Every file is 0600 and the directory 0700, whatever the umask: a job's
//! output is no other host user's business.
//!
//! The recorder (`wardenctl __record JOBDIR`) is the one client iomux-spawn
//! waits for: it runs `iomux-link -w JOBDIR/cursors JOBDIR` and appends its
//! output to the logs, within the container's `job_output_limit` (past it
//! the job is killed, see [`crate::output`]). It and iomux-spawn run in
//! sessions of their own with their stdio on files, so a wardenctl killed
//! at any point kills neither; `link` and `stream` read the logs, so they work the same while
//! the job runs, after it ended, and any number of times. A job found
//! without a recorder (the wardenctl that spawned it died first) gets a new
//! one from the next `link` or `stream`; iomux-link's cursors file makes it
//! continue where the last one stopped.
//!
//! A caller that waits for the job at once and outlives it (wardend's and
//! wardenctl's `run`) records it itself instead, on the waiting thread or
//! a thread of its own ([`run_attached`], [`run_here`], see
//! [`crate::attach`]): no recorder process, no `record.pid`; the recording
//! holds `record.lock` and keeps the cursors file, so that a recorder
//! process can take over if the caller dies.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::shell_quote;
use crate::depot::Depot;
use crate::errors::{Error, Result};
pub use crate::exits::JobEnd;
use crate::instance::{
    create_private_dir, open_private, poll_until, write_atomic, Instance, State,
};
use crate::process;
use crate::scripts;

/// The resource limits wsh reads from its environment (`RLIMIT_<NAME>`).
/// How often link and stream make sure a running job has its recorder.
const RECORDER_CHECK: Duration = Duration::from_millis(200);

pub const RLIMITS: [&str; 15] = [
    "AS",
    "CORE",
    "CPU",
    "DATA",
    "FSIZE",
    "LOCKS",
    "MEMLOCK",
    "MSGQUEUE",
    "NICE",
    "NOFILE",
    "NPROC",
    "RSS",
    "RTPRIO",
    "SIGPENDING",
    "STACK",
];

#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    /// Run as root (when `user` is None).
    pub privileged: bool,
    /// The user to run as; None: root when `privileged`, else vcap.
    pub user: Option<String>,
    /// Exported (in this order) after the image's Env, before the script.
    pub env: Vec<(String, String)>,
    /// Working directory, after the image's WorkingDir.
    pub dir: Option<String>,
    /// (`RLIMIT_NAME`, `"CUR MAX"`) pairs, from [`parse_rlimit`].
    pub rlimits: Vec<(String, String)>,
    pub discard_output: bool,
    pub script: Vec<u8>,
    /// Leave out the image's Env and WorkingDir (a container whose rootfs
    /// was imported starts every job with them, see [`crate::image`]).
    pub no_image_env: bool,
    /// Run the image's Entrypoint followed by these words, or by its Cmd
    /// when there are none; `script` is not used.
    pub image_cmd: Option<Vec<String>>,
}

/// `NAME=CUR[:MAX]`, NAME as in `RLIMITS` (any case, `RLIMIT_` optional),
/// values numbers or `unlimited`/`infinity`.
pub fn parse_rlimit(arg: &str) -> Result<(String, String)> {
    let bad = |why: &str| Error::BadArgument(format!("invalid rlimit {arg:?}: {why}"));
    let (name, values) = arg
        .split_once('=')
        .ok_or_else(|| bad("want NAME=CUR[:MAX]"))?;
    let name = name.to_ascii_uppercase();
    let name = name.strip_prefix("RLIMIT_").unwrap_or(&name).to_string();
    if !RLIMITS.contains(&name.as_str()) {
        return Err(bad(&format!(
            "unknown limit (one of {})",
            RLIMITS.join(", ")
        )));
    }
    let value = |v: &str| -> Result<u64> {
        match v {
            "unlimited" | "infinity" => Ok(u64::MAX),
            v => v
                .parse()
                .map_err(|_| bad(&format!("{v:?} is not a number"))),
        }
    };
    let (cur, max) = match values.split_once(':') {
        Some((cur, max)) => (value(cur)?, value(max)?),
        None => {
            let v = value(values)?;
            (v, v)
        }
    };
    if cur > max {
        return Err(bad("CUR is above MAX"));
    }
    Ok((format!("RLIMIT_{name}"), format!("{cur} {max}")))
}

/// `NAME=VALUE` for `--env`: NAME a shell name (the script exports it).
pub fn parse_env(arg: &str) -> Result<(String, String)> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| Error::BadArgument(format!("invalid --env {arg:?}: want NAME=VALUE")))?;
    check_env_name(name)?;
    Ok((name.to_string(), value.to_string()))
}

fn check_env_name(name: &str) -> Result<()> {
    if crate::image::is_shell_name(name) {
        Ok(())
    } else {
        Err(Error::BadArgument(format!(
            "invalid environment variable name {name:?}: letters, digits and _, not starting with a digit"
        )))
    }
}

/// A user name wsh may send: what useradd takes (letters, digits, `.`,
/// `_`, `-`, a final `$`), not starting with `-`, at most 32 bytes (wshd
/// looks it up in the container's /etc/passwd).
pub fn check_user(user: &str) -> Result<()> {
    let body = user.strip_suffix('$').unwrap_or(user);
    let ok = !body.is_empty()
        && user.len() <= 32
        && !body.starts_with('-')
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadArgument(format!("invalid user {user:?}")))
    }
}

/// The user a job runs as.
pub fn user_of(opts: &SpawnOptions) -> &str {
    match (&opts.user, opts.privileged) {
        (Some(user), _) => user,
        (None, true) => "root",
        (None, false) => "vcap",
    }
}

/// `--env` and `--dir` as shell lines: exported and entered by the job's
/// shell, so that they come after (and win over) the image's, and work
/// whatever request version the container's wshd speaks.
fn user_preamble(opts: &SpawnOptions) -> Vec<u8> {
    let mut s = String::new();
    for (k, v) in &opts.env {
        s.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    if let Some(dir) = &opts.dir {
        s.push_str(&format!("cd {} || exit 1\n", shell_quote(dir)));
    }
    s.into_bytes()
}

/// A script running ARGV: every word quoted, exec'd so the job's status is
/// the command's.
pub fn script_for_argv(argv: &[String]) -> Vec<u8> {
    let words: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    format!("exec {}\n", words.join(" ")).into_bytes()
}

fn jobs_dir(instance: &Instance) -> PathBuf {
    instance.path.join("jobs")
}

fn job_dir(instance: &Instance, job: &str) -> Result<PathBuf> {
    let unknown = || Error::UnknownJob {
        handle: instance.handle.clone(),
        job: job.to_string(),
    };
    let n: u32 = job.parse().map_err(|_| unknown())?;
    let dir = jobs_dir(instance).join(n.to_string());
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(unknown())
    }
}

fn job_ids(instance: &Instance) -> Vec<u32> {
    let mut ids: Vec<u32> = fs::read_dir(jobs_dir(instance))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// Where a job that has not ended is marked: `jobs/.running/N`, made
/// before the job starts and removed once its exit status is recorded, so
/// that finding the running jobs (every info) reads one small directory,
/// not every job a long-lived container ever ran.
const RUNNING_DIR: &str = ".running";

fn running_dir(instance: &Instance) -> PathBuf {
    jobs_dir(instance).join(RUNNING_DIR)
}

/// Jobs that have not ended yet.
pub fn running(instance: &Instance) -> Vec<u32> {
    let marks = running_dir(instance);
    let Ok(entries) = fs::read_dir(&marks) else {
        // Jobs from before the marks (or none yet): look at every one.
        return job_ids(instance)
            .into_iter()
            .filter(|id| !has_ended(&jobs_dir(instance).join(id.to_string())))
            .collect();
    };
    let mut ids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|id: &u32| {
            let dir = jobs_dir(instance).join(id.to_string());
            if dir.is_dir() && !has_ended(&dir) {
                return true;
            }
            // Ended (its recorder died before clearing the mark) or gone.
            let _ = fs::remove_file(marks.join(id.to_string()));
            false
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn has_ended(dir: &Path) -> bool {
    dir.join("exit_status").exists()
}

/// Records the job's exit code (`exit_status`), then its event, and
/// clears its running mark.
pub(crate) fn record_exit(dir: &Path, code: i32) -> Result<()> {
    write_exit_status(dir, code)?;
    note_exit(dir, code)
}

/// The job's end as everyone waiting on it sees it.
pub(crate) fn write_exit_status(dir: &Path, code: i32) -> Result<()> {
    write_atomic(&dir.join("exit_status"), format!("{code}\n").as_bytes())
}

/// After `write_exit_status`: the job's event and its running mark, which
/// nobody waits on (a mark left behind is cleared by the next reader).
pub(crate) fn note_exit(dir: &Path, code: i32) -> Result<()> {
    // The recorder is who sees the job end: the event is its to write,
    // with the signal when wsh's status (or iomux-spawn's) names one.
    if let Ok(instance) = instance_of_job(dir) {
        let end = crate::exits::JobEnd::read(&instance, dir, code);
        crate::events::note(
            &instance,
            &crate::events::Event::job_exit(end.job, Some(code), end.signal),
        );
    }
    if let (Some(jobs), Some(id)) = (dir.parent(), dir.file_name()) {
        match fs::remove_file(jobs.join(RUNNING_DIR).join(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(format!(
                    "clear the running mark of {}",
                    dir.display()
                ))(e))
            }
        }
    }
    Ok(())
}

/// Keeps `next` in the hint file, written in place: renaming a new file
/// over the old one, as every other job file is written, makes ext4 (with
/// its default auto_da_alloc) allocate the new file's blocks and start
/// their writeback within the rename, a third of a millisecond on every
/// spawn. Fixed width, so that a shorter number leaves no stale digits;
/// a reader that catches it half-written reads a wrong hint, which costs
/// it a few mkdirs or a read of the directory, never a reused id.
fn write_hint(path: &Path, next: u32) {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        // Overwritten in place: a truncate would show readers an empty file.
        .truncate(false)
        .mode(0o600)
        .open(path)
        .and_then(|f| f.write_all_at(format!("{next:010}\n").as_bytes(), 0));
    if written.is_err() {
        // Without a hint the next spawn reads the directory.
        let _ = fs::remove_file(path);
    }
}

/// A new job directory: one more than the highest, made atomically, and
/// marked running.
fn new_job_dir(instance: &Instance) -> Result<(u32, PathBuf)> {
    let root = jobs_dir(instance);
    create_private_dir(&root)?;
    let marks = running_dir(instance);
    if create_private_dir(&marks)? {
        // The first job with marks: those of older jobs still running are
        // made, so the marks are the whole truth from now on.
        for id in job_ids(instance) {
            if !has_ended(&root.join(id.to_string())) {
                create_file(&marks.join(id.to_string()))?;
            }
        }
    }
    // The next id is kept in `jobs/.next`, a hint: reading every job's
    // name to find the highest costs a long-lived container more with each
    // job. A stale hint (a wardenctl that predates it) costs a few mkdirs,
    // and past a few the directory is read after all.
    let hint = root.join(NEXT_FILE);
    let mut next = fs::read_to_string(&hint)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| job_ids(instance).last().copied().unwrap_or(0) + 1);
    let mut taken = 0;
    loop {
        let dir = root.join(next.to_string());
        if create_private_dir(&dir)? {
            create_file(&marks.join(next.to_string()))?;
            // Only a hint: a failure to keep it costs the next spawn a read.
            write_hint(&hint, next + 1);
            return Ok((next, dir));
        }
        taken += 1;
        next = if taken == 8 {
            job_ids(instance).last().copied().unwrap_or(0) + 1
        } else {
            next + 1
        };
    }
}

/// The next job id's hint, in the jobs directory.
const NEXT_FILE: &str = ".next";

fn create_file(path: &Path) -> Result<File> {
    open_private(path, false)
}

pub fn spawn(depot: &Depot, handle: &str, opts: &SpawnOptions) -> Result<u32> {
    spawn_with(depot, handle, opts, Recorder::Process).map(|(id, _)| id)
}

/// As [`spawn`], the job to be recorded by this process rather than a
/// recorder process (see [`crate::attach`]): for a caller that waits for
/// the job's end at once and outlives it.
fn attached(
    depot: &Depot,
    handle: &str,
    opts: &SpawnOptions,
    recorder: Recorder,
) -> Result<(u32, crate::attach::Attached)> {
    let (id, attached) = spawn_with(depot, handle, opts, recorder)?;
    let attached = attached.ok_or_else(|| Error::Tool("the job has no recorder".into()))?;
    Ok((id, attached))
}

/// Who records a new job.
#[derive(Clone, Copy)]
enum Recorder {
    /// A recorder process of its own (`wardenctl __record`).
    Process,
    /// The caller, which waits for the job's end ([`crate::attach`]).
    /// iomux-spawn is started by posix_spawn when no terminal's signals
    /// can reach it before it makes its own session (wardend), else by fork
    /// with the session made before exec.
    Caller { posix_spawn: bool },
}

fn spawn_with(
    depot: &Depot,
    handle: &str,
    opts: &SpawnOptions,
    recorder: Recorder,
) -> Result<(u32, Option<crate::attach::Attached>)> {
    let instance = Instance::open(depot, handle)?;
    let _lock = instance.lock(false)?;
    instance.require_state("spawn", &[State::Active])?;
    check_user(user_of(opts))?;
    for (name, _) in &opts.env {
        check_env_name(name)?;
    }
    if opts
        .dir
        .as_deref()
        .is_some_and(|d| d.is_empty() || d.contains('\0'))
    {
        return Err(Error::BadArgument(format!("invalid --dir {:?}", opts.dir)));
    }
    let opts = &with_image(&instance, opts)?;
    let (id, dir) = new_job_dir(&instance)?;
    match start_job(&instance, &dir, opts, recorder) {
        Ok(recording) => Ok((id, recording)),
        Err(e) => {
            kill_job_processes(&dir);
            let _ = fs::remove_dir_all(&dir);
            let _ = fs::remove_file(running_dir(&instance).join(id.to_string()));
            Err(e)
        }
    }
}

/// Spawn, then wait for the job's end and take its output (wardend's
/// `run`), the job recorded by the waiting thread itself; gives up with
/// [`Error::Cancelled`] once `wanted` says the result is no longer (the job
/// goes on, recorded by a thread from then on).
pub fn run_attached(
    depot: &Depot,
    handle: &str,
    opts: &SpawnOptions,
    mut wanted: impl FnMut() -> bool,
) -> Result<(u32, JobResult)> {
    let (id, attached) = attached(depot, handle, opts, Recorder::Caller { posix_spawn: true })?;
    if let crate::attach::Recorded::HandedOver(_) = attached.record(&mut wanted)? {
        return Err(Error::Cancelled);
    }
    // Recorded by now (else the link repairs the recorder and waits).
    let result = link_output_while(depot, handle, &id.to_string(), wanted)?;
    Ok((id, result))
}

/// `run` for a command in front of a terminal (wardenctl): the job is
/// recorded by this process, as wardend's run is, where a
/// recorder process and iomux-link would cost two more processes and the
/// polls between them. SIGINT, SIGTERM, SIGHUP and SIGQUIT, blocked from
/// here on, hand the recording to a recorder process (it continues from
/// the saved cursors once this process is gone) and end the wait with
/// [`Error::Interrupted`]: the job goes on and keeps every byte, as with a
/// recorder from the start. Only a SIGKILL leaves the job without one
/// until the next `link` or `stream` of it starts one.
pub fn run_here(depot: &Depot, handle: &str, opts: &SpawnOptions) -> Result<(u32, JobResult)> {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(signal);
    }
    set.thread_block()
        .map_err(|e| Error::io("block signals")(e.into()))?;
    let signals = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| Error::io("signalfd")(e.into()))?;
    let (id, attached) = {
        let _step = crate::profile::step("spawn");
        attached(depot, handle, opts, Recorder::Caller { posix_spawn: false })?
    };
    let _step = crate::profile::step("link (until the job's exit)");
    let mut caught = None;
    let recorded = attached.record(|| {
        caught = signals
            .read_signal()
            .ok()
            .flatten()
            .map(|s| s.ssi_signo as i32);
        caught.is_none()
    })?;
    if let crate::attach::Recorded::HandedOver(_recording) = recorded {
        // The thread records on until this process is gone.
        let dir = jobs_dir(&Instance::open(depot, handle)?).join(id.to_string());
        // Waits for this process's record.lock, then takes over.
        start_recorder(&dir, opts.discard_output)?;
        return Err(Error::Interrupted {
            signal: caught.unwrap_or(libc::SIGINT),
            handle: handle.to_string(),
            job: id,
        });
    }
    let result = link_output(depot, handle, &id.to_string())?;
    Ok((id, result))
}

/// The job's script as the container's image (when it has one) wants it:
/// its command for `image_cmd`, after the image's Env and WorkingDir.
fn with_image(instance: &Instance, opts: &SpawnOptions) -> Result<SpawnOptions> {
    let record = crate::image::ImageRecord::read(&instance.path.join(crate::image::INSTANCE_FILE))?;
    let mut opts = opts.clone();
    if let Some(args) = opts.image_cmd.take() {
        let record = record.as_ref().ok_or_else(|| {
            Error::BadArgument(format!(
                "container {} has no image (its rootfs was not imported)",
                instance.handle
            ))
        })?;
        let argv = record.command(&args);
        if argv.is_empty() {
            return Err(Error::BadArgument(
                "the image has neither Entrypoint nor Cmd".into(),
            ));
        }
        opts.script = script_for_argv(&argv);
    }
    let mut script = match (&record, opts.no_image_env) {
        (Some(record), false) => record.preamble().into_bytes(),
        _ => Vec::new(),
    };
    script.extend_from_slice(&user_preamble(&opts));
    script.extend_from_slice(&opts.script);
    opts.script = script;
    Ok(opts)
}

fn start_job(
    instance: &Instance,
    dir: &Path,
    opts: &SpawnOptions,
    recorder: Recorder,
) -> Result<Option<crate::attach::Attached>> {
    let script_path = dir.join("script");
    write_atomic(&script_path, &opts.script)?;
    let script =
        File::open(&script_path).map_err(Error::io(format!("open {}", script_path.display())))?;
    let mut argv: Vec<std::ffi::OsString> = vec![instance.path.join("bin/iomux-spawn").into()];
    let status_file = dir.join(crate::exits::WSH_STATUS);
    if crate::exits::spawn_asks_wshd(instance) {
        // The same request wsh would send, without a wsh process.
        argv.extend([
            "--wshd".into(),
            instance.socket().into(),
            "--user".into(),
            user_of(opts).into(),
            "--status-file".into(),
            status_file.into(),
            dir.into(),
        ]);
    } else {
        argv.extend([
            dir.into(),
            instance.wsh().into(),
            "--socket".into(),
            instance.socket().into(),
        ]);
        if crate::exits::wsh_writes_status(instance) {
            argv.extend(["--status-file".into(), status_file.into()]);
        }
        argv.extend(["--user".into(), user_of(opts).into()]);
    }
    argv.push("/bin/sh".into());
    let env: Vec<(std::ffi::OsString, std::ffi::OsString)> = opts
        .rlimits
        .iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let (stdout, stderr) = (
        create_file(&dir.join("spawn.out"))?,
        create_file(&dir.join("spawn.err"))?,
    );
    let forked = crate::zygote::fork_holder(
        &argv,
        &env,
        [script.as_fd(), stdout.as_fd(), stderr.as_fd()],
    );
    let mut spawner = match forked {
        Some(holder) => Spawner::Forked(holder),
        None => {
            let mut command = Command::new(&argv[0]);
            command
                .args(&argv[1..])
                .envs(env)
                .stdin(script)
                .stdout(stdout)
                .stderr(stderr);
            Spawner::Exec(match recorder {
                Recorder::Caller { posix_spawn: true } => {
                    process::spawn_self_detaching(&mut command, "iomux-spawn")?
                }
                _ => process::spawn_detached(&mut command, "iomux-spawn")?,
            })
        }
    };
    write_atomic(
        &dir.join("spawn.pid"),
        format!("{}\n", spawner.id()).as_bytes(),
    )?;

    if let Recorder::Caller { .. } = recorder {
        if opts.discard_output {
            write_atomic(&dir.join("discard_output"), b"")?;
        }
        let lock = lock_recorder(dir, false)?
            .ok_or_else(|| Error::Tool(format!("{} has a recorder already", dir.display())))?;
        let exited = || spawner.has_exited();
        return crate::attach::attach(instance, dir, lock, opts.discard_output, exited)
            .map(Some)
            .map_err(|e| match spawn_error(dir) {
                Some(why) => Error::Tool(format!("iomux-spawn failed: {why}")),
                None => e,
            });
    }

    let spawn_failed = |dir: &Path| {
        let err = fs::read_to_string(dir.join("spawn.err")).unwrap_or_default();
        Error::Tool(format!(
            "iomux-spawn failed{}",
            scripts::last_error_line(&err)
                .map(|l| format!(": {l}"))
                .unwrap_or_default()
        ))
    };
    // Sockets are listening once the child's pid is out.
    let mut exited = false;
    let ready = poll_until(Duration::from_secs(10), || {
        if spawn_output_has(dir, "child_pid=") {
            return true;
        }
        exited = spawner.has_exited();
        exited
    });
    if !ready || exited {
        return Err(spawn_failed(dir));
    }

    if opts.discard_output {
        write_atomic(&dir.join("discard_output"), b"")?;
    }
    start_recorder(dir, opts.discard_output)?;

    // iomux-spawn releases the child once the recorder is connected; from
    // then on the job's output is safe whatever happens to us.
    let mut exited = false;
    let active = poll_until(Duration::from_secs(10), || {
        if spawn_output_has(dir, "child active") || dir.join("exit_status").exists() {
            return true;
        }
        exited = spawner.has_exited();
        exited
    });
    if !active
        || (exited && !dir.join("exit_status").exists() && !spawn_output_has(dir, "child active"))
    {
        return Err(spawn_failed(dir));
    }
    Ok(None)
}

/// A job's iomux-spawn: exec'd by us, or forked by the zygote.
enum Spawner {
    Exec(process::Detached),
    Forked(crate::zygote::Holder),
}

impl Spawner {
    fn id(&self) -> u32 {
        match self {
            Spawner::Exec(child) => child.id(),
            Spawner::Forked(holder) => holder.id(),
        }
    }

    fn has_exited(&mut self) -> bool {
        match self {
            Spawner::Exec(child) => matches!(child.try_wait(), Ok(Some(_))),
            Spawner::Forked(holder) => holder.has_exited(),
        }
    }
}

/// The last line iomux-spawn wrote to its stderr, when it failed.
fn spawn_error(dir: &Path) -> Option<String> {
    let err = fs::read_to_string(dir.join("spawn.err")).ok()?;
    scripts::last_error_line(&err)
}

/// Starts `wardenctl __record DIR` in a session of its own.
fn start_recorder(dir: &Path, discard_output: bool) -> Result<()> {
    let mut recorder =
        Command::new(std::env::current_exe().map_err(Error::io("locate the running executable"))?);
    recorder.arg("__record").arg(dir);
    if discard_output || dir.join("discard_output").exists() {
        recorder.arg("--discard-output");
    }
    recorder
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(create_file(&dir.join("record.err"))?);
    let recorder = process::spawn_detached(&mut recorder, "the job recorder")?;
    write_atomic(
        &dir.join("record.pid"),
        format!("{}\n", recorder.id()).as_bytes(),
    )
}

/// The recorder holds an exclusive flock on `record.lock` for as long as it
/// runs: whether one is running is a question the kernel answers, without
/// trusting pids.
pub(crate) fn lock_recorder(dir: &Path, wait: bool) -> Result<Option<Flock<File>>> {
    let path = dir.join("record.lock");
    let file = crate::depot::open_lock_file(&path)?;
    let arg = if wait {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockExclusiveNonblock
    };
    match Flock::lock(file, arg) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(Error::Io {
            context: format!("flock {}", path.display()),
            source: errno.into(),
        }),
    }
}

fn spawn_output_has(dir: &Path, needle: &str) -> bool {
    fs::read_to_string(dir.join("spawn.out"))
        .map(|s| s.contains(needle))
        .unwrap_or(false)
}

/// The recorder: runs iomux-link until the job ends and writes the job's
/// exit code to `exit_status`, then the container's `job_exit` event
/// ([`crate::events`]). Its own exit code does not matter.
pub fn record(dir: &Path, discard_output: bool) -> Result<()> {
    // One recorder per job; a second one (started by two links repairing at
    // once) waits here and then finds the job recorded.
    let _lock = lock_recorder(dir, true)?;
    if dir.join("exit_status").exists() {
        return Ok(());
    }
    let instance = instance_of_job(dir)?;
    crate::output::trim_to_cursors(dir);
    let link_bin = instance.path.join("bin/iomux-link");
    let mut link = Command::new(&link_bin);
    link.arg("-w")
        .arg(dir.join("cursors"))
        .arg(dir)
        .stdin(Stdio::null());
    let status = if discard_output {
        link.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(Error::io(format!("run {}", link_bin.display())))?
    } else {
        crate::output::record(&instance, dir, link)?
    };
    let link_code = status.code().unwrap_or(255);
    // iomux-spawn's status file, when it writes one, is the authority;
    // otherwise iomux-link's code, once iomux-spawn is gone (a link that
    // was merely interrupted leaves the sockets in place).
    let status_file = || match wire::iomux::read_status_file(dir) {
        Ok(Some(status)) => Some(i32::from(status.link_exit_code())),
        _ => None,
    };
    let code = match status_file() {
        Some(code) => code,
        None => {
            let spawner = process::read_pid(&dir.join("spawn.pid"));
            let spawner_alive = || spawner.is_some_and(|pid| process::alive_with(pid, dir));
            poll_until(Duration::from_secs(5), || !spawner_alive());
            match status_file() {
                Some(code) => code,
                None if dir.join(wire::iomux::STATUS_SOCKET).exists() && spawner_alive() => {
                    return Ok(());
                }
                None => link_code,
            }
        }
    };
    record_exit(dir, code)
}

/// The container a job directory (INSTANCE/jobs/N) belongs to.
fn instance_of_job(dir: &Path) -> Result<Instance> {
    let not_a_job = || Error::BadArgument(format!("{} is not a job directory", dir.display()));
    let path = dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(not_a_job)?
        .to_path_buf();
    let handle = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(not_a_job)?
        .to_string();
    Ok(Instance { handle, path })
}

fn exit_status(dir: &Path) -> Option<i32> {
    fs::read_to_string(dir.join("exit_status"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A job that has not ended must have a recorder; one that lost it (the
/// wardenctl that spawned it was killed before starting it, or it was
/// killed) gets a new one, which continues from the saved cursors or, when
/// the job ended meanwhile, records its end.
fn ensure_recorder(dir: &Path) -> Result<()> {
    if dir.join("exit_status").exists() {
        return Ok(());
    }
    match lock_recorder(dir, false)? {
        None => Ok(()),
        Some(lock) => {
            drop(lock);
            if dir.join("exit_status").exists() {
                return Ok(());
            }
            start_recorder(dir, false)
        }
    }
}

/// Gives every job of the container that has not ended and has no
/// recorder one (a server starting again: the recorders of its `run` jobs
/// were threads of the one that died).
pub fn ensure_recorders(instance: &Instance) {
    for id in running(instance) {
        let dir = jobs_dir(instance).join(id.to_string());
        if let Err(e) = ensure_recorder(&dir) {
            eprintln!("wardenctl: {}: {e}", dir.display());
        }
    }
}

/// Restarts a job's recorder if it died, at most every RECORDER_CHECK: link
/// and stream wait on the recorder's files, which only it writes.
struct RecorderWatch<'a> {
    dir: &'a Path,
    checked: Instant,
}

impl<'a> RecorderWatch<'a> {
    fn new(dir: &'a Path) -> Self {
        RecorderWatch {
            dir,
            checked: Instant::now(),
        }
    }

    fn check(&mut self) -> Result<()> {
        if self.checked.elapsed() <= RECORDER_CHECK {
            return Ok(());
        }
        self.checked = Instant::now();
        ensure_recorder(self.dir)
    }
}

/// A finished job's exit code and output, as `link` returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobResult {
    pub exit_status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Which of a job's output streams a chunk comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamName {
    Stdout,
    Stderr,
}

impl StreamName {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamName::Stdout => "stdout",
            StreamName::Stderr => "stderr",
        }
    }
}

/// Waits for the job to end; returns its exit code and all its output.
pub fn link_output(depot: &Depot, handle: &str, job: &str) -> Result<JobResult> {
    link_output_while(depot, handle, job, || true)
}

/// As [`link_output`], giving up (with [`Error::Cancelled`]) as soon as
/// `wanted` says the result is no longer (a server's client hung up).
pub fn link_output_while(
    depot: &Depot,
    handle: &str,
    job: &str,
    mut wanted: impl FnMut() -> bool,
) -> Result<JobResult> {
    let instance = Instance::open(depot, handle)?;
    let dir = job_dir(&instance, job)?;
    let mut cancelled = false;
    follow_job(&dir, |ended| {
        cancelled = !ended && !wanted();
        ended || cancelled
    })?;
    if cancelled {
        return Err(Error::Cancelled);
    }
    Ok(JobResult {
        exit_status: exit_status(&dir).unwrap_or(255),
        stdout: read_log(&dir.join("stdout.log"))?,
        stderr: read_log(&dir.join("stderr.log"))?,
    })
}

fn read_log(path: &Path) -> Result<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("read {}", path.display()))(e)),
    }
}

/// Waits for the job to end, then writes all its output to ours; returns
/// how it ended.
pub fn link(depot: &Depot, handle: &str, job: &str) -> Result<JobEnd> {
    let (result, end) = link_report(depot, handle, job)?;
    write_out(&mut io::stdout().lock(), &result.stdout)?;
    write_out(&mut io::stderr().lock(), &result.stderr)?;
    Ok(end)
}

/// [`link_output`] and how the job ended.
pub fn link_report(depot: &Depot, handle: &str, job: &str) -> Result<(JobResult, JobEnd)> {
    let result = link_output(depot, handle, job)?;
    let end = end_of(depot, handle, job, result.exit_status)?;
    Ok((result, end))
}

/// How an ended job ended, its recorded code being `code`.
pub fn end_of(depot: &Depot, handle: &str, job: &str, code: i32) -> Result<JobEnd> {
    let instance = Instance::open(depot, handle)?;
    let dir = job_dir(&instance, job)?;
    Ok(JobEnd::read(&instance, &dir, code))
}

fn write_out(out: &mut dyn Write, bytes: &[u8]) -> Result<()> {
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(Error::io("write the job's output"))
}

/// Hands the job's output to `sink` as it comes, from the start, in chunks
/// of at most 64 KiB; returns the job's exit code once it has ended and
/// everything is out. An error from `sink` (its reader went away) ends the
/// stream with that error; the job goes on.
pub fn stream_with(
    depot: &Depot,
    handle: &str,
    job: &str,
    sink: impl FnMut(StreamName, &[u8]) -> io::Result<()>,
) -> Result<i32> {
    stream_while(depot, handle, job, sink, || true)
}

/// As [`stream_with`], giving up (with [`Error::Cancelled`]) once `wanted`
/// says the stream is no longer, even while the job writes nothing.
pub fn stream_while(
    depot: &Depot,
    handle: &str,
    job: &str,
    mut sink: impl FnMut(StreamName, &[u8]) -> io::Result<()>,
    mut wanted: impl FnMut() -> bool,
) -> Result<i32> {
    let instance = Instance::open(depot, handle)?;
    let dir = job_dir(&instance, job)?;
    let mut out = Follower::new(dir.join("stdout.log"));
    let mut err = Follower::new(dir.join("stderr.log"));
    let mut failed = None;
    let mut cancelled = false;
    follow_job(&dir, |ended| {
        let moved = out.pump_to(StreamName::Stdout, &mut sink, &mut failed)
            | err.pump_to(StreamName::Stderr, &mut sink, &mut failed);
        cancelled = !moved && !ended && !wanted();
        failed.is_some() || cancelled || (ended && !moved)
    })?;
    if let Some(e) = failed {
        return Err(Error::io("stream the job's output")(e));
    }
    if cancelled {
        return Err(Error::Cancelled);
    }
    Ok(exit_status(&dir).unwrap_or(255))
}

/// Writes the job's output to ours as it comes, from the start; returns how
/// the job ended once it has and everything is out.
pub fn stream(depot: &Depot, handle: &str, job: &str) -> Result<JobEnd> {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let code = stream_with(depot, handle, job, |name, bytes| {
        let mut out: Box<dyn Write> = match name {
            StreamName::Stdout => Box::new(stdout.lock()),
            StreamName::Stderr => Box::new(stderr.lock()),
        };
        out.write_all(bytes)?;
        out.flush()
    })?;
    end_of(depot, handle, job, code)
}

/// Polls `step(ended)` until it returns true, `ended` telling whether the
/// job's exit status is recorded; until then the recorder is watched, and
/// its failure ends the wait with the error.
fn follow_job(dir: &Path, mut step: impl FnMut(bool) -> bool) -> Result<()> {
    let mut recorder = RecorderWatch::new(dir);
    let mut failure = None;
    poll_until(Duration::MAX, || {
        let ended = dir.join("exit_status").exists();
        if step(ended) {
            return true;
        }
        if !ended {
            if let Err(e) = recorder.check() {
                failure = Some(e);
                return true;
            }
        }
        false
    });
    failure.map_or(Ok(()), Err)
}

/// Follows a growing file.
struct Follower {
    path: PathBuf,
    file: Option<File>,
    pos: u64,
}

impl Follower {
    fn new(path: PathBuf) -> Self {
        Follower {
            path,
            file: None,
            pos: 0,
        }
    }

    /// Copies what is new; true when anything was.
    #[cfg(test)]
    fn pump(&mut self, out: &mut dyn Write) -> bool {
        let mut failed = None;
        self.pump_to(
            StreamName::Stdout,
            &mut |_, bytes: &[u8]| out.write_all(bytes),
            &mut failed,
        )
    }

    /// Hands what is new to `sink`, chunk by chunk; true when anything was.
    /// A sink error is kept in `failed` and stops the copy.
    fn pump_to(
        &mut self,
        name: StreamName,
        sink: &mut impl FnMut(StreamName, &[u8]) -> io::Result<()>,
        failed: &mut Option<io::Error>,
    ) -> bool {
        if failed.is_some() {
            return false;
        }
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(file) = self.file.as_mut() else {
            return false;
        };
        if file.seek(SeekFrom::Start(self.pos)).is_err() {
            return false;
        }
        let mut buf = vec![0u8; 65536];
        let mut moved = false;
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.pos += n as u64;
                    moved = true;
                    if let Err(e) = sink(name, &buf[..n]) {
                        *failed = Some(e);
                        break;
                    }
                }
            }
        }
        moved
    }
}

/// Spawn then link ([`run_here`]), the job's output written to ours once
/// it has ended.
pub fn run(depot: &Depot, handle: &str, opts: &SpawnOptions) -> Result<JobEnd> {
    let (result, end) = run_report(depot, handle, opts)?;
    write_out(&mut io::stdout().lock(), &result.stdout)?;
    write_out(&mut io::stderr().lock(), &result.stderr)?;
    Ok(end)
}

/// [`run_here`] and how the job ended.
pub fn run_report(depot: &Depot, handle: &str, opts: &SpawnOptions) -> Result<(JobResult, JobEnd)> {
    let (id, result) = run_here(depot, handle, opts)?;
    let end = end_of(depot, handle, &id.to_string(), result.exit_status)?;
    Ok((result, end))
}

/// Waits (up to `timeout`) for every job to have an exit status.
pub fn wait_all(instance: &Instance, timeout: Duration) {
    poll_until(timeout, || running(instance).is_empty());
}

fn kill_job_processes(dir: &Path) {
    for name in ["spawn.pid", "record.pid"] {
        if let Some(pid) = process::read_pid(&dir.join(name)) {
            if process::alive_with(pid, dir) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// After the container is gone: gives every job's host-side helpers a moment
/// to see their job end, then kills what is left of them.
pub fn reap(instance: &Instance) {
    let dirs: Vec<PathBuf> = job_ids(instance)
        .into_iter()
        .map(|id| jobs_dir(instance).join(id.to_string()))
        .collect();
    let alive = |dir: &PathBuf| {
        ["spawn.pid", "record.pid"].iter().any(|name| {
            process::read_pid(&dir.join(name)).is_some_and(|pid| process::alive_with(pid, dir))
        })
    };
    poll_until(Duration::from_secs(5), || !dirs.iter().any(alive));
    for dir in &dirs {
        kill_job_processes(dir);
    }
    // A wardenctl killed between starting a helper and writing its pid file
    // leaves one no pid file names; its command line names the instance.
    let marker = instance.path.join("jobs");
    for pid in process::pids_mentioning(&marker) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    poll_until(Duration::from_secs(2), || {
        !dirs.iter().any(alive) && process::pids_mentioning(&marker).is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimits_parse() {
        assert_eq!(
            parse_rlimit("nofile=100:200").unwrap(),
            ("RLIMIT_NOFILE".to_string(), "100 200".to_string())
        );
        assert_eq!(
            parse_rlimit("RLIMIT_CORE=0").unwrap(),
            ("RLIMIT_CORE".to_string(), "0 0".to_string())
        );
        assert_eq!(
            parse_rlimit("as=unlimited").unwrap().1,
            format!("{} {}", u64::MAX, u64::MAX)
        );
        for bad in [
            "nofile",
            "bogus=1",
            "nofile=x",
            "nofile=2:1",
            "nofile=1:2:3",
        ] {
            assert_eq!(parse_rlimit(bad).unwrap_err().exit_code(), 5, "{bad}");
        }
    }

    #[test]
    fn env_and_users_are_checked() {
        assert_eq!(
            parse_env("A_1=x=y").unwrap(),
            ("A_1".to_string(), "x=y".to_string())
        );
        assert_eq!(parse_env("EMPTY=").unwrap().1, "");
        for bad in ["A", "=x", "1A=x", "A-B=x", "A B=x", "\u{e9}=x"] {
            assert_eq!(parse_env(bad).unwrap_err().exit_code(), 5, "{bad}");
        }
        for good in ["vcap", "root", "www-data", "a.b_c", "machine$"] {
            check_user(good).unwrap();
        }
        for bad in ["", "-x", "a b", "a/b", "a:b", "$", &"x".repeat(33)] {
            assert_eq!(check_user(bad).unwrap_err().exit_code(), 5, "{bad}");
        }
        let opts = SpawnOptions {
            privileged: true,
            ..Default::default()
        };
        assert_eq!(user_of(&opts), "root");
        assert_eq!(user_of(&SpawnOptions::default()), "vcap");
        let opts = SpawnOptions {
            env: vec![("A".into(), "it's".into())],
            dir: Some("/a b".into()),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(user_preamble(&opts)).unwrap(),
            "export A='it'\\''s'\ncd '/a b' || exit 1\n"
        );
    }

    #[test]
    fn running_jobs_are_found_from_their_marks() {
        let root = std::env::temp_dir().join(format!("wardenctl-marks-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let instance = Instance {
            handle: "h".into(),
            path: root.clone(),
        };
        let jobs = root.join("jobs");
        // Jobs from before the marks: 1 ended, 2 still running.
        for id in ["1", "2"] {
            fs::create_dir_all(jobs.join(id)).unwrap();
        }
        fs::write(jobs.join("1/exit_status"), "0\n").unwrap();
        assert_eq!(running(&instance), vec![2]);

        // The first new job marks the old running one too.
        let (id, dir) = new_job_dir(&instance).unwrap();
        assert_eq!(id, 3);
        assert!(jobs.join(".running/2").exists() && jobs.join(".running/3").exists());
        assert_eq!(running(&instance), vec![2, 3]);
        record_exit(&dir, 7).unwrap();
        assert_eq!(exit_status(&dir), Some(7));
        assert!(!jobs.join(".running/3").exists());
        assert_eq!(running(&instance), vec![2]);

        // The next id comes from the hint; a stale one costs mkdirs only.
        let hint = fs::read_to_string(jobs.join(".next")).unwrap();
        assert_eq!(hint, "0000000004\n", "fixed width, written in place");
        fs::write(jobs.join(".next"), "1\n").unwrap();
        let (id, dir4) = new_job_dir(&instance).unwrap();
        assert_eq!(id, 4, "past the taken ids");
        record_exit(&dir4, 0).unwrap();
        fs::write(jobs.join(".next"), "junk\n").unwrap();
        assert_eq!(
            new_job_dir(&instance).unwrap().0,
            5,
            "an unreadable hint: the directory"
        );
        fs::remove_dir_all(jobs.join("5")).unwrap();
        fs::remove_file(jobs.join(".running/5")).unwrap();

        // Ended without its mark cleared (its recorder died in between).
        fs::write(jobs.join("2/exit_status"), "1\n").unwrap();
        assert_eq!(running(&instance), Vec::<u32>::new());
        assert!(!jobs.join(".running/2").exists(), "the stale mark goes");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn argv_scripts_quote_every_word() {
        let script = script_for_argv(&["echo".into(), "a b".into(), "it's".into()]);
        assert_eq!(
            String::from_utf8(script).unwrap(),
            "exec echo 'a b' 'it'\\''s'\n"
        );
    }

    #[test]
    fn follower_copies_only_new_bytes() {
        let path = std::env::temp_dir().join(format!("wardenctl-follow-{}", std::process::id()));
        fs::write(&path, b"one").unwrap();
        let mut f = Follower::new(path.clone());
        let mut out = Vec::new();
        assert!(f.pump(&mut out));
        assert!(!f.pump(&mut out));
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"two")
            .unwrap();
        assert!(f.pump(&mut out));
        assert_eq!(out, b"onetwo");
        fs::remove_file(&path).unwrap();
    }
}
