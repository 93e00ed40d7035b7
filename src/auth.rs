//! Authentication: HS256 JWTs (algorithm pinned, `exp` required, no leeway) and argon2id
//! password hashes, verified on the blocking pool so a login never stalls the async threads.

use crate::domain::{Role, Timestamp, User};
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use uuid::Uuid;

/// Why a token or a password was refused. Every variant is a 401 to the client.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("authentication required")]
    Missing,
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("invalid email or password")]
    BadCredentials,
}

/// The claims of our tokens (API.md "Authentication").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: Uuid,
    pub email: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    /// The user's token generation when the token was issued: a password change, disable or
    /// enable raises it, which revokes the token. Tokens from before generations existed
    /// carry none, which reads as 0, the generation every user starts at.
    #[serde(default)]
    pub gen: u64,
}

/// A JWT signing secret; `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps raw secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The raw bytes (for tests comparing secrets).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Signing and verification keys with the validation rules fixed once.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_seconds: u64,
}

impl JwtKeys {
    /// Keys for `secret`, issuing tokens that live `ttl_seconds`.
    pub fn new(secret: &Secret, ttl_seconds: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Self {
            encoding: EncodingKey::from_secret(&secret.0),
            decoding: DecodingKey::from_secret(&secret.0),
            validation,
            ttl_seconds,
        }
    }

    /// Token lifetime in seconds.
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    /// Issues a token for `user` at token generation `generation`, valid from now for the
    /// configured lifetime.
    pub fn issue(&self, user: &User, generation: u64) -> (String, Claims) {
        self.issue_with_ttl(user, generation, self.ttl_seconds)
    }

    /// Issues a token with an explicit lifetime (for `app token --ttl`).
    pub fn issue_with_ttl(
        &self,
        user: &User,
        generation: u64,
        ttl_seconds: u64,
    ) -> (String, Claims) {
        let iat = Timestamp::now().as_unix_seconds();
        let claims = Claims {
            sub: user.id,
            email: user.email.clone(),
            role: user.role,
            iat,
            exp: iat.saturating_add(i64::try_from(ttl_seconds).unwrap_or(i64::MAX)),
            gen: generation,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail");
        (token, claims)
    }

    /// Verifies signature, algorithm and expiry. A token is expired once `exp` ≤ now.
    ///
    /// # Errors
    /// `Expired` or `Invalid`; the caller still has to check that the user exists.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        if data.claims.exp <= Timestamp::now().as_unix_seconds() {
            return Err(AuthError::Expired);
        }
        Ok(data.claims)
    }
}

/// Hashes a password with argon2id and a random salt. CPU-heavy: call it on the blocking pool.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

/// Checks `password` against `hash` (or against a dummy hash when there is no user, so an
/// unknown email costs as much as a wrong password). CPU-heavy: call it through the login
/// gate's hashing threads.
pub fn verify_password(password: &str, hash: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = match hash {
        Some(hash) => hash,
        None => DUMMY.get_or_init(|| hash_password("dummy password for timing")),
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    verify_with_thread_memory(password, &parsed).unwrap_or(false) && hash.is_some()
}

thread_local! {
    /// argon2's working memory (~19 MiB), kept by each thread that verifies. Allocating it
    /// per verify left freed blocks behind in glibc's per-thread arenas (~290 MiB after a few
    /// dozen logins on 2 cores); reusing one buffer per hashing thread bounds it.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What `PasswordVerifier::verify_password` does (same parameters from the PHC string, same
/// constant-time comparison), with the working memory from [`BLOCKS`].
fn verify_with_thread_memory(
    password: &str,
    parsed: &PasswordHash<'_>,
) -> Result<bool, argon2::password_hash::Error> {
    use argon2::password_hash::Output;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Ok(false);
    };
    let algorithm = argon2::Algorithm::try_from(parsed.algorithm)?;
    let version = match parsed.version {
        Some(version) => argon2::Version::try_from(version)?,
        None => argon2::Version::default(),
    };
    let params = argon2::Params::try_from(parsed)?;
    let argon = Argon2::new(algorithm, version, params);
    let mut salt_buffer = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buffer)?;
    let computed = BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let needed = argon.params().block_count();
        if blocks.len() < needed {
            blocks.resize(needed, argon2::Block::default());
        }
        Output::init_with(expected.len(), |out| {
            argon
                .hash_password_into_with_memory(
                    password.as_bytes(),
                    salt,
                    out,
                    &mut blocks[..needed],
                )
                .map_err(Into::into)
        })
    })?;
    // `Output`'s equality is constant-time.
    Ok(&computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: Uuid::new_v4(),
            email: "a@example.com".into(),
            role: Role::SuperAdmin,
            password_hash: String::new(),
            created_at: Timestamp::now(),
        }
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_claims() {
        let keys = JwtKeys::new(&Secret::new(b"k".repeat(32)), 60);
        let user = user();
        let (token, claims) = keys.issue(&user, 0);
        assert_eq!(keys.verify(&token).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn other_secrets_and_expired_tokens_are_refused() {
        let keys = JwtKeys::new(&Secret::new(b"k".repeat(32)), 60);
        let other = JwtKeys::new(&Secret::new(b"x".repeat(32)), 60);
        let (token, _) = other.issue(&user(), 0);
        assert_eq!(keys.verify(&token), Err(AuthError::Invalid));
        let expired = JwtKeys::new(&Secret::new(b"k".repeat(32)), 0);
        let (token, _) = expired.issue(&user(), 0);
        assert_eq!(keys.verify(&token), Err(AuthError::Expired));
        assert_eq!(keys.verify("garbage"), Err(AuthError::Invalid));
    }

    #[test]
    fn hs512_tokens_are_refused() {
        let secret = Secret::new(b"k".repeat(32));
        let keys = JwtKeys::new(&secret, 60);
        let (_, claims) = keys.issue(&user(), 0);
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(&secret.0),
        )
        .unwrap();
        assert_eq!(keys.verify(&token), Err(AuthError::Invalid));
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse");
        assert!(verify_password("correct horse", Some(&hash)));
        assert!(!verify_password("wrong horse", Some(&hash)));
        assert!(!verify_password("correct horse", None));
        assert!(!verify_password("correct horse", Some("not a PHC string")));
    }

    #[test]
    fn verifying_with_thread_memory_agrees_with_the_argon2_verifier() {
        use argon2::password_hash::PasswordVerifier;
        let hash = hash_password("correct horse");
        let parsed = PasswordHash::new(&hash).unwrap();
        for password in ["correct horse", "correct horsE", ""] {
            let theirs = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            assert_eq!(verify_with_thread_memory(password, &parsed), Ok(theirs));
        }
    }
}
