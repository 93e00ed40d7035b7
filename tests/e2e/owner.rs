//! An owner's whole day (issue 13, API.md second round "Owners with several businesses"): the
//! owner channel `/ws/owner/` follows every business the caller owns as ownership changes, the
//! activity feed pages back through the retained log, reservations list by start time, and a
//! reassigned business welcomes its new owner by mail.

use crate::support::{Api, TestServer, Ws, WsEvent};
use serde_json::{json, Value};
use std::time::Duration;

fn token(api: &Api) -> String {
    api.token.clone().expect("logged in")
}

fn id_of(event: &Value) -> u64 {
    event["id"].as_u64().expect("event id")
}

/// The business an event frame is about.
fn business_of(event: &Value) -> String {
    let payload = &event["payload"];
    payload["business"]["id"]
        .as_str()
        .or_else(|| payload["business_id"].as_str())
        .expect("every event names its business")
        .to_string()
}

async fn patch_owner(admin: &Api, business: &str, owner: &str) -> Value {
    let answer = admin
        .call(
            "PATCH",
            &format!("/api/businesses/{business}/"),
            Some(json!({ "owner_email": owner })),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body
}

/// Opens `/ws/owner/` and returns the socket and its hello.
async fn owner_socket(
    server: &TestServer,
    owner: &Api,
    resume: Option<(u64, &str)>,
) -> (Ws, Value) {
    let mut ws = Ws::channel(&server.ws_base(), "/ws/owner/", &token(owner), resume).await;
    let hello = ws.frame().await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    (ws, hello)
}

/// Two owners: Ann owns two of three businesses, Bob the third.
struct Two {
    server: TestServer,
    admin: Api,
    ann: Api,
    bob: Api,
    /// Ann's two businesses, then Bob's.
    ids: [String; 3],
}

async fn two_owners() -> Two {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let ann = admin
        .create_user_and_login("ann@example.com", "business_owner")
        .await;
    let bob = admin
        .create_user_and_login("bob@example.com", "business_owner")
        .await;
    let mut ids = Vec::new();
    for (name, owner) in [
        ("alpha", "ann@example.com"),
        ("beta", "ann@example.com"),
        ("gamma", "bob@example.com"),
    ] {
        let business = admin.create_business(name, name, owner).await;
        ids.push(business["id"].as_str().unwrap().to_string());
    }
    Two {
        server,
        admin,
        ann,
        bob,
        ids: ids.try_into().expect("three businesses"),
    }
}

/// Reads event frames for a moment and returns them (the socket must stay open).
async fn drain(ws: &mut Ws) -> Vec<Value> {
    let mut events = Vec::new();
    while let Some(event) = ws.read_within(Duration::from_millis(700)).await {
        match event {
            WsEvent::Frame(frame) if frame.get("id").is_some() => events.push(frame),
            WsEvent::Frame(_) => {}
            other => panic!("the owner channel stays open, got {other:?} after {events:?}"),
        }
    }
    events
}

#[tokio::test]
async fn invariant_3_the_owner_channel_carries_every_business_of_its_owner_and_none_of_the_others()
{
    let t = two_owners().await;
    let (mut ann_ws, hello) = owner_socket(&t.server, &t.ann, None).await;
    assert_eq!(hello["payload"]["channel"], "owner");
    assert_eq!(hello["payload"]["user"]["email"], "ann@example.com");
    let (mut bob_ws, _) = owner_socket(&t.server, &t.bob, None).await;
    for id in &t.ids {
        t.admin.book(id, "Carol").await;
    }
    let ann_events = ann_ws.events(2).await;
    let ann_businesses: Vec<String> = ann_events.iter().map(business_of).collect();
    assert_eq!(ann_businesses, vec![t.ids[0].clone(), t.ids[1].clone()]);
    assert!(ann_events
        .iter()
        .all(|e| e["type"] == "reservation_created"));
    let bob_event = bob_ws.event().await;
    assert_eq!(business_of(&bob_event), t.ids[2]);
    // Nothing else arrives on either: no other owner's event (invariant 3).
    assert!(drain(&mut ann_ws).await.is_empty());
    assert!(drain(&mut bob_ws).await.is_empty());
}

#[tokio::test]
async fn a_business_reassigned_live_starts_and_ends_with_its_move_and_the_socket_stays_open() {
    let t = two_owners().await;
    let (mut ann_ws, _) = owner_socket(&t.server, &t.ann, None).await;
    let (mut bob_ws, _) = owner_socket(&t.server, &t.bob, None).await;
    // Bob's gamma moves to Ann: both see the move; after it only Ann sees gamma.
    patch_owner(&t.admin, &t.ids[2], "ann@example.com").await;
    t.admin.book(&t.ids[2], "Dan").await;
    let ann_events = ann_ws.events(2).await;
    assert_eq!(ann_events[0]["type"], "business_updated");
    assert_eq!(ann_events[1]["type"], "reservation_created");
    assert!(ann_events.iter().all(|e| business_of(e) == t.ids[2]));
    let bob_move = bob_ws.event().await;
    assert_eq!(bob_move["type"], "business_updated");
    assert_eq!(
        bob_move["payload"]["business"]["owner_email"],
        "ann@example.com"
    );
    assert!(
        drain(&mut bob_ws).await.is_empty(),
        "nothing of gamma after the move"
    );
    // And Ann's alpha away to Bob: Ann's channel goes on with beta.
    patch_owner(&t.admin, &t.ids[0], "bob@example.com").await;
    t.admin.book(&t.ids[0], "Eve").await;
    t.admin.book(&t.ids[1], "Fay").await;
    let ann_events = ann_ws.events(2).await;
    assert_eq!(ann_events[0]["type"], "business_updated");
    assert_eq!(business_of(&ann_events[0]), t.ids[0]);
    assert_eq!(business_of(&ann_events[1]), t.ids[1]);
    assert!(drain(&mut ann_ws).await.is_empty());
    let bob_events = bob_ws.events(2).await;
    assert_eq!(bob_events[0]["type"], "business_updated");
    assert_eq!(bob_events[1]["type"], "reservation_created");
    assert!(bob_events.iter().all(|e| business_of(e) == t.ids[0]));
}

#[tokio::test]
async fn invariant_2_resuming_the_owner_channel_replays_moves_in_both_directions_with_no_gap() {
    let t = two_owners().await;
    let (mut ws, hello) = owner_socket(&t.server, &t.ann, None).await;
    let epoch = hello["payload"]["epoch"].as_str().unwrap().to_string();
    t.admin.book(&t.ids[0], "Gil").await;
    let seen = ws.event().await;
    drop(ws);
    // While Ann is away: alpha moves to Bob, gamma to Ann, and each gets a booking after.
    t.admin.book(&t.ids[1], "Hal").await;
    patch_owner(&t.admin, &t.ids[0], "bob@example.com").await;
    t.admin.book(&t.ids[0], "Ida").await;
    patch_owner(&t.admin, &t.ids[2], "ann@example.com").await;
    t.admin.book(&t.ids[2], "Jon").await;
    let (mut ws, _) = owner_socket(&t.server, &t.ann, Some((id_of(&seen), &epoch))).await;
    let replayed = drain(&mut ws).await;
    let summary: Vec<(String, String)> = replayed
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_string(), business_of(e)))
        .collect();
    let expected = vec![
        ("reservation_created".to_string(), t.ids[1].clone()),
        ("business_updated".to_string(), t.ids[0].clone()),
        ("business_updated".to_string(), t.ids[2].clone()),
        ("reservation_created".to_string(), t.ids[2].clone()),
    ];
    assert_eq!(summary, expected);
    let ids: Vec<u64> = replayed.iter().map(id_of).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {ids:?}");
    assert!(ids[0] > id_of(&seen), "no duplicate of what was seen");
    // Live events go on after the replay.
    t.admin.book(&t.ids[2], "Kim").await;
    let live = ws.event().await;
    assert_eq!(business_of(&live), t.ids[2]);
    assert_eq!(id_of(&live), ids[3] + 1);
}

#[tokio::test]
async fn the_owner_channel_is_for_owners_only() {
    let t = two_owners().await;
    let mut ws = Ws::channel(&t.server.ws_base(), "/ws/owner/", &token(&t.admin), None).await;
    assert_eq!(ws.closed().await, 4403, "a super admin has the dashboard");
    let mut ws = Ws::channel(&t.server.ws_base(), "/ws/owner/", "not-a-token", None).await;
    assert_eq!(ws.closed().await, 4401);
}
