//! `POST /api/auth/token/`: email and password → a JWT.

use super::body::{self, Field, MUST_BE_A_STRING};
use super::error::{respond, ApiError};
use super::filters::{json_body, with_state};
use crate::auth::{verify_password, AuthError};
use crate::domain::validate::FieldErrors;
use crate::reply::json_reply;
use crate::state::AppState;
use bytes::Bytes;
use serde::Deserialize;
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

/// The body of a login. Neither field is validated beyond being text: a malformed email is
/// just an unknown one, and gets the same 401 (STYLE §3).
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    #[serde(default)]
    email: Field<String>,
    #[serde(default)]
    password: Field<String>,
}

/// POST /api/auth/token/
async fn issue_token(
    state: AppState,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: LoginBody = body::parse(content_type.as_deref(), &body)?;
    let mut errors = FieldErrors::default();
    let email = body.email.required(&mut errors, "email", MUST_BE_A_STRING);
    let password = body
        .password
        .required(&mut errors, "password", MUST_BE_A_STRING);
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
