//! `/api/push/`: the server's VAPID public key, and subscribing a browser to Web Push
//! (`crate::push` sends). Any signed-in user may subscribe: what reaches a subscription is
//! what the user's own channel would see (DESIGN invariant 3), never more.

use super::body::{self, Field, MUST_BE_A_STRING};
use super::error::{respond, ApiError};
use super::filters::{bearer, json_body, with_state};
use crate::domain::validate::FieldErrors;
use crate::domain::{PushSubscription, Role, Timestamp};
use crate::push::{crypto, endpoint};
use crate::reply::json_reply;
use crate::state::AppState;
use crate::store::push::Subscribed;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

/// The push routes.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let key = warp::path!("api" / "push" / "key")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(bearer())
        .then(key);
    let subscribe = warp::path!("api" / "push" / "subscriptions")
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(bearer())
        .and(json_body())
        .then(subscribe);
    let unsubscribe = warp::path!("api" / "push" / "subscriptions" / Uuid)
        .and(warp::path::end())
        .and(warp::delete())
        .and(with_state(state))
        .and(bearer())
        .then(unsubscribe);
    key.or(subscribe)
        .unify()
        .or(unsubscribe)
        .unify()
        .map(respond)
        .boxed()
}

/// GET /api/push/key
async fn key(state: AppState, auth: Option<String>) -> Result<Response, ApiError> {
    state.authenticate(auth).await?;
    Ok(json_reply(
        &json!({ "public_key": state.vapid.public() }),
        StatusCode::OK,
    ))
}

/// The body of `POST /api/push/subscriptions/`: a browser's `PushSubscription` as JSON
/// (its `expirationTime` is ignored).
#[derive(Debug, Deserialize)]
struct SubscribeBody {
    #[serde(default)]
    endpoint: Field<String>,
    #[serde(default)]
    keys: Field<KeysBody>,
}

#[derive(Debug, Deserialize)]
struct KeysBody {
    #[serde(default)]
    p256dh: Field<String>,
    #[serde(default)]
    auth: Field<String>,
}

/// Base64url, padded or not (browsers leave the padding off).
fn base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// The validated parts of a subscription: endpoint, p256dh, auth.
type Parts = (String, Vec<u8>, Vec<u8>);

fn validate(body: SubscribeBody, allow_insecure: bool) -> Result<Parts, FieldErrors> {
    let mut errors = FieldErrors::default();
    let endpoint = body
        .endpoint
        .required(&mut errors, "endpoint", MUST_BE_A_STRING)
        .and_then(|text| match endpoint::parse(&text, allow_insecure) {
            Ok(_) => Some(text),
            Err(error) => {
                errors.add("endpoint", error.to_string());
                None
            }
        });
    let keys = body.keys.required(
        &mut errors,
        "keys",
        "must be an object with p256dh and auth",
    );
    let (mut p256dh, mut auth) = (None, None);
    if let Some(keys) = keys {
        p256dh = keys
            .p256dh
            .required(&mut errors, "keys.p256dh", MUST_BE_A_STRING)
            .and_then(|text| {
                let point = base64url(&text).filter(|bytes| crypto::parse_point(bytes).is_ok());
                if point.is_none() {
                    errors.add(
                        "keys.p256dh",
                        "must be a base64url uncompressed P-256 public key",
                    );
                }
                point
            });
        auth = keys
            .auth
            .required(&mut errors, "keys.auth", MUST_BE_A_STRING)
            .and_then(|text| {
                let secret =
                    base64url(&text).filter(|bytes| bytes.len() == crypto::AUTH_SECRET_BYTES);
                if secret.is_none() {
                    errors.add("keys.auth", "must be 16 bytes in base64url");
                }
                secret
            });
    }
    match (endpoint, p256dh, auth) {
        (Some(endpoint), Some(p256dh), Some(auth)) if errors.is_empty() => {
            Ok((endpoint, p256dh, auth))
        }
        _ => Err(errors),
    }
}

/// POST /api/push/subscriptions/
async fn subscribe(
    state: AppState,
    auth: Option<String>,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    let body: SubscribeBody = body::parse(content_type.as_deref(), &body)?;
    let allow_insecure = state.config.push.allow_insecure;
    let (endpoint, p256dh, auth) = validate(body, allow_insecure).map_err(ApiError::Validation)?;
    if let Ok(url) = endpoint::parse(&endpoint, allow_insecure) {
        endpoint::check_addresses(&url, allow_insecure)
            .await
            .map_err(|error| ApiError::field("endpoint", error.to_string()))?;
    }
    if state.health.is_degraded() {
        return Err(ApiError::StorageUnavailable {
            outcome_unknown: false,
        });
    }
    let subscription = PushSubscription {
        id: Uuid::new_v4(),
        user_id: caller.user.id,
        email: caller.user.email.clone(),
        admin: caller.user.role == Role::SuperAdmin,
        endpoint,
        p256dh,
        auth,
        created_at: Timestamp::now(),
        last_push_at: None,
    };
    let store = state.store.clone();
    let outcome = tokio::task::spawn_blocking(move || store.subscribe_push(&subscription))
        .await
        .map_err(|_| ApiError::Internal)??;
    // The same endpoint again is the same subscription: 201 with the same id, so a
    // browser that subscribes on every visit needs no special case.
    let id = match outcome {
        Subscribed::Created(id) | Subscribed::Existing(id) => id,
    };
    Ok(json_reply(&json!({ "id": id }), StatusCode::CREATED))
}

/// DELETE /api/push/subscriptions/{id}/
async fn unsubscribe(
    id: Uuid,
    state: AppState,
    auth: Option<String>,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    let store = state.store.clone();
    let owner = caller.user.id;
    // Another user's subscription is "not found", like a missing one: ids leak nothing.
    tokio::task::spawn_blocking(move || store.unsubscribe_push(id, Some(owner)))
        .await
        .map_err(|_| ApiError::Internal)??;
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}
