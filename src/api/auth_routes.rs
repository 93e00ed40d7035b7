//! `POST /api/auth/token/`: email and password → a JWT.

use super::error::{respond, ApiError};
use super::filters::{json_body, parse_object, required_string, with_state};
use super::{json_reply, AppState};
use crate::auth::{verify_password, AuthError};
use crate::domain::validate::FieldErrors;
use bytes::Bytes;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

/// The authentication routes.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "auth" / "token")
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state(state))
        .and(json_body())
        .then(issue_token)
        .map(respond)
        .boxed()
}

/// POST /api/auth/token/
async fn issue_token(
    state: AppState,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = parse_object(content_type.as_deref(), &body)?;
    let mut errors = FieldErrors::default();
    let email = required_string(&mut errors, &body, "email");
    let password = required_string(&mut errors, &body, "password");
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::Validation(errors));
    };
    let email = email.trim().to_lowercase();
    let user = state.store.user_by_email(&email)?;
    let hash = user.as_ref().map(|user| user.password_hash.clone());
    // argon2 is deliberately slow: keep it off the async threads.
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, hash.as_deref()))
        .await
        .map_err(|_| ApiError::Internal)?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => return Err(AuthError::BadCredentials.into()),
    };
    let (token, _) = state.keys.issue(&user);
    Ok(json_reply(
        &json!({
            "access": token,
            "token_type": "Bearer",
            "expires_in": state.keys.ttl_seconds(),
            "user": {"id": user.id, "email": user.email, "role": user.role},
        }),
        StatusCode::OK,
    ))
}
