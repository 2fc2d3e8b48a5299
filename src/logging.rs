//! Log output: structured lines to stderr, buffered off the request path.
//!
//! Every request writes an access-log line, so writing must cost little: a
//! line goes into an in-memory buffer under a short lock, and a background
//! thread flushes the buffer to stderr every [`FLUSH_EVERY`] (and when the
//! buffer fills, and when the guard is dropped at exit). A WARN or ERROR
//! line is flushed at once, so that a crash loses at most the last
//! [`FLUSH_EVERY`] of INFO lines, never the warning that came before it. Handing each line to
//! a logging thread, or a `write` system call per line, costs more than the
//! rest of a proxied request. Nothing secret is ever logged (see the
//! modules that log).
//!
//! The access-log line is written by [`access`] directly into the same
//! buffer, in the same shape as the subscriber's own lines (text or JSON):
//! formatting it through `tracing`'s generic field visitors cost more than
//! the gateway's own work on a proxied request. It still obeys `LTIGATE_LOG`
//! (target `ltigate::access`, level INFO).

use std::cell::RefCell;
use std::io::{BufWriter, IsTerminal as _, Stderr, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

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

    fn write_line(&self, line: &[u8]) {
        let _ = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(line);
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

/// One event's writer: a WARN or ERROR line is flushed as soon as it is
/// written, so that a crash right after it (a SIGKILL, the OOM killer)
/// cannot take it along; other lines wait for the next flush, at most
/// [`FLUSH_EVERY`].
pub struct EventWriter {
    sink: LogSink,
    flush: bool,
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sink.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.sink.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sink.flush()
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.flush {
            self.sink.flush_now();
        }
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            sink: self.clone(),
            flush: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> EventWriter {
        EventWriter {
            sink: self.clone(),
            flush: *meta.level() <= tracing::Level::WARN,
        }
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
    let json = std::env::var("LTIGATE_LOG_FORMAT").is_ok_and(|f| f == "json");
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    let _ = ACCESS_LOG.set(AccessLog {
        sink: sink.clone(),
        json,
    });
    LogGuard(sink)
}

/// Where access lines go; unset (nothing logged) until [`init`] runs.
static ACCESS_LOG: OnceLock<AccessLog> = OnceLock::new();

struct AccessLog {
    sink: LogSink,
    json: bool,
}

/// One request, as the access log records it.
#[derive(Debug, Serialize)]
pub struct Access<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    /// The path only, never the query.
    pub path: &'a str,
    pub status: u16,
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
    pub decision: &'a str,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Writes the access-log line for one request.
pub fn access(entry: &Access<'_>) {
    let Some(log) = ACCESS_LOG.get() else {
        return;
    };
    if !tracing::enabled!(target: "ltigate::access", tracing::Level::INFO) {
        return;
    }
    thread_local! {
        static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(256));
    }
    LINE.with_borrow_mut(|line| {
        line.clear();
        if log.json {
            write_json(line, entry);
        } else {
            write_text(line, entry);
        }
        line.push(b'\n');
        log.sink.write_line(line);
    });
}

/// `2026-11-27T13:22:33.449769Z  INFO ltigate::access: request request_id=… decision="…"`,
/// as the text formatter writes events. Every value is ASCII without spaces
/// or quotes (the path passed the URI parser), so none needs escaping.
fn write_text(line: &mut Vec<u8>, e: &Access<'_>) {
    timestamp(line);
    line.extend_from_slice(b"  INFO ltigate::access: request request_id=");
    line.extend_from_slice(e.request_id.as_bytes());
    line.extend_from_slice(b" method=");
    line.extend_from_slice(e.method.as_bytes());
    line.extend_from_slice(b" path=");
    line.extend_from_slice(e.path.as_bytes());
    let micros = u64::try_from(e.duration.as_micros()).unwrap_or(u64::MAX);
    line.extend_from_slice(b" status=");
    push_decimal(line, u64::from(e.status), 1);
    line.extend_from_slice(b" duration_ms=");
    push_decimal(line, micros / 1000, 1);
    line.push(b'.');
    push_decimal(line, micros % 1000, 3);
    line.extend_from_slice(b" decision=\"");
    line.extend_from_slice(e.decision.as_bytes());
    line.push(b'"');
}

/// Appends `n` in decimal, zero-padded to at least `width` digits (the
/// access log's numbers, without `format!` on every request).
fn push_decimal(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while n > 0 || start == digits.len() {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    start = start.min(digits.len().saturating_sub(width));
    out.extend_from_slice(&digits[start..]);
}

/// The JSON formatter's shape: timestamp, level, fields, target.
fn write_json(line: &mut Vec<u8>, e: &Access<'_>) {
    #[derive(Serialize)]
    struct Fields<'a> {
        message: &'static str,
        #[serde(flatten)]
        access: &'a Access<'a>,
    }
    #[derive(Serialize)]
    struct Line<'a> {
        timestamp: &'a str,
        level: &'static str,
        fields: Fields<'a>,
        target: &'static str,
    }
    let mut ts = Vec::with_capacity(32);
    timestamp(&mut ts);
    let _ = serde_json::to_writer(
        line,
        &Line {
            timestamp: std::str::from_utf8(&ts).unwrap_or_default(),
            level: "INFO",
            fields: Fields {
                message: "request",
                access: e,
            },
            target: "ltigate::access",
        },
    );
}

/// RFC 3339 UTC with microseconds. The part up to the second is formatted
/// once per second per thread.
fn timestamp(out: &mut Vec<u8>) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != now.as_secs() {
            *second = now.as_secs();
            text.clear();
            if let Ok(t) = i64::try_from(*second)
                .map_err(|_| ())
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).map_err(|_| ()))
            {
                let (date, clock) = (t.date(), t.time());
                let _ = std::fmt::Write::write_fmt(
                    text,
                    format_args!(
                        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                        date.year(),
                        u8::from(date.month()),
                        date.day(),
                        clock.hour(),
                        clock.minute(),
                        clock.second()
                    ),
                );
            }
        }
        out.extend_from_slice(text.as_bytes());
    });
    out.push(b'.');
    push_decimal(out, u64::from(now.subsec_micros()), 6);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_zero_padded_to_their_width() {
        let cases: [(u64, usize, &str); 7] = [
            (0, 1, "0"),
            (0, 3, "000"),
            (7, 3, "007"),
            (1234, 3, "1234"),
            (999_999, 6, "999999"),
            (42, 6, "000042"),
            (u64::MAX, 1, "18446744073709551615"),
        ];
        for (n, width, want) in cases {
            let mut out = Vec::new();
            push_decimal(&mut out, n, width);
            assert_eq!(
                String::from_utf8(out).as_deref(),
                Ok(want),
                "{n} at width {width}"
            );
        }
    }

    fn entry() -> Access<'static> {
        Access {
            request_id: "00ff00ff00ff00ff",
            method: "GET",
            path: "/static/a.js",
            status: 200,
            duration: Duration::from_micros(1_234),
            decision: "allow:course",
        }
    }

    #[test]
    fn text_lines_have_the_subscribers_shape() {
        let mut line = Vec::new();
        write_text(&mut line, &entry());
        let line = String::from_utf8(line).expect("utf-8");
        let (stamp, rest) = line.split_once("  ").expect("two spaces after the time");
        assert_eq!(stamp.len(), "2026-11-27T13:22:33.449769Z".len(), "{line}");
        assert!(
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{line}"
        );
        assert_eq!(
            rest,
            "INFO ltigate::access: request request_id=00ff00ff00ff00ff method=GET \
             path=/static/a.js status=200 duration_ms=1.234 decision=\"allow:course\""
        );
    }

    #[test]
    fn json_lines_have_the_subscribers_shape() {
        let mut line = Vec::new();
        write_json(&mut line, &entry());
        let value: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], "ltigate::access");
        let fields = &value["fields"];
        assert_eq!(fields["message"], "request");
        assert_eq!(fields["request_id"], "00ff00ff00ff00ff");
        assert_eq!(fields["path"], "/static/a.js");
        assert_eq!(fields["status"], 200);
        assert_eq!(fields["duration_ms"], 1.234);
        assert_eq!(fields["decision"], "allow:course");
        let stamp = value["timestamp"].as_str().expect("timestamp");
        assert!(
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{stamp}"
        );
    }
}
