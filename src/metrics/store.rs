//! Group commit of certificate records (`storage/batch.rs`): how many records each commit
//! carried and how long its transaction took.
//!
//! The handles are process-wide ([`STORE`]), like the writer's totals: the store is opened
//! before, and independently of, the application that registers them.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The group-commit histograms of this process.
pub static STORE: LazyLock<StoreMetrics> = LazyLock::new(StoreMetrics::new);

/// Upper bounds of the batch-size buckets (records per commit; the most is
/// `storage::MAX_GROUP_COMMIT`, 1024).
const BATCH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
/// Upper bounds of the commit-latency buckets (seconds): an fsync takes from tens of
/// microseconds to tens of milliseconds; a struggling database much longer.
const COMMIT_SECONDS_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Histograms of the group-commit writer.
#[derive(Debug)]
pub struct StoreMetrics {
    batch_size: Histogram,
    commit_seconds: Histogram,
}

impl StoreMetrics {
    fn new() -> Self {
        Self {
            batch_size: Histogram::new(BATCH_BUCKETS),
            commit_seconds: Histogram::new(COMMIT_SECONDS_BUCKETS),
        }
    }

    /// Records one group commit of `records` records that took `elapsed` (the transaction,
    /// successful or not).
    pub fn observe_commit(&self, records: usize, elapsed: Duration) {
        self.batch_size.observe(records as f64);
        self.commit_seconds.observe(elapsed.as_secs_f64());
    }

    /// Registers the histograms (shared: every registry of the process shows the same).
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "group_commit_batch_size",
            "Certificate records written per group commit (one transaction, one fsync)",
            self.batch_size.clone(),
        );
        registry.register(
            "store_commit_duration_seconds",
            "Time of each group-commit transaction of certificate records and their audit events",
            self.commit_seconds.clone(),
        );
    }
}
