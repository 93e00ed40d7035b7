//! Helpers shared by the REST tests (`rest_*.rs`): forged tokens, error-shape checks and a
//! "nothing was written" probe. They hide plumbing, not behaviour.

#![allow(dead_code)]

use crate::support::{eventually, Answer, Api, TestServer};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// The secret the server generated in `<data>/secret.key` (base64 of the raw bytes).
pub fn server_secret(server: &TestServer) -> Vec<u8> {
    let text = std::fs::read_to_string(server.data_dir().join("secret.key")).expect("secret.key");
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("secret.key is base64")
}

/// Claims for `user` (`{"id","email","role"}` as the API shows it), expiring `exp_in` s from now.
pub fn claims_for(user: &Value, exp_in: i64) -> Value {
    let now = unix_now();
    json!({
        "sub": user["id"],
        "email": user["email"],
        "role": user["role"],
        "iat": now,
        "exp": now + exp_in,
    })
}

/// A JWT signed with `alg` and `secret`.
pub fn sign(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
        .expect("signing test claims")
}

/// An unsigned `alg: none` token: base64url(header).base64url(claims). (empty signature).
pub fn unsigned(claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

/// Part `index` of a token (0 = header, 1 = claims), decoded without verification.
pub fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("token part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url part");
    serde_json::from_slice(&bytes).expect("JSON part")
}

/// Asserts an error answer: status, `error.code`, and a non-empty `error.message`.
pub fn assert_error(answer: &Answer, status: u16, code: &str, why: &str) {
    assert_eq!(answer.status, status, "{why}: {:?}", answer.body);
    assert_eq!(answer.code(), code, "{why}: {:?}", answer.body);
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{why}: error.message must say what is wrong: {:?}",
        answer.body
    );
}

/// Asserts a 400 `validation_error` that names `field` under `error.fields`.
pub fn assert_field_error(answer: &Answer, field: &str, why: &str) {
    assert_error(answer, 400, "validation_error", why);
    assert!(
        answer.body["error"]["fields"][field]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{why}: error.fields.{field} missing: {:?}",
        answer.body
    );
}

/// Counts and the newest event id, as the dashboard reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub businesses: u64,
    pub reservations: u64,
    pub last_event_id: u64,
}

/// The dashboard's counts now.
pub async fn tally(admin: &Api) -> Tally {
    let answer = admin.get("/api/dashboard/").await;
    assert_eq!(answer.status, 200, "dashboard: {:?}", answer.body);
    let number = |key: &str| {
        answer.body[key]
            .as_u64()
            .unwrap_or_else(|| panic!("dashboard.{key} is a number: {:?}", answer.body))
    };
    Tally {
        businesses: number("business_count"),
        reservations: number("reservation_count"),
        last_event_id: number("last_event_id"),
    }
}

/// The dashboard's counts once event `last_event_id` is published: a snapshot to compare
/// against, taken only after every earlier write has gone out.
pub async fn settled(admin: &Api, last_event_id: u64) -> Tally {
    eventually(
        &format!("event {last_event_id} to be published"),
        || async move {
            let now = tally(admin).await;
            assert!(
                now.last_event_id <= last_event_id,
                "more events than expected: {now:?}"
            );
            (now.last_event_id == last_event_id).then_some(now)
        },
    )
    .await
}

/// A client with its own connection pool and the same token: for requests after which the
/// server may close the connection (413, a restart), so no other request reuses it.
pub fn fresh(api: &Api) -> Api {
    let client = Api::new(&api.base);
    match &api.token {
        Some(token) => client.with_token(token),
        None => client,
    }
}

/// Waits until the dashboard shows `expected` (events are published just after the 2xx).
pub async fn tally_becomes(admin: &Api, expected: Tally) {
    eventually(
        &format!("the dashboard to show {expected:?}"),
        || async move { (tally(admin).await == expected).then_some(()) },
    )
    .await;
}

/// The `items` of `GET /api/activity/` + `query` (e.g. `?type=business_created`).
pub async fn activity(api: &Api, query: &str) -> Vec<Value> {
    let answer = api.get(&format!("/api/activity/{query}")).await;
    assert_eq!(answer.status, 200, "activity: {:?}", answer.body);
    answer.body["items"]
        .as_array()
        .expect("activity.items")
        .clone()
}

/// Event ids of a list of event frames, in list order.
pub fn event_ids(items: &[Value]) -> Vec<u64> {
    items
        .iter()
        .map(|item| item["id"].as_u64().expect("event id"))
        .collect()
}

/// The activity entry about business or reservation `entity_id` of `kind`, once it shows up.
pub async fn event_about(admin: &Api, kind: &str, entity_id: &str) -> Value {
    let admin = admin.clone();
    let kind = kind.to_string();
    let entity_id = entity_id.to_string();
    eventually(
        &format!("a {kind} event about {entity_id} in the activity"),
        || {
            let (admin, kind, entity_id) = (admin.clone(), kind.clone(), entity_id.clone());
            async move {
                activity(&admin, &format!("?type={kind}"))
                    .await
                    .into_iter()
                    .find(|event| {
                        event["payload"]["business"]["id"] == entity_id.as_str()
                            || event["payload"]["reservation"]["id"] == entity_id.as_str()
                    })
            }
        },
    )
    .await
}

/// Proves that nothing was written since `before`: one known-good write now must get the
/// very next event id and move the business count by exactly one (DESIGN invariant 5).
pub async fn assert_nothing_written_since(admin: &Api, before: Tally, probe_subdomain: &str) {
    let probe = admin
        .create_business("Probe", probe_subdomain, "probe@example.com")
        .await;
    let event = event_about(admin, "business_created", probe["id"].as_str().unwrap()).await;
    assert_eq!(
        event["id"].as_u64(),
        Some(before.last_event_id + 1),
        "a refused request took an event id: {event}"
    );
    let now = tally(admin).await;
    assert_eq!(
        now.businesses,
        before.businesses + 1,
        "business count moved: {now:?} vs {before:?}"
    );
    assert_eq!(
        now.reservations, before.reservations,
        "reservation count moved: {now:?} vs {before:?}"
    );
}

/// A valid public booking body.
pub fn booking(customer: &str) -> Value {
    json!({
        "customer_name": customer,
        "customer_email": format!("{}@example.com", customer.to_lowercase().replace(' ', ".")),
        "starts_at": "2031-06-01T10:00:00Z",
        "service": "Haircut",
    })
}

/// True when `text` is an RFC 3339 UTC time with a `Z` suffix.
pub fn is_utc_time(value: &Value) -> bool {
    value.as_str().is_some_and(|text| {
        text.ends_with('Z')
            && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .is_ok()
    })
}

/// True when `value` is a UUID string.
pub fn is_uuid(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| uuid::Uuid::parse_str(text).is_ok())
}

/// The user `{"id","email","role"}` behind a logged-in client.
pub async fn me(api: &Api) -> Value {
    let answer = api.get("/api/users/me/").await;
    assert_eq!(answer.status, 200, "me: {:?}", answer.body);
    answer.body
}
