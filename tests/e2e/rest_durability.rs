//! Durability and ordering through HTTP: SIGKILL right after a 201, concurrent writers, and
//! graceful shutdown (DESIGN invariants 1, 2 and 6).

use crate::rest_support::{activity, event_about, event_ids, fresh, tally, tally_becomes, Tally};
use crate::support::{eventually, TestServer};
use serde_json::Value;
use std::collections::HashSet;

/// DESIGN invariant 1: a 2xx write is durable — the record, its event and its activity entry
/// survive `kill -9`, and event ids go on from where they were.
#[tokio::test]
async fn a_201_survives_sigkill_with_its_event_and_activity_entry() {
    let mut server = TestServer::start().await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Durable", "durable", "o@example.com")
        .await;
    let id = business["id"].as_str().unwrap().to_string();

    server.kill9();
    server.start_again().await;

    // The token is still good: the secret was kept too. (A fresh client: the pooled
    // connections died with the process.)
    let admin = fresh(&admin);
    assert_eq!(
        admin.get(&format!("/api/businesses/{id}/")).await.body,
        business
    );
    tally_becomes(
        &admin,
        Tally {
            businesses: 1,
            reservations: 0,
            last_event_id: 1,
        },
    )
    .await;
    let event = event_about(&admin, "business_created", &id).await;
    assert_eq!(event["id"], 1);
    assert_eq!(event["payload"]["business"], business);

    // Again with a reservation, killed straight after its 201.
    let reservation = server.api().book(&id, "Ann Lee").await;
    server.kill9();
    server.start_again().await;
    let admin = fresh(&admin);

    let listed = admin
        .get(&format!("/api/businesses/{id}/reservations/"))
        .await;
    assert_eq!(listed.body["items"], serde_json::json!([reservation]));
    tally_becomes(
        &admin,
        Tally {
            businesses: 1,
            reservations: 1,
            last_event_id: 2,
        },
    )
    .await;
    let event = event_about(
        &admin,
        "reservation_created",
        reservation["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(event["id"], 2);

    // Ids continue from where they were: no reuse, no jump.
    let next = admin
        .create_business("After", "after", "o@example.com")
        .await;
    let event = event_about(&admin, "business_created", next["id"].as_str().unwrap()).await;
    assert_eq!(event["id"], 3);
    assert_eq!(event_ids(&activity(&admin, "").await), [3, 2, 1]);
}

/// DESIGN invariant 2: under concurrent writers every 201 is listed once, event ids are
/// consecutive in commit order, and the counts are exact.
#[tokio::test]
async fn concurrent_creates_get_consecutive_event_ids_and_exact_counts() {
    const TASKS: usize = 32;
    const EACH: usize = 50;
    const TOTAL: usize = TASKS * EACH;
    let server = TestServer::start().await;
    let admin = server.admin().await;

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let admin = admin.clone();
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(EACH);
                for n in 0..EACH {
                    let business = admin
                        .create_business(
                            &format!("T{task} N{n}"),
                            &format!("t{task}-n{n}"),
                            "o@example.com",
                        )
                        .await;
                    ids.push(business["id"].as_str().unwrap().to_string());
                }
                ids
            })
        })
        .collect();
    let mut created = HashSet::new();
    for task in tasks {
        for id in task.await.expect("a creating task panicked") {
            assert!(created.insert(id.clone()), "id {id} handed out twice");
        }
    }
    assert_eq!(created.len(), TOTAL);

    // Counts and the newest id are exact: one event per write, no more, no less.
    tally_becomes(
        &admin,
        Tally {
            businesses: TOTAL as u64,
            reservations: 0,
            last_event_id: TOTAL as u64,
        },
    )
    .await;

    // Every 201 is listed exactly once, paging with limit/cursor.
    let mut listed: Vec<Value> = Vec::new();
    let mut sizes = Vec::new();
    let mut url = "/api/businesses/?limit=500".to_string();
    loop {
        let page = admin.get(&url).await;
        assert_eq!(page.status, 200, "{url}: {:?}", page.body);
        assert_eq!(page.body["count"], TOTAL, "{url}");
        let items = page.body["items"].as_array().unwrap();
        sizes.push(items.len());
        listed.extend(items.iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(cursor) => url = format!("/api/businesses/?limit=500&cursor={cursor}"),
            None => break,
        }
        assert!(listed.len() <= TOTAL, "the listing repeats items");
    }
    assert_eq!(sizes, [500, 500, 500, 100], "pages of the largest limit");
    let listed_ids: Vec<String> = listed
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed_ids.len(), TOTAL, "listed count");
    assert_eq!(
        listed_ids.iter().cloned().collect::<HashSet<_>>(),
        created,
        "listed == created"
    );

    // The activity holds the newest 50 with consecutive ids, in the listing's order.
    let items = activity(&admin, "").await;
    let expected: Vec<u64> = (TOTAL as u64 - 49..=TOTAL as u64).rev().collect();
    assert_eq!(event_ids(&items), expected, "the newest 50 ids, no gap");
    let activity_ids: Vec<&str> = items
        .iter()
        .map(|event| event["payload"]["business"]["id"].as_str().unwrap())
        .collect();
    let newest_listed: Vec<&str> = listed_ids.iter().take(50).map(String::as_str).collect();
    assert_eq!(
        activity_ids, newest_listed,
        "id order = commit order = listing order"
    );
    let default_page = admin.get("/api/businesses/").await;
    assert_eq!(
        default_page.body["items"].as_array().unwrap().len(),
        100,
        "the default limit"
    );
    assert!(
        default_page.body["next_cursor"].is_string(),
        "more pages follow"
    );
    let dashboard = admin.get("/api/dashboard/").await;
    let recent: Vec<&str> = dashboard.body["recent_businesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(recent, newest_listed[..10]);
}

/// DESIGN invariants 1 and 2: `kill -9` in the middle of concurrent writes loses no
/// acknowledged write, and the ids of what did commit have no gap.
#[tokio::test]
async fn sigkill_under_concurrent_writes_loses_no_acknowledged_write() {
    const WRITERS: usize = 8;
    let mut server = TestServer::start().await;
    let admin = server.admin().await;
    let token = admin.token.clone().unwrap();
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (base, token, acked) = (server.base.clone(), token.clone(), acked.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for n in 0.. {
                    let body = serde_json::json!({
                        "name": format!("W{writer} N{n}"),
                        "subdomain": format!("w{writer}-n{n}"),
                        "owner_email": "o@example.com",
                    });
                    let sent = client
                        .post(format!("{base}/api/businesses/"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await;
                    // The server is gone: stop (an in-flight write may or may not have landed).
                    let Ok(response) = sent else { return };
                    if response.status().as_u16() != 201 {
                        return;
                    }
                    let Ok(business) = response.json::<Value>().await else {
                        return;
                    };
                    acked
                        .lock()
                        .unwrap()
                        .push(business["id"].as_str().unwrap().to_string());
                }
            })
        })
        .collect();
    eventually("200 writes to be acknowledged", || {
        let enough = acked.lock().unwrap().len() >= 200;
        async move { enough.then_some(()) }
    })
    .await;

    server.kill9();
    for writer in writers {
        writer.await.expect("writer task");
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    server.start_again().await;
    let admin = fresh(&admin);

    let after = tally(&admin).await;
    assert!(
        after.businesses >= acked.len() as u64,
        "{after:?} < {} acknowledged",
        acked.len()
    );
    assert_eq!(
        after.last_event_id, after.businesses,
        "one event per committed write, no gap"
    );
    let mut listed = HashSet::new();
    let mut url = "/api/businesses/?limit=500".to_string();
    loop {
        let page = admin.get(&url).await;
        assert_eq!(page.body["count"], after.businesses);
        for business in page.body["items"].as_array().unwrap() {
            listed.insert(business["id"].as_str().unwrap().to_string());
        }
        match page.body["next_cursor"].as_str() {
            Some(cursor) => url = format!("/api/businesses/?limit=500&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        listed.len() as u64,
        after.businesses,
        "the listing matches the count"
    );
    let lost: Vec<&String> = acked.difference(&listed).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after kill -9: {lost:?}"
    );
    let ids = event_ids(&activity(&admin, "").await);
    let expected: Vec<u64> = (after.last_event_id - 49..=after.last_event_id)
        .rev()
        .collect();
    assert_eq!(ids, expected, "the newest 50 ids, no gap");
    let next = admin.create_business("Next", "next", "o@example.com").await;
    let event = event_about(&admin, "business_created", next["id"].as_str().unwrap()).await;
    assert_eq!(
        event["id"].as_u64(),
        Some(after.last_event_id + 1),
        "ids go on from where they were"
    );
}

/// DESIGN invariant 6: SIGTERM exits 0 and keeps every acknowledged write.
#[tokio::test]
async fn sigterm_exits_0_and_keeps_the_data() {
    let mut server = TestServer::start().await;
    let admin = server.admin().await;
    let business = admin.create_business("Kept", "kept", "o@example.com").await;
    let id = business["id"].as_str().unwrap().to_string();
    let reservation = server.api().book(&id, "Ann Lee").await;

    let code = server.stop();

    assert_eq!(code, Some(0), "exit code after SIGTERM");
    server.start_again().await;
    let admin = fresh(&admin);
    assert_eq!(
        admin.get(&format!("/api/businesses/{id}/")).await.body,
        business
    );
    let listed = admin
        .get(&format!("/api/businesses/{id}/reservations/"))
        .await;
    assert_eq!(listed.body["items"], serde_json::json!([reservation]));
    let after = tally(&admin).await;
    assert_eq!(
        after,
        Tally {
            businesses: 1,
            reservations: 1,
            last_event_id: 2
        }
    );
    assert_eq!(event_ids(&activity(&admin, "").await), [2, 1]);
}

/// DESIGN invariant 6, at the earliest moment: once the server has said where it listens, a
/// SIGTERM is a graceful shutdown (exit 0), never the default "killed by a signal". A few
/// rounds, because the moment right after the banner is short.
#[tokio::test]
async fn sigterm_right_after_the_listening_line_exits_0() {
    let mut server = TestServer::start().await;

    for round in 1..=10 {
        let code = server.stop();
        assert_eq!(
            code,
            Some(0),
            "round {round}: exit code after SIGTERM (None = killed by the signal itself)"
        );
        server.start_again().await;
    }

    assert_eq!(
        server.admin().await.get("/healthz").await.status,
        200,
        "the folder is intact"
    );
}

/// DESIGN invariant 6 when nobody reads the logs any more: with stdout and stderr closed by
/// their reader (a log pipe that died), the server keeps serving, and SIGTERM still ends it
/// gracefully. (A log line written to the closed stderr used to kill the signal handler.)
#[tokio::test]
async fn with_its_output_pipes_closed_the_server_serves_and_sigterm_exits_0() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(TestServer::binary())
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("APP_ADMIN_EMAIL", crate::support::ADMIN_EMAIL)
        .env("APP_ADMIN_PASSWORD", crate::support::ADMIN_PASSWORD)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // Both readers go away; every later write by the server fails with EPIPE.
    drop(child.stderr.take());
    let base = first
        .trim()
        .strip_prefix("app listening on ")
        .unwrap_or_else(|| panic!("banner: {first:?}"))
        .to_string();

    let api = crate::support::Api::new(&base);
    let admin = api
        .login(crate::support::ADMIN_EMAIL, crate::support::ADMIN_PASSWORD)
        .await;
    admin
        .create_business("Still here", "still-here", "o@example.com")
        .await;
    assert_eq!(admin.get("/healthz").await.status, 200, "still serving");

    let code = crate::support::server::terminate(&mut child, std::time::Duration::from_secs(20));
    assert_eq!(code, Some(0));
}
