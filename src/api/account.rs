//! Ending a user's sessions: `POST /api/users/me/password/` (a user changes their own
//! password) and `PATCH /api/users/{id}/` `{"disabled"}` (a super admin disables or enables
//! someone else). Each raises the user's token generation, so every access and refresh token
//! issued before it is refused from then on, and tells the user's open sockets, which close
//! with 4401 (API.md "Sessions that last, and can be ended").
//!
//! Choices API.md leaves open: a wrong `current` password is a 400 `validation_error` on
//! `current`, not a 401, because the request itself is authenticated (a 401 tells a client
//! its session is over); it counts as a failed login on the account, so guessing through
//! this route is throttled like the login. A super admin cannot disable or enable
//! themselves: 403 `forbidden` (locking out the last admin would need the CLI to undo).

use super::body::{self, Field, MUST_BE_A_STRING};
use super::error::{respond, ApiError};
use super::filters::{bearer, client_addr, json_body, with_state};
use crate::auth::{hash_password, verify_password};
use crate::bus::UserNotice;
use crate::client_addr::ClientKey;
use crate::domain::validate::FieldErrors;
use crate::domain::{Password, UserView};
use crate::reply::json_reply;
use crate::state::AppState;
use crate::store::{AccessChange, UserRef};
use bytes::Bytes;
use serde::Deserialize;
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

/// The account routes.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let password = warp::path!("api" / "users" / "me" / "password")
        .and(warp::path::end())
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(client_addr(&state))
        .and(bearer())
        .and(json_body())
        .then(change_password);
    let patch = warp::path!("api" / "users" / Uuid)
        .and(warp::path::end())
        .and(warp::patch())
        .and(with_state(state))
        .and(bearer())
        .and(json_body())
        .then(set_disabled);
    password.or(patch).unify().map(respond).boxed()
}

/// The body of a password change.
#[derive(Debug, Deserialize)]
pub struct PasswordBody {
    #[serde(default)]
    current: Field<String>,
    #[serde(default)]
    new: Field<String>,
}

/// The body of `PATCH /api/users/{id}/`: only `disabled` can change.
#[derive(Debug, Deserialize)]
pub struct UserPatchBody {
    #[serde(default)]
    disabled: Field<bool>,
}

/// POST /api/users/me/password/
async fn change_password(
    state: AppState,
    client: ClientKey,
    auth: Option<String>,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    let body: PasswordBody = body::parse(content_type.as_deref(), &body)?;
    let mut errors = FieldErrors::default();
    let current = body
        .current
        .required(&mut errors, "current", MUST_BE_A_STRING);
    let new = body
        .new
        .required(&mut errors, "new", MUST_BE_A_STRING)
        .and_then(|new| match Password::parse(new) {
            Ok(new) => Some(new),
            Err(why) => {
                errors.add("new", why);
                None
            }
        });
    let (Some(current), Some(new)) = (current, new) else {
        return Err(ApiError::Validation(errors));
    };
    let account = caller.user.email.clone();
    state.login.admit(client, &account)?;
    let hash = caller.user.password_hash.clone();
    let ok = state
        .login
        .hash(move || verify_password(&current, Some(&hash)))
        .await?;
    if !ok {
        state.login.failed(&account);
        return Err(ApiError::field("current", "is not your current password"));
    }
    state.login.succeeded(&account);
    let new_hash = state
        .login
        .hash(move || hash_password(new.expose()))
        .await?;
    let id = caller.user.id;
    state
        .writer
        .change_access(UserRef::Id(id), AccessChange::Password(new_hash))
        .await?;
    // Durable now: the user's sockets check their tokens and close (4401).
    state.bus.notify_user(UserNotice::revoked(id));
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// PATCH /api/users/{id}/
async fn set_disabled(
    id: Uuid,
    state: AppState,
    auth: Option<String>,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    caller.require_admin()?;
    let body: UserPatchBody = body::parse(content_type.as_deref(), &body)?;
    let mut errors = FieldErrors::default();
    let Some(disabled) = body
        .disabled
        .required(&mut errors, "disabled", "must be true or false")
    else {
        return Err(ApiError::Validation(errors));
    };
    if id == caller.user.id {
        return Err(ApiError::Forbidden(
            "a super admin cannot disable or enable themselves",
        ));
    }
    let (user, access) = state
        .writer
        .change_access(UserRef::Id(id), AccessChange::Disabled(disabled))
        .await?;
    state.bus.notify_user(UserNotice::revoked(id));
    Ok(json_reply(&UserView::new(&user, access), StatusCode::OK))
}
