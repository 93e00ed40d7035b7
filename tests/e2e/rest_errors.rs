//! Bad input over HTTP: malformed and oversized bodies, wrong content types, raw garbage on
//! the socket. Each is a clear 4xx in the JSON error shape, and nothing is written
//! (DESIGN invariant 5).

use crate::rest_support::{assert_error, assert_nothing_written_since, booking, fresh, settled};
use crate::support::TestServer;
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JSON: Option<&str> = Some("application/json");

/// A valid business body padded with trailing whitespace to exactly `size` bytes.
fn business_body_of_size(subdomain: &str, size: usize) -> Vec<u8> {
    let mut body = json!({"name": "Big", "subdomain": subdomain, "owner_email": "o@example.com"})
        .to_string()
        .into_bytes();
    assert!(body.len() <= size);
    body.resize(size, b' ');
    body
}

/// DESIGN invariant 5: no JSON body crashes the server or leaves a write behind.
#[tokio::test]
#[allow(clippy::type_complexity)]
async fn malformed_bodies_get_a_clear_4xx_and_write_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let before = settled(&admin, 0).await;
    let valid =
        json!({"name": "Ok", "subdomain": "ok", "owner_email": "o@example.com"}).to_string();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));

    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16, &str)> = vec![
        (
            "only whitespace",
            JSON,
            b"  \n ".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "truncated object",
            JSON,
            b"{\"name\": \"x\"".to_vec(),
            400,
            "invalid_json",
        ),
        ("plain words", JSON, b"hello".to_vec(), 400, "invalid_json"),
        (
            "trailing garbage",
            JSON,
            format!("{valid} x").into_bytes(),
            400,
            "invalid_json",
        ),
        (
            "two objects",
            JSON,
            format!("{valid}{valid}").into_bytes(),
            400,
            "invalid_json",
        ),
        (
            "single quotes",
            JSON,
            b"{'name': 'x'}".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "invalid UTF-8",
            JSON,
            vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
            400,
            "invalid_json",
        ),
        ("NUL bytes", JSON, vec![0; 64], 400, "invalid_json"),
        (
            "10 000-deep nesting",
            JSON,
            deep.into_bytes(),
            400,
            "invalid_json",
        ),
        ("a JSON array", JSON, b"[]".to_vec(), 400, "invalid_json"),
        (
            "a JSON string",
            JSON,
            b"\"name\"".to_vec(),
            400,
            "invalid_json",
        ),
        ("JSON null", JSON, b"null".to_vec(), 400, "invalid_json"),
        ("a JSON number", JSON, b"42".to_vec(), 400, "invalid_json"),
        (
            "fields of the wrong type",
            JSON,
            br#"{"name": 1, "subdomain": {}, "owner_email": []}"#.to_vec(),
            400,
            "validation_error",
        ),
        (
            "text/plain",
            Some("text/plain"),
            valid.clone().into_bytes(),
            415,
            "unsupported_media_type",
        ),
        (
            "form encoded",
            Some("application/x-www-form-urlencoded"),
            b"name=x&subdomain=x".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "multipart",
            Some("multipart/form-data; boundary=x"),
            valid.clone().into_bytes(),
            415,
            "unsupported_media_type",
        ),
        (
            "json-ish type",
            Some("application/jsonx"),
            valid.clone().into_bytes(),
            415,
            "unsupported_media_type",
        ),
        (
            "over 64 KiB",
            JSON,
            business_body_of_size("big", 64 * 1024 + 1),
            413,
            "payload_too_large",
        ),
    ];
    for (why, content_type, body, status, code) in cases {
        // Its own connection: after a refusal the server may close it without reading the body.
        let answer = fresh(&admin)
            .raw("POST", "/api/businesses/", content_type, body)
            .await;
        assert_error(&answer, status, code, why);
    }

    assert_eq!(
        server.api().get("/healthz").await.status,
        200,
        "still serving"
    );
    assert_nothing_written_since(&admin, before, "after-malformed").await;
}

#[tokio::test]
async fn every_json_endpoint_refuses_malformed_json_and_wrong_content_types() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let business = admin
        .create_business("Salon", "salon", "o@example.com")
        .await;
    let id = business["id"].as_str().unwrap();
    let before = settled(&admin, 1).await;
    let endpoints = [
        ("POST", "/api/auth/token/".to_string()),
        ("POST", "/api/users/".to_string()),
        ("POST", "/api/businesses/".to_string()),
        ("PATCH", format!("/api/businesses/{id}/")),
        ("POST", format!("/api/businesses/{id}/reservations/")),
        ("POST", "/api/notifications/read/".to_string()),
    ];

    for (method, path) in &endpoints {
        for (why, body) in [
            ("truncated", &b"{\"a\":"[..]),
            ("not JSON", &b"<xml/>"[..]),
            ("an array", &b"[1]"[..]),
        ] {
            let answer = admin.raw(method, path, JSON, body.to_vec()).await;
            assert_error(
                &answer,
                400,
                "invalid_json",
                &format!("{method} {path}: {why}"),
            );
        }
        let answer = admin
            .raw(method, path, Some("text/plain"), b"{}".to_vec())
            .await;
        assert_error(
            &answer,
            415,
            "unsupported_media_type",
            &format!("{method} {path}: text/plain"),
        );
        // No Content-Type at all: what a cross-site "simple" request may send without a
        // preflight (issue 11: the public booking used to accept it).
        let answer = admin.raw(method, path, None, b"{}".to_vec()).await;
        assert_error(
            &answer,
            415,
            "unsupported_media_type",
            &format!("{method} {path}: no content type"),
        );
        let answer = fresh(&admin)
            .raw(method, path, JSON, vec![b' '; 64 * 1024 + 1])
            .await;
        assert_error(
            &answer,
            413,
            "payload_too_large",
            &format!("{method} {path}: 64 KiB + 1"),
        );
    }

    assert_eq!(
        admin.get(&format!("/api/businesses/{id}/")).await.body,
        business
    );
    assert_nothing_written_since(&admin, before, "after-endpoints").await;
}

#[tokio::test]
async fn a_body_of_exactly_64_kib_is_accepted_and_one_byte_more_is_413() {
    let server = TestServer::start().await;
    let admin = server.admin().await;

    let at_limit = admin
        .raw(
            "POST",
            "/api/businesses/",
            JSON,
            business_body_of_size("at-limit", 64 * 1024),
        )
        .await;
    let over = fresh(&admin)
        .raw(
            "POST",
            "/api/businesses/",
            JSON,
            business_body_of_size("over-limit", 64 * 1024 + 1),
        )
        .await;

    assert_eq!(at_limit.status, 201, "{:?}", at_limit.body);
    assert_error(&over, 413, "payload_too_large", "64 KiB + 1");
    assert_eq!(admin.get("/api/businesses/").await.body["count"], 1);

    // Charset parameters and an absent content type are fine.
    let with_charset = admin
        .raw(
            "POST",
            &format!(
                "/api/businesses/{}/reservations/",
                at_limit.body["id"].as_str().unwrap()
            ),
            Some("application/json; charset=utf-8"),
            booking("Ann Lee").to_string().into_bytes(),
        )
        .await;
    assert_eq!(with_charset.status, 201, "{:?}", with_charset.body);
}

/// Sends raw bytes on a fresh connection and returns what came back (until close or 10 s).
async fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything: that is fine here.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

/// DESIGN invariant 5: bytes on a socket never crash the server.
#[tokio::test]
async fn chunked_bodies_get_411_and_garbage_bytes_never_crash_the_server() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let token = admin.token.clone().unwrap();
    let before = settled(&admin, 0).await;
    let body = json!({"name": "Chunked", "subdomain": "chunked", "owner_email": "o@example.com"})
        .to_string();

    let chunked = format!(
        "POST /api/businesses/ HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{body}\r\n0\r\n\r\n",
        server.addr,
        body.len()
    );
    let response = raw_exchange(&server.addr, chunked.as_bytes()).await;
    assert!(
        response.starts_with("HTTP/1.1 411"),
        "a body without Content-Length: {response}"
    );
    assert!(response.contains("length_required"), "{response}");

    for (why, bytes) in [
        ("not HTTP", b"GARBAGE\r\n\r\n".to_vec()),
        (
            "binary noise",
            (0..=255u8).cycle().take(4096).collect::<Vec<u8>>(),
        ),
        (
            "a header line of 100 KiB",
            format!(
                "GET /healthz HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                "a".repeat(100 * 1024)
            )
            .into_bytes(),
        ),
        (
            "Content-Length that lies",
            format!(
                "POST /api/businesses/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"name\":"
            )
            .into_bytes(),
        ),
        (
            "a negative Content-Length",
            b"POST /api/auth/token/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        ),
    ] {
        let exchange = raw_exchange(&server.addr, &bytes);
        // A lying Content-Length waits for bytes that never come: cut it short.
        let _ = tokio::time::timeout(Duration::from_secs(2), exchange).await;
        assert_eq!(
            server.api().get("/healthz").await.status,
            200,
            "alive after {why}"
        );
    }

    assert_nothing_written_since(&admin, before, "after-raw").await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_json_errors() {
    let server = TestServer::start().await;
    let admin = server.admin().await;

    assert_error(
        &admin.get("/api/nothing-here/").await,
        404,
        "not_found",
        "unknown route",
    );
    assert_error(
        &admin.get("/api/businesses/x/y/z/").await,
        404,
        "not_found",
        "too deep",
    );
    let wrong_method = admin.call("PUT", "/api/dashboard/", Some(json!({}))).await;
    assert_eq!(wrong_method.status, 405, "{:?}", wrong_method.body);
    assert!(
        wrong_method.body["error"]["code"].is_string(),
        "JSON error shape: {:?}",
        wrong_method.body
    );
}
