//! API key access lists against the real binary (issue 12): a key with a non-empty list
//! authenticates only from a listed address, over REST (Digest) and gRPC (Basic); an empty list
//! restricts nothing; CIDR blocks and IPv6 entries are accepted, malformed ones refused.
//! Clients are bound to loopback source addresses (127.0.0.2, …; Linux routes 127.0.0.0/8 to
//! the loopback interface).

use std::net::IpAddr;
use std::process::Command;

use dbcert::proto::v1::{
    AddApiKeyAccessListRequest, ApiKeyAccessListAddition, ApiKeyAccessListEntryRequest,
    ListApiKeyAccessListRequest, ListApiKeysRequest, ListOrganizationsRequest,
};
use tonic::Code;
use tonic::transport::Endpoint;

use crate::harness::atlas::{Alg, Atlas};
use crate::harness::binary::{Spawned, serve_command};
use crate::harness::{Clients, Key, error_code};

const TARGET: &str = "/api/atlas/v1.0/orgs";

/// Clients bound to one source address.
struct Peer {
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
            atlas: Atlas {
                http,
                base: format!("http://{}", server.http_addr),
                key: key.clone(),
                alg: Alg::Md5,
            },
            grpc: Clients::new(channel, key.clone()),
        }
    }

    /// The organization and the id of the (only) key, read over gRPC.
    async fn org_and_key(&self) -> (String, String) {
        let org_id = self.grpc.first_org_id().await;
        let key_id = self
            .grpc
            .api_keys()
            .list_api_keys(ListApiKeysRequest {
                org_id: org_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .results[0]
            .id
            .clone();
        (org_id, key_id)
    }

    /// The REST status and errorCode of a read.
    async fn rest(&self) -> (u16, String) {
        let resp = self.atlas.get(TARGET).await;
        let code = serde_json::from_str::<serde_json::Value>(&resp.body)
            .ok()
            .and_then(|v| v["errorCode"].as_str().map(str::to_owned))
            .unwrap_or_default();
        (resp.status, code)
    }

    /// The gRPC code and errorCode of a read.
    async fn grpc(&self) -> (Code, String) {
        match self
            .grpc
            .orgs()
            .list_organizations(ListOrganizationsRequest::default())
            .await
        {
            Ok(_) => (Code::Ok, String::new()),
            Err(status) => (status.code(), error_code(&status)),
        }
    }
}

fn cidr(block: &str) -> ApiKeyAccessListAddition {
    ApiKeyAccessListAddition {
        ip_address: None,
        cidr_block: Some(block.to_owned()),
    }
}

fn ip(address: &str) -> ApiKeyAccessListAddition {
    ApiKeyAccessListAddition {
        ip_address: Some(address.to_owned()),
        cidr_block: None,
    }
}

/// Starts the binary with a bootstrap key and no cache (a change to a list is seen at once; the
/// cache TTL bounds it otherwise); returns its data directory, the key and the server.
async fn start() -> (tempfile::TempDir, Key, Spawned) {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::random();
    let mut command: Command = serve_command(&dir.path().join("data"));
    command.args(["--cache-ttl", "0s"]).env(
        "DBCERT_BOOTSTRAP_API_KEY",
        format!("{}:{}", key.public, key.private),
    );
    let server = Spawned::start(command).await;
    server.wait_serving().await;
    (dir, key, server)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_with_an_access_list_authenticates_only_from_listed_addresses() {
    let (_dir, key, server) = start().await;
    let home = Peer::new(&server, "127.0.0.1", &key).await;
    let listed = Peer::new(&server, "127.0.0.5", &key).await;
    let other = Peer::new(&server, "127.0.0.2", &key).await;

    // Empty list: no restriction.
    assert_eq!(other.rest().await.0, 200);
    assert_eq!(other.grpc().await.0, Code::Ok);

    let (org_id, key_id) = home.org_and_key().await;
    let add = |entries: Vec<ApiKeyAccessListAddition>| AddApiKeyAccessListRequest {
        org_id: org_id.clone(),
        api_key_id: key_id.clone(),
        entries,
        ..Default::default()
    };

    // Malformed entries are refused, nothing stored.
    for bad in [
        cidr("127.0.0.1/8"),
        ip("127.0.0.1/32"),
        cidr("::1/129"),
        ip("nonsense"),
    ] {
        let status = home
            .grpc
            .api_keys()
            .add_api_key_access_list(add(vec![bad.clone()]))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(error_code(&status), "INVALID_ATTRIBUTE", "{bad:?}");
    }

    // 127.0.0.0/31 (127.0.0.0 and .1), an IPv6 address, and 127.0.0.5.
    let list = home
        .grpc
        .api_keys()
        .add_api_key_access_list(add(vec![
            cidr("127.0.0.0/31"),
            ip("2001:DB8::7"),
            ip("127.0.0.5"),
        ]))
        .await
        .unwrap()
        .into_inner()
        .results;
    let mut blocks: Vec<_> = list.iter().map(|e| e.cidr_block.as_str()).collect();
    blocks.sort_unstable();
    assert_eq!(blocks, ["127.0.0.0/31", "127.0.0.5/32", "2001:db8::7/128"]);

    // The API root shows the calling key's list.
    let root = home.atlas.get("/api/atlas/v1.0").await;
    assert_eq!(root.status, 200, "{}", root.body);
    let mut shown: Vec<(String, Option<String>)> = root.json()["apiKey"]["accessList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["cidrBlock"].as_str().unwrap().to_owned(),
                e["ipAddress"].as_str().map(str::to_owned),
            )
        })
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        [
            ("127.0.0.0/31".to_owned(), None),
            ("127.0.0.5/32".to_owned(), Some("127.0.0.5".to_owned())),
            ("2001:db8::7/128".to_owned(), Some("2001:db8::7".to_owned())),
        ]
    );

    // Listed: the /31 holds 127.0.0.1; 127.0.0.5 itself.
    assert_eq!(home.rest().await.0, 200);
    assert_eq!(home.grpc().await.0, Code::Ok);
    assert_eq!(listed.rest().await.0, 200);
    assert_eq!(listed.grpc().await.0, Code::Ok);
    // Not listed: 127.0.0.2, Atlas's refusal over both transports, and a log line.
    assert_eq!(
        other.rest().await,
        (403, "IP_ADDRESS_NOT_ON_ACCESS_LIST".to_owned())
    );
    assert_eq!(
        other.grpc().await,
        (
            Code::PermissionDenied,
            "IP_ADDRESS_NOT_ON_ACCESS_LIST".to_owned()
        )
    );
    // The log is read from the process's stderr as it arrives: wait for the line.
    assert!(
        server.wait_for_log("not on its access list").await,
        "{}",
        server.log()
    );

    // The key cannot remove the entry its caller's address needs while others remain (Atlas's
    // CANNOT_REMOVE_CALLER_FROM_ACCESS_LIST); from 127.0.0.5 it can. gRPC takes the block as
    // is (REST percent-encodes its `/`).
    let remove_31 = || ApiKeyAccessListEntryRequest {
        org_id: org_id.clone(),
        api_key_id: key_id.clone(),
        ip_address: "127.0.0.0/31".into(),
    };
    let refused = home
        .grpc
        .api_keys()
        .delete_api_key_access_list_entry(remove_31())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        error_code(&refused),
        "CANNOT_REMOVE_CALLER_FROM_ACCESS_LIST"
    );
    assert_eq!(home.grpc().await.0, Code::Ok, "nothing removed");
    listed
        .grpc
        .api_keys()
        .delete_api_key_access_list_entry(remove_31())
        .await
        .unwrap();
    assert_eq!(home.grpc().await.0, Code::PermissionDenied);
    let remaining = listed
        .grpc
        .api_keys()
        .list_api_key_access_list(ListApiKeyAccessListRequest {
            org_id: org_id.clone(),
            api_key_id: key_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    let remaining: Vec<_> = remaining
        .iter()
        .map(|e| (e.cidr_block.as_str(), e.ip_address.as_deref()))
        .collect();
    assert_eq!(
        remaining,
        [
            ("127.0.0.5/32", Some("127.0.0.5")),
            ("2001:db8::7/128", Some("2001:db8::7"))
        ]
    );
}

/// The Atlas REST routes of the access list, on both versions: entries in Atlas's shape with
/// `self` links that resolve (a block's `/` percent-encoded), 201 on v1 and 200 on v2 for an
/// add, 204 for a delete, Atlas's errors, paging, and readOnly attributes sent back ignored.
#[tokio::test(flavor = "multi_thread")]
async fn rest_routes_list_add_get_and_delete_entries_in_atlas_shape() {
    let (_dir, key, server) = start().await;
    let home = Peer::new(&server, "127.0.0.1", &key).await;
    let atlas = &home.atlas;
    let org_id = atlas.get(TARGET).await.json()["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A second key of the organization, whose list is changed (the caller's stays empty).
    let other = atlas
        .post(
            &format!("{TARGET}/{org_id}/apiKeys"),
            r#"{"desc":"listed","roles":["ORG_READ_ONLY"]}"#,
        )
        .await;
    assert_eq!(other.status, 201, "{}", other.body);
    let other_id = other.json()["id"].as_str().unwrap().to_owned();
    let v1 = format!("/api/atlas/v1.0/orgs/{org_id}/apiKeys/{other_id}/accessList");
    let v2 = format!("/api/atlas/v2/orgs/{org_id}/apiKeys/{other_id}/accessList");

    let empty = atlas.get(&v1).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.json()["results"], serde_json::json!([]));
    assert_eq!(empty.json()["totalCount"], 0);

    // v1 answers an add 201 with the whole list; an entry read back (readOnly attributes and
    // all) is accepted.
    let add = atlas
        .post(
            &v1,
            r#"[{"ipAddress":"192.0.2.1"},{"cidrBlock":"198.51.100.0/24","created":"2020-01-01T00:00:00Z","links":[],"count":3}]"#,
        )
        .await;
    assert_eq!(add.status, 201, "{}", add.body);
    let results = add.json()["results"].as_array().unwrap().clone();
    let mut by_block: Vec<_> = results
        .iter()
        .map(|e| {
            (
                e["cidrBlock"].as_str().unwrap().to_owned(),
                e["ipAddress"].as_str().map(str::to_owned),
                e["links"][0]["href"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    by_block.sort();
    let base = format!("http://{}", server.http_addr);
    assert_eq!(
        by_block,
        [
            (
                "192.0.2.1/32".to_owned(),
                Some("192.0.2.1".to_owned()),
                format!("{base}{v1}/192.0.2.1")
            ),
            (
                "198.51.100.0/24".to_owned(),
                None,
                format!("{base}{v1}/198.51.100.0%2F24")
            ),
        ]
    );
    for entry in &results {
        let created = entry["created"].as_str().unwrap();
        assert!(
            created.ends_with('Z') && !created.starts_with("2020"),
            "{entry}"
        );
        assert!(entry.get("count").is_none() && entry.get("lastUsed").is_none());
        // Each self link resolves to the entry.
        let href = entry["links"][0]["href"].as_str().unwrap();
        let got = atlas.get(href.strip_prefix(&base).unwrap()).await;
        assert_eq!(got.status, 200, "{href}: {}", got.body);
        assert_eq!(got.json()["cidrBlock"], entry["cidrBlock"]);
    }

    // v2 answers an add 200, in its media type; paging applies to the answer.
    let add = atlas
        .send_v2(
            "POST",
            &format!("{v2}?itemsPerPage=2&pageNum=2"),
            Some(r#"[{"ipAddress":"2001:db8::7"}]"#),
        )
        .await;
    assert_eq!(add.status, 200, "{}", add.body);
    assert!(add.header("content-type").contains("vnd.atlas.2023-01-01"));
    assert_eq!(add.json()["totalCount"], 3);
    assert_eq!(add.json()["results"].as_array().unwrap().len(), 1);
    let page = atlas.get(&format!("{v1}?itemsPerPage=2")).await;
    assert_eq!(page.json()["results"].as_array().unwrap().len(), 2);
    assert_eq!(page.json()["links"][1]["rel"], "next");

    // Atlas's errors, nothing changed.
    for (body, status, code) in [
        (
            r#"[{"ipAddress":"192.0.2.1/32"}]"#,
            400,
            "INVALID_ATTRIBUTE",
        ),
        (
            r#"[{"cidrBlock":"192.0.2.1/24"}]"#,
            400,
            "INVALID_ATTRIBUTE",
        ),
        (r#"[{"cidrBlock":"::1/129"}]"#, 400, "INVALID_ATTRIBUTE"),
        (
            r#"[{"comment":"x","ipAddress":"192.0.2.9"}]"#,
            400,
            "INVALID_ATTRIBUTE",
        ),
        (r#"[{}]"#, 400, "MISSING_ATTRIBUTE"),
        (r#"[]"#, 400, "MISSING_ATTRIBUTE"),
        (r#""192.0.2.9""#, 400, "INVALID_JSON"),
    ] {
        atlas.post(&v1, body).await.assert_error(status, code);
    }
    let too_many = format!(
        "[{}]",
        (0..101)
            .map(|i| format!(r#"{{"ipAddress":"10.0.{}.{}"}}"#, i / 256, i % 256))
            .collect::<Vec<_>>()
            .join(",")
    );
    atlas
        .post(&v1, &too_many)
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    assert_eq!(atlas.get(&v1).await.json()["totalCount"], 3);
    atlas
        .get(&format!("{v1}/192.0.2.2"))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    atlas
        .get(&format!("{v1}/not-an-address"))
        .await
        .assert_error(400, "INVALID_ATTRIBUTE");
    atlas
        .get(&format!(
            "/api/atlas/v1.0/orgs/{org_id}/apiKeys/{}/accessList",
            "0".repeat(24)
        ))
        .await
        .assert_error(404, "INVALID_API_KEY_ID");

    // A percent-encoded block is deleted (204), then gone.
    let deleted = atlas.delete(&format!("{v1}/198.51.100.0%2F24")).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    atlas
        .delete(&format!("{v1}/198.51.100.0%2F24"))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    let deleted = atlas
        .send_v2("DELETE", &format!("{v2}/2001:db8::7"), None)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let left: Vec<_> = atlas.get(&v1).await.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cidrBlock"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, ["192.0.2.1/32"]);

    // The list made over REST is enforced: the key, used from 127.0.0.1 (not on its list), is
    // refused before any role is looked at.
    let reader = Atlas {
        http: reqwest::Client::new(),
        base: base.clone(),
        key: Key {
            public: other.json()["publicKey"].as_str().unwrap().to_owned(),
            private: other.json()["privateKey"].as_str().unwrap().to_owned(),
        },
        alg: Alg::Md5,
    };
    reader
        .get(&v1)
        .await
        .assert_error(403, "IP_ADDRESS_NOT_ON_ACCESS_LIST");
}

/// A key removing, at once, the two entries that each let its caller in: one removal passes,
/// the other is refused, and the caller still authenticates, round after round.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_removals_cannot_lock_the_caller_out() {
    let (_dir, key, server) = start().await;
    let home = Peer::new(&server, "127.0.0.1", &key).await;
    let (org_id, key_id) = home.org_and_key().await;
    let remove = |block: &str| {
        let clients = home.grpc.clone();
        let request = ApiKeyAccessListEntryRequest {
            org_id: org_id.clone(),
            api_key_id: key_id.clone(),
            ip_address: block.to_owned(),
        };
        async move {
            clients
                .api_keys()
                .delete_api_key_access_list_entry(request)
                .await
        }
    };
    for round in 0..20 {
        // 127.0.0.5 keeps the list non-empty; the /31 and the /32 each hold 127.0.0.1.
        home.grpc
            .api_keys()
            .add_api_key_access_list(AddApiKeyAccessListRequest {
                org_id: org_id.clone(),
                api_key_id: key_id.clone(),
                entries: vec![cidr("127.0.0.0/31"), ip("127.0.0.1"), ip("127.0.0.5")],
                ..Default::default()
            })
            .await
            .unwrap();
        let (a, b) = tokio::join!(remove("127.0.0.0/31"), remove("127.0.0.1"));
        let refused: Vec<_> = [&a, &b]
            .into_iter()
            .filter_map(|r| r.as_ref().err())
            .collect();
        assert_eq!(refused.len(), 1, "round {round}: {a:?} {b:?}");
        assert_eq!(
            error_code(refused[0]),
            "CANNOT_REMOVE_CALLER_FROM_ACCESS_LIST"
        );
        assert_eq!(home.grpc().await.0, Code::Ok, "round {round}");
    }
}
