//! Logging through tracing-subscriber: `RUST_LOG` filters, plain or JSON lines on stderr.
//!
//! Lines are formatted on the thread that logs and written by one background thread
//! (tracing-appender), which drains every line queued since its last write and writes them
//! together: under load the request threads make no write system call per line (two lines per
//! issued certificate). The queue is not lossy: when it is full, loggers wait rather than drop
//! audit lines. What is queued is written when the returned [`LogGuard`] is dropped, at exit;
//! a process killed outright may lose the lines of its last moments (the audit trail itself is
//! in the store).

use std::io::{BufWriter, Stderr};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_LOG: &str = "info,sqlx=warn,h2=warn,hyper=warn,tower=warn";

/// Lines that may wait for the writer thread before loggers wait.
const QUEUED_LINES: usize = 64 * 1024;

/// Keeps the log writer thread running; dropping it writes out what is queued.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber (once; later calls do nothing and return an empty guard).
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    let stderr: BufWriter<Stderr> = BufWriter::new(std::io::stderr());
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("dbcert-log")
        .finish(stderr);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    LogGuard {
        _writer: installed.is_ok().then_some(guard),
    }
}
