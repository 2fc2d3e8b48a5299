//! `ltigate grades list|retry`: operating on deliveries through the running
//! gateway's internal score API (the embedded store is locked by the gateway
//! process, and Redis may be shared, so the gateway is the one place to ask).

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use serde_json::Value;

use crate::client::HttpClient;
use crate::config::Config;

/// Calls the internal API (also for `ltigate sessions`); returns the JSON answer.
pub(super) async fn call(config: &Config, method: Method, path: &str) -> Result<Value, String> {
    let grades = config.grades.as_ref().ok_or(
        "the gateway has no internal API: there is no [grades] table (its `listen` and `token` serve the internal API)",
    )?;
    let mut addr = grades.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = url::Url::parse(&format!("http://{addr}{path}")).map_err(|e| e.to_string())?;
    let request = Request::builder()
        .method(method)
        .uri(url.as_str())
        .header(header::AUTHORIZATION, format!("Bearer {}", grades.token))
        .header(header::USER_AGENT, crate::client::USER_AGENT)
        .body(crate::full_body(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = HttpClient::default()
        .send(&url, request, 16 * 1024 * 1024, Duration::from_secs(30))
        .await
        .map_err(|e| {
            format!("cannot reach the gateway's score API at {addr} ({e}); is ltigate running?")
        })?;
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if !response.status.is_success() {
        let why = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no details");
        return Err(format!("the score API answered {}: {why}", response.status));
    }
    Ok(body)
}

/// `ltigate grades list [--failed]`.
pub async fn list(config: &Config, failed: bool) -> Result<String, String> {
    let path = if failed {
        "/deliveries?failed=1"
    } else {
        "/deliveries"
    };
    let body = call(config, Method::GET, path).await?;
    let list = body
        .get("deliveries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = String::new();
    if list.is_empty() {
        let _ = writeln!(out, "No {}deliveries.", if failed { "failed " } else { "" });
        return Ok(out);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = writeln!(
        out,
        "{:<24}  {:<8}  {:<9}  {:>8}  {:<40}  RESOURCE / LAST ERROR",
        "ID", "STATE", "KIND", "ATTEMPTS", "DUE"
    );
    for d in &list {
        let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
        let due = due_text(d.get("due_at").and_then(Value::as_u64), now);
        let _ = writeln!(
            out,
            "{:<24}  {:<8}  {:<9}  {:>8}  {:<40}  {} {}",
            s(&d["id"]),
            s(&d["state"]),
            s(&d["score"]["kind"]),
            d["attempts"].as_u64().unwrap_or(0),
            due,
            s(&d["resource"]["username"]),
            s(&d["resource"]["usage_key"]),
        );
        if let Some(err) = d.get("last_error").and_then(Value::as_str) {
            let _ = writeln!(out, "{:<24}  last error: {err}", "");
        }
    }
    Ok(out)
}

/// A due time as an operator reads it: `2026-12-03T10:04:10Z (in 4m 10s)`,
/// `… (12s ago)` for one overdue, `never` for a parked delivery.
fn due_text(due_at: Option<u64>, now: u64) -> String {
    let Some(due) = due_at else {
        return "never".to_owned();
    };
    let at = i64::try_from(due)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| due.to_string());
    let span = |secs: u64| {
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        match (h, m) {
            (0, 0) => format!("{s}s"),
            (0, _) => format!("{m}m {s}s"),
            _ => format!("{h}h {m}m"),
        }
    };
    match due.cmp(&now) {
        std::cmp::Ordering::Greater => format!("{at} (in {})", span(due - now)),
        std::cmp::Ordering::Equal => format!("{at} (now)"),
        std::cmp::Ordering::Less => format!("{at} ({} ago)", span(now - due)),
    }
}

/// `ltigate grades retry ID` or `--all-failed`.
pub async fn retry(config: &Config, id: Option<&str>) -> Result<String, String> {
    let path = match id {
        Some(id) => format!(
            "/deliveries/{}/retry",
            form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        ),
        None => "/deliveries/retry-failed".to_owned(),
    };
    let body = call(config, Method::POST, &path).await?;
    Ok(format!(
        "Re-queued {} deliver{}.\n",
        body["requeued"].as_u64().unwrap_or(0),
        if body["requeued"] == 1 { "y" } else { "ies" }
    ))
}

#[cfg(test)]
mod tests {
    use super::due_text;

    #[test]
    fn due_times_read_as_dates_and_spans() {
        let now = 1_796_292_000; // 2026-12-03T10:00:00Z
        assert_eq!(
            due_text(Some(now + 250), now),
            "2026-12-03T10:04:10Z (in 4m 10s)"
        );
        assert_eq!(due_text(Some(now), now), "2026-12-03T10:00:00Z (now)");
        assert_eq!(
            due_text(Some(now - 12), now),
            "2026-12-03T09:59:48Z (12s ago)"
        );
        assert_eq!(
            due_text(Some(now + 7_500), now),
            "2026-12-03T12:05:00Z (in 2h 5m)"
        );
        assert_eq!(due_text(None, now), "never");
    }
}
