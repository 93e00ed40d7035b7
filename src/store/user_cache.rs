//! A read-through cache of user records: every authenticated request and WebSocket connect
//! looks its user up, and a sled read plus a decode per request was a measurable share of a
//! create's cost.
//!
//! Only known users are cached (an unknown id always reads the store, so it stays a 401).
//! The writer clears the cache after every batch that changes a user, and a read that raced
//! such a change is not cached: each fill checks the generation it started from, so a
//! deleted or changed user can never be served from a stale entry (API.md: unknown user →
//! 401).

use crate::domain::User;
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

/// Users held at most; past it the cache starts over (users are few, tokens many).
const MAX_CACHED_USERS: usize = 16_384;

#[derive(Default)]
pub(crate) struct UserCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every invalidation.
    generation: u64,
    users: HashMap<Uuid, User>,
}

impl UserCache {
    /// The cached user and, on a miss, the generation to hand back to [`UserCache::fill`].
    pub fn get(&self, id: Uuid) -> Result<User, u64> {
        let inner = self.lock();
        inner.users.get(&id).cloned().ok_or(inner.generation)
    }

    /// Caches `user`, read from the store at `generation`, unless the users changed since.
    pub fn fill(&self, generation: u64, user: &User) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.users.len() >= MAX_CACHED_USERS {
            inner.users.clear();
        }
        inner.users.insert(user.id, user.clone());
    }

    /// Forgets every user (the writer changed one).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.users.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The sections below cannot panic halfway; a poisoned lock still holds a valid map.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Role, Timestamp};

    fn user() -> User {
        User {
            id: Uuid::new_v4(),
            email: "a@example.com".into(),
            role: Role::BusinessOwner,
            password_hash: "x".into(),
            created_at: Timestamp::now(),
        }
    }

    #[test]
    fn a_fill_from_before_an_invalidation_is_not_kept() {
        let cache = UserCache::default();
        let user = user();
        let generation = cache.get(user.id).unwrap_err();
        cache.clear();
        cache.fill(generation, &user);
        assert!(cache.get(user.id).is_err());
        let generation = cache.get(user.id).unwrap_err();
        cache.fill(generation, &user);
        assert_eq!(cache.get(user.id).unwrap().id, user.id);
        cache.clear();
        assert!(cache.get(user.id).is_err());
    }
}
