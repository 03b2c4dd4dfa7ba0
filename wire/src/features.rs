//! The features file: what a running wshd speaks, readable without a
//! request.
//!
//! The C wshd aborts on a request it cannot parse, and the container dies
//! with it, so a client must never probe it with a version-2 request. This
//! project's wshd writes `<socket>.features` (`run/wshd.sock.features`)
//! beside its socket instead; a client that finds it, and finds it bound to
//! the wshd that serves the socket right now, may speak what it lists. The
//! C wshd never writes one, so against it the client stays at version 1.
//!
//! # Format
//!
//! ASCII lines `KEY VALUE...`, the first one `wshd-features 1`; readers
//! ignore keys they do not know (later versions may add some):
//!
//! ```text
//! wshd-features 1
//! pid 4242               the container's init (wshd --continue), host pid
//! starttime 123456       its start time (field 22 of /proc/PID/stat)
//! listener 4240          the process that called listen(): SO_PEERCRED's pid
//! socket 64769 1311007   st_dev and st_ino of the socket file
//! protocols 1 2          request versions the daemon accepts
//! ```
//!
//! # Staleness
//!
//! The file may outlive its wshd (a C wshd started later in the same run
//! directory unlinks the old socket and binds its own, but leaves this file).
//! A client trusts it only when all of these hold:
//!
//! - `socket` is the device and inode of the socket path now: a new socket
//!   is a new inode, and the old inode cannot be reused while the wshd that
//!   bound it lives (a bound socket holds its inode);
//! - `pid` runs with that `starttime`: the wshd that wrote the file is alive
//!   (a pid may be reused, a pid with its start time is not);
//! - after connecting, the peer credentials of the connection name
//!   `listener`: the socket connected to is the one that wshd listens on,
//!   which closes the window between the checks and the connect.
//!
//! Any check failing, or the file missing or malformed, means version 1.
//! wshd writes the file atomically (a temporary file renamed over it) once
//! the container serves and before its start-up returns, with the socket's
//! permissions (0600: whoever may use the socket may read it).

use std::path::{Path, PathBuf};

/// First line of a features file.
pub const MAGIC: &str = "wshd-features 1";

/// What a features file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    /// The serving wshd (the container's init) as the host sees it.
    pub pid: i32,
    /// Its start time in clock ticks since boot (/proc/PID/stat field 22).
    pub starttime: u64,
    /// The process that called listen() on the socket (wshd's host-side
    /// parent), as SO_PEERCRED reports it to a client.
    pub listener: i32,
    /// `st_dev` of the socket file.
    pub dev: u64,
    /// `st_ino` of the socket file.
    pub ino: u64,
    /// Request versions the daemon accepts.
    pub protocols: Vec<i32>,
}

/// Where the features file of `socket` is: the same path with `.features`
/// appended (`run/wshd.sock` -> `run/wshd.sock.features`).
pub fn path_for(socket: &Path) -> PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".features");
    PathBuf::from(p)
}

impl Features {
    /// Whether the daemon accepts request version `v`.
    pub fn speaks(&self, v: i32) -> bool {
        self.protocols.contains(&v)
    }

    /// The file's text.
    pub fn encode(&self) -> String {
        let protocols: Vec<String> = self.protocols.iter().map(i32::to_string).collect();
        format!(
            "{MAGIC}\npid {}\nstarttime {}\nlistener {}\nsocket {} {}\nprotocols {}\n",
            self.pid,
            self.starttime,
            self.listener,
            self.dev,
            self.ino,
            protocols.join(" ")
        )
    }

    /// Parse a features file; None unless it is well-formed and complete.
    pub fn parse(text: &str) -> Option<Features> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let (mut pid, mut starttime, mut listener, mut socket, mut protocols) =
            (None, None, None, None, None);
        for line in lines {
            let mut words = line.split_ascii_whitespace();
            let Some(key) = words.next() else {
                continue;
            };
            let values: Vec<&str> = words.collect();
            let one = || match values.as_slice() {
                [v] => Some(*v),
                _ => None,
            };
            match key {
                "pid" => pid = Some(one()?.parse::<i32>().ok().filter(|&p| p > 0)?),
                "starttime" => starttime = Some(one()?.parse::<u64>().ok()?),
                "listener" => listener = Some(one()?.parse::<i32>().ok().filter(|&p| p > 0)?),
                "socket" => match values.as_slice() {
                    [d, i] => socket = Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)),
                    _ => return None,
                },
                "protocols" => {
                    protocols = Some(
                        values
                            .iter()
                            .map(|v| v.parse::<i32>().ok())
                            .collect::<Option<Vec<_>>>()?,
                    )
                }
                _ => {}
            }
        }
        let (dev, ino) = socket?;
        Some(Features {
            pid: pid?,
            starttime: starttime?,
            listener: listener?,
            dev,
            ino,
            protocols: protocols?,
        })
    }
}

/// The start time (field 22) of a `/proc/PID/stat` line. The command name
/// (field 2) is in parentheses and may hold spaces and parentheses itself,
/// so fields are counted after its last `)`.
pub fn starttime_from_stat(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // rest starts at field 3 (state); field 22 is the 20th after the name.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// The start time of process `pid` as this process's /proc shows it.
pub fn starttime_of(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    starttime_from_stat(&stat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Features {
        Features {
            pid: 4242,
            starttime: 123456,
            listener: 4240,
            dev: 64769,
            ino: 1311007,
            protocols: vec![1, 2],
        }
    }

    #[test]
    fn round_trip() {
        let f = sample();
        assert_eq!(Features::parse(&f.encode()), Some(f.clone()));
        assert!(f.speaks(2) && f.speaks(1) && !f.speaks(3));
    }

    #[test]
    fn unknown_keys_are_ignored_and_missing_ones_refused() {
        let text = sample().encode() + "signals TERM INT\n\n";
        assert_eq!(Features::parse(&text), Some(sample()));
        for key in ["pid", "starttime", "listener", "socket", "protocols"] {
            let text: String = sample()
                .encode()
                .lines()
                .filter(|l| !l.starts_with(&format!("{key} ")))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(Features::parse(&text), None, "without {key}");
        }
    }

    #[test]
    fn malformed_files_are_refused() {
        let good = sample().encode();
        for bad in [
            String::new(),
            "garbage".to_string(),
            good.replacen(MAGIC, "wshd-features 2", 1),
            good.replace("pid 4242", "pid -1"),
            good.replace("pid 4242", "pid 1 2"),
            good.replace("socket 64769 1311007", "socket 64769"),
            good.replace("protocols 1 2", "protocols 1 two"),
            good.replace("starttime 123456", "starttime x"),
        ] {
            assert_eq!(Features::parse(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn path_is_beside_the_socket() {
        assert_eq!(
            path_for(Path::new("/x/run/wshd.sock")),
            PathBuf::from("/x/run/wshd.sock.features")
        );
    }

    #[test]
    fn starttime_survives_odd_command_names() {
        let rest = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 20 21";
        assert_eq!(starttime_from_stat(&format!("12 (wshd) {rest}")), Some(777));
        assert_eq!(
            starttime_from_stat(&format!("12 (a) b (c) {rest}")),
            Some(777)
        );
        assert_eq!(starttime_from_stat("12 (x) S 1"), None);
        let me = starttime_of(std::process::id() as i32).expect("own stat");
        assert_eq!(starttime_of(std::process::id() as i32), Some(me));
    }
}
