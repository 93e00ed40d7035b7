//! `/api/businesses/`: create, list, read, update and delete businesses.
//!
//! Super admins see everything; an owner sees only businesses whose `owner_email` is theirs,
//! and another owner's business is "not found" to them, so existence never leaks
//! (DESIGN invariant 3).

use super::body::{self, Field, MUST_BE_A_STRING};
use super::error::{respond, ApiError};
use super::filters::{bearer, json_body, page_params, query, with_state};
use crate::domain::validate::{self, FieldErrors};
use crate::domain::{Business, BusinessPatch, Email, NewBusiness, Subdomain};
use crate::reply::json_reply;
use crate::state::{AppState, Caller};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
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
        Some(business) if caller.may_see(&business) => Ok(business),
        _ => Err(ApiError::NotFound("business not found".into())),
    }
}

/// The body of `POST /api/businesses/`.
#[derive(Debug, Deserialize)]
pub struct CreateBusinessBody {
    #[serde(default)]
    name: Field<String>,
    #[serde(default)]
    subdomain: Field<String>,
    #[serde(default)]
    owner_email: Field<String>,
}

impl TryFrom<CreateBusinessBody> for NewBusiness {
    type Error = FieldErrors;

    fn try_from(body: CreateBusinessBody) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = body
            .name
            .required(&mut errors, "name", MUST_BE_A_STRING)
            .and_then(|raw| errors.check("name", validate::name(raw)));
        let subdomain = body
            .subdomain
            .required(&mut errors, "subdomain", MUST_BE_A_STRING)
            .and_then(|raw| errors.check("subdomain", Subdomain::parse(raw)));
        let owner_email = body
            .owner_email
            .required(&mut errors, "owner_email", MUST_BE_A_STRING)
            .and_then(|raw| errors.check("owner_email", Email::parse(raw)));
        match (name, subdomain, owner_email) {
            (Some(name), Some(subdomain), Some(owner_email)) => Ok(NewBusiness {
                name,
                subdomain: subdomain.into(),
                owner_email: owner_email.into(),
            }),
            _ => Err(errors),
        }
    }
}

/// The body of `PATCH /api/businesses/{id}/`: only `name` and `owner_email` may change.
#[derive(Debug, Deserialize)]
pub struct BusinessPatchBody {
    #[serde(default)]
    name: Field<String>,
    #[serde(default)]
    owner_email: Field<String>,
    /// Every other key, so the answer can say which ones cannot be changed.
    #[serde(flatten)]
    other: BTreeMap<String, serde::de::IgnoredAny>,
}

impl TryFrom<BusinessPatchBody> for BusinessPatch {
    type Error = FieldErrors;

    fn try_from(body: BusinessPatchBody) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = body
            .name
            .optional(&mut errors, "name", MUST_BE_A_STRING)
            .and_then(|raw| errors.check("name", validate::name(raw)));
        let owner_email = body
            .owner_email
            .optional(&mut errors, "owner_email", MUST_BE_A_STRING)
            .and_then(|raw| errors.check("owner_email", Email::parse(raw)));
        for field in body.other.keys() {
            let message = if matches!(
                field.as_str(),
                "subdomain" | "id" | "created_at" | "updated_at"
            ) {
                "cannot be changed"
            } else {
                "is not a field of a business"
            };
            errors.add(error_key(field), message);
        }
        if errors.is_empty() && name.is_none() && owner_email.is_none() {
            errors.add("name", "give name and/or owner_email to change");
        }
        if errors.is_empty() {
            Ok(BusinessPatch {
                name,
                owner_email: owner_email.map(String::from),
            })
        } else {
            Err(errors)
        }
    }
}

/// The key under which an error about the client's key `field` is reported: a business
/// field keeps its name; any other key is reported as `body`, so a client's arbitrary key
/// never becomes a key of our answer (error keys are a fixed set of `&'static str`).
fn error_key(field: &str) -> &'static str {
    match field {
        "subdomain" => "subdomain",
        "id" => "id",
        "created_at" => "created_at",
        "updated_at" => "updated_at",
        _ => "body",
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
    let body: CreateBusinessBody = body::parse(content_type.as_deref(), &body)?;
    let new = NewBusiness::try_from(body).map_err(ApiError::Validation)?;
    let business = state.writer.create_business(new).await?;
    Ok(json_reply(&business, StatusCode::CREATED))
}

/// GET /api/businesses/?limit=N&cursor=C
async fn list(
    state: AppState,
    auth: Option<String>,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    let (limit, cursor) = page_params(&query)?;
    let scope = caller.owner_scope().map(str::to_string);
    let page = state
        .read(move |store| store.list_businesses(scope.as_deref(), limit, cursor))
        .await?;
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
    let body: BusinessPatchBody = body::parse(content_type.as_deref(), &body)?;
    let patch = BusinessPatch::try_from(body).map_err(ApiError::Validation)?;
    let business = state.writer.update_business(id, patch).await?;
    Ok(json_reply(&business, StatusCode::OK))
}

/// DELETE /api/businesses/{id}/
async fn delete(id: Uuid, state: AppState, auth: Option<String>) -> Result<Response, ApiError> {
    let caller = state.authenticate(auth).await?;
    visible_business(&state, &caller, id)?;
    caller.require_admin()?;
    state.writer.delete_business(id).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(json: &str) -> Result<BusinessPatch, Vec<(&'static str, String)>> {
        let body: BusinessPatchBody = body::parse(Some("application/json"), json.as_bytes())
            .unwrap_or_else(|e| panic!("{json}: {e}"));
        BusinessPatch::try_from(body).map_err(|errors| errors.0)
    }

    fn create(json: &str) -> Result<NewBusiness, Vec<(&'static str, String)>> {
        let body: CreateBusinessBody = body::parse(Some("application/json"), json.as_bytes())
            .unwrap_or_else(|e| panic!("{json}: {e}"));
        NewBusiness::try_from(body).map_err(|errors| errors.0)
    }

    fn error(field: &'static str, message: &str) -> (&'static str, String) {
        (field, message.to_string())
    }

    #[test]
    fn a_patch_changes_only_name_and_owner_email() {
        let cases = [
            (
                r#"{"name": " New "}"#,
                Ok((Some("New"), None)),
                "a name, trimmed",
            ),
            (
                r#"{"owner_email": "NEW@example.com"}"#,
                Ok((None, Some("new@example.com"))),
                "an owner, lower-cased",
            ),
            (
                r#"{}"#,
                Err(vec![error(
                    "name",
                    "give name and/or owner_email to change",
                )]),
                "nothing to change",
            ),
            (
                r#"{"name": null}"#,
                Err(vec![error(
                    "name",
                    "give name and/or owner_email to change",
                )]),
                "null is absent",
            ),
            (
                r#"{"name": "x", "subdomain": "y"}"#,
                Err(vec![error("subdomain", "cannot be changed")]),
                "a read-only field",
            ),
            (
                r#"{"name": "x", "colour": "red"}"#,
                Err(vec![error("body", "is not a field of a business")]),
                "an unknown key is reported as body",
            ),
            (
                r#"{"name": 1}"#,
                Err(vec![error("name", MUST_BE_A_STRING)]),
                "a wrong type",
            ),
        ];
        for (json, expected, why) in cases {
            let got = patch(json).map(|p| (p.name, p.owner_email));
            let expected = expected.map(|(name, owner): (Option<&str>, Option<&str>)| {
                (name.map(String::from), owner.map(String::from))
            });
            assert_eq!(got, expected, "{why}");
        }
    }

    #[test]
    fn a_new_business_reports_every_field_at_once() {
        let errors = create(r#"{"name": 1, "subdomain": "Bad"}"#).unwrap_err();
        assert_eq!(
            errors,
            vec![
                error("name", MUST_BE_A_STRING),
                error("subdomain", "may contain only a-z, 0-9 and '-'"),
                error("owner_email", "is required"),
            ]
        );
        let new = create(r#"{"name": "Salon", "subdomain": "salon", "owner_email": "O@x.co"}"#)
            .expect("valid");
        assert_eq!(
            (
                new.name.as_str(),
                new.subdomain.as_str(),
                new.owner_email.as_str()
            ),
            ("Salon", "salon", "o@x.co")
        );
    }
}
