//! The wardend test harness: a real `wardend` on a socket of the test's
//! own, serving a [`TestDepot`] (so wardenctl sees the same containers and
//! the leak checks of [`crate::ctl`] apply), and a protocol client.

use std::fs;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use warden_protocol::framing::{FrameReader, DEFAULT_MAX_FRAME};
use warden_protocol::{pb, Request, Response};

use crate::ctl::{wait_for, TestDepot};
use crate::paths;

pub struct TestServer {
    pub depot: TestDepot,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl TestServer {
    /// None (after saying why) when not root. `extra_server` is YAML put
    /// under `server:` (indented by two spaces, one key a line).
    pub fn start(test: &str, first: u32, count: u32, extra_server: &str) -> Option<Self> {
        let depot = TestDepot::new_in(test, first, count)?;
        let socket = depot.root.join("warden.sock");
        let config = depot.root.join("linux.yml");
        let log = depot.root.join("wardend.log");
        let pool_start = depot.pool.trim_end_matches("/24");
        let text = format!(
            "server:\n  unix_domain_path: {}\n  container_rootfs_path: {}\n  container_depot_path: {}\n{extra_server}network:\n  pool_start_address: {pool_start}\n  pool_size: 64\nlogging:\n  level: debug\n",
            socket.display(),
            paths::rootfs().display(),
            depot.dir.display(),
        );
        fs::write(&config, text).unwrap();
        let mut server = TestServer {
            depot,
            socket,
            config,
            log,
            child: None,
        };
        server.launch();
        Some(server)
    }

    /// Starts wardend (again) and waits for its socket.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "wardend is already running");
        let _ = fs::remove_file(&self.socket);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(paths::bin("wardend"))
            .arg("--config")
            .arg(&self.config)
            .env("WARDEN_BIN_DIR", &self.depot.bin)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start wardend");
        self.child = Some(child);
        let socket = self.socket.clone();
        wait_for("wardend's socket", Duration::from_secs(30), || {
            UnixStream::connect(&socket).is_ok()
        });
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("wardend runs").id() as i32
    }

    /// Sends `signal` and waits for wardend to exit; returns its status.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("wardend runs");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
        child.wait().unwrap()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- wardend log ---\n{}", self.log_text());
        }
        // The depot's own Drop destroys what is left.
    }
}

pub struct Client {
    pub stream: UnixStream,
    reader: FrameReader<UnixStream>,
}

impl Client {
    pub fn connect(socket: &std::path::Path) -> Client {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
        let reader = FrameReader::new(stream.try_clone().unwrap(), DEFAULT_MAX_FRAME);
        Client { stream, reader }
    }

    pub fn send(&mut self, request: impl Into<Request>) {
        self.stream
            .write_all(&request.into().encode_frame())
            .expect("send a request");
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next response; None when the server closed the connection.
    pub fn try_receive(&mut self) -> Option<Response> {
        let payload = self.reader.read_frame().ok()??;
        Some(Response::decode_payload(&payload).expect("a response that decodes"))
    }

    pub fn receive(&mut self) -> Response {
        self.try_receive()
            .expect("a response before the connection closed")
    }

    pub fn call(&mut self, request: impl Into<Request>) -> Response {
        self.send(request);
        self.receive()
    }

    /// The response, which must not be an error.
    pub fn ok(&mut self, request: impl Into<Request>) -> Response {
        match self.call(request) {
            Response::Error(e) => panic!("error response: {}", error_text(&e)),
            r => r,
        }
    }

    /// The error message the request gets.
    pub fn error(&mut self, request: impl Into<Request>) -> String {
        match self.call(request) {
            Response::Error(e) => error_text(&e),
            r => panic!("expected an error, got {r:?}"),
        }
    }

    pub fn create(&mut self, handle: &str) -> String {
        match self.ok(pb::CreateRequest {
            handle: Some(handle.to_string()),
            ..Default::default()
        }) {
            Response::Create(r) => r.handle,
            r => panic!("create: {r:?}"),
        }
    }

    pub fn spawn(&mut self, handle: &str, script: &str) -> u32 {
        match self.ok(pb::SpawnRequest {
            handle: handle.to_string(),
            script: script.as_bytes().to_vec(),
            ..Default::default()
        }) {
            Response::Spawn(r) => r.job_id,
            r => panic!("spawn: {r:?}"),
        }
    }

    pub fn run(&mut self, handle: &str, script: &str) -> pb::RunResponse {
        match self.ok(pb::RunRequest {
            handle: handle.to_string(),
            script: script.as_bytes().to_vec(),
            ..Default::default()
        }) {
            Response::Run(r) => r,
            r => panic!("run: {r:?}"),
        }
    }

    pub fn destroy(&mut self, handle: &str) {
        self.ok(pb::DestroyRequest {
            handle: handle.to_string(),
        });
    }

    /// Streams a job to its end: (stdout, stderr, exit status).
    pub fn stream(&mut self, handle: &str, job_id: u32) -> (Vec<u8>, Vec<u8>, u32) {
        self.send(pb::StreamRequest {
            handle: handle.to_string(),
            job_id,
        });
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            match self.receive() {
                Response::Stream(r) => {
                    if let Some(status) = r.exit_status {
                        return (out, err, status);
                    }
                    match r.name.as_deref() {
                        Some("stdout") => out.extend(r.data.unwrap_or_default()),
                        Some("stderr") => err.extend(r.data.unwrap_or_default()),
                        other => panic!("stream name {other:?}"),
                    }
                }
                Response::Error(e) => panic!("stream: {}", error_text(&e)),
                r => panic!("stream: {r:?}"),
            }
        }
    }
}

pub fn error_text(e: &pb::ErrorResponse) -> String {
    String::from_utf8_lossy(e.message.as_deref().unwrap_or_default()).into_owned()
}
