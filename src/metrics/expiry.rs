//! Certificates about to expire: how many of every project's unexpired certificates expire
//! within 7 and within 30 days.
//!
//! Counted in the store (so every replica over a shared PostgreSQL reports the same, complete
//! numbers), as a range on the `not_after` index (migration 0008), at scrape time but at most
//! once per [`EXPIRY_REFRESH`] per replica: other scrapes are answered from the last count.
//! Concurrent scrapes wait for one count. A count that fails or takes longer than
//! [`EXPIRY_QUERY_TIMEOUT`] keeps the previous values (logged); the timestamp of the last
//! successful count says how fresh they are.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::warn;

use crate::domain::Core;

/// How long a count of expiring certificates is reused.
pub const EXPIRY_REFRESH: Duration = Duration::from_secs(60);
/// The longest a count may take before the scrape is answered with the previous values.
const EXPIRY_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The windows counted, in days.
const WINDOWS_DAYS: [u16; 2] = [7, 30];

/// The expiring-certificate gauges and when they were last counted.
#[derive(Debug)]
pub struct ExpiryGauges {
    core: Arc<Core>,
    expiring: Family<WithinLabel, Gauge>,
    refreshed: Gauge,
    /// When the last count was attempted (`None`: never), held while counting.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WithinLabel {
    within_days: u16,
}

impl ExpiryGauges {
    pub(super) fn register(registry: &mut Registry, core: Arc<Core>) -> Self {
        let gauges = Self {
            core,
            expiring: Family::default(),
            refreshed: Gauge::default(),
            last_attempt: tokio::sync::Mutex::new(None),
        };
        registry.register(
            "certificates_expiring",
            "Unexpired client certificates of every project that expire within `within_days` \
             days (7, 30), counted in the store at most once a minute",
            gauges.expiring.clone(),
        );
        registry.register(
            "certificates_expiring_refreshed_timestamp_seconds",
            "Unix time of the last successful count of dbcert_certificates_expiring (0: none yet)",
            gauges.refreshed.clone(),
        );
        gauges
    }

    /// Counts again if the last count is older than [`EXPIRY_REFRESH`].
    pub(super) async fn refresh_if_stale(&self) {
        let mut last_attempt = self.last_attempt.lock().await;
        if last_attempt.is_some_and(|at| at.elapsed() < EXPIRY_REFRESH) {
            return;
        }
        *last_attempt = Some(Instant::now());
        let counted = tokio::time::timeout(EXPIRY_QUERY_TIMEOUT, self.count()).await;
        match counted {
            Ok(Ok(counts)) => {
                for (days, count) in WINDOWS_DAYS.into_iter().zip(counts) {
                    self.expiring
                        .get_or_create(&WithinLabel { within_days: days })
                        .set(i64::try_from(count).unwrap_or(i64::MAX));
                }
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.refreshed.set(i64::try_from(now).unwrap_or(i64::MAX));
            }
            Ok(Err(error)) => warn!(%error, "failed to count expiring certificates for metrics"),
            Err(_) => warn!(
                timeout = ?EXPIRY_QUERY_TIMEOUT,
                "counting expiring certificates for metrics timed out"
            ),
        }
    }

    async fn count(&self) -> Result<[u64; 2], crate::domain::AtlasError> {
        let mut counts = [0; 2];
        for (count, days) in counts.iter_mut().zip(WINDOWS_DAYS) {
            *count = self
                .core
                .count_certificates_expiring_within(Duration::from_secs(
                    u64::from(days) * 24 * 60 * 60,
                ))
                .await?;
        }
        Ok(counts)
    }
}
