//! Authentication of gRPC calls: `authorization: Basic base64(publicKey:privateKey)` metadata,
//! or a key the in-process REST gateway has already verified with HTTP Digest.

use std::net::SocketAddr;

use base64::Engine as _;
use tonic::{Request, Status};
use zeroize::Zeroizing;

use tracing::debug;

use super::status::{rate_limited, to_status};
use crate::domain::{AtlasError, Core, ErrorCode, Principal};
use crate::forwarded::TrustedProxies;
use crate::listener::PeerInfo;
use crate::throttle::{Attempt, AuthThrottle};

/// The longest `authorization` value considered (bytes); longer ones are refused unparsed.
const MAX_AUTHORIZATION_LEN: usize = 1024;

/// A key verified by the REST gateway, put in the request's extensions. Extensions cannot
/// come from the network, so only in-process callers can set it.
#[derive(Clone, Debug)]
pub struct VerifiedApiKey {
    /// The verified public key.
    pub public_key: String,
}

/// The network address of a caller of the in-process REST gateway, put in the request's
/// extensions beside [`VerifiedApiKey`] (in-process requests have no `remote_addr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub SocketAddr);

/// The address a request came from: the gateway's client, or the gRPC peer — or, when the peer
/// is a trusted proxy, the client its `x-forwarded-for` metadata names.
pub fn client_address<T>(request: &Request<T>, trusted: &TrustedProxies) -> Option<SocketAddr> {
    if let Some(address) = request.extensions().get::<ClientAddress>() {
        return Some(address.0);
    }
    let peer = request
        .extensions()
        .get::<PeerInfo>()
        .and_then(|peer| peer.remote_addr)
        .or_else(|| request.remote_addr())?;
    let forwarded: Vec<&[u8]> = request
        .metadata()
        .get_all("x-forwarded-for")
        .iter()
        .map(|value| value.as_bytes())
        .collect();
    Some(trusted.client_address(peer, forwarded))
}

/// Authenticates a request and resolves the key's roles, in this order:
///
/// 1. a key the in-process REST gateway verified ([`VerifiedApiKey`]; throttled there);
/// 2. `authorization: Basic …` metadata, when present;
/// 3. the API key named by the connection's verified client certificate (mutual TLS).
///
/// Failures of 2 and 3 are counted per client address and claimed key, and recorded in the
/// audit trail; a caller over the limit is refused with `RATE_LIMITED` before its credentials
/// are looked at. A call with no credentials at all is `UNAUTHENTICATED`, neither counted nor
/// recorded (it is how clients discover the scheme).
pub async fn authenticate<T>(
    core: &Core,
    throttle: &AuthThrottle,
    trusted: &TrustedProxies,
    request: &Request<T>,
) -> Result<Principal, Status> {
    let client = client_address(request, trusted);
    if let Some(verified) = request.extensions().get::<VerifiedApiKey>() {
        let mut principal = core
            .principal_for_verified_key(&verified.public_key)
            .await
            .map_err(to_status)?;
        principal.client_address = client;
        return Ok(principal);
    }
    let address = client.map(|a| a.ip());
    if request.metadata().contains_key("authorization") {
        let credentials = basic_credentials(request);
        let attempt = Attempt {
            address,
            public_key: credentials.as_ref().map(|(public, _)| public.as_str()),
        };
        if let Some(wait) = throttle.check(&attempt) {
            return Err(rate_limited(wait));
        }
        let Some((public_key, private_key)) = &credentials else {
            throttle.record_failure(&attempt);
            core.record_failed_authentication(None, client, "basic")
                .await;
            return Err(to_status(AtlasError::unauthenticated()));
        };
        let result = core.authenticate_basic(public_key, private_key).await;
        return counted(core, result, throttle, &attempt, client, "basic").await;
    }
    let peer = request.extensions().get::<PeerInfo>();
    if let Some(public_key) = peer.and_then(|p| p.client_public_key.as_deref()) {
        let attempt = Attempt {
            address,
            public_key: Some(public_key),
        };
        if let Some(wait) = throttle.check(&attempt) {
            return Err(rate_limited(wait));
        }
        let result = core.principal_for_verified_key(public_key).await;
        return counted(core, result, throttle, &attempt, client, "mtls").await;
    }
    Err(to_status(AtlasError::unauthenticated()))
}

/// Counts and records an authentication failure (not a store outage) before returning.
async fn counted(
    core: &Core,
    result: Result<Principal, AtlasError>,
    throttle: &AuthThrottle,
    attempt: &Attempt<'_>,
    client: Option<SocketAddr>,
    scheme: &str,
) -> Result<Principal, Status> {
    match result {
        Ok(mut principal) => {
            principal.client_address = client;
            Ok(principal)
        }
        Err(error) => {
            if error.code() == ErrorCode::Unauthenticated {
                debug!(address = ?attempt.address, "authentication failed");
                throttle.record_failure(attempt);
                core.record_failed_authentication(attempt.public_key, client, scheme)
                    .await;
            }
            Err(to_status(error))
        }
    }
}

fn basic_credentials<T>(request: &Request<T>) -> Option<(String, Zeroizing<String>)> {
    let value = request.metadata().get("authorization")?.as_bytes();
    if value.len() > MAX_AUTHORIZATION_LEN {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?,
    );
    let decoded = std::str::from_utf8(&decoded).ok()?;
    let (public_key, private_key) = decoded.split_once(':')?;
    Some((
        public_key.to_owned(),
        Zeroizing::new(private_key.to_owned()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(value: &str) -> Request<()> {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        request
    }

    #[test]
    fn parses_basic_credentials() {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode("abcdefgh:secret:with:colons");
        let (public, private) = basic_credentials(&request(&format!("Basic {encoded}"))).unwrap();
        assert_eq!(public, "abcdefgh");
        assert_eq!(private.as_str(), "secret:with:colons");
        assert!(basic_credentials(&request("Bearer x")).is_none());
        assert!(basic_credentials(&request("Basic !!!")).is_none());
        assert!(basic_credentials(&request(&format!("Basic {}", "A".repeat(2000)))).is_none());
        assert!(basic_credentials(&Request::new(())).is_none());
    }
}
