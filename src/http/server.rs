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
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::app::{Gateway, PeerAddr, handle};

mod body;
mod idle;
mod limits;
mod stream;

use body::{BodyLimits, ReadDeadline};
use idle::{Activity, Tracked};
use limits::{Connections, RateLimited};
use stream::FirstBytesDeadline;

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
    /// How long a request body may take to arrive, plus one second per
    /// `body_min_bytes_per_sec` bytes received (see `server/body.rs`).
    pub body_read_timeout: Duration,
    pub body_min_bytes_per_sec: u64,
    /// How long a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    pub http2_keep_alive_interval: Duration,
    pub http2_max_concurrent_streams: u32,
    /// Open connections in all, and from one client (an IPv4 address or
    /// an IPv6 /64).
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
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
    let limits = Limits::new(server);
    // Descriptors bound how many connections can be served at all: raise
    // the soft limit, and keep the global bound inside it, so that a flood
    // is refused by the bound instead of starving accept() of descriptors.
    let budget = limits::connection_budget(server.max_connections, limits::raise_fd_limit());
    if budget < server.max_connections {
        tracing::warn!(
            max_connections = server.max_connections,
            serving = budget,
            "the open-file limit is too low for server.max_connections; serving fewer"
        );
    }
    let public_connections = Connections::new(budget, server.max_connections_per_ip);
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
        // The score API counts its own connections: a flood on the public
        // listener does not lock the LMS out of it.
        tasks.push(tokio::spawn(accept_loop(
            api_listener,
            api,
            None,
            limits,
            Connections::new(budget, server.max_connections_per_ip),
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
        public_connections,
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
    connections: Arc<Connections>,
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
        let connections = connections.clone();
        let (finished, finished_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("ltigate-serve-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(keep_a_near_timer());
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            accept_loop(listener, handler, tls, limits, connections, shutdown)
                                .await;
                        }
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
            http::Request<ReadDeadline<hyper::body::Incoming>>,
            PeerAddr,
        ) -> Pin<Box<dyn Future<Output = http::Response<crate::Body>> + Send>>
        + Send
        + Sync,
>;

/// Timeouts and bounds shared by every listener.
#[derive(Clone, Copy)]
struct Limits {
    header_read: Duration,
    handshake: Duration,
    grace: Duration,
    body: BodyLimits,
    idle: Duration,
    keep_alive: Duration,
    max_streams: u32,
}

impl Limits {
    fn new(server: &ServerConfig) -> Self {
        Self {
            header_read: server.header_read_timeout,
            handshake: server.tls_handshake_timeout,
            grace: server.shutdown_grace,
            body: BodyLimits {
                timeout: server.body_read_timeout,
                min_bytes_per_sec: server.body_min_bytes_per_sec,
            },
            idle: server.idle_timeout,
            keep_alive: server.http2_keep_alive_interval,
            max_streams: server.http2_max_concurrent_streams,
        }
    }
}

/// How long the accept loop pauses after a failed accept (out of
/// descriptors, most likely), instead of spinning on a listener that stays
/// readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// hyper's connection settings for the given limits.
///
/// - HTTP/1: `header_read_timeout` (with the timer it needs) bounds how long
///   a request head, or the next one on a kept-alive connection, may take
///   (hyper `server::conn::http1::Builder::header_read_timeout`).
/// - HTTP/2: `keep_alive_interval` sends a PING when the connection has
///   been quiet that long, and `keep_alive_timeout` closes it when the PING
///   is not answered in time, so dead peers go (hyper
///   `server::conn::http2::Builder::keep_alive_interval`/`_timeout`; both
///   need the timer). `max_concurrent_streams` is the
///   SETTINGS_MAX_CONCURRENT_STREAMS a client may open at once; hyper's
///   default is 200 (its docs: "Default is 200"). hyper gives HTTP/2 no
///   header or idle timeout: [`idle::Activity`] is that.
fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.keep_alive)
        .keep_alive_timeout(limits.keep_alive)
        .max_concurrent_streams(limits.max_streams);
    builder
}

async fn accept_loop(
    listener: TcpListener,
    handler: Handler,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
) {
    let builder = Arc::new(builder(limits));
    // Every connection task holds a receiver; the loop waits for them all
    // to be dropped when it drains.
    let (drained, open) = tokio::sync::watch::channel(());
    let accept_errors = RateLimited::new();

    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    if let Some(errors) = accept_errors.note(tokio::time::Instant::now()) {
                        tracing::warn!(error = %e, errors, "accept failed; backing off");
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        let slot = match connections.open(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                // Closed at once, before a byte is read: it costs the
                // descriptor only for this moment.
                drop(stream);
                connections.refused(peer.ip(), why);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let open = open.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            let activity = Activity::new();
            let peer_addr = PeerAddr::new(peer);
            let service = {
                let activity = activity.clone();
                service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let busy = activity.busy();
                    let req = req.map(|body| ReadDeadline::new(body, limits.body));
                    let response = handler(req, peer_addr.clone());
                    async move {
                        let response = response.await;
                        Ok::<_, std::convert::Infallible>(
                            response.map(|body| Tracked::new(body, busy)),
                        )
                    }
                })
            };
            let conn = Conn {
                builder: &builder,
                activity: &activity,
                limits,
                shutdown: &shutdown,
            };
            match tls {
                None => {
                    let io = FirstBytesDeadline::new(stream, limits.header_read);
                    conn.serve(TokioIo::new(io), service).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(limits.handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let io = FirstBytesDeadline::new(tls_stream, limits.header_read);
                            conn.serve(TokioIo::new(io), service).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    drop(open);
    tracing::info!(
        grace_sec = limits.grace.as_secs(),
        "shutting down: draining connections"
    );
    if tokio::time::timeout(limits.grace, drained.closed())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
}

/// What serving one connection needs.
struct Conn<'a> {
    builder: &'a auto::Builder<TokioExecutor>,
    activity: &'a Activity,
    limits: Limits,
    shutdown: &'a CancellationToken,
}

impl Conn<'_> {
    /// Serves the connection until it ends. On shutdown, or once it is idle
    /// (see [`idle`]), it is shut down gracefully: hyper
    /// (`auto::Connection::graceful_shutdown`) sends HTTP/2 GOAWAY or ends
    /// HTTP/1 keep-alive, lets requests in flight finish, and closes.
    async fn serve<I, S>(self, io: TokioIo<I>, service: S)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<
                http::Request<hyper::body::Incoming>,
                Response = http::Response<Tracked>,
                Error = std::convert::Infallible,
            > + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        let idle = self
            .activity
            .idle(self.limits.header_read, self.limits.idle);
        tokio::pin!(idle);
        let mut closing = false;
        loop {
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = self.shutdown.cancelled(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = &mut idle, if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
