//! Reads of the session trees: a user's access state (asked by every authentication) and the
//! records the sweeper may prune (listed here because a transaction cannot scan; the prune
//! mutation checks each one again).

use super::{decode, Store, StoreError};
use crate::domain::session::{AccessState, RefreshFamily, RefreshToken, TokenHash};
use crate::domain::Timestamp;
use uuid::Uuid;

/// Records a sweep found prunable, for `SessionMutation::Prune`.
#[derive(Debug, Default)]
pub struct PruneCandidates {
    pub families: Vec<Uuid>,
    pub tokens: Vec<TokenHash>,
}

impl PruneCandidates {
    /// Whether there is nothing to prune.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty() && self.tokens.is_empty()
    }
}

impl Store {
    /// The user's access state: generation and disabled flag (the default when never set);
    /// through the user cache, since every authentication asks.
    pub fn access_state(&self, user_id: Uuid) -> Result<AccessState, StoreError> {
        let generation = match self.user_cache.access(user_id) {
            Ok(access) => return Ok(access),
            Err(generation) => generation,
        };
        let access = match self.trees.user_access.get(user_id.as_bytes())? {
            Some(bytes) => decode("user_access", &bytes)?,
            None => AccessState::default(),
        };
        self.user_cache.fill_access(generation, user_id, access);
        Ok(access)
    }

    /// Whether a refresh token with this hash was issued and not yet pruned.
    pub fn refresh_token_exists(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        Ok(self.trees.refresh_tokens.contains_key(hash.as_slice())?)
    }

    /// Up to `limit` families and `limit` token records that expired by `now`, or whose user
    /// was deleted or revoked their generation.
    pub fn prune_candidates(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<PruneCandidates, StoreError> {
        let mut found = PruneCandidates::default();
        for entry in self.trees.refresh_families.iter() {
            if found.families.len() >= limit {
                break;
            }
            let (key, value) = entry?;
            let family: RefreshFamily = decode("refresh_families", &value)?;
            let alive = self.trees.users.contains_key(family.user_id.as_bytes())?
                && self.access_state(family.user_id)?.admits(family.generation);
            if family.expires_at <= now || !alive {
                if let Ok(id) = Uuid::from_slice(&key) {
                    found.families.push(id);
                }
            }
        }
        for entry in self.trees.refresh_tokens.iter() {
            if found.tokens.len() >= limit {
                break;
            }
            let (key, value) = entry?;
            let token: RefreshToken = decode("refresh_tokens", &value)?;
            if token.expires_at <= now {
                if let Ok(hash) = TokenHash::try_from(key.as_ref()) {
                    found.tokens.push(hash);
                }
            }
        }
        Ok(found)
    }
}
