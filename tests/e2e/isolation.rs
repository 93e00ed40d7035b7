//! Tenant isolation stated once for every path (API.md, second round; DESIGN invariant 3): an
//! owner receives an event — live, replayed on resume, caught up after lagging past the bus
//! ring, or listed over REST — only if they owned its business when it was committed; a
//! business moved away or deleted closes the old owner's socket with 4403 after that event.
//! The randomized test at the end checks the rule and invariant 2 (no gap, no duplicate within
//! what a socket may see) against a model of ownership by event id.

use crate::support::{business_of, id_of, token, Api, TestServer, Ws, WsEvent, SOON};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

async fn delete(admin: &Api, business: &str) {
    let answer = admin
        .call("DELETE", &format!("/api/businesses/{business}/"), None)
        .await;
    assert!(answer.status < 300, "{:?}", answer.body);
}

/// Opens `/ws/business/{id}/` and returns the socket and its hello.
async fn business_socket(
    server: &TestServer,
    owner: &Api,
    business: &str,
    resume: Option<(u64, &str)>,
) -> (Ws, Value) {
    let path = format!("/ws/business/{business}/");
    let mut ws = Ws::channel(&server.ws_base(), &path, &token(owner), resume).await;
    let hello = ws.frame().await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    (ws, hello)
}

/// Every event frame until the socket closes; returns them and the close code.
async fn until_closed(ws: &mut Ws) -> (Vec<Value>, u16) {
    let mut events = Vec::new();
    loop {
        match ws.read_within(SOON).await {
            Some(WsEvent::Frame(frame)) if frame.get("id").is_some() => events.push(frame),
            Some(WsEvent::Frame(_)) => {}
            Some(WsEvent::Closed(code)) => return (events, code),
            other => panic!("expected frames then a close, got {other:?} after {events:?}"),
        }
    }
}

/// Ids of the caller's notifications and activity (REST lists).
async fn listed_ids(owner: &Api) -> Vec<u64> {
    let mut ids = Vec::new();
    for path in ["/api/notifications/", "/api/activity/"] {
        let answer = owner.get(path).await;
        assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
        ids.extend(answer.body["items"].as_array().unwrap().iter().map(id_of));
    }
    ids
}

#[tokio::test]
async fn invariant_3_a_moved_business_sends_its_old_owner_the_move_then_closes_with_4403() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let old = admin
        .create_user_and_login("old@example.com", "business_owner")
        .await;
    admin
        .create_user_and_login("new@example.com", "business_owner")
        .await;
    let business = admin
        .create_business("Salon", "moved", "old@example.com")
        .await;
    let id = business["id"].as_str().unwrap();
    let (mut ws, _) = business_socket(&server, &old, id, None).await;
    admin.reassign(id, "new@example.com").await;
    let (events, code) = until_closed(&mut ws).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "business_updated");
    assert_eq!(
        events[0]["payload"]["business"]["owner_email"],
        "new@example.com"
    );
    assert_eq!(code, 4403);
}

#[tokio::test]
async fn invariant_3_a_deleted_business_sends_its_owner_the_deletion_then_closes_with_4403() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let owner = admin
        .create_user_and_login("o@example.com", "business_owner")
        .await;
    let business = admin
        .create_business("Salon", "gone", "o@example.com")
        .await;
    let id = business["id"].as_str().unwrap();
    let (mut ws, _) = business_socket(&server, &owner, id, None).await;
    delete(&admin, id).await;
    let (events, code) = until_closed(&mut ws).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["business_deleted"]);
    assert_eq!(code, 4403);
}

#[tokio::test]
async fn invariant_3_a_resume_skips_what_happened_while_someone_else_owned_the_business() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let a = admin
        .create_user_and_login("a@example.com", "business_owner")
        .await;
    let b = admin
        .create_user_and_login("b@example.com", "business_owner")
        .await;
    let business = admin
        .create_business("Salon", "away", "a@example.com")
        .await;
    let id = business["id"].as_str().unwrap();
    let (ws, hello) = business_socket(&server, &a, id, None).await;
    let epoch = hello["payload"]["epoch"].as_str().unwrap().to_string();
    let seen = hello["payload"]["last_event_id"].as_u64().unwrap();
    drop(ws);

    // Users have no events, so the ids follow on from the hello's.
    let a_first = seen + 1;
    admin.book(id, "Ann One").await;
    admin.reassign(id, "b@example.com").await;
    admin.book(id, "Bob Private").await;
    admin.reassign(id, "a@example.com").await;
    admin.book(id, "Ann Two").await;

    // Back with A: the resume replays A's events and both moves, none of B's time.
    let (mut ws, _) = business_socket(&server, &a, id, Some((seen, &epoch))).await;
    let events = ws.events(4).await;
    let names: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["type"], e["payload"]["reservation"]["customer_name"]
            )
        })
        .collect();
    assert_eq!(id_of(&events[0]), a_first, "{names:?}");
    assert_eq!(
        names,
        [
            "\"reservation_created\" \"Ann One\"",
            "\"business_updated\" null",
            "\"business_updated\" null",
            "\"reservation_created\" \"Ann Two\"",
        ]
    );
    ws.silent_for(Duration::from_millis(300)).await;

    // REST lists apply the same rule: A never sees B's booking, B none of A's.
    let a_listed = listed_ids(&a).await;
    let b_listed = listed_ids(&b).await;
    let bob = a_first + 2;
    assert!(
        !a_listed.contains(&bob),
        "A listed B's booking: {a_listed:?}"
    );
    assert!(b_listed.contains(&bob), "{b_listed:?}");
    for a_only in [a_first, a_first + 4] {
        assert!(
            !b_listed.contains(&a_only),
            "B listed A's {a_only}: {b_listed:?}"
        );
    }
    let unread = b.get("/api/notifications/").await.body["unread"].clone();
    assert_eq!(unread, 3, "B: the move to B, B's booking, the move back");
}

/// The reproduction: an owner's socket lags past the bus ring while the business is
/// moved to someone else; then 20 bookings. None may reach the old owner.
#[tokio::test]
async fn invariant_3_a_socket_lagging_past_the_ring_gets_nothing_after_the_move() {
    let server = TestServer::start_with(
        &[
            "--bus-capacity",
            "8",
            "--ws-send-timeout-ms",
            "600000",
            "--event-retention",
            "100000",
            "--booking-rate-per-minute",
            "100000",
            "--booking-rate-per-business-per-minute",
            "100000",
        ],
        &[],
    )
    .await;
    let admin = server.admin().await;
    let old = admin
        .create_user_and_login("old@example.com", "business_owner")
        .await;
    admin
        .create_user_and_login("new@example.com", "business_owner")
        .await;
    // Long names make every frame about 3 KB, so a reader that stops blocks the server soon.
    let long = "𝄞".repeat(190);
    let business = admin.create_business(&long, "lag", "old@example.com").await;
    let id = business["id"].as_str().unwrap().to_string();
    let path = format!("/ws/business/{id}/?token={}", token(&old));
    let mut lagging = Ws::connect_with_receive_buffer(&server.ws_base(), &path, 4096).await;

    // Fill the socket's buffers (tungstenite holds at most 512 KiB, the kernel a little).
    let book = |n: usize| {
        let admin = admin.clone();
        let id = id.clone();
        let long = long.clone();
        async move {
            let answer = admin
                .post(
                    &format!("/api/businesses/{id}/reservations/"),
                    json!({
                        "customer_name": format!("{n} {}", &long[..4 * 180]),
                        "customer_email": format!("c{n}@example.com"),
                        "starts_at": "2031-06-01T10:00:00Z",
                        "service": long,
                    }),
                )
                .await;
            assert_eq!(answer.status, 201, "{:?}", answer.body);
        }
    };
    for round in 0..25 {
        futures_util::future::join_all((0..16).map(|i| book(round * 16 + i))).await;
    }
    admin.reassign(&id, "new@example.com").await;
    // The business's creation, 400 bookings, the move (users have no events).
    let move_id = 1 + 400 + 1;
    // 20 bookings for the new owner, past the ring of 8.
    futures_util::future::join_all((0..20).map(|i| book(1000 + i))).await;

    let (events, code) = until_closed(&mut lagging).await;
    let last = events.last().expect("the old owner got its events");
    assert_eq!(id_of(last), move_id, "the move is the last event");
    assert_eq!(last["type"], "business_updated");
    let after: Vec<u64> = events
        .iter()
        .map(id_of)
        .filter(|&event| event > move_id)
        .collect();
    assert!(
        after.is_empty(),
        "events after the move reached the old owner: {after:?}"
    );
    assert_eq!(code, 4403);
    let listed = listed_ids(&old).await;
    assert!(
        listed.iter().all(|&event| event <= move_id),
        "REST lists gave the old owner {listed:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The randomized test.

/// One owner socket as the test saw it.
struct Seen {
    owner: String,
    business: String,
    /// Events after this id are the socket's to receive.
    start: u64,
    events: Vec<Value>,
    close: Option<u16>,
    /// The connection ended (a close frame, or dropped after the server's close grace).
    ended: bool,
}

type Shared = Arc<Mutex<Seen>>;

/// Reads `ws` into `seen` until it closes; a stalled reader pauses between frames so the
/// session lags past the bus ring and catches up from the store.
fn read_into(mut ws: Ws, seen: Shared, stall: Option<Duration>) -> tokio::task::JoinHandle<Ws> {
    tokio::spawn(async move {
        loop {
            if let Some(pause) = stall {
                tokio::time::sleep(pause).await;
            }
            match ws.read_within(Duration::from_secs(60)).await {
                Some(WsEvent::Frame(frame)) => {
                    if frame.get("id").is_some() {
                        seen.lock().unwrap().events.push(frame);
                    }
                }
                Some(WsEvent::Closed(code)) => {
                    let mut seen = seen.lock().unwrap();
                    seen.close = Some(code);
                    seen.ended = true;
                    return ws;
                }
                // A slow reader may be dropped before the close frame reaches it.
                Some(WsEvent::Gone) | None => {
                    seen.lock().unwrap().ended = true;
                    return ws;
                }
            }
        }
    })
}

/// Who may receive each event: its business's owner at commit, and for a move the former
/// owner too; plus the business it is about and whether it ends the former owner's access.
#[derive(Default)]
struct Model {
    owner_now: HashMap<String, String>,
    audience: HashMap<u64, HashSet<String>>,
    business: HashMap<u64, String>,
}

impl Model {
    /// Folds in the complete, ordered admin stream.
    fn build(stream: &[Value]) -> Self {
        let mut model = Self::default();
        for event in stream {
            let id = id_of(event);
            let business = business_of(event);
            let mut audience = HashSet::new();
            if let Some(before) = model.owner_now.get(&business) {
                audience.insert(before.clone());
            }
            match event["type"].as_str().unwrap() {
                "business_created" | "business_updated" => {
                    let owner = event["payload"]["business"]["owner_email"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    audience.insert(owner.clone());
                    model.owner_now.insert(business.clone(), owner);
                }
                "business_deleted" => {
                    model.owner_now.remove(&business);
                }
                _ => {}
            }
            model.audience.insert(id, audience);
            model.business.insert(id, business);
        }
        model
    }

    fn may_receive(&self, owner: &str, id: u64) -> bool {
        self.audience.get(&id).is_some_and(|a| a.contains(owner))
    }
}

/// Seeds run in CI; `ISOLATION_SEEDS=1,2,3` (or `ISOLATION_SEEDS=100` for seeds 0..100)
/// runs others. On the code before the fix (emulated with the new flags), seed 0 failed
/// through a socket (owner1 received another owner's reservation after a resume/catch-up)
/// and seed 7 through REST (an owner's notifications listed the previous owner's booking).
fn seeds() -> Vec<u64> {
    match std::env::var("ISOLATION_SEEDS") {
        Ok(text) if text.contains(',') => text
            .split(',')
            .map(|s| s.trim().parse().expect("a seed"))
            .collect(),
        Ok(text) => (0..text.trim().parse::<u64>().expect("a seed count")).collect(),
        Err(_) => vec![0, 7],
    }
}

#[tokio::test]
async fn invariant_3_randomized_no_owner_ever_receives_an_event_of_a_business_they_did_not_own() {
    for seed in seeds() {
        run_seed(seed).await;
    }
}

async fn run_seed(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let server = TestServer::start_with(
        &[
            "--bus-capacity",
            "2",
            "--event-retention",
            "100000",
            "--booking-rate-per-minute",
            "100000",
            "--booking-rate-per-business-per-minute",
            "100000",
        ],
        &[],
    )
    .await;
    let admin = server.admin().await;
    let emails: Vec<String> = (0..4).map(|i| format!("owner{i}@example.com")).collect();
    let mut owners = HashMap::new();
    for email in &emails {
        let api = admin.create_user_and_login(email, "business_owner").await;
        owners.insert(email.clone(), api);
    }
    let mut dash = Ws::channel(&server.ws_base(), "/ws/dashboard/", &token(&admin), None).await;
    let hello = dash.frame().await;
    let epoch = hello["payload"]["epoch"].as_str().unwrap().to_string();
    let admin_seen: Shared = Arc::new(Mutex::new(Seen {
        owner: "admin".into(),
        business: String::new(),
        start: 0,
        events: Vec::new(),
        close: None,
        ended: false,
    }));
    let dash_task = read_into(dash, admin_seen.clone(), None);

    // Who owns what, as the test drives it (the model built afterwards is the judge).
    let mut live: Vec<(String, String)> = Vec::new();
    for i in 0..4 {
        let owner = &emails[i % emails.len()];
        let business = admin
            .create_business(&format!("S{seed}-{i}"), &format!("s{seed}x{i}"), owner)
            .await;
        live.push((business["id"].as_str().unwrap().to_string(), owner.clone()));
    }
    let mut sockets: Vec<(Shared, tokio::task::JoinHandle<Ws>)> = Vec::new();
    let mut created = live.len();
    for step in 0..60 {
        match rng.random_range(0..100) {
            // A socket of an owner on one of their businesses, maybe resuming, maybe stalled.
            0..=24 => {
                let (business, owner) = live[rng.random_range(0..live.len())].clone();
                let resume_from = sockets
                    .iter()
                    .filter_map(|(seen, _)| {
                        let seen = seen.lock().unwrap();
                        (seen.owner == owner && seen.business == business)
                            .then(|| seen.events.last().map_or(seen.start, id_of))
                    })
                    .max();
                let resume = resume_from.filter(|_| rng.random_bool(0.7));
                let api = &owners[&owner];
                let path = format!("/ws/business/{business}/");
                let mut ws = Ws::channel(
                    &server.ws_base(),
                    &path,
                    &token(api),
                    resume.map(|id| (id, epoch.as_str())),
                )
                .await;
                let start = match ws.frame().await {
                    hello if hello["type"] == "connection_established" => resume
                        .unwrap_or_else(|| hello["payload"]["last_event_id"].as_u64().unwrap()),
                    other => panic!("seed {seed}: {other}"),
                };
                let stall = rng
                    .random_bool(0.4)
                    .then(|| Duration::from_millis(rng.random_range(5..40)));
                let seen = Arc::new(Mutex::new(Seen {
                    owner,
                    business,
                    start,
                    events: Vec::new(),
                    close: None,
                    ended: false,
                }));
                sockets.push((seen.clone(), read_into(ws, seen, stall)));
            }
            // Reassign a business (sometimes back to an earlier owner).
            25..=44 => {
                let at = rng.random_range(0..live.len());
                let owner = emails[rng.random_range(0..emails.len())].clone();
                admin.reassign(&live[at].0, &owner).await;
                live[at].1 = owner;
            }
            // Delete one and open another, so there are always a few.
            45..=51 if live.len() > 2 => {
                let (business, _) = live.remove(rng.random_range(0..live.len()));
                delete(&admin, &business).await;
                let owner = emails[rng.random_range(0..emails.len())].clone();
                created += 1;
                let business = admin
                    .create_business(
                        &format!("S{seed}-{created}"),
                        &format!("s{seed}x{created}"),
                        &owner,
                    )
                    .await;
                live.push((business["id"].as_str().unwrap().to_string(), owner));
            }
            // A burst of concurrent bookings: published back to back, past the ring of 2.
            _ => {
                let burst = rng.random_range(1..12);
                let bookings = (0..burst).map(|n| {
                    let (business, _) = live[rng.random_range(0..live.len())].clone();
                    let admin = admin.clone();
                    async move {
                        admin.book(&business, &format!("Guest {step} {n}")).await;
                    }
                });
                futures_util::future::join_all(bookings).await;
            }
        }
    }

    // Everything settles: the admin stream reaches the newest id, every socket its share.
    // Every write was answered, so it is durable; the bus publishes it a moment later. The
    // log is final once the published id stands still and the admin stream has reached it.
    let mut newest = 0;
    for _ in 0..600 {
        let published = admin.get("/api/dashboard/").await.body["last_event_id"]
            .as_u64()
            .unwrap();
        let streamed = admin_seen.lock().unwrap().events.last().map(id_of);
        if published == newest && streamed == Some(newest) {
            break;
        }
        newest = published;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stream = admin_seen.lock().unwrap().events.clone();
    assert_eq!(
        stream.iter().map(id_of).collect::<Vec<_>>(),
        (1..=newest).collect::<Vec<_>>(),
        "seed {seed}: the dashboard stream is whole (invariant 2)"
    );
    let model = Model::build(&stream);
    for (seen, _) in &sockets {
        let expected = |seen: &Seen, up_to: u64| -> Vec<u64> {
            (seen.start + 1..=up_to)
                .filter(|&id| model.business[&id] == seen.business)
                .filter(|&id| model.may_receive(&seen.owner, id))
                .collect()
        };
        wait_for(
            &format!("seed {seed}: socket of {}", seen.lock().unwrap().owner),
            || {
                let seen = seen.lock().unwrap();
                seen.ended
                    || seen.events.iter().map(id_of).collect::<Vec<_>>() == expected(&seen, newest)
            },
        )
        .await;
        let seen = seen.lock().unwrap();
        let got: Vec<u64> = seen.events.iter().map(id_of).collect();
        for id in &got {
            assert!(
                model.may_receive(&seen.owner, *id),
                "seed {seed}: {} received event {id} of a business they did not own then: {:?}",
                seen.owner,
                stream.get(*id as usize - 1)
            );
        }
        let up_to = got.last().copied().unwrap_or(seen.start);
        assert_eq!(
            got,
            expected(&seen, up_to),
            "seed {seed}: {} on {}: gap-free and duplicate-free within what they may see",
            seen.owner,
            seen.business
        );
        if let Some(code) = seen.close {
            assert_eq!(code, 4403, "seed {seed}: only a move or a deletion closes");
        }
    }
    for (email, api) in &owners {
        for id in listed_ids(api).await {
            assert!(
                model.may_receive(email, id),
                "seed {seed}: REST listed event {id} to {email}: {:?}",
                stream.get(id as usize - 1)
            );
        }
    }
    for (_, task) in sockets {
        task.abort();
    }
    dash_task.abort();
}

/// Polls `done` until true, failing with `what` after a generous deadline.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
