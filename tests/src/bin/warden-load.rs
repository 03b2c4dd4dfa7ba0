//! `warden-load`: load and latency for wardend over its socket, for
//! bench/wardend.sh. Every subcommand prints its measurements on stdout
//! (one value a line, nothing else) and a summary on stderr; any error
//! ends it with a message and exit status 1 (2 for bad usage).
//!
//! ```text
//! warden-load ping SOCKET CLIENTS SECONDS   ping requests/s, all clients together
//! warden-load run SOCKET HANDLE N          N sequential `run /bin/true` on one
//!                                          connection: each round trip in ms
//! warden-load exec N [--stdin FILE] -- COMMAND [ARG...]
//!                                          N sequential runs of COMMAND (stdin
//!                                          FILE or /dev/null, stdout to
//!                                          /dev/null): each in ms, timed like
//!                                          `run`, for peers (wardenctl, wsh)
//! warden-load spawn SOCKET HANDLE N        N sequential `spawn /bin/true`: each
//!                                          round trip in ms (the job's start
//!                                          only; run = spawn + the job's end +
//!                                          the info its response carries)
//! warden-load info SOCKET HANDLE N         N sequential `info`: each in ms
//! warden-load create SOCKET PREFIX N       creates PREFIX1..PREFIXN: each handle
//! warden-load destroy SOCKET HANDLE...     destroys them (all it can)
//! warden-load streams SOCKET HANDLE...     spawns `sleep 600` in each container
//!                                          and holds one open stream on it, on a
//!                                          connection of its own; prints
//!                                          `ready N` once all are open, then
//!                                          holds them until stdin closes or
//!                                          SIGTERM/SIGINT/SIGHUP
//! ```

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use warden_protocol::framing::{FrameReader, DEFAULT_MAX_FRAME};
use warden_protocol::{pb, Request, Response};

const USAGE: &str = "usage: warden-load ping SOCKET CLIENTS SECONDS
       warden-load run SOCKET HANDLE N
       warden-load exec N [--stdin FILE] -- COMMAND [ARG...]
       warden-load spawn SOCKET HANDLE N
       warden-load info SOCKET HANDLE N
       warden-load create SOCKET PREFIX N
       warden-load destroy SOCKET HANDLE...
       warden-load streams SOCKET HANDLE...";

/// The job each held stream follows.
const STREAM_JOB: &str = "exec sleep 600\n";

type Result<T> = std::result::Result<T, String>;

/// A blocking protocol client; every failure is an error message.
struct Client {
    stream: UnixStream,
    reader: FrameReader<UnixStream>,
}

impl Client {
    fn connect(socket: &Path) -> Result<Client> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| format!("connect {}: {e}", socket.display()))?;
        let reader = FrameReader::new(
            stream.try_clone().map_err(|e| e.to_string())?,
            DEFAULT_MAX_FRAME,
        );
        Ok(Client { stream, reader })
    }

    fn send(&mut self, request: impl Into<Request>) -> Result<()> {
        self.stream
            .write_all(&request.into().encode_frame())
            .map_err(|e| format!("send a request: {e}"))
    }

    /// The next response; an ErrorResponse is an error too.
    fn receive(&mut self) -> Result<Response> {
        let payload = self
            .reader
            .read_frame()
            .map_err(|e| format!("read a response: {e}"))?
            .ok_or("wardend closed the connection")?;
        match Response::decode_payload(&payload) {
            Ok(Response::Error(e)) => Err(format!(
                "wardend: {}",
                String::from_utf8_lossy(e.message.as_deref().unwrap_or_default())
            )),
            Ok(r) => Ok(r),
            Err(e) => Err(format!("a response that does not decode: {e}")),
        }
    }

    fn call(&mut self, request: impl Into<Request>) -> Result<Response> {
        self.send(request)?;
        self.receive()
    }
}

fn unexpected(what: &str, r: &Response) -> String {
    format!(
        "{what}: unexpected {} response",
        warden_protocol::type_name(r.message_type())
    )
}

fn ping(client: &mut Client) -> Result<()> {
    match client.call(pb::PingRequest::default())? {
        Response::Ping(_) => Ok(()),
        r => Err(unexpected("ping", &r)),
    }
}

fn run_true(client: &mut Client, handle: &str) -> Result<()> {
    let request = pb::RunRequest {
        handle: handle.to_string(),
        script: b"/bin/true\n".to_vec(),
        ..Default::default()
    };
    match client.call(request)? {
        Response::Run(r) if r.exit_status == Some(0) => Ok(()),
        Response::Run(r) => Err(format!("run /bin/true: exit status {:?}", r.exit_status)),
        r => Err(unexpected("run", &r)),
    }
}

fn info(client: &mut Client, handle: &str) -> Result<()> {
    let request = pb::InfoRequest {
        handle: handle.to_string(),
    };
    match client.call(request)? {
        Response::Info(_) => Ok(()),
        r => Err(unexpected("info", &r)),
    }
}

fn create(client: &mut Client, handle: &str) -> Result<String> {
    let request = pb::CreateRequest {
        handle: Some(handle.to_string()),
        ..Default::default()
    };
    match client.call(request)? {
        Response::Create(r) => Ok(r.handle),
        r => Err(unexpected("create", &r)),
    }
}

fn destroy(client: &mut Client, handle: &str) -> Result<()> {
    let request = pb::DestroyRequest {
        handle: handle.to_string(),
    };
    match client.call(request)? {
        Response::Destroy(_) => Ok(()),
        r => Err(unexpected("destroy", &r)),
    }
}

fn spawn(client: &mut Client, handle: &str, script: &str) -> Result<u32> {
    let request = pb::SpawnRequest {
        handle: handle.to_string(),
        script: script.as_bytes().to_vec(),
        ..Default::default()
    };
    match client.call(request)? {
        Response::Spawn(r) => Ok(r.job_id),
        r => Err(unexpected("spawn", &r)),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Times `n` calls of `one`, printing each in ms as it ends.
fn time_each(n: usize, mut one: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    let mut out = std::io::stdout().lock();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        one()?;
        let t = ms(start.elapsed());
        writeln!(out, "{t:.4}").map_err(|e| e.to_string())?;
        times.push(t);
    }
    Ok(times)
}

/// CLIENTS connections pinging as fast as they can for SECONDS; the total
/// rate.
fn ping_load(socket: &Path, clients: usize, seconds: f64) -> Result<f64> {
    let total = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Connect everyone first, so that the clock measures pings only.
    let conns = (0..clients)
        .map(|_| Client::connect(socket))
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let workers: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let (total, stop) = (total.clone(), stop.clone());
            std::thread::spawn(move || -> Result<()> {
                while !stop.load(Ordering::Relaxed) {
                    ping(&mut c)?;
                    total.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let count = total.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for w in workers {
        w.join().map_err(|_| "a ping client panicked")??;
    }
    Ok(count as f64 / elapsed)
}

/// Runs `argv` once (stdin from `stdin`, else /dev/null), its stdout
/// thrown away; an error unless it exits 0.
fn exec_once(argv: &[String], stdin: Option<&Path>) -> Result<()> {
    let input = match stdin {
        Some(path) => Stdio::from(
            std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?,
        ),
        None => Stdio::null(),
    };
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(input)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("run {}: {e}", argv[0]))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{}: {status}", argv.join(" ")))
    }
}

/// Opens one stream per container on `sleep 600`, says `ready N`, and
/// holds them until stdin closes or a signal; an error if any stream
/// ended before that.
fn hold_streams(socket: &Path, handles: &[String]) -> Result<()> {
    let released = wait_for_release()?;
    let ended_early = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for handle in handles {
        let job = spawn(&mut Client::connect(socket)?, handle, STREAM_JOB)?;
        let mut client = Client::connect(socket)?;
        client.send(pb::StreamRequest {
            handle: handle.clone(),
            job_id: job,
        })?;
        let (handle, ended_early) = (handle.clone(), ended_early.clone());
        readers.push(std::thread::spawn(move || {
            // `sleep 600` writes nothing: any response is its end.
            let why = match client.receive() {
                Ok(r) => format!("{r:?}"),
                Err(e) => e,
            };
            eprintln!("warden-load: the stream of {handle} ended early: {why}");
            ended_early.fetch_add(1, Ordering::SeqCst);
        }));
    }
    println!("ready {}", handles.len());
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let why = released
        .recv()
        .map_err(|_| "lost the release signal".to_string())?;
    eprintln!("warden-load: {why}; closing {} streams", handles.len());
    match ended_early.load(Ordering::SeqCst) {
        0 => Ok(()),
        n => Err(format!("{n} of {} streams ended early", handles.len())),
    }
}

/// A channel that gets a message when stdin reaches its end or
/// SIGTERM/SIGINT/SIGHUP arrives (those are blocked here, for every thread
/// started later, and taken with sigwait).
fn wait_for_release() -> Result<mpsc::Receiver<String>> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block()
        .map_err(|e| format!("block signals: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let on_eof = tx.clone();
    std::thread::spawn(move || {
        let mut sink = [0u8; 4096];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = on_eof.send("stdin closed".to_string());
    });
    std::thread::spawn(move || {
        let why = match set.wait() {
            Ok(s) => format!("got {s}"),
            Err(e) => format!("sigwait: {e}"),
        };
        let _ = tx.send(why);
    });
    Ok(rx)
}

fn number<T: std::str::FromStr>(what: &str, text: &str) -> Result<T> {
    text.parse()
        .map_err(|_| format!("{what}: {text:?} is not a valid number"))
}

fn summary(what: &str, times: &[f64]) {
    eprintln!(
        "{what}: {} round trips, median {:.3} ms",
        times.len(),
        median(times)
    );
}

/// One subcommand; Err(None) is bad usage.
fn dispatch(args: &[String]) -> std::result::Result<(), Option<String>> {
    let socket = |i: usize| Path::new(&args[i]);
    match args {
        [cmd, _, clients, seconds] if cmd == "ping" => {
            let clients: usize = number("CLIENTS", clients)?;
            let seconds: f64 = number("SECONDS", seconds)?;
            if clients == 0 || seconds <= 0.0 {
                return Err(Some("CLIENTS and SECONDS must be positive".into()));
            }
            let rps = ping_load(socket(1), clients, seconds)?;
            println!("{rps:.0}");
            eprintln!("ping: {clients} clients, {seconds} s: {rps:.0} requests/s");
        }
        [cmd, _, handle, n] if cmd == "run" => {
            let n: usize = number("N", n)?;
            let mut client = Client::connect(socket(1))?;
            let times = time_each(n, || run_true(&mut client, handle))?;
            summary("run /bin/true via wardend", &times);
        }
        [cmd, _, handle, n] if cmd == "spawn" => {
            let n: usize = number("N", n)?;
            let mut client = Client::connect(socket(1))?;
            let times = time_each(n, || spawn(&mut client, handle, "/bin/true\n").map(drop))?;
            summary("spawn /bin/true via wardend", &times);
        }
        [cmd, _, handle, n] if cmd == "info" => {
            let n: usize = number("N", n)?;
            let mut client = Client::connect(socket(1))?;
            let times = time_each(n, || info(&mut client, handle))?;
            summary("info via wardend", &times);
        }
        [cmd, n, sep, argv @ ..] if cmd == "exec" && sep == "--" && !argv.is_empty() => {
            let n: usize = number("N", n)?;
            let times = time_each(n, || exec_once(argv, None))?;
            summary(&argv.join(" "), &times);
        }
        [cmd, n, flag, file, sep, argv @ ..]
            if cmd == "exec" && flag == "--stdin" && sep == "--" && !argv.is_empty() =>
        {
            let n: usize = number("N", n)?;
            let file = Path::new(file);
            let times = time_each(n, || exec_once(argv, Some(file)))?;
            summary(&format!("{} <{}", argv.join(" "), file.display()), &times);
        }
        [cmd, _, prefix, n] if cmd == "create" => {
            let n: usize = number("N", n)?;
            let mut client = Client::connect(socket(1))?;
            for i in 1..=n {
                println!("{}", create(&mut client, &format!("{prefix}{i}"))?);
            }
        }
        [cmd, _, handles @ ..] if cmd == "destroy" && !handles.is_empty() => {
            let mut client = Client::connect(socket(1))?;
            let failed: Vec<String> = handles
                .iter()
                .filter_map(|h| destroy(&mut client, h).err().map(|e| format!("{h}: {e}")))
                .collect();
            if !failed.is_empty() {
                return Err(Some(format!("destroy failed: {}", failed.join("; "))));
            }
        }
        [cmd, _, handles @ ..] if cmd == "streams" && !handles.is_empty() => {
            hold_streams(socket(1), handles)?;
        }
        _ => return Err(None),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Some(e)) => {
            eprintln!("warden-load: {e}");
            ExitCode::from(1)
        }
        Err(None) => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn bad_usage_and_bad_numbers() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(dispatch(&args("nope")), Err(None));
        assert_eq!(dispatch(&args("exec 3 true")), Err(None));
        assert_eq!(
            dispatch(&args("ping /nonexistent x 1")),
            Err(Some("CLIENTS: \"x\" is not a valid number".into()))
        );
        let e = dispatch(&args("ping /nonexistent/sock 1 1")).unwrap_err();
        assert!(e.unwrap().starts_with("connect /nonexistent/sock"));
    }

    #[test]
    fn exec_reports_failure() {
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(exec_once(&argv("true"), None).is_ok());
        assert!(exec_once(&argv("false"), None)
            .unwrap_err()
            .contains("exit status: 1"));
    }

    #[test]
    fn exec_feeds_the_stdin_file() {
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let file = std::env::temp_dir().join(format!("warden-load-stdin-{}", std::process::id()));
        std::fs::write(&file, "exit 3\n").unwrap();
        let e = exec_once(&argv("/bin/sh"), Some(&file)).unwrap_err();
        assert!(e.contains("exit status: 3"), "{e}");
        std::fs::write(&file, "exit 0\n").unwrap();
        assert!(exec_once(&argv("/bin/sh"), Some(&file)).is_ok());
        std::fs::remove_file(&file).unwrap();
        let e = exec_once(&argv("/bin/sh"), Some(Path::new("/nonexistent/x"))).unwrap_err();
        assert!(e.starts_with("open /nonexistent/x"), "{e}");
    }
}
