//! `/api/users/`: create and list users (super admin), and `me`.

use super::body::{self, Field, MUST_BE_A_STRING};
use super::error::{respond, ApiError};
use super::filters::{bearer, json_body, with_state};
use crate::auth::hash_password;
use crate::domain::validate::FieldErrors;
use crate::domain::{UserDraft, UserView};
use crate::reply::json_reply;
use crate::state::AppState;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

/// The user routes.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let users = warp::path!("api" / "users").and(warp::path::end());
    let create = users
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(bearer())
        .and(json_body())
        .then(create);
    let list = users
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(bearer())
        .then(list);
    let me = warp::path!("api" / "users" / "me")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(state))
        .and(bearer())
        .then(me);
    create.or(list).unify().or(me).unify().map(respond).boxed()
}

/// The body of `POST /api/users/`.
#[derive(Debug, Deserialize)]
pub struct CreateUserBody {
    #[serde(default)]
    email: Field<String>,
    #[serde(default)]
    password: Field<String>,
    #[serde(default)]
    role: Field<String>,
}

impl TryFrom<CreateUserBody> for UserDraft {
    type Error = FieldErrors;

    /// Every field must be given as a string before any is checked, so a client missing one
    /// hears about that first.
    fn try_from(body: CreateUserBody) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let email = body.email.required(&mut errors, "email", MUST_BE_A_STRING);
        let password = body
            .password
            .required(&mut errors, "password", MUST_BE_A_STRING);
        let role = body.role.required(&mut errors, "role", MUST_BE_A_STRING);
        match (email, password, role) {
            (Some(email), Some(password), Some(role)) => UserDraft::parse(email, password, &role),
            _ => Err(errors),
        }
    }
}

/// POST /api/users/
async fn create(
    state: AppState,
    auth: Option<String>,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.authenticate(auth).await?.require_admin()?;
    let body: CreateUserBody = body::parse(content_type.as_deref(), &body)?;
    let draft = UserDraft::try_from(body).map_err(ApiError::Validation)?;
    // argon2 is deliberately slow and large: one hash per core, off the async threads.
    let new = state
        .login
        .hash(move || {
            let password_hash = hash_password(draft.password.expose());
            draft.into_new_user(password_hash)
        })
        .await?;
    if state.store.user_by_email(&new.email)?.is_some() {
        return Err(ApiError::Conflict {
            field: Some("email"),
            message: "a user with this email already exists".into(),
        });
    }
    let user = state.writer.create_user(new).await?;
    Ok(json_reply(&UserView::from(&user), StatusCode::CREATED))
}

/// GET /api/users/
async fn list(state: AppState, auth: Option<String>) -> Result<Response, ApiError> {
    state.authenticate(auth).await?.require_admin()?;
    let mut users = Vec::new();
    for user in state.store.users()? {
        let access = state.store.access_state(user.id)?;
        users.push(UserView::new(&user, access));
    }
    Ok(json_reply(
        &json!({ "items": users, "count": users.len() }),
        StatusCode::OK,
    ))
}

/// GET /api/users/me/
async fn me(state: AppState, auth: Option<String>) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    Ok(json_reply(&UserView::from(&caller.user), StatusCode::OK))
}
