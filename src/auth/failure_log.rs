//! Failed authentications stay visible under flooding: a reporting budget per source.
//!
//! Every failed authentication is reported once, naming the client address and the claimed
//! public key: as an audit event (stored, and logged on `dbcert::audit`) when the audit trail
//! records that kind of failure, else as an `info` line on `dbcert::auth` (the
//! [`Authenticator`](super::Authenticator) does either). Reports are bounded per source — a
//! client address as the throttle counts it, [`super::throttle::source`] — at
//! [`FAILURE_REPORTS_PER_MINUTE`] a minute, so a flood from some addresses spends only their own
//! budgets and cannot silence a wrong attempt from another address. Beyond its budget a
//! source's failures are counted: one `warn` line says the source went over, and one at the end
//! of the minute gives the counts. With the default throttle (10 failures in a burst, one per
//! 6 s after), a source cannot fail more than 20 times in a minute, so every failure the
//! throttle lets through is reported.
//!
//! A client the throttle refuses is noted once per source and minute (a `warn` line naming the
//! address, the key and the wait): refusals are not failures, and are not counted.
//!
//! Memory and the store are bounded: at most [`MAX_TRACKED_SOURCES`] sources have budgets of
//! their own in a minute; failures from further sources share one budget of
//! [`OVERFLOW_REPORTS_PER_MINUTE`]. So at most `MAX_TRACKED_SOURCES × 20 + 60` failures a minute
//! are stored or logged one by one, per replica, whatever the flood.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::warn;

use super::throttle::source;

/// The failures reported (stored in the audit trail or logged) per source and minute.
pub const FAILURE_REPORTS_PER_MINUTE: u32 = 20;
/// The sources with a budget of their own in one minute.
pub const MAX_TRACKED_SOURCES: usize = 10_000;
/// The budget shared by the failures of sources beyond [`MAX_TRACKED_SOURCES`] (and of
/// requests without an address).
pub const OVERFLOW_REPORTS_PER_MINUTE: u32 = 60;
const WINDOW: Duration = Duration::from_secs(60);

/// The per-source reporting budgets of the current minute.
#[derive(Debug)]
pub struct FailureLog {
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    sources: HashMap<IpAddr, SourceCount>,
    overflow: SourceCount,
}

#[derive(Debug, Default)]
struct SourceCount {
    reported: u32,
    suppressed: u64,
    throttled_noted: bool,
}

// === impl FailureLog ===

impl FailureLog {
    /// Creates empty budgets.
    pub fn new() -> Self {
        Self {
            window: Mutex::new(Window::new(Instant::now())),
        }
    }

    /// Whether a failure from `address` is reported (within its source's budget); beyond it the
    /// failure is counted, and the first one over says so in a `warn` line.
    pub fn admit_failure(&self, address: Option<IpAddr>) -> bool {
        self.admit_failure_at(address, Instant::now())
    }

    /// Whether a refusal of a throttled client from `address` is to be noted: the first one of
    /// its source in the minute.
    pub fn admit_throttled(&self, address: Option<IpAddr>) -> bool {
        let mut window = self.current(Instant::now());
        let Some(count) = window.count(address) else {
            return false;
        };
        !std::mem::replace(&mut count.throttled_noted, true)
    }

    fn admit_failure_at(&self, address: Option<IpAddr>, now: Instant) -> bool {
        let mut window = self.current(now);
        let (count, limit) = match window.count(address) {
            Some(count) => (count, FAILURE_REPORTS_PER_MINUTE),
            None => (&mut window.overflow, OVERFLOW_REPORTS_PER_MINUTE),
        };
        if count.reported < limit {
            count.reported += 1;
            return true;
        }
        count.suppressed += 1;
        if count.suppressed == 1 {
            warn!(
                target: "dbcert::auth",
                source = %address.map(source).map(|s| s.to_string()).unwrap_or_default(),
                limit,
                "failed authentications from this source beyond its budget a minute are \
                 counted, not stored or logged one by one, until the minute ends"
            );
        }
        false
    }

    /// The window of `now`, after reporting and clearing the one that ended.
    fn current(&self, now: Instant) -> std::sync::MutexGuard<'_, Window> {
        // Every critical section leaves counters only: a panic cannot break an invariant.
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(window.start) >= WINDOW {
            window.report_suppressed();
            *window = Window::new(now);
        }
        window
    }
}

impl Default for FailureLog {
    fn default() -> Self {
        Self::new()
    }
}

// === impl Window ===

impl Window {
    fn new(start: Instant) -> Self {
        Self {
            start,
            sources: HashMap::new(),
            overflow: SourceCount::default(),
        }
    }

    /// The count of `address`'s source, tracked if there is room; `None` for the overflow.
    fn count(&mut self, address: Option<IpAddr>) -> Option<&mut SourceCount> {
        let source = source(address?);
        if !self.sources.contains_key(&source) && self.sources.len() >= MAX_TRACKED_SOURCES {
            return None;
        }
        Some(self.sources.entry(source).or_default())
    }

    fn report_suppressed(&self) {
        let over: Vec<&SourceCount> = self
            .sources
            .values()
            .chain([&self.overflow])
            .filter(|count| count.suppressed > 0)
            .collect();
        if over.is_empty() {
            return;
        }
        warn!(
            target: "dbcert::auth",
            suppressed = over.iter().map(|count| count.suppressed).sum::<u64>(),
            sources = over.len(),
            per_source_limit = FAILURE_REPORTS_PER_MINUTE,
            "failed authentications over their source's budget in the last minute were not \
             stored or logged one by one"
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn each_source_has_its_own_budget_a_minute() {
        let log = FailureLog::new();
        let t0 = log.window.lock().unwrap().start;
        let admitted = |address, now| {
            (0..FAILURE_REPORTS_PER_MINUTE + 30)
                .filter(|_| log.admit_failure_at(address, now))
                .count()
        };
        assert_eq!(admitted(ip("192.0.2.1"), t0), 20);
        // The flood spent its own budget only.
        assert!(log.admit_failure_at(ip("192.0.2.2"), t0));
        // An IPv6 client's /64 is one source.
        assert_eq!(admitted(ip("2001:db8::1"), t0), 20);
        assert!(!log.admit_failure_at(ip("2001:db8::ffff"), t0));
        assert!(log.admit_failure_at(ip("2001:db8:0:1::1"), t0));
        // A new minute, new budgets.
        assert_eq!(admitted(ip("192.0.2.1"), t0 + WINDOW), 20);
    }

    #[test]
    fn sources_beyond_the_bound_share_the_overflow_budget() {
        let log = FailureLog::new();
        let t0 = log.window.lock().unwrap().start;
        for i in 0..MAX_TRACKED_SOURCES as u32 {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(log.admit_failure_at(Some(address), t0));
        }
        assert_eq!(
            log.window.lock().unwrap().sources.len(),
            MAX_TRACKED_SOURCES
        );
        let overflow = (0..OVERFLOW_REPORTS_PER_MINUTE + 10)
            .filter(|i| {
                let address = IpAddr::from(std::net::Ipv4Addr::from(0xc000_0000 + i));
                log.admit_failure_at(Some(address), t0)
            })
            .count();
        assert_eq!(overflow, OVERFLOW_REPORTS_PER_MINUTE as usize);
        assert_eq!(
            log.window.lock().unwrap().sources.len(),
            MAX_TRACKED_SOURCES
        );
        // Requests without an address share it too.
        assert!(!log.admit_failure_at(None, t0));
    }

    #[test]
    fn a_throttled_source_is_noted_once_a_minute() {
        let log = FailureLog::new();
        assert!(log.admit_throttled(ip("192.0.2.1")));
        assert!(!log.admit_throttled(ip("192.0.2.1")));
        assert!(log.admit_throttled(ip("192.0.2.2")));
        assert!(!log.admit_throttled(None));
    }
}
