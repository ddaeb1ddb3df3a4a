//! The credentials a request presents, as its transport read them: the REST extractor turns an
//! `Authorization` header into [`Credentials::Digest`] (or [`Credentials::None`]), the gRPC
//! adapter turns `authorization` metadata or the connection's client certificate into
//! [`Credentials::Basic`] or [`Credentials::ClientCertificate`]. Nothing here is verified; the
//! [`Authenticator`](super::Authenticator) does that.

use std::fmt;

use base64::Engine as _;
use http::Uri;
use zeroize::Zeroizing;

use super::digest::DigestCredentials;

/// The longest Basic `authorization` value considered (bytes); longer ones are refused unparsed.
const MAX_BASIC_AUTHORIZATION_LEN: usize = 1024;

/// What a request presents to prove which API key it acts as.
#[derive(Debug)]
pub enum Credentials<'a> {
    /// `authorization: Basic base64(publicKey:privateKey)` (gRPC metadata); `None` when the
    /// value is present but malformed.
    Basic(Option<BasicCredentials>),
    /// The public key named by the connection's verified client certificate (mutual TLS).
    ClientCertificate(&'a str),
    /// An `Authorization` header answering a Digest challenge (REST), with the request it signs.
    Digest(DigestRequest<'a>),
    /// No credentials at all: how a client discovers the scheme (the first leg of Digest).
    None,
}

/// A public and private key pair presented with the Basic scheme.
pub struct BasicCredentials {
    /// The public key.
    pub public_key: String,
    /// The private key.
    pub private_key: Zeroizing<String>,
}

/// A Digest response and what it must match: the request's method and target.
#[derive(Debug)]
pub struct DigestRequest<'a> {
    /// The parsed `Authorization` header; `None` when it is not a well-formed Digest response.
    pub response: Option<DigestCredentials>,
    /// The request's method.
    pub method: &'a str,
    /// The request target, which the response's `uri` must name.
    pub target: &'a Uri,
}

// === impl Credentials ===

impl Credentials<'_> {
    /// The public key the credentials claim, if they name one.
    pub fn claimed_public_key(&self) -> Option<&str> {
        match self {
            Self::Basic(basic) => basic.as_ref().map(|b| b.public_key.as_str()),
            Self::ClientCertificate(public_key) => Some(public_key),
            Self::Digest(request) => request.response.as_ref().map(|r| r.username.as_str()),
            Self::None => None,
        }
    }

    /// The scheme's name in the audit trail (`authScheme`).
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Basic(_) => "basic",
            Self::ClientCertificate(_) => "mtls",
            Self::Digest(_) => "digest",
            Self::None => "none",
        }
    }
}

// === impl BasicCredentials ===

impl BasicCredentials {
    /// Parses an `authorization` value of the Basic scheme; `None` for anything else (another
    /// scheme, bad base64, no `:`, not UTF-8, over 1 KiB).
    pub fn parse(value: &[u8]) -> Option<Self> {
        if value.len() > MAX_BASIC_AUTHORIZATION_LEN {
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
        Some(Self {
            public_key: public_key.to_owned(),
            private_key: Zeroizing::new(private_key.to_owned()),
        })
    }
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            public_key,
            private_key: _,
        } = self;
        f.debug_struct("BasicCredentials")
            .field("public_key", public_key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn basic(value: &str) -> Option<BasicCredentials> {
        BasicCredentials::parse(value.as_bytes())
    }

    #[test]
    fn parses_basic_credentials() {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode("abcdefgh:secret:with:colons");
        let credentials = basic(&format!("Basic {encoded}")).unwrap();
        assert_eq!(credentials.public_key, "abcdefgh");
        assert_eq!(credentials.private_key.as_str(), "secret:with:colons");
        assert!(!format!("{credentials:?}").contains("secret"));
        assert!(basic(&format!("bAsIc {encoded}")).is_some());
        assert!(basic("Bearer x").is_none());
        assert!(basic("Basic !!!").is_none());
        assert!(basic(&format!("Basic {}", "A".repeat(2000))).is_none());
        assert!(basic("").is_none());
    }

    #[test]
    fn claimed_keys_and_schemes() {
        let target: Uri = "/x".parse().unwrap();
        let digest = |response| {
            Credentials::Digest(DigestRequest {
                response,
                method: "GET",
                target: &target,
            })
        };
        let named = DigestCredentials {
            username: "abcdefgh".into(),
            ..DigestCredentials::default()
        };
        assert_eq!(digest(Some(named)).claimed_public_key(), Some("abcdefgh"));
        assert_eq!(digest(None).claimed_public_key(), None);
        assert_eq!(digest(None).scheme(), "digest");
        let certificate = Credentials::ClientCertificate("abcdefgh");
        assert_eq!(certificate.claimed_public_key(), Some("abcdefgh"));
        assert_eq!(certificate.scheme(), "mtls");
        assert_eq!(Credentials::Basic(None).claimed_public_key(), None);
        assert_eq!(Credentials::Basic(None).scheme(), "basic");
        assert_eq!(Credentials::None.claimed_public_key(), None);
    }
}
