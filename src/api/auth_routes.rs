//! `/api/auth/`: logging in (email and password → an access token and a refresh token),
//! refreshing (a refresh token → a new pair, rotating the old one out) and logging out.
//!
//! A login passes the login gate first (attempts per address, failures per account), and its
//! password check waits for a hashing slot; a refresh or logout needs no hashing. Unknown
//! refresh tokens are refused before the writer is asked, so random tokens cost a read.

use super::body::{self, Field, MUST_BE_A_STRING};
use super::error::{respond, ApiError};
use super::filters::{client_addr, json_body, with_state};
use crate::auth::{verify_password, AuthError};
use crate::client_addr::ClientKey;
use crate::domain::session::{hash_refresh_token, new_refresh_token};
use crate::domain::validate::FieldErrors;
use crate::domain::{AccessState, User};
use crate::reply::json_reply;
use crate::state::AppState;
use crate::store::{SessionApplied, StoreError};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Reply;
use warp::reply::Response;
use warp::Filter;

/// The authentication routes.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let login = warp::path!("api" / "auth" / "token")
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_addr(&state))
        .and(json_body())
        .then(issue_token);
    let refresh = warp::path!("api" / "auth" / "refresh")
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(json_body())
        .then(refresh);
    let logout = warp::path!("api" / "auth" / "logout")
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state(state))
        .and(json_body())
        .then(logout);
    login
        .or(refresh)
        .unify()
        .or(logout)
        .unify()
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

/// The body of a refresh or a logout.
#[derive(Debug, Deserialize)]
pub struct RefreshBody {
    #[serde(default)]
    refresh: Field<String>,
}

impl RefreshBody {
    fn token(self) -> Result<String, ApiError> {
        let mut errors = FieldErrors::default();
        self.refresh
            .required(&mut errors, "refresh", MUST_BE_A_STRING)
            .ok_or(ApiError::Validation(errors))
    }
}

/// POST /api/auth/token/
async fn issue_token(
    state: AppState,
    client: ClientKey,
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
    let account = email.trim().to_lowercase();
    // Locked accounts refuse even the right password: checked before any hashing.
    state.login.admit(client, &account)?;
    let user = state.store.user_by_email(&account)?;
    let access = match &user {
        Some(user) => state.store.access_state(user.id)?,
        None => AccessState::default(),
    };
    let hash = user.as_ref().map(|user| user.password_hash.clone());
    // An unknown email verifies against a dummy hash: the same cost and the same 401.
    let ok = state
        .login
        .hash(move || verify_password(&password, hash.as_deref()))
        .await?;
    let user = match (ok, user) {
        // A disabled user hears exactly what a wrong password hears.
        (true, Some(user)) if !access.disabled => user,
        _ => {
            state.login.failed(&account);
            return Err(AuthError::BadCredentials.into());
        }
    };
    state.login.succeeded(&account);
    let (refresh, refresh_hash) = new_refresh_token();
    state
        .writer
        .start_session(
            user.id,
            access.generation,
            refresh_hash,
            state.config.refresh_ttl_seconds,
        )
        .await
        .map_err(|error| match error {
            // Disabled or its password changed while this login was being checked.
            StoreError::NotFound(_) => AuthError::BadCredentials.into(),
            other => ApiError::from(other),
        })?;
    Ok(session_reply(&state, &user, access.generation, &refresh))
}

/// POST /api/auth/refresh/
async fn refresh(
    state: AppState,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: RefreshBody = body::parse(content_type.as_deref(), &body)?;
    let presented = hash_refresh_token(&body.token()?);
    if !state.store.refresh_token_exists(&presented)? {
        return Err(AuthError::Invalid.into());
    }
    let (refresh, next) = new_refresh_token();
    let ttl = state.config.refresh_ttl_seconds;
    match state.writer.rotate_session(presented, next, ttl).await? {
        SessionApplied::Rotated { user, generation } => {
            Ok(session_reply(&state, &user, generation, &refresh))
        }
        SessionApplied::Reused => {
            tracing::warn!("a refresh token was used twice; its whole family is revoked");
            Err(AuthError::Invalid.into())
        }
        _ => Err(AuthError::Invalid.into()),
    }
}

/// POST /api/auth/logout/ — idempotent: an unknown or already revoked token is logged out.
async fn logout(
    state: AppState,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: RefreshBody = body::parse(content_type.as_deref(), &body)?;
    let presented = hash_refresh_token(&body.token()?);
    if state.store.refresh_token_exists(&presented)? {
        state.writer.end_session(presented).await?;
    }
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// The answer to a login or a refresh: a new access token and a new refresh token.
fn session_reply(state: &AppState, user: &User, generation: u64, refresh: &str) -> Response {
    let (token, _) = state.keys.issue(user, generation);
    json_reply(
        &json!({
            "access": token,
            "token_type": "Bearer",
            "expires_in": state.keys.ttl_seconds(),
            "refresh": refresh,
            "refresh_expires_in": state.config.refresh_ttl_seconds,
            "user": {"id": user.id, "email": user.email, "role": user.role},
        }),
        StatusCode::OK,
    )
}
