//! Failed authentications for a public key that exists and for one that does not, timed
//! (issue 13, item 7). Both must take the same path (the same cached key lookup, the same HA1
//! comparison, against a dummy for the unknown key), so a prober cannot tell from the time of a
//! refusal whether a key exists.
//!
//! The server runs with throttling off (`--auth-failure-burst 0`), so every attempt is
//! verified. One client sends wrong credentials at concurrency 1, alternating the existing key
//! (with a wrong secret) and an unknown key of the same shape, and swapping which goes first
//! each round so drift hits both alike; the first attempts are a warm-up (they also spend the
//! per-address audit budget, so the measured ones write nothing to the store). Latencies are
//! taken by the client around each request on a kept-alive connection.

use std::time::{Duration, Instant};

use base64::Engine as _;
use dbcert::proto::v1::{
    ListOrganizationsRequest, organization_service_client::OrganizationServiceClient,
};

use super::{Server, digest_authorization, digest_param, percentile};

/// Unmeasured attempts of each kind first.
const WARMUP: usize = 200;

/// The latencies of one kind of failed authentication.
pub struct Timing {
    /// `REST` (Digest) or `gRPC` (Basic).
    pub transport: &'static str,
    /// `known` (an existing key, a wrong secret) or `unknown` (no such key).
    pub key: &'static str,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 90th percentile, microseconds.
    pub p90_us: f64,
    /// Measured attempts.
    pub n: usize,
}

/// Times `samples` failed authentications of each kind over both transports.
pub async fn measure(server: &Server, samples: usize) -> Vec<Timing> {
    let known = (server.key.0.clone(), uuid::Uuid::new_v4().to_string());
    let unknown = loop {
        let public: String = (0..8)
            .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
            .collect();
        if public != server.key.0 {
            break (public, uuid::Uuid::new_v4().to_string());
        }
    };
    let mut timings = Vec::new();
    let (known_rest, unknown_rest) = rest(server, &known, &unknown, samples).await;
    timings.push(timing("REST", "known", known_rest));
    timings.push(timing("REST", "unknown", unknown_rest));
    let (known_grpc, unknown_grpc) = grpc(server, &known, &unknown, samples).await;
    timings.push(timing("gRPC", "known", known_grpc));
    timings.push(timing("gRPC", "unknown", unknown_grpc));
    timings
}

/// Prints the table and the difference of the medians per transport.
pub fn print(timings: &[Timing]) {
    println!("| transport | key     |   p50 µs |   p90 µs |      n |\n|---|---|---|---|---|");
    for t in timings {
        println!(
            "| {:<9} | {:<7} | {:>8.1} | {:>8.1} | {:>6} |",
            t.transport, t.key, t.p50_us, t.p90_us, t.n
        );
    }
    for line in summary(timings) {
        println!("{line}");
    }
}

/// One line per transport: the unknown key's median minus the known key's.
pub fn summary(timings: &[Timing]) -> Vec<String> {
    ["REST", "gRPC"]
        .iter()
        .filter_map(|transport| {
            let p50 = |key| {
                timings
                    .iter()
                    .find(|t| t.transport == *transport && t.key == key)
                    .map(|t| t.p50_us)
            };
            let (known, unknown) = (p50("known")?, p50("unknown")?);
            Some(format!(
                "failed authentication {transport}: p50 known key {known:.1} µs, unknown key \
                 {unknown:.1} µs, difference {:+.1} µs ({:+.1}%)",
                unknown - known,
                (unknown - known) / known * 100.0
            ))
        })
        .collect()
}

fn timing(transport: &'static str, key: &'static str, mut micros: Vec<f64>) -> Timing {
    micros.sort_by(f64::total_cmp);
    Timing {
        transport,
        key,
        p50_us: percentile(&micros, 0.5),
        p90_us: percentile(&micros, 0.9),
        n: micros.len(),
    }
}

/// Alternates the two keys, `WARMUP + samples` rounds, first one then the other first; returns
/// the measured latencies (µs) of each.
async fn alternate<F, Fut>(samples: usize, mut attempt: F) -> (Vec<f64>, Vec<f64>)
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = Duration>,
{
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..WARMUP + samples {
        for is_known in [round % 2 == 0, round % 2 != 0] {
            let elapsed = attempt(is_known).await;
            if round >= WARMUP {
                let micros = elapsed.as_secs_f64() * 1e6;
                if is_known {
                    known.push(micros);
                } else {
                    unknown.push(micros);
                }
            }
        }
    }
    (known, unknown)
}

async fn rest(
    server: &Server,
    known: &(String, String),
    unknown: &(String, String),
    samples: usize,
) -> (Vec<f64>, Vec<f64>) {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let url = format!("{}/api/atlas/v1.0/orgs", server.http);
    let uri = "/api/atlas/v1.0/orgs";
    let challenge = http.get(&url).send().await.unwrap();
    let nonce = digest_param(
        challenge.headers()["www-authenticate"].to_str().unwrap(),
        "nonce",
    )
    .unwrap();
    // A wrong response is refused before its nonce is recorded: one nonce serves every try
    // (the phase is far shorter than a nonce's five minutes).
    let mut nc = 0;
    alternate(samples, |is_known| {
        nc += 1;
        let key = if is_known { known } else { unknown };
        let authorization = digest_authorization(key, "GET", uri, &nonce, nc);
        let request = http.get(&url).header("authorization", authorization);
        async move {
            let started = Instant::now();
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let _ = response.bytes().await.unwrap();
            let elapsed = started.elapsed();
            assert_eq!(
                status, 401,
                "a wrong credential must be refused (throttling off)"
            );
            elapsed
        }
    })
    .await
}

async fn grpc(
    server: &Server,
    known: &(String, String),
    unknown: &(String, String),
    samples: usize,
) -> (Vec<f64>, Vec<f64>) {
    let client = OrganizationServiceClient::new(server.channel().await);
    let basic = |key: &(String, String)| -> tonic::metadata::MetadataValue<_> {
        let pair = format!("{}:{}", key.0, key.1);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
        .parse()
        .unwrap()
    };
    let (known, unknown) = (basic(known), basic(unknown));
    alternate(samples, |is_known| {
        let mut request = tonic::Request::new(ListOrganizationsRequest::default());
        let value = if is_known { &known } else { &unknown };
        request
            .metadata_mut()
            .insert("authorization", value.clone());
        let mut client = client.clone();
        async move {
            let started = Instant::now();
            let status = client.list_organizations(request).await.unwrap_err();
            let elapsed = started.elapsed();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
            elapsed
        }
    })
    .await
}
