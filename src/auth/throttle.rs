//! Failed-authentication throttling: a token bucket per API public key and per client address,
//! in memory (per replica), so guessing keys is slow.
//!
//! Only failures take tokens. A caller whose address or key has no token left is refused with
//! `RATE_LIMITED` *before* its credentials are checked (so a throttled guesser learns nothing,
//! not even from a right guess), until a token has refilled. Successful authentications take
//! nothing, so a legitimate client is throttled only while someone keeps failing as its key or
//! from its address.
//!
//! Memory is bounded: at most [`ThrottleSettings::max_entries`] buckets; when full, refilled
//! buckets are dropped first, then the fullest ones.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest public key tracked as given; longer ones are cut (keys are 8 characters).
const MAX_TRACKED_KEY_LEN: usize = 64;

/// How failed authentications are throttled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures allowed in a burst, per key and per address; 0 turns throttling off.
    pub burst: u32,
    /// The time one failure's token takes to come back.
    pub refill: Duration,
    /// The most buckets kept in memory.
    pub max_entries: usize,
}

/// Who failed, or who is asking: the client address and the public key it claimed, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt<'a> {
    /// The client address (the TCP peer; behind a trusted proxy, the client it names).
    pub address: Option<IpAddr>,
    /// The public key claimed, if the request got that far.
    pub public_key: Option<&'a str>,
}

/// The per-replica throttle of failed authentications.
#[derive(Debug)]
pub struct AuthThrottle {
    settings: ThrottleSettings,
    buckets: Mutex<HashMap<Subject, Bucket>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Address(IpAddr),
    Key(String),
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

// === impl ThrottleSettings ===

impl ThrottleSettings {
    /// The most buckets kept in memory unless told otherwise. The defaults of `burst` and
    /// `refill` are the flags' (`config::DEFAULT_AUTH_FAILURE_BURST` and `_REFILL`).
    pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

    /// Settings with this burst and refill, and [`Self::DEFAULT_MAX_ENTRIES`] buckets.
    pub fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst,
            refill,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
        }
    }
}

// === impl AuthThrottle ===

impl AuthThrottle {
    /// Creates an empty throttle.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Returns how long the caller must wait if its address or key is throttled, else `None`.
    pub fn check(&self, attempt: &Attempt<'_>) -> Option<Duration> {
        self.check_at(attempt, Instant::now())
    }

    /// Records a failed authentication.
    pub fn record_failure(&self, attempt: &Attempt<'_>) {
        self.record_failure_at(attempt, Instant::now())
    }

    fn check_at(&self, attempt: &Attempt<'_>, now: Instant) -> Option<Duration> {
        if self.settings.burst == 0 {
            return None;
        }
        let mut buckets = self.lock();
        subjects(attempt)
            .filter_map(|subject| {
                let bucket = buckets.get_mut(&subject)?;
                self.refill(bucket, now);
                (bucket.tokens < 1.0).then(|| self.wait_for_token(bucket))
            })
            .max()
    }

    fn record_failure_at(&self, attempt: &Attempt<'_>, now: Instant) {
        if self.settings.burst == 0 {
            return;
        }
        let mut buckets = self.lock();
        for subject in subjects(attempt) {
            if !buckets.contains_key(&subject) && buckets.len() >= self.settings.max_entries {
                self.evict(&mut buckets, now);
            }
            let bucket = buckets.entry(subject).or_insert(Bucket {
                tokens: f64::from(self.settings.burst),
                updated: now,
            });
            self.refill(bucket, now);
            bucket.tokens = (bucket.tokens - 1.0).max(0.0);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, Bucket>> {
        // A panic while holding the lock leaves counters, not invariants: keep using them.
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.updated);
        let gained = elapsed.as_secs_f64() / self.settings.refill.as_secs_f64().max(1e-3);
        bucket.tokens = (bucket.tokens + gained).min(f64::from(self.settings.burst));
        bucket.updated = now;
    }

    fn wait_for_token(&self, bucket: &Bucket) -> Duration {
        let missing = (1.0 - bucket.tokens).max(0.0);
        self.settings.refill.mul_f64(missing)
    }

    /// Makes room for one bucket: drops refilled buckets, then the fullest one.
    fn evict(&self, buckets: &mut HashMap<Subject, Bucket>, now: Instant) {
        let burst = f64::from(self.settings.burst);
        let refill = self.settings.refill.as_secs_f64().max(1e-3);
        buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() / refill < burst
        });
        if buckets.len() < self.settings.max_entries {
            return;
        }
        let fullest = buckets
            .iter()
            .max_by(|a, b| a.1.tokens.total_cmp(&b.1.tokens))
            .map(|(subject, _)| subject.clone());
        if let Some(subject) = fullest {
            buckets.remove(&subject);
        }
    }
}

fn subjects(attempt: &Attempt<'_>) -> impl Iterator<Item = Subject> {
    let address = attempt.address.map(Subject::Address);
    let key = attempt.public_key.map(|key| {
        let end = key
            .char_indices()
            .nth(MAX_TRACKED_KEY_LEN)
            .map_or(key.len(), |(i, _)| i);
        Subject::Key(key[..end].to_owned())
    });
    address.into_iter().chain(key)
}

/// Rounds a wait up to whole seconds, at least 1, for a `Retry-After` header.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(burst: u32, max_entries: usize) -> ThrottleSettings {
        ThrottleSettings {
            burst,
            refill: Duration::from_secs(10),
            max_entries,
        }
    }

    fn attempt<'a>(ip: &str, key: Option<&'a str>) -> Attempt<'a> {
        Attempt {
            address: Some(ip.parse().unwrap()),
            public_key: key,
        }
    }

    #[test]
    fn failures_beyond_the_burst_are_throttled_until_a_token_refills() {
        let throttle = AuthThrottle::new(settings(3, 100));
        let t0 = Instant::now();
        let a = attempt("10.0.0.1", Some("abcdefgh"));
        for _ in 0..3 {
            assert_eq!(throttle.check_at(&a, t0), None);
            throttle.record_failure_at(&a, t0);
        }
        assert_eq!(throttle.check_at(&a, t0), Some(Duration::from_secs(10)));
        // The same key from elsewhere, and the same address with another key, are throttled.
        assert!(
            throttle
                .check_at(&attempt("10.0.0.2", Some("abcdefgh")), t0)
                .is_some()
        );
        assert!(
            throttle
                .check_at(&attempt("10.0.0.1", Some("zzzzzzzz")), t0)
                .is_some()
        );
        assert!(
            throttle
                .check_at(&attempt("10.0.0.2", Some("zzzzzzzz")), t0)
                .is_none()
        );
        let later = t0 + Duration::from_secs(4);
        assert_eq!(throttle.check_at(&a, later), Some(Duration::from_secs(6)));
        assert_eq!(throttle.check_at(&a, t0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn zero_burst_disables_throttling() {
        let throttle = AuthThrottle::new(settings(0, 100));
        let a = attempt("10.0.0.1", Some("k"));
        for _ in 0..100 {
            throttle.record_failure(&a);
        }
        assert_eq!(throttle.check(&a), None);
    }

    #[test]
    fn memory_is_bounded() {
        let throttle = AuthThrottle::new(settings(2, 50));
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let key = format!("key{i}");
            throttle.record_failure_at(&attempt("10.0.0.1", Some(&key)), t0);
        }
        assert!(throttle.lock().len() <= 50);
        // The address that kept failing is still tracked and throttled.
        assert!(throttle.check_at(&attempt("10.0.0.1", None), t0).is_some());
    }

    #[test]
    fn long_keys_are_cut() {
        let throttle = AuthThrottle::new(settings(1, 10));
        let long = "é".repeat(10_000);
        throttle.record_failure(&Attempt {
            address: None,
            public_key: Some(&long),
        });
        let buckets = throttle.lock();
        let Some(Subject::Key(key)) = buckets.keys().next() else {
            panic!("a key bucket")
        };
        assert_eq!(key.chars().count(), MAX_TRACKED_KEY_LEN);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(6000)), 6);
        assert_eq!(retry_after_secs(Duration::from_millis(6001)), 7);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
