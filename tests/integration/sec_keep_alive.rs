//! HTTP/1 keep-alive on the HTTP listener (issue 13, item 11): a kept-alive connection idle
//! for longer than the header read timeout is reused (Python's http.client, which neither
//! retries nor reconnects); an idle connection is closed at the idle timeout, cleanly (FIN; over
//! TLS, `close_notify` first) and only after its response; a request head started and stalled,
//! or trickled byte by byte, is cut at the header read timeout.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use dbcert::tls::TlsSettings;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::{Key, TestServer, skip_missing_tool};
use crate::tls::{Ca, client_config, write_leaf};

/// How long a test waits for the server to close a connection before failing: far beyond the
/// timeouts configured here, so it only bounds a server that never closes.
const BOUND: Duration = Duration::from_secs(60);
const REQUEST: &[u8] = b"GET /api/atlas/v1.0/orgs HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Reads one response (head and its `content-length` body); returns the status.
async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> u16 {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if bytes.len() >= end + 4 + length {
                assert_eq!(bytes.len(), end + 4 + length, "one response only");
                return head[9..12].parse().unwrap();
            }
        }
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {bytes:?}");
        bytes.extend_from_slice(&buf[..n]);
    }
}

/// Waits for the server to end the connection; returns the read's result (`Ok(0)`: a clean
/// close).
async fn closed(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<usize> {
    let mut buf = [0u8; 64];
    tokio::time::timeout(BOUND, stream.read(&mut buf))
        .await
        .expect("the server must close the connection")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_alive_connection_is_reused_after_eleven_idle_seconds() {
    let python = std::env::var("DBCERT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    if Command::new(&python).arg("--version").output().is_err()
        && skip_missing_tool("python", "DBCERT_TEST_PYTHON unset and no python3")
    {
        return;
    }
    // The defaults: a header read timeout of 10 s, which once also ended idle connections.
    let server = TestServer::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/keep_alive.py");
    let args = [
        script.to_owned(),
        server.http_addr.ip().to_string(),
        server.http_addr.port().to_string(),
        "11".to_owned(),
    ];
    let output = tokio::task::spawn_blocking(move || Command::new(python).args(args).output())
        .await
        .unwrap()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.stop().await;
}

/// A server with short timeouts: idle 8 s, header read 1 s (the 1.5 s pause below sits far
/// from both, however loaded the machine).
fn short_timeouts(config: &mut dbcert::config::Config) {
    config.limits.http_idle_timeout = Duration::from_secs(8);
    config.limits.header_read_timeout = Duration::from_secs(1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_is_closed_cleanly_after_its_response() {
    let server = TestServer::start_with(short_timeouts).await;
    let mut tcp = TcpStream::connect(server.http_addr).await.unwrap();
    tcp.write_all(REQUEST).await.unwrap();
    assert_eq!(read_response(&mut tcp).await, 401);
    // Idle past the header read timeout: the connection still serves.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tcp.write_all(REQUEST).await.unwrap();
    assert_eq!(read_response(&mut tcp).await, 401);
    // Then idle past the idle timeout: end of stream (FIN), not a reset, nothing else sent.
    assert_eq!(closed(&mut tcp).await.unwrap(), 0);

    // A connection that never sends a byte is closed the same way (at the header read timeout).
    let mut silent = TcpStream::connect(server.http_addr).await.unwrap();
    assert_eq!(closed(&mut silent).await.unwrap(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_an_idle_connection_ends_with_close_notify() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("keep-alive server ca");
    let settings = TlsSettings {
        files: write_leaf(dir.path(), &server_ca.server_leaf()),
        mutual: None,
    };
    let key = Key::random();
    let harness = client_config(&server_ca, None);
    let server = TestServer::start_tls_with(settings, harness, key, short_timeouts).await;
    let mut config = client_config(&server_ca, None);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut tls = crate::harness::tls_connect(server.http_addr, config)
        .await
        .unwrap();
    tls.write_all(REQUEST).await.unwrap();
    assert_eq!(read_response(&mut tls).await, 401);
    // rustls reports an end without close_notify as an UnexpectedEof error.
    let end = closed(&mut tls).await;
    assert_eq!(end.unwrap(), 0, "the idle close must be a TLS close_notify");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_connection_must_start_within_the_header_read_timeout_on_both_listeners() {
    // An idle timeout far beyond the wait bound: only the header read timeout can end these.
    let server = TestServer::start_with(|config| {
        config.limits.http_idle_timeout = Duration::from_secs(600);
        config.limits.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    // HTTP: a connection that never sends its first byte (issue 13 item 11 wanted the idle
    // timeout for kept-alive connections only).
    let mut silent = TcpStream::connect(server.http_addr).await.unwrap();
    assert_eq!(closed(&mut silent).await.unwrap(), 0, "a clean close");
    // gRPC: a connection that never sends the HTTP/2 preface, and one that stops halfway (the
    // server may send its SETTINGS first: read to the end).
    let mut silent = TcpStream::connect(server.grpc_addr).await.unwrap();
    ends(&mut silent).await;
    let mut half = TcpStream::connect(server.grpc_addr).await.unwrap();
    half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    ends(&mut half).await;
    server.stop().await;
}

/// Reads whatever the server sends until it ends the connection (end of stream or an error).
async fn ends(stream: &mut (impl AsyncRead + Unpin)) {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            let _ = n;
        }
    };
    tokio::time::timeout(BOUND, read_to_end)
        .await
        .expect("the server must close the connection");
}

/// Sends `bytes` of a request head, then nothing; the server must end the connection.
async fn stalled_head(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<usize> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    closed(&mut tcp).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_head_is_cut_at_the_header_read_timeout() {
    // An idle timeout far beyond the wait bound: only the header read timeout can end these.
    let server = TestServer::start_with(|config| {
        config.limits.http_idle_timeout = Duration::from_secs(600);
        config.limits.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = server.http_addr;

    // The first request's head, stalled.
    let end = stalled_head(addr, b"GET /api/atlas/v1.0/orgs HTTP/1.1\r\nHost: x").await;
    assert!(
        !matches!(end, Ok(n) if n > 0),
        "no answer to half a head: {end:?}"
    );

    // A second request's head, stalled after a first request was answered.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(REQUEST).await.unwrap();
    assert_eq!(read_response(&mut tcp).await, 401);
    tcp.write_all(b"GET /api/atlas/v1.0/orgs HT").await.unwrap();
    let end = closed(&mut tcp).await;
    assert!(
        !matches!(end, Ok(n) if n > 0),
        "no answer to half a head: {end:?}"
    );

    // A head trickled a byte at a time (slowloris): every byte is on time, the head is not.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /api/atlas/v1.0/orgs HTTP/1.1\r\nHost: x\r\nX-Slow: {}\r\n\r\n",
        "a".repeat(400)
    );
    let trickle = async {
        for byte in head.as_bytes() {
            tcp.write_all(std::slice::from_ref(byte)).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The whole head went out: the server kept reading it.
        Ok::<_, std::io::Error>(())
    };
    let result = tokio::time::timeout(BOUND, trickle)
        .await
        .expect("the trickle is cut long before the bound");
    assert!(result.is_err(), "a trickled head must be cut");
    server.stop().await;
}
