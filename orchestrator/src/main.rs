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
    container, jobs, network::Ipv4Net, BindMount, CreateOptions, Depot, Error, Instance, Paths,
    SetupOptions, SpawnOptions, State, StopOptions,
};

const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   a system call or file operation failed
  2   bad command line
  3   unknown handle
  4   a container with that handle already exists
  5   invalid argument (handle, bind mount, network, rlimit, owner)
  6   a path named on the command line is missing (rootfs, bind mount source, script, copy source)
  7   unknown job
  8   the container's state does not allow the command (e.g. spawn after stop)
  9   a pool is exhausted, or the network asked for is taken
  10  a setup script failed
  11  a helper binary is missing or failed (wshd, wsh, iomux-*, rsync)
  12  the host or the container cannot do it (no disk image, no online resize)
run, link and stream exit with the job's code once the job exists (255: killed by a signal).";

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
        #[arg(long, value_name = "BYTES")]
        disk_limit: Option<u64>,
        /// With --disk-limit: the number of files and directories it may hold.
        #[arg(long, value_name = "N", requires = "disk_limit")]
        disk_inode_limit: Option<u64>,
        /// Bytes of output (stdout and stderr together) a job may leave on
        /// the host; a job writing more is killed (event "job N killed:
        /// output limit of BYTES bytes exceeded"). 0: unlimited.
        #[arg(long, env = "WARDEN_JOB_OUTPUT_LIMIT", value_name = "BYTES",
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
    },
    /// Handles of all containers, one per line.
    List,
    /// State, addresses, path and running jobs of a container.
    Info {
        handle: String,
        #[arg(long)]
        json: bool,
    },
    /// Start a job; prints its id.
    Spawn(SpawnArgs),
    /// Wait for a job, print its output, exit with its code.
    Link { handle: String, job: String },
    /// Print a job's output as it comes, exit with its code.
    Stream { handle: String, job: String },
    /// Spawn, then link.
    Run(SpawnArgs),
    /// An interactive shell (or ARGV) in the container.
    Shell {
        handle: String,
        #[arg(long, default_value = "vcap")]
        user: String,
        #[arg(last = true)]
        argv: Vec<String>,
    },
    /// Stop every process but wshd (SIGTERM, SIGKILL after 10 s).
    Stop {
        handle: String,
        /// SIGKILL at once.
        #[arg(long)]
        kill: bool,
        /// Return at once; stop in the background.
        #[arg(long)]
        background: bool,
    },
    /// Remove a container and everything it holds.
    Destroy { handle: String },
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
    /// port (the same when not given), on every local address; prints
    /// "HOST_PORT CONTAINER_PORT".
    NetIn {
        handle: String,
        #[arg(long)]
        host_port: Option<u16>,
        #[arg(long)]
        container_port: Option<u16>,
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
        #[arg(value_name = "BYTES", conflicts_with = "limit")]
        bytes: Option<u64>,
        #[arg(long, hide = true)]
        limit: Option<u64>,
    },
    /// Set (when given) and print the cpu shares (v2: the weight).
    LimitCpu {
        handle: String,
        #[arg(value_name = "SHARES", conflicts_with = "shares_flag")]
        shares: Option<u64>,
        #[arg(long = "shares", hide = true)]
        shares_flag: Option<u64>,
    },
    /// Set disk limits (bytes, 1 KiB blocks, inodes; soft and hard; *-limit
    /// is the hard one) and print those in force.
    LimitDisk {
        handle: String,
        #[command(flatten)]
        request: orchestrator::disk::DiskRequest,
    },
    /// Limit bandwidth both ways: RATE bit/s, BURST bytes.
    LimitBandwidth {
        handle: String,
        #[arg(long)]
        rate: u64,
        #[arg(long)]
        burst: u64,
    },
    /// Root filesystems for containers.
    #[command(subcommand)]
    Rootfs(RootfsCmd),
    /// Prints "pong".
    Ping,
    /// Prints MSG.
    Echo { message: String },
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
    ///
    /// The image's Env, WorkingDir, User, Entrypoint and Cmd are recorded in
    /// DIR/.warden-image.json. Jobs of a container created from DIR start
    /// with that Env in that WorkingDir (`--no-image-env` to not), and
    /// `run --image-cmd [-- ARGS]` runs Entrypoint + (ARGS or Cmd); User is
    /// recorded only (jobs run as vcap, or root with --privileged). Layer
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
    /// Run as root rather than vcap.
    #[arg(long)]
    privileged: bool,
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
            privileged: self.privileged,
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

fn job_code(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}

fn run(cli: Cli) -> Result<u8, Error> {
    orchestrator::scripts::set_debug(cli.debug);
    let depot = Depot::new(&cli.depot);
    let paths = || Paths::discover(cli.scripts_dir.clone(), cli.bin_dir.clone());
    let mut out = std::io::stdout().lock();
    let mut say = |text: String| -> Result<(), Error> {
        writeln!(out, "{text}").map_err(Error::io("write stdout"))
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
            say(handle)?;
        }
        Cmd::List => {
            for handle in container::list(&depot)? {
                say(handle)?;
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
        Cmd::Spawn(args) => {
            let id = jobs::spawn(&depot, &args.handle, &args.options()?)?;
            say(id.to_string())?;
        }
        Cmd::Run(args) => {
            drop(out);
            return Ok(job_code(jobs::run(&depot, &args.handle, &args.options()?)?));
        }
        Cmd::Link { handle, job } => {
            drop(out);
            return Ok(job_code(jobs::link(&depot, &handle, &job)?));
        }
        Cmd::Stream { handle, job } => {
            drop(out);
            return Ok(job_code(jobs::stream(&depot, &handle, &job)?));
        }
        Cmd::Shell { handle, user, argv } => {
            let instance = Instance::open(&depot, &handle)?;
            instance.require_state("shell", &[State::Active])?;
            if user.is_empty() || user.starts_with('-') || user.len() > 31 {
                return Err(Error::BadArgument(format!("invalid user {user:?}")));
            }
            let err = Command::new(instance.wsh())
                .arg("--socket")
                .arg(instance.socket())
                .arg("--user")
                .arg(&user)
                .args(&argv)
                .exec();
            return Err(Error::Tool(format!(
                "exec {}: {err}",
                instance.wsh().display()
            )));
        }
        Cmd::Stop {
            handle,
            kill,
            background,
        } => container::stop(&depot, &handle, &StopOptions { kill, background })?,
        Cmd::Destroy { handle } => container::destroy(&depot, &paths()?, &handle)?,
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
        } => {
            let (host, container) = container::net_in(&depot, &handle, host_port, container_port)?;
            say(format!("{host} {container}"))?;
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
        } => {
            say(orchestrator::limits::memory(
                &depot,
                &handle,
                bytes.or(limit),
            )?)?;
        }
        Cmd::LimitCpu {
            handle,
            shares,
            shares_flag,
        } => {
            say(orchestrator::limits::cpu(
                &depot,
                &handle,
                shares.or(shares_flag),
            )?)?;
        }
        Cmd::LimitDisk { handle, request } => {
            let limits = orchestrator::disk::limit(&depot, &handle, &request)?;
            write!(out, "{}", limits.to_text()).map_err(Error::io("write stdout"))?;
        }
        Cmd::LimitBandwidth {
            handle,
            rate,
            burst,
        } => orchestrator::limits::bandwidth(&depot, &handle, rate, burst)?,
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
        Cmd::Ping => say("pong".to_string())?,
        Cmd::Echo { message } => say(message)?,
    }
    Ok(0)
}
