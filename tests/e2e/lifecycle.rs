//! The end of a business's bookings (API.md "The lifecycle of a booking"): deleting a
//! business answers at once and cancels each of its confirmed future reservations in the
//! background — a `reservation_cancelled` event each, all before `business_deleted`, and a
//! "closed" mail to each customer — paced so it stalls no one, and survives a SIGKILL
//! half-way with nothing lost or repeated (DESIGN invariants 1, 2 and 4).

use crate::support::smtp::{MimeEntity, SmtpSink};
use crate::support::ws::Ws;
use crate::support::{eventually, run_app, token, Api, TestServer};
use app::domain::Timestamp;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

const HOSTILE_BUSINESS: &str = r#"<script>alert("x")</script> Salon & Co"#;
const HOSTILE_CUSTOMER: &str = "<img src=x onerror=alert(1)> Zoë";
/// Flags that let one test client book thousands of times a minute.
const NO_BOOKING_LIMITS: [&str; 4] = [
    "--booking-rate-per-minute",
    "1000000",
    "--booking-rate-per-business-per-minute",
    "1000000",
];

/// `now + seconds`, as the API takes it.
pub fn in_seconds(seconds: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let micros = (seconds * 1e6) as i64;
    Timestamp::now().plus_micros(micros).to_rfc3339()
}

/// Books at `business` for `name` <`email`> starting at `starts_at`; the answer as is.
pub async fn book_at(api: &Api, business: &str, name: &str, email: &str, starts_at: &str) -> Value {
    let answer = api
        .post(
            &format!("/api/businesses/{business}/reservations/"),
            json!({"customer_name": name, "customer_email": email,
                   "starts_at": starts_at, "service": "Cut"}),
        )
        .await;
    assert_eq!(answer.status, 201, "book: {:?}", answer.body);
    answer.body
}

/// Books `n` reservations far in the future, `concurrency` at a time, each customer its own
/// address `c{i}@customers.test`.
async fn book_many(api: &Api, business: &str, n: usize) {
    let starts_at = in_seconds(30.0 * 24.0 * 3600.0);
    let mut pending = futures_util::stream::FuturesUnordered::new();
    use futures_util::StreamExt;
    for i in 0..n {
        let (api, business, starts_at) = (api.clone(), business.to_string(), starts_at.clone());
        pending.push(tokio::spawn(async move {
            let email = format!("c{i}@customers.test");
            book_at(
                &api,
                &business,
                &format!("Customer {i}"),
                &email,
                &starts_at,
            )
            .await;
        }));
        if pending.len() == 32 {
            pending.next().await.expect("a booking").expect("booked");
        }
    }
    while let Some(done) = pending.next().await {
        done.expect("booked");
    }
}

/// The `.eml` files of a server without SMTP, parsed.
fn eml_files(data: &Path) -> Vec<MimeEntity> {
    let Ok(entries) = std::fs::read_dir(data.join("mail")) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            if path.extension()? != "eml" {
                return None;
            }
            Some(MimeEntity::parse(&std::fs::read_to_string(path).ok()?))
        })
        .collect()
}

/// Events on `ws` until `business_deleted` (inclusive).
async fn events_until_deleted(ws: &mut Ws) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = ws.event().await;
        let done = event["type"] == "business_deleted";
        events.push(event);
        if done {
            return events;
        }
    }
}

/// The reservation ids of the `reservation_cancelled` events, with how often each came.
fn cancelled_ids(events: &[Value]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for event in events
        .iter()
        .filter(|e| e["type"] == "reservation_cancelled")
    {
        let id = event["payload"]["reservation"]["id"].as_str().expect("id");
        *ids.entry(id.to_string()).or_default() += 1;
    }
    ids
}

#[tokio::test]
async fn a_delete_cancels_only_confirmed_future_bookings_before_business_deleted_and_mails_each() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let server =
        TestServer::start_with(&["--smtp-url", &url, "--mail-poll-interval-ms", "200"], &[]).await;
    let admin = server.admin().await;
    let public = server.api();
    let business = admin
        .create_business(HOSTILE_BUSINESS, "closing", "owner@salons.test")
        .await;
    let id = business["id"].as_str().expect("id").to_string();
    let other = admin
        .create_business("Other", "other", "owner@salons.test")
        .await;
    let other_id = other["id"].as_str().expect("id");
    let later = in_seconds(3600.0 * 48.0);
    let mut future = BTreeSet::new();
    for (name, email) in [
        (HOSTILE_CUSTOMER, "zoe@customers.test"),
        ("Ann", "ann@customers.test"),
    ] {
        let booked = book_at(&public, &id, name, email, &later).await;
        future.insert(booked["id"].as_str().expect("id").to_string());
    }
    let cancelled = book_at(&public, &id, "Cy", "cy@customers.test", &later).await;
    let cancel_path = format!(
        "/api/businesses/{id}/reservations/{}/cancel/",
        cancelled["id"]
    );
    let cancel_path = cancel_path.replace('"', "");
    assert_eq!(admin.call("POST", &cancel_path, None).await.status, 200);
    // Starts in a second: over by the time of the delete.
    book_at(
        &public,
        &id,
        "Past",
        "past@customers.test",
        &in_seconds(1.0),
    )
    .await;
    let untouched = book_at(&public, other_id, "Kept", "kept@customers.test", &later).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let mut ws = Ws::channel(&server.ws_base(), "/ws/dashboard/", &token(&admin), None).await;
    assert_eq!(ws.frame().await["type"], "connection_established");
    let deleted = admin
        .call("DELETE", &format!("/api/businesses/{id}/"), None)
        .await;
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);

    // Over the socket: one cancellation per future booking, then the delete, nothing between.
    let events = events_until_deleted(&mut ws).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "reservation_cancelled",
            "reservation_cancelled",
            "business_deleted"
        ]
    );
    let ids: BTreeSet<String> = cancelled_ids(&events).into_keys().collect();
    assert_eq!(ids, future, "only the confirmed future ones");
    let event_ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(event_ids[1], event_ids[0] + 1, "consecutive ids");
    assert_eq!(event_ids[2], event_ids[1] + 1, "consecutive ids");
    // The other business keeps its booking and takes new ones.
    let listed = admin
        .get(&format!("/api/businesses/{other_id}/reservations/"))
        .await;
    assert_eq!(listed.body["items"][0]["id"], untouched["id"]);
    assert_eq!(listed.body["items"][0]["status"], "confirmed");

    // One "closed" mail per cancelled booking, to its customer, names escaped in the HTML.
    let closed = eventually("two closed mails", || async {
        let closed: Vec<_> = sink
            .received()
            .into_iter()
            .filter(|m| m.subject().contains("has closed"))
            .collect();
        (closed.len() >= 2).then_some(closed)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = sink.received();
    let closed_count = all
        .iter()
        .filter(|m| m.subject().contains("has closed"))
        .count();
    assert_eq!(closed_count, 2, "no more than one per booking");
    let mut recipients: Vec<String> = closed.iter().map(|m| m.rcpt_to.join(",")).collect();
    recipients.sort();
    assert_eq!(recipients, ["ann@customers.test", "zoe@customers.test"]);
    for mail in &closed {
        let subject = mail.subject();
        assert!(subject.starts_with(HOSTILE_BUSINESS), "{subject}");
        assert!(subject.contains(" UTC is cancelled"), "{subject}");
        let html = mail.mime().part_text("text/html");
        assert!(
            !html.contains("<script") && !html.contains("<img"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(mail.mime().part_text("text/plain").contains("has closed"));
    }
}

/// The longest a request took, in a loop against `base` until `stop` is set.
async fn probe(api: Api, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Duration {
    let mut worst = Duration::ZERO;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let started = Instant::now();
        let answer = api.get("/api/businesses/").await;
        assert_eq!(answer.status, 200);
        worst = worst.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worst
}

/// The longest ping → pong over `ws` (a dashboard socket that also receives the delete's
/// frames), in a loop until `stop` is set.
async fn ping_probe(mut ws: Ws, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Duration {
    let mut worst = Duration::ZERO;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let started = Instant::now();
        ws.send_text(r#"{"type":"ping"}"#).await;
        while ws.frame().await["type"] != "pong" {}
        worst = worst.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worst
}

/// Bookings in the big-delete tests: enough for several chunks of `CLOSE_CHUNK`.
const MANY: usize = 2_000;

#[tokio::test]
async fn a_big_delete_answers_at_once_then_cancels_in_order_while_nobody_waits() {
    let mut args = vec!["--reminder-hours", "0"];
    args.extend(NO_BOOKING_LIMITS);
    let server = TestServer::start_with(&args, &[]).await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Big", "big", "owner@salons.test")
        .await;
    let id = business["id"].as_str().expect("id").to_string();
    book_many(&server.api(), &id, MANY).await;
    let other = server.admin().await;
    let mut ws = Ws::channel(&server.ws_base(), "/ws/dashboard/", &token(&other), None).await;
    assert_eq!(ws.frame().await["type"], "connection_established");
    let mut pinger = Ws::channel(&server.ws_base(), "/ws/dashboard/", &token(&other), None).await;
    assert_eq!(pinger.frame().await["type"], "connection_established");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = tokio::spawn(probe(other.clone(), stop.clone()));
    let pings = tokio::spawn(ping_probe(pinger, stop.clone()));
    let started = Instant::now();
    let deleted = admin
        .call("DELETE", &format!("/api/businesses/{id}/"), None)
        .await;
    let answered_in = started.elapsed();
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    assert!(answered_in < Duration::from_secs(1), "{answered_in:?}");

    // Answered: the business is gone to every read and change, though its bookings are still
    // being cancelled.
    let path = format!("/api/businesses/{id}/");
    assert_eq!(admin.get(&path).await.status, 404);
    let listed = admin.get("/api/businesses/").await;
    assert!(
        !listed.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|b| b["id"] == id.as_str()),
        "{:?}",
        listed.body
    );
    assert_eq!(admin.get(&format!("{path}reservations/")).await.status, 404);
    let booking = server
        .api()
        .post(
            &format!("{path}reservations/"),
            json!({"customer_name": "Late", "customer_email": "late@customers.test",
                   "starts_at": in_seconds(3600.0), "service": "Cut"}),
        )
        .await;
    assert_eq!(booking.status, 404, "{:?}", booking.body);
    let patch = admin
        .call("PATCH", &path, Some(json!({"name": "Back"})))
        .await;
    assert_eq!(patch.status, 404, "{:?}", patch.body);
    assert_eq!(admin.call("DELETE", &path, None).await.status, 404);

    // Every cancellation, then the delete, ids consecutive (nothing else was written).
    let events = events_until_deleted(&mut ws).await;
    let closed_in = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst = prober.await.expect("probe");
    let worst_ping = pings.await.expect("pings");
    eprintln!(
        "big delete of {MANY}: answered in {answered_in:?}, over in {closed_in:?}; slowest \
         other request {worst:?}, slowest ping {worst_ping:?}"
    );
    assert!(worst < Duration::from_secs(1), "a request waited {worst:?}");
    assert!(
        worst_ping < Duration::from_secs(1),
        "a ping waited {worst_ping:?}"
    );
    let ids = cancelled_ids(&events);
    assert_eq!(ids.len(), MANY, "each booking cancelled");
    assert!(ids.values().all(|n| *n == 1), "once each");
    assert_eq!(events.len(), MANY + 1);
    assert_eq!(events.last().unwrap()["type"], "business_deleted");
    let event_ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(
        event_ids.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive ids"
    );
    // Over: the subdomain is free again.
    let again = admin
        .call(
            "POST",
            "/api/businesses/",
            Some(json!({"name": "Big again", "subdomain": "big", "owner_email": "owner@salons.test"})),
        )
        .await;
    assert_eq!(again.status, 201, "{:?}", again.body);
}

#[tokio::test]
async fn a_kill_during_a_big_delete_is_finished_by_the_restart_with_nothing_twice() {
    let mut args = vec!["--reminder-hours", "0", "--mail-poll-interval-ms", "200"];
    args.extend(NO_BOOKING_LIMITS);
    let mut server = TestServer::start_with(&args, &[]).await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Doomed", "doomed", "owner@salons.test")
        .await;
    let id = business["id"].as_str().expect("id").to_string();
    book_many(&server.api(), &id, MANY).await;
    let mut ws = Ws::channel(&server.ws_base(), "/ws/dashboard/", &token(&admin), None).await;
    let hello = ws.frame().await;
    let epoch = hello["payload"]["epoch"]
        .as_str()
        .expect("epoch")
        .to_string();
    let before = crate::rest_support::activity(&admin, "").await;
    let last_before = before
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .max()
        .expect("events");
    // A dashboard that reads nothing holds each chunk back for the pacing's stall: the
    // delete is surely not over when the kill comes.
    let _stuck = Ws::connect_with_receive_buffer(
        &server.ws_base(),
        &format!("/ws/dashboard/?token={}", token(&admin)),
        4096,
    )
    .await;
    let deleted = admin
        .call("DELETE", &format!("/api/businesses/{id}/"), None)
        .await;
    assert_eq!(
        deleted.status, 204,
        "answered once filed: {:?}",
        deleted.body
    );
    // Kill it once some cancellations are out, before the delete is over.
    let first = ws.event().await;
    assert_eq!(first["type"], "reservation_cancelled", "{first}");
    server.kill9();

    // The restart goes on with the delete (the business stays gone meanwhile).
    server.start_again().await;
    let admin = server.admin().await;
    assert_eq!(
        admin.get(&format!("/api/businesses/{id}/")).await.status,
        404
    );
    // Every event since the delete began, replayed from the log: each booking cancelled
    // exactly once, then one business_deleted.
    let mut ws = Ws::channel(
        &server.ws_base(),
        "/ws/dashboard/",
        &token(&admin),
        Some((last_before, &epoch)),
    )
    .await;
    let events = events_until_deleted(&mut ws).await;
    let ids = cancelled_ids(&events);
    assert_eq!(ids.len(), MANY, "each booking cancelled");
    assert!(ids.values().all(|n| *n == 1), "none twice");
    let deletes = events
        .iter()
        .filter(|e| e["type"] == "business_deleted")
        .count();
    assert_eq!(deletes, 1);
    // One "closed" mail per customer, however the kill cut the steps.
    // Behind the bookings' own mails: a longer wait than `eventually` gives.
    let deadline = Instant::now() + Duration::from_secs(120);
    let closed = loop {
        let closed: Vec<String> = eml_files(server.data_dir())
            .into_iter()
            .filter(|m| m.decoded("Subject").contains("has closed"))
            .map(|m| m.header("To"))
            .collect();
        if closed.len() >= MANY || Instant::now() > deadline {
            break closed;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let unique: BTreeSet<&String> = closed.iter().collect();
    assert_eq!((closed.len(), unique.len()), (MANY, MANY), "one each");
    // A delete asked again joins nothing: the business is gone.
    let again = admin
        .call("DELETE", &format!("/api/businesses/{id}/"), None)
        .await;
    assert_eq!(again.status, 404);
}

#[tokio::test]
async fn a_backup_taken_mid_delete_restores_a_server_that_finishes_it() {
    const SOME: usize = 600;
    let mut args = vec!["--reminder-hours", "0"];
    args.extend(NO_BOOKING_LIMITS);
    let mut server = TestServer::start_with(&args, &[]).await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Mid", "mid", "owner@salons.test")
        .await;
    let id = business["id"].as_str().expect("id").to_string();
    book_many(&server.api(), &id, SOME).await;
    let mut ws = Ws::channel(&server.ws_base(), "/ws/dashboard/", &token(&admin), None).await;
    assert_eq!(ws.frame().await["type"], "connection_established");
    // As above: a dashboard that reads nothing keeps the delete going when the kill comes.
    let _stuck = Ws::connect_with_receive_buffer(
        &server.ws_base(),
        &format!("/ws/dashboard/?token={}", token(&admin)),
        4096,
    )
    .await;
    let path = format!("/api/businesses/{id}/");
    assert_eq!(admin.call("DELETE", &path, None).await.status, 204);
    assert_eq!(ws.event().await["type"], "reservation_cancelled");
    server.kill9();

    let files = tempfile::tempdir().expect("temp dir");
    let file = files.path().join("mid.backup");
    let file = file.to_str().expect("utf-8 path");
    let data = server.data_dir().to_str().expect("utf-8 path").to_string();
    let backup = run_app(&["backup", file, "--data", &data]).await;
    assert_eq!(backup.code, Some(0), "backup: {}", backup.stderr);
    let target = tempfile::tempdir().expect("temp dir");
    let target_path = target.path().to_str().expect("utf-8 path").to_string();
    let restore = run_app(&["restore", file, "--data", &target_path]).await;
    assert_eq!(restore.code, Some(0), "restore: {}", restore.stderr);

    // The restored server has the delete under way, not the business back: it finishes it.
    let restored = TestServer::start_on(target, &args, &[]).await;
    let admin = restored.admin().await;
    assert_eq!(admin.get(&path).await.status, 404);
    crate::rest_support::event_about(&admin, "business_deleted", &id).await;
    let deletes = crate::rest_support::activity(&admin, "?type=business_deleted").await;
    assert_eq!(deletes.len(), 1, "{deletes:?}");
}
