//! Property tests ("fuzzing", DESIGN invariant 5) of every JSON request body: arbitrary bytes
//! and arbitrary JSON, shaped like each body or not, through the same parse and validation
//! the handlers run. None may panic, and every refusal is a typed `ApiError` whose answer is
//! a 4xx. Case counts are proptest's default (256 per property, seconds in CI); set
//! `PROPTEST_CASES` to run more locally.

use super::auth_routes::LoginBody;
use super::body;
use super::businesses::{BusinessPatchBody, CreateBusinessBody};
use super::error::ApiError;
use super::feed::MarkReadBody;
use super::reservations::BookingBody;
use super::users::CreateUserBody;
use crate::domain::validate::FieldErrors;
use crate::domain::{BusinessPatch, NewBusiness, Timestamp, UserDraft};
use proptest::prelude::*;
use serde_json::{Map, Value};
use warp::Reply;

/// Field names of every body, so generated objects often hit the real fields.
const FIELDS: [&str; 12] = [
    "name",
    "subdomain",
    "owner_email",
    "customer_name",
    "customer_email",
    "starts_at",
    "service",
    "email",
    "password",
    "role",
    "up_to",
    "type",
];

/// Any JSON value, a few levels deep, with strings that look like the real ones sometimes.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".*".prop_map(Value::String),
        prop_oneof![
            Just("2031-06-01T10:00:00Z"),
            Just("2000-01-01T00:00:00+25:00"),
            Just("a@example.com"),
            Just("super_admin"),
            Just("business_owner"),
            Just("salon-1"),
            Just(""),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(&FIELDS[..]), inner), 0..8).prop_map(
                |pairs| {
                    let map: Map<String, Value> =
                        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                    Value::Object(map)
                }
            ),
        ]
    })
}

/// A body object: the real fields with arbitrary values.
fn body_object() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((prop::sample::select(&FIELDS[..]), json_value()), 0..10).prop_map(
        |pairs| {
            let map: Map<String, Value> =
                pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            serde_json::to_vec(&Value::Object(map)).expect("JSON values serialize")
        },
    )
}

/// The request bytes a client could send: arbitrary bytes, any JSON, or a body-like object.
fn request_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| serde_json::to_vec(&v).expect("JSON values serialize")),
        body_object(),
    ]
}

/// Fails unless `error` answers with a 4xx.
fn assert_client_error(error: ApiError) -> Result<(), TestCaseError> {
    let status = error.into_response().status();
    prop_assert!(status.is_client_error(), "a refusal answered {status}");
    Ok(())
}

/// Parses `bytes` as the handlers do, then validates with `validate`; refusals must be 4xx.
fn check<T, V>(
    bytes: &[u8],
    validate: impl FnOnce(T) -> Result<V, FieldErrors>,
) -> Result<(), TestCaseError>
where
    T: serde::de::DeserializeOwned,
{
    match body::parse::<T>(Some("application/json"), bytes) {
        Ok(parsed) => match validate(parsed) {
            Ok(_) => Ok(()),
            Err(errors) => {
                prop_assert!(!errors.is_empty(), "a refusal names its fields");
                assert_client_error(ApiError::Validation(errors))
            }
        },
        Err(error) => assert_client_error(error),
    }
}

proptest! {
    #[test]
    fn invariant_5_every_body_parses_or_is_refused_with_a_4xx(bytes in request_body()) {
        let now = Timestamp::now();
        check::<BookingBody, _>(&bytes, |b| b.validate(now))?;
        check::<CreateBusinessBody, _>(&bytes, NewBusiness::try_from)?;
        check::<BusinessPatchBody, _>(&bytes, BusinessPatch::try_from)?;
        check::<CreateUserBody, _>(&bytes, UserDraft::try_from)?;
        check::<LoginBody, _>(&bytes, Ok::<_, FieldErrors>)?;
        check::<MarkReadBody, _>(&bytes, Ok::<_, FieldErrors>)?;
    }

    #[test]
    fn invariant_5_any_content_type_is_read_as_json_or_refused_with_415(
        content_type in proptest::option::of(".{0,40}"),
        bytes in request_body(),
    ) {
        match body::parse::<BookingBody>(content_type.as_deref(), &bytes) {
            Ok(_) => {
                let essence = content_type.as_deref().unwrap_or("").split(';').next().unwrap_or("");
                prop_assert!(essence.trim().eq_ignore_ascii_case("application/json"));
            }
            Err(error) => assert_client_error(error)?,
        }
    }
}
