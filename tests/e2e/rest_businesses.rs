//! Businesses over HTTP: create, list (paged), read, update, delete; validation; conflicts;
//! and owner isolation (API.md "Businesses", DESIGN invariant 3).

use crate::rest_support::{
    activity, assert_error, assert_field_error, assert_nothing_written_since, event_about,
    is_utc_time, is_uuid, settled, tally_becomes, Tally,
};
use crate::support::{Api, TestServer};
use serde_json::{json, Value};

#[tokio::test]
async fn super_admin_creates_reads_updates_and_deletes_a_business() {
    let server = TestServer::start().await;
    let admin = server.admin().await;

    // Create.
    let created = admin
        .post(
            "/api/businesses/",
            json!({"name": "  New Salon ", "subdomain": "newsalon", "owner_email": "Owner@Example.com"}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let business = created.body.clone();
    let id = business["id"].as_str().unwrap().to_string();
    assert!(is_uuid(&business["id"]), "{business}");
    assert_eq!(business["name"], "New Salon");
    assert_eq!(business["subdomain"], "newsalon");
    assert_eq!(business["owner_email"], "owner@example.com");
    assert!(
        is_utc_time(&business["created_at"]) && is_utc_time(&business["updated_at"]),
        "{business}"
    );
    let event = event_about(&admin, "business_created", &id).await;
    assert_eq!(event["id"], 1, "the first event of a new server: {event}");
    assert_eq!(
        event["payload"]["business"], business,
        "the event carries the business"
    );
    assert!(
        event["payload"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("New Salon")),
        "{event}"
    );
    assert!(is_utc_time(&event["timestamp"]), "{event}");

    // Read, and the public profile.
    let read = admin.get(&format!("/api/businesses/{id}/")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, business);
    let public = server.api().get("/api/public/businesses/newsalon/").await;
    assert_eq!(public.status, 200, "{:?}", public.body);
    assert_eq!(public.body["id"], business["id"]);
    assert_eq!(public.body["name"], "New Salon");

    // Update.
    let patched = admin
        .call(
            "PATCH",
            &format!("/api/businesses/{id}/"),
            Some(json!({"name": "Renamed Salon"})),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["name"], "Renamed Salon");
    assert_eq!(patched.body["subdomain"], "newsalon");
    assert_eq!(patched.body["owner_email"], "owner@example.com");
    assert_eq!(patched.body["created_at"], business["created_at"]);
    assert!(is_utc_time(&patched.body["updated_at"]));
    assert_eq!(
        admin.get(&format!("/api/businesses/{id}/")).await.body,
        patched.body
    );
    let updated = event_about(&admin, "business_updated", &id).await;
    assert_eq!(updated["id"], 2);
    assert_eq!(updated["payload"]["business"]["name"], "Renamed Salon");

    // Delete: its reservations go with it, and the subdomain is free again.
    server.api().book(&id, "Ann Lee").await;
    server.api().book(&id, "Bo Chan").await;
    tally_becomes(
        &admin,
        Tally {
            businesses: 1,
            reservations: 2,
            last_event_id: 4,
        },
    )
    .await;
    let deleted = admin
        .call("DELETE", &format!("/api/businesses/{id}/"), None)
        .await;
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    let gone = event_about(&admin, "business_deleted", &id).await;
    // After the cancellations of its two future bookings (5 and 6).
    assert_eq!(gone["id"], 7);
    assert_eq!(
        gone["payload"]["business"]["name"], "Renamed Salon",
        "carries its last state"
    );
    tally_becomes(
        &admin,
        Tally {
            businesses: 0,
            reservations: 0,
            last_event_id: 7,
        },
    )
    .await;
    assert_error(
        &admin.get(&format!("/api/businesses/{id}/")).await,
        404,
        "not_found",
        "deleted",
    );
    assert_error(
        &admin
            .get(&format!("/api/businesses/{id}/reservations/"))
            .await,
        404,
        "not_found",
        "reservations of a deleted business",
    );
    assert_error(
        &server.api().get("/api/public/businesses/newsalon/").await,
        404,
        "not_found",
        "public profile",
    );
    assert_error(
        &admin
            .call("DELETE", &format!("/api/businesses/{id}/"), None)
            .await,
        404,
        "not_found",
        "deleting twice",
    );
    let listed = admin.get("/api/businesses/").await;
    assert_eq!(listed.body["count"], 0);
    assert_eq!(listed.body["items"], json!([]));
    admin
        .create_business("Reborn", "newsalon", "owner@example.com")
        .await;
}

#[tokio::test]
async fn business_fields_are_validated_on_create_and_update() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let existing = admin
        .create_business("Salon", "salon", "o@example.com")
        .await;
    let id = existing["id"].as_str().unwrap();
    let before = settled(&admin, 1).await;
    let ok = |name: Value, subdomain: Value, owner: Value| json!({"name": name, "subdomain": subdomain, "owner_email": owner});
    let (n, s, o) = (json!("Name"), json!("valid-sub"), json!("o@example.com"));

    let create_cases = [
        (ok(json!(""), s.clone(), o.clone()), "name", "empty name"),
        (ok(json!("   "), s.clone(), o.clone()), "name", "blank name"),
        (
            ok(json!("x".repeat(201)), s.clone(), o.clone()),
            "name",
            "201-character name",
        ),
        (
            ok(json!(42), s.clone(), o.clone()),
            "name",
            "name is a number",
        ),
        (
            ok(json!("a\u{0}b"), s.clone(), o.clone()),
            "name",
            "name with a NUL",
        ),
        (
            ok(n.clone(), json!(""), o.clone()),
            "subdomain",
            "empty subdomain",
        ),
        (
            ok(n.clone(), json!("Salon"), o.clone()),
            "subdomain",
            "upper case",
        ),
        (
            ok(n.clone(), json!("-salon"), o.clone()),
            "subdomain",
            "leading dash",
        ),
        (
            ok(n.clone(), json!("salon-"), o.clone()),
            "subdomain",
            "trailing dash",
        ),
        (
            ok(n.clone(), json!("sa_lon"), o.clone()),
            "subdomain",
            "underscore",
        ),
        (
            ok(n.clone(), json!("sa.lon"), o.clone()),
            "subdomain",
            "dot",
        ),
        (
            ok(n.clone(), json!("salón"), o.clone()),
            "subdomain",
            "non-ASCII",
        ),
        (
            ok(n.clone(), json!("a".repeat(64)), o.clone()),
            "subdomain",
            "64 characters",
        ),
        (
            ok(n.clone(), json!(["a"]), o.clone()),
            "subdomain",
            "subdomain is a list",
        ),
        (
            ok(n.clone(), s.clone(), json!("not-an-email")),
            "owner_email",
            "owner email without @",
        ),
        (
            ok(n.clone(), s.clone(), json!("a@")),
            "owner_email",
            "owner email without domain",
        ),
        (
            ok(n.clone(), s.clone(), json!("")),
            "owner_email",
            "empty owner email",
        ),
        (
            json!({"subdomain": "x", "owner_email": "o@example.com"}),
            "name",
            "name missing",
        ),
        (
            json!({"name": "X", "owner_email": "o@example.com"}),
            "subdomain",
            "subdomain missing",
        ),
        (
            json!({"name": "X", "subdomain": "x"}),
            "owner_email",
            "owner email missing",
        ),
        (
            json!({"name": null, "subdomain": "x", "owner_email": "o@example.com"}),
            "name",
            "name null",
        ),
    ];
    for (body, field, why) in create_cases {
        assert_field_error(&admin.post("/api/businesses/", body).await, field, why);
    }
    let all_missing = admin.post("/api/businesses/", json!({})).await;
    for field in ["name", "subdomain", "owner_email"] {
        assert_field_error(
            &all_missing,
            field,
            "empty object names every missing field",
        );
    }

    let path = format!("/api/businesses/{id}/");
    let update_cases = [
        (json!({"name": ""}), "name", "empty name"),
        (
            json!({"name": "x".repeat(201)}),
            "name",
            "201-character name",
        ),
        (
            json!({"owner_email": "nope"}),
            "owner_email",
            "bad owner email",
        ),
        (
            json!({"subdomain": "other"}),
            "subdomain",
            "subdomain cannot change",
        ),
        (json!({"name": 7}), "name", "name is a number"),
    ];
    for (body, field, why) in update_cases {
        assert_field_error(&admin.call("PATCH", &path, Some(body)).await, field, why);
    }
    let nothing = admin.call("PATCH", &path, Some(json!({}))).await;
    assert_error(
        &nothing,
        400,
        "validation_error",
        "an empty patch changes nothing",
    );
    assert_eq!(
        admin.get(&path).await.body,
        existing,
        "the business is unchanged"
    );
    assert_nothing_written_since(&admin, before, "after-invalid").await;

    // The edges that are allowed.
    admin
        .create_business(&"n".repeat(200), &"a".repeat(63), "o@example.com")
        .await;
    admin.create_business("One", "b", "o@example.com").await;
    // Lengths count characters, not bytes: 200 two-byte characters is a valid name.
    admin
        .create_business(&"é".repeat(200), "accents", "o@example.com")
        .await;
    let too_long =
        json!({"name": "é".repeat(201), "subdomain": "accents-2", "owner_email": "o@example.com"});
    assert_field_error(
        &admin.post("/api/businesses/", too_long).await,
        "name",
        "201 characters",
    );
    admin
        .create_business("Digits", "0-9-x", "o@example.com")
        .await;
}

#[tokio::test]
async fn a_taken_subdomain_is_a_conflict_and_writes_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    admin
        .create_business("First", "taken", "a@example.com")
        .await;
    let before = settled(&admin, 1).await;

    let again = admin
        .post(
            "/api/businesses/",
            json!({"name": "Second", "subdomain": "taken", "owner_email": "b@example.com"}),
        )
        .await;

    assert_error(&again, 409, "conflict", "subdomain taken");
    let listed = admin.get("/api/businesses/").await;
    assert_eq!(listed.body["count"], 1);
    assert_eq!(listed.body["items"][0]["name"], "First");
    assert_nothing_written_since(&admin, before, "after-conflict").await;
}

#[tokio::test]
async fn unknown_business_ids_are_not_found() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let unknown = uuid::Uuid::new_v4();

    let cases = [
        ("GET", format!("/api/businesses/{unknown}/")),
        ("PATCH", format!("/api/businesses/{unknown}/")),
        ("DELETE", format!("/api/businesses/{unknown}/")),
        ("GET", format!("/api/businesses/{unknown}/reservations/")),
        ("GET", "/api/businesses/not-a-uuid/".to_string()),
        ("GET", "/api/public/businesses/no-such-salon/".to_string()),
    ];
    for (method, path) in cases {
        let body = (method == "PATCH").then(|| json!({"name": "X"}));
        assert_error(
            &admin.call(method, &path, body).await,
            404,
            "not_found",
            &format!("{method} {path}"),
        );
    }
}

/// Lists `path` (with `?limit=`) page by page until `next_cursor` is null.
async fn all_pages(api: &Api, path: &str, limit: usize) -> (Vec<Vec<Value>>, u64) {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    let mut count = None;
    loop {
        let url = match &cursor {
            Some(cursor) => format!("{path}?limit={limit}&cursor={cursor}"),
            None => format!("{path}?limit={limit}"),
        };
        let answer = api.get(&url).await;
        assert_eq!(answer.status, 200, "{url}: {:?}", answer.body);
        let page_count = answer.body["count"].as_u64().expect("count");
        assert_eq!(
            *count.get_or_insert(page_count),
            page_count,
            "count is the same on every page"
        );
        pages.push(answer.body["items"].as_array().expect("items").clone());
        match &answer.body["next_cursor"] {
            Value::Null => return (pages, page_count),
            Value::String(next) => cursor = Some(next.clone()),
            other => panic!("next_cursor is a string or null, got {other}"),
        }
        assert!(pages.len() < 10_000, "paging never ends");
    }
}

#[tokio::test]
async fn listing_pages_through_every_business_newest_first() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let mut created = Vec::new();
    for n in 0..7 {
        created.push(
            admin
                .create_business(
                    &format!("Salon {n}"),
                    &format!("salon-{n}"),
                    "o@example.com",
                )
                .await,
        );
    }

    let (pages, count) = all_pages(&admin, "/api/businesses/", 3).await;

    assert_eq!(count, 7);
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let listed: Vec<Value> = pages.into_iter().flatten().collect();
    let newest_first: Vec<Value> = created.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);
    let default = admin.get("/api/businesses/").await;
    assert_eq!(
        default.body["items"].as_array().unwrap().len(),
        7,
        "default limit is 100"
    );
    assert_eq!(default.body["next_cursor"], Value::Null);
    let exact = admin.get("/api/businesses/?limit=7").await;
    assert_eq!(
        exact.body["next_cursor"],
        Value::Null,
        "no next page when exactly full"
    );
}

#[tokio::test]
async fn listing_limits_outside_1_to_500_and_malformed_cursors_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    admin
        .create_business("Salon", "salon", "o@example.com")
        .await;

    for (query, field, why) in [
        ("limit=0", "limit", "zero"),
        ("limit=501", "limit", "above 500"),
        ("limit=-1", "limit", "negative"),
        ("limit=ten", "limit", "not a number"),
        ("limit=1.5", "limit", "fraction"),
        ("limit=99999999999999999999999", "limit", "overflow"),
        ("cursor=abc", "cursor", "letters"),
        ("cursor=-5", "cursor", "negative"),
        ("cursor=1e3", "cursor", "exponent"),
        ("cursor=%00", "cursor", "NUL byte"),
        ("cursor=99999999999999999999999", "cursor", "overflow"),
    ] {
        let answer = admin.get(&format!("/api/businesses/?{query}")).await;
        assert_field_error(&answer, field, &format!("{why} ({query})"));
    }
    for limit in [1, 500] {
        let answer = admin.get(&format!("/api/businesses/?limit={limit}")).await;
        assert_eq!(answer.status, 200, "limit={limit}: {:?}", answer.body);
        assert_eq!(answer.body["items"].as_array().unwrap().len(), 1);
    }
}

/// DESIGN invariant 3: an owner never reads, lists or changes another owner's business or its
/// bookings; another's business is "not found" (404), so its existence never leaks.
#[tokio::test]
async fn owner_never_reads_lists_or_changes_another_owners_business() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let alice = admin
        .create_user_and_login("alice@example.com", "business_owner")
        .await;
    let mine = admin
        .create_business("Alice Salon", "alice", "alice@example.com")
        .await;
    let theirs = admin
        .create_business("Bob Salon", "bob", "bob@example.com")
        .await;
    let (mine_id, their_id) = (mine["id"].as_str().unwrap(), theirs["id"].as_str().unwrap());
    let my_booking = server.api().book(mine_id, "Ann Lee").await;
    let their_booking = server.api().book(their_id, "Cy Dunn").await;
    let their_rid = their_booking["id"].as_str().unwrap();
    let before = settled(&admin, 4).await;

    // Listing: only hers, and the count says so.
    let listed = alice.get("/api/businesses/").await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["count"], 1);
    assert_eq!(listed.body["items"], json!([mine]));
    // Her own business and bookings are hers to see and cancel.
    assert_eq!(
        alice.get(&format!("/api/businesses/{mine_id}/")).await.body,
        mine
    );
    let my_list = alice
        .get(&format!("/api/businesses/{mine_id}/reservations/"))
        .await;
    assert_eq!(my_list.body["items"], json!([my_booking]));

    // Another's: 404 for everything, exactly as for an id that does not exist.
    let cases = [
        ("GET", format!("/api/businesses/{their_id}/"), None),
        (
            "PATCH",
            format!("/api/businesses/{their_id}/"),
            Some(json!({"name": "Hijacked"})),
        ),
        (
            "PATCH",
            format!("/api/businesses/{their_id}/"),
            Some(json!({"owner_email": "alice@example.com"})),
        ),
        ("DELETE", format!("/api/businesses/{their_id}/"), None),
        (
            "GET",
            format!("/api/businesses/{their_id}/reservations/"),
            None,
        ),
        (
            "POST",
            format!("/api/businesses/{their_id}/reservations/{their_rid}/cancel/"),
            None,
        ),
        // Her business in the path does not unlock a reservation of another business.
        (
            "POST",
            format!("/api/businesses/{mine_id}/reservations/{their_rid}/cancel/"),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let answer = alice.call(method, &path, body).await;
        assert_error(
            &answer,
            404,
            "not_found",
            &format!("alice: {method} {path}"),
        );
    }

    // Nothing of Bob's shows up in her feeds.
    for item in activity(&alice, "").await {
        assert_eq!(
            item["payload"]["business"]["id"]
                .as_str()
                .or(item["payload"]["business_id"].as_str()),
            Some(mine_id),
            "leak: {item}"
        );
    }
    let notes = alice.get("/api/notifications/").await;
    for item in notes.body["items"].as_array().unwrap() {
        let about = item["payload"]["business"]["id"]
            .as_str()
            .or(item["payload"]["business_id"].as_str());
        assert_eq!(about, Some(mine_id), "leak: {item}");
    }

    // Bob's business and booking are untouched.
    assert_eq!(
        admin
            .get(&format!("/api/businesses/{their_id}/"))
            .await
            .body,
        theirs
    );
    let their_list = admin
        .get(&format!("/api/businesses/{their_id}/reservations/"))
        .await;
    assert_eq!(their_list.body["items"][0]["status"], "confirmed");
    assert_nothing_written_since(&admin, before, "after-isolation").await;

    // Ownership follows owner_email: once the admin hands Bob's salon to Alice, she sees it.
    let handed = admin
        .call(
            "PATCH",
            &format!("/api/businesses/{their_id}/"),
            Some(json!({"owner_email": "alice@example.com"})),
        )
        .await;
    assert_eq!(handed.status, 200, "{:?}", handed.body);
    assert_eq!(
        alice
            .get(&format!("/api/businesses/{their_id}/"))
            .await
            .status,
        200
    );
    assert_eq!(alice.get("/api/businesses/").await.body["count"], 2);
}

#[tokio::test]
async fn owner_gets_403_for_admin_only_actions_on_their_own_business() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let owner = admin
        .create_user_and_login("owner@example.com", "business_owner")
        .await;
    let mine = admin
        .create_business("Mine", "mine", "owner@example.com")
        .await;
    let id = mine["id"].as_str().unwrap();
    let before = settled(&admin, 1).await;

    let cases = [
        (
            "PATCH",
            format!("/api/businesses/{id}/"),
            Some(json!({"name": "Renamed by owner"})),
        ),
        ("DELETE", format!("/api/businesses/{id}/"), None),
        (
            "POST",
            "/api/businesses/".to_string(),
            Some(json!({"name": "N", "subdomain": "n", "owner_email": "owner@example.com"})),
        ),
        ("GET", "/api/dashboard/".to_string(), None),
        ("GET", "/api/users/".to_string(), None),
    ];
    for (method, path, body) in cases {
        assert_error(
            &owner.call(method, &path, body).await,
            403,
            "forbidden",
            &format!("owner: {method} {path}"),
        );
    }

    assert_eq!(
        admin.get(&format!("/api/businesses/{id}/")).await.body,
        mine,
        "unchanged"
    );
    assert_nothing_written_since(&admin, before, "after-forbidden").await;
}
