//! Reservations over HTTP: public booking (validated, rate limited), listing and cancelling
//! (API.md "Reservations").

use crate::rest_support::{
    activity, assert_error, assert_field_error, assert_nothing_written_since, booking, event_about,
    is_utc_time, is_uuid, settled, tally_becomes, Tally,
};
use crate::support::TestServer;
use serde_json::{json, Value};

#[tokio::test]
async fn anyone_books_and_the_owner_lists_and_cancels_once() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let owner = admin
        .create_user_and_login("owner@example.com", "business_owner")
        .await;
    let business = admin
        .create_business("Salon", "salon", "owner@example.com")
        .await;
    let id = business["id"].as_str().unwrap();

    let booked = server
        .api()
        .post(
            &format!("/api/businesses/{id}/reservations/"),
            json!({"customer_name": " Ann Lee ", "customer_email": "Ann@Example.com",
                   "starts_at": "2031-06-01T12:00:00+02:00", "service": "Haircut"}),
        )
        .await;

    assert_eq!(booked.status, 201, "{:?}", booked.body);
    let reservation = booked.body.clone();
    let rid = reservation["id"].as_str().unwrap().to_string();
    assert!(is_uuid(&reservation["id"]));
    assert_eq!(reservation["business_id"], id);
    assert_eq!(reservation["customer_name"], "Ann Lee");
    assert_eq!(reservation["customer_email"], "ann@example.com");
    assert_eq!(
        reservation["starts_at"], "2031-06-01T10:00:00Z",
        "stored and shown in UTC"
    );
    assert_eq!(reservation["service"], "Haircut");
    assert_eq!(reservation["status"], "confirmed");
    assert!(is_utc_time(&reservation["created_at"]));
    let created = event_about(&admin, "reservation_created", &rid).await;
    assert_eq!(created["payload"]["reservation"], reservation);
    assert_eq!(created["payload"]["business_id"], id);

    let listed = owner
        .get(&format!("/api/businesses/{id}/reservations/"))
        .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body["count"], 1);
    assert_eq!(listed.body["items"], json!([reservation]));
    assert_eq!(listed.body["next_cursor"], Value::Null);

    let cancel_path = format!("/api/businesses/{id}/reservations/{rid}/cancel/");
    let cancelled = owner.call("POST", &cancel_path, None).await;
    assert_eq!(cancelled.status, 200, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["id"], reservation["id"]);
    let event = event_about(&admin, "reservation_cancelled", &rid).await;
    assert_eq!(event["payload"]["reservation"]["status"], "cancelled");
    assert_eq!(event["payload"]["business_id"], id);
    let before = settled(&admin, 3).await;
    assert_eq!(
        before.reservations, 1,
        "a cancelled reservation is still a reservation"
    );

    let again = owner.call("POST", &cancel_path, None).await;
    assert_error(&again, 409, "conflict", "cancelling twice");
    let by_admin = admin.call("POST", &cancel_path, None).await;
    assert_error(&by_admin, 409, "conflict", "cancelling twice, as admin");
    let listed = admin
        .get(&format!("/api/businesses/{id}/reservations/"))
        .await;
    assert_eq!(listed.body["items"][0]["status"], "cancelled");
    assert_nothing_written_since(&admin, before, "after-double-cancel").await;
}

#[tokio::test]
async fn reservation_fields_are_validated_and_starts_at_must_be_in_the_future() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Salon", "salon", "o@example.com")
        .await;
    let path = format!(
        "/api/businesses/{}/reservations/",
        business["id"].as_str().unwrap()
    );
    let before = settled(&admin, 1).await;
    let with = |field: &str, value: Value| {
        let mut body = booking("Ann Lee");
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = booking("Ann Lee");
        body.as_object_mut().unwrap().remove(field);
        body
    };

    let cases = [
        (
            with("starts_at", json!("2001-01-01T10:00:00Z")),
            "starts_at",
            "in the past",
        ),
        (
            with("starts_at", json!("next tuesday")),
            "starts_at",
            "not a time",
        ),
        (
            with("starts_at", json!("2031-06-01 10:00")),
            "starts_at",
            "not RFC 3339",
        ),
        (
            with("starts_at", json!("2031-13-01T10:00:00Z")),
            "starts_at",
            "month 13",
        ),
        (
            with("starts_at", json!(1_900_000_000)),
            "starts_at",
            "a number",
        ),
        (
            with("customer_email", json!("ann")),
            "customer_email",
            "email without @",
        ),
        (
            with("customer_email", json!("")),
            "customer_email",
            "empty email",
        ),
        (
            with("customer_name", json!("")),
            "customer_name",
            "empty name",
        ),
        (
            with("customer_name", json!("x".repeat(201))),
            "customer_name",
            "name too long",
        ),
        (with("service", json!("   ")), "service", "blank service"),
        (
            with("service", json!("s".repeat(201))),
            "service",
            "service too long",
        ),
        (
            with("service", json!(true)),
            "service",
            "service is a boolean",
        ),
        (without("customer_name"), "customer_name", "name missing"),
        (without("customer_email"), "customer_email", "email missing"),
        (without("starts_at"), "starts_at", "starts_at missing"),
        (without("service"), "service", "service missing"),
    ];
    for (body, field, why) in cases {
        assert_field_error(&server.api().post(&path, body).await, field, why);
    }
    let empty = server.api().post(&path, json!({})).await;
    for field in ["customer_name", "customer_email", "starts_at", "service"] {
        assert_field_error(&empty, field, "empty object names every missing field");
    }

    assert_nothing_written_since(&admin, before, "after-invalid-bookings").await;
}

#[tokio::test]
async fn unknown_businesses_and_reservations_are_not_found() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let one = admin.create_business("One", "one", "o@example.com").await;
    let two = admin.create_business("Two", "two", "o@example.com").await;
    let (one_id, two_id) = (one["id"].as_str().unwrap(), two["id"].as_str().unwrap());
    let at_two = server.api().book(two_id, "Ann Lee").await;
    let rid = at_two["id"].as_str().unwrap();
    let unknown = uuid::Uuid::new_v4();
    let before = settled(&admin, 3).await;

    let booked = server
        .api()
        .post(
            &format!("/api/businesses/{unknown}/reservations/"),
            booking("Bo Chan"),
        )
        .await;
    assert_error(&booked, 404, "not_found", "booking at an unknown business");
    let cases = [
        (
            "GET",
            format!("/api/businesses/{unknown}/reservations/"),
            "listing at an unknown business",
        ),
        (
            "POST",
            format!("/api/businesses/{unknown}/reservations/{rid}/cancel/"),
            "cancel under an unknown business",
        ),
        (
            "POST",
            format!("/api/businesses/{one_id}/reservations/{unknown}/cancel/"),
            "unknown reservation",
        ),
        (
            "POST",
            format!("/api/businesses/{one_id}/reservations/{rid}/cancel/"),
            "reservation of another business",
        ),
    ];
    for (method, path, why) in cases {
        assert_error(
            &admin.call(method, &path, None).await,
            404,
            "not_found",
            why,
        );
    }

    let listed = admin
        .get(&format!("/api/businesses/{two_id}/reservations/"))
        .await;
    assert_eq!(
        listed.body["items"][0]["status"], "confirmed",
        "not cancelled through business one"
    );
    assert_nothing_written_since(&admin, before, "after-not-found").await;
}

#[tokio::test]
async fn reservation_listing_pages_newest_first_and_refuses_malformed_cursors() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Salon", "salon", "o@example.com")
        .await;
    let id = business["id"].as_str().unwrap();
    let mut booked = Vec::new();
    for name in ["Ann Lee", "Bo Chan", "Cy Dunn", "Di Eve", "Ed Fox"] {
        booked.push(server.api().book(id, name).await);
    }
    let path = format!("/api/businesses/{id}/reservations/");

    let mut listed = Vec::new();
    let mut sizes = Vec::new();
    let mut url = format!("{path}?limit=2");
    loop {
        let page = admin.get(&url).await;
        assert_eq!(page.status, 200, "{url}: {:?}", page.body);
        assert_eq!(page.body["count"], 5);
        let items = page.body["items"].as_array().unwrap();
        sizes.push(items.len());
        listed.extend(items.iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(cursor) => url = format!("{path}?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(sizes.len() < 10, "paging never ends");
    }

    assert_eq!(sizes, [2, 2, 1]);
    booked.reverse();
    assert_eq!(listed, booked, "every reservation once, newest first");
    for (query, field) in [
        ("cursor=abc", "cursor"),
        ("cursor=-1", "cursor"),
        ("cursor=1.0", "cursor"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
    ] {
        assert_field_error(&admin.get(&format!("{path}?{query}")).await, field, query);
    }
    assert_eq!(admin.get(&format!("{path}?limit=500")).await.status, 200);
}

#[tokio::test]
async fn public_booking_past_the_rate_gets_429_with_retry_after() {
    let server = TestServer::start_with(&["--booking-rate-per-minute", "3"], &[]).await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Salon", "salon", "o@example.com")
        .await;
    let id = business["id"].as_str().unwrap();
    let path = format!("/api/businesses/{id}/reservations/");
    for name in ["Ann Lee", "Bo Chan", "Cy Dunn"] {
        server.api().book(id, name).await;
    }
    tally_becomes(
        &admin,
        Tally {
            businesses: 1,
            reservations: 3,
            last_event_id: 4,
        },
    )
    .await;

    let flooded = server.api().post(&path, booking("Di Eve")).await;

    assert_error(
        &flooded,
        429,
        "rate_limited",
        "the fourth booking in a minute",
    );
    let retry_after: u64 = flooded
        .headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    // Another client address still books: the limit is per client.
    let other_client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let other = other_client
        .post(format!("{}{path}", server.base))
        .json(&booking("Ed Fox"))
        .send()
        .await
        .expect("a request from 127.0.0.2");
    assert_eq!(
        other.status().as_u16(),
        201,
        "another address is not limited"
    );
    let other: Value = other.json().await.unwrap();
    let other_event =
        event_about(&admin, "reservation_created", other["id"].as_str().unwrap()).await;
    assert_eq!(other_event["id"], 5, "the refused booking took no event id");
    // Authenticated reads are not part of the public flood.
    assert_eq!(admin.get(&path).await.body["count"], 4);
    let types: Vec<Value> = activity(&admin, "?type=reservation_created").await;
    assert_eq!(types.len(), 4, "the refused booking left no event");
}
