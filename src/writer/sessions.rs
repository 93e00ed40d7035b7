//! The writer's typed methods for sessions and access: logins, refreshes, logouts, pruning,
//! and changes of password or disabled flag (each of which revokes the user's older tokens).

use super::{mismatch, Writer};
use crate::domain::session::TokenHash;
use crate::domain::{AccessState, User};
use crate::store::{
    AccessChange, Applied, Mutation, PruneCandidates, SessionApplied, SessionMutation, StoreError,
    UserRef,
};
use uuid::Uuid;

impl Writer {
    /// Changes a user's password or disabled flag; returns the user and the access state now
    /// in force (its generation raised if anything changed).
    ///
    /// # Errors
    /// `NotFound` for an unknown user; otherwise as [`Writer::submit`].
    pub async fn change_access(
        &self,
        who: UserRef,
        change: AccessChange,
    ) -> Result<(User, AccessState), StoreError> {
        account(self.submit(Mutation::ChangeAccess { who, change }).await?)
    }

    /// [`Writer::change_access`] for callers outside the async runtime (the CLI).
    pub fn change_access_blocking(
        &self,
        who: UserRef,
        change: AccessChange,
    ) -> Result<(User, AccessState), StoreError> {
        account(self.submit_blocking(Mutation::ChangeAccess { who, change })?)
    }

    /// Starts a refresh-token family for a login checked at `generation`.
    ///
    /// # Errors
    /// `NotFound("user")` when the user was deleted, disabled or revoked since; otherwise as
    /// [`Writer::submit`].
    pub async fn start_session(
        &self,
        user_id: Uuid,
        generation: u64,
        token: TokenHash,
        ttl_seconds: u64,
    ) -> Result<(), StoreError> {
        let start = SessionMutation::Start {
            user_id,
            generation,
            token,
            ttl_seconds,
        };
        match self.session(start).await? {
            SessionApplied::Started => Ok(()),
            _ => Err(mismatch("Session::Start")),
        }
    }

    /// Replaces `presented` by `next` if it is its family's current token: `Rotated`,
    /// `Reused` (the family is now revoked) or `Dead`.
    ///
    /// # Errors
    /// As [`Writer::submit`].
    pub async fn rotate_session(
        &self,
        presented: TokenHash,
        next: TokenHash,
        ttl_seconds: u64,
    ) -> Result<SessionApplied, StoreError> {
        let rotate = SessionMutation::Rotate {
            presented,
            next,
            ttl_seconds,
        };
        match self.session(rotate).await? {
            applied @ (SessionApplied::Rotated { .. }
            | SessionApplied::Reused
            | SessionApplied::Dead) => Ok(applied),
            _ => Err(mismatch("Session::Rotate")),
        }
    }

    /// Ends the family of `presented` (logout; an unknown token is already logged out).
    ///
    /// # Errors
    /// As [`Writer::submit`].
    pub async fn end_session(&self, presented: TokenHash) -> Result<(), StoreError> {
        match self.session(SessionMutation::End { presented }).await? {
            SessionApplied::Ended => Ok(()),
            _ => Err(mismatch("Session::End")),
        }
    }

    /// Removes those of `candidates` that are still prunable; returns how many went.
    ///
    /// # Errors
    /// As [`Writer::submit`].
    pub async fn prune_sessions(&self, candidates: PruneCandidates) -> Result<usize, StoreError> {
        let prune = SessionMutation::Prune {
            families: candidates.families,
            tokens: candidates.tokens,
        };
        match self.session(prune).await? {
            SessionApplied::Pruned(removed) => Ok(removed),
            _ => Err(mismatch("Session::Prune")),
        }
    }

    async fn session(&self, mutation: SessionMutation) -> Result<SessionApplied, StoreError> {
        match self.submit(Mutation::Session(mutation)).await? {
            Applied::Session(applied) => Ok(applied),
            _ => Err(mismatch("Session")),
        }
    }
}

fn account(applied: Applied) -> Result<(User, AccessState), StoreError> {
    match applied {
        Applied::Account { user, access } => Ok((user, access)),
        _ => Err(mismatch("ChangeAccess")),
    }
}

/// How often expired and revoked refresh records are pruned.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);
/// Records pruned per mutation, so one sweep never makes a huge transaction.
const SWEEP_CHUNK: usize = 1000;

/// Prunes expired and revoked refresh records at start and then every hour, until
/// `shutdown`. The store lists candidates (a transaction cannot scan); the writer removes
/// those still prunable, so a refresh racing the sweep is never lost.
pub async fn sweep_sessions(
    store: crate::store::Store,
    writer: Writer,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        loop {
            let now = crate::domain::Timestamp::now();
            let candidates = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.prune_candidates(now, SWEEP_CHUNK)).await
            };
            let candidates = match candidates {
                Ok(Ok(candidates)) if !candidates.is_empty() => candidates,
                Ok(Ok(_)) => break,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "listing expired sessions failed");
                    break;
                }
                Err(_) => break,
            };
            let full =
                candidates.families.len() >= SWEEP_CHUNK || candidates.tokens.len() >= SWEEP_CHUNK;
            match writer.prune_sessions(candidates).await {
                Ok(0) => break,
                Ok(removed) => tracing::debug!(removed, "pruned expired sessions"),
                Err(error) => {
                    tracing::warn!(%error, "pruning expired sessions failed");
                    break;
                }
            }
            if !full {
                break;
            }
        }
    }
}
