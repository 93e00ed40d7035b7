//! Client input → validated values. Each check returns the message shown under
//! `error.fields.<field>`, so every refusal says what is wrong (DESIGN invariant 5).

use super::{NewUser, Role, Timestamp};

/// Longest email we accept (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest business name.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest subdomain (one DNS label).
pub const MAX_SUBDOMAIN_CHARS: usize = 63;
/// Shortest password.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password (argon2 is slow on purpose; a megabyte password must not be).
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Longest free-text field (customer name, service).
pub const MAX_TEXT_CHARS: usize = 200;

/// Collected field errors of one body, in field order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldErrors(pub Vec<(&'static str, String)>);

impl FieldErrors {
    /// Records `message` for `field`.
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps `result`'s value, or records its message for `field`.
    pub fn check<T>(&mut self, field: &'static str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.add(field, message);
                None
            }
        }
    }
}

/// A trimmed, lower-cased email address of a plausible shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates `raw`; the error is the message shown under the field.
    pub fn parse(raw: String) -> Result<Self, String> {
        let value = raw.trim().to_lowercase();
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if value.chars().count() > MAX_EMAIL_CHARS {
            return Err(format!("must be at most {MAX_EMAIL_CHARS} characters"));
        }
        let Some((local, domain)) = value.rsplit_once('@') else {
            return Err("must be an email address like name@example.com".into());
        };
        let domain_ok = !domain.is_empty()
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        let local_ok = !local.is_empty()
            && !local.contains('@')
            && !local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\\\"".contains(c));
        if domain_ok && local_ok {
            Ok(Self(value))
        } else {
            Err("must be an email address like name@example.com".into())
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

/// A password of acceptable length (kept verbatim: spaces are significant). Its `Debug`
/// does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Validates `raw`; the error is the message shown under the field.
    pub fn parse(raw: String) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
        }
        Ok(Self(raw))
    }

    /// The password itself, for hashing or for showing once on first run.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A trimmed one-line text of 1..=`max` characters.
pub fn text(raw: String, max: usize) -> Result<String, String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(value.to_string())
}

/// A business name: 1–200 characters.
pub fn name(raw: String) -> Result<String, String> {
    text(raw, MAX_NAME_CHARS)
}

/// A subdomain: 1–63 of `a-z0-9-`, not starting or ending with `-` (one DNS label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subdomain(String);

impl Subdomain {
    /// Validates `raw` (taken as is: no trimming or case folding, it is part of URLs).
    pub fn parse(raw: String) -> Result<Self, String> {
        Self::check(&raw).map(|()| Self(raw))
    }

    /// Whether `raw` is a subdomain (the dashboard's `/b/{subdomain}` routing asks).
    pub fn is_valid(raw: &str) -> bool {
        Self::check(raw).is_ok()
    }

    fn check(raw: &str) -> Result<(), String> {
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.len() > MAX_SUBDOMAIN_CHARS {
            return Err(format!("must be at most {MAX_SUBDOMAIN_CHARS} characters"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("may contain only a-z, 0-9 and '-'".into());
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err("must not start or end with '-'".into());
        }
        Ok(())
    }
}

impl From<Subdomain> for String {
    fn from(subdomain: Subdomain) -> Self {
        subdomain.0
    }
}

/// A new user's fields, validated together: the API, `app user create` and the first-run
/// super admin all go through [`UserDraft::parse`]. Hashing its password makes a `NewUser`.
#[derive(Debug, Clone)]
pub struct UserDraft {
    pub email: Email,
    pub password: Password,
    pub role: Role,
}

impl UserDraft {
    /// Checks every field; the errors name each field that is wrong (`email`, `password`,
    /// `role`), in that order.
    pub fn parse(email: String, password: String, role: &str) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let email = errors.check("email", Email::parse(email));
        let password = errors.check("password", Password::parse(password));
        let role = errors.check(
            "role",
            Role::parse(role).ok_or_else(|| "must be super_admin or business_owner".to_string()),
        );
        match (email, password, role) {
            (Some(email), Some(password), Some(role)) => Ok(Self {
                email,
                password,
                role,
            }),
            _ => Err(errors),
        }
    }

    /// The user to store, with `password_hash` (argon2id) of [`UserDraft::password`].
    pub fn into_new_user(self, password_hash: String) -> NewUser {
        NewUser {
            email: self.email.into(),
            password_hash,
            role: self.role,
        }
    }
}

/// An RFC 3339 time in the future.
pub fn future_time(raw: String, now: Timestamp) -> Result<Timestamp, String> {
    let at = Timestamp::parse_rfc3339(raw.trim())
        .ok_or_else(|| "must be an RFC 3339 time like 2026-02-14T18:30:00Z".to_string())?;
    if at <= now {
        return Err("must be in the future".into());
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        let cases = [
            (
                "Owner@Example.COM",
                Some("owner@example.com"),
                "lower-cased",
            ),
            ("  a@b.co  ", Some("a@b.co"), "trimmed"),
            ("", None, "empty"),
            ("no-at-sign", None, "no @"),
            ("a@", None, "no domain"),
            ("@b.co", None, "no local part"),
            ("a b@c.co", None, "space"),
            ("a@b..co", None, "double dot"),
            ("<x>@b.co", None, "angle brackets"),
        ];
        for (input, expected, why) in cases {
            assert_eq!(
                Email::parse(input.into()).ok().as_ref().map(Email::as_str),
                expected,
                "{why}"
            );
        }
        assert!(Email::parse(format!("{}@b.co", "a".repeat(260))).is_err());
    }

    #[test]
    fn subdomains() {
        let cases = [
            ("salon-1", true, "letters digits dash"),
            ("a", true, "one char"),
            ("-a", false, "leading dash"),
            ("a-", false, "trailing dash"),
            ("Salon", false, "upper case"),
            ("sa lon", false, "space"),
            ("", false, "empty"),
            ("ü", false, "non-ascii"),
        ];
        for (input, ok, why) in cases {
            assert_eq!(Subdomain::parse(input.into()).is_ok(), ok, "{why}");
            assert_eq!(Subdomain::is_valid(input), ok, "{why}");
        }
        assert!(Subdomain::parse("a".repeat(63)).is_ok());
        assert!(Subdomain::parse("a".repeat(64)).is_err());
    }

    #[test]
    fn names_and_passwords() {
        assert_eq!(name("  Salon  ".into()).unwrap(), "Salon");
        assert!(name("   ".into()).is_err());
        assert!(name("x".repeat(201)).is_err());
        assert!(name("x".repeat(200)).is_ok());
        assert!(name("a\u{0}b".into()).is_err());
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("long enough".into()).is_ok());
        assert_eq!(
            format!("{:?}", Password::parse("long enough".into()).unwrap()),
            "Password([redacted])"
        );
    }

    #[test]
    fn times_must_be_future_rfc3339() {
        let now = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert!(future_time("2026-01-02T00:00:00Z".into(), now).is_ok());
        assert!(future_time("2025-12-31T00:00:00Z".into(), now).is_err());
        assert!(future_time("next week".into(), now).is_err());
    }

    #[test]
    fn a_user_draft_names_every_wrong_field() {
        let draft = UserDraft::parse(" A@B.co ".into(), "long enough".into(), "business_owner")
            .expect("valid");
        assert_eq!(draft.email.as_str(), "a@b.co");
        assert_eq!(draft.role, Role::BusinessOwner);
        let user = draft.into_new_user("hash".into());
        assert_eq!(
            (user.email.as_str(), user.password_hash.as_str()),
            ("a@b.co", "hash")
        );

        let errors = UserDraft::parse("nope".into(), "short".into(), "king").unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|(field, _)| *field).collect();
        assert_eq!(fields, ["email", "password", "role"]);
        assert_eq!(errors.0[2].1, "must be super_admin or business_owner");
    }
}
