//! Authentication under attack (issue 13, items 1, 4 and 7), against the real binary, with
//! clients bound to several loopback source addresses (127.0.0.2, 127.0.0.3, …; Linux routes
//! all of 127.0.0.0/8 to the loopback interface):
//!
//! - nobody locks out a key they do not hold: hundreds of failures naming a key from other
//!   addresses get those addresses 429, while the key's owner succeeds every time, over REST
//!   and gRPC; a key failing from many addresses is reported by a warning;
//! - a Digest answer with a forged nonce charges the address only, not the key it names;
//! - failed authentications stay visible under flooding: the flood spends its own addresses'
//!   budgets, and a wrong attempt from another address still leaves an audit event and log
//!   lines naming the address and the key;
//! - a key that exists and one that does not get the same answers.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use dbcert::proto::v1::{ListOrganizationEventsRequest, ListOrganizationsRequest};
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Endpoint;
use tonic_types::StatusExt as _;

use crate::harness::atlas::{Alg, Atlas, Resp, authorization};
use crate::harness::binary::{START_TIMEOUT, Spawned, serve_command};
use crate::harness::{Clients, Key, TestServer, error_code};

const TARGET: &str = "/api/atlas/v1.0/orgs";

/// A client bound to one source address: Atlas (REST, Digest) and gRPC (Basic) as `key`.
struct Peer {
    ip: IpAddr,
    atlas: Atlas,
    grpc: Clients,
}

impl Peer {
    async fn new(server: &Spawned, ip: &str, key: &Key) -> Self {
        let ip: IpAddr = ip.parse().unwrap();
        let http = reqwest::Client::builder()
            .local_address(ip)
            .build()
            .unwrap();
        let channel = Endpoint::from_shared(format!("http://{}", server.grpc_addr))
            .unwrap()
            .local_address(Some(ip))
            .connect()
            .await
            .unwrap();
        Self {
            ip,
            atlas: Atlas {
                http,
                base: format!("http://{}", server.http_addr),
                key: key.clone(),
                alg: Alg::Md5,
            },
            grpc: Clients::new(channel, key.clone()),
        }
    }

    /// A REST call with a fresh nonce (the credential-less first leg is no failure).
    async fn rest(&self) -> u16 {
        self.atlas.get(TARGET).await.status
    }

    /// A REST call with this Authorization value.
    async fn rest_with(&self, authorization: &str) -> Resp {
        self.atlas
            .raw("GET", TARGET, None, &[("authorization", authorization)])
            .await
    }

    /// A gRPC call with Basic credentials.
    async fn grpc(&self) -> Code {
        match self
            .grpc
            .orgs()
            .list_organizations(ListOrganizationsRequest::default())
            .await
        {
            Ok(_) => Code::Ok,
            Err(status) => {
                if status.code() == Code::ResourceExhausted {
                    assert_eq!(error_code(&status), "RATE_LIMITED");
                }
                status.code()
            }
        }
    }

    /// A Digest response computed for `key` with a nonce the server never issued.
    fn forged_nonce_authorization(&self, key: &Key) -> String {
        let forged = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>());
        authorization(key, Alg::Md5, "GET", TARGET, &forged, 1, "0a4f113b")
    }
}

/// The real binary with a bootstrap key and these extra flags.
async fn start(dir: &tempfile::TempDir, flags: &[&str]) -> (Spawned, Key) {
    let key = Key::random();
    let mut command: Command = serve_command(&dir.path().join("data"));
    command.args(flags).env(
        "DBCERT_BOOTSTRAP_API_KEY",
        format!("{}:{}", key.public, key.private),
    );
    let server = Spawned::start(command).await;
    server.wait_serving().await;
    (server, key)
}

fn wrong(key: &Key) -> Key {
    Key {
        public: key.public.clone(),
        private: uuid::Uuid::new_v4().to_string(),
    }
}

/// Waits (bounded) for a log line holding every needle; returns the matching lines.
async fn log_lines(server: &Spawned, needles: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let lines: Vec<String> = server
            .log()
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_owned)
            .collect();
        if !lines.is_empty() || Instant::now() >= deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_from_other_addresses_never_lock_out_the_key_owner() {
    let dir = tempfile::tempdir().unwrap();
    // Defaults (10 failures per address, 5 per key and address) but no refill during the test,
    // and the guessing warning after 12 failures naming one key.
    let (server, key) = start(
        &dir,
        &[
            "--auth-failure-refill",
            "60s",
            "--auth-failure-key-alert",
            "12",
        ],
    )
    .await;
    let owner = Peer::new(&server, "127.0.0.1", &key).await;
    let mut attackers = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        attackers.push(Peer::new(&server, ip, &wrong(&key)).await);
    }
    let bogus = format!(r#"Digest username="{}", nonce="x""#, key.public);
    let mut answers: Vec<Vec<String>> = vec![Vec::new(); attackers.len()];
    for round in 0..40 {
        for (attacker, answers) in attackers.iter().zip(&mut answers) {
            // A bogus header naming the key, a wrong response to a fresh nonce, a wrong Basic.
            answers.push(attacker.rest_with(&bogus).await.status.to_string());
            answers.push(attacker.rest().await.to_string());
            answers.push(format!("{:?}", attacker.grpc().await));
        }
        assert_eq!(
            owner.rest().await,
            200,
            "the owner over REST, round {round}"
        );
        assert_eq!(
            owner.grpc().await,
            Code::Ok,
            "the owner over gRPC, round {round}"
        );
    }
    for (attacker, answers) in attackers.iter().zip(&answers) {
        let (throttled, refused): (Vec<&String>, Vec<&String>) = answers
            .iter()
            .partition(|a| *a == "429" || *a == "ResourceExhausted");
        assert!(
            refused
                .iter()
                .all(|a| *a == "401" || *a == "Unauthenticated"),
            "{}: {answers:?}",
            attacker.ip
        );
        // At most a burst of failures, then 429 on both transports to the end.
        assert!(refused.len() <= 10, "{}: {answers:?}", attacker.ip);
        assert_eq!(throttled.len(), answers.len() - refused.len());
        assert_eq!(
            &answers[answers.len() - 3..],
            ["429", "429", "ResourceExhausted"],
            "{}",
            attacker.ip
        );
    }
    // The key failing from several addresses was reported, naming it; its owner was served.
    let alerts = log_lines(&server, &["distributed guessing suspected", &key.public]).await;
    assert_eq!(alerts.len(), 1, "{}", server.log());
    // The throttled attackers were noted, by address.
    for attacker in &attackers {
        let noted = log_lines(&server, &["client refused", &format!("{}:", attacker.ip)]).await;
        assert_eq!(noted.len(), 1, "{}: {}", attacker.ip, server.log());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_nonce_charges_the_address_but_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = start(
        &dir,
        &[
            "--auth-failure-burst",
            "30",
            "--auth-failure-key-burst",
            "2",
            "--auth-failure-key-alert",
            "3",
            "--auth-failure-refill",
            "60s",
        ],
    )
    .await;
    let guesser = Peer::new(&server, "127.0.0.2", &wrong(&key)).await;
    let owner_there = Peer::new(&server, "127.0.0.2", &key).await;
    // Ten answers naming the key, each computed with a nonce the server never issued: refused,
    // charged to the address (30) only.
    for _ in 0..10 {
        let resp = guesser
            .rest_with(&guesser.forged_nonce_authorization(&guesser.atlas.key))
            .await;
        assert_eq!(resp.status, 401, "{}", resp.body);
        assert!(resp.header("www-authenticate").ends_with("stale=false"));
    }
    // The key and address (2) were not charged: the key's owner, from the same address, is in.
    assert_eq!(owner_there.rest().await, 200);
    // Wrong responses to fresh nonces are charged to the key and address: after 2, the owner
    // from that address waits too, while the owner elsewhere is served.
    assert_eq!(guesser.rest().await, 401);
    assert_eq!(guesser.rest().await, 401);
    assert_eq!(owner_there.rest().await, 429);
    let owner = Peer::new(&server, "127.0.0.1", &key).await;
    assert_eq!(owner.rest().await, 200);
    // The key's guessing signal (3) saw only the two real tries: a third, from another
    // address, raises the warning — the forged ones would have raised it long before.
    let other = Peer::new(&server, "127.0.0.3", &wrong(&key)).await;
    assert_eq!(other.rest().await, 401);
    let alerts = log_lines(&server, &["distributed guessing suspected", &key.public]).await;
    assert_eq!(alerts.len(), 1, "{}", server.log());
    assert!(alerts[0].contains("127.0.0.3"), "{}", alerts[0]);
    // Every forged answer was logged, naming the address, the key and why.
    let forged = log_lines(
        &server,
        &["authentication failed", "invalid nonce", "127.0.0.2:"],
    )
    .await;
    assert_eq!(forged.len(), 10, "{}", server.log());
    assert!(forged.iter().all(|line| line.contains(&key.public)));
}

/// The `AUTHENTICATION_FAILED` events of the organization from `ip`, as (scheme, address).
async fn failures_from(owner: &Peer, ip: &str) -> Vec<(String, String)> {
    let org = owner.grpc.first_org_id().await;
    let mut events = Vec::new();
    for page in 1.. {
        let listed = owner
            .grpc
            .audit()
            .list_organization_events(ListOrganizationEventsRequest {
                org_id: org.clone(),
                page_num: page,
                items_per_page: 500,
                event_type: vec!["AUTHENTICATION_FAILED".into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        events.extend(
            listed
                .results
                .into_iter()
                .map(|event| (event.target, event.remote_address)),
        );
        if !listed.has_next_page {
            break;
        }
    }
    events.retain(|(_, address)| address.parse::<SocketAddr>().unwrap().ip().to_string() == ip);
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_does_not_silence_a_wrong_attempt_from_another_address() {
    let dir = tempfile::tempdir().unwrap();
    // No throttling: the flood gets through and spends what it can.
    let (server, key) = start(&dir, &["--auth-failure-burst", "0"]).await;
    let junk = format!(r#"Digest username="{}", nonce="x""#, key.public);
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let flooder = Peer::new(&server, ip, &wrong(&key)).await;
        for _ in 0..20 {
            assert_eq!(flooder.rest().await, 401);
            assert_eq!(flooder.grpc().await, Code::Unauthenticated);
        }
        for _ in 0..20 {
            assert_eq!(flooder.rest_with(&junk).await.status, 401);
        }
    }
    // 120 failures, 80 of them wrong credentials for a real key: more than the 60 a minute the
    // whole replica once stored. Each flooding address spent its own budget (20 a minute).
    let owner = Peer::new(&server, "127.0.0.1", &key).await;
    let flooded = failures_from(&owner, "127.0.0.2").await;
    assert_eq!(flooded.len(), 20, "{flooded:?}");
    assert_eq!(
        log_lines(&server, &["beyond its budget", "127.0.0.2"])
            .await
            .len(),
        1,
        "{}",
        server.log()
    );

    // A wrong attempt on the real key from another address, over each transport, is recorded
    // in the audit trail and logged, naming the address and the key.
    let rest = Peer::new(&server, "127.0.0.4", &wrong(&key)).await;
    assert_eq!(rest.rest().await, 401);
    let grpc = Peer::new(&server, "127.0.0.5", &wrong(&key)).await;
    assert_eq!(grpc.grpc().await, Code::Unauthenticated);
    assert_eq!(failures_from(&owner, "127.0.0.4").await.len(), 1);
    assert_eq!(failures_from(&owner, "127.0.0.5").await[0].0, "basic");
    for ip in ["127.0.0.4:", "127.0.0.5:"] {
        let lines = log_lines(&server, &["AUTHENTICATION_FAILED", ip, &key.public]).await;
        assert_eq!(lines.len(), 1, "{ip}: {}", server.log());
    }
    // A failure the audit trail does not record (a forged nonce) is logged all the same.
    let forger = Peer::new(&server, "127.0.0.6", &key).await;
    let resp = forger
        .rest_with(&forger.forged_nonce_authorization(&key))
        .await;
    assert_eq!(resp.status, 401);
    let lines = log_lines(
        &server,
        &["authentication failed", "127.0.0.6:", &key.public],
    )
    .await;
    assert_eq!(lines.len(), 1, "{}", server.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn known_and_unknown_keys_get_the_same_answers() {
    let server = TestServer::start_with(|config| config.throttle.burst = 0).await;
    let known = wrong(&server.key);
    let unknown = Key::random();
    // REST: a wrong response to a fresh nonce.
    let answer = |key: Key| {
        let atlas = Atlas::with_key(&server, key);
        async move {
            let resp = atlas.get(TARGET).await;
            let mut headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .filter(|(name, _)| !["date", "x-request-id"].contains(&name.as_str()))
                .map(|(name, value)| {
                    let value = value.to_str().unwrap();
                    // Each challenge carries a fresh nonce: compare its shape.
                    let value = match value.find("nonce=\"") {
                        Some(start) => {
                            format!("{}<nonce>{}", &value[..start], &value[start + 39..])
                        }
                        None => value.to_owned(),
                    };
                    (name.to_string(), value)
                })
                .collect();
            headers.sort();
            (resp.status, headers, resp.body)
        }
    };
    let known_answer = answer(known.clone()).await;
    assert_eq!(known_answer.0, 401);
    assert_eq!(known_answer, answer(unknown.clone()).await);
    // gRPC: Basic with a wrong secret.
    let clients = server.clients().await;
    let status = |key: Key| {
        let clients = clients.as_key(&key);
        async move {
            let status = clients
                .orgs()
                .list_organizations(ListOrganizationsRequest::default())
                .await
                .unwrap_err();
            // The details decoded: their metadata map is encoded in no fixed order.
            let info = status.get_error_details().error_info().cloned().unwrap();
            (
                status.code(),
                status.message().to_owned(),
                info.reason,
                info.domain,
                info.metadata,
            )
        }
    };
    let known_status = status(known).await;
    assert_eq!(known_status.0, Code::Unauthenticated);
    assert_eq!(known_status, status(unknown).await);
    server.stop().await;
}
