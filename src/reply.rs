//! JSON responses in API.md's shapes, shared by the REST routes (`api`), the WebSocket upgrade
//! (`ws`) and the router: a value with a status, and the error body
//! `{"error": {"code", "message", "fields"?}}`. It sits below both `api` and `ws`, so
//! neither has to import the other to answer in the same shape.

use serde_json::{json, Map, Value};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

/// Renders `value` as a JSON response with `status`.
pub fn json_reply<T: serde::Serialize>(value: &T, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// The error body of API.md; `fields` maps field names to what is wrong with each.
pub fn error_body(code: &str, message: &str, fields: Option<Map<String, Value>>) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), json!(code));
    error.insert("message".into(), json!(message));
    if let Some(fields) = fields {
        error.insert("fields".into(), Value::Object(fields));
    }
    json!({ "error": error })
}

/// An error response without field details.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_reply(&error_body(code, message, None), status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_have_the_api_shape() {
        assert_eq!(
            error_body("forbidden", "no", None),
            json!({"error": {"code": "forbidden", "message": "no"}})
        );
        let mut fields = Map::new();
        fields.insert("name".into(), json!("is required"));
        assert_eq!(
            error_body("validation_error", "see fields", Some(fields)),
            json!({"error": {"code": "validation_error", "message": "see fields",
                             "fields": {"name": "is required"}}})
        );
    }
}
