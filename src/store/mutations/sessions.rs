//! Session mutations: starting a refresh-token family at login, rotating it, ending it
//! (logout, or reuse detected), pruning what expired, and changing a user's access (password,
//! disabled), which raises the user's token generation and so revokes every older token.
//!
//! The decision about a presented refresh token is `domain::session::check_refresh`; this
//! file only reads what it needs and writes what it decided. None of these append an event:
//! sessions are not business activity, and a socket learns of a revocation through the bus's
//! per-user notices instead (sent by the caller once the change is durable).

use super::tx::{abort, tx_decode, TxResult};
use super::Applied;
use crate::domain::session::{
    check_refresh, AccessState, RefreshCheck, RefreshFamily, RefreshToken, TokenHash,
};
use crate::domain::{Timestamp, User};
use crate::store::trees::Tx;
use crate::store::{codec, StoreError};
use uuid::Uuid;

/// A change to sessions, as the writer receives it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum SessionMutation {
    /// A login: a new family whose first token is `token`, for a user still at `generation`
    /// (refused with `NotFound("user")` if the user changed since the password was checked).
    Start {
        user_id: Uuid,
        generation: u64,
        token: TokenHash,
        ttl_seconds: u64,
    },
    /// `POST /api/auth/refresh/`: `presented` is replaced by `next` if it is current.
    Rotate {
        presented: TokenHash,
        next: TokenHash,
        ttl_seconds: u64,
    },
    /// `POST /api/auth/logout/`: the family of `presented` ends.
    End { presented: TokenHash },
    /// Removes those of these records that have expired or were revoked (the sweeper lists
    /// candidates outside the transaction, which cannot scan; each is checked again here).
    Prune {
        families: Vec<Uuid>,
        tokens: Vec<TokenHash>,
    },
}

/// What a session mutation produced.
#[derive(Debug, Clone)]
pub enum SessionApplied {
    Started,
    /// The family rotated: issue an access token for `user` at `generation`.
    Rotated {
        user: User,
        generation: u64,
    },
    /// The token had been used already: its family is revoked.
    Reused,
    /// Unknown, expired, or revoked: nothing changed.
    Dead,
    /// Logged out (also when the token was unknown: logout is idempotent).
    Ended,
    /// How many records a prune removed.
    Pruned(usize),
}

/// Whom a change of access names: REST routes know the id, the CLI the email.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum UserRef {
    Id(Uuid),
    Email(String),
}

/// A change of a user's access; each raises the generation when it changes anything.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum AccessChange {
    /// A new argon2 hash.
    Password(String),
    Disabled(bool),
}

impl Tx<'_> {
    /// The user's access state (the default when none was ever stored).
    pub(super) fn access_state(&self, user_id: Uuid) -> TxResult<AccessState> {
        match self.user_access.get(user_id.as_bytes())? {
            Some(bytes) => tx_decode("user_access", &bytes),
            None => Ok(AccessState::default()),
        }
    }

    /// Applies a session mutation; `family` and `now` were chosen before the transaction.
    pub(super) fn session(
        &self,
        mutation: &SessionMutation,
        family: Uuid,
        now: Timestamp,
    ) -> TxResult<(Applied, Option<u64>)> {
        let applied = match mutation {
            SessionMutation::Start {
                user_id,
                generation,
                token,
                ttl_seconds,
            } => {
                let known = self.users.get(user_id.as_bytes())?.is_some();
                if !known || !self.access_state(*user_id)?.admits(*generation) {
                    return abort(StoreError::NotFound("user"));
                }
                let expires_at = expiry(now, *ttl_seconds);
                self.put_token(token, family, expires_at)?;
                self.put_family(
                    family,
                    &RefreshFamily {
                        user_id: *user_id,
                        generation: *generation,
                        current: *token,
                        expires_at,
                    },
                )?;
                SessionApplied::Started
            }
            SessionMutation::Rotate {
                presented,
                next,
                ttl_seconds,
            } => self.rotate(presented, next, *ttl_seconds, now)?,
            SessionMutation::End { presented } => {
                if let Some(token) = self.token(presented)? {
                    self.refresh_families.remove(token.family.as_bytes())?;
                }
                self.refresh_tokens.remove(presented.as_slice())?;
                SessionApplied::Ended
            }
            SessionMutation::Prune { families, tokens } => self.prune(families, tokens, now)?,
        };
        Ok((Applied::Session(applied), None))
    }

    fn rotate(
        &self,
        presented: &TokenHash,
        next: &TokenHash,
        ttl_seconds: u64,
        now: Timestamp,
    ) -> TxResult<SessionApplied> {
        let token = self.token(presented)?;
        let family_id = token.map(|token| token.family);
        let family = match family_id {
            Some(id) => self.family(id)?,
            None => None,
        };
        let user = match &family {
            Some(family) => self.user_record(family.user_id)?,
            None => None,
        };
        let access = match &user {
            Some(user) => Some(self.access_state(user.id)?),
            None => None,
        };
        let check = check_refresh(
            presented,
            token.as_ref(),
            family.as_ref(),
            access.as_ref(),
            now,
        );
        let (Some(family_id), Some(mut family), Some(user)) = (family_id, family, user) else {
            return Ok(SessionApplied::Dead);
        };
        Ok(match check {
            RefreshCheck::Dead => SessionApplied::Dead,
            RefreshCheck::Reused => {
                self.refresh_families.remove(family_id.as_bytes())?;
                SessionApplied::Reused
            }
            RefreshCheck::Rotate => {
                // The old token's record stays until its expiry: presenting it again is a reuse.
                family.current = *next;
                family.expires_at = expiry(now, ttl_seconds);
                self.put_token(next, family_id, family.expires_at)?;
                self.put_family(family_id, &family)?;
                SessionApplied::Rotated {
                    user,
                    generation: family.generation,
                }
            }
        })
    }

    fn prune(
        &self,
        families: &[Uuid],
        tokens: &[TokenHash],
        now: Timestamp,
    ) -> TxResult<SessionApplied> {
        let mut removed = 0;
        for id in families {
            let Some(family) = self.family(*id)? else {
                continue;
            };
            let access = match self.user_record(family.user_id)? {
                Some(user) => Some(self.access_state(user.id)?),
                None => None,
            };
            let revoked = !access.is_some_and(|access| access.admits(family.generation));
            if family.expires_at <= now || revoked {
                self.refresh_families.remove(id.as_bytes())?;
                removed += 1;
            }
        }
        for hash in tokens {
            if self
                .token(hash)?
                .is_some_and(|token| token.expires_at <= now)
            {
                self.refresh_tokens.remove(hash.as_slice())?;
                removed += 1;
            }
        }
        Ok(SessionApplied::Pruned(removed))
    }

    /// Changes a user's password or disabled flag, raising the generation when anything
    /// changed (a password always does): every older access and refresh token dies with it.
    pub(super) fn change_access(
        &self,
        who: &UserRef,
        change: &AccessChange,
    ) -> TxResult<(Applied, Option<u64>)> {
        let id = match who {
            UserRef::Id(id) => *id,
            UserRef::Email(email) => match self.user_emails.get(email.as_bytes())? {
                Some(bytes) => match Uuid::from_slice(&bytes) {
                    Ok(id) => id,
                    Err(_) => return abort(StoreError::NotFound("user")),
                },
                None => return abort(StoreError::NotFound("user")),
            },
        };
        let Some(mut user) = self.user_record(id)? else {
            return abort(StoreError::NotFound("user"));
        };
        let mut access = self.access_state(id)?;
        let changed = match change {
            AccessChange::Password(hash) => {
                user.password_hash.clone_from(hash);
                self.users.insert(id.as_bytes(), codec::encode(&user))?;
                true
            }
            AccessChange::Disabled(disabled) => {
                let changed = access.disabled != *disabled;
                access.disabled = *disabled;
                changed
            }
        };
        if changed {
            access.generation += 1;
            self.user_access
                .insert(id.as_bytes(), codec::encode(&access))?;
        }
        Ok((Applied::Account { user, access }, None))
    }

    fn user_record(&self, id: Uuid) -> TxResult<Option<User>> {
        match self.users.get(id.as_bytes())? {
            Some(bytes) => tx_decode("users", &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn token(&self, hash: &TokenHash) -> TxResult<Option<RefreshToken>> {
        match self.refresh_tokens.get(hash.as_slice())? {
            Some(bytes) => tx_decode("refresh_tokens", &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn family(&self, id: Uuid) -> TxResult<Option<RefreshFamily>> {
        match self.refresh_families.get(id.as_bytes())? {
            Some(bytes) => tx_decode("refresh_families", &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn put_token(&self, hash: &TokenHash, family: Uuid, expires_at: Timestamp) -> TxResult<()> {
        let record = RefreshToken { family, expires_at };
        self.refresh_tokens
            .insert(hash.as_slice(), codec::encode(&record))?;
        Ok(())
    }

    fn put_family(&self, id: Uuid, family: &RefreshFamily) -> TxResult<()> {
        self.refresh_families
            .insert(id.as_bytes(), codec::encode(family))?;
        Ok(())
    }
}

/// `now` plus a lifetime in seconds (saturating: `--refresh-ttl` is bounded, but be safe).
fn expiry(now: Timestamp, ttl_seconds: u64) -> Timestamp {
    let micros = i64::try_from(ttl_seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000);
    now.plus_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::session::new_refresh_token;
    use crate::domain::NewUser;
    use crate::domain::Role;
    use crate::store::fixtures::store;
    use crate::store::{MailStamp, Mutation, Store};

    fn apply(store: &Store, mutation: Mutation) -> Result<Applied, StoreError> {
        let stamp = MailStamp {
            epoch: "e".into(),
            domain: "example.com".into(),
            reminder_micros: 0,
        };
        store.apply(&mutation, &stamp).map(|(applied, _)| applied)
    }

    fn user(store: &Store) -> User {
        let new = NewUser {
            email: "u@example.com".into(),
            password_hash: "h".into(),
            role: Role::BusinessOwner,
        };
        match apply(store, Mutation::CreateUser(new)).unwrap() {
            Applied::User(user) => user,
            other => panic!("{other:?}"),
        }
    }

    fn session(store: &Store, mutation: SessionMutation) -> SessionApplied {
        match apply(store, Mutation::Session(mutation)).unwrap() {
            Applied::Session(applied) => applied,
            other => panic!("{other:?}"),
        }
    }

    fn rotate(store: &Store, presented: TokenHash) -> (SessionApplied, TokenHash) {
        let (_, next) = new_refresh_token();
        let applied = session(
            store,
            SessionMutation::Rotate {
                presented,
                next,
                ttl_seconds: 60,
            },
        );
        (applied, next)
    }

    fn login(store: &Store, user: &User, generation: u64) -> TokenHash {
        let (_, token) = new_refresh_token();
        let start = SessionMutation::Start {
            user_id: user.id,
            generation,
            token,
            ttl_seconds: 60,
        };
        assert!(matches!(session(store, start), SessionApplied::Started));
        token
    }

    #[test]
    fn a_family_rotates_and_a_reused_token_revokes_it_whole() {
        let (_dir, store) = store();
        let user = user(&store);
        let first = login(&store, &user, 0);
        let (applied, second) = rotate(&store, first);
        assert!(matches!(
            applied,
            SessionApplied::Rotated { generation: 0, .. }
        ));
        let (applied, third) = rotate(&store, second);
        assert!(matches!(applied, SessionApplied::Rotated { .. }));
        // The first token again: someone holds a copy, so the family ends…
        assert!(matches!(rotate(&store, first).0, SessionApplied::Reused));
        // …including the newest token, which its holder thought was good.
        assert!(matches!(rotate(&store, third).0, SessionApplied::Dead));
        // Another login of the same user is a family of its own.
        let other = login(&store, &user, 0);
        assert!(matches!(
            rotate(&store, other).0,
            SessionApplied::Rotated { .. }
        ));
    }

    #[test]
    fn logout_ends_the_family_and_a_password_change_ends_every_family() {
        let (_dir, store) = store();
        let user = user(&store);
        let a = login(&store, &user, 0);
        let b = login(&store, &user, 0);
        session(&store, SessionMutation::End { presented: a });
        assert!(matches!(rotate(&store, a).0, SessionApplied::Dead));
        let change = Mutation::ChangeAccess {
            who: UserRef::Email(user.email.clone()),
            change: AccessChange::Password("new".into()),
        };
        let Applied::Account { access, .. } = apply(&store, change).unwrap() else {
            panic!("not an account");
        };
        assert_eq!(access.generation, 1);
        assert!(matches!(rotate(&store, b).0, SessionApplied::Dead));
        // A login checked against the old generation is refused.
        let (_, token) = new_refresh_token();
        let stale = SessionMutation::Start {
            user_id: user.id,
            generation: 0,
            token,
            ttl_seconds: 60,
        };
        assert!(matches!(
            apply(&store, Mutation::Session(stale)),
            Err(StoreError::NotFound("user"))
        ));
        // Pruning removes the revoked family.
        let Ok(Applied::Session(SessionApplied::Pruned(n))) = apply(
            &store,
            Mutation::Session(SessionMutation::Prune {
                families: store
                    .prune_candidates(Timestamp::now(), 100)
                    .unwrap()
                    .families,
                tokens: Vec::new(),
            }),
        ) else {
            panic!("prune failed");
        };
        assert_eq!(n, 1);
    }

    #[test]
    fn disabling_twice_raises_the_generation_once() {
        let (_dir, store) = store();
        let user = user(&store);
        let disable = Mutation::ChangeAccess {
            who: UserRef::Id(user.id),
            change: AccessChange::Disabled(true),
        };
        for _ in 0..2 {
            let Applied::Account { access, .. } = apply(&store, disable.clone()).unwrap() else {
                panic!("not an account");
            };
            assert_eq!(
                access,
                AccessState {
                    generation: 1,
                    disabled: true
                }
            );
        }
        assert_eq!(store.access_state(user.id).unwrap().generation, 1);
    }
}
