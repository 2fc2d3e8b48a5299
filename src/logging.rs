//! Log output: structured lines to stderr, buffered off the request path.
//!
//! Every request writes an access-log line, so writing must cost little: a
//! line goes into an in-memory buffer under a short lock, and a background
//! thread flushes the buffer to stderr every [`FLUSH_EVERY`] (and when the
//! buffer fills, and when the guard is dropped at exit). Handing each line to
//! a logging thread, or a `write` system call per line, costs more than the
//! rest of a proxied request. Nothing secret is ever logged (see the
//! modules that log).

use std::io::{BufWriter, IsTerminal as _, Stderr, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How long a log line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
const BUFFER_BYTES: usize = 64 * 1024;

/// The shared, buffered stderr.
#[derive(Clone)]
pub struct LogSink(Arc<Mutex<BufWriter<Stderr>>>);

impl LogSink {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(BufWriter::with_capacity(
            BUFFER_BYTES,
            std::io::stderr(),
        ))))
    }

    /// Writes out whatever is buffered.
    pub fn flush_now(&self) {
        let _ = self.0.lock().unwrap_or_else(|p| p.into_inner()).flush();
    }
}

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LogSink;

    fn make_writer(&'a self) -> LogSink {
        self.clone()
    }
}

/// Flushes the log when dropped; keep it alive for the life of the process.
pub struct LogGuard(LogSink);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.0.flush_now();
    }
}

/// Installs the global subscriber. `LTIGATE_LOG` sets the filter (default
/// `info`); `LTIGATE_LOG_FORMAT=json` switches to JSON lines.
pub fn init() -> LogGuard {
    let sink = LogSink::new();
    let flusher = sink.clone();
    let _ = std::thread::Builder::new()
        .name("ltigate-log".into())
        .spawn(move || {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                flusher.flush_now();
            }
        });
    let filter = EnvFilter::try_from_env("LTIGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(sink.clone());
    if std::env::var("LTIGATE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
    LogGuard(sink)
}
