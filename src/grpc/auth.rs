//! Authentication of gRPC calls: `authorization: Basic base64(publicKey:privateKey)` metadata,
//! or a key the in-process REST gateway has already verified with HTTP Digest.

use std::net::SocketAddr;

use base64::Engine as _;
use tonic::{Request, Status};
use zeroize::Zeroizing;

use super::status::to_status;
use crate::domain::{AtlasError, Core, ErrorKind, Principal};

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

/// The address a request came from: the gateway's client, or the gRPC peer.
pub fn client_address<T>(request: &Request<T>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ClientAddress>()
        .map(|a| a.0)
        .or_else(|| request.remote_addr())
}

/// Authenticates a request and resolves the key's roles. Refused credentials are recorded in
/// the audit trail (a request without any is not: it is how clients discover the scheme).
pub async fn authenticate<T>(core: &Core, request: &Request<T>) -> Result<Principal, Status> {
    let client = client_address(request);
    if let Some(verified) = request.extensions().get::<VerifiedApiKey>() {
        let mut principal = core
            .principal_for_verified_key(&verified.public_key)
            .await
            .map_err(to_status)?;
        principal.client_address = client;
        return Ok(principal);
    }
    if request.metadata().get("authorization").is_none() {
        return Err(to_status(AtlasError::unauthenticated()));
    }
    let Some((public_key, private_key)) = basic_credentials(request) else {
        core.record_failed_authentication(None, client, "basic")
            .await;
        return Err(to_status(AtlasError::unauthenticated()));
    };
    match core.authenticate_basic(&public_key, &private_key).await {
        Ok(mut principal) => {
            principal.client_address = client;
            Ok(principal)
        }
        Err(error) => {
            if error.code().kind() == ErrorKind::Unauthenticated {
                core.record_failed_authentication(Some(&public_key), client, "basic")
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
