//! `/api/businesses/`: create, list, read, update and delete businesses.
//!
//! Super admins see everything; an owner sees only businesses whose `owner_email` is theirs,
//! and another owner's business is "not found" to them, so existence never leaks
//! (DESIGN invariant 3).

use super::error::{respond, ApiError};
use super::filters::{
    bearer, json_body, optional_string, page_params, parse_object, query, required_string,
    with_state, Caller,
};
use super::{json_reply, AppState};
use crate::domain::validate::{self, FieldErrors};
use crate::domain::{Business, BusinessPatch, NewBusiness};
use crate::store::{Applied, Mutation};
use bytes::Bytes;
use serde_json::json;
use std::collections::HashMap;
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

/// The business routes.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let collection = warp::path!("api" / "businesses").and(warp::path::end());
    let item = warp::path!("api" / "businesses" / Uuid).and(warp::path::end());
    let create = collection
        .and(warp::post())
        .and(with_state(state.clone()))
        .and(bearer())
        .and(json_body())
        .then(create);
    let list = collection
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(bearer())
        .and(query())
        .then(list);
    let read = item
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(bearer())
        .then(read);
    let update = item
        .and(warp::patch())
        .and(with_state(state.clone()))
        .and(bearer())
        .and(json_body())
        .then(update);
    let delete = item
        .and(warp::delete())
        .and(with_state(state.clone()))
        .and(bearer())
        .then(delete);
    let public = warp::path!("api" / "public" / "businesses" / String)
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(state))
        .then(public_profile);
    create
        .or(list)
        .unify()
        .or(read)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(public)
        .unify()
        .map(respond)
        .boxed()
}

/// Loads a business the caller may see; another owner's business is 404, not 403.
pub fn visible_business(state: &AppState, caller: &Caller, id: Uuid) -> Result<Business, ApiError> {
    match state.store.business(id)? {
        Some(business) if caller.is_admin() || business.owner_email == caller.user.email => {
            Ok(business)
        }
        _ => Err(ApiError::NotFound("business not found".into())),
    }
}

/// POST /api/businesses/
async fn create(
    state: AppState,
    auth: Option<String>,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.authenticate(auth).await?.require_admin()?;
    let body = parse_object(content_type.as_deref(), &body)?;
    let mut errors = FieldErrors::default();
    let name = required_string(&mut errors, &body, "name")
        .and_then(|raw| errors.check("name", validate::name(raw)));
    let subdomain = required_string(&mut errors, &body, "subdomain")
        .and_then(|raw| errors.check("subdomain", validate::subdomain(raw)));
    let owner_email = required_string(&mut errors, &body, "owner_email")
        .and_then(|raw| errors.check("owner_email", validate::email(raw)));
    let (Some(name), Some(subdomain), Some(owner_email)) = (name, subdomain, owner_email) else {
        return Err(ApiError::Validation(errors));
    };
    let new = NewBusiness {
        name,
        subdomain,
        owner_email,
    };
    match state.writer.submit(Mutation::CreateBusiness(new)).await? {
        Applied::Business(business) => Ok(json_reply(&business, StatusCode::CREATED)),
        _ => Err(ApiError::Internal),
    }
}

/// GET /api/businesses/?limit=N&cursor=C
async fn list(
    state: AppState,
    auth: Option<String>,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    let (limit, cursor) = page_params(&query)?;
    let owner = (!caller.is_admin()).then_some(caller.user.email.as_str());
    let page = state.store.list_businesses(owner, limit, cursor)?;
    Ok(json_reply(
        &json!({ "items": page.items, "count": page.count, "next_cursor": page.next_cursor }),
        StatusCode::OK,
    ))
}

/// GET /api/businesses/{id}/
async fn read(id: Uuid, state: AppState, auth: Option<String>) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    let business = visible_business(&state, &caller, id)?;
    Ok(json_reply(&business, StatusCode::OK))
}

/// PATCH /api/businesses/{id}/
async fn update(
    id: Uuid,
    state: AppState,
    auth: Option<String>,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    // An owner learns nothing about businesses that are not theirs: 404 before 403.
    visible_business(&state, &caller, id)?;
    caller.require_admin()?;
    let body = parse_object(content_type.as_deref(), &body)?;
    let mut errors = FieldErrors::default();
    let name = optional_string(&mut errors, &body, "name")
        .and_then(|raw| errors.check("name", validate::name(raw)));
    let owner_email = optional_string(&mut errors, &body, "owner_email")
        .and_then(|raw| errors.check("owner_email", validate::email(raw)));
    for field in body.keys() {
        if !matches!(field.as_str(), "name" | "owner_email") {
            let message = if matches!(
                field.as_str(),
                "subdomain" | "id" | "created_at" | "updated_at"
            ) {
                "cannot be changed"
            } else {
                "is not a field of a business"
            };
            errors.add(leak_field_name(field), message);
        }
    }
    if errors.is_empty() && name.is_none() && owner_email.is_none() {
        errors.add("name", "give name and/or owner_email to change");
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let patch = BusinessPatch { name, owner_email };
    match state
        .writer
        .submit(Mutation::UpdateBusiness { id, patch })
        .await?
    {
        Applied::Business(business) => Ok(json_reply(&business, StatusCode::OK)),
        _ => Err(ApiError::Internal),
    }
}

/// Field names in errors are `&'static str`; unknown client keys map to a fixed set.
fn leak_field_name(field: &str) -> &'static str {
    match field {
        "subdomain" => "subdomain",
        "id" => "id",
        "created_at" => "created_at",
        "updated_at" => "updated_at",
        _ => "body",
    }
}

/// DELETE /api/businesses/{id}/
async fn delete(id: Uuid, state: AppState, auth: Option<String>) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    visible_business(&state, &caller, id)?;
    caller.require_admin()?;
    state.writer.submit(Mutation::DeleteBusiness { id }).await?;
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// GET /api/public/businesses/{subdomain}/ — what the public booking page needs.
async fn public_profile(subdomain: String, state: AppState) -> Result<Response, ApiError> {
    let business = state
        .store
        .business_by_subdomain(&subdomain)?
        .ok_or_else(|| ApiError::NotFound("business not found".into()))?;
    Ok(json_reply(
        &json!({ "id": business.id, "name": business.name, "subdomain": business.subdomain }),
        StatusCode::OK,
    ))
}
