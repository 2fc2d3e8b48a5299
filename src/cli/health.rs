//! `ltigate health`: probes the running gateway's `/healthz`, for container
//! health checks, with the project's own outbound client.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};

use crate::client::{HttpClient, USER_AGENT};
use crate::config::Config;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Ok when the gateway configured in `config` answers `/healthz` with 200.
pub async fn probe(config: &Config) -> Result<(), String> {
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let client = HttpClient::new(PROBE_TIMEOUT);
    if config.server.tls.is_some() {
        // A TLS listener: a completed TCP connect is the best a probe without
        // the certificate's trust can check.
        return tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("{addr}: connect timed out"))?
            .map(drop)
            .map_err(|e| format!("{addr}: {e}"));
    }
    let url = url::Url::parse(&format!("http://{addr}/healthz")).map_err(|e| e.to_string())?;
    let request = Request::get(url.as_str())
        .header(header::USER_AGENT, USER_AGENT)
        .body(crate::full_body(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = client
        .send(&url, request, 1024, PROBE_TIMEOUT)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    match response.status {
        StatusCode::OK => Ok(()),
        other => Err(format!("{addr}/healthz answered {other}, not 200")),
    }
}
