//! The real `dbcert` binary as a child process. [`serve_command`] starts `dbcert serve` with
//! both listeners on `127.0.0.1:0`; [`Spawned::start`] reads the addresses the kernel gave from
//! its "dbcert serving" log line (plain or JSON), so no port is picked first and raced for.
//! Everything the process writes to stdout and stderr is kept; the process is killed when the
//! [`Spawned`] is dropped.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::clients::{Clients, Key};

/// The binary under test, built by Cargo for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_dbcert");
/// How long a spawned server may take to start (migrations included) and become SERVING.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a spawned server may take to exit after a signal.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a condition on the process is polled.
const POLL: Duration = Duration::from_millis(25);

/// `dbcert serve` on `data_dir` (made private to its owner if it exists, as the server
/// requires) with both listeners on `127.0.0.1:0` and an environment of its
/// own: nothing from the test's environment (no stray `DBCERT_*`), only `RUST_LOG=info`, which
/// the "dbcert serving" line needs and which a test may override with `.env`.
pub fn serve_command(data_dir: &Path) -> Command {
    super::private_dir(data_dir);
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .env_clear()
        .env("RUST_LOG", "info");
    command
}

/// Runs `command` to its exit, which must come before [`START_TIMEOUT`] (a server that starts
/// is killed and fails the test), and returns its status and everything it wrote.
pub async fn run_to_exit(mut command: Command, out: &Path) -> (ExitStatus, String) {
    let file = std::fs::File::create(out).unwrap();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if tokio::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "the server did not exit; it wrote:\n{}",
                std::fs::read_to_string(out).unwrap()
            );
        }
        tokio::time::sleep(POLL).await;
    };
    (status, std::fs::read_to_string(out).unwrap())
}

/// A running `dbcert` process and what it has written so far.
pub struct Spawned {
    child: Child,
    /// The gRPC listener's address, as the process reported it.
    pub grpc_addr: SocketAddr,
    /// The HTTP listener's address, as the process reported it.
    pub http_addr: SocketAddr,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Spawned {
    /// Spawns `command` (from [`serve_command`]) with stdout and stderr collected, and returns
    /// once it has logged the addresses it serves on. Panics, with its log, when it exits
    /// first or takes longer than [`START_TIMEOUT`].
    pub async fn start(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dbcert");
        let (stdout, stdout_reader) = collect(child.stdout.take().expect("piped stdout"));
        let (stderr, stderr_reader) = collect(child.stderr.take().expect("piped stderr"));
        let mut spawned = Self {
            child,
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdout,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some((grpc, http)) = serving_addresses(&spawned.log()) {
                (spawned.grpc_addr, spawned.http_addr) = (grpc, http);
                return spawned;
            }
            if let Some(status) = spawned.child.try_wait().expect("try_wait") {
                spawned.finish_reading().await;
                panic!(
                    "dbcert exited ({status}) before serving:\n{}",
                    spawned.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "dbcert did not report its addresses:\n{}",
                spawned.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("a pid fits i32"))
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(self.pid(), signal).expect("signal dbcert");
    }

    /// Waits for the process to exit (bounded by [`EXIT_TIMEOUT`]; then it is killed and the
    /// test fails) and for everything it wrote to be read.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.finish_reading().await;
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("dbcert did not exit:\n{}", self.log());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// What the process wrote to stderr (its log) so far, without ANSI colour sequences.
    pub fn log(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &self.stderr.lock().expect("log lock"),
        ))
    }

    /// Every byte the process wrote so far, as written: stdout, then stderr.
    pub fn output(&self) -> Vec<u8> {
        let mut bytes = self.stdout.lock().expect("stdout lock").clone();
        bytes.extend_from_slice(&self.stderr.lock().expect("log lock"));
        bytes
    }

    /// Waits (bounded by [`START_TIMEOUT`]) until the log contains `needle`; returns whether
    /// it did.
    pub async fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            tokio::time::sleep(POLL).await;
        }
        false
    }

    /// A plaintext gRPC channel to the process.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.grpc_addr))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .timeout(START_TIMEOUT)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to dbcert at {}: {e}", self.grpc_addr))
    }

    /// Waits (bounded by [`START_TIMEOUT`]) until gRPC health answers SERVING over plaintext.
    pub async fn wait_serving(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut health = HealthClient::new(self.channel().await);
        loop {
            let status = health.check(HealthCheckRequest::default()).await;
            if status.is_ok_and(|s| s.into_inner().status == 1) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dbcert not SERVING:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clients authenticated as `key`, once the process is SERVING.
    pub async fn clients(&self, key: &Key) -> Clients {
        self.wait_serving().await;
        Clients::new(self.channel().await, key.clone())
    }

    /// Waits for the readers to reach the end of the pipes (the process has exited).
    async fn finish_reading(&mut self) {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while !self.readers.iter().all(JoinHandle::is_finished) {
            assert!(Instant::now() < deadline, "dbcert's output did not end");
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a pipe to its end on a thread of its own, so the process never blocks on a full pipe.
fn collect(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let sink = bytes.clone();
    let reader = std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .expect("output lock")
                    .extend_from_slice(&buffer[..n]),
            }
        }
    });
    (bytes, reader)
}

/// The gRPC and HTTP addresses of the first complete "dbcert serving" line of a log, plain
/// (`grpc_addr=… http_addr=…`) or JSON (`"grpc_addr":"…"`).
fn serving_addresses(log: &str) -> Option<(SocketAddr, SocketAddr)> {
    // Only whole lines: the last one may still be being written.
    let complete = &log[..log.rfind('\n')?];
    complete
        .lines()
        .filter(|line| line.contains("dbcert serving"))
        .find_map(|line| json_addresses(line).or_else(|| plain_addresses(line)))
}

fn json_addresses(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = event.get("fields").unwrap_or(&event);
    if fields.get("message")?.as_str()? != "dbcert serving" {
        return None;
    }
    Some((
        fields.get("grpc_addr")?.as_str()?.parse().ok()?,
        fields.get("http_addr")?.as_str()?.parse().ok()?,
    ))
}

fn plain_addresses(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let field = |name: &str| -> Option<SocketAddr> {
        let start = line.find(&format!("{name}="))? + name.len() + 1;
        let end = line[start..].find(' ').map_or(line.len(), |e| start + e);
        line[start..end].parse().ok()
    };
    Some((field("grpc_addr")?, field("http_addr")?))
}

/// Removes ANSI escape sequences (plain log lines colour field names).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
