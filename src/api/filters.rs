//! Filters shared by every route: the state handle, the caller's identity, JSON bodies with
//! a size limit, query parsing. None of them rejects on bad input: they hand the raw parts to
//! handlers, which fail with an `ApiError`, so a bad token never falls through to a sibling
//! route (STYLE §3).

use super::error::ApiError;
use super::AppState;
use crate::auth::AuthError;
use crate::domain::validate::FieldErrors;
use crate::domain::{Role, User};
use crate::store::{PageCursor, Visibility};
use bytes::Bytes;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use warp::Filter;

/// Largest accepted request body (API.md: 64 KiB).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
/// Default and maximum page sizes (API.md: `limit` 1–500, default 100).
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 500;

/// Injects the state handle.
pub fn with_state(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The raw `Authorization` header, if any.
pub fn bearer() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>("authorization")
        .or(warp::any().map(|| None))
        .unify()
}

/// The request body (at most 64 KiB) and its content type.
pub fn json_body() -> impl Filter<Extract = (Option<String>, Bytes), Error = warp::Rejection> + Clone
{
    warp::header::optional::<String>("content-type")
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::bytes())
}

/// The query string as key → value (later duplicates win).
pub fn query() -> impl Filter<Extract = (HashMap<String, String>,), Error = warp::Rejection> + Clone
{
    warp::query::<HashMap<String, String>>()
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// `exp` of the token that authenticated this call.
    pub expires_at: i64,
}

impl Caller {
    /// True for super admins.
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::SuperAdmin
    }

    /// Fails with 403 unless the caller is a super admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("only a super admin may do this"))
        }
    }
}

impl AppState {
    /// Verifies a bearer header and loads its user (unknown users are 401).
    pub async fn authenticate(&self, header: Option<String>) -> Result<Caller, ApiError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::Invalid)?;
        self.authenticate_token(token.trim())
            .map_err(ApiError::from)
    }

    /// Verifies a raw token and loads its user.
    pub fn authenticate_token(&self, token: &str) -> Result<Caller, AuthError> {
        let claims = self.keys.verify(token)?;
        let user = self
            .store
            .user(claims.sub)
            .map_err(|error| {
                tracing::error!(%error, "user lookup failed");
                AuthError::Invalid
            })?
            .ok_or(AuthError::Invalid)?;
        // A token minted for another email or role (user recreated) is not this user's.
        if user.email != claims.email || user.role != claims.role {
            return Err(AuthError::Invalid);
        }
        Ok(Caller {
            user,
            expires_at: claims.exp,
        })
    }

    /// What the caller's notifications and activity include.
    pub fn visibility(&self, caller: &Caller) -> Result<Visibility, ApiError> {
        Ok(if caller.is_admin() {
            Visibility::All
        } else {
            Visibility::Businesses(self.store.owned_business_ids(&caller.user.email)?)
        })
    }
}

/// Parses a JSON object body; checks the content type and syntax.
pub fn parse_object(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, ApiError> {
    if let Some(content_type) = content_type {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|error| ApiError::InvalidJson(error.to_string()))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::InvalidJson("expected a JSON object".into())),
    }
}

/// Takes an optional string field: absent or null → `None`; another type → a field error.
pub fn optional_string(
    errors: &mut FieldErrors,
    body: &Map<String, Value>,
    field: &'static str,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            errors.add(field, "must be a string");
            None
        }
    }
}

/// Takes a required string field: absent or null → "is required".
pub fn required_string(
    errors: &mut FieldErrors,
    body: &Map<String, Value>,
    field: &'static str,
) -> Option<String> {
    if matches!(body.get(field), None | Some(Value::Null)) {
        errors.add(field, "is required");
        return None;
    }
    optional_string(errors, body, field)
}

/// `limit` and `cursor` of a listing.
pub fn page_params(
    query: &HashMap<String, String>,
) -> Result<(usize, Option<PageCursor>), ApiError> {
    let mut errors = FieldErrors::default();
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                errors.add("limit", format!("must be an integer from 1 to {MAX_PAGE}"));
                DEFAULT_PAGE
            }
        },
    };
    let cursor = match query.get("cursor").map(String::as_str) {
        None | Some("") => None,
        Some(text) => {
            let cursor = PageCursor::parse(text);
            if cursor.is_none() {
                errors.add("cursor", "is not a cursor returned by this listing");
            }
            cursor
        }
    };
    if errors.is_empty() {
        Ok((limit, cursor))
    } else {
        Err(ApiError::Validation(errors))
    }
}
