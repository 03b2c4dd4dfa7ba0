//! One line per event, `TIMESTAMP LEVEL message`, on stderr or the
//! config's logging.file. Levels are Warden's (fatal … debug2); anything
//! below the configured one is dropped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    /// Warden's names; debug1 and debug2 are debug.
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name.to_ascii_lowercase().as_str() {
            "fatal" => Level::Fatal,
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" | "debug1" | "debug2" | "all" => Level::Debug,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Level::Fatal => "fatal",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

struct Logger {
    level: Level,
    file: Option<Mutex<File>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets where and how much is logged; the first call wins.
pub fn init(level: Level, file: Option<&Path>) -> std::io::Result<()> {
    let file = match file {
        Some(path) => Some(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)?,
        )),
        None => None,
    };
    let _ = LOGGER.set(Logger { level, file });
    Ok(())
}

pub fn log(level: Level, message: std::fmt::Arguments<'_>) {
    let logger = LOGGER.get();
    if level > logger.map_or(Level::Info, |l| l.level) {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let line = format!("{} {} {}\n", timestamp(now), level.name(), message);
    match logger.and_then(|l| l.file.as_ref()) {
        Some(file) => {
            if let Ok(mut file) = file.lock() {
                let _ = file.write_all(line.as_bytes());
            }
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

/// `2026-12-01T13:05:09.123Z` for a time since the epoch (UTC), as the
/// library stamps container events.
fn timestamp(since_epoch: std::time::Duration) -> String {
    orchestrator::events::rfc3339(std::time::UNIX_EPOCH + since_epoch)
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Debug, format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_utc_dates() {
        use std::time::Duration;
        assert_eq!(super::timestamp(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::timestamp(Duration::from_millis(1_796_130_211_267)),
            "2026-12-01T13:03:31.267Z"
        );
        assert_eq!(
            super::timestamp(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
