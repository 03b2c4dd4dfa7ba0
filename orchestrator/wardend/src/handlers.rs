//! One request, served: each Warden request type maps to the orchestrator
//! function wardenctl's command of the same name calls, with Warden's
//! server semantics on top (grace time, `run` = spawn + link, `stream` as a
//! series of responses). Every failure becomes an ErrorResponse naming
//! what went wrong; nothing here ends the connection but the client.

use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orchestrator::jobs::{self, SpawnOptions, StreamName};
use orchestrator::{
    container, disk, limits, netrules, BindMount, CreateOptions, Depot, Error, Instance, Paths,
};
use warden_protocol::pb;
use warden_protocol::{Request, Response};

use crate::config::Config;
use crate::grace::Grace;

/// What every connection shares.
pub struct Server {
    pub depot: Depot,
    pub paths: Paths,
    pub config: Config,
    pub grace: Arc<Grace>,
}

/// Where a request's responses go; an error means the client is gone.
pub type Send<'a> = dyn FnMut(Response) -> io::Result<()> + 'a;

/// The container a request names, if any: the connection refers to it
/// from then on (see [`Grace`]).
pub fn handle_of(request: &Request) -> Option<&str> {
    Some(match request {
        Request::Create(_) | Request::Ping(_) | Request::List(_) | Request::Echo(_) => return None,
        Request::Stop(r) => &r.handle,
        Request::Destroy(r) => &r.handle,
        Request::Info(r) => &r.handle,
        Request::Spawn(r) => &r.handle,
        Request::Link(r) => &r.handle,
        Request::Run(r) => &r.handle,
        Request::Stream(r) => &r.handle,
        Request::NetIn(r) => &r.handle,
        Request::NetOut(r) => &r.handle,
        Request::CopyIn(r) => &r.handle,
        Request::CopyOut(r) => &r.handle,
        Request::LimitMemory(r) => &r.handle,
        Request::LimitDisk(r) => &r.handle,
        Request::LimitBandwidth(r) => &r.handle,
        Request::LimitCpu(r) => &r.handle,
    })
}

/// Requests that wait on a job, for as long as it runs.
pub fn waits_on_a_job(request: &Request) -> bool {
    matches!(
        request,
        Request::Link(_) | Request::Run(_) | Request::Stream(_)
    )
}

pub fn error_response(message: impl Into<String>) -> Response {
    Response::error(message.into())
}

/// Whether the client still waits for an answer (false once it hung up):
/// link, run and stream give up waiting on their job then.
pub type Present<'a> = dyn Fn() -> bool + 'a;

/// Serves one request; returns the handle the connection now refers to
/// (the new container's for create). An Err is the client gone.
pub fn serve(
    server: &Server,
    request: Request,
    send: &mut Send<'_>,
    present: &Present<'_>,
) -> io::Result<Option<String>> {
    let handle = handle_of(&request).map(str::to_string);
    let result = match request {
        Request::Stream(r) => return stream(server, &r, send, present).map(|()| handle),
        other => answer(server, other, present),
    };
    if matches!(result, Err(Error::Cancelled)) {
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the client hung up",
        ));
    }
    match result {
        Ok((response, referred)) => {
            send(response)?;
            Ok(referred.or(handle))
        }
        Err(e) => {
            send(error_response(e.to_string()))?;
            // A request naming a container that does not exist refers to
            // nothing.
            Ok(handle.filter(|h| server.depot.existing(h).is_ok()))
        }
    }
}

type Answer = Result<(Response, Option<String>), Error>;

fn answer(server: &Server, request: Request, present: &Present<'_>) -> Answer {
    let depot = &server.depot;
    let plain = |response: Response| -> Answer { Ok((response, None)) };
    match request {
        Request::Create(r) => create(server, &r),
        Request::Stop(r) => {
            container::stop(
                depot,
                &r.handle,
                &orchestrator::StopOptions {
                    kill: r.kill(),
                    background: r.background(),
                },
            )?;
            plain(Response::Stop(pb::StopResponse::default()))
        }
        Request::Destroy(r) => {
            container::destroy(depot, &server.paths, &r.handle)?;
            server.grace.forget(&r.handle);
            plain(Response::Destroy(pb::DestroyResponse::default()))
        }
        Request::Info(r) => plain(Response::Info(info(depot, &r.handle)?)),
        Request::Spawn(r) => {
            let job_id = spawn(server, &r)?;
            plain(Response::Spawn(pb::SpawnResponse { job_id }))
        }
        Request::Link(r) => {
            let result = jobs::link_output_while(depot, &r.handle, &r.job_id.to_string(), present)?;
            plain(Response::Link(pb::LinkResponse {
                exit_status: Some(exit_status(result.exit_status)),
                stdout: Some(result.stdout),
                stderr: Some(result.stderr),
                info: brief_info(depot, &r.handle),
            }))
        }
        Request::Run(r) => {
            // Warden's run: a spawn, then a link of that job.
            // The job is recorded by a thread of ours (the client waits
            // for it now), not by a recorder process.
            let opts = spawn_options(
                server,
                &pb::SpawnRequest {
                    handle: r.handle.clone(),
                    script: r.script.clone(),
                    privileged: r.privileged,
                    rlimits: r.rlimits,
                    discard_output: r.discard_output,
                    log_tag: r.log_tag.clone(),
                },
            );
            let (_, result) = jobs::run_attached(depot, &r.handle, &opts, present)?;
            plain(Response::Run(pb::RunResponse {
                exit_status: Some(exit_status(result.exit_status)),
                stdout: Some(result.stdout),
                stderr: Some(result.stderr),
                info: brief_info(depot, &r.handle),
            }))
        }
        Request::Stream(_) => unreachable_stream(),
        Request::NetIn(r) => {
            let host = r.host_port.map(port).transpose()?;
            let cont = r.container_port.map(port).transpose()?;
            let (host_port, container_port) = container::net_in(depot, &r.handle, host, cont)?;
            plain(Response::NetIn(pb::NetInResponse {
                host_port: u32::from(host_port),
                container_port: u32::from(container_port),
            }))
        }
        Request::NetOut(r) => {
            limits::net_out(depot, &r.handle, &net_out_rule(&r))?;
            plain(Response::NetOut(pb::NetOutResponse::default()))
        }
        Request::CopyIn(r) => {
            container::copy_in(depot, &r.handle, Path::new(&r.src_path), &r.dst_path)?;
            plain(Response::CopyIn(pb::CopyInResponse::default()))
        }
        Request::CopyOut(r) => {
            container::copy_out(
                depot,
                &r.handle,
                &r.src_path,
                Path::new(&r.dst_path),
                r.owner.as_deref(),
            )?;
            plain(Response::CopyOut(pb::CopyOutResponse::default()))
        }
        Request::LimitMemory(r) => {
            let text = limits::memory(depot, &r.handle, r.limit_in_bytes)?;
            plain(Response::LimitMemory(pb::LimitMemoryResponse {
                limit_in_bytes: Some(control_value(&text)),
            }))
        }
        Request::LimitCpu(r) => {
            let text = limits::cpu(depot, &r.handle, r.limit_in_shares)?;
            plain(Response::LimitCpu(pb::LimitCpuResponse {
                limit_in_shares: Some(control_value(&text)),
            }))
        }
        Request::LimitBandwidth(r) => {
            limits::bandwidth(depot, &r.handle, r.rate, r.burst)?;
            let instance = Instance::open(depot, &r.handle)?;
            let stat = limits::bandwidth_stat(&instance);
            let get = |k: &str| stat.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| *v);
            plain(Response::LimitBandwidth(pb::LimitBandwidthResponse {
                rate: get("in_rate"),
                burst: get("in_burst"),
            }))
        }
        Request::LimitDisk(r) => {
            let request = disk::DiskRequest {
                // `block`, `inode` and `byte` are older names of the
                // *_limit fields.
                byte_limit: r.byte_limit.or(r.byte),
                byte_soft: r.byte_soft,
                byte_hard: r.byte_hard,
                block_limit: r.block_limit.or(r.block),
                block_soft: r.block_soft,
                block_hard: r.block_hard,
                inode_limit: r.inode_limit.or(r.inode),
                inode_soft: r.inode_soft,
                inode_hard: r.inode_hard,
            };
            let l = disk::limit(depot, &r.handle, &request)?;
            plain(Response::LimitDisk(pb::LimitDiskResponse {
                block_limit: Some(l.byte_hard / disk::BLOCK),
                block: Some(l.byte_hard / disk::BLOCK),
                block_soft: Some(l.byte_soft / disk::BLOCK),
                block_hard: Some(l.byte_hard / disk::BLOCK),
                inode_limit: Some(l.inode_hard),
                inode: Some(l.inode_hard),
                inode_soft: Some(l.inode_soft),
                inode_hard: Some(l.inode_hard),
                byte_limit: Some(l.byte_hard),
                byte: Some(l.byte_hard),
                byte_soft: Some(l.byte_soft),
                byte_hard: Some(l.byte_hard),
            }))
        }
        Request::Ping(_) => plain(Response::Ping(pb::PingResponse::default())),
        Request::List(_) => plain(Response::List(pb::ListResponse {
            handles: container::list(depot)?,
        })),
        Request::Echo(r) => plain(Response::Echo(pb::EchoResponse { message: r.message })),
    }
}

fn unreachable_stream() -> Answer {
    Err(Error::Tool("stream is served by stream()".into()))
}

fn create(server: &Server, r: &pb::CreateRequest) -> Answer {
    let config = &server.config;
    let rootfs = match (&r.rootfs, &config.rootfs) {
        (Some(path), _) if !path.is_empty() => PathBuf::from(path),
        (_, Some(path)) => path.clone(),
        _ => {
            return Err(Error::BadArgument(
                "no rootfs: the request names none and server.container_rootfs_path is not set"
                    .into(),
            ))
        }
    };
    let bind_mounts = r
        .bind_mounts
        .iter()
        .map(|b| {
            let mode = if b.mode() == pb::create_request::bind_mount::Mode::Rw {
                "rw"
            } else {
                "ro"
            };
            if b.src_path.contains(':') || b.dst_path.contains(':') {
                return Err(Error::BadArgument(format!(
                    "bind mount {} -> {}: paths may not contain ':'",
                    b.src_path, b.dst_path
                )));
            }
            format!("{}:{}:{mode}", b.src_path, b.dst_path).parse::<BindMount>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let network =
        match r.network.as_deref() {
            None | Some("") => None,
            Some(text) => Some(text.parse::<Ipv4Addr>().map_err(|_| {
                Error::BadArgument(format!("network {text:?} is not an IPv4 address"))
            })?),
        };
    let opts = CreateOptions {
        handle: r.handle.clone().filter(|h| !h.is_empty()),
        rootfs,
        bind_mounts,
        network,
        pool: Some(config.pool),
        disk: None,
        job_output_limit: config.job_output_limit,
        pids_limit: None,
        shm_size: None,
        allow_nested_warden: config.allow_nested_warden,
        dns_servers: config.dns_servers.clone(),
        grace_time: r.grace_time.or(config.grace_time),
        mtu: Some(config.mtu),
    };
    let handle = container::create(&server.depot, &server.paths, &opts)?;
    Ok((
        Response::Create(pb::CreateResponse {
            handle: handle.clone(),
        }),
        Some(handle),
    ))
}

fn spawn(server: &Server, r: &pb::SpawnRequest) -> Result<u32, Error> {
    jobs::spawn(&server.depot, &r.handle, &spawn_options(server, r))
}

fn spawn_options(server: &Server, r: &pb::SpawnRequest) -> SpawnOptions {
    // The server's container_rlimits, then the request's on top.
    let mut rlimits = server.config.rlimits.clone();
    for (name, value) in r.rlimits.as_ref().map(request_rlimits).unwrap_or_default() {
        rlimits.retain(|(n, _)| *n != name);
        rlimits.push((name, value));
    }
    SpawnOptions {
        privileged: r.privileged(),
        rlimits,
        discard_output: r.discard_output(),
        script: r.script.clone(),
        ..Default::default()
    }
}

/// ResourceLimits' fields, each a limit both soft and hard, as the Ruby
/// server sets them.
fn request_rlimits(r: &pb::ResourceLimits) -> Vec<(String, String)> {
    let fields: [(&str, Option<u64>); 15] = [
        ("AS", r.r#as),
        ("CORE", r.core),
        ("CPU", r.cpu),
        ("DATA", r.data),
        ("FSIZE", r.fsize),
        ("LOCKS", r.locks),
        ("MEMLOCK", r.memlock),
        ("MSGQUEUE", r.msgqueue),
        ("NICE", r.nice),
        ("NOFILE", r.nofile),
        ("NPROC", r.nproc),
        ("RSS", r.rss),
        ("RTPRIO", r.rtprio),
        ("SIGPENDING", r.sigpending),
        ("STACK", r.stack),
    ];
    fields
        .into_iter()
        .filter_map(|(name, value)| Some((format!("RLIMIT_{name}"), format!("{0} {0}", value?))))
        .collect()
}

/// Warden's exit_status is unsigned; a job killed by a signal is 255.
fn exit_status(code: i32) -> u32 {
    u32::try_from(code).unwrap_or(255)
}

fn port(p: u32) -> Result<u16, Error> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::BadArgument(format!("port {p} is out of range 1..=65535")))
}

/// A control file's value as a number; cgroup v2's "max" is the largest
/// limit v1 reports.
fn control_value(text: &str) -> u64 {
    match text.trim() {
        "max" => 0x7fff_ffff_ffff_f000,
        t => t.parse().unwrap_or(0),
    }
}

fn net_out_rule(r: &pb::NetOutRequest) -> netrules::NetOut {
    use pb::net_out_request::Protocol;
    netrules::NetOut {
        network: r.network.clone().filter(|n| !n.is_empty()),
        port: r.port.map(|p| p.to_string()),
        port_range: r.port_range.clone().filter(|p| !p.is_empty()),
        protocol: r.protocol.map(|_| {
            match r.protocol() {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Icmp => "icmp",
                Protocol::All => "all",
            }
            .to_string()
        }),
        icmp_type: r.icmp_type.map(i64::from),
        icmp_code: r.icmp_code.map(i64::from),
        log: r.log(),
    }
}

pub fn info(depot: &Depot, handle: &str) -> Result<pb::InfoResponse, Error> {
    info_response(container::info(depot, handle)?, true)
}

/// The info a link, run or stream response carries: no disk and bandwidth
/// stats (see [`container::info_brief`]); an InfoRequest has them.
fn brief_info(depot: &Depot, handle: &str) -> Option<pb::InfoResponse> {
    container::info_brief(depot, handle)
        .ok()
        .and_then(|i| info_response(i, false).ok())
}

fn info_response(info: container::Info, all_stats: bool) -> Result<pb::InfoResponse, Error> {
    let get =
        |pairs: &[(String, u64)], key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    let m = &info.memory_stat;
    let memory_stat = pb::info_response::MemoryStat {
        cache: get(m, "cache"),
        rss: get(m, "rss"),
        mapped_file: get(m, "mapped_file"),
        pgpgin: get(m, "pgpgin"),
        pgpgout: get(m, "pgpgout"),
        swap: get(m, "swap"),
        pgfault: get(m, "pgfault"),
        pgmajfault: get(m, "pgmajfault"),
        inactive_anon: get(m, "inactive_anon"),
        active_anon: get(m, "active_anon"),
        inactive_file: get(m, "inactive_file"),
        active_file: get(m, "active_file"),
        unevictable: get(m, "unevictable"),
        hierarchical_memory_limit: get(m, "hierarchical_memory_limit"),
        hierarchical_memsw_limit: get(m, "hierarchical_memsw_limit"),
        total_cache: get(m, "total_cache"),
        total_rss: get(m, "total_rss"),
        total_mapped_file: get(m, "total_mapped_file"),
        total_pgpgin: get(m, "total_pgpgin"),
        total_pgpgout: get(m, "total_pgpgout"),
        total_swap: get(m, "total_swap"),
        total_pgfault: get(m, "total_pgfault"),
        total_pgmajfault: get(m, "total_pgmajfault"),
        total_inactive_anon: get(m, "total_inactive_anon"),
        total_active_anon: get(m, "total_active_anon"),
        total_inactive_file: get(m, "total_inactive_file"),
        total_active_file: get(m, "total_active_file"),
        total_unevictable: get(m, "total_unevictable"),
    };
    let c = &info.cpu_stat;
    let d = &info.disk_stat;
    let b = &info.bandwidth_stat;
    Ok(pb::InfoResponse {
        state: Some(info.state.as_str().to_string()),
        events: info.events.clone(),
        host_ip: Some(info.host_ip.clone()),
        container_ip: Some(info.container_ip.clone()),
        container_path: Some(info.container_path.display().to_string()),
        memory_stat: Some(memory_stat),
        cpu_stat: Some(pb::info_response::CpuStat {
            usage: get(c, "usage"),
            user: get(c, "user"),
            system: get(c, "system"),
        }),
        disk_stat: all_stats.then(|| pb::info_response::DiskStat {
            bytes_used: get(d, "bytes_used"),
            inodes_used: get(d, "inodes_used"),
        }),
        bandwidth_stat: all_stats.then(|| pb::info_response::BandwidthStat {
            in_rate: get(b, "in_rate"),
            in_burst: get(b, "in_burst"),
            out_rate: get(b, "out_rate"),
            out_burst: get(b, "out_burst"),
        }),
        job_ids: info.job_ids.iter().map(|&id| u64::from(id)).collect(),
    })
}

/// A StreamResponse per chunk as it arrives, then one with the exit status
/// and the container's info. A client that stops reading blocks only its
/// own connection, which holds at most one chunk.
fn stream(
    server: &Server,
    r: &pb::StreamRequest,
    send: &mut Send<'_>,
    present: &Present<'_>,
) -> io::Result<()> {
    let depot = &server.depot;
    let mut client_gone = None;
    let sink = |name: StreamName, data: &[u8]| {
        let response = Response::Stream(pb::StreamResponse {
            name: Some(
                match name {
                    StreamName::Stdout => "stdout",
                    StreamName::Stderr => "stderr",
                }
                .to_string(),
            ),
            data: Some(data.to_vec()),
            ..Default::default()
        });
        send(response).inspect_err(|e| {
            client_gone = Some(io::Error::new(e.kind(), e.to_string()));
        })
    };
    let result = jobs::stream_while(depot, &r.handle, &r.job_id.to_string(), sink, present);
    if let Some(e) = client_gone {
        return Err(e);
    }
    if matches!(result, Err(Error::Cancelled)) {
        return Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the client hung up",
        ));
    }
    match result {
        Ok(code) => send(Response::Stream(pb::StreamResponse {
            exit_status: Some(exit_status(code)),
            info: brief_info(depot, &r.handle),
            ..Default::default()
        })),
        Err(e) => send(error_response(e.to_string())),
    }
}

/// Grace time of a container, as recorded at its create.
pub fn grace_of(depot: &Depot, handle: &str) -> Option<Duration> {
    let instance = Instance::open(depot, handle).ok()?;
    instance
        .grace_time()
        .map(|s| Duration::from_secs(u64::from(s)))
}
