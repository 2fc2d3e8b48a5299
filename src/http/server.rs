//! Serving: the listener, TLS, HTTP/1.1 and HTTP/2, and graceful shutdown.
//!
//! Public connections are served by one thread per core (see
//! [`serve_per_core`]), one task per connection, by hyper-util's auto
//! builder. With
//! `tls_cert`/`tls_key` set, connections are terminated with rustls (ALPN h2
//! and http/1.1) under a handshake timeout; HTTP/1 header reads have their own
//! timeout. On shutdown the listener closes at once, in-flight requests get
//! `server.shutdown_grace_sec` to finish, and then the server returns.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::app::{Gateway, PeerAddr, handle};

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Scheme, host and port that platforms and browsers use, without a path.
    pub public_url: url::Url,
    pub allow_http: bool,
    pub tls: Option<TlsFiles>,
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// `https://host[:port]`, without a trailing slash.
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot load the TLS certificate or key: {0}")]
    Tls(String),
}

/// A running gateway.
pub struct Running {
    addr: SocketAddr,
    grades_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the internal score API, when `[grades]` is configured.
    pub fn grades_addr(&self) -> Option<SocketAddr> {
        self.grades_addr
    }

    /// A token that stops the gateway when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, drains in-flight requests (up to the grace period) and returns.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Waits until the gateway has stopped.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds the configured address and serves. Each serving thread gets its
/// own listening socket on the address (`SO_REUSEPORT`), so the kernel
/// spreads new connections evenly across the threads.
pub async fn start(app: Arc<Gateway>) -> Result<Running, ServeError> {
    let addr = app.server.listen;
    let listeners = bind_per_thread(addr, serving_threads())
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_all(listeners, app).await
}

/// Serves on an already bound listener (tests bind `127.0.0.1:0` first),
/// which every serving thread accepts from.
pub async fn start_on(listener: TcpListener, app: Arc<Gateway>) -> Result<Running, ServeError> {
    let addr = app.server.listen;
    let listener = listener
        .into_std()
        .map_err(|source| ServeError::Bind { addr, source })?;
    let listeners = (0..serving_threads())
        .map(|_| listener.try_clone())
        .collect::<io::Result<Vec<_>>>()
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_all(listeners, app).await
}

/// One per core.
fn serving_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// `n` listening sockets on `addr` sharing its port with `SO_REUSEPORT`
/// (for port 0, the port the first one got).
fn bind_per_thread(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    // A plain bind first: with SO_REUSEPORT alone, a second gateway (or a
    // stale one) started on the same address by the same user would quietly
    // share its connections instead of failing.
    if addr.port() != 0 {
        drop(std::net::TcpListener::bind(addr)?);
    }
    let mut listeners = Vec::with_capacity(n);
    let mut bound = addr;
    for _ in 0..n {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(bound)?;
        let listener = socket.listen(1024)?;
        bound = listener.local_addr()?;
        listeners.push(listener.into_std()?);
    }
    Ok(listeners)
}

/// Serves the public listeners, one serving thread each. Also binds the
/// internal score API and starts grade delivery when `[grades]` is
/// configured.
async fn serve_all(
    listeners: Vec<std::net::TcpListener>,
    app: Arc<Gateway>,
) -> Result<Running, ServeError> {
    let addr = listeners
        .first()
        .map(std::net::TcpListener::local_addr)
        .transpose()
        .map_err(|source| ServeError::Bind {
            addr: app.server.listen,
            source,
        })?
        .unwrap_or(app.server.listen);
    let server = &app.server;
    let tls = server.tls.as_ref().map(tls_acceptor).transpose()?;
    let limits = Limits {
        header_read: server.header_read_timeout,
        handshake: server.tls_handshake_timeout,
        grace: server.shutdown_grace,
    };
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut grades_addr = None;
    if let Some(grades) = &app.grades {
        let listen = grades.config().listen;
        let api_listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: listen,
                source,
            })?;
        grades_addr = api_listener.local_addr().ok();
        let api_app = app.clone();
        let api: Handler = Arc::new(move |req, peer| {
            Box::pin(super::score_api::handle(api_app.clone(), req, peer))
        });
        tasks.push(tokio::spawn(accept_loop(
            api_listener,
            api,
            None,
            limits,
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(crate::grades::worker::run(
            grades.clone(),
            shutdown.clone(),
            server.shutdown_grace,
        )));
    }
    let public_app = app.clone();
    let public: Handler =
        Arc::new(move |req, peer| Box::pin(handle(public_app.clone(), req, peer)));
    tasks.push(serve_per_core(
        addr,
        listeners,
        public,
        tls,
        limits,
        shutdown.clone(),
    )?);
    let task = tokio::spawn(async move {
        for t in tasks {
            let _ = t.await;
        }
    });
    Ok(Running {
        addr,
        grades_addr,
        shutdown,
        task,
    })
}

/// Serves the public listeners, one thread each. Each thread runs a
/// single-threaded runtime, so a connection, and the upstream connections
/// its requests open, stay on one thread: no work stealing and no
/// cross-thread wake-ups on the request path. Everything else (grade
/// delivery, the score API, store and Redis background tasks) stays on the
/// main runtime.
fn serve_per_core(
    addr: SocketAddr,
    listeners: Vec<std::net::TcpListener>,
    handler: Handler,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, ServeError> {
    let bind_error = |source| {
        // Threads already started stop again.
        shutdown.cancel();
        ServeError::Bind { addr, source }
    };
    let threads = listeners.len();
    let mut done = Vec::with_capacity(threads);
    for (i, listener) in listeners.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            // Blocking work here is the embedded store's reads.
            .max_blocking_threads(4)
            .build()
            .map_err(bind_error)?;
        let (handler, tls, shutdown) = (handler.clone(), tls.clone(), shutdown.clone());
        let (finished, finished_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("ltigate-serve-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(keep_a_near_timer());
                    match TcpListener::from_std(listener) {
                        Ok(listener) => accept_loop(listener, handler, tls, limits, shutdown).await,
                        Err(e) => tracing::error!(error = %e, "serving thread cannot listen"),
                    }
                });
                let _ = finished.send(());
            })
            .map_err(bind_error)?;
        done.push(finished_rx);
    }
    Ok(tokio::spawn(async move {
        for d in done {
            let _ = d.await;
        }
    }))
}

/// Keeps a timer due within [`NEAR_TIMER`] on a serving thread's runtime.
///
/// Every request arms timers (hyper's header-read timeout, the proxy's
/// deadline). When tokio registers a timer that is due before the time its
/// driver last planned to wake, it wakes its own driver with a system call,
/// even on the same thread. With only long request deadlines pending, that
/// happened on about one request in seven; a timer that is always nearer
/// than any per-request one (the shortest can be set to one second) makes
/// every new timer later than the planned wake-up. It costs two wake-ups a
/// second.
async fn keep_a_near_timer() {
    loop {
        tokio::time::sleep(NEAR_TIMER).await;
    }
}

const NEAR_TIMER: Duration = Duration::from_millis(500);

fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServeError> {
    crate::install_crypto_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(Iterator::collect)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", files.cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| ServeError::Tls(format!("{}: {e}", files.key.display())))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Answers one request from the given client.
type Handler = Arc<
    dyn Fn(
            http::Request<hyper::body::Incoming>,
            PeerAddr,
        ) -> Pin<Box<dyn Future<Output = http::Response<crate::Body>> + Send>>
        + Send
        + Sync,
>;

/// Timeouts shared by every listener.
#[derive(Clone, Copy)]
struct Limits {
    header_read: Duration,
    handshake: Duration,
    grace: Duration,
}

async fn accept_loop(
    listener: TcpListener,
    handler: Handler,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let handshake_timeout = limits.handshake;
    let header_read = limits.header_read;
    let grace = limits.grace;

    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let peer_addr = PeerAddr::new(peer);
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let response = handler(req, peer_addr.clone());
                async move { Ok::<_, std::convert::Infallible>(response.await) }
            });
            match tls {
                None => {
                    let io = FirstBytesDeadline::new(stream, header_read);
                    serve(&builder, watcher, TokioIo::new(io), service).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let io = FirstBytesDeadline::new(tls_stream, header_read);
                            serve(&builder, watcher, TokioIo::new(io), service).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::info!(
        grace_sec = grace.as_secs(),
        "shutting down: draining connections"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
}

async fn serve<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: TokioIo<I>,
    service: S,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<crate::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = builder.serve_connection(io, service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Bytes a connection must send before its first-request deadline is lifted:
/// the length of the HTTP/2 preface, which is what protocol detection reads.
const FIRST_BYTES: usize = 24;

/// Fails reads once `deadline` passes while the connection has sent fewer
/// than [`FIRST_BYTES`] bytes. hyper's header timeout starts only after
/// protocol detection, so without this a client that connects and stays
/// silent (or stops inside the HTTP/2 preface) would hold a socket forever.
///
/// It also closes connections gracefully ("lingering close", as nginx
/// does): on shutdown it sends FIN, then reads and discards what the client
/// is still sending, until the client closes, for at most [`LINGER_FOR`] and
/// [`LINGER_BYTES`]. Closing a socket with unread data resets the
/// connection, and a client still uploading a body the gateway refused
/// (413) would get that reset instead of the response.
struct FirstBytesDeadline<IO> {
    inner: IO,
    remaining: usize,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    closing: Closing,
}

/// Where a connection is in its graceful close.
enum Closing {
    Open,
    /// FIN sent; discarding input until the deadline.
    Lingering {
        until: Pin<Box<tokio::time::Sleep>>,
        discarded: usize,
    },
    Closed,
}

/// How long a closing connection keeps reading the client's leftovers.
const LINGER_FOR: Duration = Duration::from_secs(2);
/// How much of them it reads at most.
const LINGER_BYTES: usize = 32 * 1024 * 1024;

impl<IO> FirstBytesDeadline<IO> {
    fn new(inner: IO, limit: Duration) -> Self {
        Self {
            inner,
            remaining: FIRST_BYTES,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
            closing: Closing::Open,
        }
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstBytesDeadline<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return std::task::Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request within the header read timeout",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_ready() && self.deadline.is_some() {
            let read = buf.filled().len() - before;
            self.remaining = self.remaining.saturating_sub(read);
            if self.remaining == 0 {
                self.deadline = None;
            }
        }
        polled
    }
}

impl<IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite
    for FirstBytesDeadline<IO>
{
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let this = &mut *self;
        if matches!(this.closing, Closing::Open) {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.closing = Closing::Lingering {
                until: Box::pin(tokio::time::sleep(LINGER_FOR)),
                discarded: 0,
            };
        }
        let Closing::Lingering { until, discarded } = &mut this.closing else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    *discarded += buf.filled().len();
                    if *discarded >= LINGER_BYTES {
                        break;
                    }
                }
                // The client closed, or the connection failed.
                Poll::Ready(_) => break,
                Poll::Pending => {
                    if until.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    break;
                }
            }
        }
        this.closing = Closing::Closed;
        Poll::Ready(Ok(()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
