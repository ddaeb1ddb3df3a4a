//! Refused authentications, recorded at one place: the `Authenticator` (`auth/mod.rs`), which
//! both listeners go through.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::auth::AuthError;
use crate::domain::Principal;

/// Refused authentications per transport, scheme and reason.
#[derive(Clone, Debug, Default)]
pub struct AuthMetrics {
    refused: Family<AuthLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    transport: &'static str,
    scheme: &'static str,
    reason: &'static str,
}

impl AuthMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "authentication_failures",
            "Authentications refused, by transport (grpc, rest), scheme (basic, digest, mtls) and \
             reason (invalid_credentials: wrong or malformed; rate_limited: 429 / \
             RESOURCE_EXHAUSTED before verification; stale_nonce: a right Digest answer to an \
             expired nonce; store_error: the credentials could not be checked). Requests without \
             credentials are not counted",
            metrics.refused.clone(),
        );
        metrics
    }

    /// Records the outcome of an authentication with credentials of `scheme` (as
    /// `Credentials::scheme` names it; the transport follows from it: Digest is the REST
    /// gateway's, Basic and client certificates gRPC's). Successes and requests without
    /// credentials record nothing.
    pub fn observe(&self, scheme: &'static str, result: &Result<Principal, AuthError>) {
        if scheme == "none" {
            return;
        }
        let reason = match result {
            Ok(_) => return,
            Err(AuthError::RateLimited(_)) => "rate_limited",
            Err(AuthError::StaleNonce) => "stale_nonce",
            Err(AuthError::Store(_)) => "store_error",
            Err(AuthError::NotOnAccessList(_)) => "not_on_access_list",
            Err(AuthError::Unauthenticated) => "invalid_credentials",
        };
        let transport = if scheme == "digest" { "rest" } else { "grpc" };
        self.refused
            .get_or_create(&AuthLabels {
                transport,
                scheme,
                reason,
            })
            .inc();
    }
}
