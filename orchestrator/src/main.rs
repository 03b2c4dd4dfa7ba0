//! wardenctl: Warden containers from the command line, no daemon. A thin
//! clap front over the `orchestrator` library.

use std::fs;
use std::io::{IsTerminal, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::{Args, CommandFactory, Parser, Subcommand};
use orchestrator::{
    container, jobs, limits, network::Ipv4Net, report, BindMount, CreateOptions, Depot, Error,
    Instance, Paths, SetupOptions, SpawnOptions, State, StopOptions,
};

const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   a system call or file operation failed
  2   bad command line
  3   unknown handle
  4   a container with that handle already exists
  5   invalid argument (handle, bind mount, network, rlimit, owner, --env, --user)
  6   a path named on the command line is missing (rootfs, bind mount source, script, copy source)
  7   unknown job
  8   the container's state does not allow the command (e.g. spawn after stop)
  9   a pool is exhausted, or the network asked for is taken
  10  a setup script failed
  11  a helper binary is missing or failed (wshd, wsh, iomux-*, rsync)
  12  the host or the container cannot do it (no disk image, no online resize)
run, link and stream exit with the job's code once the job exists; a job killed by signal N
exits 128+N and says so on stderr (job 3 killed by SIGKILL (out of memory)); 255 with a
message where the container reported no wait status. stop and destroy take several handles,
try them all, print one line per failure and exit with the first failure's code.
Sizes in bytes take K, M, G, T (powers of 1024; KiB, KB the same; 1.5G), rates K, M, G (powers
of 1000 bit/s). --json: one JSON object (stream: one per line), schemas in docs/cli.md.";

#[derive(Parser)]
#[command(
    name = "wardenctl",
    version,
    // A bare `wardenctl` shows what it can do.
    arg_required_else_help = true,
    about = "Create and use Warden containers without a Warden server",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Where container directories live.
    #[arg(long, env = "WARDEN_DEPOT", default_value = orchestrator::depot::DEFAULT_DEPOT, global = true)]
    depot: PathBuf,
    /// Directory holding the helpers (wshd, wsh, iomux-spawn, iomux-link,
    /// cgroup-devices; default: wardenctl's own when wshd is there, else
    /// ../lib/warden, where make install puts them).
    #[arg(long, env = "WARDEN_BIN_DIR", global = true)]
    bin_dir: Option<PathBuf>,
    /// Directory holding root/ and skeleton/ (the setup scripts; default:
    /// setup-scripts/ beside wardenctl, ../share/warden, the source tree).
    #[arg(long, env = "WARDEN_SCRIPTS_DIR", global = true)]
    scripts_dir: Option<PathBuf>,
    /// Trace the setup scripts (they run with DEBUG=1, i.e. set -x) and
    /// copy their stderr to ours as it comes; the trace also lands in the
    /// create log (run/create.log, or DEPOT/.failed/HANDLE.log). DEBUG=1
    /// alone traces them into the log only.
    #[arg(long, env = "WARDEN_DEBUG", global = true,
          value_parser = clap::builder::BoolishValueParser::new())]
    debug: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Prepare the host (cgroups, global iptables chains); once per boot.
    Setup {
        /// The pool containers' /30 networks come from.
        #[arg(long, env = "WARDEN_POOL_NETWORK")]
        pool_network: Option<Ipv4Net>,
        /// Networks containers may always reach.
        #[arg(long = "allow-network")]
        allow_networks: Vec<String>,
        /// Networks containers may never reach.
        #[arg(long = "deny-network")]
        deny_networks: Vec<String>,
        /// Let containers reach the host itself.
        #[arg(long)]
        allow_host_access: bool,
    },
    /// Create and start a container; prints its handle.
    Create {
        #[arg(long)]
        handle: Option<String>,
        /// Read-only lower layer of the container's filesystem.
        #[arg(long, env = "WARDEN_ROOTFS")]
        rootfs: PathBuf,
        /// SRC:DST[:ro|rw] (read-only by default); may be repeated.
        #[arg(long = "bind-mount")]
        bind_mounts: Vec<String>,
        /// An address whose /30 the container gets.
        #[arg(long)]
        network: Option<Ipv4Addr>,
        #[arg(long, env = "WARDEN_POOL_NETWORK")]
        pool_network: Option<Ipv4Net>,
        /// Put the writable layer on an ext4 image giving it BYTES (hard
        /// limit; `limit-disk` can grow it later).
        #[arg(long, value_name = "BYTES", value_parser = orchestrator::units::size_arg)]
        disk_limit: Option<u64>,
        /// With --disk-limit: the number of files and directories it may hold.
        #[arg(long, value_name = "N", requires = "disk_limit")]
        disk_inode_limit: Option<u64>,
        /// Bytes of output (stdout and stderr together) a job may leave on
        /// the host; a job writing more is killed (event "job N killed:
        /// output limit of BYTES bytes exceeded"). 0: unlimited.
        #[arg(long, env = "WARDEN_JOB_OUTPUT_LIMIT", value_name = "BYTES",
              value_parser = orchestrator::units::size_arg,
              default_value_t = container::DEFAULT_JOB_OUTPUT_LIMIT)]
        job_output_limit: u64,
        /// Most processes and threads the container may hold (pids.max).
        /// 0: no limit.
        #[arg(long, env = "WARDEN_PIDS_LIMIT", value_name = "N",
              default_value_t = container::DEFAULT_PIDS_LIMIT)]
        pids_limit: u64,
        /// Size of the container's /dev/shm. 0: no size of its own (only
        /// the memory limit bounds it).
        #[arg(long, env = "WARDEN_SHM_SIZE", value_name = "BYTES",
              value_parser = orchestrator::units::size_arg,
              default_value_t = container::DEFAULT_SHM_SIZE)]
        shm_size: u64,
        /// Turn the container's confinement off (device whitelist, ...) so
        /// that Warden can run inside it. Root in such a container is root
        /// on the host: only for code trusted as much as the host's root.
        #[arg(long, env = "WARDEN_ALLOW_NESTED_WARDEN",
              value_parser = clap::builder::BoolishValueParser::new())]
        allow_nested_warden: bool,
        /// A nameserver for the container's /etc/resolv.conf; may be
        /// repeated. None: the host's nameservers (a loopback one becomes
        /// the host's address on the container's network).
        #[arg(long = "dns-server", value_name = "IP")]
        dns_servers: Vec<Ipv4Addr>,
        #[command(flatten)]
        json: Json,
    },
    /// Handles of all containers, one per line.
    List {
        #[command(flatten)]
        json: Json,
    },
    /// State, addresses, path, running jobs, forwarded ports and limits in
    /// force of a container.
    Info {
        handle: String,
        #[arg(long)]
        json: bool,
    },
    /// The container's events with their times (RFC 3339, UTC): create,
    /// stop, destroy, out of memory, job exits, jobs killed for their
    /// output.
    ///
    /// A line is TIME MESSAGE; with --json an object with time, kind
    /// (create, stop, destroy, oom, job_exit, job_killed: the output limit,
    /// output_dropped: the disk limit), message, and for a job its number,
    /// exit_status and signal (when known). They are kept in the
    /// container's etc/events.log, one such object per line; `info` keeps
    /// showing Warden's plain strings only (out of memory, job N killed:
    /// ...). --follow looks for new lines every 50 ms and ends (exit 0)
    /// once the container is destroyed.
    Events {
        handle: String,
        /// Then print new events as they come, until the container is
        /// destroyed.
        #[arg(long)]
        follow: bool,
        /// One JSON object per line (docs/schema/events.json).
        #[arg(long)]
        json: bool,
    },
    /// Processes in the container: pid on the host and in the container,
    /// user, state, resident memory, command line.
    ///
    /// Every process in the container's cgroup (v1 or v2) and in any group
    /// below it. USER is the name in the container's /etc/passwd (the uid
    /// when it has none), RSS_KIB the resident memory in KiB (bytes with
    /// --json).
    Ps {
        handle: String,
        /// A JSON array (docs/schema/ps.json).
        #[arg(long)]
        json: bool,
    },
    /// What the container uses: memory, cpu, pids, disk, network (rx/tx as
    /// the container sees them).
    ///
    /// Memory in bytes (usage, limit, page cache, anonymous rss) and the
    /// OOM kills; cpu time in ns (usage, user, system); pids (current,
    /// max); the writable layer's bytes and inodes and their limits; the
    /// host veth's counters, named as the container sees them (rx_bytes:
    /// what it received). From cgroup v1 or v2. "-" (null with --json) is
    /// a value the host cannot tell; a limit of "none" (null) is no limit.
    Stats {
        handle: String,
        /// A sample every second until Ctrl-C or the container is destroyed.
        #[arg(long)]
        follow: bool,
        /// One JSON object per sample and line (docs/schema/stats.json).
        #[arg(long)]
        json: bool,
    },
    /// Start a job; prints its id.
    Spawn(SpawnArgs),
    /// Wait for a job, print its output, exit with its code.
    Link {
        handle: String,
        job: String,
        #[command(flatten)]
        json: Json,
    },
    /// Print a job's output as it comes, exit with its code.
    Stream {
        handle: String,
        job: String,
        /// One JSON object per line: the output as it comes, then how the
        /// job ended.
        #[arg(long)]
        json: bool,
    },
    /// Spawn, then link.
    #[command(
        after_help = "wardenctl records the job itself while it waits. SIGINT, SIGTERM, \
                            SIGHUP or SIGQUIT hand the job to a recorder process: wardenctl \
                            exits 128+N and the job goes on (`wardenctl link HANDLE JOB` gets \
                            its output and status)."
    )]
    Run(SpawnArgs),
    /// An interactive shell (or ARGV) in the container; TERM is the
    /// caller's (none when it has none).
    Shell {
        handle: String,
        #[command(flatten)]
        job: JobArgs,
        #[arg(last = true)]
        argv: Vec<String>,
    },
    /// Stop every process but wshd (SIGTERM, SIGKILL after 10 s).
    Stop {
        #[arg(required = true, num_args = 1..)]
        handles: Vec<String>,
        /// SIGKILL at once.
        #[arg(long)]
        kill: bool,
        /// Return at once; stop in the background.
        #[arg(long)]
        background: bool,
    },
    /// Remove containers and everything they hold.
    Destroy {
        #[arg(required = true, num_args = 1..)]
        handles: Vec<String>,
    },
    /// Copy a host path into the container (rsync; modes and symlinks kept).
    CopyIn {
        handle: String,
        src: PathBuf,
        dst: String,
    },
    /// Copy a path out of the container.
    CopyOut {
        handle: String,
        src: String,
        dst: PathBuf,
        /// chown -R the copy to USER:GROUP.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Forward a host tcp port (from the pool when not given) to a container
    /// port (the same when not given), on every local address (127.0.0.1
    /// included); prints "HOST_PORT CONTAINER_PORT".
    NetIn {
        handle: String,
        #[arg(long)]
        host_port: Option<u16>,
        #[arg(long)]
        container_port: Option<u16>,
        #[command(flatten)]
        json: Json,
    },
    /// Allow egress beyond the default rules.
    NetOut {
        handle: String,
        /// CIDR or A-B address range.
        #[arg(long)]
        network: Option<String>,
        /// N, N:M or a comma-separated list (tcp/udp).
        #[arg(long = "port")]
        ports: Option<String>,
        /// A:B (tcp/udp).
        #[arg(long)]
        port_range: Option<String>,
        /// tcp, udp, icmp or all (default tcp with --port, else all).
        #[arg(long)]
        protocol: Option<String>,
        #[arg(long, allow_negative_numbers = true)]
        icmp_type: Option<i64>,
        #[arg(long, allow_negative_numbers = true)]
        icmp_code: Option<i64>,
        /// Log new connections matching the rule.
        #[arg(long)]
        log: bool,
    },
    /// Set (when given) and print the memory limit in bytes; the kernel
    /// killing inside the container stops it (event "out of memory").
    LimitMemory {
        handle: String,
        #[arg(value_name = "BYTES", conflicts_with = "limit",
              value_parser = orchestrator::units::size_arg)]
        bytes: Option<u64>,
        #[arg(long, hide = true, value_parser = orchestrator::units::size_arg)]
        limit: Option<u64>,
        #[command(flatten)]
        json: Json,
    },
    /// Set (when given) and print the cpu shares (v2: the weight).
    LimitCpu {
        handle: String,
        #[arg(value_name = "SHARES", conflicts_with = "shares_flag")]
        shares: Option<u64>,
        #[arg(long = "shares", hide = true)]
        shares_flag: Option<u64>,
        #[command(flatten)]
        json: Json,
    },
    /// Set disk limits (bytes, 1 KiB blocks, inodes; soft and hard; *-limit
    /// is the hard one) and print those in force.
    LimitDisk {
        handle: String,
        #[command(flatten)]
        request: orchestrator::disk::DiskRequest,
        #[command(flatten)]
        json: Json,
    },
    /// Limit bandwidth both ways (when given): RATE bit/s, BURST bytes; print
    /// the settings in force (in_*: into the container, out_*: out of it).
    LimitBandwidth {
        handle: String,
        /// Bit/s: a number with K, M, G or T (powers of 1000: 8M, 8Mbit).
        #[arg(long, requires = "burst", value_parser = orchestrator::units::rate_arg)]
        rate: Option<u64>,
        /// Bytes the bucket holds (K, M, G: powers of 1024).
        #[arg(long, requires = "rate", value_name = "BYTES",
              value_parser = orchestrator::units::size_arg)]
        burst: Option<u64>,
        #[command(flatten)]
        json: Json,
    },
    /// Root filesystems for containers.
    #[command(subcommand)]
    Rootfs(RootfsCmd),
    /// Prints "pong".
    Ping {
        #[command(flatten)]
        json: Json,
    },
    /// Prints MSG.
    Echo {
        message: String,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Args)]
struct Json {
    /// Print one JSON object (its schema: docs/cli.md, "JSON output").
    #[arg(long)]
    json: bool,
}

/// Who runs a job, where, with what environment.
#[derive(Args)]
struct JobArgs {
    /// Run as NAME [default: vcap].
    #[arg(long, value_name = "NAME", conflicts_with = "privileged")]
    user: Option<String>,
    /// Run as root (--user root).
    #[arg(long)]
    privileged: bool,
    /// NAME=VALUE added to the environment (after the image's); may be
    /// repeated.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Working directory [default: the user's home, or the image's WorkingDir].
    #[arg(long, value_name = "DIR")]
    dir: Option<String>,
}

impl JobArgs {
    fn user(&self) -> &str {
        match (&self.user, self.privileged) {
            (Some(user), _) => user,
            (None, true) => "root",
            (None, false) => "vcap",
        }
    }

    fn env(&self) -> Result<Vec<(String, String)>, Error> {
        self.env.iter().map(|e| jobs::parse_env(e)).collect()
    }
}

#[derive(Subcommand)]
enum RootfsCmd {
    /// Build a rootfs directory from a container image.
    ///
    /// SRC is a `docker save` tarball, an OCI image layout directory, an
    /// oci-archive tarball (any of these tars may be gzip- or
    /// zstd-compressed), or docker://REF (fetched with skopeo, which must be
    /// installed). Layers may be plain, gzip or zstd; whiteouts and opaque
    /// directories are applied; modes, numeric owners, xattrs (user.*,
    /// security.capability, POSIX ACLs), hard links and mtimes are kept;
    /// device nodes are skipped; blob digests and diff_ids are checked. An
    /// entry with an absolute path or `..`, or below a symlink, fails the
    /// import. DIR must not exist: it appears only once the whole image is
    /// in (exit 5 for a bad image, 6 for a missing SRC, 11 without skopeo).
    /// DIR is mode 0700 (root's alone), so no host user reaches the
    /// image's setuid files; containers see the image's files as they are.
    ///
    /// The image's Env, WorkingDir, User, Entrypoint and Cmd are recorded in
    /// DIR/.warden-image.json. Jobs of a container created from DIR start
    /// with that Env in that WorkingDir (`--no-image-env` to not), and
    /// `run --image-cmd [-- ARGS]` runs Entrypoint + (ARGS or Cmd); User is
    /// recorded only (jobs run as vcap, or as --user NAME). Layer
    /// and byte counts are shown when stderr is a terminal.
    Import {
        /// The image (a path, or docker://REF).
        src: String,
        /// The rootfs directory to make.
        dir: PathBuf,
    },
}

#[derive(Args)]
struct SpawnArgs {
    handle: String,
    #[command(flatten)]
    job: JobArgs,
    /// spawn: print {"job_id": N}; run: print one JSON object with the
    /// job's end and all its output instead of the output (docs/cli.md).
    #[arg(long)]
    json: bool,
    /// NAME=CUR[:MAX], e.g. nofile=1024; may be repeated.
    #[arg(long = "rlimit")]
    rlimits: Vec<String>,
    /// Keep no output.
    #[arg(long)]
    discard_output: bool,
    /// Shell script to feed to /bin/sh ("-": stdin).
    #[arg(long, conflicts_with = "argv")]
    script: Option<PathBuf>,
    /// Run the image's Entrypoint followed by ARGV, or by its Cmd when no
    /// ARGV is given (a container whose rootfs was imported).
    #[arg(long, conflicts_with = "script")]
    image_cmd: bool,
    /// Leave out the image's Env and WorkingDir (which jobs of a container
    /// from an imported rootfs otherwise start with).
    #[arg(long)]
    no_image_env: bool,
    /// Command to run (after --).
    #[arg(last = true)]
    argv: Vec<String>,
}

impl SpawnArgs {
    fn options(&self) -> Result<SpawnOptions, Error> {
        let rlimits = self
            .rlimits
            .iter()
            .map(|r| jobs::parse_rlimit(r))
            .collect::<Result<_, _>>()?;
        let script = match (&self.script, self.argv.is_empty()) {
            _ if self.image_cmd => Vec::new(),
            (Some(path), _) if path.as_os_str() == "-" => {
                let mut buf = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut buf)
                    .map_err(Error::io("read the script from stdin"))?;
                buf
            }
            (Some(path), _) => fs::read(path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Error::MissingPath {
                        what: "script",
                        path: path.clone(),
                    }
                } else {
                    Error::io(format!("read {}", path.display()))(e)
                }
            })?,
            (None, false) => jobs::script_for_argv(&self.argv),
            (None, true) => {
                return Err(Error::BadArgument(
                    "give --script FILE or -- ARGV...".into(),
                ))
            }
        };
        Ok(SpawnOptions {
            privileged: self.job.privileged,
            user: Some(self.job.user().to_string()),
            env: self.job.env()?,
            dir: self.job.dir.clone(),
            rlimits,
            discard_output: self.discard_output,
            script,
            no_image_env: self.no_image_env,
            image_cmd: self.image_cmd.then(|| self.argv.clone()),
        })
    }
}

/// A usage error shows clap's whole message (what is missing or wrong, the
/// usage line, "a similar subcommand exists"), exit code 2; help and
/// version print as usual. Runtime errors, unlike these, are one line.
fn parse_args() -> Result<Cli, ExitCode> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) => {
            let _ = e.print();
            Err(if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn main() -> ExitCode {
    // The job recorder and the OOM watcher run as wardenctl itself.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = orchestrator::internal::dispatch(&args) {
        return code;
    }
    // Man pages and completions for `make install` (clidoc).
    if let Some(code) = clidoc::dispatch(&args, Cli::command) {
        return code;
    }
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // WARDEN_PROFILE=FILE: the command's steps are appended to FILE when it
    // ends (orchestrator::profile); the recorder, which outlives its
    // command and is no step of it, was dispatched above.
    let _profile = orchestrator::profile::Session::start();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("wardenctl: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// A job's end: a line on stderr when it did not simply exit, and the code
/// wardenctl exits with (128+N for signal N).
fn job_exit(end: &jobs::JobEnd) -> u8 {
    if let Some(message) = end.message() {
        eprintln!("wardenctl: {message}");
    }
    end.exit_code()
}

/// `f` for every handle, all attempted: one line per failure, the first
/// failure's exit code.
fn each_handle(handles: &[String], mut f: impl FnMut(&str) -> Result<(), Error>) -> u8 {
    let mut code = 0;
    for handle in handles {
        if let Err(e) = f(handle) {
            // Most messages name the container already.
            let text = e.to_string();
            if text.contains(handle.as_str()) {
                eprintln!("wardenctl: {text}");
            } else {
                eprintln!("wardenctl: {handle}: {text}");
            }
            if code == 0 {
                code = e.exit_code() as u8;
            }
        }
    }
    code
}

/// A line on stdout, flushed at once: followers print as things happen.
fn print_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// A follower whose reader went away (`| head -1`) has done its job.
fn ended_by_reader(shown: Result<(), Error>) -> Result<u8, Error> {
    match shown {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        other => other.map(|()| 0),
    }
}

fn run(cli: Cli) -> Result<u8, Error> {
    orchestrator::scripts::set_debug(cli.debug);
    let depot = Depot::new(&cli.depot);
    let paths = || Paths::discover(cli.scripts_dir.clone(), cli.bin_dir.clone());
    let mut out = std::io::stdout().lock();
    let mut say = |text: String| -> Result<(), Error> {
        writeln!(out, "{text}").map_err(Error::io("write stdout"))
    };
    // `--json`: the object, else the text.
    let pick = |json: &Json, value: serde_json::Value, text: String| {
        if json.json {
            value.to_string()
        } else {
            text
        }
    };
    match cli.command {
        Cmd::Setup {
            pool_network,
            allow_networks,
            deny_networks,
            allow_host_access,
        } => {
            let opts = SetupOptions {
                pool_network,
                allow_networks,
                deny_networks,
                allow_host_access,
                rootfs: None,
            };
            orchestrator::setup(&depot, &paths()?, &opts)?;
        }
        Cmd::Create {
            handle,
            rootfs,
            bind_mounts,
            network,
            pool_network,
            disk_limit,
            disk_inode_limit,
            job_output_limit,
            pids_limit,
            shm_size,
            allow_nested_warden,
            dns_servers,
            json,
        } => {
            let disk = disk_limit.map(|bytes| orchestrator::disk::DiskLimits {
                byte_hard: bytes,
                inode_hard: disk_inode_limit.unwrap_or(0),
                ..Default::default()
            });
            let bind_mounts = bind_mounts
                .iter()
                .map(|b| b.parse::<BindMount>())
                .collect::<Result<_, _>>()?;
            let opts = CreateOptions {
                handle,
                rootfs,
                bind_mounts,
                network,
                pool: pool_network,
                disk,
                job_output_limit: Some(job_output_limit),
                pids_limit: Some(pids_limit),
                shm_size: Some(shm_size),
                allow_nested_warden,
                dns_servers,
                grace_time: None,
                mtu: None,
            };
            let handle = container::create(&depot, &paths()?, &opts)?;
            say(pick(&json, report::handle(&handle), handle.clone()))?;
        }
        Cmd::List { json } => {
            let handles = container::list(&depot)?;
            if json.json {
                say(report::list(&handles).to_string())?;
            } else {
                for handle in handles {
                    say(handle)?;
                }
            }
        }
        Cmd::Info { handle, json } => {
            let info = container::info(&depot, &handle)?;
            if json {
                say(info.to_json().to_string())?;
            } else {
                write!(out, "{}", info.to_text()).map_err(Error::io("write stdout"))?;
            }
        }
        Cmd::Events {
            handle,
            follow,
            json,
        } => {
            drop(out);
            let shown = orchestrator::events::show(&depot, &handle, follow, |e| {
                let line = if json {
                    e.to_json().to_string()
                } else {
                    e.to_text()
                };
                print_line(&line)
            });
            return ended_by_reader(shown);
        }
        Cmd::Ps { handle, json } => {
            let processes = orchestrator::ps::list(&depot, &handle)?;
            if json {
                let list: Vec<_> = processes.iter().map(|p| p.to_json()).collect();
                say(serde_json::Value::from(list).to_string())?;
            } else {
                write!(out, "{}", orchestrator::ps::to_text(&processes))
                    .map_err(Error::io("write stdout"))?;
            }
        }
        Cmd::Stats {
            handle,
            follow,
            json,
        } => {
            drop(out);
            let mut first = true;
            let shown = orchestrator::stats::show(&depot, &handle, follow, |s| {
                if json {
                    return print_line(&s.to_json().to_string());
                }
                // Samples of --follow are blocks apart.
                let gap = if std::mem::take(&mut first) { "" } else { "\n" };
                print_line(&format!("{gap}{}", s.to_text().trim_end()))
            });
            return ended_by_reader(shown);
        }
        Cmd::Spawn(args) => {
            let id = jobs::spawn(&depot, &args.handle, &args.options()?)?;
            let json = Json { json: args.json };
            say(pick(&json, report::job_id(id), id.to_string()))?;
        }
        Cmd::Run(args) if args.json => {
            let (result, end) = jobs::run_report(&depot, &args.handle, &args.options()?)?;
            say(report::job(&args.handle, &result, &end).to_string())?;
            return Ok(job_exit(&end));
        }
        Cmd::Run(args) => {
            drop(out);
            return Ok(job_exit(&jobs::run(
                &depot,
                &args.handle,
                &args.options()?,
            )?));
        }
        Cmd::Link { handle, job, json } if json.json => {
            let (result, end) = jobs::link_report(&depot, &handle, &job)?;
            say(report::job(&handle, &result, &end).to_string())?;
            return Ok(job_exit(&end));
        }
        Cmd::Link { handle, job, .. } => {
            drop(out);
            return Ok(job_exit(&jobs::link(&depot, &handle, &job)?));
        }
        Cmd::Stream { handle, job, json } if json => {
            let mut lines = report::StreamLines::default();
            let code = jobs::stream_with(&depot, &handle, &job, |name, bytes| {
                lines.write(&mut out, name, bytes)
            })?;
            let end = jobs::end_of(&depot, &handle, &job, code)?;
            lines.finish(&mut out, &handle, &end)?;
            return Ok(job_exit(&end));
        }
        Cmd::Stream { handle, job, .. } => {
            drop(out);
            return Ok(job_exit(&jobs::stream(&depot, &handle, &job)?));
        }
        Cmd::Shell { handle, job, argv } => {
            let instance = Instance::open(&depot, &handle)?;
            instance.require_state("shell", &[State::Active])?;
            jobs::check_user(job.user())?;
            let mut wsh = Command::new(instance.wsh());
            wsh.arg("--socket")
                .arg(instance.socket())
                .arg("--user")
                .arg(job.user());
            // The caller's terminal type, so that programs in the
            // container draw for it; none when the caller has none.
            let term = std::env::var("TERM").ok().filter(|t| !t.is_empty());
            for (k, v) in term
                .map(|t| ("TERM".to_string(), t))
                .into_iter()
                .chain(job.env()?)
            {
                wsh.arg("--env").arg(format!("{k}={v}"));
            }
            if let Some(dir) = &job.dir {
                wsh.arg("--dir").arg(dir);
            }
            let err = wsh.arg("--").args(&argv).exec();
            return Err(Error::Tool(format!(
                "exec {}: {err}",
                instance.wsh().display()
            )));
        }
        Cmd::Stop {
            handles,
            kill,
            background,
        } => {
            let opts = StopOptions { kill, background };
            return Ok(each_handle(&handles, |h| container::stop(&depot, h, &opts)));
        }
        Cmd::Destroy { handles } => {
            let paths = paths()?;
            return Ok(each_handle(&handles, |h| {
                container::destroy(&depot, &paths, h)
            }));
        }
        Cmd::CopyIn { handle, src, dst } => container::copy_in(&depot, &handle, &src, &dst)?,
        Cmd::CopyOut {
            handle,
            src,
            dst,
            owner,
        } => container::copy_out(&depot, &handle, &src, &dst, owner.as_deref())?,
        Cmd::NetIn {
            handle,
            host_port,
            container_port,
            json,
        } => {
            let (host, container) = container::net_in(&depot, &handle, host_port, container_port)?;
            say(pick(
                &json,
                report::net_in(host, container),
                format!("{host} {container}"),
            ))?;
        }
        Cmd::NetOut {
            handle,
            network,
            ports,
            port_range,
            protocol,
            icmp_type,
            icmp_code,
            log,
        } => {
            let rule = orchestrator::netrules::NetOut {
                network,
                port: ports,
                port_range,
                protocol,
                icmp_type,
                icmp_code,
                log,
            };
            orchestrator::limits::net_out(&depot, &handle, &rule)?;
        }
        Cmd::LimitMemory {
            handle,
            bytes,
            limit,
            json,
        } => {
            let value = limits::memory(&depot, &handle, bytes.or(limit))?;
            say(pick(&json, report::memory(&value), value.clone()))?;
        }
        Cmd::LimitCpu {
            handle,
            shares,
            shares_flag,
            json,
        } => {
            let value = limits::cpu(&depot, &handle, shares.or(shares_flag))?;
            let weight = json.json && limits::cpu_is_weight(&depot, &handle)?;
            say(pick(&json, report::cpu(&value, weight), value.clone()))?;
        }
        Cmd::LimitDisk {
            handle,
            request,
            json,
        } => {
            let l = orchestrator::disk::limit(&depot, &handle, &request)?;
            if json.json {
                say(report::disk(l).to_string())?;
            } else {
                write!(out, "{}", l.to_text()).map_err(Error::io("write stdout"))?;
            }
        }
        Cmd::LimitBandwidth {
            handle,
            rate,
            burst,
            json,
        } => {
            if let (Some(rate), Some(burst)) = (rate, burst) {
                limits::bandwidth(&depot, &handle, rate, burst)?;
            }
            let stat = limits::bandwidth_stat(&Instance::open(&depot, &handle)?);
            let text = report::bandwidth_text(&stat);
            if json.json || !text.is_empty() {
                let text = pick(&json, report::bandwidth(&stat), text);
                say(text.trim_end().to_string())?;
            }
        }
        Cmd::Rootfs(RootfsCmd::Import { src, dir }) => {
            let opts = orchestrator::image::ImportOptions {
                progress: std::io::stderr().is_terminal(),
            };
            let done = orchestrator::image::import(&src, &dir, &opts)?;
            let s = &done.stats;
            let mut notes = Vec::new();
            if s.skipped_devices > 0 {
                notes.push(format!("{} device nodes skipped", s.skipped_devices));
            }
            if s.skipped_xattrs > 0 {
                notes.push(format!("{} xattrs not kept", s.skipped_xattrs));
            }
            if opts.progress || !notes.is_empty() {
                eprintln!(
                    "wardenctl: {} ({} image, {} layers, {} entries, {} whiteouts, {} opaque dirs{})",
                    dir.display(),
                    done.format,
                    done.layers,
                    s.entries,
                    s.whiteouts,
                    s.opaque_dirs,
                    notes.iter().map(|n| format!(", {n}")).collect::<String>()
                );
            }
            let unexported: Vec<&String> = done
                .record
                .env
                .iter()
                .filter(|kv| {
                    !kv.split_once('=')
                        .is_some_and(|(k, _)| orchestrator::image::is_shell_name(k))
                })
                .collect();
            for kv in unexported {
                eprintln!(
                    "wardenctl: Env {kv:?} is not NAME=VALUE with a shell name: jobs do not get it"
                );
            }
        }
        Cmd::Ping { json } => say(pick(&json, report::message("pong"), "pong".into()))?,
        Cmd::Echo { message, json } => {
            say(pick(&json, report::message(&message), message.clone()))?
        }
    }
    Ok(0)
}
