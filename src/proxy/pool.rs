//! Keep-alive HTTP/1.1 connections to the upstream.
//!
//! Every forwarded request goes to one origin, so the pool is a stack of
//! idle connections, with no per-request keying, hashing or URI rewriting.
//! A connection goes back on the stack when its response body has been read
//! to the end, and only once it can take the next request; a response
//! dropped early closes its connection instead. A request that an idle
//! connection could not even start sending (the upstream had just closed
//! it) is retried once on a new connection, so a keep-alive race is never
//! the learner's error. Idle connections are dropped after
//! [`IDLE_TIMEOUT`] and beyond [`MAX_IDLE`].

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
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

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
    /// The thread whose runtime drives the connection.
    thread: std::thread::ThreadId,
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
        if let Some(mut sender) = self.checkout() {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.track(response, sender)),
                Err(mut e) => match e.take_message() {
                    // Never started: the connection was closing. Retry below.
                    Some(unsent) => request = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = self.connect().await?;
        let response = sender.send_request(request).await?;
        Ok(self.track(response, sender))
    }

    /// An idle connection that can take a request, preferring one driven by
    /// this thread (on a serving thread, that keeps the whole exchange on it).
    fn checkout(&self) -> Option<SendRequest<Body>> {
        let here = std::thread::current().id();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let entry = match idle.iter().rposition(|i| i.thread == here) {
                Some(at) => idle.remove(at),
                None => idle.pop()?,
            };
            if entry.since.elapsed() < IDLE_TIMEOUT && entry.sender.is_ready() {
                return Some(entry.sender);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>, PoolError> {
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
        Ok(sender)
    }

    fn track(
        self: &Arc<Self>,
        response: Response<Incoming>,
        sender: SendRequest<Body>,
    ) -> Response<PooledBody> {
        let (parts, inner) = response.into_parts();
        let mut body = PooledBody {
            inner,
            lease: Some(Lease {
                sender,
                pool: self.clone(),
            }),
        };
        if body.inner.is_end_stream() {
            // No body to read (HEAD, 204, 304): the exchange is over.
            body.release();
        }
        Response::from_parts(parts, body)
    }

    fn put(&self, sender: SendRequest<Body>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.retain(|i| !i.sender.is_closed() && i.since.elapsed() < IDLE_TIMEOUT);
            if idle.len() >= MAX_IDLE {
                return;
            }
        }
        idle.push(Idle {
            sender,
            since: Instant::now(),
            thread: std::thread::current().id(),
        });
    }
}

/// A connection lent to one response.
struct Lease {
    sender: SendRequest<Body>,
    pool: Arc<UpstreamPool>,
}

impl Lease {
    fn give_back(self) {
        let Lease { mut sender, pool } = self;
        if sender.is_ready() {
            pool.put(sender);
        } else if !sender.is_closed() {
            // The connection task has not yet taken in the end of the
            // response; wait for it off the request path.
            tokio::spawn(async move {
                if sender.ready().await.is_ok() {
                    pool.put(sender);
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
