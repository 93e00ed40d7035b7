//! `TestServer`: the real binary on a free port with a temporary data folder. Stops it on
//! drop; `restart()` and `kill9()` for durability tests.

use super::Api;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A running `app serve`.
pub struct TestServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub addr: String,
    data: tempfile::TempDir,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    /// Everything the server printed on stdout.
    pub stdout_lines: Vec<String>,
}

impl TestServer {
    /// Starts a server with default settings.
    pub async fn start() -> Self {
        Self::start_with(&[], &[]).await
    }

    /// Starts a server with extra `serve` flags and environment variables.
    pub async fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(tempfile::tempdir().expect("temp dir"), args, env).await
    }

    /// Starts a server on an existing data folder (a restored or damaged one).
    pub async fn start_on(data: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut server = Self {
            child: None,
            base: String::new(),
            addr: "127.0.0.1:0".into(),
            data,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            stdout_lines: Vec::new(),
        };
        server.spawn().await;
        server
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Stops the server (SIGTERM) and hands over its data folder, e.g. to damage it and
    /// start another server on it.
    pub fn into_data(mut self) -> tempfile::TempDir {
        assert_eq!(self.stop(), Some(0), "the server stopped cleanly");
        std::mem::replace(&mut self.data, tempfile::tempdir().expect("temp dir"))
    }

    /// The binary under test.
    pub fn binary() -> PathBuf {
        PathBuf::from(env!("CARGO_BIN_EXE_app"))
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The server's resident memory in KiB, `VmRSS` of `/proc/PID/status` (Linux only, as
    /// the memory tests are).
    pub fn rss_kib(&self) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {path}:\n{status}"))
    }

    async fn spawn(&mut self) {
        let mut command = Command::new(Self::binary());
        command
            .arg("serve")
            .arg("--addr")
            .arg(&self.addr)
            .arg("--data")
            .arg(self.data.path())
            .args(&self.extra_args)
            .env("APP_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("APP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env(
                "RUST_LOG",
                if std::env::var_os("TEST_LOG").is_some() {
                    "debug"
                } else {
                    "warn"
                },
            )
            .env_remove("APP_SMTP_URL")
            .env_remove("APP_JWT_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn app serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(error) => {
                    // Nothing else holds the child yet: without this it outlives the test.
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the server did not print its address in time ({error}); it printed {:?}",
                        self.stdout_lines
                    );
                }
            };
            self.stdout_lines.push(line.clone());
            if let Some(rest) = line.strip_prefix("app listening on http://") {
                self.addr = rest.trim().to_string();
                self.base = format!("http://{}", self.addr);
                break;
            }
        }
        // Keep collecting the rest of stdout in the background (not needed by most tests).
        std::thread::spawn(move || while rx.recv().is_ok() {});
        self.child = Some(child);
    }

    /// An API client with no token.
    pub fn api(&self) -> Api {
        Api::new(&self.base)
    }

    /// An API client logged in as the bootstrap super admin.
    pub async fn admin(&self) -> Api {
        self.api().login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// `ws://127.0.0.1:PORT`
    pub fn ws_base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        terminate(&mut child, Duration::from_secs(30))
    }

    /// Sends `signal` (a `kill` name: `STOP`, `CONT`, …) to the server.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// Waits up to `within` for the server to exit by itself; its exit code (`None`: killed
    /// by a signal). Fails the test if it still runs then.
    pub async fn exits_within(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the server still runs {within:?} later"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no chance to flush or close anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same data folder and the same port.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn_on_same_port().await;
    }

    /// Starts again after `kill9`, on the same folder and port.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn_on_same_port().await;
    }

    async fn spawn_on_same_port(&mut self) {
        // The port may linger briefly; retry binding it for a while.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let attempt = std::panic::AssertUnwindSafe(self.spawn());
            match futures_util::FutureExt::catch_unwind(attempt).await {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline => {
                    if let Some(mut child) = self.child.take() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SIGTERM, then waits for the exit; returns the exit code (`None`: killed by a signal).
/// Fails the test (after a SIGKILL) when the process is still running `within` later.
pub fn terminate(child: &mut Child, within: Duration) -> Option<i32> {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not stop within {within:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct AppRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `app ARGS` to its end (killed, and the test failed, after 60 s), off the runtime.
pub async fn run_app(args: &[&str]) -> AppRun {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(TestServer::binary())
            .args(&args)
            .env_remove("APP_DATA_DIR")
            .env_remove("APP_ADDR")
            .env_remove("APP_JWT_SECRET")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn app");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`app {}` did not finish within 60 s", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().expect("output");
        AppRun {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("the run finished")
}
