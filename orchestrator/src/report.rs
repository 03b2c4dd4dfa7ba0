//! wardenctl's `--json` output: one object per command (one per line for
//! `stream`), each shape described by a JSON Schema in docs/schema/ and
//! embedded in docs/cli.md. Fields are only ever added, never renamed or
//! retyped; a value that does not apply is null, not left out.
//!
//! A job's output goes into JSON strings as UTF-8, bytes that are not
//! replaced by U+FFFD (`output_lossy` then says so; `link` without
//! `--json` gives the exact bytes).

use std::io::{self, Write};

use serde_json::{json, Value};

use crate::disk::DiskLimits;
use crate::errors::{Error, Result};
use crate::jobs::{JobEnd, JobResult, StreamName};

pub fn list(handles: &[String]) -> Value {
    json!({ "handles": handles })
}

pub fn handle(handle: &str) -> Value {
    json!({ "handle": handle })
}

pub fn job_id(id: u32) -> Value {
    json!({ "job_id": id })
}

pub fn message(text: &str) -> Value {
    json!({ "message": text })
}

pub fn net_in(host_port: u16, container_port: u16) -> Value {
    json!({ "host_port": host_port, "container_port": container_port })
}

/// limit-memory's value as the cgroup holds it: bytes, or null for none
/// (v2's `max`).
pub fn memory(value: &str) -> Value {
    json!({ "limit_in_bytes": value.trim().parse::<u64>().ok() })
}

/// limit-cpu's value: shares on cgroup v1, the weight on v2.
pub fn cpu(value: &str, is_weight: bool) -> Value {
    let n = value.trim().parse::<u64>().ok();
    if is_weight {
        json!({ "cpu_shares": null, "cpu_weight": n })
    } else {
        json!({ "cpu_shares": n, "cpu_weight": null })
    }
}

/// limit-disk's limits in force, Warden's response fields.
pub fn disk(l: DiskLimits) -> Value {
    let block = crate::disk::BLOCK;
    json!({
        "byte_limit": l.byte_hard,
        "byte_soft": l.byte_soft,
        "byte_hard": l.byte_hard,
        "block_limit": l.byte_hard / block,
        "block_soft": l.byte_soft / block,
        "block_hard": l.byte_hard / block,
        "inode_limit": l.inode_hard,
        "inode_soft": l.inode_soft,
        "inode_hard": l.inode_hard,
    })
}

/// limit-bandwidth's settings in force (from [`crate::limits::bandwidth_stat`]);
/// null where none is set.
pub fn bandwidth(stat: &[(String, u64)]) -> Value {
    let get = |k: &str| stat.iter().find(|(key, _)| key == k).map(|(_, v)| *v);
    json!({
        "in_rate": get("in_rate"),
        "in_burst": get("in_burst"),
        "out_rate": get("out_rate"),
        "out_burst": get("out_burst"),
    })
}

/// The text form of [`bandwidth`]: `in_rate: N` lines, those set.
pub fn bandwidth_text(stat: &[(String, u64)]) -> String {
    stat.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

/// The fields every job report has: how it ended.
fn end_fields(handle: &str, end: &JobEnd) -> serde_json::Map<String, Value> {
    let Value::Object(map) = json!({
        "handle": handle,
        "job_id": end.job,
        "exit_status": end.exit_code(),
        "signal": end.signal_name(),
        "signal_number": end.signal,
        "core_dumped": end.core,
        "cause": end.cause(),
    }) else {
        unreachable!("json! of an object")
    };
    map
}

/// run's and link's report: how the job ended, and all its output.
pub fn job(handle: &str, result: &JobResult, end: &JobEnd) -> Value {
    let mut map = end_fields(handle, end);
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    let lossy = std::str::from_utf8(&result.stdout).is_err()
        || std::str::from_utf8(&result.stderr).is_err();
    map.insert("stdout".into(), stdout.into_owned().into());
    map.insert("stderr".into(), stderr.into_owned().into());
    map.insert("output_lossy".into(), lossy.into());
    Value::Object(map)
}

/// stream's last line.
pub fn stream_end(handle: &str, end: &JobEnd) -> Value {
    let mut map = end_fields(handle, end);
    map.insert("type".into(), "exit".into());
    Value::Object(map)
}

/// stream's lines for output: `{"type":"output","stream":..,"data":..}`,
/// a chunk's UTF-8 kept whole across chunk boundaries.
#[derive(Default)]
pub struct StreamLines {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    lossy: bool,
}

impl StreamLines {
    /// Writes the line for `bytes` of `name` (none when they only begin a
    /// character that the next chunk completes).
    pub fn write(&mut self, out: &mut dyn Write, name: StreamName, bytes: &[u8]) -> io::Result<()> {
        let carry = match name {
            StreamName::Stdout => &mut self.stdout,
            StreamName::Stderr => &mut self.stderr,
        };
        carry.extend_from_slice(bytes);
        // An incomplete sequence at the end waits for its next bytes.
        let keep = match std::str::from_utf8(carry) {
            Ok(_) => 0,
            Err(e) if e.error_len().is_none() => carry.len() - e.valid_up_to(),
            Err(_) => 0,
        };
        let ready: Vec<u8> = carry.drain(..carry.len() - keep).collect();
        if ready.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&ready);
        self.lossy |= std::str::from_utf8(&ready).is_err();
        line(out, &output_line(name, &text))
    }

    /// Flushes what is left (an incomplete character: U+FFFD), then the end.
    pub fn finish(&mut self, out: &mut dyn Write, handle: &str, end: &JobEnd) -> Result<()> {
        for name in [StreamName::Stdout, StreamName::Stderr] {
            let carry = match name {
                StreamName::Stdout => std::mem::take(&mut self.stdout),
                StreamName::Stderr => std::mem::take(&mut self.stderr),
            };
            if !carry.is_empty() {
                self.lossy = true;
                line(out, &output_line(name, &String::from_utf8_lossy(&carry)))
                    .map_err(Error::io("write stdout"))?;
            }
        }
        let mut last = stream_end(handle, end);
        last["output_lossy"] = self.lossy.into();
        line(out, &last).map_err(Error::io("write stdout"))
    }
}

fn output_line(name: StreamName, text: &str) -> Value {
    json!({ "type": "output", "stream": name.as_str(), "data": text })
}

fn line(out: &mut dyn Write, value: &Value) -> io::Result<()> {
    writeln!(out, "{value}")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end() -> JobEnd {
        JobEnd {
            job: 2,
            code: 255,
            signal: Some(9),
            core: false,
            oom: true,
            killed: None,
            status_unknown: false,
        }
    }

    #[test]
    fn job_reports_carry_the_end_and_the_output() {
        let result = JobResult {
            exit_status: 255,
            stdout: b"out\n".to_vec(),
            stderr: vec![0xff],
        };
        let v = job("h", &result, &end());
        assert_eq!(v["exit_status"], 137);
        assert_eq!(v["signal"], "SIGKILL");
        assert_eq!(v["signal_number"], 9);
        assert_eq!(v["cause"], "out of memory");
        assert_eq!(v["stdout"], "out\n");
        assert_eq!(v["stderr"], "\u{fffd}");
        assert_eq!(v["output_lossy"], true);
    }

    #[test]
    fn stream_lines_keep_characters_whole() {
        let mut lines = StreamLines::default();
        let mut out = Vec::new();
        let e = "é".as_bytes();
        lines
            .write(&mut out, StreamName::Stdout, &[b'a', e[0]])
            .unwrap();
        lines
            .write(&mut out, StreamName::Stdout, &[e[1], b'b'])
            .unwrap();
        lines.write(&mut out, StreamName::Stderr, &[e[0]]).unwrap();
        let end = JobEnd {
            signal: None,
            oom: false,
            code: 0,
            ..end()
        };
        lines.finish(&mut out, "h", &end).unwrap();
        let text = String::from_utf8(out).unwrap();
        let v: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v.len(), 4, "{text}");
        assert_eq!(v[0]["data"], "a");
        assert_eq!(v[1]["data"], "éb");
        assert_eq!(v[2]["stream"], "stderr");
        assert_eq!(v[2]["data"], "\u{fffd}");
        assert_eq!(v[3]["type"], "exit");
        assert_eq!(v[3]["exit_status"], 0);
        assert_eq!(v[3]["signal"], Value::Null);
        assert_eq!(v[3]["output_lossy"], true);
    }

    #[test]
    fn limits_in_force() {
        assert_eq!(memory("50331648\n")["limit_in_bytes"], 50331648);
        assert_eq!(memory("max\n")["limit_in_bytes"], Value::Null);
        assert_eq!(cpu("512", false)["cpu_shares"], 512);
        assert_eq!(cpu("20", true)["cpu_weight"], 20);
        let stat = vec![("in_rate".to_string(), 8), ("in_burst".to_string(), 1600)];
        assert_eq!(bandwidth(&stat)["in_rate"], 8);
        assert_eq!(bandwidth(&stat)["out_rate"], Value::Null);
        assert_eq!(bandwidth_text(&stat), "in_rate: 8\nin_burst: 1600\n");
    }
}
