//! User mutations: creating a user (a change of password or access is in `sessions`).

use super::tx::{abort, TxResult};
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
}
