//! The application's state and who is calling: [`AppState`] (the handles a request or a
//! session may touch), [`Caller`] (an authenticated user) and token authentication.
//!
//! Both the REST routes (`api`) and the WebSocket sessions (`ws`) depend on this module and on
//! nothing of each other. The ownership rules of DESIGN invariant 3 live here once:
//! - for things as they are now (a business, its reservations, opening its channel): a super
//!   admin sees every business, an owner those whose `owner_email` is theirs
//!   ([`Caller::may_see`]);
//! - for events, whichever path carries them — live, replayed on resume, caught up after
//!   lagging, or listed over REST: an owner receives an event only if they owned its business
//!   when it was committed, as its [`Audience`] recorded then ([`Caller::may_receive`]; the
//!   store's listings apply the same test through [`AppState::visibility`]). So an owner whose
//!   business moves away gets that `business_updated` (or `business_deleted`) and nothing of
//!   the business after it, and the new owner nothing from before.

use crate::auth::{AuthError, JwtKeys};
use crate::bus::Bus;
use crate::client_addr::ClientKey;
use crate::config::Config;
use crate::domain::{Audience, Business, EventKind, Role, User};
use crate::health::StoreHealth;
use crate::login_gate::LoginGate;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::store::{Store, StoreError, Visibility};
use crate::writer::Writer;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a request or a task may touch: the [`Handles`], shared. Cloning it is one
/// reference-count bump, which matters because warp clones it into every route filter a
/// request passes on its way, matched or not: cloning and dropping the handles themselves
/// (some forty reference counts, shared by both cores) was ~8 % of the HTTP threads' time
/// in a profile of durable creates.
#[derive(Clone)]
pub struct AppState(Arc<Handles>);

impl AppState {
    /// Shares `handles` with every request and task.
    pub fn new(handles: Handles) -> Self {
        Self(Arc::new(handles))
    }
}

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}

/// The handles [`AppState`] shares.
pub struct Handles {
    pub store: Store,
    pub writer: Writer,
    pub bus: Bus,
    pub keys: Arc<JwtKeys>,
    pub metrics: Arc<Metrics>,
    /// Whether the store can be written (`/healthz`, and the writer's refusals).
    pub health: Arc<StoreHealth>,
    pub config: Arc<Config>,
    /// Login limits and the password-hashing queue.
    pub login: Arc<LoginGate>,
    /// Public bookings per client address (`api::client_addr`).
    pub booking_limiter: Arc<RateLimiter<ClientKey>>,
    /// Public bookings per business, whoever books.
    pub business_booking_limiter: Arc<RateLimiter<uuid::Uuid>>,
    /// Cancelled on SIGINT/SIGTERM; WebSocket sessions watch it to close with 1001.
    pub shutdown: CancellationToken,
    /// The VAPID key pair of Web Push (`GET /api/push/key`).
    pub vapid: Arc<crate::push::vapid::VapidKey>,
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// `exp` of the token that authenticated this call.
    pub expires_at: i64,
    /// The user's token generation the token was issued at; a later one revokes it.
    pub generation: u64,
}

impl Caller {
    /// True for super admins.
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::SuperAdmin
    }

    /// Which businesses the caller may see: `None` for all of them (a super admin), or
    /// `Some(email)` for those whose `owner_email` is `email` (DESIGN invariant 3).
    pub fn owner_scope(&self) -> Option<&str> {
        (!self.is_admin()).then_some(self.user.email.as_str())
    }

    /// Whether the caller may see `business` as it is now (and open its channel).
    pub fn may_see(&self, business: &Business) -> bool {
        self.owner_scope()
            .is_none_or(|email| business.owner_email == email)
    }

    /// Whether the caller may receive an event committed for `audience`: every path that
    /// hands an owner an event asks this (DESIGN invariant 3).
    pub fn may_receive(&self, audience: &Audience) -> bool {
        self.owner_scope()
            .is_none_or(|email| audience.includes(email))
    }

    /// Whether the caller still may follow the business after an event of `kind` for
    /// `audience` about it: false once it moved to someone else or was deleted.
    pub fn keeps_business_after(&self, kind: EventKind, audience: &Audience) -> bool {
        self.owner_scope()
            .is_none_or(|email| audience.owner_after(kind) == Some(email))
    }
}

impl AppState {
    /// Verifies an `Authorization: Bearer …` header and loads its user (unknown users are
    /// refused like bad tokens).
    pub async fn authenticate(&self, header: Option<String>) -> Result<Caller, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::Invalid)?;
        self.authenticate_token(token.trim())
    }

    /// Verifies a raw token and loads its user; a token of a disabled user, or from before
    /// the user's last password change or enable, is refused like a bad one.
    pub fn authenticate_token(&self, token: &str) -> Result<Caller, AuthError> {
        let claims = self.keys.verify(token)?;
        let user = self
            .store
            .user(claims.sub)
            .map_err(|error| {
                tracing::error!(%error, "user lookup failed");
                AuthError::Invalid
            })?
            .ok_or(AuthError::Invalid)?;
        // A token minted for another email or role (user recreated) is not this user's.
        if user.email != claims.email || user.role != claims.role {
            return Err(AuthError::Invalid);
        }
        let caller = Caller {
            user,
            expires_at: claims.exp,
            generation: claims.gen,
        };
        if self.is_revoked(&caller) {
            return Err(AuthError::Invalid);
        }
        Ok(caller)
    }

    /// Whether the caller's token was revoked since it authenticated (password changed,
    /// user disabled or enabled, or deleted). A store failure counts as revoked: sockets
    /// ask this to decide whether to stay open.
    pub fn is_revoked(&self, caller: &Caller) -> bool {
        match self.store.access_state(caller.user.id) {
            Ok(access) => !access.admits(caller.generation),
            Err(error) => {
                tracing::error!(%error, "access state lookup failed");
                true
            }
        }
    }

    /// Runs a store read that can be long (a listing, a count, a walk of the log) on the
    /// blocking pool, so the async workers keep serving requests and sockets meanwhile.
    ///
    /// # Errors
    /// The read's own error; `Closed` when the blocking pool is shutting down.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || read(&store))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Whose events the caller's notifications and activity include.
    pub fn visibility(&self, caller: &Caller) -> Result<Visibility, StoreError> {
        Ok(match caller.owner_scope() {
            None => Visibility::All,
            Some(email) => Visibility::Audience(email.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;
    use uuid::Uuid;

    fn caller(email: &str, role: Role) -> Caller {
        Caller {
            user: User {
                id: Uuid::new_v4(),
                email: email.into(),
                role,
                password_hash: String::new(),
                created_at: Timestamp::from_micros(0),
            },
            expires_at: 0,
            generation: 0,
        }
    }

    fn business(owner_email: &str) -> Business {
        Business {
            id: Uuid::new_v4(),
            name: "Salon".into(),
            subdomain: "salon".into(),
            owner_email: owner_email.into(),
            created_at: Timestamp::from_micros(0),
            updated_at: Timestamp::from_micros(0),
        }
    }

    /// DESIGN invariant 3, the rule itself.
    #[test]
    fn owner_sees_only_their_own_business() {
        let owner = caller("owner@example.com", Role::BusinessOwner);
        assert!(owner.may_see(&business("owner@example.com")));
        assert!(!owner.may_see(&business("other@example.com")));
        assert_eq!(owner.owner_scope(), Some("owner@example.com"));
    }

    #[test]
    fn super_admin_sees_every_business() {
        let admin = caller("admin@example.com", Role::SuperAdmin);
        assert!(admin.may_see(&business("other@example.com")));
        assert!(admin.may_see(&business("admin@example.com")));
        assert_eq!(admin.owner_scope(), None);
    }

    /// DESIGN invariant 3 for events: the owner at commit, not the owner now.
    #[test]
    fn an_owner_receives_the_events_committed_while_they_owned_the_business() {
        let old = caller("old@example.com", Role::BusinessOwner);
        let new = caller("new@example.com", Role::BusinessOwner);
        let admin = caller("admin@example.com", Role::SuperAdmin);
        let before = Audience::owner("old@example.com");
        let the_move = Audience::moved("old@example.com", "new@example.com");
        let after = Audience::owner("new@example.com");
        assert!(old.may_receive(&before) && !new.may_receive(&before));
        assert!(old.may_receive(&the_move) && new.may_receive(&the_move));
        assert!(!old.may_receive(&after) && new.may_receive(&after));
        assert!(admin.may_receive(&Audience::default()));
        assert!(!old.may_receive(&Audience::default()));
        let updated = EventKind::BusinessUpdated;
        assert!(!old.keeps_business_after(updated, &the_move));
        assert!(new.keeps_business_after(updated, &the_move));
        assert!(!new.keeps_business_after(EventKind::BusinessDeleted, &after));
        assert!(admin.keeps_business_after(EventKind::BusinessDeleted, &after));
    }

    #[test]
    fn ownership_compares_the_whole_email_exactly() {
        let owner = caller("owner@example.com", Role::BusinessOwner);
        for (other, why) in [
            ("owner@example.co", "a prefix"),
            ("owner@example.com.evil", "an extension"),
            ("xowner@example.com", "a suffix match"),
            ("", "an empty owner"),
        ] {
            assert!(!owner.may_see(&business(other)), "{why}");
        }
    }
}
