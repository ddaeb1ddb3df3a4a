//! Authentication, in one place: which API key a request acts as, for both listeners.
//!
//! One [`Authenticator`] serves the gRPC services and the REST gateway. A transport only turns
//! what it received into [`Credentials`] (the REST extractor: the `Authorization` header; the
//! gRPC adapter: `authorization` metadata or the connection's verified client certificate) and
//! finds the client's address ([`Authenticator::client_address`]: the TCP peer, or behind a
//! trusted proxy the client its `X-Forwarded-For` names). [`Authenticator::authenticate`] then
//! runs the one sequence:
//!
//! 1. no credentials at all: [`AuthError::Unauthenticated`], neither throttled nor recorded (it
//!    is how clients discover the scheme; over REST it gets the Digest challenge);
//! 2. a client address over its failure budget, or over its budget for the key it claims:
//!    [`AuthError::RateLimited`], before the credentials are looked at ([`throttle`]). No key
//!    is ever refused for failures made from other addresses;
//! 3. verify: Basic against the stored HA1, Digest per RFC 7616 ([`digest`]), a client
//!    certificate's key by lookup — one key lookup per request, the same for a key that does
//!    not exist (a dummy HA1 is compared, the "not found" is cached as a key is);
//! 4. a failure is charged to the throttle as its [`FailureKind`] says (a wrong secret to the
//!    address, the key and address, and the key's guessing signal; anything else — a forged
//!    or unknown nonce, malformed credentials — to the address only), and reported within its
//!    source's budget ([`failure_log`]): wrong credentials as an audit event, other failures
//!    as a log line, each naming the address and the claimed key. A key failing from many
//!    addresses raises a [`GuessingAlert`], logged as a warning; its owner is not refused.
//!    A right Digest response with a stale nonce and a store outage are no failures.
//!
//! The result is the [`Principal`] or an [`AuthError`]; each transport renders the error
//! itself (`grpc/auth.rs` as a `Status`, `gateway/extract.rs` as an Atlas reply: the Digest
//! challenge, 429 `RATE_LIMITED` with `Retry-After`, …).
//!
//! The gateway reaches the core only through the gRPC services. It authenticates a REST request
//! here (Digest needs the method and target, which an RPC does not carry) and passes the
//! [`VerifiedPrincipal`] in the extensions of the in-process RPC request; extensions cannot
//! come from the network, so the gRPC adapter takes it as is, without a second key lookup.

pub mod client_address;
pub mod credentials;
pub mod digest;
pub mod failure_log;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

pub use self::client_address::TrustedProxies;
pub use self::credentials::{BasicCredentials, Credentials, DigestRequest};
use self::failure_log::FailureLog;
pub use self::throttle::{
    Attempt, AuthThrottle, FailureKind, GuessingAlert, ThrottleSettings, Throttled, ThrottledBy,
};
use crate::domain::{AtlasError, Core, ErrorCode, Principal, is_public_key};
use crate::metrics::AuthMetrics;

/// Authenticates requests of both listeners: throttles, verifies, records failures.
#[derive(Debug)]
pub struct Authenticator {
    core: Arc<Core>,
    throttle: AuthThrottle,
    failures: FailureLog,
    trusted_proxies: TrustedProxies,
    metrics: AuthMetrics,
}

/// Why a request was not authenticated. The transports map it: gRPC with `grpc/status.rs`,
/// REST with `gateway/response.rs`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Too many failed authentications from the client's address, or from it for the claimed
    /// key: retry after this wait. The credentials were not looked at.
    #[error("too many failed authentications")]
    RateLimited(Duration),
    /// A Digest response that is right but for its stale nonce: the client should retry at once
    /// with a fresh one (`stale=true`).
    #[error("stale digest nonce")]
    StaleNonce,
    /// The credentials could not be checked: the store failed.
    #[error("credentials could not be checked")]
    Store(#[source] AtlasError),
    /// No credentials, or wrong or malformed ones.
    #[error("unauthenticated")]
    Unauthenticated,
    /// Right credentials, but the key may not be used from the client's address (its access
    /// list): 403 `IP_ADDRESS_NOT_ON_ACCESS_LIST`. Not a failure of the credentials: neither
    /// throttled nor audited, logged within the address's budget.
    #[error("address not on the key's access list")]
    NotOnAccessList(#[source] AtlasError),
}

/// A principal the in-process REST gateway authenticated, in the extensions of the RPC request
/// it makes. Extensions cannot come from the network, so only in-process callers can set it.
#[derive(Clone, Debug)]
pub struct VerifiedPrincipal(pub Principal);

/// Why a scheme's verification did not accept the credentials.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Wrong or malformed credentials: a failure of the client.
    Failed(Failure),
    /// A right Digest response with a stale nonce: no failure.
    Stale,
    /// The store failed: no failure of the client.
    Store(AtlasError),
}

/// A failed authentication: what the throttle charges it to, whether the audit trail records
/// it, and why (for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// What it is charged to.
    pub(crate) kind: FailureKind,
    /// Whether the audit trail records it (else it is only logged).
    pub(crate) audit: bool,
    /// Why it failed, for the log.
    pub(crate) reason: &'static str,
}

// === impl Authenticator ===

impl Authenticator {
    /// Creates the authenticator over the core's key store, with an empty throttle.
    pub fn new(
        core: Arc<Core>,
        throttle: ThrottleSettings,
        trusted_proxies: TrustedProxies,
    ) -> Self {
        Self {
            core,
            throttle: AuthThrottle::new(throttle),
            failures: FailureLog::new(),
            trusted_proxies,
            metrics: AuthMetrics::default(),
        }
    }

    /// The proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted_proxies
    }

    /// The client address of a request from the TCP peer `peer` carrying these
    /// `X-Forwarded-For` values (REST headers or gRPC metadata), in the order received.
    pub fn client_address<'a, I>(&self, peer: SocketAddr, forwarded_for: I) -> SocketAddr
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: DoubleEndedIterator,
    {
        self.trusted_proxies.client_address(peer, forwarded_for)
    }

    /// Counts refused authentications in `metrics` (`metrics/auth.rs`).
    pub fn with_metrics(mut self, metrics: AuthMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Authenticates credentials presented from `client` (see the module header for the
    /// sequence); the principal carries `client` for the audit trail. A refusal is counted in
    /// the metrics, by scheme and reason.
    pub async fn authenticate(
        &self,
        credentials: Credentials<'_>,
        client: Option<SocketAddr>,
    ) -> Result<Principal, AuthError> {
        let scheme = credentials.scheme();
        let result = self.authenticate_unobserved(credentials, client).await;
        self.metrics.observe(scheme, &result);
        result
    }

    async fn authenticate_unobserved(
        &self,
        credentials: Credentials<'_>,
        client: Option<SocketAddr>,
    ) -> Result<Principal, AuthError> {
        if let Credentials::None = credentials {
            return Err(AuthError::Unauthenticated);
        }
        let attempt = Attempt {
            address: client.map(|address| address.ip()),
            public_key: credentials.claimed_public_key(),
        };
        if let Some(throttled) = self.throttle.check(&attempt) {
            self.note_throttled(&attempt, client, throttled);
            return Err(AuthError::RateLimited(throttled.wait));
        }
        let outcome = match &credentials {
            Credentials::Basic(Some(basic)) => self
                .core
                .authenticate_basic(&basic.public_key, &basic.private_key)
                .await
                .map_err(Refusal::from_core),
            Credentials::Basic(None) => Err(Refusal::Failed(Failure {
                kind: FailureKind::Unverified,
                audit: true,
                reason: "malformed basic credentials",
            })),
            Credentials::ClientCertificate(public_key) => self
                .core
                .principal_for_verified_key(public_key)
                .await
                .map_err(Refusal::from_core),
            Credentials::Digest(request) => digest::verify(&self.core, request).await,
            Credentials::None => return Err(AuthError::Unauthenticated),
        };
        match outcome {
            Ok(mut principal) => {
                match self.core.check_access_list(&principal, client).await {
                    Ok(()) => {}
                    Err(error) if error.code() == ErrorCode::IpAddressNotOnAccessList => {
                        if self.failures.admit_failure(attempt.address) {
                            warn!(
                                target: "dbcert::auth",
                                remote_address = %display_address(client),
                                public_key = %principal.public_key,
                                api_key_id = %principal.key_id.as_str(),
                                "API key refused: the client address is not on its access list"
                            );
                        }
                        return Err(AuthError::NotOnAccessList(error));
                    }
                    Err(error) => return Err(AuthError::Store(error)),
                }
                principal.client_address = client;
                Ok(principal)
            }
            Err(Refusal::Failed(failure)) => {
                self.fail(&attempt, client, credentials.scheme(), failure)
                    .await;
                Err(AuthError::Unauthenticated)
            }
            Err(Refusal::Stale) => Err(AuthError::StaleNonce),
            Err(Refusal::Store(error)) => Err(AuthError::Store(error)),
        }
    }

    /// The `WWW-Authenticate` value of a fresh Digest challenge (a new nonce);
    /// `stale=true` when the client's response was right but for its stale nonce.
    pub fn digest_challenge(&self, stale: bool) -> String {
        let nonce = digest::new_nonce(
            self.core.digest_nonce_secret(),
            self.core.now().unix_timestamp(),
        );
        digest::challenge(&nonce, stale)
    }

    /// Settles a failure: charges the throttle, reports it within its source's budget (an
    /// audit event or a log line, naming the address and the claimed key), and logs the
    /// guessing alert it raised, if any.
    async fn fail(
        &self,
        attempt: &Attempt<'_>,
        client: Option<SocketAddr>,
        scheme: &'static str,
        failure: Failure,
    ) {
        let alert = self.throttle.record_failure(attempt, failure.kind);
        if self.failures.admit_failure(attempt.address) {
            if failure.audit {
                self.core
                    .record_failed_authentication(attempt.public_key, client, scheme)
                    .await;
            } else {
                info!(
                    target: "dbcert::auth",
                    remote_address = %display_address(client),
                    public_key = loggable_key(attempt.public_key),
                    scheme,
                    reason = failure.reason,
                    "authentication failed"
                );
            }
        }
        if let Some(alert) = alert {
            log_guessing_alert(&alert);
        }
    }

    /// Notes a throttled client, once per source and minute.
    fn note_throttled(
        &self,
        attempt: &Attempt<'_>,
        client: Option<SocketAddr>,
        throttled: Throttled,
    ) {
        if !self.failures.admit_throttled(attempt.address) {
            return;
        }
        let by = match throttled.by {
            ThrottledBy::Address => "address",
            ThrottledBy::KeyAndAddress => "key and address",
        };
        warn!(
            target: "dbcert::auth",
            remote_address = %display_address(client),
            public_key = loggable_key(attempt.public_key),
            by,
            retry_after_secs = throttle::retry_after_secs(throttled.wait),
            "too many failed authentications: client refused until a token refills \
             (noted once a minute per address)"
        );
    }
}

// === impl Refusal ===

impl Refusal {
    /// A wrong secret for the claimed key (or a dummy, when no such key exists).
    pub(crate) fn wrong_credentials() -> Self {
        Self::Failed(Failure {
            kind: FailureKind::WrongCredentials,
            audit: true,
            reason: "wrong credentials",
        })
    }

    /// Credentials that were not checked against the claimed key's secret (malformed, a
    /// forged or unknown nonce, a replay): a failure of the address only, not audited.
    pub(crate) fn unverified(reason: &'static str) -> Self {
        Self::Failed(Failure {
            kind: FailureKind::Unverified,
            audit: false,
            reason,
        })
    }

    /// A core error of a Basic or certificate check: `UNAUTHENTICATED` is a wrong credential,
    /// anything else (the store) is no failure.
    fn from_core(error: AtlasError) -> Self {
        if error.code() == ErrorCode::Unauthenticated {
            Self::wrong_credentials()
        } else {
            Self::Store(error)
        }
    }
}

/// The client address for a log line (empty when unknown).
fn display_address(client: Option<SocketAddr>) -> String {
    client
        .map(|address| address.to_string())
        .unwrap_or_default()
}

/// The claimed key for a log line: only a value with the shape of a public key, so a secret
/// typed into the wrong field (or a forged control sequence) is never logged.
fn loggable_key(public_key: Option<&str>) -> &str {
    public_key.filter(|key| is_public_key(key)).unwrap_or("")
}

/// Logs a guessing alert: many failures for one key from several addresses.
fn log_guessing_alert(alert: &GuessingAlert) {
    warn!(
        target: "dbcert::auth",
        public_key = alert.public_key.as_str(),
        failures = alert.failures,
        sample_addresses = ?alert.sample_addresses,
        "distributed guessing suspected: many failed authentications for one key, faster than \
         one address may fail; its owner is not refused (each address is throttled on its own)"
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_are_wrong_credentials_only_when_unauthenticated() {
        assert!(matches!(
            Refusal::from_core(AtlasError::unauthenticated()),
            Refusal::Failed(Failure {
                kind: FailureKind::WrongCredentials,
                audit: true,
                ..
            })
        ));
        assert!(matches!(
            Refusal::from_core(AtlasError::internal("boom")),
            Refusal::Store(_)
        ));
    }

    #[test]
    fn only_key_shaped_values_are_logged_as_keys() {
        assert_eq!(loggable_key(Some("abcdefgh")), "abcdefgh");
        assert_eq!(
            loggable_key(Some("0f1e2d3c-aaaa-bbbb-cccc-000000000000")),
            ""
        );
        assert_eq!(loggable_key(Some("abcdefgh\nFAKE LINE")), "");
        assert_eq!(loggable_key(None), "");
    }
}
