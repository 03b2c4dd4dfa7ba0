//! Grace time: a container no connection references is destroyed once its
//! grace time has passed; any request naming it meanwhile cancels the
//! timer. References live in memory (a connection is a reference); each
//! container's grace time is kept in its directory (etc/grace_time), so a
//! restarted server starts a timer for every container it finds. Containers
//! without one (made by wardenctl) are never destroyed for want of a
//! reference.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Table {
    references: HashMap<String, usize>,
    deadlines: HashMap<String, Instant>,
}

#[derive(Default)]
pub struct Grace {
    table: Mutex<Table>,
    changed: Condvar,
}

impl Grace {
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panicking holder cannot leave the table inconsistent: every
        // change is a single insert or remove.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection refers to `handle`: its timer, if any, is cancelled.
    pub fn reference(&self, handle: &str) {
        let mut t = self.table();
        *t.references.entry(handle.to_string()).or_default() += 1;
        t.deadlines.remove(handle);
    }

    /// A connection that referred to `handle` is gone; when it was the last,
    /// the container's timer starts (`grace`: none, no timer).
    pub fn release(&self, handle: &str, grace: Option<Duration>) {
        let mut t = self.table();
        let last = match t.references.get_mut(handle) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                t.references.remove(handle);
                true
            }
        };
        if last {
            if let Some(grace) = grace {
                t.deadlines
                    .insert(handle.to_string(), Instant::now() + grace);
                self.changed.notify_all();
            }
        }
    }

    /// For a container found at start-up, which no connection refers to yet.
    pub fn start_timer(&self, handle: &str, grace: Duration) {
        let mut t = self.table();
        if !t.references.contains_key(handle) {
            t.deadlines
                .insert(handle.to_string(), Instant::now() + grace);
            self.changed.notify_all();
        }
    }

    /// The container is gone: no timer, no references to keep.
    pub fn forget(&self, handle: &str) {
        let mut t = self.table();
        t.deadlines.remove(handle);
    }

    /// Whether a connection refers to `handle` now: a timer that fired just
    /// as a request named the container must not destroy it.
    pub fn is_referenced(&self, handle: &str) -> bool {
        self.table().references.contains_key(handle)
    }

    #[cfg(test)]
    pub fn has_timer(&self, handle: &str) -> bool {
        self.table().deadlines.contains_key(handle)
    }

    /// Waits until a timer expires (or `tick` passes) and returns the
    /// handles whose time is up, their timers removed.
    pub fn wait_expired(&self, tick: Duration) -> Vec<String> {
        let mut t = self.table();
        let now = Instant::now();
        let next = t.deadlines.values().min().copied();
        let wait = match next {
            Some(at) if at <= now => Duration::ZERO,
            Some(at) => (at - now).min(tick),
            None => tick,
        };
        if !wait.is_zero() {
            t = self
                .changed
                .wait_timeout(t, wait)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let now = Instant::now();
        let expired: Vec<String> = t
            .deadlines
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(h, _)| h.clone())
            .collect();
        for handle in &expired {
            t.deadlines.remove(handle);
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_release_starts_the_timer_and_a_reference_cancels_it() {
        let g = Grace::new();
        g.reference("a");
        g.reference("a");
        g.release("a", Some(Duration::ZERO));
        assert!(!g.has_timer("a"), "one connection still refers to it");
        g.release("a", Some(Duration::from_secs(60)));
        assert!(g.has_timer("a"));
        g.reference("a");
        assert!(!g.has_timer("a"));
        assert!(g.is_referenced("a"));
        g.release("a", None);
        assert!(!g.is_referenced("a"));
        assert!(!g.has_timer("a"), "no grace time: no timer");
    }

    #[test]
    fn expired_timers_are_returned_once() {
        let g = Grace::new();
        g.start_timer("a", Duration::ZERO);
        g.start_timer("b", Duration::from_secs(3600));
        assert_eq!(
            g.wait_expired(Duration::from_millis(10)),
            vec!["a".to_string()]
        );
        assert!(g.wait_expired(Duration::from_millis(10)).is_empty());
        assert!(g.has_timer("b"));
        g.forget("b");
        assert!(!g.has_timer("b"));
    }

    #[test]
    fn start_up_timers_spare_referenced_containers() {
        let g = Grace::new();
        g.reference("a");
        g.start_timer("a", Duration::ZERO);
        assert!(!g.has_timer("a"));
    }
}
