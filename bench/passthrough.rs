//! The benchmark's floor for the design's crates: a reverse proxy with no
//! gating at all, built like ltigate's serving path (one single-threaded
//! tokio runtime per core on its own `SO_REUSEPORT` socket, hyper's HTTP/1.1
//! server, and a hyper HTTP/1.1 client connection kept alive per client
//! connection). It forwards every request unchanged and adds nothing, so the
//! difference between it and nginx is what hyper and tokio cost, and the
//! difference between ltigate and it is what gating costs.
//!
//!   passthrough LISTEN_ADDR UPSTREAM_ADDR

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::client::conn::http1::{self as client, SendRequest};
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::Mutex;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: passthrough LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(64);
    };
    let listen: SocketAddr = listen.parse().expect("LISTEN_ADDR");
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM_ADDR");
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    // tokio's socket API wants a runtime even to bind.
    let binding = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let _in_runtime = binding.enter();
    let serving: Vec<_> = (0..threads)
        .map(|_| {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.set_reuseaddr(true).expect("SO_REUSEADDR");
            socket.set_reuseport(true).expect("SO_REUSEPORT");
            socket.bind(listen).expect("bind");
            let listener = socket
                .listen(1024)
                .expect("listen")
                .into_std()
                .expect("std");
            std::thread::spawn(move || serve(listener, upstream))
        })
        .collect();
    for thread in serving {
        thread.join().expect("serving thread");
    }
}

fn serve(listener: std::net::TcpListener, upstream: SocketAddr) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                // HTTP/1.1 requests on one connection come one at a time, so
                // this lock is never contended.
                let to_upstream: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::default();
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let to_upstream = to_upstream.clone();
                    async move {
                        let mut held = to_upstream.lock().await;
                        let ready = match held.as_mut() {
                            Some(sender) => sender.ready().await.is_ok(),
                            None => false,
                        };
                        if !ready {
                            let stream = tokio::net::TcpStream::connect(upstream).await?;
                            let _ = stream.set_nodelay(true);
                            let (sender, connection) =
                                client::handshake(TokioIo::new(stream)).await.map_err(io)?;
                            tokio::spawn(connection);
                            *held = Some(sender);
                        }
                        let sender = held.as_mut().expect("connected above");
                        sender.send_request(request).await.map_err(io)
                    }
                });
                let _ = server::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn io(e: hyper::Error) -> std::io::Error {
    std::io::Error::other(e)
}
