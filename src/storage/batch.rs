//! Group commit of certificate records: a component of [`SqlStore`] that queues concurrent
//! `record_certificate` calls (a certificate, its audit event and its user's limit) and writes
//! each queue-full in one transaction ([`CertificateStore::record_certificates`], which also
//! holds each user to the limit, `certificate_limit.rs`), so concurrent issues share one commit
//! (one fsync) instead of paying one each. Every caller is answered only after the
//! commit holding its record and its audit event, so both are durable before its certificate
//! is returned. There is no artificial delay: a batch is whatever queued while the previous
//! commit ran, so a lone request commits at once.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::SqlStore;
use crate::domain::{CertificateStore, NewCertificate, StoreError, StoreResult};

/// The most records committed in one transaction.
pub const MAX_GROUP_COMMIT: usize = 1024;
/// How many records may wait for the writer before callers wait to enqueue.
const QUEUE_CAPACITY: usize = 8192;
/// How often the writer lets the runtime run other tasks before committing a batch that is
/// not alone: requests already past signing join this commit instead of waiting for the next.
const GATHER_YIELDS: usize = 2;

/// Group commits made by this process (all stores), for metrics.
static COMMITS: AtomicU64 = AtomicU64::new(0);
/// Certificate records written by those commits.
static RECORDS: AtomicU64 = AtomicU64::new(0);

/// Returns (commits, records) of every group-commit writer in this process.
pub fn group_commit_totals() -> (u64, u64) {
    (
        COMMITS.load(Ordering::Relaxed),
        RECORDS.load(Ordering::Relaxed),
    )
}

/// The queue in front of the writer task.
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

/// A record waiting for its commit.
struct Pending {
    certificate: NewCertificate,
    reply: oneshot::Sender<StoreResult<()>>,
}

impl GroupCommit {
    /// Starts the writer task (on the current Tokio runtime), which writes through `store` (a
    /// store without group commit or cache). The writer stops when this is dropped.
    pub(super) fn start(store: SqlStore) -> Self {
        debug_assert!(store.group_commit.is_none(), "the writer writes directly");
        let (queue, pending) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_batches(store, pending));
        Self { queue }
    }

    /// Queues a record with its audit event for the writer and waits for its commit.
    pub(super) async fn record(&self, certificate: &NewCertificate) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            certificate: certificate.clone(),
            reply,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| StoreError::Unavailable("certificate writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("certificate writer stopped".into()))?
    }
}

/// The writer: takes whatever is queued (up to [`MAX_GROUP_COMMIT`]), commits it in one
/// transaction, answers each caller, repeats.
async fn write_batches(store: SqlStore, mut pending: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_GROUP_COMMIT);
    while pending.recv_many(&mut batch, MAX_GROUP_COMMIT).await > 0 {
        // Under load (more than one record waiting), gather the requests that are about to
        // enqueue; a lone request is committed at once.
        if batch.len() > 1 {
            for _ in 0..GATHER_YIELDS {
                tokio::task::yield_now().await;
                while batch.len() < MAX_GROUP_COMMIT {
                    match pending.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
            }
        }
        let records = batch.len();
        COMMITS.fetch_add(1, Ordering::Relaxed);
        RECORDS.fetch_add(records as u64, Ordering::Relaxed);
        let (items, replies): (Vec<_>, Vec<_>) =
            batch.drain(..).map(|p| (p.certificate, p.reply)).unzip();
        let started = std::time::Instant::now();
        let outcome = store.record_certificates(&items).await;
        crate::metrics::STORE.observe_commit(records, started.elapsed());
        match outcome {
            Ok(results) if results.len() == items.len() => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            // The batch failed as a whole (or answered oddly): nothing was committed. Record
            // one by one, so each caller gets the answer for its own record.
            _ => {
                for (reply, certificate) in replies.into_iter().zip(&items) {
                    let _ = reply.send(store.record_certificate(certificate).await);
                }
            }
        }
        tracing::trace!(records, "group commit");
    }
}
