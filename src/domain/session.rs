//! Sessions that last and can be ended (API.md "Sessions that last, and can be ended"): a
//! user's access state (the token generation every access token carries, and whether the
//! account is disabled), refresh-token families, and the one rule that decides what a
//! presented refresh token does.
//!
//! A login starts a *family*: one chain of refresh tokens, of which only the newest
//! (`current`) may be used. Using it rotates the family to a new token; presenting an older
//! one of the chain means it was copied (reuse), and the whole family is revoked. Changing a
//! password, disabling or enabling a user raises the user's generation, which kills every
//! access token and every family issued under an older one.
//!
//! Only the SHA-256 of a refresh token is ever stored: the store alone is not enough to act
//! as anyone.

use super::Timestamp;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The SHA-256 of a refresh token: how the store names it.
pub type TokenHash = [u8; 32];

/// Whether a user's tokens are good: stored per user, absent meaning the default (generation
/// 0, enabled), so users created before sessions existed need no migration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessState {
    /// Carried by every access token and refresh family; raised by every revocation.
    pub generation: u64,
    /// A disabled user cannot log in, and holds no valid token.
    pub disabled: bool,
}

impl AccessState {
    /// Whether a token issued at `generation` is still this user's.
    pub fn admits(&self, generation: u64) -> bool {
        !self.disabled && self.generation == generation
    }
}

/// One login's chain of refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshFamily {
    pub user_id: Uuid,
    /// The user's generation when the family started; a later one revokes it.
    pub generation: u64,
    /// The only token of the chain that may be used.
    pub current: TokenHash,
    /// When `current` expires; every use moves it to a full lifetime from then.
    pub expires_at: Timestamp,
}

/// A refresh token ever issued, kept until its own expiry so that a reuse is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshToken {
    pub family: Uuid,
    pub expires_at: Timestamp,
}

/// What a presented refresh token does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshCheck {
    /// It is its family's current token: rotate.
    Rotate,
    /// It was already used: revoke the family (someone holds a copy).
    Reused,
    /// Unknown, expired, logged out, revoked or its user gone or disabled: refuse.
    Dead,
}

/// Decides what `presented` does, given its stored record, its family and its user's
/// access state (each `None` when absent). Pure: the mutation reads, this decides.
pub fn check_refresh(
    presented: &TokenHash,
    token: Option<&RefreshToken>,
    family: Option<&RefreshFamily>,
    access: Option<&AccessState>,
    now: Timestamp,
) -> RefreshCheck {
    let (Some(token), Some(family)) = (token, family) else {
        return RefreshCheck::Dead;
    };
    // An expired token is worthless to whoever copied it: no reason to end the family.
    if token.expires_at <= now || family.expires_at <= now {
        return RefreshCheck::Dead;
    }
    if !access.is_some_and(|access| access.admits(family.generation)) {
        return RefreshCheck::Dead;
    }
    if &family.current != presented {
        return RefreshCheck::Reused;
    }
    RefreshCheck::Rotate
}

/// A new refresh token: 256 random bits, base64url without padding, and its hash.
pub fn new_refresh_token() -> (String, TokenHash) {
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

/// The stored name of a presented refresh token (any text hashes; unknown ones find nothing).
pub fn hash_refresh_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_micros(seconds * 1_000_000)
    }

    fn family(current: TokenHash, generation: u64) -> RefreshFamily {
        RefreshFamily {
            user_id: Uuid::nil(),
            generation,
            current,
            expires_at: at(100),
        }
    }

    fn token(expires: i64) -> RefreshToken {
        RefreshToken {
            family: Uuid::nil(),
            expires_at: at(expires),
        }
    }

    #[test]
    fn the_current_token_rotates_and_an_older_one_of_the_family_is_a_reuse() {
        let (_, current) = new_refresh_token();
        let (_, older) = new_refresh_token();
        let access = AccessState::default();
        let fam = family(current, 0);
        let check = |hash, token: &RefreshToken| {
            check_refresh(hash, Some(token), Some(&fam), Some(&access), at(50))
        };
        assert_eq!(check(&current, &token(100)), RefreshCheck::Rotate);
        assert_eq!(check(&older, &token(90)), RefreshCheck::Reused);
    }

    #[test]
    fn expired_unknown_revoked_and_disabled_are_dead_never_a_reuse() {
        let (_, current) = new_refresh_token();
        let (_, older) = new_refresh_token();
        let fam = family(current, 3);
        let ok = AccessState {
            generation: 3,
            disabled: false,
        };
        let cases = [
            (
                older,
                Some(token(40)),
                Some(&fam),
                Some(ok),
                "a used token past its own expiry",
            ),
            (
                current,
                Some(token(50)),
                Some(&fam),
                Some(ok),
                "expiring exactly now",
            ),
            (current, None, Some(&fam), Some(ok), "an unknown token"),
            (
                current,
                Some(token(100)),
                None,
                Some(ok),
                "a logged-out family",
            ),
            (
                current,
                Some(token(100)),
                Some(&fam),
                None,
                "a deleted user",
            ),
            (
                current,
                Some(token(100)),
                Some(&fam),
                Some(AccessState {
                    generation: 4,
                    disabled: false,
                }),
                "a password changed since the login",
            ),
            (
                older,
                Some(token(100)),
                Some(&fam),
                Some(AccessState {
                    generation: 3,
                    disabled: true,
                }),
                "a disabled user, even presenting a used token",
            ),
        ];
        for (hash, token, family, access, why) in cases {
            let check = check_refresh(&hash, token.as_ref(), family, access.as_ref(), at(50));
            assert_eq!(check, RefreshCheck::Dead, "{why}");
        }
    }

    #[test]
    fn tokens_are_256_random_bits_in_base64url_and_hash_to_their_sha256() {
        let (token, hash) = new_refresh_token();
        assert_eq!(token.len(), 43, "{token}");
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(hash_refresh_token(&token), hash);
        assert_ne!(new_refresh_token().1, hash);
    }

    #[test]
    fn access_admits_only_its_generation_while_enabled() {
        let access = AccessState {
            generation: 2,
            disabled: false,
        };
        assert!(access.admits(2));
        assert!(!access.admits(1));
        assert!(!AccessState {
            disabled: true,
            ..access
        }
        .admits(2));
    }
}
