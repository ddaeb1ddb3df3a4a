//! A pool of pre-generated leaf keys, so a certificate request does not wait for RSA key
//! generation (about 0.7 s of CPU for RSA-4096, with a tail of seconds).
//!
//! Worker threads (plain OS threads, not the async runtime's) keep up to `size` keys of each
//! configured type ready, and sleep on a condition variable until a key is taken. Keys live only
//! in memory, are handed out once (moved out of the pool) and zeroize their PKCS#8 copy on drop;
//! they are never stored, logged or formatted (`PooledKey` has no `Debug` and no `Clone`).
//! Zeroization is best effort, as in `domain/secret.rs`: aws-lc-rs holds its own copy of the
//! key, which AWS-LC cleanses when it frees it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rcgen::KeyPair;
use tracing::{debug, warn};
use zeroize::Zeroize as _;

use super::key_type::KeyType;

/// How long a worker waits after a failed generation before trying again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The pool's configuration: `size` keys of each of `types`, made by `workers` threads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPoolConfig {
    /// How many ready keys of each type to keep; 0 disables the pool.
    pub size: usize,
    /// How many threads generate keys; 0 disables the pool.
    pub workers: usize,
    /// The key types to keep ready.
    pub types: Vec<KeyType>,
}

impl KeyPoolConfig {
    /// A configuration that keeps no keys.
    pub fn disabled() -> Self {
        Self {
            size: 0,
            workers: 0,
            types: Vec::new(),
        }
    }

    /// Whether the configuration keeps any key ready.
    pub fn is_enabled(&self) -> bool {
        self.size > 0 && self.workers > 0 && !self.types.is_empty()
    }
}

/// A pre-generated key, used for one certificate. Zeroizes its PKCS#8 bytes on drop.
pub struct PooledKey {
    key: KeyPair,
}

impl PooledKey {
    /// Wraps a freshly generated key.
    pub fn new(key: KeyPair) -> Self {
        Self { key }
    }

    /// Returns the key pair.
    pub fn key_pair(&self) -> &KeyPair {
        &self.key
    }
}

impl Drop for PooledKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// A snapshot of one key type's slot in the pool, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPoolStats {
    /// The key type.
    pub key_type: KeyType,
    /// Keys ready now.
    pub depth: usize,
    /// The most keys kept ready.
    pub capacity: usize,
    /// Requests served with a ready key.
    pub hits: u64,
    /// Requests that found no ready key (and generated one inline).
    pub misses: u64,
}

/// A handle on the key pool. Clones share it; the workers stop when the last handle is dropped
/// or [`KeyPool::stop`] is called.
#[derive(Clone)]
pub struct KeyPool {
    shared: Arc<Shared>,
    _stop_on_drop: Arc<StopOnDrop>,
}

struct Shared {
    capacity: usize,
    types: Vec<KeyType>,
    state: Mutex<State>,
    /// Signalled when a key is taken (a worker has work) or on stop.
    refill: Condvar,
}

#[derive(Default)]
struct State {
    ready: HashMap<KeyType, Vec<PooledKey>>,
    generating: HashMap<KeyType, usize>,
    hits: HashMap<KeyType, u64>,
    misses: HashMap<KeyType, u64>,
    stopped: bool,
}

struct StopOnDrop(Arc<Shared>);

// === impl KeyPool ===

impl KeyPool {
    /// Starts a pool and its worker threads (none when the configuration disables it).
    pub fn start(config: &KeyPoolConfig) -> Self {
        let mut types = config.types.clone();
        types.sort();
        types.dedup();
        let enabled = config.is_enabled();
        let shared = Arc::new(Shared {
            capacity: if enabled { config.size } else { 0 },
            types: if enabled { types } else { Vec::new() },
            state: Mutex::new(State::default()),
            refill: Condvar::new(),
        });
        if enabled {
            for n in 0..config.workers {
                let shared = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("dbcert-keypool-{n}"))
                    .spawn(move || shared.work());
                if let Err(error) = spawned {
                    warn!(%error, "failed to start a key pool worker");
                }
            }
        }
        Self {
            _stop_on_drop: Arc::new(StopOnDrop(shared.clone())),
            shared,
        }
    }

    /// A pool that keeps no keys: every request generates its own.
    pub fn disabled() -> Self {
        Self::start(&KeyPoolConfig::disabled())
    }

    /// Takes a ready key of a type, if there is one, and wakes a worker to replace it.
    pub fn take(&self, key_type: KeyType) -> Option<PooledKey> {
        if !self.shared.types.contains(&key_type) {
            return None;
        }
        let mut state = self.shared.lock();
        let key = state.ready.get_mut(&key_type).and_then(Vec::pop);
        let counter = if key.is_some() {
            &mut state.hits
        } else {
            &mut state.misses
        };
        *counter.entry(key_type).or_default() += 1;
        let depth = state.ready.get(&key_type).map_or(0, Vec::len);
        drop(state);
        self.shared.refill.notify_one();
        debug!(%key_type, depth, hit = key.is_some(), "key pool take");
        key
    }

    /// Returns each configured type's depth, capacity and hit counts.
    pub fn stats(&self) -> Vec<KeyPoolStats> {
        let state = self.shared.lock();
        self.shared
            .types
            .iter()
            .map(|&key_type| KeyPoolStats {
                key_type,
                depth: state.ready.get(&key_type).map_or(0, Vec::len),
                capacity: self.shared.capacity,
                hits: state.hits.get(&key_type).copied().unwrap_or(0),
                misses: state.misses.get(&key_type).copied().unwrap_or(0),
            })
            .collect()
    }

    /// Stops the workers (each finishes the key it is generating) and drops the ready keys.
    pub fn stop(&self) {
        self.shared.stop();
    }
}

impl fmt::Debug for KeyPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPool")
            .field("capacity", &self.shared.capacity)
            .field("types", &self.shared.types)
            .finish_non_exhaustive()
    }
}

// === impl Shared ===

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock with the state half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        state.ready.clear();
        drop(state);
        self.refill.notify_all();
    }

    /// The type most short of keys (ready plus being generated), if any is short.
    fn most_needed(&self, state: &State) -> Option<KeyType> {
        self.types
            .iter()
            .map(|&t| {
                let have = state.ready.get(&t).map_or(0, Vec::len)
                    + state.generating.get(&t).copied().unwrap_or(0);
                (have, t)
            })
            .filter(|&(have, _)| have < self.capacity)
            .min()
            .map(|(_, t)| t)
    }

    /// A worker: generate keys while some type is short, sleep otherwise, until stopped.
    fn work(&self) {
        let mut state = self.lock();
        loop {
            if state.stopped {
                return;
            }
            let Some(key_type) = self.most_needed(&state) else {
                state = self
                    .refill
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            *state.generating.entry(key_type).or_default() += 1;
            drop(state);
            let generated = key_type.generate();
            state = self.lock();
            *state.generating.entry(key_type).or_default() -= 1;
            match generated {
                Ok(key) if !state.stopped => {
                    let ready = state.ready.entry(key_type).or_default();
                    ready.push(PooledKey::new(key));
                    debug!(%key_type, depth = ready.len(), "key pool refilled");
                }
                Ok(_) => {}
                Err(error) => {
                    drop(state);
                    warn!(%key_type, %error, "key pool generation failed");
                    std::thread::sleep(RETRY_AFTER_FAILURE);
                    state = self.lock();
                }
            }
        }
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for_depth(pool: &KeyPool, depth: usize) {
        for _ in 0..500 {
            if pool.stats().iter().all(|s| s.depth == depth) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("pool did not fill: {:?}", pool.stats());
    }

    #[test]
    fn fills_serves_each_key_once_and_refills() {
        let pool = KeyPool::start(&KeyPoolConfig {
            size: 3,
            workers: 2,
            types: vec![KeyType::EcdsaP256, KeyType::EcdsaP384],
        });
        wait_for_depth(&pool, 3);
        let a = pool.take(KeyType::EcdsaP256).unwrap();
        let b = pool.take(KeyType::EcdsaP256).unwrap();
        assert_ne!(a.key_pair().public_key_raw(), b.key_pair().public_key_raw());
        assert!(pool.take(KeyType::Rsa4096).is_none(), "not a pooled type");
        wait_for_depth(&pool, 3);
        let p256 = pool.stats()[0];
        assert_eq!(
            (p256.key_type, p256.hits, p256.misses),
            (KeyType::EcdsaP256, 2, 0)
        );
        pool.stop();
        assert!(pool.take(KeyType::EcdsaP256).is_none());
    }

    #[test]
    fn zero_disables() {
        for config in [
            KeyPoolConfig {
                size: 0,
                workers: 2,
                types: vec![KeyType::EcdsaP256],
            },
            KeyPoolConfig {
                size: 2,
                workers: 0,
                types: vec![KeyType::EcdsaP256],
            },
        ] {
            let pool = KeyPool::start(&config);
            std::thread::sleep(Duration::from_millis(20));
            assert!(pool.take(KeyType::EcdsaP256).is_none());
            assert!(pool.stats().is_empty());
        }
    }
}
