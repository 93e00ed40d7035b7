//! Web Push, end to end: the real binary pushes to a push service stand-in on loopback
//! (`support::push`), which checks the VAPID JWT against `GET /api/push/key` and decrypts
//! each body with the keys a browser would hold. DESIGN invariant 3: a subscription gets
//! only what its user's channel sees; invariant 4 (as for mail): a push is written with its
//! cause, so a push service that is down, or a `kill -9`, delays it and never loses it.

use crate::support::push::{check_vapid, Browser, PushService, ReceivedPush};
use crate::support::{eventually, run_app, Api, TestServer};
use serde_json::{json, Value};

const SUBJECT: &str = "mailto:ops@salons.test";

/// A server that may push to loopback, retrying quickly (unless `extra` sets the timings).
async fn server(extra: &[&str]) -> TestServer {
    TestServer::start_with(&flags(extra), &[]).await
}

/// The flags of [`server`].
fn flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--push-allow-insecure", "--vapid-subject", SUBJECT];
    for (flag, default) in [
        ("--mail-retry-base-ms", "100"),
        ("--mail-poll-interval-ms", "200"),
        ("--push-interval-ms", "300"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend_from_slice(extra);
    args
}

/// Runs `app ARGS` (an offline command) to its end; returns its stdout, or panics.
async fn app(args: &[&str]) -> String {
    let run = run_app(args).await;
    assert_eq!(run.code, Some(0), "app {}: {}", args.join(" "), run.stderr);
    run.stdout
}

/// Subscribes `api`'s user with `browser` at `endpoint`; returns the subscription id.
async fn subscribe(api: &Api, browser: &Browser, endpoint: &str) -> String {
    let answer = api
        .post("/api/push/subscriptions/", browser.subscription(endpoint))
        .await;
    assert_eq!(answer.status, 201, "subscribe: {:?}", answer.body);
    answer.body["id"].as_str().expect("id").to_string()
}

/// Waits until endpoint `name` received at least `count` pushes.
async fn pushes(service: &PushService, name: &str, count: usize) -> Vec<ReceivedPush> {
    eventually(&format!("{count} pushes to {name}"), || async move {
        let received = service.received(name);
        (received.len() >= count).then_some(received)
    })
    .await
}

/// The event frames in the pushes received by endpoint `name`.
fn frames(service: &PushService, name: &str, browser: &Browser) -> Vec<Value> {
    service
        .received(name)
        .iter()
        .map(|push| browser.decrypt(&push.body))
        .collect()
}

#[tokio::test]
async fn an_event_reaches_its_owners_subscription_encrypted_and_signed_and_no_one_elses() {
    let service = PushService::start().await;
    let server = server(&[]).await;
    let admin = server.admin().await;
    let alice = admin
        .create_user_and_login("alice@salons.test", "business_owner")
        .await;
    let bob = admin
        .create_user_and_login("bob@salons.test", "business_owner")
        .await;
    let key = alice.get("/api/push/key").await;
    assert_eq!(key.status, 200);
    let public_key = key.body["public_key"].as_str().unwrap().to_string();
    assert_eq!(
        Api::new(&server.base).get("/api/push/key").await.status,
        401
    );
    let (alice_browser, bob_browser) = (Browser::new(), Browser::new());
    let alice_id = subscribe(&alice, &alice_browser, &service.endpoint("alice")).await;
    // The same endpoint again is the same subscription.
    assert_eq!(
        subscribe(&alice, &alice_browser, &service.endpoint("alice")).await,
        alice_id
    );
    subscribe(&bob, &bob_browser, &service.endpoint("bob")).await;

    let salon = admin
        .create_business("Alice Salon", "alice-salon", "alice@salons.test")
        .await;
    admin
        .create_business("Bob Barber", "bob-barber", "bob@salons.test")
        .await;
    Api::new(&server.base)
        .book(salon["id"].as_str().unwrap(), "Zoe")
        .await;

    // Two events: two pushes, or one standing for both when they came close together.
    let alice_frames = eventually("alice's newest push is the booking", || {
        let frames = frames(&service, "alice", &alice_browser);
        let done = frames
            .last()
            .is_some_and(|frame| frame["type"] == "reservation_created");
        async move { done.then_some(frames) }
    })
    .await;
    let counted: u64 = alice_frames
        .iter()
        .map(|frame| frame["coalesced"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(counted, 2, "{alice_frames:?}");
    for push in service.received("alice") {
        check_vapid(&push, &public_key, &service.origin(), SUBJECT);
        assert_eq!(push.headers["content-encoding"], "aes128gcm");
        assert!(push.headers["ttl"].parse::<u64>().unwrap() > 0);
        assert!(["low", "normal"].contains(&push.headers["urgency"].as_str()));
    }
    let newest = alice_frames.last().unwrap();
    assert_eq!(newest["payload"]["business_id"], salon["id"]);
    assert!(newest["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("Zoe"));

    // Invariant 3: Bob's browser hears of Bob's business, never of Alice's.
    pushes(&service, "bob", 1).await;
    for frame in frames(&service, "bob", &bob_browser) {
        assert_eq!(frame["type"], "business_created", "{frame}");
        assert_eq!(
            frame["payload"]["business"]["owner_email"],
            "bob@salons.test"
        );
    }

    // Only the owner may unsubscribe: anyone else hears 404, as for a missing one.
    let path = format!("/api/push/subscriptions/{alice_id}/");
    assert_eq!(bob.call("DELETE", &path, None).await.status, 404);

    // A disabled user's channels see nothing, and neither do their browsers. Alice's next
    // push marks the moment; Bob's window (300 ms) is waited out twice on top.
    let bob_id = bob.get("/api/users/me/").await.body["id"].clone();
    let disabled = admin
        .call(
            "PATCH",
            &format!("/api/users/{}/", bob_id.as_str().unwrap()),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.status, 200, "{:?}", disabled.body);
    let bob_before = service.received("bob").len();
    admin
        .create_business("Bob Two", "bob-two", "bob@salons.test")
        .await;
    let alice_before = service.received("alice").len();
    Api::new(&server.base)
        .book(salon["id"].as_str().unwrap(), "Yann")
        .await;
    pushes(&service, "alice", alice_before + 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(service.received("bob").len(), bob_before);

    // Unsubscribing.
    assert_eq!(alice.call("DELETE", &path, None).await.status, 204);
    assert_eq!(alice.call("DELETE", &path, None).await.status, 404);
    assert_eq!(
        alice
            .call("DELETE", "/api/push/subscriptions/nope/", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_gone_subscription_is_removed_when_the_push_service_answers_410() {
    let service = PushService::start().await;
    service.answer_with("gone", 410);
    let server = server(&[]).await;
    let admin = server.admin().await;
    let browser = Browser::new();
    let first = subscribe(&admin, &browser, &service.endpoint("gone")).await;
    admin
        .create_business("Salon", "salon", "owner@salons.test")
        .await;
    pushes(&service, "gone", 1).await;
    // Removed: deleting it is 404, and the endpoint subscribes anew under a new id.
    let path = format!("/api/push/subscriptions/{first}/");
    eventually("the subscription removed", || {
        let admin = admin.clone();
        let path = path.clone();
        async move { (admin.call("DELETE", &path, None).await.status == 404).then_some(()) }
    })
    .await;
    assert_ne!(
        subscribe(&admin, &browser, &service.endpoint("gone")).await,
        first
    );
}

#[tokio::test]
async fn a_push_service_that_is_down_gets_the_push_later_once() {
    let mut service = PushService::start().await;
    let server = server(&[]).await;
    let admin = server.admin().await;
    let browser = Browser::new();
    subscribe(&admin, &browser, &service.endpoint("later")).await;
    service.down().await;
    let business = admin
        .create_business("Salon", "salon", "owner@salons.test")
        .await;
    // The service stays down long enough for a few tries to fail (100 ms base, doubling);
    // this is how long it is down, not a wait for a result.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    service.up().await;
    pushes(&service, "later", 1).await;
    let first = frames(&service, "later", &browser);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["type"], "business_created");
    // A later event arrives as one more push: the first one was not sent twice.
    Api::new(&server.base)
        .book(business["id"].as_str().unwrap(), "Zoe")
        .await;
    pushes(&service, "later", 2).await;
    let all = frames(&service, "later", &browser);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1]["type"], "reservation_created");
}

#[tokio::test]
async fn kill9_between_the_change_and_the_push_loses_no_push() {
    let mut service = PushService::start().await;
    let mut server = server(&[]).await;
    let admin = server.admin().await;
    let browser = Browser::new();
    subscribe(&admin, &browser, &service.endpoint("crash")).await;
    service.down().await;
    admin
        .create_business("Salon", "salon", "owner@salons.test")
        .await;
    server.kill9();
    service.up().await;
    assert!(service.received("crash").is_empty());
    server.start_again().await;
    pushes(&service, "crash", 1).await;
    let received = frames(&service, "crash", &browser);
    assert_eq!(received[0]["type"], "business_created");
    assert_eq!(received[0]["payload"]["business"]["subdomain"], "salon");
}

#[tokio::test]
async fn a_user_holds_at_most_20_subscriptions() {
    let service = PushService::start().await;
    let server = server(&[]).await;
    let admin = server.admin().await;
    let owner = admin
        .create_user_and_login("owner@salons.test", "business_owner")
        .await;
    let browser = Browser::new();
    for n in 0..20 {
        subscribe(&owner, &browser, &service.endpoint(&format!("device-{n}"))).await;
    }
    let answer = owner
        .post(
            "/api/push/subscriptions/",
            browser.subscription(&service.endpoint("device-20")),
        )
        .await;
    assert_eq!(answer.status, 409, "{:?}", answer.body);
    assert!(answer.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("20"));
    // A known endpoint is not a new subscription; another user has their own 20.
    subscribe(&owner, &browser, &service.endpoint("device-3")).await;
    subscribe(&admin, &browser, &service.endpoint("device-20")).await;
}

#[tokio::test]
async fn private_and_insecure_endpoints_and_bad_keys_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let browser = Browser::new();
    let good = browser.subscription("https://push.example/x");
    let with_endpoint = |endpoint: &str| {
        let mut body = good.clone();
        body["endpoint"] = json!(endpoint);
        body
    };
    let mut bad_point = good.clone();
    bad_point["keys"]["p256dh"] = json!("BAAA");
    let mut bad_auth = good.clone();
    bad_auth["keys"]["auth"] = json!("c2hvcnQ");
    let cases = [
        (
            "http, no --push-allow-insecure",
            with_endpoint("http://push.example/x"),
            "endpoint",
        ),
        (
            "loopback literal",
            with_endpoint("https://127.0.0.1:9/x"),
            "endpoint",
        ),
        (
            "loopback name",
            with_endpoint("https://localhost/x"),
            "endpoint",
        ),
        ("private", with_endpoint("https://10.1.2.3/x"), "endpoint"),
        (
            "link-local",
            with_endpoint("https://169.254.169.254/x"),
            "endpoint",
        ),
        ("CGNAT", with_endpoint("https://100.64.0.1/x"), "endpoint"),
        ("ULA", with_endpoint("https://[fd00::1]/x"), "endpoint"),
        (
            "mapped loopback",
            with_endpoint("https://[::ffff:127.0.0.1]/x"),
            "endpoint",
        ),
        (
            "credentials",
            with_endpoint("https://u:p@push.example/x"),
            "endpoint",
        ),
        ("not a point", bad_point, "keys.p256dh"),
        ("short auth", bad_auth, "keys.auth"),
        (
            "no keys",
            json!({"endpoint": "https://push.example/x"}),
            "keys",
        ),
    ];
    for (what, body, field) in cases {
        let answer = admin.post("/api/push/subscriptions/", body).await;
        assert_eq!(answer.status, 400, "{what}: {:?}", answer.body);
        assert_eq!(answer.code(), "validation_error", "{what}");
        assert!(
            answer.body["error"]["fields"][field].is_string(),
            "{what}: {:?}",
            answer.body
        );
    }
}

#[tokio::test]
async fn a_burst_to_one_user_is_coalesced_into_few_pushes_that_count_every_event() {
    const BOOKINGS: usize = 30;
    // The business's creation, then the bookings.
    const EVENTS: u64 = 1 + BOOKINGS as u64;
    let service = PushService::start().await;
    let server = server(&[
        "--push-interval-ms",
        "1000",
        "--booking-rate-per-minute",
        "1000",
        "--booking-rate-per-business-per-minute",
        "1000",
    ])
    .await;
    let admin = server.admin().await;
    let browser = Browser::new();
    subscribe(&admin, &browser, &service.endpoint("burst")).await;
    let business = admin
        .create_business("Salon", "salon", "owner@salons.test")
        .await;
    let id = business["id"].as_str().unwrap().to_string();
    let public = Api::new(&server.base);
    futures_util::future::join_all((0..BOOKINGS).map(|n| {
        let (public, id) = (public.clone(), id.clone());
        async move { public.book(&id, &format!("Customer {n}")).await }
    }))
    .await;
    // Every event is counted once: a push stands for `coalesced` events (1 when absent).
    let total = |frames: &[Value]| -> u64 {
        frames
            .iter()
            .map(|frame| frame["coalesced"].as_u64().unwrap_or(1))
            .sum()
    };
    let received = eventually("every event counted", || {
        let frames = frames(&service, "burst", &browser);
        async move { (total(&frames) >= EVENTS).then_some(frames) }
    })
    .await;
    assert_eq!(total(&received), EVENTS, "{received:?}");
    assert!(
        received.len() <= 6,
        "{} pushes for {EVENTS} events",
        received.len()
    );
    let ids: Vec<u64> = received.iter().map(|f| f["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(received.last().unwrap()["type"], "reservation_created");
}

#[tokio::test]
async fn pushes_show_in_the_outbox_and_a_backup_keeps_the_vapid_key_and_subscriptions() {
    let mut service = PushService::start().await;
    service.down().await;
    let server = server(&[]).await;
    let admin = server.admin().await;
    let key = admin.get("/api/push/key").await.body["public_key"].clone();
    let browser = Browser::new();
    subscribe(&admin, &browser, &service.endpoint("kept")).await;
    admin
        .create_business("Salon", "salon", "owner@salons.test")
        .await;
    let data = server.into_data();
    let dir = data.path().to_str().unwrap().to_string();

    let listing = app(&["outbox", "list", "--data", &dir]).await;
    assert!(listing.contains("business_created"), "{listing}");
    assert!(
        listing.contains("1 push(es) pending, 0 failed"),
        "{listing}"
    );

    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("push.backup");
    let file = file.to_str().unwrap();
    app(&["backup", file, "--data", &dir]).await;
    let target = tempfile::tempdir().unwrap();
    app(&["restore", file, "--data", target.path().to_str().unwrap()]).await;
    app(&["check", "--data", target.path().to_str().unwrap()]).await;

    service.up().await;
    let restored = TestServer::start_on(target, &flags(&[]), &[]).await;
    let admin = restored.admin().await;
    let public_key = admin.get("/api/push/key").await.body["public_key"].clone();
    assert_eq!(public_key, key, "the VAPID key survives a restore");
    pushes(&service, "kept", 1).await;
    let frame = &frames(&service, "kept", &browser)[0];
    assert_eq!(frame["type"], "business_created");
    check_vapid(
        &service.received("kept")[0],
        public_key.as_str().unwrap(),
        &service.origin(),
        SUBJECT,
    );
}
