//! Sessions that last and can be ended, and logins that cannot be flooded (API.md "Sessions
//! that last, and can be ended" and the Login paragraph of "Limits, timeouts and hostile
//! clients"): refresh tokens with rotation and reuse detection, logout, password change and
//! disable revoking every older token (REST 401, sockets 4401 within 2 s), login throttling
//! per account and per address, and password hashing bounded in memory (DESIGN invariant 5).

use crate::support::{
    eventually, Answer, Api, TestServer, Ws, WsEvent, ADMIN_EMAIL, ADMIN_PASSWORD,
};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "user-password-1";

/// Logs in and returns the whole answer (access, refresh, …).
async fn login(api: &Api, email: &str, password: &str) -> Answer {
    api.post(
        "/api/auth/token/",
        json!({"email": email, "password": password}),
    )
    .await
}

/// A fresh login's access and refresh tokens; panics unless 200.
async fn session(api: &Api, email: &str, password: &str) -> (String, String) {
    let answer = login(api, email, password).await;
    assert_eq!(answer.status, 200, "login: {:?}", answer.body);
    tokens(&answer)
}

fn tokens(answer: &Answer) -> (String, String) {
    let access = answer.body["access"].as_str().expect("access").to_string();
    let refresh = answer.body["refresh"]
        .as_str()
        .expect("refresh")
        .to_string();
    (access, refresh)
}

async fn refresh(api: &Api, token: &str) -> Answer {
    api.post("/api/auth/refresh/", json!({ "refresh": token }))
        .await
}

/// Status of `GET /api/users/me/` with `access`.
async fn me_status(api: &Api, access: &str) -> u16 {
    api.with_token(access).get("/api/users/me/").await.status
}

/// Creates a user (as `admin`) and returns its id.
async fn create_user(admin: &Api, email: &str, role: &str) -> String {
    let answer = admin
        .post(
            "/api/users/",
            json!({"email": email, "password": PASSWORD, "role": role}),
        )
        .await;
    assert_eq!(answer.status, 201, "create user: {:?}", answer.body);
    assert_eq!(answer.body["disabled"], false);
    answer.body["id"].as_str().expect("id").to_string()
}

/// Expects `ws` to close with `code` within `within` (frames before it are skipped).
async fn closes_within(ws: &mut Ws, code: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ws.read_within(left).await {
            Some(WsEvent::Frame(_)) => continue,
            Some(WsEvent::Closed(closed)) => {
                assert_eq!(closed, code, "close code");
                return;
            }
            other => panic!("expected a {code} close within {within:?}, got {other:?}"),
        }
    }
}

/// A dashboard socket for `access`, past its `connection_established`.
async fn dashboard(server: &TestServer, access: &str) -> Ws {
    let mut ws = Ws::channel(&server.ws_base(), "/ws/dashboard/", access, None).await;
    assert_eq!(ws.frame().await["type"], "connection_established");
    ws
}

#[tokio::test]
async fn a_refresh_token_rotates_and_the_old_one_stops_working() {
    let server = TestServer::start().await;
    let api = server.api();
    let (_, first) = session(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(first.len(), 43, "256 bits in base64url: {first}");

    let rotated = refresh(&api, &first).await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let (access, second) = tokens(&rotated);
    assert_ne!(second, first);
    assert_eq!(rotated.body["token_type"], "Bearer");
    assert_eq!(rotated.body["user"]["email"], ADMIN_EMAIL);
    assert_eq!(me_status(&api, &access).await, 200, "the new access works");

    assert_eq!(
        refresh(&api, &second).await.status,
        200,
        "the new refresh works"
    );
    for (body, why) in [
        (json!({}), "no refresh"),
        (json!({"refresh": 7}), "not a string"),
    ] {
        let answer = api.post("/api/auth/refresh/", body).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "validation_error"),
            "{why}"
        );
    }
    let unknown = refresh(&api, "not-a-token-we-issued").await;
    assert_eq!((unknown.status, unknown.code()), (401, "unauthenticated"));
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_every_token_of_its_login() {
    let server = TestServer::start().await;
    let api = server.api();
    let (_, stolen) = session(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, other_login) = session(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, current) = tokens(&refresh(&api, &stolen).await);

    // The thief (or the victim) presents the used token: 401, and the family is revoked…
    let reused = refresh(&api, &stolen).await;
    assert_eq!((reused.status, reused.code()), (401, "unauthenticated"));
    // …so the newest token of that login is dead too.
    assert_eq!(refresh(&api, &current).await.status, 401);
    // Another login of the same user is another family.
    assert_eq!(refresh(&api, &other_login).await.status, 200);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_and_is_idempotent() {
    let server = TestServer::start().await;
    let api = server.api();
    let (_, token) = session(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (_, kept) = session(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    for _ in 0..2 {
        let answer = api
            .post("/api/auth/logout/", json!({ "refresh": token }))
            .await;
        assert_eq!(answer.status, 204, "{:?}", answer.body);
    }
    assert_eq!(refresh(&api, &token).await.status, 401);
    assert_eq!(refresh(&api, &kept).await.status, 200, "other logins stay");
}

#[tokio::test]
async fn a_password_change_revokes_every_older_token_and_closes_sockets_within_2_s() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    create_user(&admin, "second@example.com", "super_admin").await;
    let api = server.api();
    let (access, refresh_token) = session(&api, "second@example.com", PASSWORD).await;
    let (other_access, _) = session(&api, "second@example.com", PASSWORD).await;
    let mut socket = dashboard(&server, &access).await;
    let mut admin_socket = dashboard(&server, admin.token.as_deref().expect("token")).await;
    let user = api.with_token(&access);

    let wrong = user
        .post(
            "/api/users/me/password/",
            json!({"current": "not-my-password", "new": "new-password-2"}),
        )
        .await;
    assert_eq!((wrong.status, wrong.code()), (400, "validation_error"));
    assert!(wrong.body["error"]["fields"]["current"].is_string());
    let short = user
        .post(
            "/api/users/me/password/",
            json!({"current": PASSWORD, "new": "short"}),
        )
        .await;
    assert!(
        short.body["error"]["fields"]["new"].is_string(),
        "{:?}",
        short.body
    );
    assert_eq!(
        me_status(&api, &access).await,
        200,
        "refusals revoke nothing"
    );

    let changed = user
        .post(
            "/api/users/me/password/",
            json!({"current": PASSWORD, "new": "new-password-2"}),
        )
        .await;
    assert_eq!(changed.status, 204, "{:?}", changed.body);
    closes_within(&mut socket, 4401, Duration::from_secs(2)).await;

    assert_eq!(me_status(&api, &access).await, 401, "this login's access");
    assert_eq!(
        me_status(&api, &other_access).await,
        401,
        "every login's access"
    );
    assert_eq!(
        refresh(&api, &refresh_token).await.status,
        401,
        "refresh too"
    );
    assert_eq!(
        login(&api, "second@example.com", PASSWORD).await.status,
        401
    );
    let (fresh, _) = session(&api, "second@example.com", "new-password-2").await;
    assert_eq!(me_status(&api, &fresh).await, 200);
    // Someone else's socket is untouched.
    admin_socket.silent_for(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn disabling_a_user_revokes_its_tokens_closes_its_sockets_and_refuses_its_logins() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let id = create_user(&admin, "owner@example.com", "business_owner").await;
    let business = admin
        .create_business("Salon", "salon", "owner@example.com")
        .await;
    let api = server.api();
    let (access, refresh_token) = session(&api, "owner@example.com", PASSWORD).await;
    let path = format!("/ws/business/{}/", business["id"].as_str().expect("id"));
    let mut socket = Ws::channel(&server.ws_base(), &path, &access, None).await;
    assert_eq!(socket.frame().await["type"], "connection_established");

    let owner = api.with_token(&access);
    let by_owner = owner
        .call(
            "PATCH",
            &format!("/api/users/{id}/"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(by_owner.status, 403, "only a super admin disables");
    let admin_id = admin.get("/api/users/me/").await.body["id"].clone();
    let itself = admin
        .call(
            "PATCH",
            &format!("/api/users/{}/", admin_id.as_str().expect("id")),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(
        (itself.status, itself.code()),
        (403, "forbidden"),
        "not on oneself"
    );
    let unknown = admin
        .call(
            "PATCH",
            "/api/users/00000000-0000-0000-0000-000000000000/",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(unknown.status, 404);
    let bad = admin
        .call(
            "PATCH",
            &format!("/api/users/{id}/"),
            Some(json!({"disabled": "yes"})),
        )
        .await;
    assert_eq!(bad.code(), "validation_error");

    let disabled = admin
        .call(
            "PATCH",
            &format!("/api/users/{id}/"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    assert_eq!(disabled.body["disabled"], true);
    assert_eq!(disabled.body["email"], "owner@example.com");
    closes_within(&mut socket, 4401, Duration::from_secs(2)).await;
    assert_eq!(me_status(&api, &access).await, 401);
    assert_eq!(refresh(&api, &refresh_token).await.status, 401);
    let refused = login(&api, "owner@example.com", PASSWORD).await;
    let wrong = login(&api, "owner@example.com", "wrong-password").await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.body, wrong.body,
        "the same answer as a bad password"
    );
    let listed = admin.get("/api/users/").await;
    let row = listed.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|user| user["id"] == id.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(row["disabled"], true);

    let enabled = admin
        .call(
            "PATCH",
            &format!("/api/users/{id}/"),
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(enabled.body["disabled"], false);
    assert_eq!(me_status(&api, &access).await, 401, "old tokens stay dead");
    session(&api, "owner@example.com", PASSWORD).await;
}

#[tokio::test]
async fn failed_logins_lock_the_account_even_against_the_right_password() {
    let server = TestServer::start().await;
    let api = server.api();
    for attempt in 0..10 {
        let answer = login(&api, ADMIN_EMAIL, "wrong-password").await;
        assert_eq!(answer.status, 401, "failure {attempt}");
    }
    let locked = login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!((locked.status, locked.code()), (429, "rate_limited"));
    let retry: u64 = locked.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((800..=900).contains(&retry), "about 15 minutes: {retry}");
    let wrong = login(&api, ADMIN_EMAIL, "wrong-password").await;
    assert_eq!(wrong.status, 429, "a locked account is not even checked");
}

#[tokio::test]
async fn the_account_lock_does_not_lock_other_accounts() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    create_user(&admin, "victim@example.com", "business_owner").await;
    let api = server.api();
    for _ in 0..10 {
        assert_eq!(
            login(&api, "VICTIM@example.com", "nope-nope").await.status,
            401
        );
    }
    assert_eq!(
        login(&api, "victim@example.com", PASSWORD).await.status,
        429
    );
    assert_eq!(login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn login_attempts_are_limited_per_client_address() {
    let server = TestServer::start_with(&["--login-attempts-per-minute", "5"], &[]).await;
    let api = server.api();
    for attempt in 0..5 {
        let email = format!("nobody{attempt}@example.com");
        assert_eq!(login(&api, &email, "whatever-1").await.status, 401);
    }
    let limited = login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!((limited.status, limited.code()), (429, "rate_limited"));
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(
        (1..=12).contains(&retry),
        "one token refills in 12 s: {retry}"
    );
}

#[tokio::test]
async fn a_login_that_waits_too_long_for_hashing_is_told_the_server_is_busy() {
    let server = TestServer::start_with(
        &[
            "--password-hash-workers",
            "1",
            "--login-queue-timeout-ms",
            "1",
        ],
        &[],
    )
    .await;
    let api = server.api();
    let logins = (0..12).map(|_| {
        let api = api.clone();
        tokio::spawn(async move { login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await })
    });
    let answers: Vec<Answer> = futures_util::future::join_all(logins)
        .await
        .into_iter()
        .map(|joined| joined.expect("login task"))
        .collect();
    let busy: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(
        !busy.is_empty(),
        "statuses: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(busy
        .iter()
        .all(|a| a.code() == "busy" && a.headers.contains_key("retry-after")));
    assert!(answers.iter().all(|a| a.status == 200 || a.status == 503));
}

/// Peak and current resident memory of a process, in KiB (Linux `/proc`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test]
async fn three_hundred_concurrent_logins_keep_memory_under_300_mib_and_healthz_answering() {
    // DESIGN invariant 5: no input grows memory without bound. One argon2 verify takes
    // ~19 MiB; unbounded, 300 at once took about 5.9 GiB.
    let server = TestServer::start_with(&["--login-attempts-per-minute", "100000"], &[]).await;
    let api = server.api();
    let logins: Vec<_> = (0..300)
        .map(|i| {
            let api = api.clone();
            // Wrong passwords on many accounts: every one costs a verify, none locks.
            let email = format!("user{i}@example.com");
            tokio::spawn(async move { login(&api, &email, "wrong-password").await.status })
        })
        .collect();
    let health = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    while logins.iter().any(|task| !task.is_finished()) {
        let started = Instant::now();
        let answer = health
            .get(format!("{}/healthz", server.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("healthz answers during the logins");
        assert_eq!(answer.status(), 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut statuses = Vec::new();
    for task in logins {
        statuses.push(task.await.expect("login task"));
    }
    let (peak, now) = memory_kib(server.pid());
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        peak < 300 * 1024,
        "peak RSS {} MiB (now {} MiB)",
        peak / 1024,
        now / 1024
    );
    assert!(slowest < Duration::from_secs(1), "healthz took {slowest:?}");
}

#[tokio::test]
async fn token_and_refresh_lifetimes_follow_their_flags() {
    let server = TestServer::start_with(&["--token-ttl", "2", "--refresh-ttl", "3"], &[]).await;
    let api = server.api();
    let answer = login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(answer.body["expires_in"], 2);
    assert_eq!(answer.body["refresh_expires_in"], 3);
    let (access, first) = tokens(&answer);
    let issued = Instant::now();
    assert_eq!(me_status(&api, &access).await, 200);
    eventually("the access token to expire", || {
        let api = api.clone();
        let access = access.clone();
        async move { (me_status(&api, &access).await == 401).then_some(()) }
    })
    .await;

    // Lifetimes are the subject here, so the test waits them out. Each use of a refresh
    // token starts a new 3 s: used at 1.5 s, the chain lives past the first token's 3 s.
    tokio::time::sleep_until((issued + Duration::from_millis(1500)).into()).await;
    let (_, second) = tokens(&refresh(&api, &first).await);
    tokio::time::sleep_until((issued + Duration::from_millis(3500)).into()).await;
    let renewed = refresh(&api, &second).await;
    assert_eq!(renewed.status, 200, "renewed by its use at 1.5 s");
    let (_, third) = tokens(&renewed);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(
        refresh(&api, &third).await.status,
        401,
        "unused for 3 s: expired"
    );
}

/// Runs `app <args> --data <data>` with no server.
fn app(args: &[&str], data: &Path) -> Output {
    Command::new(TestServer::binary())
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("APP_JWT_SECRET")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run app")
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[tokio::test]
async fn offline_disable_enable_and_password_revoke_older_tokens_and_token_ttl_is_capped() {
    let mut server = TestServer::start().await;
    let admin = server.admin().await;
    create_user(&admin, "owner@example.com", "business_owner").await;
    let (access, refresh_token) = session(&server.api(), "owner@example.com", PASSWORD).await;
    server.stop();
    let data = server.data_dir().to_path_buf();

    let too_long = app(
        &["token", "--email", ADMIN_EMAIL, "--ttl", "2592001"],
        &data,
    );
    assert!(!too_long.status.success());
    assert!(String::from_utf8_lossy(&too_long.stderr).contains("30 days"));
    let longest = app(
        &["token", "--email", ADMIN_EMAIL, "--ttl", "2592000"],
        &data,
    );
    assert!(longest.status.success());

    let disabled = stdout_json(&app(
        &["user", "disable", "--email", "owner@example.com"],
        &data,
    ));
    assert_eq!(disabled["disabled"], true);
    let minted = app(&["token", "--email", "owner@example.com"], &data);
    assert!(!minted.status.success(), "no token for a disabled user");
    server.start_again().await;
    let api = server.api();
    assert_eq!(me_status(&api, &access).await, 401);
    assert_eq!(refresh(&api, &refresh_token).await.status, 401);
    assert_eq!(login(&api, "owner@example.com", PASSWORD).await.status, 401);

    server.stop();
    let enabled = stdout_json(&app(
        &["user", "enable", "--email", "owner@example.com"],
        &data,
    ));
    assert_eq!(enabled["disabled"], false);
    let minted =
        String::from_utf8_lossy(&app(&["token", "--email", "owner@example.com"], &data).stdout)
            .trim()
            .to_string();
    server.start_again().await;
    let (fresh, _) = session(&server.api(), "owner@example.com", PASSWORD).await;
    assert_eq!(me_status(&server.api(), &minted).await, 200);
    server.stop();
    stdout_json(&app(
        &[
            "user",
            "password",
            "--email",
            "owner@example.com",
            "--password",
            "another-pass-3",
        ],
        &data,
    ));
    server.start_again().await;
    assert_eq!(
        me_status(&server.api(), &fresh).await,
        401,
        "a login before the change"
    );
    assert_eq!(
        me_status(&server.api(), &minted).await,
        401,
        "a minted token too"
    );
}
