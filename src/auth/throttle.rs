//! Failed-authentication throttling, in memory (per replica): token buckets per client address
//! and per (claimed key, client address), and a signal, never a refusal, per claimed key.
//!
//! Only failures take tokens. A client whose address, or whose address for the key it claims,
//! has no token left is refused with `RATE_LIMITED` *before* its credentials are checked (so a
//! throttled guesser learns nothing, not even from a right guess), until a token has refilled.
//! Nothing is ever refused for a key alone: public keys are not secret, and a bucket per key
//! would let anyone lock a key's owner out by failing as that key from elsewhere. Guessing one
//! key from many addresses is watched instead: failures naming a key, from any address, drain a
//! bucket of their own, and an empty one raises a [`GuessingAlert`] (the authenticator logs it)
//! while the key's owner, from an address of its own, is served as usual.
//!
//! What a failure is charged to depends on what it says about the key it names
//! ([`FailureKind`]): credentials checked against the key and found wrong charge the address,
//! the (key, address) pair and the key's signal; anything else (malformed credentials, a forged
//! or unknown Digest nonce, a replayed nonce count) charges the address only, so no one can
//! charge a key without making a real try at its secret.
//!
//! A client address is its IPv4 address, or its IPv6 /64 network ([`source`]): one IPv6
//! host usually holds a whole /64, and would otherwise have 2^64 budgets.
//!
//! Memory is bounded: each table holds at most [`ThrottleSettings::max_entries`] entries; when
//! one is full, refilled entries are dropped first, then the fullest eighth (those that forget
//! the fewest failures), so an attacker cycling through addresses or keys cannot make the
//! throttle forget the clients it is refusing before their tokens refill anyway.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::is_public_key;

/// The longest public key tracked as given; longer ones are cut (keys are 8 characters).
const MAX_TRACKED_KEY_LEN: usize = 64;
/// The least time between two [`GuessingAlert`]s for one key.
pub const GUESSING_ALERT_INTERVAL: Duration = Duration::from_secs(300);
/// Addresses a [`GuessingAlert`] names as examples.
const ALERT_SAMPLE_ADDRESSES: usize = 4;

/// How failed authentications are throttled and watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures one client address may make in a burst, whatever keys they name; 0 turns
    /// throttling off (no refusals at all).
    pub burst: u32,
    /// Failures one client address may make in a burst naming one key; 0: no limit per key and
    /// address beyond [`Self::burst`].
    pub key_burst: u32,
    /// Failures naming one key, from any addresses, in a burst, before a [`GuessingAlert`];
    /// 0: no alert. Never refuses anyone.
    pub key_alert: u32,
    /// The time one failure's token takes to come back (in every bucket).
    pub refill: Duration,
    /// The most entries each table (addresses, pairs, keys) keeps in memory.
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

/// What a failed authentication says about the key it names, and so what it is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The credentials were checked against the claimed key (its secret, or a dummy when no such
    /// key exists) and were wrong: a try at the key. Charged to the address, the (key, address)
    /// pair and the key's guessing signal.
    WrongCredentials,
    /// Not a try at the key's secret: malformed credentials, a forged or unknown Digest nonce, a
    /// replayed nonce count. Charged to the address only.
    Unverified,
}

/// Why a caller is refused before its credentials are looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    /// How long until a token has refilled.
    pub wait: Duration,
    /// Which bucket is empty (the one with the longer wait when both are).
    pub by: ThrottledBy,
}

/// The bucket that refused a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottledBy {
    /// The client address failed too often, whatever keys it named.
    Address,
    /// The client address failed too often naming this key.
    KeyAndAddress,
}

/// Failures naming one key came from several addresses faster than one address may fail: a
/// distributed guess at the key's secret, or many misconfigured clients. Raised at most once
/// per [`GUESSING_ALERT_INTERVAL`] per key; it refuses no one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuessingAlert {
    /// The key named.
    pub public_key: String,
    /// Failures naming the key since it was first tracked or last alerted about.
    pub failures: u64,
    /// Up to four of the client addresses (sources) they came from.
    pub sample_addresses: Vec<IpAddr>,
}

/// The per-replica throttle of failed authentications.
#[derive(Debug)]
pub struct AuthThrottle {
    settings: ThrottleSettings,
    tables: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    addresses: HashMap<IpAddr, Bucket>,
    pairs: HashMap<(IpAddr, Box<str>), Bucket>,
    keys: HashMap<Box<str>, KeySignal>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Clone, Debug)]
struct KeySignal {
    bucket: Bucket,
    failures: u64,
    sample_addresses: Vec<IpAddr>,
    alerted: Option<Instant>,
}

// === impl ThrottleSettings ===

impl ThrottleSettings {
    /// The most entries each table keeps unless told otherwise. The defaults of the other
    /// fields are the flags' (`config::DEFAULT_AUTH_FAILURE_*`).
    pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
    /// The default of [`Self::key_burst`].
    pub const DEFAULT_KEY_BURST: u32 = 5;
    /// The default of [`Self::key_alert`].
    pub const DEFAULT_KEY_ALERT: u32 = 50;

    /// Settings with this burst per address and refill, and the defaults of the rest.
    pub fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst,
            key_burst: Self::DEFAULT_KEY_BURST,
            key_alert: Self::DEFAULT_KEY_ALERT,
            refill,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
        }
    }

    fn refill_secs(&self) -> f64 {
        self.refill.as_secs_f64().max(1e-3)
    }
}

// === impl AuthThrottle ===

impl AuthThrottle {
    /// Creates an empty throttle.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            tables: Mutex::new(Tables::default()),
        }
    }

    /// Says whether the caller must wait (its address, or its address for the key it claims,
    /// failed too often), and how long.
    pub fn check(&self, attempt: &Attempt<'_>) -> Option<Throttled> {
        self.check_at(attempt, Instant::now())
    }

    /// Records a failed authentication of this kind; returns the alert it raised, if any.
    pub fn record_failure(
        &self,
        attempt: &Attempt<'_>,
        kind: FailureKind,
    ) -> Option<GuessingAlert> {
        self.record_failure_at(attempt, kind, Instant::now())
    }

    fn check_at(&self, attempt: &Attempt<'_>, now: Instant) -> Option<Throttled> {
        let settings = &self.settings;
        if settings.burst == 0 {
            return None;
        }
        let address = source(attempt.address?);
        let mut tables = self.lock();
        let by_address = tables
            .addresses
            .get_mut(&address)
            .and_then(|bucket| bucket.wait(settings.burst, settings, now))
            .map(|wait| Throttled {
                wait,
                by: ThrottledBy::Address,
            });
        let by_pair = attempt
            .public_key
            .filter(|_| settings.key_burst > 0)
            .and_then(|key| tables.pairs.get_mut(&(address, tracked_key(key))))
            .and_then(|bucket| bucket.wait(settings.key_burst, settings, now))
            .map(|wait| Throttled {
                wait,
                by: ThrottledBy::KeyAndAddress,
            });
        by_address.into_iter().chain(by_pair).max_by_key(|t| t.wait)
    }

    fn record_failure_at(
        &self,
        attempt: &Attempt<'_>,
        kind: FailureKind,
        now: Instant,
    ) -> Option<GuessingAlert> {
        let settings = self.settings;
        let address = attempt.address.map(source);
        let key = attempt
            .public_key
            .filter(|_| kind == FailureKind::WrongCredentials);
        let mut tables = self.lock();
        if settings.burst > 0
            && let Some(address) = address
        {
            let max = settings.max_entries;
            take(
                &mut tables.addresses,
                address,
                settings.burst,
                &settings,
                max,
                now,
            );
            if let Some(key) = key.filter(|_| settings.key_burst > 0) {
                let pair = (address, tracked_key(key));
                take(
                    &mut tables.pairs,
                    pair,
                    settings.key_burst,
                    &settings,
                    max,
                    now,
                );
            }
        }
        let key = key.filter(|key| settings.key_alert > 0 && is_public_key(key))?;
        tables.record_key_failure(key, address, &settings, now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock leaves counters, not invariants: keep using them.
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

// === impl Tables ===

impl Tables {
    /// Charges a key's guessing signal; raises an alert when its bucket is empty and the key
    /// was not alerted about within [`GUESSING_ALERT_INTERVAL`].
    fn record_key_failure(
        &mut self,
        key: &str,
        address: Option<IpAddr>,
        settings: &ThrottleSettings,
        now: Instant,
    ) -> Option<GuessingAlert> {
        let burst = settings.key_alert;
        if !self.keys.contains_key(key) && self.keys.len() >= settings.max_entries {
            evict(&mut self.keys, settings.max_entries, burst, |signal| {
                let forgettable = signal
                    .alerted
                    .is_none_or(|at| now.saturating_duration_since(at) >= GUESSING_ALERT_INTERVAL);
                forgettable.then(|| signal.bucket.tokens_at(burst, settings, now))
            });
            if self.keys.len() >= settings.max_entries {
                // Every tracked key was alerted about just now: this one goes untracked.
                return None;
            }
        }
        let signal = self.keys.entry(key.into()).or_insert_with(|| KeySignal {
            bucket: Bucket::full(burst, now),
            failures: 0,
            sample_addresses: Vec::new(),
            alerted: None,
        });
        signal.bucket.take(burst, settings, now);
        signal.failures += 1;
        if let Some(address) = address
            && signal.sample_addresses.len() < ALERT_SAMPLE_ADDRESSES
            && !signal.sample_addresses.contains(&address)
        {
            signal.sample_addresses.push(address);
        }
        let quiet = signal
            .alerted
            .is_none_or(|at| now.saturating_duration_since(at) >= GUESSING_ALERT_INTERVAL);
        if signal.bucket.tokens >= 1.0 || !quiet {
            return None;
        }
        signal.alerted = Some(now);
        Some(GuessingAlert {
            public_key: key.to_owned(),
            failures: std::mem::take(&mut signal.failures),
            sample_addresses: std::mem::take(&mut signal.sample_addresses),
        })
    }
}

// === impl Bucket ===

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            updated: now,
        }
    }

    /// The tokens the bucket holds at `now` (without changing it).
    fn tokens_at(&self, burst: u32, settings: &ThrottleSettings, now: Instant) -> f64 {
        let gained =
            now.saturating_duration_since(self.updated).as_secs_f64() / settings.refill_secs();
        (self.tokens + gained).min(f64::from(burst))
    }

    fn refill(&mut self, burst: u32, settings: &ThrottleSettings, now: Instant) {
        self.tokens = self.tokens_at(burst, settings, now);
        self.updated = now;
    }

    fn take(&mut self, burst: u32, settings: &ThrottleSettings, now: Instant) {
        self.refill(burst, settings, now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }

    /// How long until a token is back, if none is left.
    fn wait(&mut self, burst: u32, settings: &ThrottleSettings, now: Instant) -> Option<Duration> {
        self.refill(burst, settings, now);
        (self.tokens < 1.0).then(|| settings.refill.mul_f64(1.0 - self.tokens))
    }
}

/// Takes a token from the bucket of `subject`, making room for it first if the table is full.
fn take<K: Clone + Eq + Hash>(
    table: &mut HashMap<K, Bucket>,
    subject: K,
    burst: u32,
    settings: &ThrottleSettings,
    max_entries: usize,
    now: Instant,
) {
    if !table.contains_key(&subject) && table.len() >= max_entries {
        evict(table, max_entries, burst, |bucket| {
            Some(bucket.tokens_at(burst, settings, now))
        });
    }
    table
        .entry(subject)
        .or_insert_with(|| Bucket::full(burst, now))
        .take(burst, settings, now);
}

/// Makes room in a full table: drops the entries whose tokens are back to `burst` (they
/// remember nothing), then, if that freed nothing, the fullest eighth (they forget the fewest
/// failures). `tokens` gives an entry's tokens now, or `None` for one that must be kept.
fn evict<K: Clone + Eq + Hash, V>(
    table: &mut HashMap<K, V>,
    max_entries: usize,
    burst: u32,
    tokens: impl Fn(&V) -> Option<f64>,
) {
    let burst = f64::from(burst);
    table.retain(|_, v| tokens(v).is_none_or(|t| t < burst));
    if table.len() < max_entries {
        return;
    }
    let mut candidates: Vec<(f64, K)> = table
        .iter()
        .filter_map(|(k, v)| tokens(v).map(|t| (t, k.clone())))
        .collect();
    let drop = (max_entries / 8).max(1).min(candidates.len());
    if drop == 0 {
        return;
    }
    candidates.select_nth_unstable_by(drop - 1, |a, b| b.0.total_cmp(&a.0));
    for (_, key) in candidates.into_iter().take(drop) {
        table.remove(&key);
    }
}

/// The client address a failure is counted against: an IPv4 address (IPv4-mapped IPv6
/// included), or the /64 network of an IPv6 address.
pub fn source(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(network.into())
        }
    }
}

/// A claimed key as tracked: cut to [`MAX_TRACKED_KEY_LEN`] characters.
fn tracked_key(key: &str) -> Box<str> {
    let end = key
        .char_indices()
        .nth(MAX_TRACKED_KEY_LEN)
        .map_or(key.len(), |(i, _)| i);
    key[..end].into()
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

    fn settings(
        burst: u32,
        key_burst: u32,
        key_alert: u32,
        max_entries: usize,
    ) -> ThrottleSettings {
        ThrottleSettings {
            burst,
            key_burst,
            key_alert,
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

    const WRONG: FailureKind = FailureKind::WrongCredentials;

    #[test]
    fn an_address_is_throttled_after_its_burst_whatever_keys_it_names() {
        let throttle = AuthThrottle::new(settings(3, 0, 0, 100));
        let t0 = Instant::now();
        for key in ["aaaaaaaa", "bbbbbbbb", "cccccccc"] {
            let a = attempt("10.0.0.1", Some(key));
            assert_eq!(throttle.check_at(&a, t0), None);
            throttle.record_failure_at(&a, WRONG, t0);
        }
        let refused = throttle
            .check_at(&attempt("10.0.0.1", Some("dddddddd")), t0)
            .unwrap();
        assert_eq!(refused.by, ThrottledBy::Address);
        assert_eq!(refused.wait, Duration::from_secs(10));
        assert!(throttle.check_at(&attempt("10.0.0.1", None), t0).is_some());
        // Another address, even naming the same keys, is not.
        assert_eq!(
            throttle.check_at(&attempt("10.0.0.2", Some("aaaaaaaa")), t0),
            None
        );
        let later = t0 + Duration::from_secs(4);
        assert_eq!(
            throttle
                .check_at(&attempt("10.0.0.1", None), later)
                .map(|t| t.wait),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            throttle.check_at(&attempt("10.0.0.1", None), t0 + Duration::from_secs(10)),
            None
        );
    }

    #[test]
    fn a_key_is_never_refused_for_failures_from_other_addresses() {
        let throttle = AuthThrottle::new(settings(10, 2, 0, 100));
        let t0 = Instant::now();
        let victim = "victimkk";
        for i in 0..200u32 {
            let ip = format!("10.1.{}.{}", i / 200, i % 200);
            throttle.record_failure_at(&attempt(&ip, Some(victim)), WRONG, t0);
        }
        assert_eq!(
            throttle.check_at(&attempt("10.9.9.9", Some(victim)), t0),
            None
        );
        // The pair's burst (2) is below the address's (10): the address may still name others.
        let a = attempt("10.2.0.1", Some(victim));
        throttle.record_failure_at(&a, WRONG, t0);
        throttle.record_failure_at(&a, WRONG, t0);
        assert_eq!(
            throttle.check_at(&a, t0).unwrap().by,
            ThrottledBy::KeyAndAddress
        );
        assert_eq!(
            throttle.check_at(&attempt("10.2.0.1", Some("otherkey")), t0),
            None
        );
    }

    #[test]
    fn unverified_failures_charge_the_address_only() {
        let throttle = AuthThrottle::new(settings(5, 1, 1, 100));
        let t0 = Instant::now();
        let a = attempt("10.0.0.1", Some("abcdefgh"));
        for _ in 0..4 {
            assert_eq!(
                throttle.record_failure_at(&a, FailureKind::Unverified, t0),
                None
            );
        }
        // The pair (burst 1) was not charged, nor the key's signal (alert at 1).
        assert_eq!(throttle.check_at(&a, t0), None);
        throttle.record_failure_at(&a, FailureKind::Unverified, t0);
        assert_eq!(throttle.check_at(&a, t0).unwrap().by, ThrottledBy::Address);
        assert!(throttle.lock().keys.is_empty());
        assert!(throttle.lock().pairs.is_empty());
    }

    #[test]
    fn many_addresses_failing_as_one_key_raise_one_alert_per_interval() {
        let throttle = AuthThrottle::new(settings(10, 5, 6, 100));
        let t0 = Instant::now();
        let alerts: Vec<GuessingAlert> = (1..=20u8)
            .filter_map(|i| {
                let ip = format!("192.0.2.{i}");
                throttle.record_failure_at(&attempt(&ip, Some("abcdefgh")), WRONG, t0)
            })
            .collect();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].public_key, "abcdefgh");
        assert_eq!(alerts[0].failures, 6);
        assert_eq!(alerts[0].sample_addresses.len(), ALERT_SAMPLE_ADDRESSES);
        // After the interval, failing as fast again: another alert, counting the failures
        // since the first (14 then, 6 now).
        let later = t0 + GUESSING_ALERT_INTERVAL;
        let again: Vec<GuessingAlert> = (21..=26u8)
            .filter_map(|i| {
                let ip = format!("192.0.2.{i}");
                throttle.record_failure_at(&attempt(&ip, Some("abcdefgh")), WRONG, later)
            })
            .collect();
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!(again[0].failures, 20);
        // Keys that cannot exist are not watched; nor is a key when alerts are off.
        let off = AuthThrottle::new(settings(10, 5, 0, 100));
        let junk = AuthThrottle::new(settings(10, 5, 1, 100));
        for i in 0..20u8 {
            let ip = format!("192.0.2.{i}");
            assert_eq!(
                off.record_failure_at(&attempt(&ip, Some("abcdefgh")), WRONG, t0),
                None
            );
            assert_eq!(
                junk.record_failure_at(&attempt(&ip, Some("NOT-A-KEY")), WRONG, t0),
                None
            );
        }
    }

    #[test]
    fn one_address_alone_does_not_raise_an_alert_at_its_own_pace() {
        // The address may fail once per refill; so does the key's signal refill.
        let throttle = AuthThrottle::new(settings(10, 10, 12, 100));
        let mut now = Instant::now();
        let a = attempt("192.0.2.1", Some("abcdefgh"));
        for _ in 0..1000 {
            if throttle.check_at(&a, now).is_none() {
                assert_eq!(throttle.record_failure_at(&a, WRONG, now), None);
            }
            now += Duration::from_secs(1);
        }
    }

    #[test]
    fn zero_burst_disables_refusals() {
        let throttle = AuthThrottle::new(settings(0, 5, 0, 100));
        let a = attempt("10.0.0.1", Some("k"));
        for _ in 0..100 {
            throttle.record_failure(&a, WRONG);
        }
        assert_eq!(throttle.check(&a), None);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let throttle = AuthThrottle::new(settings(2, 0, 0, 100));
        let t0 = Instant::now();
        throttle.record_failure_at(&attempt("2001:db8:1:2::1", None), WRONG, t0);
        throttle.record_failure_at(&attempt("2001:db8:1:2:ffff::9", None), WRONG, t0);
        assert!(
            throttle
                .check_at(&attempt("2001:db8:1:2::77", None), t0)
                .is_some()
        );
        assert!(
            throttle
                .check_at(&attempt("2001:db8:1:3::1", None), t0)
                .is_none()
        );
        assert_eq!(
            source("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn memory_is_bounded_and_throttled_clients_are_kept() {
        let throttle = AuthThrottle::new(settings(2, 1, 3, 50));
        let t0 = Instant::now();
        // One address spends its burst; then thousands of others fail once each.
        let guesser = attempt("10.0.0.1", Some("abcdefgh"));
        throttle.record_failure_at(&guesser, WRONG, t0);
        throttle.record_failure_at(&guesser, WRONG, t0);
        for i in 0..5000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            let key: String = format!("{i:08}")
                .bytes()
                .map(|digit| char::from(b'a' + (digit - b'0')))
                .collect();
            throttle.record_failure_at(
                &Attempt {
                    address: Some(ip),
                    public_key: Some(&key),
                },
                WRONG,
                t0,
            );
        }
        {
            let tables = throttle.lock();
            assert!(tables.addresses.len() <= 50, "{}", tables.addresses.len());
            assert!(tables.pairs.len() <= 50, "{}", tables.pairs.len());
            assert!(tables.keys.len() <= 50, "{}", tables.keys.len());
            // The guesser's address bucket (empty) outlives the thousands of fuller ones. Its
            // pair bucket is as empty as every other pair's, so which of those go is left to
            // chance: only the address is asserted.
            let kept = tables.addresses.get(&source("10.0.0.1".parse().unwrap()));
            assert!(kept.is_some_and(|bucket| bucket.tokens_at(2, &throttle.settings, t0) < 1.0));
        }
        assert!(throttle.check_at(&guesser, t0).is_some());
    }

    #[test]
    fn long_keys_are_cut() {
        let throttle = AuthThrottle::new(settings(1, 1, 0, 10));
        let long = "é".repeat(10_000);
        throttle.record_failure(&attempt("10.0.0.1", Some(&long)), WRONG);
        let tables = throttle.lock();
        let (_, key) = tables.pairs.keys().next().unwrap();
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
