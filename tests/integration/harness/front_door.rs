//! A front door bound before the server starts: a TCP forwarder on `127.0.0.1:0` whose address
//! is known first, for a `--public-url` the server writes into what it signs (the binary binds
//! `127.0.0.1:0` itself and reports its port only once it serves). Each connection is
//! forwarded, bytes unchanged, to the address given later by [`FrontDoor::forward_to`], as a
//! deployment's proxy at the public URL does. Plain threads, so a test blocked on an external
//! tool (openssl fetching a URL) does not stall it; nothing is picked first and raced for.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long a connection that arrives before the target is known waits for it.
const TARGET_WAIT: Duration = Duration::from_secs(60);

/// The forwarder; it stops when dropped.
pub struct FrontDoor {
    addr: SocketAddr,
    target: Arc<OnceLock<SocketAddr>>,
    stop: Arc<AtomicBool>,
}

impl FrontDoor {
    /// Binds `127.0.0.1:0` and starts accepting.
    pub fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the front door");
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(OnceLock::<SocketAddr>::new());
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_target, accept_stop) = (target.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let target = accept_target.clone();
                std::thread::spawn(move || forward(client, &target));
            }
        });
        Self { addr, target, stop }
    }

    /// `http://127.0.0.1:<port>`: the URL clients reach the server at.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Forwards every connection (those waiting too) to `target` from now on.
    pub fn forward_to(&self, target: SocketAddr) {
        self.target
            .set(target)
            .expect("the front door's target is set once");
    }
}

impl Drop for FrontDoor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies both ways between `client` and the target until each side has finished sending.
fn forward(client: TcpStream, target: &OnceLock<SocketAddr>) {
    let deadline = Instant::now() + TARGET_WAIT;
    let target = loop {
        if let Some(target) = target.get() {
            break *target;
        }
        if Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let Ok(server) = TcpStream::connect(target) else {
        return;
    };
    let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || copy(client_read, server));
    copy(server_read, client);
    let _ = upstream.join();
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s sending side.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
