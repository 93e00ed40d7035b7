//! User mutations: creating a user and replacing a password (`app user password`).

use super::tx::{abort, tx_decode, TxResult};
use super::Applied;
use crate::domain::User;
use crate::store::keys::u64_key;
use crate::store::trees::Tx;
use crate::store::{codec, StoreError};

impl Tx<'_> {
    /// Stores `user`, refusing an email already taken.
    pub(super) fn create_user(&self, user: &User) -> TxResult<(Applied, Option<u64>)> {
        if self.user_emails.get(user.email.as_bytes())?.is_some() {
            return abort(StoreError::Conflict {
                field: Some("email"),
                message: "a user with this email already exists".into(),
            });
        }
        self.users.insert(user.id.as_bytes(), codec::encode(user))?;
        self.user_emails
            .insert(user.email.as_bytes(), user.id.as_bytes())?;
        // A new user starts with nothing unread: history before them is not news.
        let seen = self.newest_event_id()?;
        self.receipts.insert(user.id.as_bytes(), &u64_key(seen))?;
        Ok((Applied::User(user.clone()), None))
    }

    /// Replaces the password hash of the user with `email`.
    pub(super) fn set_password(
        &self,
        email: &str,
        password_hash: &str,
    ) -> TxResult<(Applied, Option<u64>)> {
        let Some(id) = self.user_emails.get(email.as_bytes())? else {
            return abort(StoreError::NotFound("user"));
        };
        let Some(bytes) = self.users.get(&id)? else {
            return abort(StoreError::NotFound("user"));
        };
        let mut user: User = tx_decode("users", &bytes)?;
        user.password_hash = password_hash.to_string();
        self.users.insert(&id, codec::encode(&user))?;
        Ok((Applied::User(user), None))
    }
}
