//! A tiny HTTP server for the demo's platform and upstream, and the helpers
//! their handlers share. Plain HTTP/1.1 and HTTP/2 on loopback, one task per
//! connection, like the test harness's servers.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub type Resp = Response<Full<Bytes>>;

/// Serves every connection `listener` accepts with `handler`, until aborted.
pub fn spawn<F, Fut>(listener: TcpListener, handler: F) -> JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, for instance: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// A response with a body and a content type.
pub fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type.parse().expect("static"));
    h.insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    response
}

pub fn html(status: StatusCode, body: String) -> Resp {
    respond(status, "text/html; charset=utf-8", body)
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Resp {
    respond(status, "application/json", value.to_string())
}

pub fn text(status: StatusCode, body: impl Into<String>) -> Resp {
    respond(status, "text/plain; charset=utf-8", body.into())
}

/// The decoded query pairs of a request.
pub fn query<B>(req: &Request<B>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The first value of a cookie the request carried.
pub fn cookie<B>(req: &Request<B>, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// The request body, at most `limit` bytes.
pub async fn body(req: Request<Incoming>, limit: usize) -> Option<Bytes> {
    Limited::new(req.into_body(), limit)
        .collect()
        .await
        .ok()
        .map(|b| b.to_bytes())
}

/// Text for HTML element content.
pub fn esc(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

/// Text for a double-quoted HTML attribute.
pub fn attr(s: &str) -> String {
    html_escape::encode_double_quoted_attribute(s).into_owned()
}

/// A JSON string literal that is safe inside an inline `<script>`.
pub fn js_string(s: &str) -> String {
    serde_json::Value::from(s)
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Shared page style of the platform and the upstream.
pub const BASE_STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1b1b1b}\
main{padding:1rem 1.5rem}h1{font-size:1.35rem;margin:.4rem 0}h2{font-size:1.05rem;margin:1rem 0 .3rem}\
code,pre{background:#f2f2f2;padding:0 .25rem;font-size:.85rem}pre{padding:.5rem;white-space:pre-wrap;\
word-break:break-all}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .8rem;margin:0}\
dt{font-weight:600}dd{margin:0;word-break:break-all}";
