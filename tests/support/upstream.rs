//! A test LMS: records every request it receives and answers by path.
//!
//! - `/ltigate/xblock/<usage_key>` (the LMS app's display view) and
//!   `/xblock/<usage_key>` (stock `render_xblock`): 200 HTML naming the block;
//!   404 if the block id is `missing`; for a block id `gated`, the 302 that
//!   `render_xblock` gives a unit in a gated sequence, to the sequence's
//!   `/xblock/<sequence>` (a relative URL, as Django's `redirect` writes it);
//! - `/redirect-off-site[?300]`: 302 (or 300) to another host (as `jump_to`
//!   sends a learner to the learning MFE), setting a `sessionid` cookie as a
//!   login on that response would;
//! - `/redirect-to?<path>`: 302 to `<path>` on this host, relative;
//! - `/slow/...`: waits `slow` before answering;
//! - `/set-cookie`: sets cookies with a `Domain`;
//! - `/redirect`: 302 to its own absolute URL;
//! - `/upload`: reads the whole body and answers its size;
//! - `/static/cache-control[?<v>&<v>...]`: 200 with one `Cache-Control`
//!   header per percent-decoded `&`-separated value (none without a query);
//! - `/ltigate/score`: the composite score endpoint, answering the score set
//!   with [`TestUpstream::set_composite_score`] (404 until one is set);
//! - anything else: 200 `ok <path>`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Seen {
    /// Every value of a header (case-insensitive name).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).first().copied()
    }
}

pub struct TestUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// What `/ltigate/score` answers: `{"earned": x, "possible": y}`.
    composite: Arc<Mutex<Option<(f64, f64)>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl TestUpstream {
    pub async fn start() -> Self {
        Self::start_with(Duration::from_secs(3)).await
    }

    /// `slow` is how long `/slow/...` waits.
    pub async fn start_with(slow: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let composite = Arc::new(Mutex::new(None));
        let score = composite.clone();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let log = log.clone();
                let score = score.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        let score = score.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                answer(req, &log, addr, slow, &score).await,
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            composite,
            connections,
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sets what the composite score endpoint (`/ltigate/score`) answers.
    pub fn set_composite_score(&self, earned: f64, possible: f64) {
        *self.composite.lock().expect("lock") = Some((earned, possible));
    }

    /// The requests the composite score endpoint received.
    pub fn score_requests(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.target.starts_with("/ltigate/score"))
            .collect()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    pub fn last(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }
}

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    log: &Mutex<Vec<Seen>>,
    addr: SocketAddr,
    slow: Duration,
    composite: &Mutex<Option<(f64, f64)>>,
) -> hyper::Response<Full<Bytes>> {
    let method = req.method().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    log.lock().expect("lock").push(Seen {
        method,
        target,
        headers,
        body_len: body.len(),
    });
    let respond = |status: u16, body: String| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "text/html; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    };
    let redirect = |location: String| {
        hyper::Response::builder()
            .status(302)
            .header("location", location)
            .body(Full::new(Bytes::new()))
            .expect("response")
    };
    if let Some(key) = path
        .strip_prefix("/ltigate/xblock/")
        .or_else(|| path.strip_prefix("/xblock/"))
    {
        if key.ends_with("@missing") {
            return respond(404, "<h1>Page not found (LMS)</h1>".into());
        }
        if let Some(course) = key.strip_suffix("@gated") {
            let course = course.split("+type@").next().unwrap_or_default();
            return redirect(format!("/xblock/{course}+type@sequential+block@seq"));
        }
        return respond(200, format!("<html><body>block {key}</body></html>"));
    }
    if path == "/redirect-off-site" {
        let status = if query.as_deref() == Some("300") {
            300
        } else {
            302
        };
        return hyper::Response::builder()
            .status(status)
            .header("location", "https://apps.lms.example.com/learning/course/x")
            .header("set-cookie", "sessionid=fresh; Path=/; HttpOnly")
            .body(Full::new(Bytes::new()))
            .expect("response");
    }
    if path == "/redirect-to" {
        return redirect(query.unwrap_or_else(|| "/".to_owned()));
    }
    if path == "/ltigate/score" {
        let score = *composite.lock().expect("lock");
        return match score {
            Some((earned, possible)) => hyper::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(
                    serde_json::json!({"earned": earned, "possible": possible}).to_string(),
                )))
                .expect("response"),
            None => respond(404, "no composite score set".into()),
        };
    }
    if path == "/static/cache-control" {
        let mut response = hyper::Response::builder().status(200);
        for value in query.as_deref().unwrap_or_default().split('&') {
            let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            if !value.is_empty() {
                response = response.header("cache-control", value.as_ref());
            }
        }
        return response
            .body(Full::new(Bytes::from_static(b"cached?")))
            .expect("response");
    }
    if path == "/static/refresh" {
        // A redirect by `Refresh` header, which Location-based checks miss.
        return hyper::Response::builder()
            .status(200)
            .header("refresh", "0; url=https://apps.lms.example.com/learning/")
            .body(Full::new(Bytes::from_static(b"refreshing")))
            .expect("response");
    }
    if path.starts_with("/slow/") {
        tokio::time::sleep(slow).await;
        return respond(200, "slow ok".into());
    }
    match path.as_str() {
        // The LMS app's logout view, as Django ends a session: the cookie
        // is expired the way `HttpResponse.delete_cookie` writes it.
        "/ltigate/logout" => hyper::Response::builder()
            .status(200)
            .header(
                "set-cookie",
                "sessionid=\"\"; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/",
            )
            .body(Full::new(Bytes::from_static(b"{\"logged_out\": true}")))
            .expect("response"),
        "/set-cookie" => hyper::Response::builder()
            .status(200)
            .header(
                "set-cookie",
                "sessionid=abc; Domain=.example.com; Path=/; HttpOnly",
            )
            .header(
                "set-cookie",
                "csrftoken=xyz; Domain=lms.example.com; Path=/",
            )
            .header("set-cookie", "ltigate_session=forged; Path=/")
            .header("connection", "close, x-hop")
            .header("x-hop", "secret")
            .body(Full::new(Bytes::from_static(b"cookies")))
            .expect("response"),
        "/redirect" => hyper::Response::builder()
            .status(302)
            .header(
                "location",
                format!("http://{addr}/static/after-redirect.js"),
            )
            .body(Full::new(Bytes::new()))
            .expect("response"),
        "/upload" => respond(200, format!("received {}", body.len())),
        _ => respond(200, format!("ok {path}")),
    }
}
