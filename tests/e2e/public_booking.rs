//! The public booking endpoint against hostile clients (API.md, second round, "Limits,
//! timeouts and hostile clients"): the client address behind `--trusted-proxies`, the
//! per-business limit on top of the per-address one, and `Content-Type` required.

use crate::support::{Answer, TestServer};
use serde_json::{json, Value};

/// Books at `business_id` as a client whose request carries `forwarded_for`, if any.
async fn book_as(
    server: &TestServer,
    business_id: &str,
    forwarded_for: Option<&str>,
    n: usize,
) -> Answer {
    let mut request = reqwest::Client::new()
        .post(format!(
            "{}/api/businesses/{business_id}/reservations/",
            server.api().base
        ))
        .json(&json!({
            "customer_name": format!("Guest {n}"),
            "customer_email": format!("guest{n}@example.com"),
            "starts_at": "2031-06-01T10:00:00Z",
            "service": "Cut",
        }));
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    let response = request.send().await.expect("booking sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
    }
}

fn retry_after(answer: &Answer) -> u64 {
    answer
        .headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds")
}

async fn salon(server: &TestServer, subdomain: &str) -> String {
    let admin = server.admin().await;
    let business = admin
        .create_business("Salon", subdomain, "o@example.com")
        .await;
    business["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_booking_limit() {
    let server = TestServer::start_with(
        &[
            "--trusted-proxies",
            "127.0.0.0/8, ::1/128",
            "--booking-rate-per-minute",
            "2",
        ],
        &[],
    )
    .await;
    let id = salon(&server, "proxied").await;
    // The proxy appends the address it saw; a client-sent entry to its left is not believed.
    let client_a = Some("6.6.6.6, 198.51.100.1");
    for n in 0..2 {
        assert_eq!(book_as(&server, &id, client_a, n).await.status, 201);
    }
    let refused = book_as(&server, &id, client_a, 2).await;
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    assert!(retry_after(&refused) >= 1);
    // Another client behind the same proxy, even one claiming A's forged entry, is its own.
    let client_b = Some("198.51.100.1, 198.51.100.2");
    assert_eq!(book_as(&server, &id, client_b, 3).await.status, 201);
    // Without the header the trusted peer itself is the client: a bucket of its own.
    assert_eq!(book_as(&server, &id, None, 4).await.status, 201);
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let server = TestServer::start_with(&["--booking-rate-per-minute", "2"], &[]).await;
    let id = salon(&server, "direct").await;
    for n in 0..2 {
        let forwarded = format!("198.51.100.{n}");
        let answer = book_as(&server, &id, Some(&forwarded), n).await;
        assert_eq!(answer.status, 201);
    }
    // A fresh X-Forwarded-For per request must not buy a fresh bucket.
    let answer = book_as(&server, &id, Some("203.0.113.77"), 2).await;
    assert_eq!(answer.status, 429, "{:?}", answer.body);
}

#[tokio::test]
async fn a_business_takes_at_most_its_own_limit_of_bookings_from_all_addresses_together() {
    let server = TestServer::start_with(
        &[
            "--trusted-proxies",
            "127.0.0.1",
            "--booking-rate-per-business-per-minute",
            "3",
        ],
        &[],
    )
    .await;
    let busy = salon(&server, "busy").await;
    let quiet = salon(&server, "quiet").await;
    for n in 0..3 {
        let client = format!("198.51.100.{n}");
        assert_eq!(book_as(&server, &busy, Some(&client), n).await.status, 201);
    }
    let refused = book_as(&server, &busy, Some("198.51.100.200"), 9).await;
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    let wait = retry_after(&refused);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // Another business is unaffected.
    let other = book_as(&server, &quiet, Some("198.51.100.200"), 10).await;
    assert_eq!(other.status, 201, "{:?}", other.body);
}

#[tokio::test]
async fn a_booking_without_a_json_content_type_is_refused_with_415_and_books_nothing() {
    let server = TestServer::start().await;
    let id = salon(&server, "typed").await;
    let body = json!({
        "customer_name": "Ann",
        "customer_email": "ann@example.com",
        "starts_at": "2031-06-01T10:00:00Z",
        "service": "Cut",
    })
    .to_string()
    .into_bytes();
    let path = format!("/api/businesses/{id}/reservations/");
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let answer = server
            .api()
            .raw("POST", &path, content_type, body.clone())
            .await;
        assert_eq!(answer.status, 415, "{content_type:?}: {:?}", answer.body);
        assert_eq!(answer.body["error"]["code"], "unsupported_media_type");
    }
    let admin = server.admin().await;
    let listed = admin.get(&path).await;
    assert_eq!(listed.body["count"], 0, "nothing was booked");
}
