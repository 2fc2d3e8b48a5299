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

/// Calls the internal API; returns the JSON answer.
async fn call(config: &Config, method: Method, path: &str) -> Result<Value, String> {
    let grades = config
        .grades
        .as_ref()
        .ok_or("grade passback is not configured: there is no [grades] table")?;
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
    let _ = writeln!(
        out,
        "{:<24}  {:<8}  {:<9}  {:>8}  {:<12}  RESOURCE / LAST ERROR",
        "ID", "STATE", "KIND", "ATTEMPTS", "DUE"
    );
    for d in &list {
        let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
        let due = d
            .get("due_at")
            .and_then(Value::as_u64)
            .map_or("never".to_owned(), |t| t.to_string());
        let _ = writeln!(
            out,
            "{:<24}  {:<8}  {:<9}  {:>8}  {:<12}  {} {}",
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
