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

#[tokio::test(flavor = "multi_thread")]
async fn a_key_with_an_access_list_authenticates_only_from_listed_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::random();
    let mut command: Command = serve_command(&dir.path().join("data"));
    // No cache: a change is seen at once (the cache TTL bounds it otherwise).
    command.args(["--cache-ttl", "0s"]).env(
        "DBCERT_BOOTSTRAP_API_KEY",
        format!("{}:{}", key.public, key.private),
    );
    let server = Spawned::start(command).await;
    server.wait_serving().await;
    let home = Peer::new(&server, "127.0.0.1", &key).await;
    let listed = Peer::new(&server, "127.0.0.5", &key).await;
    let other = Peer::new(&server, "127.0.0.2", &key).await;

    // Empty list: no restriction.
    assert_eq!(other.rest().await.0, 200);
    assert_eq!(other.grpc().await.0, Code::Ok);

    let org_id = home
        .grpc
        .orgs()
        .list_organizations(ListOrganizationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .results[0]
        .id
        .clone();
    let key_id = home
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
    let add = |entries: Vec<ApiKeyAccessListAddition>| AddApiKeyAccessListRequest {
        org_id: org_id.clone(),
        api_key_id: key_id.clone(),
        entries,
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
    assert!(
        server.log().contains("not on its access list"),
        "{}",
        server.log()
    );

    // Deleting the /31 (percent-encoded path form is the REST one; gRPC takes it as is)
    // refuses 127.0.0.1 from then on.
    home.grpc
        .api_keys()
        .delete_api_key_access_list_entry(ApiKeyAccessListEntryRequest {
            org_id: org_id.clone(),
            api_key_id: key_id.clone(),
            ip_address: "127.0.0.0/31".into(),
        })
        .await
        .unwrap();
    assert_eq!(home.grpc().await.0, Code::PermissionDenied);
    let remaining = listed
        .grpc
        .api_keys()
        .list_api_key_access_list(ListApiKeyAccessListRequest {
            org_id: org_id.clone(),
            api_key_id: key_id.clone(),
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
