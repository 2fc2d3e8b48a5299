//! The real `ltigate` binary as a child process: spawned on a config file,
//! its stderr in a log file, waited for until healthy, and ended the way a
//! supervisor or a crash ends it (SIGTERM, SIGKILL). Killed when dropped,
//! including on a panic.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for a child process to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// How long a process may take to become healthy: a hang detector, generous
/// for a debug build on a busy machine.
const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

/// An `ltigate serve` process.
pub struct GatewayProcess {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl GatewayProcess {
    pub fn spawn(config: &Path, port: u16, log: PathBuf) -> Self {
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ltigate"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env_remove("LTIGATE_CONFIG")
            .env("LTIGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn ltigate");
        Self { child, port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) until `/healthz` answers 200.
    pub async fn wait_healthy(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "ltigate on port {} exited with {status}:\n{}",
                    self.port,
                    self.log()
                );
            }
            if let Ok(r) = http
                .get(self.url("/healthz"))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "ltigate on port {} did not become healthy within {HEALTHY_WITHIN:?}:\n{}",
            self.port,
            self.log()
        );
    }

    /// SIGKILL: no shutdown, no flush, no destructor. Returns once the
    /// process is gone.
    pub fn sigkill(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Sends SIGTERM (a supervisor's stop) and returns at once.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
