//! A real `redis-server` on a free loopback port, with append-only persistence
//! (`appendfsync always`) so that a restart keeps its data, or without any
//! persistence, so that a restart starts empty; plain TCP, or TLS with a
//! certificate from a test CA. It can be killed and started again on the
//! same port and data directory, as a crash and a restart are.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Append-only with an fsync per write, or no persistence at all.
    persistent: bool,
    /// With TLS: the test CA's certificate, the one a client must trust.
    pub ca_pem: Option<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl RedisServer {
    /// Starts a server, or fails the test with instructions if it cannot.
    pub fn start() -> Self {
        Self::start_plain(true)
    }

    /// Starts a server that keeps nothing across a restart (no append-only
    /// file, no snapshots): what a crash of an unpersisted Redis loses.
    pub fn start_without_persistence() -> Self {
        Self::start_plain(false)
    }

    fn start_plain(persistent: bool) -> Self {
        let mut server = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            persistent,
            ca_pem: None,
        };
        server.spawn();
        server
    }

    /// Starts a server that speaks only TLS, with a certificate for 127.0.0.1
    /// issued by a CA made for it ([`Self::ca_pem`]).
    pub fn start_tls() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("ca key"))
            .expect("ca certificate");
        let key = KeyPair::generate().expect("server key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("server params")
            .signed_by(&key, &ca)
            .expect("server certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("server.pem"), cert.pem()).expect("write cert");
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("write key");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write ca");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
            persistent: true,
            ca_pem: Some(ca.pem()),
        };
        server.spawn();
        server
    }

    /// With TLS: a file holding [`Self::ca_pem`].
    pub fn ca_file(&self) -> std::path::PathBuf {
        assert!(self.ca_pem.is_some(), "a plain server has no CA");
        self.dir.path().join("ca.pem")
    }

    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) {
        let dir = self.dir.path().display().to_string();
        let port = self.port.to_string();
        let mut args = vec!["--bind", "127.0.0.1", "--save", "", "--dir", &dir];
        if self.persistent {
            args.extend(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            args.extend(["--appendonly", "no"]);
        }
        let (cert, key) = (format!("{dir}/server.pem"), format!("{dir}/server.key"));
        if self.ca_pem.is_some() {
            args.extend([
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-auth-clients",
                "no",
            ]);
        } else {
            args.extend(["--port", &port]);
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}). The Redis tests need a real Redis: \
                     install it with `apt-get install redis-server` (.ci/run does this)."
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // A TLS server is ready once it accepts connections: it starts
            // empty, with nothing to load first.
            let ready = if self.ca_pem.is_some() {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                ping(self.port)
            };
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on port {} did not answer PING within 10 s",
            self.port
        );
    }

    /// Kills the server (like a crash or an outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
