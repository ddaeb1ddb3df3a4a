//! Extractors whose rejections come back as Atlas errors: the request context (version, flags,
//! the scheme and host of `links`, see [`Links`]: forwarded headers only from trusted proxies),
//! the Digest-authenticated principal (the header turned into credentials for the
//! [`Authenticator`], its refusal into the Atlas reply), path parameters, the bounded JSON body
//! and the paging query.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio_stream::StreamExt as _;

use super::response::{ApiError, ApiVersion, Flags, Reply};
use super::{Gateway, MAX_BODY_BYTES};
use crate::auth::{
    AuthError, Authenticator, Credentials, DigestRequest, TrustedProxies, VerifiedPrincipal, digest,
};
use crate::listener::PeerInfo;

/// What the gateway's middleware learned about a request, for handlers and rendering.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The API version of the path.
    pub version: ApiVersion,
    /// The query flags.
    pub flags: Flags,
    /// `scheme://host` of the request, for `links`.
    pub base_url: String,
    /// The request path as received (still percent-encoded).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
}

impl RequestContext {
    /// Builds the context of a request: its version from the path, its flags from the query,
    /// with the error of a flag that is neither `true` nor `false` (the flags read so far stay,
    /// so the error is rendered with them).
    /// The `links` name the server as a direct plaintext client reached it ([`Links::default`]).
    pub fn of(parts_uri: &axum::http::Uri, headers: &HeaderMap) -> (Self, Option<ApiError>) {
        Self::with_base_url(
            parts_uri,
            Links::default().base_url(parts_uri, headers, None),
        )
    }

    /// Builds the context of a request whose `links` start with `base_url` (`scheme://host`,
    /// from [`Links::base_url`]).
    pub fn with_base_url(
        parts_uri: &axum::http::Uri,
        base_url: String,
    ) -> (Self, Option<ApiError>) {
        let path = parts_uri.path().to_owned();
        let version = if path.starts_with("/api/atlas/v2/") || path == "/api/atlas/v2" {
            ApiVersion::V2
        } else {
            ApiVersion::V1
        };
        let mut context = Self {
            version,
            flags: Flags::default(),
            base_url,
            path,
            query: parts_uri.query().map(str::to_owned),
        };
        let mut error = None;
        let mut seen = [false; 2];
        for (name, value) in query_pairs(context.query.as_deref()) {
            let (slot, index) = match name.as_str() {
                "pretty" => (&mut context.flags.pretty, 0),
                "envelope" => (&mut context.flags.envelope, 1),
                _ => continue,
            };
            // A flag given twice is ambiguous (servlet containers disagree on which wins).
            let repeated = std::mem::replace(&mut seen[index], true);
            match parse_bool(&value) {
                Some(flag) if !repeated => *slot = flag,
                _ => error = error.or(Some(ApiError::invalid_query_parameter(&name, &value))),
            }
        }
        (context, error)
    }

    /// The request's own URL, query included: the `self` link of a list.
    pub fn self_href(&self) -> String {
        match &self.query {
            Some(query) => format!("{}{}?{query}", self.base_url, self.path),
            None => format!("{}{}", self.base_url, self.path),
        }
    }

    /// The request's URL with `pageNum` set, other parameters kept as sent.
    pub fn page_href(&self, page_num: u32) -> String {
        let mut parts: Vec<String> = self
            .query
            .as_deref()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty() && p.split('=').next() != Some("pageNum"))
            .map(str::to_owned)
            .collect();
        parts.push(format!("pageNum={page_num}"));
        format!("{}{}?{}", self.base_url, self.path, parts.join("&"))
    }

    /// The URL of a resource under this version's prefix (segments already encoded).
    pub fn resource_href(&self, path: &str) -> String {
        format!("{}{}{path}", self.base_url, self.version.prefix())
    }
}

/// How `links` name this server: `--public-url` if set; otherwise the scheme is `https` when
/// the HTTP listener serves TLS, and from a peer in `--trusted-proxies` the rightmost
/// `X-Forwarded-Proto` and `X-Forwarded-Host` count (the values the nearest, trusted proxy
/// wrote). From any other peer forwarded headers are ignored and the host is the request's own
/// `Host`: what that client used to reach us, echoed back only to it. RFC 7239 `Forwarded` is
/// not read.
#[derive(Clone, Debug, Default)]
pub struct Links {
    /// `--public-url`: overrides scheme and host.
    pub public_url: Option<PublicUrl>,
    /// Whether the HTTP listener itself serves TLS.
    pub tls: bool,
    /// The proxies whose forwarded headers are believed.
    pub trusted_proxies: TrustedProxies,
}

impl Links {
    /// The `scheme://host` of a request from `peer` (unknown: not a trusted proxy).
    pub fn base_url(
        &self,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> String {
        if let Some(public) = &self.public_url {
            return public.0.clone();
        }
        let trusted = peer.is_some_and(|ip| self.trusted_proxies.trusts(ip));
        let mut scheme = if self.tls { "https" } else { "http" };
        let mut forwarded_host = None;
        if trusted {
            match last_value(headers, "x-forwarded-proto") {
                Some(p) if p.eq_ignore_ascii_case("https") => scheme = "https",
                Some(p) if p.eq_ignore_ascii_case("http") => scheme = "http",
                _ => {}
            }
            forwarded_host = last_value(headers, "x-forwarded-host").filter(|h| is_host(h));
        }
        let host = forwarded_host
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            })
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        format!("{scheme}://{host}")
    }
}

/// The rightmost comma-separated entry of a header (its last occurrence), trimmed.
fn last_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    value.rsplit(',').next().map(str::trim)
}

/// A host with an optional port: letters, digits, `-`, `.`, `_`, `:` and IPv6 brackets.
fn is_host(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

/// `--public-url`: `scheme://host[:port]` with scheme `http` or `https` and no path, query or
/// credentials; kept without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    /// Parses and checks a public URL (`https://dbcert.example.com`, `http://10.0.0.1:8080/`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let error = |why: &str| format!("{text:?} is not a public URL ({why})");
        let uri: axum::http::Uri = text
            .parse()
            .map_err(|_| error("expected scheme://host[:port]"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(error("the scheme must be http or https")),
        }
        let authority = uri.authority().ok_or_else(|| error("no host"))?;
        if authority.as_str().contains('@') {
            return Err(error("no user information allowed"));
        }
        if authority.host().is_empty() || !is_host(authority.as_str()) {
            return Err(error("not a host"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() || text.contains('#') {
            return Err(error("no path, query or fragment allowed"));
        }
        Ok(Self(format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            authority.as_str()
        )))
    }

    /// `scheme://host[:port]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Decodes a query string into pairs (form encoding, as Atlas's servlet container does).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .unwrap_or_else(|_| axum::http::Uri::from_static("/")),
    )
    .map(|q| q.0)
    .unwrap_or_default()
}

/// `true`/`false`, case-insensitively; anything else is refused.
pub fn parse_bool(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = Reply;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Self>() {
            Some(context) => Ok(context.clone()),
            None => match RequestContext::of(&parts.uri, &parts.headers) {
                (context, None) => Ok(context),
                (_, Some(error)) => Err(error.into()),
            },
        }
    }
}

/// The principal whose API key signed the request with HTTP Digest (with the client's address),
/// ready to be passed into the extensions of the in-process RPC request.
#[derive(Clone, Debug)]
pub struct Authenticated(pub VerifiedPrincipal);

impl FromRequestParts<Gateway> for Authenticated {
    type Rejection = Reply;

    async fn from_request_parts(
        parts: &mut Parts,
        gateway: &Gateway,
    ) -> Result<Self, Self::Rejection> {
        // The client's address: the TCP peer recorded by the listener (axum's `ConnectInfo`
        // when the router is served by axum, as in unit tests), or behind a trusted proxy the
        // client its `X-Forwarded-For` names.
        let client = parts
            .extensions
            .get::<PeerInfo>()
            .and_then(|peer| peer.remote_addr)
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|info| info.0)
            })
            .map(|peer| {
                let forwarded: Vec<&[u8]> = parts
                    .headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .map(|value| value.as_bytes())
                    .collect();
                gateway.authenticator.client_address(peer, forwarded)
            });
        let credentials = match parts.headers.get(header::AUTHORIZATION) {
            // The first step of the handshake: a challenge, not a failure.
            None => Credentials::None,
            Some(value) => Credentials::Digest(DigestRequest {
                response: value.to_str().ok().and_then(digest::parse_authorization),
                method: parts.method.as_str(),
                // Digest signs the target as sent, trailing slash included.
                target: parts
                    .extensions
                    .get::<super::trailing_slash::SentUri>()
                    .map_or(&parts.uri, |sent| &sent.0),
            }),
        };
        match gateway
            .authenticator
            .authenticate(credentials, client)
            .await
        {
            Ok(principal) => Ok(Self(VerifiedPrincipal(principal))),
            Err(error) => Err(refusal(&gateway.authenticator, error)),
        }
    }
}

/// The reply to a refused request: a fresh Digest challenge (`stale=true` for a stale nonce),
/// 429 `RATE_LIMITED` with `Retry-After`, or the store's error.
fn refusal(authenticator: &Authenticator, error: AuthError) -> Reply {
    let challenge = |stale| {
        let value = HeaderValue::from_str(&authenticator.digest_challenge(stale))
            .expect("a challenge must be a valid header value");
        Reply::Challenge(vec![value])
    };
    match error {
        AuthError::RateLimited(wait) => ApiError::rate_limited(wait).into(),
        AuthError::StaleNonce => challenge(true),
        AuthError::Store(error) | AuthError::NotOnAccessList(error) => {
            ApiError::from_atlas(&error).into()
        }
        AuthError::Unauthenticated => challenge(false),
    }
}

/// Path parameters, percent-decoded; a segment that does not decode is a 400 in Atlas shape.
#[derive(Debug)]
pub struct AtlasPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AtlasPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Reply;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|_| ApiError::invalid_path().into())
    }
}

/// A JSON request body, read up to [`MAX_BODY_BYTES`] while streaming. Any content type is
/// accepted (curl's `--data` sends `application/x-www-form-urlencoded`, the v2 clients
/// `application/vnd.atlas.2023-01-01+json`); an empty body reads as `{}`; an object with a
/// repeated key, at any depth, is 400 `INVALID_JSON` naming the key.
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Reply;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let mut stream = request.into_body().into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| ApiError::malformed_json())?;
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ApiError::request_too_large().into());
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Value::Object(Map::new())));
        }
        let value = serde_json::from_slice(&bytes).map_err(|_| ApiError::malformed_json())?;
        if let Some(key) = super::body::duplicate_key(&bytes) {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "INVALID_JSON",
                format!("Received JSON has the attribute {key} more than once."),
                vec![key],
            )
            .into());
        }
        Ok(Self(value))
    }
}

/// The paging query of list endpoints.
#[derive(Clone, Copy, Debug, Default)]
pub struct Paging {
    /// `pageNum`, 0 when absent.
    pub page_num: i32,
    /// `itemsPerPage`, 0 when absent.
    pub items_per_page: i32,
    /// `includeCount`.
    pub include_count: Option<bool>,
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = Reply;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut paging = Self::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in query_pairs(parts.uri.query()) {
            let invalid = || Reply::from(ApiError::invalid_query_parameter(&name, &value));
            if matches!(name.as_str(), "pageNum" | "itemsPerPage" | "includeCount") {
                if seen.contains(&name) {
                    return Err(invalid());
                }
                seen.push(name.clone());
            }
            match name.as_str() {
                "pageNum" => paging.page_num = parse_page_number(&value).ok_or_else(invalid)?,
                "itemsPerPage" => {
                    paging.items_per_page = parse_page_number(&value).ok_or_else(invalid)?
                }
                "includeCount" => {
                    paging.include_count = Some(parse_bool(&value).ok_or_else(invalid)?)
                }
                _ => {}
            }
        }
        Ok(paging)
    }
}

/// A page number or size: a positive 32-bit integer. Over gRPC 0 means "the default", so 0 is
/// refused here rather than passed on; upper bounds (`itemsPerPage` ≤ 500) are the core's.
fn parse_page_number(value: &str) -> Option<i32> {
    value.parse::<i32>().ok().filter(|n| *n > 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[allow(clippy::result_large_err)]
    fn context(uri: &str) -> Result<RequestContext, (ApiError, RequestContext)> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "h:1".parse().unwrap());
        match RequestContext::of(&uri.parse().unwrap(), &headers) {
            (context, None) => Ok(context),
            (context, Some(error)) => Err((error, context)),
        }
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn flags_and_versions() {
        let c = context("/api/atlas/v2/groups?pretty=TRUE&envelope=false").unwrap();
        assert_eq!(c.version, ApiVersion::V2);
        assert!(c.flags.pretty && !c.flags.envelope);
        let c = context("/api/atlas/v1.0/groups?envelope=true").unwrap();
        assert_eq!(c.version, ApiVersion::V1);
        assert!(c.flags.envelope);
        let (error, c) = context("/api/atlas/v1.0/groups?pretty=yes&envelope=true").unwrap_err();
        assert_eq!(error.error_code, "INVALID_QUERY_PARAMETER");
        assert_eq!(error.parameters, vec![Value::from("pretty")]);
        assert!(c.flags.envelope);
        let (error, _) = context("/api/atlas/v1.0/groups?pretty=true&pretty=true").unwrap_err();
        assert_eq!(error.error_code, "INVALID_QUERY_PARAMETER");
    }

    #[test]
    fn links_echo_the_query() {
        let c = context("/api/atlas/v1.0/groups?itemsPerPage=1&pageNum=2&pretty=true").unwrap();
        assert_eq!(
            c.self_href(),
            "http://h:1/api/atlas/v1.0/groups?itemsPerPage=1&pageNum=2&pretty=true"
        );
        assert_eq!(
            c.page_href(3),
            "http://h:1/api/atlas/v1.0/groups?itemsPerPage=1&pretty=true&pageNum=3"
        );
        let c = context("/api/atlas/v1.0/groups").unwrap();
        assert_eq!(c.self_href(), "http://h:1/api/atlas/v1.0/groups");
        assert_eq!(c.page_href(2), "http://h:1/api/atlas/v1.0/groups?pageNum=2");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn links_trust_forwarded_headers_only_from_trusted_proxies() {
        let uri: axum::http::Uri = "/api/atlas/v2/groups".parse().unwrap();
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "192.0.2.9".parse().unwrap();
        let trusting = Links {
            trusted_proxies: TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]),
            ..Links::default()
        };
        let forwarded = headers(&[
            ("host", "in:80"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-proto", "evil, https"),
            ("x-forwarded-host", "evil.example, public.example"),
        ]);
        assert_eq!(
            trusting.base_url(&uri, &forwarded, Some(proxy)),
            "https://public.example"
        );
        assert_eq!(
            trusting.base_url(&uri, &forwarded, Some(stranger)),
            "http://in:80"
        );
        assert_eq!(trusting.base_url(&uri, &forwarded, None), "http://in:80");
        // The listener's TLS: https, unless a trusted proxy says the client used http.
        let tls = Links {
            tls: true,
            ..trusting.clone()
        };
        assert_eq!(
            tls.base_url(&uri, &forwarded, Some(stranger)),
            "https://in:80"
        );
        let plain_behind_proxy = headers(&[("host", "in:80"), ("x-forwarded-proto", "http")]);
        assert_eq!(
            tls.base_url(&uri, &plain_behind_proxy, Some(proxy)),
            "http://in:80"
        );
        // --public-url wins over everything.
        let public = Links {
            public_url: Some(PublicUrl::parse("https://db.example.com/").unwrap()),
            ..trusting
        };
        assert_eq!(
            public.base_url(&uri, &forwarded, Some(proxy)),
            "https://db.example.com"
        );
        // No Host: the target's authority, then localhost.
        assert_eq!(
            Links::default().base_url(
                &"http://a.example:1/x".parse().unwrap(),
                &HeaderMap::new(),
                None
            ),
            "http://a.example:1"
        );
        assert_eq!(
            Links::default().base_url(&uri, &HeaderMap::new(), None),
            "http://localhost"
        );
    }

    #[test]
    fn public_urls() {
        for ok in [
            "https://dbcert.example.com",
            "http://10.0.0.1:8080/",
            "https://[2001:db8::1]:8443",
        ] {
            let url = PublicUrl::parse(ok).unwrap();
            assert_eq!(url.as_str(), ok.trim_end_matches('/'));
        }
        for bad in [
            "",
            "dbcert.example.com",
            "ftp://dbcert.example.com",
            "https://",
            "https://user@dbcert.example.com",
            "https://dbcert.example.com/api",
            "https://dbcert.example.com?x=1",
            "https://dbcert.example.com/#top",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn page_numbers() {
        assert_eq!(parse_page_number("3"), Some(3));
        assert_eq!(parse_page_number("0"), None);
        assert_eq!(parse_page_number("-1"), None);
        assert_eq!(parse_page_number("99999999999"), None);
        assert_eq!(parse_page_number("x"), None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn request_context_never_panics(path in "/[!-~]{0,100}", query in "[ -~]{0,200}") {
                let target = format!("{path}?{query}");
                if let Ok(uri) = target.parse::<axum::http::Uri>() {
                    let (context, error) = RequestContext::of(&uri, &HeaderMap::new());
                    if let Some(error) = error {
                        prop_assert_eq!(error.error_code, "INVALID_QUERY_PARAMETER");
                    }
                    let _ = context.self_href();
                    let _ = context.page_href(2);
                }
            }

            #[test]
            fn flags_parse_as_given(pretty in any::<bool>(), envelope in any::<bool>(), upper in any::<bool>()) {
                let text = |b: bool| if upper { b.to_string().to_uppercase() } else { b.to_string() };
                let uri = format!("/api/atlas/v2/groups?envelope={}&x=%FF&pretty={}", text(envelope), text(pretty));
                let (context, error) = RequestContext::of(&uri.parse().unwrap(), &HeaderMap::new());
                prop_assert!(error.is_none());
                prop_assert_eq!(context.flags, Flags { pretty, envelope });
                prop_assert_eq!(context.version, ApiVersion::V2);
            }

            #[test]
            fn page_numbers_are_positive_i32(value in "[-+0-9a-z]{0,25}") {
                match parse_page_number(&value) {
                    Some(n) => prop_assert!(n > 0 && value.trim_start_matches('+').parse::<i32>() == Ok(n)),
                    None => prop_assert!(value.parse::<i32>().map_or(true, |n| n <= 0)),
                }
            }
        }
    }
}
