//! The network edge against hostile clients (API.md "Limits, timeouts and hostile clients"):
//! half-sent requests, connection floods past the cap, SIGTERM with clients that never
//! finish, DNS-rebinding `Host` headers, malformed ids, WebSocket protocol violations, and
//! secrets and files an attacker on the same machine could read.

use crate::support::{metric, Api, RawFrame, SilentPeer, TestServer, Ws, WsEvent, SOON};
use futures_util::future::join_all;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `app serve` started by hand (behind `prlimit`, or on a data folder of the test's choice),
/// killed on drop.
struct Spawned {
    child: Child,
    addr: String,
}

impl Spawned {
    /// Runs `prefix… app serve --addr 127.0.0.1:0 --data data args…` and waits for its banner.
    fn start(prefix: &[&str], data: &Path, args: &[&str]) -> Spawned {
        let binary = TestServer::binary();
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        let mut child = command
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("APP_SMTP_URL")
            .env_remove("APP_JWT_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn app serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the server printed its address")
                .expect("stdout line");
            if let Some(rest) = line.strip_prefix("app listening on http://") {
                break rest.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Spawned { child, addr }
    }

    /// Seconds of CPU the process has used (utime + stime of `/proc/<pid>/stat`).
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc/<pid>/stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("stat format")
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        ticks as f64 / 100.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test process holds as many sockets as the server: it needs more than the usual 1024.
fn raise_own_file_limit() {
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the test's open-file limit");
}

/// Opens `n` connections to `addr`, each having sent `bytes` (nothing when empty).
async fn open_connections(addr: &str, n: usize, bytes: &'static [u8]) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let opened = join_all(chunk.iter().map(|_| async {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            if !bytes.is_empty() {
                stream.write_all(bytes).await.expect("send partial request");
            }
            stream
        }))
        .await;
        streams.extend(opened);
    }
    streams
}

/// Whether the server closes `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // An error answer (e.g. 408) before the close is fine.
            Ok(Ok(_)) => continue,
        }
    }
}

/// A GET of `/healthz` on its own connection, and how long it took.
async fn healthz(base: &str) -> (u16, Duration) {
    let client = reqwest::Client::builder()
        .timeout(SOON)
        .build()
        .expect("client");
    let started = Instant::now();
    let status = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map(|response| response.status().as_u16())
        .unwrap_or(0);
    (status, started.elapsed())
}

#[tokio::test]
async fn a_thousand_half_sent_requests_are_closed_at_the_header_timeout_while_others_are_served() {
    raise_own_file_limit();
    let server = TestServer::start_with(&["--header-timeout-secs", "2"], &[]).await;
    let opened = Instant::now();
    let mut partial = open_connections(&server.addr, 1000, b"GET /healthz HTTP/1.1\r\nHo").await;

    for _ in 0..10 {
        let (status, took) = healthz(&server.base).await;
        assert_eq!(status, 200);
        assert!(took < Duration::from_millis(100), "/healthz took {took:?}");
    }
    // Every one closed by the 2 s timeout (plus scheduling slack on a busy 2-core machine).
    let deadline = opened + Duration::from_secs(2) + Duration::from_secs(3);
    for stream in &mut partial {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            closed_within(stream, left).await,
            "a half-sent request outlived the header timeout"
        );
    }
    let (status, _) = healthz(&server.base).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout() {
    let server = TestServer::start_with(&["--header-timeout-secs", "1"], &[]).await;
    let mut stream = TcpStream::connect(&server.addr).await.expect("connect");
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut buffer = [0u8; 4096];
    let n = stream.read(&mut buffer).await.expect("answer");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    // Idle between requests is the keep-alive's 75 s, not the header timeout.
    assert!(!closed_within(&mut stream, Duration::from_secs(3)).await);
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send again");
    let n = stream.read(&mut buffer).await.expect("second answer");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn sigterm_exits_0_within_the_grace_whatever_clients_do() {
    let mut server = TestServer::start_with(
        &["--shutdown-grace-secs", "2", "--header-timeout-secs", "60"],
        &[],
    )
    .await;
    let admin = server.admin().await;
    let token = admin.token.clone().expect("token");
    let path = format!("/ws/dashboard/?token={token}");
    let mut listening = Ws::connect(&server.ws_base(), &path).await;
    listening.frame().await;
    // A reader that stopped reading, its small buffer full of ~800-byte frames.
    let _stalled = Ws::connect_with_receive_buffer(&server.ws_base(), &path, 4096).await;
    for i in 0..128 {
        let name = format!("{i} {}", "𝄞".repeat(190));
        admin
            .create_business(&name, &format!("stall-{i}"), "o@example.com")
            .await;
    }
    // Half-sent heads, and a head whose body never comes.
    let _partial = open_connections(&server.addr, 20, b"GET /healthz HTTP/1.1\r\nHo").await;
    let body_request = format!(
        "POST /api/auth/token/ HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{\"email\"",
        server.addr
    );
    let mut body = TcpStream::connect(&server.addr).await.expect("connect");
    body.write_all(body_request.as_bytes()).await.expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The listening client keeps reading through the shutdown, as a live dashboard does: with
    // its frames unread, the server's bounded send buffer would hold the 1001 back.
    let reader = tokio::spawn(async move {
        while let Some(event) = listening.read_within(Duration::from_secs(6)).await {
            match event {
                WsEvent::Closed(1001) => return true,
                WsEvent::Frame(_) => {}
                WsEvent::Closed(_) | WsEvent::Gone => return false,
            }
        }
        false
    });

    let started = Instant::now();
    let code = tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop");
    let took = started.elapsed();
    assert_eq!(code, Some(0), "exit status");
    assert!(took < Duration::from_secs(4), "exited after {took:?}");
    assert!(
        reader.await.expect("reader"),
        "the reading WebSocket got 1001"
    );
}

#[tokio::test]
async fn past_max_connections_new_ones_are_refused_at_once_and_served_again_later() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        panic!("this test needs util-linux `prlimit`");
    }
    raise_own_file_limit();
    let data = tempfile::tempdir().expect("temp dir");
    let server = Spawned::start(
        &["prlimit", "--nofile=512:512", "--"],
        data.path(),
        &["--max-connections", "400", "--header-timeout-secs", "60"],
    );
    let base = format!("http://{}", server.addr);
    let mut held = open_connections(&server.addr, 400, b"").await;
    // The server has taken them all (the 400th slot is in use once a request is refused).
    let mut excess = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&server.addr).await.expect("connect");
        assert!(
            closed_within(&mut stream, Duration::from_secs(1)).await,
            "a connection past the cap was left hanging"
        );
        excess.push(stream);
    }
    let cpu_before = server.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = server.cpu_seconds() - cpu_before;
    assert!(
        cpu < 0.1,
        "the server used {cpu} s of CPU in 2 s while full"
    );

    held.truncate(390);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = healthz(&base).await;
    assert_eq!(status, 200, "served again once connections closed");
    assert!(metric(&base, "app_connections_refused_total").await >= 50);
}

#[tokio::test]
async fn a_foreign_host_on_loopback_is_misdirected() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let port = server.addr.rsplit(':').next().expect("port");
    for (host, status) in [
        ("evil.example".to_string(), 421),
        (format!("evil.example:{port}"), 421),
        (format!("localhost:{port}"), 200),
        (format!("[::1]:{port}"), 200),
        ("127.0.0.1".to_string(), 200),
    ] {
        let response = http
            .get(format!("{}/healthz", server.base))
            .header("host", &host)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), status, "Host: {host}");
        if status == 421 {
            let body: serde_json::Value = response.json().await.expect("JSON error");
            assert_eq!(body["error"]["code"], "misdirected_request");
        }
    }
    // The WebSocket upgrade too.
    let mut stream = TcpStream::connect(&server.addr).await.expect("connect");
    stream
        .write_all(
            b"GET /ws/dashboard/ HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .expect("send");
    let mut buffer = [0u8; 1024];
    let n = stream.read(&mut buffer).await.expect("answer");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 421"));

    let listed = TestServer::start_with(&["--allowed-hosts", "app.example.com"], &[]).await;
    let response = http
        .get(format!("{}/healthz", listed.base))
        .header("host", "App.Example.com:443")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200, "a host in --allowed-hosts");
}

#[tokio::test]
async fn a_malformed_id_is_not_found_whatever_the_method() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Salon", "salon-ids", "o@example.com")
        .await;
    let id = business["id"].as_str().expect("id");
    let paths = [
        "/api/businesses/not-a-uuid/".to_string(),
        "/api/businesses/not-a-uuid/reservations/".to_string(),
        format!("/api/businesses/{id}/reservations/not-a-uuid/cancel/"),
        "/api/users/not-a-uuid/".to_string(),
    ];
    for path in &paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let answer = admin.call(method, path, Some(json!({}))).await;
            assert_eq!(
                (answer.status, answer.code()),
                (404, "not_found"),
                "{method} {path}"
            );
        }
    }
    // A well-formed id keeps its own answers.
    let answer = Api::new(&server.base)
        .call("PATCH", &format!("/api/businesses/{id}/"), Some(json!({})))
        .await;
    assert_eq!(answer.status, 401);
}

/// A masked client frame (RFC 6455 §5.3) with `first` as its first byte.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![
        first,
        0x80 | u8::try_from(payload.len()).expect("short payload"),
    ];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

#[tokio::test]
async fn websocket_protocol_violations_close_with_1007_and_1002() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let token = admin.token.clone().expect("token");
    let path = format!("/ws/dashboard/?token={token}");
    let cases: [(&str, Vec<u8>, u16); 4] = [
        (
            "invalid UTF-8 in a text frame",
            masked(0x81, &[0xff, 0xfe, 0xfd]),
            1007,
        ),
        (
            "an unmasked client frame",
            vec![0x81, 0x02, b'h', b'i'],
            1002,
        ),
        ("a reserved bit set", masked(0xc1, b"{}"), 1002),
        ("a reserved opcode", masked(0x83, b"{}"), 1002),
    ];
    for (what, frame, expected) in cases {
        let mut peer = SilentPeer::connect(&server.addr, &path).await;
        assert!(
            matches!(peer.frame().await, Some(RawFrame::Text(_))),
            "hello"
        );
        peer.write_raw(&frame).await;
        let code = loop {
            match peer.frame().await {
                Some(RawFrame::Close(code)) => break code,
                Some(_) => continue,
                None => panic!("{what}: closed without a close frame"),
            }
        };
        assert_eq!(code, expected, "{what}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_is_private_and_secrets_come_from_files() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("fresh").join("data");
    let secret_file = root.path().join("jwt.secret");
    let secret = "a-secret-of-more-than-16-bytes";
    std::fs::write(&secret_file, format!("{secret}\n")).expect("write secret");
    let server = Spawned::start(
        &[],
        &data,
        &[
            "--jwt-secret-file",
            secret_file.to_str().expect("utf-8 path"),
        ],
    );
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700, "data folder");
    assert_eq!(mode(&data.join("db")), 0o700, "db folder");
    assert_eq!(mode(&data.join("mail")), 0o700, "mail folder");
    assert!(
        !data.join("secret.key").exists(),
        "no generated secret when one is given"
    );

    // A token signed with the file's secret is accepted (minted offline: the store is
    // the server's while it runs; the admin is first run's).
    drop(server);
    let output = Command::new(TestServer::binary())
        .args(["token", "--email", "admin@localhost", "--data"])
        .arg(&data)
        .env("APP_JWT_SECRET", secret)
        .output()
        .expect("app token");
    assert!(output.status.success(), "app token: {output:?}");
    let token = String::from_utf8(output.stdout).expect("utf-8");
    let server = Spawned::start(
        &[],
        &data,
        &[
            "--jwt-secret-file",
            secret_file.to_str().expect("utf-8 path"),
        ],
    );
    let api = Api::new(&format!("http://{}", server.addr)).with_token(token.trim());
    assert_eq!(api.get("/api/businesses/").await.status, 200);
    drop(server);

    // Without a given secret, one is generated once, private.
    let generated = root.path().join("generated");
    let server = Spawned::start(&[], &generated, &[]);
    assert_eq!(mode(&generated.join("secret.key")), 0o600);
    drop(server);
}

#[test]
fn help_never_prints_secrets_from_the_environment() {
    let output = Command::new(TestServer::binary())
        .args(["serve", "--help"])
        .env("APP_JWT_SECRET", "jwt-secret-in-the-environment")
        .env(
            "APP_SMTP_URL",
            "smtps://mailer:smtp-password-1@mail.example.com",
        )
        .env("APP_ADMIN_PASSWORD", "admin-password-in-env")
        .output()
        .expect("app serve --help");
    let help = String::from_utf8_lossy(&output.stdout);
    for secret in [
        "jwt-secret-in-the-environment",
        "smtp-password-1",
        "admin-password-in-env",
    ] {
        assert!(!help.contains(secret), "--help printed {secret}:\n{help}");
    }
    assert!(help.contains("--smtp-url-file"), "{help}");
}
