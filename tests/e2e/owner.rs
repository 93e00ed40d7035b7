//! An owner's whole day (issue 13, API.md second round "Owners with several businesses"): the
//! owner channel `/ws/owner/` follows every business the caller owns as ownership changes, the
//! activity feed pages back through the retained log, reservations list by start time, and a
//! reassigned business welcomes its new owner by mail.

use crate::support::{business_of, id_of, token, Api, TestServer, Ws, WsEvent};
use serde_json::{json, Value};
use std::time::Duration;

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
    t.admin.reassign(&t.ids[2], "ann@example.com").await;
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
    t.admin.reassign(&t.ids[0], "bob@example.com").await;
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
    t.admin.reassign(&t.ids[0], "bob@example.com").await;
    t.admin.book(&t.ids[0], "Ida").await;
    t.admin.reassign(&t.ids[2], "ann@example.com").await;
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

/// Pages `/api/activity/` back from the newest with `query` (and `limit`) until
/// `next_before` is null; returns every id in the order listed.
async fn page_back(api: &Api, query: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let mut path = format!("/api/activity/?limit={limit}{query}");
        if let Some(before) = before {
            path.push_str(&format!("&before={before}"));
        }
        let answer = api.get(&path).await;
        assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
        let page = answer.body["items"].as_array().expect("items").clone();
        assert!(page.len() <= limit);
        items.extend(page);
        match answer.body["next_before"].as_u64() {
            Some(next) => {
                assert_eq!(
                    Some(next),
                    items.last().map(id_of),
                    "next_before is the last id"
                );
                before = Some(next);
            }
            None => {
                assert!(answer.body["next_before"].is_null());
                return items;
            }
        }
    }
}

#[tokio::test]
async fn invariant_2_the_activity_feed_pages_back_through_200_events_with_no_gap_or_duplicate() {
    let t = two_owners().await;
    // 3 creates + 210 renames: more than four pages of 50.
    for round in 0..70 {
        for id in &t.ids {
            let answer = t
                .admin
                .call(
                    "PATCH",
                    &format!("/api/businesses/{id}/"),
                    Some(json!({ "name": format!("renamed {round}") })),
                )
                .await;
            assert_eq!(answer.status, 200, "{:?}", answer.body);
        }
    }
    let all: Vec<u64> = page_back(&t.admin, "", 50)
        .await
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(all, (1..=213).rev().collect::<Vec<u64>>());

    // Invariant 3: an owner pages through theirs only, all of them.
    let anns = page_back(&t.ann, "", 30).await;
    assert_eq!(anns.len(), 2 + 140);
    assert!(anns.iter().all(|e| business_of(e) != t.ids[2]));
    let ids: Vec<u64> = anns.iter().map(id_of).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, once each"
    );

    // The type filter holds across pages: the three creates, one a page.
    let created = page_back(&t.admin, "&type=business_created", 1).await;
    let created: Vec<u64> = created.iter().map(id_of).collect();
    assert_eq!(created, vec![3, 2, 1]);

    // Without paging, the first round's answer: the newest 50, and where to page on.
    let first = t.admin.get("/api/activity/").await;
    assert_eq!(first.status, 200);
    let items = first.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    assert_eq!(id_of(&items[0]), 213);
    assert_eq!(first.body["next_before"], 164);

    // Edges.
    let oldest = t.admin.get("/api/activity/?before=1").await;
    assert_eq!(oldest.status, 200);
    assert_eq!(oldest.body["items"], json!([]));
    assert!(oldest.body["next_before"].is_null());
    let above = t.admin.get("/api/activity/?before=100000&limit=3").await;
    assert_eq!(above.status, 200);
    let ids: Vec<u64> = above.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, vec![213, 212, 211]);
    assert_eq!(above.body["next_before"], 211);
    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "before=0",
        "before=-1",
        "before=abc",
    ] {
        let answer = t.admin.get(&format!("/api/activity/?{bad}")).await;
        assert_eq!(answer.status, 400, "{bad}: {:?}", answer.body);
        assert_eq!(answer.code(), "validation_error", "{bad}");
    }
    let max = t.admin.get("/api/activity/?limit=200").await;
    assert_eq!(max.body["items"].as_array().unwrap().len(), 200);
}

async fn book_at(api: &Api, business: &str, customer: &str, starts_at: &str) -> Value {
    let answer = api
        .post(
            &format!("/api/businesses/{business}/reservations/"),
            json!({
                "customer_name": customer,
                "customer_email": "guest@example.com",
                "starts_at": starts_at,
                "service": "Cut",
            }),
        )
        .await;
    assert_eq!(answer.status, 201, "book: {:?}", answer.body);
    answer.body
}

fn customers(listing: &Value) -> Vec<String> {
    listing["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["customer_name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn upcoming_reservations_are_the_confirmed_future_ones_soonest_first() {
    let t = two_owners().await;
    let alpha = &t.ids[0];
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .expect("rfc 3339");
    let api = t.server.api();
    book_at(&api, alpha, "Late", "2032-01-03T09:00:00Z").await;
    book_at(&api, alpha, "First", "2032-01-01T09:00:00Z").await;
    book_at(&api, alpha, "Middle", "2032-01-02T09:00:00Z").await;
    book_at(&api, alpha, "Tied", "2032-01-01T09:00:00Z").await;
    let gone = book_at(&api, alpha, "Cancelled", "2032-01-01T08:00:00Z").await;
    let rid = gone["id"].as_str().unwrap();
    let cancel = t
        .ann
        .call(
            "POST",
            &format!("/api/businesses/{alpha}/reservations/{rid}/cancel/"),
            None,
        )
        .await;
    assert_eq!(cancel.status, 200);
    book_at(&api, alpha, "Soon", &soon).await;
    let path = format!("/api/businesses/{alpha}/reservations/?upcoming=true");
    let now = t.ann.get(&path).await;
    assert_eq!(now.status, 200, "{:?}", now.body);
    assert_eq!(
        customers(&now.body),
        ["Soon", "First", "Tied", "Middle", "Late"]
    );
    assert_eq!(now.body["count"], 5);
    assert!(now.body["next_cursor"].is_null());

    // Once its time has passed, it is out of the way.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let first = t.ann.get(&format!("{path}&limit=2")).await;
    assert_eq!(customers(&first.body), ["First", "Tied"]);
    assert_eq!(first.body["count"], 4);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("more to come")
        .to_string();
    let second = t.ann.get(&format!("{path}&limit=2&cursor={cursor}")).await;
    assert_eq!(customers(&second.body), ["Middle", "Late"]);
    assert!(second.body["next_cursor"].is_null());

    // The two listings' cursors are not each other's.
    let newest = t
        .ann
        .get(&format!("/api/businesses/{alpha}/reservations/?limit=1"))
        .await;
    let newest_cursor = newest.body["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_string();
    let crossed = [
        format!("{path}&cursor={newest_cursor}"),
        format!("/api/businesses/{alpha}/reservations/?cursor={cursor}"),
        format!("{path}&limit=0"),
        format!("{path}&limit=501"),
        format!("/api/businesses/{alpha}/reservations/?upcoming=yes"),
    ];
    for bad in crossed {
        let answer = t.ann.get(&bad).await;
        assert_eq!(answer.status, 400, "{bad}: {:?}", answer.body);
        assert_eq!(answer.code(), "validation_error");
    }
    // Invariant 3: another owner learns nothing.
    assert_eq!(t.bob.get(&path).await.status, 404);
}
