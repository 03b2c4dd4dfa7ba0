//! The connections alive, for a drain (SIGUSR2): stop accepting, let the
//! requests in flight finish, close idle connections and those waiting on
//! a job (link, run, stream: a job may run for days; its client links
//! again to the next server), then exit.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Activity {
    Idle,
    Busy,
    WaitingOnJob,
}

struct Connection {
    stream: UnixStream,
    activity: Activity,
}

#[derive(Default)]
pub struct Live {
    connections: Mutex<HashMap<u64, Connection>>,
    changed: Condvar,
    draining: AtomicBool,
}

impl Live {
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Connection>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count(&self) -> usize {
        self.table().len()
    }

    pub fn connection_opened(&self, id: u64, stream: UnixStream) {
        self.table().insert(
            id,
            Connection {
                stream,
                activity: Activity::Idle,
            },
        );
    }

    pub fn connection_closed(&self, id: u64) {
        self.table().remove(&id);
        self.changed.notify_all();
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// False once draining: the request is not started.
    pub fn begin_request(&self, id: u64, waits_on_a_job: bool) -> bool {
        let mut table = self.table();
        if self.draining() {
            return false;
        }
        if let Some(c) = table.get_mut(&id) {
            c.activity = if waits_on_a_job {
                Activity::WaitingOnJob
            } else {
                Activity::Busy
            };
        }
        true
    }

    pub fn end_request(&self, id: u64) {
        let mut table = self.table();
        if let Some(c) = table.get_mut(&id) {
            c.activity = Activity::Idle;
            if self.draining() {
                let _ = c.stream.shutdown(Shutdown::Both);
            }
        }
        self.changed.notify_all();
    }

    /// Closes what is idle or waiting on a job, then waits (up to
    /// `timeout`) for the busy requests to finish and every connection to
    /// be gone.
    pub fn drain(&self, timeout: Duration) -> bool {
        let mut table = self.table();
        self.draining.store(true, Ordering::SeqCst);
        for c in table.values() {
            if c.activity != Activity::Busy {
                let _ = c.stream.shutdown(Shutdown::Both);
            }
        }
        let deadline = std::time::Instant::now() + timeout;
        while !table.is_empty() {
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            table = self
                .changed
                .wait_timeout(table, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        true
    }
}
