//! A container's events with the time they happened: `etc/events.log`, one
//! JSON object per line, exactly what `wardenctl events --json` prints:
//!
//! ```text
//! {"time":"2026-12-01T15:40:00.123Z","kind":"create","message":"created"}
//! {"time":"2026-12-01T15:40:02.051Z","kind":"job_exit","message":"job 1 exited with status 0","job":1,"exit_status":0}
//! {"time":"2026-12-01T15:40:07.310Z","kind":"oom","message":"out of memory"}
//! ```
//!
//! `time` is RFC 3339 in UTC with milliseconds; `kind` one of [`Kind`];
//! `message` a line for people; `job`, `exit_status` and `signal` where they
//! apply. Every writer (wardenctl's commands, the job recorder, the OOM
//! watcher, wardend) appends whole lines, each in one write(2) on a
//! descriptor opened with O_APPEND, so lines from several processes never
//! interleave, and readers take only what ends in a newline.
//!
//! `etc/events` stays what it was: the plain strings Warden's protocol
//! carries in InfoResponse.events (`out of memory`, `job N killed: ...`),
//! each once, and `info` shows those alone; the log holds them too, timed,
//! next to the events Warden never reported (create, stop, job exits,
//! destroy).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::depot::Depot;
use crate::errors::{Error, Result};
use crate::instance::{self, Instance};

pub const LOG: &str = "etc/events.log";
const WARDEN_EVENTS: &str = "etc/events";
/// How often `--follow` looks for new lines: well inside the second an OOM
/// must take to show.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Stop,
    Destroy,
    Oom,
    JobExit,
    /// A job killed for passing its output limit.
    JobKilled,
    /// A job's output no longer fitting the container's disk image.
    OutputDropped,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Create,
        Kind::Stop,
        Kind::Destroy,
        Kind::Oom,
        Kind::JobExit,
        Kind::JobKilled,
        Kind::OutputDropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::Stop => "stop",
            Kind::Destroy => "destroy",
            Kind::Oom => "oom",
            Kind::JobExit => "job_exit",
            Kind::JobKilled => "job_killed",
            Kind::OutputDropped => "output_dropped",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub kind: Kind,
    pub message: String,
    pub job: Option<u32>,
    pub exit_status: Option<i32>,
    pub signal: Option<i32>,
}

impl Event {
    /// An event happening now.
    pub fn now(kind: Kind, message: impl Into<String>) -> Event {
        Event {
            time: rfc3339(SystemTime::now()),
            kind,
            message: message.into(),
            job: None,
            exit_status: None,
            signal: None,
        }
    }

    /// A job's end: its exit code, or the signal that killed it.
    pub fn job_exit(job: u32, exit_status: Option<i32>, signal: Option<i32>) -> Event {
        let message = match (signal, exit_status) {
            (Some(sig), _) => format!("job {job} killed by signal {}", signal_name(sig)),
            (None, Some(code)) => format!("job {job} exited with status {code}"),
            (None, None) => format!("job {job} ended"),
        };
        Event {
            job: Some(job),
            exit_status,
            signal,
            ..Event::now(Kind::JobExit, message)
        }
    }

    pub fn with_job(mut self, job: u32) -> Event {
        self.job = Some(job);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "time": self.time,
            "kind": self.kind.as_str(),
            "message": self.message,
        });
        let map = v.as_object_mut().expect("an object");
        if let Some(job) = self.job {
            map.insert("job".into(), job.into());
        }
        if let Some(code) = self.exit_status {
            map.insert("exit_status".into(), code.into());
        }
        if let Some(sig) = self.signal {
            map.insert("signal".into(), sig.into());
        }
        v
    }

    /// One line of the log; none for a line that is not an event.
    pub fn parse(line: &str) -> Option<Event> {
        let v: Value = serde_json::from_str(line).ok()?;
        let int = |key: &str| v.get(key).and_then(Value::as_i64);
        Some(Event {
            time: v.get("time")?.as_str()?.to_string(),
            kind: Kind::parse(v.get("kind")?.as_str()?)?,
            message: v.get("message")?.as_str()?.to_string(),
            job: int("job").and_then(|n| u32::try_from(n).ok()),
            exit_status: int("exit_status").and_then(|n| i32::try_from(n).ok()),
            signal: int("signal").and_then(|n| i32::try_from(n).ok()),
        })
    }

    /// What `events` prints without --json.
    pub fn to_text(&self) -> String {
        format!("{} {}", self.time, self.message)
    }
}

fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => sig.to_string(),
    }
}

/// Appends `event` to the container's log: one write(2) of a whole line on
/// an O_APPEND descriptor, so concurrent writers never interleave.
pub fn record(instance: &Instance, event: &Event) -> Result<()> {
    let path = instance.path.join(LOG);
    let mut line = event.to_json().to_string();
    line.push('\n');
    let mut file = instance::open_private(&path, true)?;
    file.write_all(line.as_bytes())
        .map_err(Error::io(format!("write {}", path.display())))
}

/// As [`record`], for events Warden reports in info (etc/events, each
/// string once, as before): the plain string there, the timed one in the
/// log. A string already in etc/events is recorded in neither again.
pub fn record_warden(instance: &Instance, event: &Event) -> Result<()> {
    let path = instance.path.join(WARDEN_EVENTS);
    let text = fs::read_to_string(&path).unwrap_or_default();
    if text.lines().any(|l| l == event.message) {
        return Ok(());
    }
    let mut file = instance::open_private(&path, true)?;
    writeln!(file, "{}", event.message).map_err(Error::io(format!("write {}", path.display())))?;
    record(instance, event)
}

/// As [`record`], reporting a failure on stderr rather than failing what
/// the event is about (a create, a stop, a job's end).
pub fn note(instance: &Instance, event: &Event) {
    if let Err(e) = record(instance, event) {
        eprintln!("wardenctl: event {:?} not recorded: {e}", event.message);
    }
}

/// Reads a growing log line by line: only whole lines (a writer's line may
/// be half there when read), from where the last call stopped.
struct LogReader {
    file: Option<File>,
    pending: Vec<u8>,
    pos: u64,
}

impl LogReader {
    fn new() -> Self {
        LogReader {
            file: None,
            pending: Vec::new(),
            pos: 0,
        }
    }

    /// The events appended since the last call; a line that is no event
    /// is reported on stderr and skipped.
    fn read_new(&mut self, instance: &Instance) -> Result<Vec<Event>> {
        let path = instance.path.join(LOG);
        if self.file.is_none() {
            match File::open(&path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(Error::io(format!("open {}", path.display()))(e)),
            }
        }
        let file = self.file.as_mut().expect("opened above");
        file.seek(SeekFrom::Start(self.pos))
            .map_err(Error::io(format!("seek {}", path.display())))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(Error::io(format!("read {}", path.display())))?;
        self.pos += bytes.len() as u64;
        self.pending.extend_from_slice(&bytes);
        let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let whole: Vec<u8> = self.pending.drain(..=end).collect();
        let mut events = Vec::new();
        for line in String::from_utf8_lossy(&whole).lines() {
            if line.is_empty() {
                continue;
            }
            match Event::parse(line) {
                Some(event) => events.push(event),
                None => eprintln!(
                    "wardenctl: {}: skipping a line that is no event: {line:?}",
                    path.display()
                ),
            }
        }
        Ok(events)
    }
}

/// The container's events so far.
pub fn read(instance: &Instance) -> Result<Vec<Event>> {
    LogReader::new().read_new(instance)
}

/// Hands the container's events to `sink`, oldest first; with `follow`,
/// then every new one as it is recorded, until the container is destroyed
/// (its directory gone or replaced by a new container of the same handle).
/// A sink error ends it with that error.
pub fn show(
    depot: &Depot,
    handle: &str,
    follow: bool,
    mut sink: impl FnMut(&Event) -> io::Result<()>,
) -> Result<()> {
    let instance = Instance::open(depot, handle)?;
    let identity = instance.dir_identity();
    let mut reader = LogReader::new();
    let mut emit = |events: Vec<Event>| -> Result<()> {
        for event in &events {
            sink(event).map_err(Error::io("write the events"))?;
        }
        Ok(())
    };
    emit(reader.read_new(&instance)?)?;
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(FOLLOW_POLL);
        // Looked at before the read: what was written before the
        // directory went is still read from the open log.
        let gone = identity.is_none() || instance.dir_identity() != identity;
        match reader.read_new(&instance) {
            Ok(events) => emit(events)?,
            Err(_) if gone => {}
            Err(e) => return Err(e),
        }
        if gone {
            return Ok(());
        }
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-12-01T15:40:00.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// civil_from_days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // date -u -d @1796139600 is 2026-12-01 15:40:00 UTC.
        let t = UNIX_EPOCH + Duration::from_millis(1_796_139_600_123);
        assert_eq!(rfc3339(t), "2026-12-01T15:40:00.123Z");
        // A leap day and the end of a century year.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_107_542_399);
        assert_eq!(rfc3339(t), "2100-02-28T23:59:59.000Z");
    }

    #[test]
    fn events_round_trip_through_a_line() {
        let e = Event::job_exit(3, Some(7), None);
        assert_eq!(e.message, "job 3 exited with status 7");
        let line = e.to_json().to_string();
        assert!(!line.contains('\n'));
        assert_eq!(Event::parse(&line), Some(e));
        let killed = Event::job_exit(4, Some(255), Some(9));
        assert_eq!(killed.message, "job 4 killed by signal SIGKILL");
        assert_eq!(Event::parse(&killed.to_json().to_string()), Some(killed));
        let oom = Event::now(Kind::Oom, "out of memory");
        let v = oom.to_json();
        assert_eq!(v["kind"], "oom");
        assert!(v.get("job").is_none());
        assert_eq!(Event::parse("not json"), None);
        assert_eq!(
            Event::parse(r#"{"time":"t","kind":"nonsense","message":"m"}"#),
            None
        );
    }

    #[test]
    fn only_whole_lines_are_read() {
        let dir = std::env::temp_dir().join(format!("wardenctl-events-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("etc")).unwrap();
        let instance = Instance {
            handle: "h".into(),
            path: dir.clone(),
        };
        let mut reader = LogReader::new();
        assert!(reader.read_new(&instance).unwrap().is_empty(), "no log yet");
        record(&instance, &Event::now(Kind::Create, "created")).unwrap();
        let line = Event::now(Kind::Stop, "stopped").to_json().to_string();
        let (head, tail) = line.split_at(10);
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.join(LOG))
            .unwrap();
        f.write_all(head.as_bytes()).unwrap();
        let first = reader.read_new(&instance).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].kind, Kind::Create);
        f.write_all(format!("{tail}\n").as_bytes()).unwrap();
        let second = reader.read_new(&instance).unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].kind, Kind::Stop);
        // Warden's events: the plain string once, the timed one logged.
        let oom = Event::now(Kind::Oom, "out of memory");
        record_warden(&instance, &oom).unwrap();
        record_warden(&instance, &oom).unwrap();
        assert_eq!(
            fs::read_to_string(dir.join(WARDEN_EVENTS)).unwrap(),
            "out of memory\n"
        );
        assert_eq!(read(&instance).unwrap().len(), 3);
        fs::remove_dir_all(&dir).unwrap();
    }
}
