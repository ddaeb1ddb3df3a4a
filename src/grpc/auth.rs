//! The gRPC side of authentication: turns a call's `authorization: Basic …` metadata or its
//! connection's verified client certificate into [`Credentials`], finds the client's address,
//! asks the [`Authenticator`], and maps its [`AuthError`] to a `Status`. A call the in-process
//! REST gateway already authenticated carries a [`VerifiedPrincipal`] and is taken as is.

use std::net::SocketAddr;

use tonic::{Request, Status};

use super::status::{rate_limited, to_status};
use crate::auth::{AuthError, Authenticator, BasicCredentials, Credentials, VerifiedPrincipal};
use crate::domain::{AtlasError, Principal};
use crate::listener::PeerInfo;

/// Authenticates a call, in this order:
///
/// 1. a principal the in-process REST gateway authenticated ([`VerifiedPrincipal`]; throttled
///    and recorded there);
/// 2. `authorization: Basic …` metadata, when present;
/// 3. the API key named by the connection's verified client certificate (mutual TLS).
///
/// See [`Authenticator::authenticate`] for throttling and the audit trail.
pub async fn authenticate<T>(
    authenticator: &Authenticator,
    request: &Request<T>,
) -> Result<Principal, Status> {
    if let Some(verified) = request.extensions().get::<VerifiedPrincipal>() {
        return Ok(verified.0.clone());
    }
    let peer = request.extensions().get::<PeerInfo>();
    let credentials = match request.metadata().get("authorization") {
        Some(value) => Credentials::Basic(BasicCredentials::parse(value.as_bytes())),
        None => match peer.and_then(|p| p.client_public_key.as_deref()) {
            Some(public_key) => Credentials::ClientCertificate(public_key),
            None => Credentials::None,
        },
    };
    let client = client_address(request, peer, authenticator);
    authenticator
        .authenticate(credentials, client)
        .await
        .map_err(auth_status)
}

/// The address a call came from: the gRPC peer, or, when the peer is a trusted proxy, the
/// client its `x-forwarded-for` metadata names.
fn client_address<T>(
    request: &Request<T>,
    peer: Option<&PeerInfo>,
    authenticator: &Authenticator,
) -> Option<SocketAddr> {
    let peer = peer
        .and_then(|peer| peer.remote_addr)
        .or_else(|| request.remote_addr())?;
    let forwarded: Vec<&[u8]> = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .map(|value| value.as_bytes())
        .collect();
    Some(authenticator.client_address(peer, forwarded))
}

/// The status of a refused call: `UNAUTHENTICATED`, `RESOURCE_EXHAUSTED`/`RATE_LIMITED` with
/// `retry-after`, or the store's error.
fn auth_status(error: AuthError) -> Status {
    match error {
        AuthError::RateLimited(wait) => rate_limited(wait),
        AuthError::Store(error) | AuthError::NotOnAccessList(error) => to_status(error),
        AuthError::StaleNonce | AuthError::Unauthenticated => {
            to_status(AtlasError::unauthenticated())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic::Code;
    use tonic_types::StatusExt as _;

    use super::*;

    #[test]
    fn auth_errors_map_to_their_statuses() {
        let reason = |status: &Status| {
            status
                .get_error_details()
                .error_info()
                .unwrap()
                .reason
                .clone()
        };
        let status = auth_status(AuthError::Unauthenticated);
        assert_eq!(status.code(), Code::Unauthenticated);
        // Atlas's errorCode of a 401 with wrong credentials.
        assert_eq!(reason(&status), "USER_UNAUTHORIZED");
        let stale = auth_status(AuthError::StaleNonce);
        assert_eq!(stale.code(), Code::Unauthenticated);
        let status = auth_status(AuthError::RateLimited(Duration::from_millis(5500)));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(reason(&status), "RATE_LIMITED");
        assert_eq!(status.metadata().get("retry-after").unwrap(), "6");
        let status = auth_status(AuthError::Store(AtlasError::unavailable("store down")));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(reason(&status), "SERVICE_UNAVAILABLE");
    }
}
