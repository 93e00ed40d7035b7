//! A read-through cache of user records and access states: every authenticated request and
//! WebSocket connect looks its user up and checks its token against the access state, and a
//! sled read per request was a measurable share of a create's cost. Worse, once a sled
//! transaction has run, every sled read takes sled's process-wide lock, which each writer
//! commit holds exclusively: a request's read parked its runtime worker thread, and every
//! task on it, for the rest of the commit (docs/bench.md).
//!
//! Only users the store holds are cached (an unknown id always reads the store, so it stays a
//! 401). The writer clears the cache after every batch that changes a user or an access state,
//! and a read that raced such a change is not cached: each fill checks the generation it
//! started from, so a deleted, changed, disabled or re-passworded user can never be served
//! from a stale entry (API.md: unknown user → 401, revoked token → 401).

use crate::domain::{AccessState, User};
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

/// Entries held at most, per map; past it the map starts over (users are few, tokens many).
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
    access: HashMap<Uuid, AccessState>,
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
        if inner.generation == generation {
            bounded_insert(&mut inner.users, user.id, user.clone());
        }
    }

    /// The cached access state of `id` and, on a miss, the generation to hand back to
    /// [`UserCache::fill_access`].
    pub fn access(&self, id: Uuid) -> Result<AccessState, u64> {
        let inner = self.lock();
        inner.access.get(&id).copied().ok_or(inner.generation)
    }

    /// Caches `id`'s `access`, read from the store at `generation`, unless access states
    /// changed since.
    pub fn fill_access(&self, generation: u64, id: Uuid, access: AccessState) {
        let mut inner = self.lock();
        if inner.generation == generation {
            bounded_insert(&mut inner.access, id, access);
        }
    }

    /// Forgets every user and access state (the writer changed one).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.users.clear();
        inner.access.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The sections below cannot panic halfway; a poisoned lock still holds a valid map.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Inserts into `map`, starting it over once it holds [`MAX_CACHED_USERS`].
fn bounded_insert<V>(map: &mut HashMap<Uuid, V>, id: Uuid, value: V) {
    if map.len() >= MAX_CACHED_USERS {
        map.clear();
    }
    map.insert(id, value);
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

    #[test]
    fn an_access_state_is_cached_like_a_user_and_forgotten_with_them() {
        let cache = UserCache::default();
        let id = Uuid::new_v4();
        let generation = cache.access(id).unwrap_err();
        cache.clear(); // a password change committed meanwhile
        cache.fill_access(generation, id, AccessState::default());
        assert!(
            cache.access(id).is_err(),
            "a fill from before the change is dropped"
        );
        let generation = cache.access(id).unwrap_err();
        let disabled = AccessState {
            disabled: true,
            ..AccessState::default()
        };
        cache.fill_access(generation, id, disabled);
        assert_eq!(cache.access(id).unwrap(), disabled);
        cache.clear();
        assert!(cache.access(id).is_err());
    }
}
