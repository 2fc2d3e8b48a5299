//! Serving: the listener, TLS, HTTP/1.1 and HTTP/2, and graceful shutdown.
//!
//! One task per connection, served by hyper-util's auto builder. With
//! `tls_cert`/`tls_key` set, connections are terminated with rustls (ALPN h2
//! and http/1.1) under a handshake timeout; HTTP/1 header reads have their own
//! timeout. On shutdown the listener closes at once, in-flight requests get
//! `server.shutdown_grace_sec` to finish, and then the server returns.

use std::io;
use std::net::SocketAddr;
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

use crate::app::{AppState, PeerAddr, handle};
use crate::config::TlsFiles;

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
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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

/// Binds the configured address and serves.
pub async fn start(app: Arc<AppState>) -> Result<Running, ServeError> {
    let addr = app.config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    start_on(listener, app)
}

/// Serves on an already bound listener (tests bind `127.0.0.1:0` first).
pub fn start_on(listener: TcpListener, app: Arc<AppState>) -> Result<Running, ServeError> {
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: app.config.server.listen,
        source,
    })?;
    let tls = app
        .config
        .server
        .tls
        .as_ref()
        .map(tls_acceptor)
        .transpose()?;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(accept_loop(listener, app, tls, shutdown.clone()));
    Ok(Running {
        addr,
        shutdown,
        task,
    })
}

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

async fn accept_loop(
    listener: TcpListener,
    app: Arc<AppState>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(app.config.server.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let handshake_timeout = app.config.server.tls_handshake_timeout;
    let grace = app.config.server.shutdown_grace;

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
        let app = app.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                let app = app.clone();
                req.extensions_mut().insert(PeerAddr(peer));
                async move { Ok::<_, std::convert::Infallible>(handle(app, req).await) }
            });
            match tls {
                None => serve(&builder, watcher, TokioIo::new(stream), service).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve(&builder, watcher, TokioIo::new(tls_stream), service).await;
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
