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
//! 2. a client address or claimed key over its failure budget: [`AuthError::RateLimited`],
//!    before the credentials are looked at ([`throttle`]);
//! 3. verify: Basic against the stored HA1, Digest per RFC 7616 ([`digest`]), a client
//!    certificate's key by lookup — one key lookup per request;
//! 4. a failure takes a token of the throttle and (wrong Basic, Digest or certificate
//!    credentials, malformed Basic) is recorded in the audit trail with the client's address;
//!    a stale Digest nonce and a store outage are no failures.
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
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::debug;

pub use self::client_address::TrustedProxies;
pub use self::credentials::{BasicCredentials, Credentials, DigestRequest};
pub use self::throttle::{Attempt, AuthThrottle, ThrottleSettings};
use crate::domain::{AtlasError, Core, ErrorCode, Principal};
use crate::metrics::AuthMetrics;

/// Authenticates requests of both listeners: throttles, verifies, records failures.
#[derive(Debug)]
pub struct Authenticator {
    core: Arc<Core>,
    throttle: AuthThrottle,
    trusted_proxies: TrustedProxies,
    metrics: AuthMetrics,
}

/// Why a request was not authenticated. The transports map it: gRPC with `grpc/status.rs`,
/// REST with `gateway/response.rs`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Too many failed authentications from the client's address or for the claimed key: retry
    /// after this wait. The credentials were not looked at.
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
}

/// A principal the in-process REST gateway authenticated, in the extensions of the RPC request
/// it makes. Extensions cannot come from the network, so only in-process callers can set it.
#[derive(Clone, Debug)]
pub struct VerifiedPrincipal(pub Principal);

/// Why a scheme's verification did not accept the credentials.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Wrong or malformed credentials: a failure, counted by the throttle; `audit` says whether
    /// the audit trail records it.
    Failed {
        /// Whether the failure is recorded in the audit trail.
        audit: bool,
    },
    /// A right Digest response with a stale nonce: no failure.
    Stale,
    /// The store failed: no failure of the client.
    Store(AtlasError),
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
        if let Some(wait) = self.throttle.check(&attempt) {
            return Err(AuthError::RateLimited(wait));
        }
        let outcome = match &credentials {
            Credentials::Basic(Some(basic)) => self
                .core
                .authenticate_basic(&basic.public_key, &basic.private_key)
                .await
                .map_err(Refusal::from_core),
            Credentials::Basic(None) => Err(Refusal::Failed { audit: true }),
            Credentials::ClientCertificate(public_key) => self
                .core
                .principal_for_verified_key(public_key)
                .await
                .map_err(Refusal::from_core),
            Credentials::Digest(request) => digest::verify(&self.core, request).await,
            Credentials::None => return Err(AuthError::Unauthenticated),
        };
        match settle(&self.throttle, &attempt, outcome) {
            Ok(mut principal) => {
                principal.client_address = client;
                Ok(principal)
            }
            Err((error, audit)) => {
                if audit {
                    self.core
                        .record_failed_authentication(
                            attempt.public_key,
                            client,
                            credentials.scheme(),
                        )
                        .await;
                }
                Err(error)
            }
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
}

// === impl Refusal ===

impl Refusal {
    /// A core error of a Basic or certificate check: `UNAUTHENTICATED` is a failure the audit
    /// trail records, anything else (the store) is none.
    fn from_core(error: AtlasError) -> Self {
        if error.code() == ErrorCode::Unauthenticated {
            Self::Failed { audit: true }
        } else {
            Self::Store(error)
        }
    }
}

/// Settles a verification's outcome: a failure takes a token of the throttle and says whether
/// to record it in the audit trail; a stale nonce and a store outage take nothing.
fn settle(
    throttle: &AuthThrottle,
    attempt: &Attempt<'_>,
    outcome: Result<Principal, Refusal>,
) -> Result<Principal, (AuthError, bool)> {
    match outcome {
        Ok(principal) => Ok(principal),
        Err(Refusal::Failed { audit }) => {
            debug!(address = ?attempt.address, "authentication failed");
            throttle.record_failure(attempt);
            Err((AuthError::Unauthenticated, audit))
        }
        Err(Refusal::Stale) => Err((AuthError::StaleNonce, false)),
        Err(Refusal::Store(error)) => Err((AuthError::Store(error), false)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::{ApiKeyId, OrgId};

    fn throttle(burst: u32) -> AuthThrottle {
        AuthThrottle::new(ThrottleSettings::new(burst, Duration::from_secs(60)))
    }

    fn attempt(key: &str) -> Attempt<'_> {
        Attempt {
            address: Some("192.0.2.1".parse().unwrap()),
            public_key: Some(key),
        }
    }

    fn principal() -> Principal {
        Principal {
            key_id: ApiKeyId::generate(OffsetDateTime::UNIX_EPOCH),
            public_key: "abcdefgh".into(),
            org_id: OrgId::generate(OffsetDateTime::UNIX_EPOCH),
            org_roles: Vec::new(),
            project_roles: Default::default(),
            client_address: None,
        }
    }

    #[test]
    fn failures_are_counted_and_audited_as_their_scheme_says() {
        let throttle = throttle(2);
        let a = attempt("abcdefgh");
        let (error, audit) =
            settle(&throttle, &a, Err(Refusal::Failed { audit: true })).unwrap_err();
        assert!(matches!(error, AuthError::Unauthenticated));
        assert!(audit);
        assert_eq!(throttle.check(&a), None);
        let (error, audit) =
            settle(&throttle, &a, Err(Refusal::Failed { audit: false })).unwrap_err();
        assert!(matches!(error, AuthError::Unauthenticated));
        assert!(!audit);
        // Two failures spent the burst: the next attempt is refused before verification.
        assert!(throttle.check(&a).is_some());
    }

    #[test]
    fn stale_nonces_store_outages_and_successes_are_not_failures() {
        let throttle = throttle(1);
        let a = attempt("abcdefgh");
        let (error, audit) = settle(&throttle, &a, Err(Refusal::Stale)).unwrap_err();
        assert!(matches!(error, AuthError::StaleNonce));
        assert!(!audit);
        let outage = AtlasError::unavailable("store down");
        let (error, audit) = settle(&throttle, &a, Err(Refusal::Store(outage))).unwrap_err();
        assert!(matches!(error, AuthError::Store(e) if e.code() == ErrorCode::ServiceUnavailable));
        assert!(!audit);
        assert_eq!(
            settle(&throttle, &a, Ok(principal())).unwrap().public_key,
            "abcdefgh"
        );
        assert_eq!(throttle.check(&a), None);
    }

    #[test]
    fn core_errors_are_failures_only_when_unauthenticated() {
        assert!(matches!(
            Refusal::from_core(AtlasError::unauthenticated()),
            Refusal::Failed { audit: true }
        ));
        assert!(matches!(
            Refusal::from_core(AtlasError::internal("boom")),
            Refusal::Store(_)
        ));
    }
}
