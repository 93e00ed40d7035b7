//! `/api/users/`: create and list users (super admin), and `me`.

use super::error::{respond, ApiError};
use super::filters::{bearer, json_body, parse_object, required_string, with_state};
use super::{json_reply, AppState};
use crate::auth::hash_password;
use crate::domain::validate::{self, FieldErrors};
use crate::domain::{NewUser, Role, UserView};
use crate::store::{Applied, Mutation};
use bytes::Bytes;
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

/// Validates a new user's fields and hashes the password (on the blocking pool).
pub async fn new_user(email: String, password: String, role: &str) -> Result<NewUser, ApiError> {
    let mut errors = FieldErrors::default();
    let email = errors.check("email", validate::email(email));
    let password = errors.check("password", validate::password(password));
    let role = errors.check(
        "role",
        Role::parse(role).ok_or_else(|| "must be super_admin or business_owner".to_string()),
    );
    let (Some(email), Some(password), Some(role)) = (email, password, role) else {
        return Err(ApiError::Validation(errors));
    };
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| ApiError::Internal)?;
    Ok(NewUser {
        email,
        password_hash,
        role,
    })
}

/// POST /api/users/
async fn create(
    state: AppState,
    auth: Option<String>,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.authenticate(auth).await?.require_admin()?;
    let body = parse_object(content_type.as_deref(), &body)?;
    let mut errors = FieldErrors::default();
    let email = required_string(&mut errors, &body, "email");
    let password = required_string(&mut errors, &body, "password");
    let role = required_string(&mut errors, &body, "role");
    let (Some(email), Some(password), Some(role)) = (email, password, role) else {
        return Err(ApiError::Validation(errors));
    };
    let new = new_user(email, password, &role).await?;
    if state.store.user_by_email(&new.email)?.is_some() {
        return Err(ApiError::Conflict {
            field: Some("email"),
            message: "a user with this email already exists".into(),
        });
    }
    match state.writer.submit(Mutation::CreateUser(new)).await? {
        Applied::User(user) => Ok(json_reply(&UserView::from(&user), StatusCode::CREATED)),
        _ => Err(ApiError::Internal),
    }
}

/// GET /api/users/
async fn list(state: AppState, auth: Option<String>) -> Result<Response, ApiError> {
    state.authenticate(auth).await?.require_admin()?;
    let users: Vec<UserView> = state.store.users()?.iter().map(UserView::from).collect();
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
