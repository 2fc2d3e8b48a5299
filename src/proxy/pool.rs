//! Keep-alive HTTP/1.1 connections to the upstream.
//!
//! Every forwarded request goes to one origin, so the pool is a stack of
//! idle connections, with no per-request keying, hashing or URI rewriting.
//! A connection is only reused by the thread whose runtime drives it.
//! A connection goes back on the stack when its response body has been read
//! to the end, and only once it can take the next request; a response
//! dropped early closes its connection instead. A request that an idle
//! connection could not even start sending (the upstream had just closed
//! it) is retried once on a new connection, so a keep-alive race is never
//! the learner's error. Idle connections are dropped after
//! [`IDLE_TIMEOUT`] and beyond [`MAX_IDLE`].
//!
//! Kept beside hyper-util's legacy `Client`, which does the same for any
//! number of origins: measured with `bench/callgrind` and side-by-side wrk
//! runs (commit eaecf24, 2 cores), forwarding through one shared `Client`
//! costs 65,000 instructions per gated GET against 53,300 here (+22 %, most
//! of it hashing the pool key and checking a connection out), 28
//! allocations against 22, and 0.84× the gated-GET throughput (medians of
//! interleaved `wrk -c32` runs); one `Client` per serving thread still
//! reaches only 0.97× the throughput at 1.07× the CPU per request.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service as _;

use crate::Body;

/// Idle connections older than this are closed rather than reused.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept at most.
pub const MAX_IDLE: usize = 256;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("connect: {0}")]
    Connect(String),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// A connection's request half, with the thread whose runtime drives it.
struct Conn {
    sender: SendRequest<Body>,
    /// Fixed when the connection is made: using the connection from another
    /// thread costs a cross-thread wake-up each way.
    driver: ThreadId,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

pub struct UpstreamPool {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority`, what the connector dials.
    origin: Uri,
    idle: Mutex<Vec<Idle>>,
}

impl UpstreamPool {
    pub fn new(origin: Uri, connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            // HTTP/1.1 only: the pool speaks it on every connection.
            connector: crate::client::connector(connect_timeout, false),
            origin,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `request` (origin-form URI, `Host` already set) and returns the
    /// response, whose body returns the connection to the pool when read.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<Body>,
    ) -> Result<Response<PooledBody>, PoolError> {
        if let Some(mut conn) = self.checkout() {
            match conn.sender.try_send_request(request).await {
                Ok(response) => return Ok(self.track(response, conn)),
                Err(mut e) => match e.take_message() {
                    // Never started: the connection was closing. Retry below.
                    Some(unsent) => request = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        // Connecting (a TLS handshake, for an https upstream) is rare and its
        // future is large; boxed, it does not weigh on every request's.
        let mut conn = Box::pin(self.connect()).await?;
        let response = conn.sender.send_request(request).await?;
        Ok(self.track(response, conn))
    }

    /// An idle connection driven by this thread that can take a request.
    /// Each serving thread keeps its own connections (as each nginx worker
    /// keeps its own keep-alive cache): lending one to another thread would
    /// cost two cross-thread wake-ups on every request it carries.
    fn checkout(&self) -> Option<Conn> {
        let here = std::thread::current().id();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let at = idle.iter().rposition(|i| i.conn.driver == here)?;
            let entry = idle.remove(at);
            if entry.since.elapsed() < IDLE_TIMEOUT && entry.conn.sender.is_ready() {
                return Some(entry.conn);
            }
        }
    }

    /// A new connection, driven by a task on this thread's runtime.
    async fn connect(&self) -> Result<Conn, PoolError> {
        let stream = self
            .connector
            .clone()
            .call(self.origin.clone())
            .await
            .map_err(|e| PoolError::Connect(e.to_string()))?;
        let (sender, connection) = http1::handshake(stream).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(Conn {
            sender,
            driver: std::thread::current().id(),
        })
    }

    fn track(self: &Arc<Self>, response: Response<Incoming>, conn: Conn) -> Response<PooledBody> {
        let (parts, inner) = response.into_parts();
        let mut body = PooledBody {
            inner,
            lease: Some(Lease {
                conn,
                pool: self.clone(),
            }),
        };
        if body.inner.is_end_stream() {
            // No body to read (HEAD, 204, 304): the exchange is over.
            body.release();
        }
        Response::from_parts(parts, body)
    }

    fn put(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.retain(|i| !i.conn.sender.is_closed() && i.since.elapsed() < IDLE_TIMEOUT);
            if idle.len() >= MAX_IDLE {
                return;
            }
        }
        idle.push(Idle {
            conn,
            since: Instant::now(),
        });
    }
}

/// A connection lent to one response.
struct Lease {
    conn: Conn,
    pool: Arc<UpstreamPool>,
}

impl Lease {
    fn give_back(self) {
        let Lease { mut conn, pool } = self;
        if conn.sender.is_ready() {
            pool.put(conn);
        } else if !conn.sender.is_closed() {
            // The connection task has not yet taken in the end of the
            // response; wait for it off the request path.
            tokio::spawn(async move {
                if conn.sender.ready().await.is_ok() {
                    pool.put(conn);
                }
            });
        }
    }
}

/// An upstream response body that returns its connection once read to the end.
pub struct PooledBody {
    inner: Incoming,
    lease: Option<Lease>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.give_back();
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            // An error: the connection is not reused (dropped with the body).
            Poll::Ready(Some(Err(_))) => self.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use http_body_util::BodyExt as _;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// A keep-alive HTTP/1.1 upstream on its own thread that counts the
    /// connections it accepts.
    fn upstream() -> (Uri, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let origin = Uri::try_from(format!("http://{}", listener.local_addr().expect("addr")))
            .expect("origin");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                while let Ok((stream, _)) = listener.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                        TokioIo::new(stream),
                        service_fn(|_req| async {
                            Ok::<_, std::convert::Infallible>(Response::new(crate::full_body(
                                Bytes::from_static(b"ok"),
                            )))
                        }),
                    ));
                }
            });
        });
        (origin, accepted)
    }

    /// Starts a thread with its own runtime, as a serving thread has, that
    /// sends `n` sequential requests through `pool`, reports on `sent`, and
    /// keeps running its runtime (and so its connections) until `done`.
    fn serving_thread(
        pool: &Arc<UpstreamPool>,
        n: usize,
    ) -> (
        mpsc::Receiver<()>,
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    ) {
        let pool = pool.clone();
        let (sent, sent_rx) = mpsc::channel();
        let (done, done_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                for _ in 0..n {
                    let request = Request::builder()
                        .uri("/")
                        .header(http::header::HOST, "upstream")
                        .body(crate::full_body(Bytes::new()))
                        .expect("request");
                    let response = pool.send(request).await.expect("response");
                    let body = response.into_body().collect().await.expect("body");
                    assert_eq!(body.to_bytes().as_ref(), b"ok");
                    // Let the connection task take in the end of the response.
                    tokio::task::yield_now().await;
                }
                let _ = sent.send(());
                let _ = done_rx.await;
            });
        });
        (sent_rx, done, thread)
    }

    #[test]
    fn a_connection_is_reused_only_by_the_thread_that_drives_it() {
        let (origin, accepted) = upstream();
        let pool = UpstreamPool::new(origin, Duration::from_secs(5));
        let (first_sent, first_done, first) = serving_thread(&pool, 3);
        first_sent.recv().expect("first thread's requests");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one thread's sequential requests share one connection"
        );
        // The first thread's connection is idle in the pool and alive, but
        // another thread opens its own rather than borrow it.
        let (second_sent, second_done, second) = serving_thread(&pool, 3);
        second_sent.recv().expect("second thread's requests");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(
            pool.idle.lock().expect("pool").len(),
            2,
            "each thread's connection went back to the pool"
        );
        let _ = (first_done.send(()), second_done.send(()));
        first.join().expect("first thread");
        second.join().expect("second thread");
    }
}
