//! The first-run bootstrap and the offline subcommands (`app user create`, `app token`),
//! checked through the server they prepare (API.md "Authentication", "Command line").

use crate::rest_support::me;
use crate::support::{Api, TestServer, ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `app serve` started by hand, without the harness's `APP_ADMIN_*` variables.
struct BareServer {
    child: Child,
    base: String,
    /// Standard output up to the line that says how to log in.
    banner: Vec<String>,
}

impl BareServer {
    #[allow(clippy::zombie_processes)]
    fn start(data: &Path) -> Self {
        let mut child = Command::new(TestServer::binary())
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .env_remove("APP_ADMIN_EMAIL")
            .env_remove("APP_ADMIN_PASSWORD")
            .env_remove("APP_JWT_SECRET")
            .env_remove("APP_SMTP_URL")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn app serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut banner = Vec::new();
        let mut base = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the server printed its banner in time: {banner:?}"));
            banner.push(line.clone());
            if let Some(addr) = line.strip_prefix("app listening on http://") {
                base = Some(format!("http://{}", addr.trim()));
            }
            // The banner ends with how to log in: a generated password or the admins' emails.
            let says_how_to_log_in =
                line.trim_start().starts_with("password:") || line.starts_with("log in as:");
            if let (Some(base), true) = (&base, says_how_to_log_in) {
                let base = base.clone();
                return Self {
                    child,
                    base,
                    banner,
                };
            }
        }
    }

    /// SIGTERM, and the exit code.
    fn stop(mut self) -> Option<i32> {
        crate::support::server::terminate(&mut self.child, Duration::from_secs(30))
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `app <args>` on its own (no server), with a clean environment for secrets.
fn app(args: &[&str], data: &Path) -> Output {
    Command::new(TestServer::binary())
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("APP_JWT_SECRET")
        .env_remove("APP_DATA_DIR")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run app")
}

/// Runs `app <args>` and asserts it refuses: a non-zero exit and a reason on stderr, which
/// it returns.
fn refused(args: &[&str], data: &Path, why: &str) -> String {
    let output = app(args, data);
    assert!(!output.status.success(), "{why}: must exit non-zero");
    let stderr = text(&output.stderr);
    assert!(!stderr.trim().is_empty(), "{why}: says why on stderr");
    stderr
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn first_run_without_admin_env_prints_a_password_for_admin_at_localhost_that_logs_in() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = BareServer::start(data.path());

    let banner = server.banner.join("\n");
    assert!(banner.contains("admin@localhost"), "{banner}");
    let password = server
        .banner
        .iter()
        .find_map(|line| line.trim().strip_prefix("password:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no generated password in:\n{banner}"))
        .to_string();
    assert!(password.len() >= 8, "a real password: {password:?}");

    let admin = Api::new(&server.base)
        .login("admin@localhost", &password)
        .await;
    let user = me(&admin).await;
    assert_eq!(user["email"], "admin@localhost");
    assert_eq!(user["role"], "super_admin");
    assert_eq!(admin.get("/api/dashboard/").await.status, 200);
    assert_eq!(server.stop(), Some(0));

    // Shown once: the next start on the same folder prints no password and keeps the admin.
    let again = BareServer::start(data.path());
    let banner = again.banner.join("\n");
    assert!(
        !banner.contains(&password),
        "the password is printed only once:\n{banner}"
    );
    assert!(!banner.contains("password:"), "{banner}");
    Api::new(&again.base)
        .login("admin@localhost", &password)
        .await;
}

#[tokio::test]
async fn a_super_admin_made_offline_before_the_first_serve_replaces_the_bootstrap() {
    let data = tempfile::tempdir().expect("temp dir");
    let created = app(
        &[
            "user",
            "create",
            "--email",
            "boss@example.com",
            "--password",
            "boss-password",
            "--role",
            "super_admin",
        ],
        data.path(),
    );
    assert!(
        created.status.success(),
        "stderr: {}",
        text(&created.stderr)
    );

    let server = BareServer::start(data.path());

    let banner = server.banner.join("\n");
    assert!(
        !banner.contains("password:"),
        "no generated admin when a user exists:\n{banner}"
    );
    let boss = Api::new(&server.base)
        .login("boss@example.com", "boss-password")
        .await;
    let users = boss.get("/api/users/").await;
    assert_eq!(
        users.body["items"].as_array().unwrap().len(),
        1,
        "{:?}",
        users.body
    );
    assert_eq!(users.body["items"][0]["email"], "boss@example.com");
}

#[tokio::test]
async fn first_run_with_admin_env_creates_exactly_that_admin() {
    let server = TestServer::start().await;

    let admin = server.admin().await;
    assert_eq!(me(&admin).await["role"], "super_admin");
    let users = admin.get("/api/users/").await;
    assert_eq!(
        users.body["items"].as_array().unwrap().len(),
        1,
        "{:?}",
        users.body
    );
    assert_eq!(users.body["items"][0]["email"], ADMIN_EMAIL);
}

#[tokio::test]
async fn user_create_works_offline_and_refuses_invalid_input() {
    let mut server = TestServer::start().await;
    server.stop(); // The exit code is the shutdown tests' business (rest_durability).
    let data = server.data_dir().to_path_buf();

    let created = app(
        &[
            "user",
            "create",
            "--email",
            "Owner@Example.com",
            "--password",
            "owner-password-1",
            "--role",
            "business_owner",
        ],
        &data,
    );
    assert!(
        created.status.success(),
        "stderr: {}",
        text(&created.stderr)
    );
    let printed: serde_json::Value =
        serde_json::from_slice(&created.stdout).expect("prints the user as JSON");
    assert_eq!(printed["email"], "owner@example.com");
    assert_eq!(printed["role"], "business_owner");

    let cases = [
        (
            vec![
                "--email",
                "a@example.com",
                "--password",
                "short",
                "--role",
                "business_owner",
            ],
            "a 5-character password",
        ),
        (
            vec![
                "--email",
                "not-an-email",
                "--password",
                "long-enough",
                "--role",
                "business_owner",
            ],
            "an email without @",
        ),
        (
            vec![
                "--email",
                "b@example.com",
                "--password",
                "long-enough",
                "--role",
                "king",
            ],
            "an unknown role",
        ),
        (
            vec!["--password", "long-enough", "--role", "business_owner"],
            "no email",
        ),
        (
            vec![
                "--email",
                "OWNER@example.com",
                "--password",
                "long-enough",
                "--role",
                "super_admin",
            ],
            "a taken email",
        ),
    ];
    for (flags, why) in cases {
        refused(&[&["user", "create"], &flags[..]].concat(), &data, why);
    }

    server.start_again().await;
    let owner = server
        .api()
        .login("owner@example.com", "owner-password-1")
        .await;
    let user = me(&owner).await;
    assert_eq!(user["id"], printed["id"]);
    assert_eq!(user["role"], "business_owner");
    let users = server.admin().await.get("/api/users/").await;
    assert_eq!(
        users.body["items"].as_array().unwrap().len(),
        2,
        "no invalid user was made: {:?}",
        users.body
    );
}

#[tokio::test]
async fn user_password_replaces_a_password_offline_and_refuses_bad_input() {
    let mut server = TestServer::start().await;
    server.stop(); // The exit code is the shutdown tests' business (rest_durability).
    let data = server.data_dir().to_path_buf();

    let password = |email: &str, password: &str, why: &str| {
        refused(
            &["user", "password", "--email", email, "--password", password],
            &data,
            why,
        )
    };
    password(ADMIN_EMAIL, "short", "a 5-character password");
    password("not-an-email", "long-enough-1", "an email without @");
    let unknown = password("nobody@example.com", "long-enough-1", "an unknown user");
    assert!(
        unknown.contains("no user with email nobody@example.com"),
        "names what is wrong: {unknown}"
    );

    // Email matching is case-insensitive, as at login.
    let changed = app(
        &[
            "user",
            "password",
            "--email",
            &ADMIN_EMAIL.to_uppercase(),
            "--password",
            "new-admin-pass-2",
        ],
        &data,
    );
    assert!(
        changed.status.success(),
        "stderr: {}",
        text(&changed.stderr)
    );
    let printed: serde_json::Value =
        serde_json::from_slice(&changed.stdout).expect("prints the user as JSON");
    assert_eq!(printed["email"], ADMIN_EMAIL);
    assert!(
        printed.get("password_hash").is_none(),
        "never prints the hash"
    );

    server.start_again().await;
    let login = |password: &'static str| {
        let api = server.api();
        async move {
            api.post(
                "/api/auth/token/",
                json!({"email": ADMIN_EMAIL, "password": password}),
            )
            .await
            .status
        }
    };
    assert_eq!(login(ADMIN_PASSWORD).await, 401, "the old password is gone");
    assert_eq!(login("new-admin-pass-2").await, 200, "the new one works");
}

#[tokio::test]
async fn token_command_mints_a_token_the_server_accepts() {
    let mut server = TestServer::start().await;
    server.stop(); // The exit code is the shutdown tests' business (rest_durability).
    let data = server.data_dir().to_path_buf();

    let minted = app(&["token", "--email", ADMIN_EMAIL], &data);
    let unknown = app(&["token", "--email", "nobody@example.com"], &data);

    assert!(minted.status.success(), "stderr: {}", text(&minted.stderr));
    assert!(!unknown.status.success(), "an unknown email must fail");
    let token = text(&minted.stdout).trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token:?}");
    server.start_again().await;
    let api = server.api().with_token(&token);
    let user = me(&api).await;
    assert_eq!(user["email"], ADMIN_EMAIL);
    assert_eq!(user["role"], "super_admin");
    assert_eq!(api.get("/api/dashboard/").await.status, 200);
}
