//! Request bodies: bytes → a typed body struct, then validation into domain values
//! (STYLE §3). Bad syntax, or anything but a JSON object, is `invalid_json`; a body struct's
//! fields are [`Field`]s, so a missing or mistyped field is collected with the others as a
//! `validation_error` with `fields`, never a parse failure that names only the first.

use super::error::ApiError;
use crate::domain::validate::FieldErrors;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// What a field of a wrong type is told when it should be text.
pub const MUST_BE_A_STRING: &str = "must be a string";

/// Parses a JSON object body into `T`; checks the content type and syntax.
///
/// `Content-Type: application/json` is required, absent included (415): a page on another
/// site can send a "simple" cross-origin POST (no preflight) only with a form or text type,
/// so requiring JSON keeps such pages from acting on a visitor's behalf.
pub fn parse<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, ApiError> {
    let essence = content_type
        .and_then(|content_type| content_type.split(';').next())
        .unwrap_or("")
        .trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|error| ApiError::InvalidJson(error.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::InvalidJson("expected a JSON object".into()));
    }
    // Every body struct takes any object (its fields are `Field`s); this fails only if one
    // did not, and then it is the client's JSON that does not fit.
    serde_json::from_value(value).map_err(|error| ApiError::InvalidJson(error.to_string()))
}

/// One field of a body as the client sent it. Use with `#[serde(default)]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    /// Absent, or `null`.
    #[default]
    Absent,
    Given(T),
    /// Present with a JSON type that is not `T`'s.
    WrongType,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null => Field::Absent,
            value => T::deserialize(value).map_or(Field::WrongType, Field::Given),
        })
    }
}

impl<T> Field<T> {
    /// The value, if given; a wrong type is recorded as `wrong_type` for `name`.
    pub fn optional(
        self,
        errors: &mut FieldErrors,
        name: &'static str,
        wrong_type: &str,
    ) -> Option<T> {
        match self {
            Field::Absent => None,
            Field::Given(value) => Some(value),
            Field::WrongType => {
                errors.add(name, wrong_type);
                None
            }
        }
    }

    /// The value; an absent field is recorded as "is required", a wrong type as `wrong_type`.
    pub fn required(
        self,
        errors: &mut FieldErrors,
        name: &'static str,
        wrong_type: &str,
    ) -> Option<T> {
        if matches!(self, Field::Absent) {
            errors.add(name, "is required");
            return None;
        }
        self.optional(errors, name, wrong_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default)]
        text: Field<String>,
        #[serde(default)]
        number: Field<u64>,
    }

    fn body(json: &str) -> Result<Body, ApiError> {
        parse(Some("application/json"), json.as_bytes())
    }

    #[test]
    fn fields_are_absent_given_or_of_the_wrong_type() {
        let cases = [
            (r#"{}"#, Field::Absent, Field::Absent, "absent"),
            (
                r#"{"text": null, "number": null}"#,
                Field::Absent,
                Field::Absent,
                "null",
            ),
            (
                r#"{"text": "a", "number": 7}"#,
                Field::Given("a".to_string()),
                Field::Given(7),
                "given",
            ),
            (
                r#"{"text": 1, "number": -1}"#,
                Field::WrongType,
                Field::WrongType,
                "number for text, negative for u64",
            ),
            (
                r#"{"text": [], "number": 1.5}"#,
                Field::WrongType,
                Field::WrongType,
                "array for text, fraction for u64",
            ),
            (
                r#"{"number": "7", "other": 1}"#,
                Field::Absent,
                Field::WrongType,
                "string for u64; unknown keys ignored",
            ),
        ];
        for (json, text, number, why) in cases {
            let parsed = body(json).unwrap_or_else(|e| panic!("{why}: {e}"));
            assert_eq!((parsed.text, parsed.number), (text, number), "{why}");
        }
    }

    #[test]
    fn anything_but_a_json_object_is_invalid_json() {
        for json in ["", "[]", "null", "\"x\"", "42", "{\"a\":", "{} {}"] {
            assert!(
                matches!(body(json), Err(ApiError::InvalidJson(_))),
                "{json:?}"
            );
        }
    }

    #[test]
    fn only_json_content_types_are_read() {
        for ok in [
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("Application/JSON"),
        ] {
            assert!(parse::<Body>(ok, b"{}").is_ok(), "{ok:?}");
        }
        for refused in [
            None,
            Some("text/plain"),
            Some("application/jsonx"),
            Some("multipart/form-data"),
            Some(""),
        ] {
            assert!(
                matches!(
                    parse::<Body>(refused, b"{}"),
                    Err(ApiError::UnsupportedMediaType)
                ),
                "{refused:?}: no body is read without a JSON content type"
            );
        }
    }

    #[test]
    fn required_and_optional_record_what_is_wrong() {
        let mut errors = FieldErrors::default();
        assert_eq!(
            Field::<String>::Absent.required(&mut errors, "a", MUST_BE_A_STRING),
            None
        );
        assert_eq!(
            Field::<String>::Absent.optional(&mut errors, "b", MUST_BE_A_STRING),
            None
        );
        assert_eq!(
            Field::<String>::WrongType.optional(&mut errors, "c", MUST_BE_A_STRING),
            None
        );
        assert_eq!(
            Field::Given(1).required(&mut errors, "d", "must be a number"),
            Some(1)
        );
        assert_eq!(
            errors.0,
            vec![
                ("a", "is required".to_string()),
                ("c", MUST_BE_A_STRING.to_string())
            ]
        );
    }
}
