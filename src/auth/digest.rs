//! HTTP Digest authentication ([RFC 7616]) as Atlas does it: realm `MMS Public API`, `qop=auth`,
//! the public key as username and the private key as password.
//!
//! Nonces are stateless, so any replica sharing the master key accepts any replica's nonces:
//! `base64(timestamp ‖ random ‖ HMAC-SHA256(secret, timestamp ‖ random)[..8])`, 24 bytes, 32
//! characters. A nonce older than [`NONCE_LIFETIME`] is stale (`stale=true` when the rest of the
//! response is right). Each (nonce, nc) pair is accepted once, recorded in the shared store.
//!
//! Only the MD5 challenge is sent, exactly as Atlas records it: Python `requests` merges several
//! `WWW-Authenticate` headers into one and would mix two challenges' parameters. Responses with
//! `algorithm=SHA-256` (and the `-sess` variants) are verified all the same.
//!
//! Everything of the scheme is here: parsing the `Authorization` header, nonces, the challenge
//! and verifying a response. Throttling and recording failures are the [`Authenticator`]'s.
//!
//! [`Authenticator`]: super::Authenticator
//! [RFC 7616]: https://www.rfc-editor.org/rfc/rfc7616

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use http::Uri;
use md5::Md5;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;
use tracing::debug;
use zeroize::Zeroizing;

use super::Refusal;
use super::credentials::DigestRequest;
use crate::domain::{Core, DIGEST_REALM, Principal};

/// How long a nonce is fresh.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// How far in the future a nonce's timestamp may lie (clock skew between replicas).
const NONCE_FUTURE_SKEW: i64 = 60;
/// The longest `Authorization` header considered (bytes); longer ones are refused unparsed. The
/// header repeats the request target (`uri=`), so the bound leaves room for a path of several
/// KiB: a request with a long path still authenticates and gets the error its path deserves.
pub const MAX_AUTHORIZATION_LEN: usize = 12 * 1024;
/// Bytes of a raw nonce: timestamp (8), random (8), truncated HMAC (8).
const NONCE_LEN: usize = 24;

/// The hash of a Digest exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5` (the default when absent).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

/// The parameters of an `Authorization: Digest …` header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestCredentials {
    /// `username`: the public key.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri`: the request target.
    pub uri: String,
    /// `response`: the hex digest.
    pub response: String,
    /// `algorithm`, if given.
    pub algorithm: Option<String>,
    /// `qop`, if given.
    pub qop: Option<String>,
    /// `nc`, if given.
    pub nc: Option<String>,
    /// `cnonce`, if given.
    pub cnonce: Option<String>,
}

/// What a nonce check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceState {
    /// Not one of ours (or forged).
    Invalid,
    /// Ours but expired.
    Stale,
    /// Ours and fresh, expiring at this unix time.
    Fresh(i64),
}

// === impl Algorithm ===

impl Algorithm {
    /// Parses the `algorithm` parameter (case-insensitive); absent means MD5.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        let Some(value) = value else {
            return Some(Self::Md5);
        };
        [
            ("MD5", Self::Md5),
            ("MD5-sess", Self::Md5Sess),
            ("SHA-256", Self::Sha256),
            ("SHA-256-sess", Self::Sha256Sess),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|(_, algorithm)| algorithm)
    }

    fn hash(self, data: &str) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => hex::encode(Md5::digest(data.as_bytes())),
            Self::Sha256 | Self::Sha256Sess => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }

    fn is_sha256(self) -> bool {
        matches!(self, Self::Sha256 | Self::Sha256Sess)
    }

    fn is_session(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }
}

/// The `WWW-Authenticate` value of a challenge, byte for byte as Atlas sends it.
pub fn challenge(nonce: &str, stale: bool) -> String {
    format!(
        "Digest realm=\"{DIGEST_REALM}\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale={stale}"
    )
}

/// Creates a nonce stamped with `now` (unix seconds).
pub fn new_nonce(secret: &[u8; 32], now: i64) -> String {
    let mut raw = [0u8; NONCE_LEN];
    raw[..8].copy_from_slice(&now.to_be_bytes());
    raw[8..16].copy_from_slice(&rand::random::<[u8; 8]>());
    let tag = nonce_tag(secret, &raw[..16]);
    raw[16..].copy_from_slice(&tag);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Checks a nonce's authenticity and age at `now` (unix seconds).
pub fn check_nonce(secret: &[u8; 32], nonce: &str, now: i64) -> NonceState {
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(nonce) else {
        return NonceState::Invalid;
    };
    if raw.len() != NONCE_LEN {
        return NonceState::Invalid;
    }
    let tag = nonce_tag(secret, &raw[..16]);
    if !bool::from(tag.ct_eq(&raw[16..])) {
        return NonceState::Invalid;
    }
    let mut stamp = [0u8; 8];
    stamp.copy_from_slice(&raw[..8]);
    let issued = i64::from_be_bytes(stamp);
    let lifetime = NONCE_LIFETIME.as_secs() as i64;
    if issued > now.saturating_add(NONCE_FUTURE_SKEW) {
        NonceState::Invalid
    } else if now > issued.saturating_add(lifetime) {
        NonceState::Stale
    } else {
        NonceState::Fresh(issued.saturating_add(lifetime))
    }
}

fn nonce_tag(secret: &[u8; 32], data: &[u8]) -> [u8; 8] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, data);
    let mut out = [0u8; 8];
    out.copy_from_slice(&tag.as_ref()[..8]);
    out
}

/// Parses an `Authorization` header value of the Digest scheme. Pure and panic-free: any
/// malformed input gives `None`.
pub fn parse_authorization(value: &str) -> Option<DigestCredentials> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return None;
    }
    let value = value.trim_start();
    let (scheme, mut rest) = value.split_at_checked(value.find([' ', '\t'])?)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut credentials = DigestCredentials::default();
    let mut seen: Vec<String> = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim().to_ascii_lowercase();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        rest = rest[eq + 1..].trim_start();
        let parsed;
        if let Some(quoted) = rest.strip_prefix('"') {
            let (text, after) = parse_quoted(quoted)?;
            parsed = text;
            rest = after;
        } else {
            let end = rest.find([',', ' ', '\t']).unwrap_or(rest.len());
            parsed = rest[..end].to_owned();
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches([' ', '\t']);
        if !rest.is_empty() && !rest.starts_with(',') {
            return None;
        }
        if seen.contains(&name) {
            return None;
        }
        match name.as_str() {
            "username" => credentials.username = parsed,
            "realm" => credentials.realm = parsed,
            "nonce" => credentials.nonce = parsed,
            "uri" => credentials.uri = parsed,
            "response" => credentials.response = parsed,
            "algorithm" => credentials.algorithm = Some(parsed),
            "qop" => credentials.qop = Some(parsed),
            "nc" => credentials.nc = Some(parsed),
            "cnonce" => credentials.cnonce = Some(parsed),
            // `userhash=true` and `username*` would change what username means: refuse them.
            "userhash" if !parsed.eq_ignore_ascii_case("false") => return None,
            "username*" => return None,
            _ => {}
        }
        seen.push(name);
    }
    Some(credentials)
}

/// Parses the rest of a quoted-string (after its opening quote): its text and what follows.
fn parse_quoted(input: &str) -> Option<(String, &str)> {
    let mut text = String::new();
    let mut chars = input.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((text, &input[i + 1..])),
            '\\' => text.push(chars.next()?.1),
            c => text.push(c),
        }
    }
    None
}

/// Computes the expected `response` of RFC 7616 §3.4.1 for `qop=auth`, from the stored HA1.
pub fn expected_response(
    ha1: &str,
    algorithm: Algorithm,
    credentials: &DigestCredentials,
    method: &str,
) -> String {
    let nc = credentials.nc.as_deref().unwrap_or_default();
    let cnonce = credentials.cnonce.as_deref().unwrap_or_default();
    let ha1 = if algorithm.is_session() {
        Zeroizing::new(algorithm.hash(&format!("{ha1}:{}:{cnonce}", credentials.nonce)))
    } else {
        Zeroizing::new(ha1.to_owned())
    };
    let ha2 = algorithm.hash(&format!("{method}:{}", credentials.uri));
    algorithm.hash(&format!(
        "{}:{}:{nc}:{cnonce}:auth:{ha2}",
        ha1.as_str(),
        credentials.nonce
    ))
}

/// Whether the Digest `uri` names this request's target.
fn uri_matches(digest_uri: &str, target: &Uri) -> bool {
    let Some(path_and_query) = target.path_and_query() else {
        return false;
    };
    if digest_uri == path_and_query.as_str() {
        return true;
    }
    // An absolute-form URI (some clients send it) names the same target if its path and query do.
    digest_uri
        .parse::<Uri>()
        .ok()
        .filter(|u| u.scheme().is_some())
        .and_then(|u| {
            u.path_and_query()
                .map(|p| p.as_str() == path_and_query.as_str())
        })
        .unwrap_or(false)
}

/// Verifies a request's Digest response: the key's principal on success, else the
/// [`Refusal`]. A wrong response — for a key that exists or not, with a fresh nonce or a stale
/// one — is a try at the key's secret ([`Refusal::wrong_credentials`]). A response that is not
/// checked against the secret (malformed, a forged or unknown nonce, a replayed nonce count) is
/// a failure of the address only ([`Refusal::unverified`]): no one can charge a key without a
/// nonce this service issued. A right response with a stale nonce and a store outage are no
/// failures at all.
pub(crate) async fn verify(core: &Core, request: &DigestRequest<'_>) -> Result<Principal, Refusal> {
    let refuse = |why: &'static str| {
        debug!(why, "digest authentication refused");
        Refusal::unverified(why)
    };
    let Some(credentials) = &request.response else {
        return Err(refuse("unparsable authorization header"));
    };
    let Some(algorithm) = Algorithm::parse(credentials.algorithm.as_deref()) else {
        return Err(refuse("unsupported algorithm"));
    };
    if credentials.realm != DIGEST_REALM {
        return Err(refuse("wrong realm"));
    }
    if !credentials
        .qop
        .as_deref()
        .is_some_and(|q| q.eq_ignore_ascii_case("auth"))
    {
        return Err(refuse("qop=auth required"));
    }
    let Some(nc) = credentials
        .nc
        .as_deref()
        .filter(|nc| nc.len() == 8)
        .and_then(|nc| u32::from_str_radix(nc, 16).ok())
    else {
        return Err(refuse("bad nc"));
    };
    if credentials.cnonce.as_deref().is_none_or(str::is_empty) {
        return Err(refuse("missing cnonce"));
    }
    if !uri_matches(&credentials.uri, request.target) {
        return Err(refuse("uri does not match the request"));
    }
    let now = core.now().unix_timestamp();
    // Any key of the keyring: during a master key rotation, replicas on the old and on the new
    // primary make nonces under different secrets.
    let nonce_state = core
        .digest_nonce_secrets()
        .map(|secret| check_nonce(secret, &credentials.nonce, now))
        .find(|state| *state != NonceState::Invalid)
        .unwrap_or(NonceState::Invalid);
    if nonce_state == NonceState::Invalid {
        return Err(refuse("invalid nonce"));
    }
    // The one key lookup of a Digest request: the HA1 values and the principal come together.
    // An unknown key takes the same path: its "not found" is cached as a found key is, and a
    // dummy HA1 is compared, so the time taken does not tell whether the key exists.
    let secrets = core
        .digest_secrets(&credentials.username)
        .await
        .map_err(Refusal::Store)?;
    let dummy = Zeroizing::new("0".repeat(if algorithm.is_sha256() { 64 } else { 32 }));
    let ha1 = match &secrets {
        Some(s) if algorithm.is_sha256() => &s.ha1_sha256,
        Some(s) => &s.ha1_md5,
        None => &dummy,
    };
    let expected = expected_response(ha1, algorithm, credentials, request.method);
    let presented = credentials.response.to_ascii_lowercase();
    let matches: bool = expected.as_bytes().ct_eq(presented.as_bytes()).into();
    let Some(secrets) = secrets.filter(|_| matches) else {
        debug!(why = "wrong credentials", "digest authentication refused");
        return Err(Refusal::wrong_credentials());
    };
    // RFC 7616 §3.3: `stale=true` only for a response that is right for its stale nonce.
    let NonceState::Fresh(expires_at) = nonce_state else {
        debug!("stale digest nonce");
        return Err(Refusal::Stale);
    };
    let expires_at = OffsetDateTime::from_unix_timestamp(expires_at)
        .map_err(|_| refuse("nonce out of range"))?;
    let first_use = core
        .record_digest_nonce_use(&credentials.nonce, &format!("{nc:08x}"), expires_at)
        .await
        .map_err(Refusal::Store)?;
    if !first_use {
        return Err(refuse("replayed nonce count"));
    }
    Ok(secrets.into_principal())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    #[test]
    fn challenge_has_the_recorded_shape() {
        let nonce = new_nonce(&SECRET, 1_700_000_000);
        assert_eq!(nonce.len(), 32);
        assert_eq!(
            challenge(&nonce, false),
            format!(
                "Digest realm=\"MMS Public API\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale=false"
            )
        );
        assert!(challenge(&nonce, true).ends_with("stale=true"));
    }

    #[test]
    fn nonces_are_checked_by_hmac_and_age() {
        let now = 1_700_000_000;
        let nonce = new_nonce(&SECRET, now);
        assert_eq!(
            check_nonce(&SECRET, &nonce, now),
            NonceState::Fresh(now + 300)
        );
        assert_eq!(check_nonce(&SECRET, &nonce, now + 301), NonceState::Stale);
        assert_eq!(check_nonce(&[8; 32], &nonce, now), NonceState::Invalid);
        assert_eq!(
            check_nonce(&SECRET, &nonce, now - 3600),
            NonceState::Invalid
        );
        let mut forged = base64::engine::general_purpose::STANDARD
            .decode(&nonce)
            .unwrap();
        forged[0] ^= 1;
        let forged = base64::engine::general_purpose::STANDARD.encode(forged);
        assert_eq!(check_nonce(&SECRET, &forged, now), NonceState::Invalid);
        assert_eq!(check_nonce(&SECRET, "short", now), NonceState::Invalid);
        assert_ne!(new_nonce(&SECRET, now), nonce);
    }

    #[test]
    fn parses_curl_and_requests_headers() {
        let curl = r#"Digest username="abcdefgh", realm="MMS Public API", nonce="AAAA", uri="/api/atlas/v1.0/groups?pretty=true", cnonce="MTIz", nc=00000001, qop=auth, response="0123", algorithm=MD5"#;
        let c = parse_authorization(curl).unwrap();
        assert_eq!(c.username, "abcdefgh");
        assert_eq!(c.uri, "/api/atlas/v1.0/groups?pretty=true");
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        let requests = r#"Digest username="abcdefgh", realm="MMS Public API", nonce="AAAA", uri="/x", response="ab", algorithm="MD5", qop="auth", nc=00000001, cnonce="ff""#;
        assert_eq!(
            parse_authorization(requests).unwrap().algorithm.as_deref(),
            Some("MD5")
        );
        assert_eq!(
            parse_authorization(r#"Digest username="a\"b""#)
                .unwrap()
                .username,
            "a\"b"
        );
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in [
            "",
            "Digest",
            "Basic abc",
            "Digest username",
            "Digest username=\"unterminated",
            "Digest username=\"a\" junk",
            "Digest username=\"a\", username=\"b\"",
            "Digest =x",
            "Digest userhash=true",
            "Digest username*=UTF-8''x",
            "Digest é=1",
        ] {
            assert!(parse_authorization(bad).is_none(), "{bad}");
        }
        assert!(
            parse_authorization(&format!("Digest username=\"{}\"", "a".repeat(20_000))).is_none()
        );
    }

    #[test]
    fn computes_rfc_7616_responses() {
        // RFC 7616 §3.9.1: user Mufasa, password "Circle of Life", realm http-auth@example.org.
        let credentials = DigestCredentials {
            username: "Mufasa".into(),
            realm: "http-auth@example.org".into(),
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v".into(),
            uri: "/dir/index.html".into(),
            response: String::new(),
            algorithm: None,
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into()),
        };
        let ha1_md5 = hex::encode(Md5::digest(b"Mufasa:http-auth@example.org:Circle of Life"));
        assert_eq!(
            expected_response(&ha1_md5, Algorithm::Md5, &credentials, "GET"),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let ha1_sha = hex::encode(Sha256::digest(
            b"Mufasa:http-auth@example.org:Circle of Life",
        ));
        assert_eq!(
            expected_response(&ha1_sha, Algorithm::Sha256, &credentials, "GET"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn uri_must_name_the_target() {
        let target: Uri = "/api/atlas/v1.0/groups?pretty=true".parse().unwrap();
        assert!(uri_matches("/api/atlas/v1.0/groups?pretty=true", &target));
        assert!(uri_matches(
            "http://h:1/api/atlas/v1.0/groups?pretty=true",
            &target
        ));
        assert!(!uri_matches("/api/atlas/v1.0/groups", &target));
        assert!(!uri_matches("/api/atlas/v1.0/orgs?pretty=true", &target));
    }

    #[test]
    fn algorithms_parse_case_insensitively() {
        assert_eq!(Algorithm::parse(None), Some(Algorithm::Md5));
        assert_eq!(Algorithm::parse(Some("md5")), Some(Algorithm::Md5));
        assert_eq!(
            Algorithm::parse(Some("SHA-256-sess")),
            Some(Algorithm::Sha256Sess)
        );
        assert_eq!(Algorithm::parse(Some("SHA-512-256")), None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Quotes a value as a client does (RFC 7616 quoted-string: `\` escapes `"` and `\`).
        fn quote(value: &str) -> String {
            let mut out = String::from("\"");
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
            out
        }

        proptest! {
            #[test]
            fn parsing_never_panics(value in ".{0,300}") {
                let _ = parse_authorization(&value);
                let _ = parse_authorization(&format!("Digest {value}"));
                let _ = check_nonce(&SECRET, &value, 1_700_000_000);
                let _ = Algorithm::parse(Some(&value));
            }

            #[test]
            fn parsing_never_panics_on_header_like_input(
                parts in proptest::collection::vec(
                    ("[a-zA-Z*_-]{0,10}", prop_oneof![
                        "[^\"]{0,20}".prop_map(|v| format!("\"{v}\"")),
                        "[^,\" ]{0,20}",
                        "\"[^\"]{0,20}",
                    ]),
                    0..12,
                ),
                separator in prop_oneof![Just(", "), Just(","), Just(" "), Just(",,")],
            ) {
                let params: Vec<String> =
                    parts.iter().map(|(name, value)| format!("{name}={value}")).collect();
                let _ = parse_authorization(&format!("Digest {}", params.join(separator)));
            }

            #[test]
            fn what_a_client_sends_round_trips(
                username in "\\PC{0,40}",
                realm in "\\PC{0,40}",
                nonce in "[A-Za-z0-9+/=]{0,44}",
                uri in "/[!-~]{0,80}",
                response in "[0-9a-f]{32,64}",
                cnonce in "[!-~]{1,20}",
                nc in any::<u32>(),
                algorithm in prop_oneof![
                    Just("MD5"), Just("MD5-sess"), Just("SHA-256"), Just("SHA-256-sess")
                ],
                quoted_algorithm in any::<bool>(),
            ) {
                let algorithm_text = if quoted_algorithm {
                    quote(algorithm)
                } else {
                    algorithm.to_owned()
                };
                let header = format!(
                    "Digest username={}, realm={}, nonce={}, uri={}, algorithm={algorithm_text}, \
                     response={}, qop=auth, nc={nc:08x}, cnonce={}",
                    quote(&username), quote(&realm), quote(&nonce), quote(&uri),
                    quote(&response), quote(&cnonce),
                );
                let parsed = parse_authorization(&header).expect("a client's header must parse");
                prop_assert_eq!(parsed, DigestCredentials {
                    username,
                    realm,
                    nonce,
                    uri,
                    response,
                    algorithm: Some(algorithm.to_owned()),
                    qop: Some("auth".to_owned()),
                    nc: Some(format!("{nc:08x}")),
                    cnonce: Some(cnonce),
                });
            }

            #[test]
            fn our_nonces_check_as_fresh(now in 0i64..4_000_000_000, secret in any::<[u8; 32]>()) {
                let nonce = new_nonce(&secret, now);
                prop_assert_eq!(nonce.len(), 32);
                prop_assert_eq!(
                    check_nonce(&secret, &nonce, now),
                    NonceState::Fresh(now + NONCE_LIFETIME.as_secs() as i64)
                );
            }
        }
    }
}
