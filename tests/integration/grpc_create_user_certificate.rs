//! The whole flow over gRPC with the generated clients, and the issued certificate checked
//! independently of the code that made it: x509-parser for every field of the Atlas profile,
//! `openssl verify -purpose sslclient` against the fetched project CA, openssl for the key.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a panic fails the test

use dbcert::proto::v1::{KeyType, ListUserCertificatesRequest};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_PKCS1_SHA256WITHRSA, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
};
use x509_parser::pem::parse_x509_pem;
use x509_parser::public_key::PublicKey;

use crate::harness::{TestServer, openssl, write};

/// Adds calendar months the way a person counts them (independent of the server's code).
fn plus_months(t: OffsetDateTime, months: u8) -> OffsetDateTime {
    let total = t.month() as u8 - 1 + months;
    let year = t.year() + i32::from(total / 12);
    let month = time::Month::try_from(total % 12 + 1).unwrap();
    let last_day = time::util::days_in_month(month, year);
    t.replace_date(time::Date::from_calendar_date(year, month, t.day().min(last_day)).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn issues_an_atlas_profile_certificate_that_verifies_independently() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    // The product's default CA (RSA-4096, as Atlas): its profile is what this test checks.
    let group_id = clients
        .create_project_with_ca("flow", KeyType::Unspecified)
        .await;
    clients.create_managed_user(&group_id, "user389").await;

    let before = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let issued = clients
        .issue(&group_id, "user389", Some(12))
        .await
        .expect("issue");
    let after = OffsetDateTime::now_utc();

    // --- PEM layout: LF, 64-character lines, one trailing newline, PKCS#8 key ---
    let bundle = format!("{}{}", issued.certificate_pem, issued.private_key_pem);
    assert!(
        issued
            .certificate_pem
            .starts_with("-----BEGIN CERTIFICATE-----\n")
    );
    assert!(
        issued
            .certificate_pem
            .ends_with("-----END CERTIFICATE-----\n")
    );
    assert!(
        issued
            .private_key_pem
            .starts_with(concat!("-----BEGIN ", "PRIVATE KEY-----\n"))
    );
    assert!(
        issued
            .private_key_pem
            .ends_with("-----END PRIVATE KEY-----\n")
    );
    assert!(!bundle.contains('\r'));
    assert!(!bundle.contains("\n\n"));
    for line in bundle.lines().filter(|l| !l.starts_with("-----")) {
        assert!(line.len() <= 64, "line longer than 64: {line}");
    }

    // --- every field of the profile, parsed by x509-parser ---
    let (_, pem) = parse_x509_pem(issued.certificate_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    assert_eq!(cert.version().0, 2, "X.509 v3");
    assert_eq!(cert.signature_algorithm.algorithm, OID_PKCS1_SHA256WITHRSA);
    assert_eq!(cert.subject().to_string(), "CN=user389");
    assert_eq!(issued.subject, "CN=user389");
    assert_eq!(
        cert.issuer().to_string(),
        format!("CN={group_id}, OU=Managed X.509, O=dbcert")
    );
    let serial = cert.raw_serial();
    assert!(
        serial.len() <= 8 && serial[0] & 0x80 == 0,
        "positive 63-bit serial: {serial:x?}"
    );
    assert_eq!(
        u64::try_from(&cert.serial).unwrap() as i64,
        issued.serial_number
    );
    assert!(issued.serial_number > 0);
    match cert.public_key().parsed().unwrap() {
        PublicKey::RSA(rsa) => {
            assert_eq!(rsa.key_size(), 4096);
            assert_eq!(rsa.try_exponent().unwrap(), 65537);
        }
        other => panic!("not RSA: {other:?}"),
    }
    let extensions = cert.extensions();
    assert_eq!(extensions.len(), 2, "only Key Usage and Extended Key Usage");
    for ext in extensions {
        assert!(ext.critical, "{} must be critical", ext.oid);
        match ext.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => {
                assert_eq!(ext.oid, OID_X509_EXT_KEY_USAGE);
                assert!(ku.digital_signature());
                assert_eq!(ku.flags, 1, "digitalSignature only");
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert_eq!(ext.oid, OID_X509_EXT_EXTENDED_KEY_USAGE);
                assert!(eku.client_auth);
                assert!(!eku.server_auth && !eku.any && !eku.code_signing && !eku.email_protection);
                assert!(eku.other.is_empty());
            }
            other => panic!("unexpected extension {other:?}"),
        }
    }
    // notBefore = issue time - 1 hour; notAfter = issue time + 12 calendar months.
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    assert!(not_before >= before - Duration::hours(1) && not_before <= after - Duration::hours(1));
    assert_eq!(not_after, plus_months(not_before + Duration::hours(1), 12));
    assert_eq!(
        issued.not_before.as_ref().unwrap().seconds,
        not_before.unix_timestamp()
    );
    assert_eq!(
        issued.not_after.as_ref().unwrap().seconds,
        not_after.unix_timestamp()
    );

    // --- openssl: chain, purpose, key match, encodings ---
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = clients.project_ca_pem(&group_id).await;
    let ca = write(dir.path(), "ca.pem", &ca_pem);
    let cert_path = write(dir.path(), "cert.pem", &issued.certificate_pem);
    let key_path = write(dir.path(), "key.pem", &issued.private_key_pem);
    let bundle_path = write(dir.path(), "bundle.pem", &bundle);
    let (ok, out) = openssl(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        &ca,
        &bundle_path,
    ]);
    assert!(ok, "openssl verify: {out}");
    let (ok, out) = openssl(&[
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        &ca,
        &cert_path,
    ]);
    assert!(
        !ok,
        "a client certificate must not verify for TLS servers: {out}"
    );
    let (_, cert_pub) = openssl(&["x509", "-in", &cert_path, "-noout", "-pubkey"]);
    let (ok, key_pub) = openssl(&["pkey", "-in", &key_path, "-pubout"]);
    assert!(ok, "{key_pub}");
    assert_eq!(cert_pub, key_pub, "the key matches the certificate");
    let (ok, key_text) = openssl(&["pkey", "-in", &key_path, "-noout", "-text"]);
    assert!(ok && key_text.contains("4096 bit"), "{key_text}");
    let (_, asn1) = openssl(&["asn1parse", "-in", &cert_path]);
    assert!(asn1.contains("UTCTIME"), "dates as UTCTime: {asn1}");
    assert!(
        asn1.contains("PRINTABLESTRING") && asn1.contains(":user389"),
        "{asn1}"
    );

    // The CA: CN=<groupId>, a CA, and it signed the certificate.
    let (_, ca_pem_parsed) = parse_x509_pem(ca_pem.as_bytes()).unwrap();
    let ca_cert = ca_pem_parsed.parse_x509().unwrap();
    assert!(ca_cert.is_ca());
    assert_eq!(ca_cert.subject(), cert.issuer());
    match ca_cert.public_key().parsed().unwrap() {
        PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 4096),
        other => panic!("CA not RSA: {other:?}"),
    }

    // --- the record: listed with the same serial and window ---
    let listed = clients
        .certificates()
        .list_user_certificates(ListUserCertificatesRequest {
            group_id: group_id.clone(),
            username: "user389".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_count, Some(1));
    assert_eq!(listed.results.len(), 1);
    let record = &listed.results[0];
    assert_eq!(record.serial_number, issued.serial_number);
    assert_eq!(record.subject, "CN=user389");
    assert_eq!(record.group_id, group_id);
    assert_eq!(
        record.created_at.as_ref().unwrap().seconds,
        not_before.unix_timestamp()
    );
    assert_eq!(
        record.not_after.as_ref().unwrap().seconds,
        not_after.unix_timestamp()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn default_validity_is_three_months_and_names_that_are_not_printable_use_utf8() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let group_id = clients.create_project("defaults").await;
    clients
        .create_managed_user(&group_id, "app@example.com")
        .await;
    let issued = clients
        .issue(&group_id, "app@example.com", None)
        .await
        .unwrap();
    let (_, pem) = parse_x509_pem(issued.certificate_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let not_before = cert.validity().not_before.to_datetime();
    assert_eq!(
        cert.validity().not_after.to_datetime(),
        plus_months(not_before + Duration::hours(1), 3)
    );
    assert_eq!(cert.subject().to_string(), "CN=app@example.com");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "c.pem", &issued.certificate_pem);
    let (_, asn1) = openssl(&["asn1parse", "-in", &path]);
    assert!(
        asn1.contains("UTF8STRING") && asn1.contains(":app@example.com"),
        "{asn1}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_pages_oldest_first_and_empties_when_the_user_is_deleted() {
    let server = TestServer::start().await;
    let clients = server.clients().await;
    let group_id = clients.create_project("paging").await;
    clients.create_managed_user(&group_id, "pager").await;
    let mut serials = Vec::new();
    for months in [1, 2, 3] {
        serials.push(
            clients
                .issue(&group_id, "pager", Some(months))
                .await
                .unwrap()
                .serial_number,
        );
    }
    let page = |num, items, count| ListUserCertificatesRequest {
        group_id: group_id.clone(),
        username: "pager".into(),
        page_num: num,
        items_per_page: items,
        include_count: Some(count),
    };
    let first = clients
        .certificates()
        .list_user_certificates(page(1, 2, true))
        .await
        .unwrap()
        .into_inner();
    let second = clients
        .certificates()
        .list_user_certificates(page(2, 2, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.total_count, Some(3));
    assert!(first.has_next_page);
    assert_eq!(second.total_count, None);
    assert!(!second.has_next_page);
    let listed: Vec<i64> = first
        .results
        .iter()
        .chain(&second.results)
        .map(|c| c.serial_number)
        .collect();
    let mut expected = serials.clone();
    // Oldest first: by notBefore, then serial (all three share the same second or follow it).
    let created: Vec<i64> = first
        .results
        .iter()
        .chain(&second.results)
        .map(|c| c.created_at.as_ref().unwrap().seconds)
        .collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]));
    expected.sort_unstable();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected, "every certificate listed once");

    // Deleting the user revokes its certificates (issue 11): they leave the Atlas list.
    clients
        .users()
        .delete_database_user(dbcert::proto::v1::DeleteDatabaseUserRequest {
            group_id: group_id.clone(),
            database_name: "$external".into(),
            username: "pager".into(),
        })
        .await
        .unwrap();
    let after = clients
        .certificates()
        .list_user_certificates(page(1, 2, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.total_count, Some(0));
    assert!(after.results.is_empty());
}
