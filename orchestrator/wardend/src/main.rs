//! wardend: Warden's protocol server. Reads the Ruby server's config file,
//! serves Warden clients on its Unix socket through the orchestrator
//! library (the functions wardenctl's commands call), and keeps all state
//! in the depot, so wardenctl and wardend see the same containers.
#![deny(unsafe_code)]

mod config;
mod connection;
mod grace;
mod handlers;
mod live;
mod log;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use orchestrator::{Depot, Paths};

#[derive(Parser)]
#[command(
    name = "wardend",
    version,
    about = "Serve Warden's protocol on a Unix socket (a drop-in for the Ruby warden server)",
    after_help = "Signals: SIGTERM/SIGINT exit at once, leaving containers and jobs running; \
                  SIGUSR2 drains (stops accepting, finishes requests in flight, exits 0).\n\
                  Exit codes: 0 stopped by a signal, 1 could not start, 2 bad command line."
)]
struct Cli {
    /// The Ruby server's config file (config/linux.yml format).
    #[arg(long, value_name = "FILE", default_value = config::DEFAULT_CONFIG)]
    config: PathBuf,
    /// Listen here instead of the config's server.unix_domain_path.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Directory holding the helpers (wshd, wsh, iomux-*, cgroup-devices;
    /// default: wardend's own when wshd is there, else ../lib/warden).
    #[arg(long, env = "WARDEN_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// Directory holding root/ and skeleton/ (the setup scripts; default:
    /// setup-scripts/ beside wardend, ../share/warden, the source tree).
    #[arg(long, env = "WARDEN_SCRIPTS_DIR")]
    scripts_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    // The job recorder and the OOM watcher are started from the running
    // executable (see orchestrator::jobs), which here is wardend.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = orchestrator::internal::dispatch(&args) {
        return code;
    }
    // Man page and completions for `make install` (clidoc).
    if let Some(code) = clidoc::dispatch(&args, Cli::command) {
        return code;
    }
    let cli = Cli::parse();
    match start(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wardend: {message}");
            ExitCode::from(1)
        }
    }
}

fn start(cli: Cli) -> Result<(), String> {
    let mut config = config::Config::read(&cli.config).map_err(|e| e.to_string())?;
    if let Some(socket) = cli.socket {
        config.socket = socket;
    }
    let level = log::Level::parse(&config.log_level).unwrap_or(log::Level::Info);
    log::init(level, config.log_file.as_deref()).map_err(|e| format!("open the log file: {e}"))?;
    for warning in &config.warnings {
        warn!("{warning}");
    }
    if config.socket_open_to_others() {
        warn!(
            "server.unix_domain_permissions {:04o} lets users other than root connect, \
             and whoever connects controls containers as root",
            config.socket_permissions
        );
    }
    if config.disk_quota_enabled {
        info!(
            "server.quota.disk_quota_enabled: limit_disk works on containers with a disk image \
             (there are no per-uid quotas)"
        );
    }
    let paths = Paths::discover(cli.scripts_dir, cli.bin_dir).map_err(|e| e.to_string())?;
    // A job's iomux-spawn forked, not exec'd: see orchestrator::zygote.
    orchestrator::zygote::enable(paths.helper("iomux-spawn"));
    let depot =
        Depot::new(&config.depot).with_pools(config.uid_pool.clone(), config.port_pool.clone());
    let server = handlers::Server {
        depot,
        paths,
        config,
        grace: Arc::new(grace::Grace::new()),
    };
    server::run(server).map_err(|e| e.to_string())
}
