//! The scheme and host of `links`: forwarded headers (`X-Forwarded-Proto`, `X-Forwarded-Host`)
//! count only from a peer in `--trusted-proxies`, and `--public-url` overrides everything. A
//! direct client's own `Host` is echoed back to it (it names what that client used to reach us).

#![allow(clippy::unwrap_used)]

use dbcert::auth::TrustedProxies;
use dbcert::gateway::PublicUrl;

use crate::harness::TestServer;
use crate::harness::atlas::{Alg, Atlas, authorization};

/// The `self` link of `GET /api/atlas/v1.0/orgs` sent with these extra headers.
async fn self_link(server: &TestServer, headers: &[(&str, &str)]) -> String {
    let atlas = Atlas::new(server);
    let target = "/api/atlas/v1.0/orgs";
    let nonce = atlas.nonce().await;
    let auth = authorization(&atlas.key, Alg::Md5, "GET", target, &nonce, 1, "0a4f113b");
    let mut all = vec![("authorization", auth.as_str())];
    all.extend_from_slice(headers);
    let response = atlas.raw("GET", target, None, &all).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let json = response.json();
    let links = json["links"].as_array().unwrap();
    let own = links.iter().find(|l| l["rel"] == "self").unwrap();
    own["href"].as_str().unwrap().to_owned()
}

const FORWARDED: [(&str, &str); 3] = [
    ("host", "direct.example:8080"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
];

#[tokio::test]
async fn untrusted_peer_cannot_change_scheme_or_host() {
    let server = TestServer::start().await;
    // Plain: the client's own Host, http.
    assert_eq!(
        self_link(&server, &[("host", "direct.example:8080")]).await,
        "http://direct.example:8080/api/atlas/v1.0/orgs"
    );
    // Forwarded headers from a peer that is not a trusted proxy are ignored.
    assert_eq!(
        self_link(&server, &FORWARDED).await,
        "http://direct.example:8080/api/atlas/v1.0/orgs"
    );
    server.stop().await;
}

#[tokio::test]
async fn trusted_proxy_sets_scheme_and_host() {
    let server = TestServer::start_with(|config| {
        config.trusted_proxies =
            TrustedProxies::new(vec![TrustedProxies::parse_network("127.0.0.0/8").unwrap()]);
    })
    .await;
    let headers = [
        ("host", "internal:8080"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "dbcert.example.com"),
    ];
    assert_eq!(
        self_link(&server, &headers).await,
        "https://dbcert.example.com/api/atlas/v1.0/orgs"
    );
    // Only the protocol forwarded: the Host the proxy sent.
    assert_eq!(
        self_link(
            &server,
            &[("host", "internal:8080"), ("x-forwarded-proto", "https")]
        )
        .await,
        "https://internal:8080/api/atlas/v1.0/orgs"
    );
    // A forwarded host that is not a host name is ignored.
    assert_eq!(
        self_link(
            &server,
            &[("host", "internal:8080"), ("x-forwarded-host", "a/b@c")]
        )
        .await,
        "http://internal:8080/api/atlas/v1.0/orgs"
    );
    server.stop().await;
}

#[tokio::test]
async fn public_url_overrides_host_and_forwarded_headers() {
    let server = TestServer::start_with(|config| {
        config.trusted_proxies =
            TrustedProxies::new(vec![TrustedProxies::parse_network("127.0.0.0/8").unwrap()]);
        config.public_url = Some(PublicUrl::parse("https://dbcert.example.com/").unwrap());
    })
    .await;
    for headers in [&FORWARDED[..], &FORWARDED[..1]] {
        assert_eq!(
            self_link(&server, headers).await,
            "https://dbcert.example.com/api/atlas/v1.0/orgs"
        );
    }
    server.stop().await;
}
