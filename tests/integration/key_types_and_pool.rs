//! Issue 6 end to end: leaf key types over gRPC (the right key and signature algorithm, and still
//! the Atlas profile), the project CA key type setting and its immutability once the CA exists,
//! and the pre-generated key pool (depth visible on `GET /metrics`, keys never reused, 0
//! disables it). No timing assertions.
//!
//! The Atlas REST routes keep issuing RSA-4096 only; that test belongs with the gateway's tests
//! (`tests/integration/gateway_atlas_certs.rs`) once the gateway branch is merged.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic fails the test

use std::collections::HashSet;
use std::time::Duration;

use dbcert::domain::{KeyPoolConfig, KeyType as DomainKeyType};
use dbcert::proto::v1::{
    CreateUserCertificateRequest, CreateUserCertificateResponse, GetUserSecurityRequest, KeyType,
    UpdateUserSecurityRequest,
};
use tonic::Code;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_SHA256WITHRSA, OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384,
};
use x509_parser::pem::Pem;
use x509_parser::public_key::PublicKey;

use crate::harness::{self, TestServer, assert_error, openssl, write};

/// The algorithm OIDs of the named curves (RFC 5480).
const SECP256R1: &str = "1.2.840.10045.3.1.7";
const SECP384R1: &str = "1.3.132.0.34";

async fn issue(
    clients: &harness::Clients,
    group_id: &str,
    username: &str,
    key_type: KeyType,
) -> Result<CreateUserCertificateResponse, tonic::Status> {
    clients
        .certificates()
        .create_user_certificate(CreateUserCertificateRequest {
            group_id: group_id.into(),
            username: username.into(),
            months_until_expiration: Some(1),
            key_type: key_type as i32,
            csr_pem: None,
        })
        .await
        .map(|r| r.into_inner())
}

async fn set_ca_key_type(
    clients: &harness::Clients,
    group_id: &str,
    key_type: i32,
) -> Result<dbcert::proto::v1::UserSecurity, tonic::Status> {
    clients
        .security()
        .update_user_security(UpdateUserSecurityRequest {
            group_id: group_id.into(),
            customer_x509: None,
            ca_key_type: key_type,
        })
        .await
        .map(|r| r.into_inner())
}

/// Parses one PEM certificate and runs `check` on it.
#[track_caller]
fn with_cert(pem: &str, check: impl FnOnce(&X509Certificate<'_>)) {
    let pem = Pem::iter_from_buffer(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    check(&pem.parse_x509().unwrap());
}

/// The Atlas profile of reference §2, whatever the key: subject, KU and EKU only, both critical.
#[track_caller]
fn assert_atlas_profile(cert: &X509Certificate<'_>, username: &str) {
    assert_eq!(cert.version().0, 2);
    assert_eq!(cert.subject().to_string(), format!("CN={username}"));
    let extensions = cert.extensions();
    assert_eq!(extensions.len(), 2, "only Key Usage and Extended Key Usage");
    for ext in extensions {
        assert!(ext.critical);
        match ext.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => assert_eq!(ku.flags, 1, "digitalSignature only"),
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert!(eku.client_auth && !eku.server_auth && eku.other.is_empty())
            }
            other => panic!("unexpected extension {other:?}"),
        }
    }
}

/// The key's algorithm: ("RSA", bits) or ("EC", curve OID).
fn key_of(cert: &X509Certificate<'_>) -> (String, String) {
    let spki = cert.public_key();
    match spki.parsed().unwrap() {
        PublicKey::RSA(rsa) => ("RSA".into(), rsa.key_size().to_string()),
        PublicKey::EC(_) => {
            assert_eq!(spki.algorithm.algorithm, OID_KEY_TYPE_EC_PUBLIC_KEY);
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .unwrap()
                .as_oid()
                .unwrap();
            ("EC".into(), curve.to_id_string())
        }
        other => panic!("unexpected key {other:?}"),
    }
}

/// `openssl verify` of a leaf against its project CA, and the private key matches the leaf.
#[track_caller]
fn assert_verifies(dir: &std::path::Path, ca_pem: &str, issued: &CreateUserCertificateResponse) {
    let ca = write(dir, "ca.pem", ca_pem);
    let leaf = write(dir, "leaf.pem", &issued.certificate_pem);
    let (ok, out) = openssl(&["verify", "-purpose", "sslclient", "-CAfile", &ca, &leaf]);
    assert!(ok, "{out}");
    let key = write(dir, "key.pem", &issued.private_key_pem);
    let (_, from_key) = openssl(&["pkey", "-in", &key, "-pubout"]);
    let (_, from_cert) = openssl(&["x509", "-in", &leaf, "-noout", "-pubkey"]);
    assert_eq!(
        from_key, from_cert,
        "the private key belongs to the certificate"
    );
    assert!(
        issued
            .private_key_pem
            .starts_with(concat!("-----BEGIN ", "PRIVATE KEY-----\n"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn leaf_key_types_keep_the_atlas_profile_under_rsa_and_ecdsa_cas() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let dir = tempfile::tempdir().unwrap();

    // An RSA-4096 CA (the default) signs every leaf type with sha256WithRSAEncryption.
    let rsa_group = clients
        .create_project_with_ca("rsa-ca", KeyType::Unspecified)
        .await;
    clients.create_managed_user(&rsa_group, "rsa-user").await;
    // The CA is created with the project's first certificate (a read does not create it).
    issue(&clients, &rsa_group, "rsa-user", KeyType::EcdsaP256)
        .await
        .unwrap();
    let ca_pem = clients.project_ca_pem(&rsa_group).await;
    with_cert(&ca_pem, |ca| {
        assert_eq!(key_of(ca), ("RSA".into(), "4096".into()))
    });
    for (key_type, expected) in [
        (KeyType::Rsa2048, ("RSA", "2048")),
        (KeyType::EcdsaP256, ("EC", SECP256R1)),
        (KeyType::EcdsaP384, ("EC", SECP384R1)),
    ] {
        let issued = issue(&clients, &rsa_group, "rsa-user", key_type)
            .await
            .unwrap();
        with_cert(&issued.certificate_pem, |cert| {
            assert_atlas_profile(cert, "rsa-user");
            assert_eq!(cert.signature_algorithm.algorithm, OID_PKCS1_SHA256WITHRSA);
            assert_eq!(key_of(cert), (expected.0.into(), expected.1.into()));
        });
        assert_verifies(dir.path(), &ca_pem, &issued);
    }

    // ECDSA CAs sign with ecdsa-with-SHA256 (P-256) and ecdsa-with-SHA384 (P-384).
    for (ca_type, curve, signature) in [
        (KeyType::EcdsaP256, SECP256R1, OID_SIG_ECDSA_WITH_SHA256),
        (KeyType::EcdsaP384, SECP384R1, OID_SIG_ECDSA_WITH_SHA384),
    ] {
        let group = clients
            .create_project_with_ca(
                &format!("ca-{}", ca_type.as_str_name()),
                KeyType::Unspecified,
            )
            .await;
        clients.create_managed_user(&group, "ec-user").await;
        let security = set_ca_key_type(&clients, &group, ca_type as i32)
            .await
            .unwrap();
        assert_eq!(security.ca_key_type, ca_type as i32);
        for leaf in [KeyType::EcdsaP256, KeyType::Rsa2048] {
            let issued = issue(&clients, &group, "ec-user", leaf).await.unwrap();
            with_cert(&issued.certificate_pem, |cert| {
                assert_atlas_profile(cert, "ec-user");
                assert_eq!(cert.signature_algorithm.algorithm, signature);
            });
            let ca_pem = clients.project_ca_pem(&group).await;
            with_cert(&ca_pem, |ca| {
                assert_eq!(key_of(ca), ("EC".into(), curve.into()))
            });
            assert_verifies(dir.path(), &ca_pem, &issued);
        }
    }

    // An unknown key type is refused.
    let status = clients
        .certificates()
        .create_user_certificate(CreateUserCertificateRequest {
            group_id: rsa_group.clone(),
            username: "rsa-user".into(),
            months_until_expiration: None,
            key_type: 42,
            csr_pem: None,
        })
        .await
        .unwrap_err();
    assert_error::<()>(Err(status), Code::InvalidArgument, "INVALID_ENUM_VALUE");
}

#[tokio::test(flavor = "multi_thread")]
async fn ca_key_type_is_settable_until_the_ca_exists() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let group = clients
        .create_project_with_ca("settings", KeyType::Unspecified)
        .await;
    let get = || async {
        clients
            .security()
            .get_user_security(GetUserSecurityRequest {
                group_id: group.clone(),
            })
            .await
            .unwrap()
            .into_inner()
    };
    assert_eq!(
        get().await.ca_key_type,
        KeyType::Rsa4096 as i32,
        "the default"
    );

    // Changeable, and only to a CA key type.
    set_ca_key_type(&clients, &group, KeyType::EcdsaP256 as i32)
        .await
        .unwrap();
    assert_error(
        set_ca_key_type(&clients, &group, KeyType::Rsa2048 as i32).await,
        Code::InvalidArgument,
        "INVALID_ENUM_VALUE",
    );
    assert_error(
        set_ca_key_type(&clients, &group, 99).await,
        Code::InvalidArgument,
        "INVALID_ENUM_VALUE",
    );
    let security = set_ca_key_type(&clients, &group, KeyType::EcdsaP384 as i32)
        .await
        .unwrap();
    assert_eq!(security.ca_key_type, KeyType::EcdsaP384 as i32);
    assert_eq!(get().await.ca_key_type, KeyType::EcdsaP384 as i32);
    // Setting only the key type leaves the customer CA alone (none here) and is readable back.
    assert_eq!(get().await.customer_x509.unwrap().cas, "");

    // The CA is created with the setting on the first certificate; from then on the setting
    // is fixed.
    clients.create_managed_user(&group, "first").await;
    issue(&clients, &group, "first", KeyType::EcdsaP256)
        .await
        .unwrap();
    let ca_pem = clients.project_ca_pem(&group).await;
    with_cert(&ca_pem, |ca| {
        assert_eq!(key_of(ca), ("EC".into(), SECP384R1.into()));
        assert_eq!(ca.signature_algorithm.algorithm, OID_SIG_ECDSA_WITH_SHA384);
    });
    assert_error(
        set_ca_key_type(&clients, &group, KeyType::Rsa4096 as i32).await,
        Code::FailedPrecondition,
        "CA_KEY_TYPE_IMMUTABLE",
    );
    // Asking for the type it has is a no-op, not an error.
    let security = set_ca_key_type(&clients, &group, KeyType::EcdsaP384 as i32)
        .await
        .unwrap();
    assert_eq!(security.ca_key_type, KeyType::EcdsaP384 as i32);
    // And it survives a restart (the setting and its lock are stored).
    let dir = server.data_dir.clone();
    let key = server.key.clone();
    let temp = server.stop().await;
    let server = TestServer::start_in(&dir, key, |_| {}).await;
    let clients = server.clients().await;
    assert_error(
        set_ca_key_type(&clients, &group, KeyType::EcdsaP256 as i32).await,
        Code::FailedPrecondition,
        "CA_KEY_TYPE_IMMUTABLE",
    );
    drop(server);
    drop(temp);
}

/// Reads `GET /metrics` and returns the value of a series, if present.
async fn metric(server: &TestServer, series: &str) -> Option<u64> {
    let text = reqwest::get(format!("http://{}/metrics", server.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .map(|v| v.trim().parse().unwrap())
}

async fn wait_for_depth(server: &TestServer, series: &str, depth: u64) {
    for _ in 0..600 {
        if metric(server, series).await == Some(depth) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the pool did not reach depth {depth}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_serves_each_key_once_and_shows_its_depth() {
    const P256: &str = "dbcert_key_pool_depth{key_type=\"ECDSA_P256\"}";
    const RSA2048: &str = "dbcert_key_pool_depth{key_type=\"RSA_2048\"}";
    const HITS: &str = "dbcert_key_pool_hits_total{key_type=\"ECDSA_P256\"}";
    let server = TestServer::start_with(|config| {
        config.key_pool = KeyPoolConfig {
            size: 3,
            workers: 1,
            types: vec![DomainKeyType::EcdsaP256, DomainKeyType::Rsa2048],
        };
    })
    .await;
    let clients = server.clients().await;
    let group = clients.create_project("pool").await;
    clients.create_managed_user(&group, "pooled").await;
    wait_for_depth(&server, P256, 3).await;
    wait_for_depth(&server, RSA2048, 3).await;
    assert_eq!(
        metric(&server, "dbcert_key_pool_capacity{key_type=\"ECDSA_P256\"}").await,
        Some(3)
    );
    assert_eq!(
        metric(&server, "dbcert_key_pool_depth{key_type=\"RSA_4096\"}").await,
        None
    );

    // Three from the pool (hits), then more than it held while its only worker is busy: every
    // key is different, and of the type asked for.
    const MISSES: &str = "dbcert_key_pool_misses_total{key_type=\"ECDSA_P256\"}";
    const RSA_HITS: &str = "dbcert_key_pool_hits_total{key_type=\"RSA_2048\"}";
    let mut public_keys = HashSet::new();
    let mut issued_p256 = 0;
    // Each round takes an RSA-2048 key first: the one worker replaces it (an RSA key generation,
    // tens of milliseconds or more) before it can replace an ECDSA key, so the ECDSA keys
    // taken meanwhile empty the pool and the next is generated inline (a miss). Rounds go on
    // until the miss counter shows the inline path ran.
    for round in 0..20 {
        issue(&clients, &group, "pooled", KeyType::Rsa2048)
            .await
            .unwrap();
        for n in 0..4 {
            let issued = issue(&clients, &group, "pooled", KeyType::EcdsaP256)
                .await
                .unwrap();
            issued_p256 += 1;
            with_cert(&issued.certificate_pem, |cert| {
                assert_eq!(key_of(cert), ("EC".into(), SECP256R1.into()));
                assert!(
                    public_keys.insert(cert.public_key().raw.to_vec()),
                    "key reused at {round}/{n}"
                );
            });
        }
        if metric(&server, MISSES).await.unwrap() > 0 {
            break;
        }
    }
    let hits = metric(&server, HITS).await.unwrap();
    let misses = metric(&server, MISSES).await.unwrap();
    assert_eq!(hits + misses, issued_p256);
    assert!(hits >= 3, "the three ready keys were used: {hits} hits");
    assert!(misses >= 1, "no certificate was issued with an inline key");
    // It refills.
    wait_for_depth(&server, P256, 3).await;
    wait_for_depth(&server, RSA2048, 3).await;
    let rsa_hits = metric(&server, RSA_HITS).await.unwrap();
    let issued = issue(&clients, &group, "pooled", KeyType::Rsa2048)
        .await
        .unwrap();
    with_cert(&issued.certificate_pem, |cert| {
        assert_eq!(key_of(cert), ("RSA".into(), "2048".into()))
    });
    assert_eq!(metric(&server, RSA_HITS).await, Some(rsa_hits + 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_of_size_zero_is_disabled() {
    let server = TestServer::start_with(|config| {
        config.key_pool = KeyPoolConfig {
            size: 0,
            workers: 2,
            types: vec![DomainKeyType::EcdsaP256],
        };
    })
    .await;
    let clients = server.clients().await;
    let group = clients.create_project("no-pool").await;
    clients.create_managed_user(&group, "u").await;
    issue(&clients, &group, "u", KeyType::EcdsaP256)
        .await
        .unwrap();
    assert_eq!(
        metric(&server, "dbcert_key_pool_depth{key_type=\"ECDSA_P256\"}").await,
        None,
        "no pool, no depth series"
    );
}
