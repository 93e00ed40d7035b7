//! `NatsCluster`: real `nats-server` processes forming a JetStream cluster on loopback, for the
//! cluster-mode tests (issue 15); a "cluster" of one is a standalone server. Each server gets free client, cluster and monitoring ports, a
//! config file and a store folder in one temporary folder; `kill9` / `restart` play a crashed
//! server; drop stops them all and deletes their files. Readiness is read from the monitoring
//! port (`GET /jsz`), so the harness depends on no NATS client library; [`RawNats`] speaks the
//! few lines of the NATS text protocol a harness test needs to prove JetStream takes writes.
//!
//! The binary is `$NATS_SERVER_BIN`, else `nats-server` on the PATH or in /usr/sbin (Debian's
//! package; `scripts/ensure-nats-server.sh` installs it). A missing binary fails the test: the
//! cluster tests never skip.

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// How long a JetStream meta leader may take to be elected, on a busy 2-core machine.
pub const LEADER_WITHIN: Duration = Duration::from_secs(30);

/// The name the servers' NATS cluster carries (its routes only join servers of that name).
const CLUSTER_NAME: &str = "app-test";

/// One `nats-server` of the cluster.
struct NatsServer {
    name: String,
    client_port: u16,
    http_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A JetStream cluster of real `nats-server` processes on loopback.
pub struct NatsCluster {
    servers: Vec<NatsServer>,
    http: reqwest::Client,
    /// Config files, logs and JetStream stores; deleted on drop, after the servers stop.
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` servers routed to each other (one runs standalone) and waits until
    /// JetStream has a meta leader that every server agrees on. A server that exits at once (a port taken between the
    /// pick and its bind, by a test running alongside) makes it start over on new ports.
    pub async fn start(size: usize) -> Self {
        Self::start_configured(size, "").await
    }

    /// [`NatsCluster::start`] with `extra` appended to every server's config (an
    /// `authorization` block, say).
    pub async fn start_configured(size: usize, extra: &str) -> Self {
        assert!(size >= 1, "a cluster has at least one server");
        let binary = Self::binary();
        let mut attempt = 1;
        loop {
            let mut cluster = Self::launch(&binary, size, extra);
            match cluster.leader().await {
                Ok(_) => return cluster,
                Err((true, why)) if attempt < 3 => {
                    eprintln!("nats cluster: starting over on new ports ({why})");
                    attempt += 1;
                }
                Err((_, why)) => panic!("{why}"),
            }
        }
    }

    /// Writes every server's config and spawns them all.
    fn launch(binary: &Path, size: usize, extra: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("nats-cluster-")
            .tempdir()
            .expect("temp dir for the NATS cluster");
        // All ports at once, each held until every one is picked: no two servers share one.
        let ports = free_ports(size * 3);
        let cluster_ports: Vec<u16> = (0..size).map(|i| ports[i * 3 + 1]).collect();
        let routes = cluster_ports
            .iter()
            .map(|port| format!("\"nats-route://127.0.0.1:{port}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut servers = Vec::with_capacity(size);
        for i in 0..size {
            let name = format!("nats-{i}");
            let (client_port, cluster_port, http_port) =
                (ports[i * 3], ports[i * 3 + 1], ports[i * 3 + 2]);
            let store = dir.path().join(format!("{name}-store"));
            let log = dir.path().join(format!("{name}.log"));
            let config = dir.path().join(format!("{name}.conf"));
            let mut text = format!(
                "server_name: \"{name}\"\n\
                 listen: \"127.0.0.1:{client_port}\"\n\
                 http: \"127.0.0.1:{http_port}\"\n\
                 log_file: \"{log}\"\n\
                 jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n",
                log = log.display(),
                store = store.display(),
            );
            // One server runs standalone, as a single-server deployment does.
            if size > 1 {
                text.push_str(&format!(
                    "cluster {{\n  name: \"{CLUSTER_NAME}\"\n  listen: \"127.0.0.1:{cluster_port}\"\n  routes: [{routes}]\n}}\n"
                ));
            }
            text.push_str(extra);
            std::fs::write(&config, text).expect("write a nats-server config");
            servers.push(NatsServer {
                name,
                client_port,
                http_port,
                config,
                log,
                child: None,
            });
        }
        let mut cluster = Self {
            servers,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("reqwest client"),
            dir,
        };
        for i in 0..size {
            cluster.spawn(binary, i);
        }
        cluster
    }

    /// The `nats-server` binary; panics with how to install it when there is none.
    pub fn binary() -> PathBuf {
        if let Some(explicit) = std::env::var_os("NATS_SERVER_BIN") {
            let path = PathBuf::from(explicit);
            assert!(
                path.is_file(),
                "NATS_SERVER_BIN={} is not a file",
                path.display()
            );
            return path;
        }
        let path_dirs = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .unwrap_or_default();
        path_dirs
            .into_iter()
            .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "nats-server is not installed: the cluster tests need it (run \
                     scripts/ensure-nats-server.sh, or apt-get install -y nats-server, or set \
                     NATS_SERVER_BIN)"
                )
            })
    }

    fn spawn(&mut self, binary: &Path, i: usize) {
        let server = &mut self.servers[i];
        assert!(server.child.is_none(), "{} is already running", server.name);
        let child = Command::new(binary)
            .arg("-c")
            .arg(&server.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        server.child = Some(child);
    }

    /// How many servers the cluster has (running or not).
    pub fn size(&self) -> usize {
        self.servers.len()
    }

    /// Every server's client URL, comma-separated: what `app serve --nats` takes.
    pub fn urls(&self) -> String {
        (0..self.size())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Server `i`'s client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].client_port)
    }

    /// Server `i`'s client address, `127.0.0.1:PORT`.
    pub fn client_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.servers[i].client_port)
    }

    /// Server `i`'s `server_name`.
    pub fn name(&self, i: usize) -> &str {
        &self.servers[i].name
    }

    /// The folder holding every server's config, log and store.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether server `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.servers[i].child.is_some()
    }

    /// The index of the server named `name`.
    pub fn index_of(&self, name: &str) -> usize {
        self.servers
            .iter()
            .position(|server| server.name == name)
            .unwrap_or_else(|| panic!("no server named {name}"))
    }

    /// Server `i`'s monitoring answer at `path` (e.g. `/jsz`, `/routez`); `None` while it
    /// does not answer.
    pub async fn monitor(&self, i: usize, path: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.servers[i].http_port);
        let response = self.http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// The JetStream meta leader server `i` knows of; `None` while it knows none.
    pub async fn meta_leader(&self, i: usize) -> Option<String> {
        let jsz = self.monitor(i, "/jsz").await?;
        let leader = jsz["meta_cluster"]["leader"].as_str()?;
        (!leader.is_empty()).then(|| leader.to_string())
    }

    /// Waits until every running server names the same meta leader, itself a running server;
    /// returns its name. Fails (with the logs' tails) after [`LEADER_WITHIN`], or at once when
    /// a server has exited.
    pub async fn wait_for_leader(&mut self) -> String {
        self.leader()
            .await
            .unwrap_or_else(|(_, why)| panic!("{why}"))
    }

    /// [`NatsCluster::wait_for_leader`], with the failure as `(a server exited, why)`.
    async fn leader(&mut self) -> Result<String, (bool, String)> {
        let deadline = tokio::time::Instant::now() + LEADER_WITHIN;
        loop {
            let dead = self.exited();
            if !dead.is_empty() {
                return Err((true, format!("{}\n{}", dead.join("; "), self.log_tails())));
            }
            // A standalone server has no meta leader: it is ready once JetStream answers.
            if self.size() == 1 && self.is_running(0) && self.monitor(0, "/jsz").await.is_some() {
                return Ok(self.servers[0].name.clone());
            }
            let mut leaders = Vec::new();
            for i in (0..self.size()).filter(|&i| self.is_running(i)) {
                leaders.push(self.meta_leader(i).await);
            }
            if let Some(Some(first)) = leaders.first() {
                let agreed = leaders.iter().all(|l| l.as_deref() == Some(first.as_str()));
                let alive = self
                    .servers
                    .iter()
                    .any(|s| s.name == *first && s.child.is_some());
                if agreed && alive {
                    return Ok(first.clone());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err((
                    false,
                    format!(
                        "no JetStream meta leader that every running server agrees on within \
                         {LEADER_WITHIN:?} (they said {leaders:?})\n{}",
                        self.log_tails()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The servers that should run but have exited, with their exit status.
    fn exited(&mut self) -> Vec<String> {
        let mut dead = Vec::new();
        for server in &mut self.servers {
            if let Some(child) = &mut server.child {
                if let Ok(Some(status)) = child.try_wait() {
                    dead.push(format!("{} exited with {status}", server.name));
                }
            }
        }
        dead
    }

    /// The last lines of every server's log, for failure messages.
    pub fn log_tails(&self) -> String {
        self.servers
            .iter()
            .map(|server| {
                let text = std::fs::read_to_string(&server.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                format!("--- {} ({}):\n{tail}", server.name, server.log.display())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGKILL of server `i`: no chance to tell its peers or flush anything.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The app's log (`APP_CHANGES`) as the JetStream API describes it, asked through
    /// server `via`.
    pub async fn log_info(&self, via: usize) -> Value {
        let mut raw = RawNats::connect(&self.client_addr(via))
            .await
            .expect("connect to NATS");
        raw.request("$JS.API.STREAM.INFO.APP_CHANGES", b"", LEADER_WITHIN)
            .await
            .expect("the log's stream info")
    }

    /// SIGTERM of server `i`, waiting until it has exited: unlike [`NatsCluster::kill9`], the
    /// server tells its peers it is going, and JetStream counts it as offline.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            super::server::terminate(&mut child, Duration::from_secs(30));
        }
    }

    /// Starts server `i` again on its ports, config and store (after [`NatsCluster::kill9`]),
    /// and waits until it agrees with the others on a meta leader.
    pub async fn restart(&mut self, i: usize) {
        self.kill9(i);
        self.spawn(&Self::binary(), i);
        self.wait_for_leader().await;
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill9(i);
        }
        // `dir` drops after this and deletes the stores, configs and logs.
    }
}

/// `count` distinct free loopback ports (each listener is held until all are picked).
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// A bare NATS connection speaking the text protocol: enough to call the JetStream API and
/// publish with an acknowledgement, with no client library.
pub struct RawNats {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// The one subject replies come back on (requests are sequential).
const INBOX: &str = "_INBOX.harness";

impl RawNats {
    /// Connects to `addr` (`127.0.0.1:PORT`) and waits for the server's PONG.
    pub async fn connect(addr: &str) -> Result<Self, String> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr} timed out"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let (read, writer) = stream.into_split();
        let mut nats = Self {
            reader: BufReader::new(read),
            writer,
        };
        let info = nats.line().await?;
        if !info.starts_with("INFO ") {
            return Err(format!("expected INFO, got {info:?}"));
        }
        let hello = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"protocol\":1}}\r\nSUB {INBOX} 1\r\nPING\r\n"
        );
        nats.write(hello.as_bytes()).await?;
        loop {
            match nats.line().await?.as_str() {
                "PONG" => return Ok(nats),
                line if line == "+OK" || line.starts_with("INFO ") => {}
                other => return Err(format!("expected PONG, got {other:?}")),
            }
        }
    }

    /// Publishes `payload` on `subject` and waits up to `within` for the reply, as JSON (a
    /// JetStream API answer or a publish acknowledgement).
    pub async fn request(
        &mut self,
        subject: &str,
        payload: &[u8],
        within: Duration,
    ) -> Result<Value, String> {
        let mut message = format!("PUB {subject} {INBOX} {}\r\n", payload.len()).into_bytes();
        message.extend_from_slice(payload);
        message.extend_from_slice(b"\r\n");
        self.write(&message).await?;
        tokio::time::timeout(within, self.reply())
            .await
            .map_err(|_| format!("no reply to {subject} within {within:?}"))?
    }

    async fn reply(&mut self) -> Result<Value, String> {
        loop {
            let line = self.line().await?;
            if line == "PING" {
                self.write(b"PONG\r\n").await?;
                continue;
            }
            // The server may send INFO at any time: when the cluster's servers change (a
            // killed server's peers announce the new list to every client).
            if line == "+OK" || line == "PONG" || line.starts_with("INFO ") {
                continue;
            }
            if line.starts_with("-ERR") {
                return Err(line);
            }
            // MSG <subject> <sid> [reply-to] <#bytes>
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.first() != Some(&"MSG") {
                return Err(format!("unexpected line {line:?}"));
            }
            let size: usize = fields
                .last()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("no size in {line:?}"))?;
            let mut body = vec![0; size + 2];
            self.reader
                .read_exact(&mut body)
                .await
                .map_err(|e| format!("read a message body: {e}"))?;
            body.truncate(size);
            return serde_json::from_slice(&body)
                .map_err(|e| format!("reply is not JSON ({e}): {body:?}"));
        }
    }

    async fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if read == 0 {
            return Err("the server closed the connection".into());
        }
        Ok(line.trim_end().to_string())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }
}
