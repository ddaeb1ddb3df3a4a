//! Accepting connections: plain TCP or TLS, with the peer's address and (under mutual TLS) the
//! API key its verified client certificate names, carried into every request's extensions as
//! [`PeerInfo`].
//!
//! TLS handshakes run on their own tasks, bounded in number and in time, so a client that opens
//! connections and never finishes a handshake neither stalls the accept loop nor holds memory
//! for long. Open connections are bounded per listener and per client address (an IPv4
//! address, or an IPv6 /64): each holds its slots until it is dropped, and a connection
//! accepted while either bound is reached is closed at once. So a flood of idle connections
//! cannot take every file descriptor (and with them the store's connections), and one client
//! cannot take every slot from the others.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use crate::auth::throttle::source;
use crate::tls::TlsReloader;

/// The most TLS handshakes in progress at once; connections beyond are closed at once.
const MAX_PENDING_HANDSHAKES: usize = 1024;
/// How long the accept loop waits after an accept error (e.g. out of file descriptors).
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// What a request knows of its connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// The TCP peer (behind a proxy, the proxy).
    pub remote_addr: Option<SocketAddr>,
    /// The public key named by the connection's verified client certificate (mutual TLS).
    pub client_public_key: Option<String>,
}

/// An accepted connection, plain or TLS, holding its slots until dropped.
pub struct Conn {
    io: Io,
    peer: PeerInfo,
    _slot: Slot,
}

/// The bounds on a listener's open connections.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Open connections in all.
    pub total: usize,
    /// Open connections from one client address (IPv4, or IPv6 /64).
    pub per_address: usize,
}

/// A connection's place under both bounds, given back when it is dropped.
struct Slot {
    _total: OwnedSemaphorePermit,
    _address: AddressSlot,
}

/// The open connections of each client address.
struct PerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection counted against its client address.
struct AddressSlot {
    table: Arc<PerAddress>,
    source: IpAddr,
}

impl PerAddress {
    /// Counts a connection from `ip` unless its address holds `max` already.
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let source = source(ip);
        let mut open = self.open.lock().expect("connection table lock");
        let count = open.entry(source).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            table: Arc::clone(self),
            source,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().expect("connection table lock");
        if let Some(count) = open.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.source);
            }
        }
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The connections of a listener, as a stream (what tonic's `serve_with_incoming` takes).
pub type Incoming = ReceiverStream<io::Result<Conn>>;

/// Accepts connections on `listener` until the returned stream is dropped, within `limits`;
/// with `tls`, only those whose handshake completes within `handshake_timeout`.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<TlsReloader>>,
    handshake_timeout: Duration,
    limits: ConnectionLimits,
) -> Incoming {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, tls, handshake_timeout, limits, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<TlsReloader>>,
    handshake_timeout: Duration,
    limits: ConnectionLimits,
    tx: mpsc::Sender<io::Result<Conn>>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let slots = Arc::new(Semaphore::new(limits.total));
    let per_address = Arc::new(PerAddress {
        max: limits.per_address,
        open: Mutex::new(HashMap::new()),
    });
    // Whether the last connection was refused by a bound: one warning per episode.
    let (mut full, mut address_full) = (false, false);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (tcp, remote_addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Some(address_slot) = per_address.acquire(remote_addr.ip()) else {
            if !address_full {
                warn!(
                    %remote_addr,
                    max_connections_per_address = limits.per_address,
                    "connection limit per address reached: its new connections are closed until one ends"
                );
                address_full = true;
            }
            debug!(%remote_addr, "connection limit per address reached: connection closed");
            continue;
        };
        address_full = false;
        let Ok(total_slot) = slots.clone().try_acquire_owned() else {
            if !full {
                warn!(
                    max_connections = limits.total,
                    "connection limit reached: new connections are closed until one ends"
                );
                full = true;
            }
            debug!(%remote_addr, "connection limit reached: connection closed");
            continue;
        };
        full = false;
        let slot = Slot {
            _total: total_slot,
            _address: address_slot,
        };
        // Without TCP_NODELAY each response waits on the peer's delayed ACK.
        if let Err(error) = tcp.set_nodelay(true) {
            debug!(%error, "failed to set TCP_NODELAY");
        }
        let peer = PeerInfo {
            remote_addr: Some(remote_addr),
            client_public_key: None,
        };
        let Some(tls) = tls.clone() else {
            if tx
                .send(Ok(Conn {
                    io: Io::Plain(tcp),
                    peer,
                    _slot: slot,
                }))
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            debug!(%remote_addr, "too many tls handshakes in progress: connection closed");
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(handshake_timeout, tls.acceptor().accept(tcp));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    debug!(%remote_addr, %error, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%remote_addr, "tls handshake timed out");
                    return;
                }
            };
            drop(permit);
            let client_public_key = tls.principal_rule().and_then(|rule| {
                let certificate = stream.get_ref().1.peer_certificates()?.first()?;
                rule.public_key(certificate)
            });
            let conn = Conn {
                io: Io::Tls(Box::new(stream)),
                peer: PeerInfo {
                    client_public_key,
                    ..peer
                },
                _slot: slot,
            };
            let _ = tx.send(Ok(conn)).await;
        });
    }
}

// === impl Conn ===

impl Conn {
    /// What requests on this connection know of it.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}
