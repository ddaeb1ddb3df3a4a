//! What a server runs beside its two listeners: the store probe behind the health service, the
//! audit purge, the deletion of database users at their `deleteAfterDate`, the re-signing of
//! project CRLs that are half-way through their validity, and the TLS reload on SIGHUP.
//! [`Background::start`] spawns them and
//! [`Background::stop`] ends them at shutdown. (The key pool's workers belong to the core's
//! `KeyPool`, which starts and stops them itself.)

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::Signal;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{error, info, warn};

use crate::client_ca;
use crate::domain::Core;
use crate::tls::{StagedTls, TlsReloader};

/// How often the store is pinged for the health service.
const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How often audit events past the retention are purged (the first run is at start).
const AUDIT_PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// The most audit events one purge batch deletes: a short transaction, so writers (and other
/// replicas) never wait long behind it, whatever the backlog.
const AUDIT_PURGE_BATCH: u32 = 1_000;
/// The pause between two purge batches, so a large backlog does not hold SQLite's write lock
/// (or a PostgreSQL connection) back to back.
const AUDIT_PURGE_PAUSE: Duration = Duration::from_millis(50);

/// How often database users whose `deleteAfterDate` has come are looked for (and deleted): an
/// indexed query that finds nothing most of the time. A user goes at most this long after its
/// time (Atlas gives no precision either).
const DUE_USERS_INTERVAL: Duration = Duration::from_secs(5);
/// The most due users one round deletes before the next query.
const DUE_USERS_BATCH: u32 = 100;
/// How often the CRLs due for re-signing are looked for (every replica looks; one claims each).
const CRL_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// The most CRLs one look re-signs before looking again.
const CRL_REFRESH_BATCH: u32 = 100;
/// How often the unsealed CA keys held in memory are checked against the projects deleted
/// through other replicas (a deletion through this process forgets them at once). A cached
/// project lookup per project held, so cheap.
const CA_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The gRPC service names whose health is reported (besides "" for the whole server).
const SERVICE_NAMES: &[&str] = &[
    "dbcert.v1.ApiKeyService",
    "dbcert.v1.AuditService",
    "dbcert.v1.CertificateService",
    "dbcert.v1.DatabaseUserService",
    "dbcert.v1.OrganizationService",
    "dbcert.v1.ProjectService",
    "dbcert.v1.UserSecurityService",
];

/// The SIGHUP stream and the listeners' TLS configurations it reloads.
#[derive(Debug)]
pub struct TlsReload {
    hangup: Signal,
    reloaders: Vec<Arc<TlsReloader>>,
}

/// The running background tasks of a server.
#[derive(Debug)]
pub struct Background {
    probe: JoinHandle<()>,
    purge: Option<JoinHandle<()>>,
    due_users: JoinHandle<()>,
    crl_refresh: JoinHandle<()>,
    ca_sweep: JoinHandle<()>,
}

/// Sets the status of the whole server and of every service.
pub async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        reporter.set_service_status(*name, status).await;
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

// === impl TlsReload ===

impl TlsReload {
    /// Listens for SIGHUP now (from here on the signal no longer ends the process), when any
    /// listener uses TLS; `None` otherwise.
    pub fn listen(reloaders: Vec<Arc<TlsReloader>>) -> anyhow::Result<Option<Self>> {
        if reloaders.is_empty() {
            return Ok(None);
        }
        use tokio::signal::unix::{SignalKind, signal};
        let hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        Ok(Some(Self { hangup, reloaders }))
    }
}

// === impl Background ===

impl Background {
    /// Spawns the TLS reload (if any), the store probe and (with a retention) the audit purge;
    /// they run until `stop` turns true.
    pub fn start(
        core: &Arc<Core>,
        health: &HealthReporter,
        tls_reload: Option<TlsReload>,
        audit_retention: Option<Duration>,
        stop: &watch::Receiver<bool>,
    ) -> Self {
        if let Some(reload) = tls_reload {
            tokio::spawn(reload_tls_on_sighup(
                core.clone(),
                reload.reloaders,
                reload.hangup,
                stop.clone(),
            ));
        }
        let probe = tokio::spawn(probe_store(core.clone(), health.clone(), stop.clone()));
        let purge = match audit_retention {
            Some(retention) => {
                info!(
                    retention_days = retention.as_secs() / 86_400,
                    "audit events are purged past the retention"
                );
                Some(tokio::spawn(purge_audit_events(
                    core.clone(),
                    retention,
                    stop.clone(),
                )))
            }
            None => {
                info!("audit retention 0: audit events are kept forever");
                None
            }
        };
        let due_users = tokio::spawn(delete_due_database_users(core.clone(), stop.clone()));
        let crl_refresh = tokio::spawn(refresh_crls(core.clone(), stop.clone()));
        let ca_sweep = tokio::spawn(forget_deleted_project_cas(core.clone(), stop.clone()));
        Self {
            probe,
            purge,
            due_users,
            crl_refresh,
            ca_sweep,
        }
    }

    /// Ends the probe and the purge at once (the TLS reload ends on the stop signal itself).
    pub fn stop(self) {
        self.probe.abort();
        // A deletion in flight completes or not as a whole (one statement, then its event);
        // a user left is deleted at the next start, by this replica or another.
        self.due_users.abort();
        // A CRL being signed is stored or not; either is harmless (it is due again).
        self.crl_refresh.abort();
        self.ca_sweep.abort();
        if let Some(purge) = self.purge {
            // It stops at the signal between batches; a batch in flight may complete or not,
            // either is harmless (the next run deletes what is left).
            purge.abort();
        }
    }
}

/// Reloads the TLS files on each SIGHUP; a failed reload keeps the previous configuration of
/// every listener. A client-CA file that holds a project CA fails the reload (`client_ca.rs`).
async fn reload_tls_on_sighup(
    core: Arc<Core>,
    reloaders: Vec<Arc<TlsReloader>>,
    mut hangup: Signal,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            received = hangup.recv() => if received.is_none() { return },
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        info!("received SIGHUP: reloading tls files");
        match stage_tls(&core, &reloaders).await {
            Ok(staged) => {
                for (reloader, staged) in reloaders.iter().zip(staged) {
                    reloader.install(staged);
                }
                info!("tls files reloaded");
            }
            Err(error) => {
                error!(error = %format!("{error:#}"), "tls reload failed; still serving the previous certificate");
            }
        }
    }
}

/// Reads every listener's files again and checks their client CAs; nothing is installed here.
async fn stage_tls(core: &Core, reloaders: &[Arc<TlsReloader>]) -> anyhow::Result<Vec<StagedTls>> {
    let mut staged = Vec::with_capacity(reloaders.len());
    for reloader in reloaders {
        let next = reloader.stage()?;
        if let Some(path) = reloader.client_ca_file() {
            client_ca::refuse_project_cas(core.store().as_ref(), path, next.client_cas()).await?;
        }
        staged.push(next);
    }
    Ok(staged)
}

/// Reports NOT_SERVING while the store does not answer, SERVING again when it does.
async fn probe_store(core: Arc<Core>, reporter: HealthReporter, stop: watch::Receiver<bool>) {
    let mut serving = true;
    loop {
        tokio::time::sleep(STORE_PROBE_INTERVAL).await;
        if *stop.borrow() {
            return;
        }
        let ok = core.store().ping().await.is_ok();
        if ok != serving {
            serving = ok;
            if ok {
                info!("store reachable again: SERVING");
                set_health(&reporter, ServingStatus::Serving).await;
            } else {
                error!("store unreachable: NOT_SERVING");
                set_health(&reporter, ServingStatus::NotServing).await;
            }
        }
    }
}

/// Deletes the database users whose `deleteAfterDate` has come, every [`DUE_USERS_INTERVAL`]
/// (the first round at start, so users due while the server was down go at once). Every replica
/// runs it; the store lets one replica delete each user, and only that one records it.
async fn delete_due_database_users(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    loop {
        loop {
            match core.delete_due_database_users(DUE_USERS_BATCH).await {
                Ok(deleted) if deleted >= u64::from(DUE_USERS_BATCH) => continue,
                Ok(_) => break,
                Err(error) => {
                    warn!(%error, "deleting due database users failed; trying again later");
                    break;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(DUE_USERS_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Deletes audit events older than `retention`, at start and then every
/// [`AUDIT_PURGE_INTERVAL`], in batches of [`AUDIT_PURGE_BATCH`] until none is left. Every
/// replica runs it; they do not need to agree (a deleted event is gone for all). A failure is
/// logged and the purge tried again at the next interval.
async fn purge_audit_events(core: Arc<Core>, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let mut purged = 0u64;
        loop {
            match core.purge_audit_events(retention, AUDIT_PURGE_BATCH).await {
                Ok(deleted) => {
                    purged += deleted;
                    if deleted < u64::from(AUDIT_PURGE_BATCH) {
                        break;
                    }
                }
                Err(error) => {
                    warn!(%error, purged, "audit purge failed; trying again at the next interval");
                    break;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(AUDIT_PURGE_PAUSE) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
        if purged > 0 {
            info!(
                target: "dbcert::audit",
                purged,
                retention_days = retention.as_secs() / 86_400,
                "audit events past the retention purged"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(AUDIT_PURGE_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Re-signs the stored CRLs half-way through their validity, every [`CRL_REFRESH_INTERVAL`]:
/// each replica looks, and the store's claim lets one of them re-sign each CRL. A CRL that
/// fails is logged and tried again once its claim lapses (it stays valid until its
/// nextUpdate); the others go on. A store failure ends the round until the next interval.
async fn refresh_crls(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(CRL_REFRESH_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        loop {
            match core.refresh_due_crls(CRL_REFRESH_BATCH).await {
                Ok(examined) if examined < CRL_REFRESH_BATCH as usize => break,
                Ok(_) => {}
                Err(error) => {
                    warn!(%error, "crl re-signing failed; trying again at the next interval");
                    break;
                }
            }
        }
    }
}

/// Forgets, every [`CA_SWEEP_INTERVAL`], the unsealed CA keys this process holds of projects
/// deleted through another replica: the store destroyed them, and no copy should stay in
/// memory. A failure is logged and tried again at the next interval.
async fn forget_deleted_project_cas(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(CA_SWEEP_INTERVAL) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        if let Err(error) = core.forget_deleted_project_cas().await {
            warn!(%error, "checking the held ca keys against deleted projects failed; trying again later");
        }
    }
}
