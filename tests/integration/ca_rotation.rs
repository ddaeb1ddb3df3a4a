//! Project CA rotation, checked with openssl: the rotation window (a certificate of the old CA
//! and one of the new both verify against the trust bundle, each against its own CA only), the
//! old CA leaving the bundle once its last certificate is revoked, REST and gRPC answers and
//! errors, the audit event, a restart, and master key rotation over every CA generation.
//! The PostgreSQL replicas case is `ca_rotation_replicas.rs`.

use dbcert::domain::{Keyring, MasterKey, ProjectId, ca_key_context};
use dbcert::proto::v1::{
    DeleteDatabaseUserRequest, GetProjectCaCertificateRequest, GetProjectCaCertificateResponse,
    KeyType, RotateProjectCaRequest,
};
use tonic::Code;

use crate::audit_trail::{org_id, project_key};
use crate::harness::atlas::Atlas;
use crate::harness::{Clients, Key, TestServer, assert_error, openssl, write};
use crate::master_key_rotation::{key_file, keyring, rotate};

/// Whether `cert_pem` verifies (as a TLS client certificate) against the CAs in `cas_pem`.
pub(crate) fn verifies(cas_pem: &str, cert_pem: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let cas = write(dir.path(), "cas.pem", cas_pem);
    let cert = write(dir.path(), "cert.pem", cert_pem);
    openssl(&["verify", "-purpose", "sslclient", "-CAfile", &cas, &cert])
}

#[track_caller]
pub(crate) fn assert_verifies(cas_pem: &str, cert_pem: &str) {
    let (ok, out) = verifies(cas_pem, cert_pem);
    assert!(ok, "expected to verify: {out}");
}

#[track_caller]
pub(crate) fn assert_refused(cas_pem: &str, cert_pem: &str) {
    let (ok, out) = verifies(cas_pem, cert_pem);
    assert!(!ok, "expected not to verify: {out}");
}

/// The number of certificates in a PEM bundle.
pub(crate) fn pem_count(pem: &str) -> usize {
    pem.matches("-----BEGIN CERTIFICATE-----").count()
}

/// `openssl x509 -noout <args>` of a PEM certificate.
fn x509(pem: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "ca.pem", pem);
    let mut all = vec!["x509", "-noout", "-in", &file];
    all.extend_from_slice(args);
    let (ok, out) = openssl(&all);
    assert!(ok, "{out}");
    out
}

pub(crate) async fn ca(clients: &Clients, group_id: &str) -> GetProjectCaCertificateResponse {
    clients
        .certificates()
        .get_project_ca_certificate(GetProjectCaCertificateRequest {
            group_id: group_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

pub(crate) fn generations(ca: &GetProjectCaCertificateResponse) -> Vec<u32> {
    ca.trust_bundle.iter().map(|c| c.generation).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_window_is_checked_by_openssl() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let atlas = Atlas::new(&server);
    let group_id = clients.create_project("rotating").await;
    let ca_path = format!("/api/dbcert/v1/groups/{group_id}/ca");
    let rotate_path = format!("/api/dbcert/v1/groups/{group_id}/ca/rotate");
    clients.create_managed_user(&group_id, "alice").await;
    clients.create_managed_user(&group_id, "bob").await;

    // No CA before the first certificate: neither read nor rotated (nor created by either).
    atlas
        .get(&ca_path)
        .await
        .assert_error(404, "PROJECT_CA_NOT_FOUND");
    atlas
        .post(&rotate_path, "{}")
        .await
        .assert_error(404, "PROJECT_CA_NOT_FOUND");

    let old = clients.issue(&group_id, "alice", Some(1)).await.unwrap();
    let first = ca(&clients, &group_id).await;
    assert_eq!((first.generation, generations(&first)), (1, vec![1]));
    assert_eq!(first.bundle_pem, first.certificate_pem);
    let resp = atlas.get(&ca_path).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.body, first.certificate_pem);

    // Bad bodies change nothing.
    atlas
        .post(&rotate_path, r#"{"caKeyType":"RSA_2048"}"#)
        .await
        .assert_error(400, "INVALID_ENUM_VALUE");
    atlas
        .post(&rotate_path, r#"{"keyType":"RSA_4096"}"#)
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    // A read-only key reads the bundle but may not rotate.
    let reader = project_key(
        &clients,
        &org_id(&clients).await,
        &group_id,
        "GROUP_READ_ONLY",
    )
    .await;
    let as_reader = Atlas::with_key(&server, reader.clone());
    assert_eq!(as_reader.get(&ca_path).await.body, first.certificate_pem);
    as_reader
        .post(&rotate_path, "{}")
        .await
        .assert_error(401, "USER_UNAUTHORIZED");
    assert_error(
        clients
            .as_key(&reader)
            .certificates()
            .rotate_project_ca(RotateProjectCaRequest {
                group_id: group_id.clone(),
                ca_key_type: KeyType::Unspecified as i32,
            })
            .await,
        Code::PermissionDenied,
        "USER_UNAUTHORIZED",
    );
    assert_eq!(ca(&clients, &group_id).await, first, "nothing changed");

    // The rotation: a P-384 CA issues from now on.
    let resp = atlas
        .post(&rotate_path, r#"{"caKeyType":"ECDSA_P384"}"#)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let rotated = resp.json();
    assert_eq!(rotated["generation"], 2);
    let second_pem = rotated["certificatePem"].as_str().unwrap().to_owned();
    assert!(rotated["notAfter"].as_str().unwrap().ends_with('Z'));
    assert!(x509(&second_pem, &["-text"]).contains("P-384"));
    // Its subject is the first one's plus dnQualifier=2, so OpenSSL (and mongod) pick a
    // certificate's CA by its issuer name.
    let first_subject = x509(&first.certificate_pem, &["-subject"]);
    let second_subject = x509(&second_pem, &["-subject"]);
    assert!(second_subject.contains("dnQualifier"), "{second_subject}");
    assert!(
        second_subject.starts_with(first_subject.trim_end()),
        "{first_subject} / {second_subject}"
    );
    let new = clients.issue(&group_id, "bob", Some(1)).await.unwrap();

    // The window: both verify against the bundle, each against its own CA only.
    let bundle = atlas.get(&ca_path).await.body;
    assert_eq!(pem_count(&bundle), 2, "{bundle}");
    assert!(bundle.starts_with(&second_pem), "the issuing CA first");
    assert_verifies(&bundle, &old.certificate_pem);
    assert_verifies(&bundle, &new.certificate_pem);
    assert_verifies(&second_pem, &new.certificate_pem);
    assert_refused(&first.certificate_pem, &new.certificate_pem);
    assert_refused(&second_pem, &old.certificate_pem);
    let second = ca(&clients, &group_id).await;
    assert_eq!((second.generation, generations(&second)), (2, vec![2, 1]));
    assert_eq!(second.certificate_pem, second_pem);
    assert_eq!(second.bundle_pem, bundle);

    // A rotation without a key type keeps the current one (P-384, set by the last rotation).
    // Generation 2 stays in the bundle for bob's certificate, and 1 for alice's.
    let resp = atlas.post(&rotate_path, "").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let third_pem = resp.json()["certificatePem"].as_str().unwrap().to_owned();
    assert!(x509(&third_pem, &["-text"]).contains("P-384"));
    assert_eq!(generations(&ca(&clients, &group_id).await), vec![3, 2, 1]);

    // Deleting alice revokes her certificate, the last of generation 1: the first CA leaves
    // the bundle, and her certificate no longer verifies against it.
    clients
        .users()
        .delete_database_user(DeleteDatabaseUserRequest {
            group_id: group_id.clone(),
            database_name: "$external".into(),
            username: "alice".into(),
        })
        .await
        .unwrap();
    let after = ca(&clients, &group_id).await;
    assert_eq!(generations(&after), vec![3, 2]);
    let bundle = atlas.get(&ca_path).await.body;
    assert_eq!(bundle, after.bundle_pem);
    assert_refused(&bundle, &old.certificate_pem);
    assert_verifies(&bundle, &new.certificate_pem);

    // Each rotation is in the audit trail under dbcert's own name.
    let events = atlas
        .get(&format!(
            "/api/atlas/v1.0/groups/{group_id}/events?eventType=PROJECT_CA_ROTATED"
        ))
        .await;
    assert_eq!(events.status, 200, "{}", events.body);
    let events = events.json();
    assert_eq!(events["totalCount"], 2, "{events}");
    assert_eq!(
        events["results"][0]["publicKey"],
        server.key.public.as_str()
    );
    server.stop().await;
}

/// A rotation outlives a restart, and master key rotation re-seals every generation's key:
/// afterwards the new master key alone opens each of them.
#[tokio::test(flavor = "multi_thread")]
async fn rotation_survives_restart_and_master_key_rotation() {
    let temp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let url = dbcert::storage::SqliteStore::url_in(temp.path());
    let (old_key, new_key) = (key_file(keys.path(), "old"), key_file(keys.path(), "new"));
    let key = Key::random();

    let server = TestServer::start_in(temp.path(), key.clone(), keyring(&url, &old_key, &[])).await;
    let clients = server.clients().await;
    let group_id = clients.create_project("restart").await;
    clients.create_managed_user(&group_id, "u").await;
    let before = clients.issue(&group_id, "u", Some(1)).await.unwrap();
    let first = ca(&clients, &group_id).await.certificate_pem;
    let second = clients
        .certificates()
        .rotate_project_ca(RotateProjectCaRequest {
            group_id: group_id.clone(),
            ca_key_type: KeyType::Unspecified as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .ca
        .unwrap();
    assert_eq!(second.generation, 2);
    server.stop().await;

    // After a restart the second CA issues, and both stay trusted.
    let server = TestServer::start_in(
        temp.path(),
        key.clone(),
        keyring(&url, &new_key, &[&old_key]),
    )
    .await;
    let clients = server.clients().await;
    let after = clients.issue(&group_id, "u", Some(1)).await.unwrap();
    assert_verifies(&second.certificate_pem, &after.certificate_pem);
    assert_refused(&first, &after.certificate_pem);
    let bundle = ca(&clients, &group_id).await;
    assert_eq!(generations(&bundle), vec![2, 1]);
    assert_verifies(&bundle.bundle_pem, &before.certificate_pem);

    // Both generations' keys (and the check value) are re-sealed.
    let (ok, out) = rotate(&url, &old_key, &new_key);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "resealed=2 already_current=0 unopenable=0 changed_concurrently=0 check_resealed=true"
        ),
        "{out}"
    );
    server.stop().await;

    // The new key alone: the issuing CA signs, and every generation's sealed key opens.
    let server = TestServer::start_in(temp.path(), key.clone(), keyring(&url, &new_key, &[])).await;
    let clients = server.clients().await;
    let issued = clients.issue(&group_id, "u", Some(1)).await.unwrap();
    assert_verifies(&second.certificate_pem, &issued.certificate_pem);
    server.stop().await;
    let store = dbcert::storage::open(&url).await.unwrap();
    let new_only = Keyring::from(
        MasterKey::from_base64(std::fs::read_to_string(&new_key).unwrap().trim()).unwrap(),
    );
    let project_id = ProjectId::parse(&group_id).unwrap();
    let cas = store.project_cas(&project_id).await.unwrap();
    assert_eq!(cas.len(), 2);
    for stored in cas {
        let sealed = stored.sealed_key.unwrap();
        new_only
            .open(&ca_key_context(&project_id, stored.generation), &sealed)
            .unwrap_or_else(|e| panic!("generation {}: {e}", stored.generation));
    }
}
