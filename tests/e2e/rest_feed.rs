//! The dashboard, the activity feed, notifications with read receipts, `/healthz` and
//! `/metrics` (API.md "Dashboard, activity, notifications", "Health and monitoring").

use crate::rest_support::{
    activity, assert_error, assert_field_error, event_ids, tally_becomes, Tally,
};
use crate::support::{eventually, Api, TestServer};
use futures_util::future::join_all;
use serde_json::{json, Value};

#[tokio::test]
async fn dashboard_counts_are_exact_and_recent_businesses_are_the_newest_ten() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let business = admin
            .create_business(
                &format!("Salon {n}"),
                &format!("salon-{n}"),
                "o@example.com",
            )
            .await;
        ids.push(business["id"].as_str().unwrap().to_string());
    }
    for name in ["Ann Lee", "Bo Chan", "Cy Dunn"] {
        server.api().book(&ids[0], name).await;
    }
    let rid = server.api().book(&ids[1], "Di Eve").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cancelled = admin
        .call(
            "POST",
            &format!("/api/businesses/{}/reservations/{rid}/cancel/", ids[1]),
            None,
        )
        .await;
    assert_eq!(cancelled.status, 200);
    // Deleting a business takes its reservations out of the count.
    assert_eq!(
        admin
            .call("DELETE", &format!("/api/businesses/{}/", ids[0]), None)
            .await
            .status,
        204
    );

    // 12 created + 4 booked + 1 cancelled + 3 cancelled by the delete (API.md "The
    // lifecycle of a booking") + 1 deleted = 21 events.
    tally_becomes(
        &admin,
        Tally {
            businesses: 11,
            reservations: 1,
            last_event_id: 21,
        },
    )
    .await;
    let dashboard = admin.get("/api/dashboard/").await;

    assert_eq!(dashboard.body["connections"], 0, "no WebSocket is open");
    let recent = dashboard.body["recent_businesses"]
        .as_array()
        .expect("recent_businesses");
    let recent_ids: Vec<&str> = recent.iter().map(|b| b["id"].as_str().unwrap()).collect();
    let newest_ten: Vec<&str> = ids.iter().rev().take(10).map(String::as_str).collect();
    assert_eq!(recent_ids, newest_ten, "up to 10, newest first");
    assert_eq!(recent[0]["name"], "Salon 11");
}

#[tokio::test]
async fn activity_filters_by_type_and_refuses_unknown_types() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let a = admin.create_business("A", "a", "o@example.com").await;
    let b = admin.create_business("B", "b", "o@example.com").await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let rid = server.api().book(a_id, "Ann Lee").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    server.api().book(b_id, "Bo Chan").await;
    admin
        .call(
            "POST",
            &format!("/api/businesses/{a_id}/reservations/{rid}/cancel/"),
            None,
        )
        .await;
    admin
        .call(
            "PATCH",
            &format!("/api/businesses/{b_id}/"),
            Some(json!({"name": "B2"})),
        )
        .await;
    admin
        .call("DELETE", &format!("/api/businesses/{a_id}/"), None)
        .await;
    tally_becomes(
        &admin,
        Tally {
            businesses: 1,
            reservations: 1,
            last_event_id: 7,
        },
    )
    .await;

    let all = activity(&admin, "").await;
    assert_eq!(
        event_ids(&all),
        [7, 6, 5, 4, 3, 2, 1],
        "everything, newest first"
    );
    let expected = [
        ("business_created", vec![2, 1]),
        ("reservation_created", vec![4, 3]),
        ("reservation_cancelled", vec![5]),
        ("business_updated", vec![6]),
        ("business_deleted", vec![7]),
    ];
    for (kind, ids) in expected {
        let items = activity(&admin, &format!("?type={kind}")).await;
        assert_eq!(event_ids(&items), ids, "?type={kind}");
        assert!(
            items.iter().all(|item| item["type"] == kind),
            "?type={kind}: {items:?}"
        );
    }
    for query in [
        "?type=bogus",
        "?type=BUSINESS_CREATED",
        "?type=business_created%00",
    ] {
        assert_field_error(
            &admin.get(&format!("/api/activity/{query}")).await,
            "type",
            query,
        );
    }
}

#[tokio::test]
async fn activity_holds_only_the_last_50_and_filters_among_them() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let first = admin
        .create_business("First", "first", "o@example.com")
        .await;
    let first_id = first["id"].as_str().unwrap();
    server.api().book(first_id, "Ann Lee").await;
    server.api().book(first_id, "Bo Chan").await;
    // Events 4..=55: 52 more businesses, created concurrently.
    let creates = (0..52).map(|n| {
        let admin = admin.clone();
        async move {
            admin
                .create_business(&format!("S{n}"), &format!("s-{n}"), "o@example.com")
                .await
        }
    });
    join_all(creates).await;
    tally_becomes(
        &admin,
        Tally {
            businesses: 53,
            reservations: 2,
            last_event_id: 55,
        },
    )
    .await;

    let items = activity(&admin, "").await;

    let expected: Vec<u64> = (6..=55).rev().collect();
    assert_eq!(
        event_ids(&items),
        expected,
        "exactly the newest 50, newest first"
    );
    assert_eq!(
        activity(&admin, "?type=reservation_created").await,
        Vec::<Value>::new(),
        "fell out of the 50"
    );
    assert_eq!(activity(&admin, "?type=business_created").await.len(), 50);
}

/// The `(unread, item ids)` of a user's notifications.
async fn notifications(api: &Api) -> (u64, Vec<u64>) {
    let answer = api.get("/api/notifications/").await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let items = answer.body["items"].as_array().expect("items");
    (
        answer.body["unread"].as_u64().expect("unread"),
        event_ids(items),
    )
}

async fn mark_read(api: &Api, up_to: u64) -> Value {
    let answer = api
        .post("/api/notifications/read/", json!({"up_to": up_to}))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body
}

#[tokio::test]
async fn notifications_count_unread_per_user_and_receipts_never_move_backwards() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let owner = admin
        .create_user_and_login("owner@example.com", "business_owner")
        .await;
    let mine = admin
        .create_business("Mine", "mine", "owner@example.com")
        .await; // 1
    let other = admin
        .create_business("Other", "other", "else@example.com")
        .await; // 2
    server
        .api()
        .book(mine["id"].as_str().unwrap(), "Ann Lee")
        .await; // 3
    server
        .api()
        .book(other["id"].as_str().unwrap(), "Bo Chan")
        .await; // 4
    tally_becomes(
        &admin,
        Tally {
            businesses: 2,
            reservations: 2,
            last_event_id: 4,
        },
    )
    .await;

    assert_eq!(
        notifications(&admin).await,
        (4, vec![4, 3, 2, 1]),
        "admin sees everything"
    );
    assert_eq!(
        notifications(&owner).await,
        (2, vec![3, 1]),
        "owner sees their business only"
    );

    assert_eq!(mark_read(&admin, 2).await, json!({"up_to": 2, "unread": 2}));
    assert_eq!(notifications(&admin).await.0, 2);
    assert_eq!(
        mark_read(&admin, 1).await,
        json!({"up_to": 2, "unread": 2}),
        "never backwards"
    );
    assert_eq!(notifications(&admin).await.0, 2);
    assert_eq!(notifications(&owner).await.0, 2, "receipts are per user");

    assert_eq!(mark_read(&owner, 1).await["unread"], 1);
    assert_eq!(
        notifications(&owner).await,
        (1, vec![3, 1]),
        "read items stay listed"
    );
    assert_eq!(
        mark_read(&owner, 4).await["unread"],
        0,
        "an id the owner cannot see still counts as a position"
    );

    // Reading everything, then something new happens: it is unread.
    assert_eq!(mark_read(&admin, 4).await, json!({"up_to": 4, "unread": 0}));
    admin
        .create_business("Later", "later", "owner@example.com")
        .await; // 5
    tally_becomes(
        &admin,
        Tally {
            businesses: 3,
            reservations: 2,
            last_event_id: 5,
        },
    )
    .await;
    assert_eq!(
        notifications(&admin).await.0,
        1,
        "an event after the receipt is unread"
    );
    assert_eq!(notifications(&owner).await.0, 1);

    for (body, why) in [
        (json!({}), "up_to missing"),
        (json!({"up_to": null}), "up_to null"),
        (json!({"up_to": "3"}), "up_to a string"),
        (json!({"up_to": -1}), "up_to negative"),
        (json!({"up_to": 2.5}), "up_to a fraction"),
    ] {
        assert_field_error(
            &admin.post("/api/notifications/read/", body).await,
            "up_to",
            why,
        );
    }
    assert_eq!(
        notifications(&admin).await.0,
        1,
        "refused receipts changed nothing"
    );
}

#[tokio::test]
async fn healthz_and_metrics_answer_without_a_token() {
    let server = TestServer::start().await;
    let api = server.api();

    let health = api.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, json!({"status": "ok"}));

    let admin = server.admin().await;
    admin.create_business("A", "a", "o@example.com").await;
    admin.create_business("B", "b", "o@example.com").await;
    let base = server.base.as_str();
    let text = eventually("app_events_total to count both events", || async move {
        let response = reqwest::get(format!("{base}/metrics")).await.ok()?;
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = response.text().await.ok()?;
        text.lines()
            .any(|line| line == "app_events_total 2")
            .then_some(text)
    })
    .await;

    for name in [
        "app_ws_connections",
        "app_events_total",
        "app_ws_messages_sent_total",
        "app_outbox_pending",
        "app_outbox_sent_total",
        "app_outbox_failed_total",
    ] {
        let sample = text
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"));
        let value = sample.split_whitespace().nth(1).expect("a value");
        assert!(value.parse::<f64>().is_ok(), "{sample}");
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} has a TYPE line"
        );
    }
    assert!(
        text.lines().any(|line| line == "app_ws_connections 0"),
        "{text}"
    );
    assert_error(
        &api.get("/api/dashboard/").await,
        401,
        "unauthenticated",
        "the dashboard still needs one",
    );
}
