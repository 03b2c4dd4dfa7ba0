//! The bytes iomux-spawn and iomux-link exchange, on sockets and on disk.
//!
//! All integers are big-endian `u32`. Stream positions count the bytes a
//! stream has produced since the job started, modulo 2^32: they wrap, and
//! every comparison of two positions goes through [`pos_before`] /
//! [`pos_diff`] (serial-number arithmetic, valid while the two are less than
//! 2^31 apart).
//!
//! # Sockets in SOCKET_DIR (the C helpers' framing)
//!
//! `stdout.sock` and `stderr.sock`: on connect, the server sends
//!
//! | offset | size | field                                                   |
//! |-------:|-----:|---------------------------------------------------------|
//! | 0      | 4    | position of the first buffered byte (read - buffered)   |
//! | 4      | n    | the buffered bytes (n <= [`RING_SIZE`]), then live data |
//!
//! and closes the connection after the last byte of the stream.
//!
//! `status.sock`: when the job has ended, the server sends
//!
//! | offset | size | field                                                   |
//! |-------:|-----:|---------------------------------------------------------|
//! | 0      | 4    | raw wait status as `waitpid` gives it (code << 8, or the signal number) |
//!
//! then closes it. A close without these 4 bytes means the status is lost.
//!
//! # Cursors file (`iomux-link -w FILE`)
//!
//! | offset | size | field                                   |
//! |-------:|-----:|-----------------------------------------|
//! | 0      | 4    | stdout position: next byte to write out |
//! | 4      | 4    | stderr position: next byte to write out |
//!
//! Exactly 8 bytes; anything else is corrupt. A missing file means both 0.
//!
//! # Job files in SOCKET_DIR (this project's extension)
//!
//! Written by iomux-spawn once the child has exited and its pipes are
//! drained, before the status goes out on `status.sock` and before the
//! sockets are removed, each to a temporary name then renamed, so a reader
//! sees either nothing or the whole file. `status` is written last: its
//! presence means the tails are complete.
//!
//! `stdout.tail`, `stderr.tail`:
//!
//! | offset | size | field                                                 |
//! |-------:|-----:|-------------------------------------------------------|
//! | 0      | 4    | position of the first byte kept (same as the socket header) |
//! | 4      | n    | the last n <= [`RING_SIZE`] bytes of the stream       |
//!
//! `status`:
//!
//! | offset | size | field           |
//! |-------:|-----:|-----------------|
//! | 0      | 4    | raw wait status |

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Bytes of each output stream the server keeps for late clients.
pub const RING_SIZE: usize = 65535;
/// Bytes of the offset header in front of a stream.
pub const OFFSET_LEN: usize = 4;
/// Bytes of the status word.
pub const STATUS_LEN: usize = 4;
/// Bytes of the cursors file.
pub const CURSORS_LEN: usize = 8;

/// Socket carrying the exit status.
pub const STATUS_SOCKET: &str = "status.sock";
/// Job file holding the raw wait status.
pub const STATUS_FILE: &str = "status";

/// Exit code of iomux-link when the job was killed, the status was lost, or
/// the link itself failed.
pub const LINK_FAILURE: u8 = 255;

/// One of the two output streams of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub const ALL: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

    /// Socket name inside SOCKET_DIR.
    pub const fn socket_name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout.sock",
            Stream::Stderr => "stderr.sock",
        }
    }

    /// Tail file name inside SOCKET_DIR.
    pub const fn tail_name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout.tail",
            Stream::Stderr => "stderr.tail",
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    pub const fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

#[derive(Debug, Error)]
pub enum IomuxError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: cursors file has {len} bytes, expected {CURSORS_LEN}")]
    CursorsLength { path: PathBuf, len: usize },
    #[error("{path}: status file has {len} bytes, expected {STATUS_LEN}")]
    StatusLength { path: PathBuf, len: usize },
    #[error("{path}: tail file has {len} bytes, expected {OFFSET_LEN} to {}", OFFSET_LEN + RING_SIZE)]
    TailLength { path: PathBuf, len: usize },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> IomuxError + '_ {
    move |source| IomuxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------
// Positions

/// `b - a` as a signed distance: positive when `b` is after `a`.
pub fn pos_diff(a: u32, b: u32) -> i32 {
    b.wrapping_sub(a) as i32
}

/// True when position `a` comes strictly before `b` (wrapping).
pub fn pos_before(a: u32, b: u32) -> bool {
    pos_diff(a, b) > 0
}

// ---------------------------------------------------------------------------
// Socket words

pub fn encode_offset(pos: u32) -> [u8; OFFSET_LEN] {
    pos.to_be_bytes()
}

pub fn decode_offset(bytes: [u8; OFFSET_LEN]) -> u32 {
    u32::from_be_bytes(bytes)
}

/// A raw wait status as `waitpid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitStatus(pub u32);

impl WaitStatus {
    pub fn encode(self) -> [u8; STATUS_LEN] {
        self.0.to_be_bytes()
    }

    pub fn decode(bytes: [u8; STATUS_LEN]) -> Self {
        WaitStatus(u32::from_be_bytes(bytes))
    }

    /// The exit code when the process exited normally (`WIFEXITED`).
    pub fn exit_code(self) -> Option<u8> {
        if self.0 & 0x7f == 0 {
            Some(((self.0 >> 8) & 0xff) as u8)
        } else {
            None
        }
    }

    /// The signal that killed the process (`WIFSIGNALED`).
    pub fn signal(self) -> Option<i32> {
        let sig = self.0 & 0x7f;
        if sig != 0 && sig != 0x7f {
            Some(sig as i32)
        } else {
            None
        }
    }

    /// What iomux-link exits with for this status.
    pub fn link_exit_code(self) -> u8 {
        self.exit_code().unwrap_or(LINK_FAILURE)
    }
}

// ---------------------------------------------------------------------------
// Cursors file

/// Saved positions of iomux-link: the next byte to write out on each stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursors {
    pub stdout: u32,
    pub stderr: u32,
}

impl Cursors {
    pub fn get(&self, stream: Stream) -> u32 {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }

    pub fn set(&mut self, stream: Stream, pos: u32) {
        match stream {
            Stream::Stdout => self.stdout = pos,
            Stream::Stderr => self.stderr = pos,
        }
    }

    pub fn encode(&self) -> [u8; CURSORS_LEN] {
        let mut out = [0u8; CURSORS_LEN];
        out[0..4].copy_from_slice(&self.stdout.to_be_bytes());
        out[4..8].copy_from_slice(&self.stderr.to_be_bytes());
        out
    }

    /// `None` when the length is not exactly [`CURSORS_LEN`].
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != CURSORS_LEN {
            return None;
        }
        Some(Cursors {
            stdout: u32::from_be_bytes(bytes[0..4].try_into().ok()?),
            stderr: u32::from_be_bytes(bytes[4..8].try_into().ok()?),
        })
    }

    /// Read a cursors file; `Ok(None)` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<Self>, IomuxError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path)(e)),
        };
        Cursors::decode(&bytes)
            .map(Some)
            .ok_or_else(|| IomuxError::CursorsLength {
                path: path.to_path_buf(),
                len: bytes.len(),
            })
    }

    /// Replace the cursors file atomically (temporary name, then rename), so
    /// a link killed mid-write leaves the old file rather than a short one.
    pub fn write(&self, path: &Path) -> Result<(), IomuxError> {
        write_atomic(path, &self.encode())
    }
}

// ---------------------------------------------------------------------------
// Job files

/// The last bytes of a stream and the position of the first of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub offset: u32,
    pub data: Vec<u8>,
}

impl Tail {
    /// Position just after the last byte of the stream.
    pub fn end(&self) -> u32 {
        self.offset.wrapping_add(self.data.len() as u32)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(OFFSET_LEN + self.data.len());
        out.extend_from_slice(&encode_offset(self.offset));
        out.extend_from_slice(&self.data);
        out
    }

    /// `None` when shorter than the header or longer than a full ring.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < OFFSET_LEN || bytes.len() > OFFSET_LEN + RING_SIZE {
            return None;
        }
        Some(Tail {
            offset: decode_offset(bytes[0..OFFSET_LEN].try_into().ok()?),
            data: bytes[OFFSET_LEN..].to_vec(),
        })
    }
}

/// Write `SOCKET_DIR/<stream>.tail`.
pub fn write_tail(dir: &Path, stream: Stream, tail: &Tail) -> Result<(), IomuxError> {
    write_atomic(&dir.join(stream.tail_name()), &tail.encode())
}

/// Read `SOCKET_DIR/<stream>.tail`; `Ok(None)` when it does not exist.
pub fn read_tail(dir: &Path, stream: Stream) -> Result<Option<Tail>, IomuxError> {
    let path = dir.join(stream.tail_name());
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    Tail::decode(&bytes)
        .map(Some)
        .ok_or(IomuxError::TailLength {
            path,
            len: bytes.len(),
        })
}

/// Write `SOCKET_DIR/status`.
pub fn write_status_file(dir: &Path, status: WaitStatus) -> Result<(), IomuxError> {
    write_atomic(&dir.join(STATUS_FILE), &status.encode())
}

/// Read `SOCKET_DIR/status`; `Ok(None)` when it does not exist.
pub fn read_status_file(dir: &Path) -> Result<Option<WaitStatus>, IomuxError> {
    let path = dir.join(STATUS_FILE);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    let word: [u8; STATUS_LEN] =
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| IomuxError::StatusLength {
                path: path.clone(),
                len: bytes.len(),
            })?;
    Ok(Some(WaitStatus::decode(word)))
}

/// Remove job files left by an earlier job in the same directory, so that a
/// link never mistakes them for this job's.
pub fn remove_job_files(dir: &Path) -> Result<(), IomuxError> {
    let names = [
        STATUS_FILE,
        Stream::Stdout.tail_name(),
        Stream::Stderr.tail_name(),
    ];
    for name in names {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
    }
    Ok(())
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, IomuxError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Mode of the job files (tails, status, cursors): a job's output and
/// status are its server's alone, whatever the umask.
pub const JOB_FILE_MODE: u32 = 0o600;

/// Write `bytes` to `path` through a temporary file in the same directory
/// and a rename, so readers see the old content or the new, never a part.
/// The file gets [`JOB_FILE_MODE`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IomuxError> {
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(JOB_FILE_MODE)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        // A temporary file left by a killed writer keeps its old mode.
        f.set_permissions(fs::Permissions::from_mode(JOB_FILE_MODE))
            .map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wire-iomux-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn offset_is_big_endian_at_every_byte() {
        assert_eq!(encode_offset(0x0102_0304), [1, 2, 3, 4]);
        assert_eq!(decode_offset([0xde, 0xad, 0xbe, 0xef]), 0xdead_beef);
        assert_eq!(encode_offset(u32::MAX), [0xff; 4]);
        for v in [0u32, 1, 255, 256, 65535, 65536, 0x7fff_ffff, 0x8000_0000] {
            assert_eq!(decode_offset(encode_offset(v)), v);
        }
    }

    #[test]
    fn status_word_layout_and_meaning() {
        // exit 3: waitpid gives 3 << 8
        let s = WaitStatus(3 << 8);
        assert_eq!(s.encode(), [0, 0, 3, 0]);
        assert_eq!(WaitStatus::decode([0, 0, 3, 0]), s);
        assert_eq!(s.exit_code(), Some(3));
        assert_eq!(s.signal(), None);
        assert_eq!(s.link_exit_code(), 3);
        // killed by SIGKILL (9)
        let k = WaitStatus(9);
        assert_eq!(k.encode(), [0, 0, 0, 9]);
        assert_eq!(k.exit_code(), None);
        assert_eq!(k.signal(), Some(9));
        assert_eq!(k.link_exit_code(), LINK_FAILURE);
        // SIGSEGV with core dump flag
        let c = WaitStatus(0x80 | 11);
        assert_eq!(c.encode(), [0, 0, 0, 0x8b]);
        assert_eq!(c.signal(), Some(11));
        assert_eq!(WaitStatus(0).link_exit_code(), 0);
        assert_eq!(WaitStatus(255 << 8).link_exit_code(), 255);
        assert_eq!(WaitStatus(0x0102_0304).encode(), [1, 2, 3, 4]);
    }

    #[test]
    fn cursors_layout_at_every_offset() {
        let c = Cursors {
            stdout: 0x0102_0304,
            stderr: 0xa1b2_c3d4,
        };
        assert_eq!(c.encode(), [1, 2, 3, 4, 0xa1, 0xb2, 0xc3, 0xd4]);
        assert_eq!(Cursors::decode(&c.encode()), Some(c));
        assert_eq!(Cursors::decode(&[0; 7]), None);
        assert_eq!(Cursors::decode(&[0; 9]), None);
        assert_eq!(Cursors::decode(&[]), None);
        for i in 0..8 {
            let mut b = [0u8; 8];
            b[i] = 0x80;
            let d = Cursors::decode(&b).unwrap();
            let expect = 0x80u32 << (8 * (3 - (i % 4)));
            if i < 4 {
                assert_eq!((d.stdout, d.stderr), (expect, 0));
            } else {
                assert_eq!((d.stdout, d.stderr), (0, expect));
            }
        }
        let mut m = Cursors::default();
        m.set(Stream::Stderr, 7);
        assert_eq!(m.get(Stream::Stderr), 7);
        assert_eq!(m.get(Stream::Stdout), 0);
    }

    #[test]
    fn cursors_file_missing_short_and_round_trip() {
        let dir = tempdir("cursors");
        let path = dir.join("cursors");
        assert_eq!(Cursors::read(&path).unwrap(), None);
        let c = Cursors {
            stdout: u32::MAX,
            stderr: 5,
        };
        c.write(&path).unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 5]
        );
        assert_eq!(Cursors::read(&path).unwrap(), Some(c));
        fs::write(&path, [1, 2, 3]).unwrap();
        let err = Cursors::read(&path).unwrap_err();
        assert!(
            matches!(err, IomuxError::CursorsLength { len: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("cursors"), "{err}");
        // no temporary file left behind
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tail_layout_and_bounds() {
        let t = Tail {
            offset: 0x0000_0102,
            data: b"xyz".to_vec(),
        };
        assert_eq!(t.encode(), [0, 0, 1, 2, b'x', b'y', b'z']);
        assert_eq!(Tail::decode(&t.encode()), Some(t.clone()));
        assert_eq!(t.end(), 0x105);
        assert_eq!(Tail::decode(&[0, 0, 0]), None);
        assert_eq!(
            Tail::decode(&[0, 0, 0, 9]),
            Some(Tail {
                offset: 9,
                data: vec![]
            })
        );
        let full = vec![0u8; OFFSET_LEN + RING_SIZE];
        assert!(Tail::decode(&full).is_some());
        let over = vec![0u8; OFFSET_LEN + RING_SIZE + 1];
        assert_eq!(Tail::decode(&over), None);
        // the end wraps
        let w = Tail {
            offset: u32::MAX - 1,
            data: vec![1, 2, 3, 4],
        };
        assert_eq!(w.end(), 2);
    }

    #[test]
    fn job_files_round_trip_and_removal() {
        let dir = tempdir("jobfiles");
        assert_eq!(read_status_file(&dir).unwrap(), None);
        assert_eq!(read_tail(&dir, Stream::Stdout).unwrap(), None);
        let t = Tail {
            offset: 70000,
            data: b"end".to_vec(),
        };
        write_tail(&dir, Stream::Stdout, &t).unwrap();
        write_status_file(&dir, WaitStatus(3 << 8)).unwrap();
        assert_eq!(fs::read(dir.join("status")).unwrap(), [0, 0, 3, 0]);
        assert_eq!(
            fs::read(dir.join("stdout.tail")).unwrap(),
            [0, 1, 0x11, 0x70, b'e', b'n', b'd']
        );
        assert_eq!(read_tail(&dir, Stream::Stdout).unwrap(), Some(t));
        assert_eq!(read_tail(&dir, Stream::Stderr).unwrap(), None);
        assert_eq!(read_status_file(&dir).unwrap(), Some(WaitStatus(3 << 8)));
        fs::write(dir.join("status"), [0, 0]).unwrap();
        assert!(matches!(
            read_status_file(&dir),
            Err(IomuxError::StatusLength { len: 2, .. })
        ));
        remove_job_files(&dir).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        remove_job_files(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn positions_compare_across_the_wrap() {
        assert!(pos_before(0, 1));
        assert!(!pos_before(1, 0));
        assert!(!pos_before(5, 5));
        assert!(pos_before(u32::MAX, 0));
        assert!(pos_before(u32::MAX - 10, 10));
        assert!(!pos_before(10, u32::MAX - 10));
        assert_eq!(pos_diff(u32::MAX - 1, 2), 4);
        assert_eq!(pos_diff(2, u32::MAX - 1), -4);
        assert_eq!(pos_diff(0, 65535), 65535);
        assert_eq!(pos_diff(0x7fff_fff0, 0x8000_0010), 0x20);
    }

    #[test]
    fn socket_and_file_names() {
        assert_eq!(Stream::Stdout.socket_name(), "stdout.sock");
        assert_eq!(Stream::Stderr.socket_name(), "stderr.sock");
        assert_eq!(STATUS_SOCKET, "status.sock");
        assert_eq!(Stream::Stdout.tail_name(), "stdout.tail");
        assert_eq!(Stream::Stderr.tail_name(), "stderr.tail");
        assert_eq!(STATUS_FILE, "status");
    }
}
