//! The server's life: prepare the host (root/setup.sh, as the Ruby server
//! does at start), pick up what an earlier server left (containers born by
//! a create that died with it are destroyed; every container with a grace
//! time gets its timer), bind the socket, then accept until a signal:
//!
//! | signal          | effect                                                  |
//! |-----------------|---------------------------------------------------------|
//! | SIGTERM, SIGINT | exit now; containers and jobs keep running              |
//! | SIGUSR2         | drain: stop accepting, finish requests in flight, exit 0 |
//!
//! Signals are blocked in every thread and read from a signalfd by the
//! accept loop, so no handler runs at an arbitrary point.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::{umask, Mode};
use orchestrator::{container, Instance};
use thiserror::Error;

use crate::handlers::Server;
use crate::live::Live;
use crate::{connection, error, info, warn};

/// How long a drain waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
/// Connection threads need little stack: requests are served by the
/// orchestrator, whose work runs in child processes.
const CONNECTION_STACK: usize = 256 << 10;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("{0}")]
    Orchestrator(#[from] orchestrator::Error),
    #[error("socket {path}: {message}")]
    Socket { path: PathBuf, message: String },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

/// Each connection holds two descriptors; the usual soft limit of 1024
/// would cap the server near 500 clients.
fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        // Children inherit the limit; past 65536 some tools slow down.
        let wanted = hard.min(65536);
        if wanted > soft {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
                warn!("cannot raise the descriptor limit from {soft} to {wanted}: {e}");
            }
        }
    }
}

pub fn run(server: Server) -> Result<(), ServerError> {
    let signals = block_signals()?;
    raise_descriptor_limit();
    prepare_host(&server)?;
    recover(&server);
    let server = Arc::new(server);
    let listener = bind(&server.config.socket, server.config.socket_permissions)?;
    if let Some(pidfile) = &server.config.pidfile {
        fs::write(pidfile, format!("{}\n", std::process::id()))
            .map_err(io_error(format!("write {}", pidfile.display())))?;
    }
    start_grace_timer(Arc::clone(&server));
    info!(
        "wardend listening on {} (mode {:04o})",
        server.config.socket.display(),
        server.config.socket_permissions
    );
    let live = Arc::new(Live::new());
    let outcome = accept_loop(&server, &live, &listener, &signals);
    let _ = fs::remove_file(&server.config.socket);
    if let Some(pidfile) = &server.config.pidfile {
        let _ = fs::remove_file(pidfile);
    }
    outcome
}

fn block_signals() -> Result<SignalFd, ServerError> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR2,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| io_error("block signals")(e.into()))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| io_error("signalfd")(e.into()))
}

fn prepare_host(server: &Server) -> Result<(), ServerError> {
    let config = &server.config;
    let opts = orchestrator::SetupOptions {
        pool_network: Some(config.pool),
        allow_networks: config.allow_networks.clone(),
        deny_networks: config.deny_networks.clone(),
        allow_host_access: config.allow_host_access,
        rootfs: config.rootfs.clone(),
    };
    orchestrator::setup(&server.depot, &server.paths, &opts)?;
    Ok(())
}

/// What an earlier server (or wardenctl) left in the depot.
fn recover(server: &Server) {
    match container::abandoned(&server.depot) {
        Ok(handles) => {
            for handle in handles {
                warn!("container {handle}: its create died half-way; destroying it");
                if let Err(e) = container::destroy(&server.depot, &server.paths, &handle) {
                    error!("container {handle}: destroy: {e}");
                }
            }
        }
        Err(e) => error!("looking for abandoned containers: {e}"),
    }
    let handles = container::list(&server.depot).unwrap_or_default();
    for handle in &handles {
        if let Ok(instance) = Instance::open(&server.depot, handle) {
            // The recorders of an earlier server's `run` jobs were its
            // threads: running jobs get recorder processes.
            orchestrator::jobs::ensure_recorders(&instance);
            if let Some(seconds) = instance.grace_time() {
                server
                    .grace
                    .start_timer(handle, Duration::from_secs(u64::from(seconds)));
            }
        }
    }
    info!(
        "{} container(s) found in {}",
        handles.len(),
        server.depot.root().display()
    );
}

/// The socket, made so that nobody but the configured users can connect or
/// swap it: its directory must be root's and closed to others (or sticky,
/// as /tmp is), and the socket is born with its mode (bound under a umask),
/// never briefly open.
pub fn bind(path: &Path, mode: u32) -> Result<UnixListener, ServerError> {
    let bad = |message: String| ServerError::Socket {
        path: path.to_path_buf(),
        message,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let meta = fs::metadata(&dir).map_err(|e| bad(format!("directory {}: {e}", dir.display())))?;
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky) {
        return Err(bad(format!(
            "directory {} must be owned by root and not writable by others (or sticky)",
            dir.display()
        )));
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => {
            return Err(bad("is a directory".into()));
        }
        Ok(_) => fs::remove_file(path).map_err(|e| bad(format!("remove the old one: {e}")))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(bad(e.to_string())),
    }
    let old = umask(Mode::from_bits_truncate(0o777 & !mode));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(|e| bad(format!("bind: {e}")))?;
    // The umask can only take bits away; chmod gives exactly the mode.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| bad(format!("chmod {mode:04o}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| bad(format!("set non-blocking: {e}")))?;
    Ok(listener)
}

fn start_grace_timer(server: Arc<Server>) {
    let spawned = std::thread::Builder::new()
        .name("grace".into())
        .spawn(move || loop {
            // Also the moment to collect exited recorders and spawners.
            orchestrator::process::reap_detached();
            for handle in server.grace.wait_expired(Duration::from_secs(1)) {
                if server.grace.is_referenced(&handle) {
                    continue;
                }
                info!("container {handle}: grace time over, destroying it");
                match container::destroy(&server.depot, &server.paths, &handle) {
                    Ok(()) => {}
                    Err(orchestrator::Error::UnknownHandle(_)) => {}
                    Err(e) => error!("container {handle}: destroy: {e}"),
                }
            }
        });
    if let Err(e) = spawned {
        error!("cannot start the grace timer thread: {e}; containers will not expire");
    }
}

fn accept_loop(
    server: &Arc<Server>,
    live: &Arc<Live>,
    listener: &UnixListener,
    signals: &SignalFd,
) -> Result<(), ServerError> {
    let next_id = AtomicU64::new(1);
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io_error("poll")(e.into())),
        }
        if fds[1].any().unwrap_or(false) {
            if let Ok(Some(info)) = signals.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGUSR2) => {
                        info!("SIGUSR2: draining ({} connection(s))", live.count());
                        let _ = fs::remove_file(&server.config.socket);
                        if !live.drain(DRAIN_TIMEOUT) {
                            warn!("drain: requests still in flight after {DRAIN_TIMEOUT:?}");
                        }
                        info!("drained; exiting");
                        return Ok(());
                    }
                    Ok(Signal::SIGHUP) => {
                        info!("SIGHUP ignored");
                    }
                    Ok(s) => {
                        info!("{s}: exiting; containers keep running");
                        return Ok(());
                    }
                    Err(_) => {}
                }
            }
        }
        if !fds[0].any().unwrap_or(false) {
            continue;
        }
        loop {
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, say: the client is refused, the
                    // server goes on.
                    error!("accept: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    break;
                }
            };
            if stream.set_nonblocking(false).is_err() {
                continue;
            }
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let Ok(registered) = stream.try_clone() else {
                continue;
            };
            live.connection_opened(id, registered);
            let (server, live_for_thread) = (Arc::clone(server), Arc::clone(live));
            let spawned = std::thread::Builder::new()
                .name(format!("conn-{id}"))
                .stack_size(CONNECTION_STACK)
                .spawn(move || connection::serve(server, live_for_thread, id, stream));
            if let Err(e) = spawned {
                error!("connection {id}: no thread: {e}");
                live.connection_closed(id);
            }
        }
    }
}
