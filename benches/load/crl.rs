//! The CRL phase of the benchmark (issue 11 item 2): the time to sign a CRL of 100,000 revoked
//! entries with a project CA of each key type, with dbcert's own signing code
//! (`ProjectCa::sign_crl`, the code a replica runs when a CRL is due or after a revocation).
//! `cargo bench --bench load -- --only-crl [--crl-entries N]`.

use std::time::Instant;

use dbcert::domain::{CaSubject, KeyType, ProjectCa, ProjectId, RevokedSerial};
use time::OffsetDateTime;

/// Signs a CRL of `entries` revoked certificates `runs` times per CA key type and prints the
/// median time and the CRL's size.
pub fn sign_crls(entries: usize, runs: usize) {
    println!("## CRL signing: {entries} revoked entries, {runs} runs per CA key type");
    let now = OffsetDateTime::now_utc();
    let reasons = [
        None,
        Some("keyCompromise"),
        Some("cessationOfOperation"),
        Some("superseded"),
    ];
    let revoked: Vec<RevokedSerial> = (0..entries)
        .map(|i| RevokedSerial {
            serial: dbcert::domain::random_serial(),
            revoked_at: now - time::Duration::seconds(i as i64),
            reason: reasons[i % reasons.len()].map(str::to_owned),
        })
        .collect();
    let project = ProjectId::parse("0123456789abcdef01234567").unwrap();
    let subject = CaSubject {
        organization: "dbcert".into(),
        organizational_unit: "bench".into(),
    };
    for key_type in [KeyType::Rsa4096, KeyType::EcdsaP256, KeyType::EcdsaP384] {
        let ca = ProjectCa::generate(&project, &subject, key_type, 1, now)
            .unwrap()
            .ca;
        let mut times = Vec::with_capacity(runs);
        let mut size = 0;
        for number in 1..=runs as u64 {
            let started = Instant::now();
            let der = ca
                .sign_crl(number, now, now + time::Duration::days(7), &revoked)
                .unwrap();
            times.push(started.elapsed().as_secs_f64());
            size = der.len();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "crl {:<10} CA: {:>7.1} ms to sign (median of {runs}), {:.1} MiB DER",
            key_type.as_str(),
            times[times.len() / 2] * 1000.0,
            size as f64 / (1024.0 * 1024.0)
        );
    }
    println!();
}
