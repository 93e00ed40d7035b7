//! The server started in-process through `app::app::Application` — build, then run until its
//! shutdown token is cancelled — for the tests where a separate process is in the way.

use app::app::Application;
use app::cli::{Cli, Command};
use app::config::Config;
use clap::Parser;
use serde_json::json;
use std::time::Duration;

/// DESIGN invariant 6 in-process: cancelling the token stops the server, and a 2xx write
/// made before it is there after a restart on the same data folder (invariant 1).
#[tokio::test]
async fn an_in_process_server_serves_until_its_token_is_cancelled() {
    let data = tempfile::tempdir().expect("temp dir");
    let config = || {
        let data = data.path().to_str().expect("utf-8 temp path");
        let cli = Cli::try_parse_from(["app", "serve", "--addr", "127.0.0.1:0", "--data", data])
            .expect("serve flags");
        let Command::Serve(args) = cli.command else {
            panic!("parsed as serve");
        };
        Config::from_serve(&args).expect("config")
    };
    let app = Application::build(config()).await.expect("build");
    let base = format!("http://{}", app.address());
    let password = app
        .first_run_password()
        .expect("first run creates an admin")
        .to_string();
    let stop = app.shutdown_token();
    let running = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();

    let login = http
        .post(format!("{base}/api/auth/token/"))
        .json(&json!({"email": "admin@localhost", "password": password}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
    let token = login.json::<serde_json::Value>().await.expect("json")["access"]
        .as_str()
        .expect("a token")
        .to_string();
    let created = http
        .post(format!("{base}/api/businesses/"))
        .bearer_auth(&token)
        .json(&json!({"name": "Salon", "subdomain": "salon", "owner_email": "o@example.com"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("stops in time")
        .expect("the task did not panic")
        .expect("a clean stop");
    assert!(
        http.get(format!("{base}/healthz")).send().await.is_err(),
        "no longer listening"
    );

    let again = Application::build(config()).await.expect("rebuild");
    assert_eq!(again.first_run_password(), None, "the admin exists");
    let base = format!("http://{}", again.address());
    let stop = again.shutdown_token();
    let running = tokio::spawn(again.run_until_stopped());
    let public = http
        .get(format!("{base}/api/public/businesses/salon/"))
        .send()
        .await
        .expect("public profile");
    assert_eq!(public.status(), 200, "the write survived the restart");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("stops in time")
        .expect("the task did not panic")
        .expect("a clean stop");
}
