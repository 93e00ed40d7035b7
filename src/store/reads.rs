//! Typed reads: users, businesses, reservations, the event log, activity and notifications.
//!
//! Listings are newest first and paged by an opaque cursor (the sequence number of the last
//! item shown), so a page is stable while new items arrive at the front.

use super::keys::{
    email_prefix, email_u64_key, read_u64, read_uuid, u64_key, uuid_u64_key, uuid_u64_suffix,
};
use super::mutations::BusinessRecord;
use super::{decode, meta_keys, Store, StoreError, ACTIVITY_LIMIT};
use crate::domain::{Business, Event, EventKind, Reservation, User};
use uuid::Uuid;

/// Index entries (key, value) in the order a listing reads them.
type Entries<'a> = Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + 'a>;

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// How many items the whole listing has.
    pub count: u64,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A position in a listing: items strictly older than it come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor(u64);

impl PageCursor {
    /// Parses a cursor handed out by a previous page; `None` when it is not one of ours.
    pub fn parse(text: &str) -> Option<Self> {
        let n: u64 = text.parse().ok()?;
        (n > 0 && n.to_string() == text).then_some(Self(n))
    }

    fn render(seq: u64) -> String {
        seq.to_string()
    }
}

/// Whose events a read may include (DESIGN invariant 3).
#[derive(Debug, Clone)]
pub enum Visibility {
    /// Every event (super admin, dashboard channel).
    All,
    /// Only these businesses' events (one business channel; who of its followers may
    /// receive each event is the session's check).
    Businesses(Vec<Uuid>),
    /// Only the events whose audience includes this owner email: what an owner receives
    /// (the rule of `Caller::may_receive`, DESIGN invariant 3).
    Audience(String),
}

impl Visibility {
    /// Whether `event` is in view.
    pub(super) fn allows(&self, event: &Event) -> bool {
        match self {
            Visibility::All => true,
            Visibility::Businesses(ids) => ids.contains(&event.business_id),
            Visibility::Audience(email) => event.audience.includes(email),
        }
    }
}

impl Store {
    /// The user with this id (through the user cache: every authenticated call asks).
    pub fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let generation = match self.user_cache.get(id) {
            Ok(user) => return Ok(Some(user)),
            Err(generation) => generation,
        };
        match self.trees.users.get(id.as_bytes())? {
            Some(bytes) => {
                let user: User = decode("users", &bytes)?;
                self.user_cache.fill(generation, &user);
                Ok(Some(user))
            }
            None => Ok(None),
        }
    }

    /// The user with this (lower-cased) email.
    pub fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        match self.trees.user_emails.get(email.as_bytes())? {
            Some(id) => match read_uuid(&id) {
                Some(id) => self.user(id),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// How many users exist.
    pub fn user_count(&self) -> usize {
        self.trees.users.len()
    }

    /// Every user, ordered by email.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut users = Vec::new();
        for entry in self.trees.user_emails.iter() {
            let (_, id) = entry?;
            if let Some(user) = read_uuid(&id)
                .map(|id| self.user(id))
                .transpose()?
                .flatten()
            {
                users.push(user);
            }
        }
        Ok(users)
    }

    /// The business with this id.
    pub fn business(&self, id: Uuid) -> Result<Option<Business>, StoreError> {
        Ok(self.business_record(id)?.map(|record| record.business))
    }

    /// A business whose deletion is under way (`closings`) is not found: its delete was
    /// answered, the rest of it is the writer's background work.
    fn business_record(&self, id: Uuid) -> Result<Option<BusinessRecord>, StoreError> {
        if self.trees.closings.contains_key(id.as_bytes())? {
            return Ok(None);
        }
        match self.trees.businesses.get(id.as_bytes())? {
            Some(bytes) => decode("businesses", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The business with this subdomain.
    pub fn business_by_subdomain(&self, subdomain: &str) -> Result<Option<Business>, StoreError> {
        match self.trees.subdomains.get(subdomain.as_bytes())? {
            Some(id) => match read_uuid(&id) {
                Some(id) => self.business(id),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// How many businesses exist.
    pub fn business_count(&self) -> Result<u64, StoreError> {
        self.meta_counter(meta_keys::BUSINESS_COUNT)
    }

    /// How many reservations exist (confirmed and cancelled).
    pub fn reservation_count(&self) -> Result<u64, StoreError> {
        self.meta_counter(meta_keys::RESERVATION_COUNT)
    }

    /// Ids of the businesses owned by `email`, newest first.
    pub fn owned_business_ids(&self, email: &str) -> Result<Vec<Uuid>, StoreError> {
        let mut ids = Vec::new();
        for entry in self
            .trees
            .owner_index
            .scan_prefix(email_prefix(email))
            .rev()
        {
            let (_, id) = entry?;
            ids.extend(read_uuid(&id));
        }
        Ok(ids)
    }

    /// Businesses newest first: all of them, or those owned by `owner`.
    pub fn list_businesses(
        &self,
        owner: Option<&str>,
        limit: usize,
        cursor: Option<PageCursor>,
    ) -> Result<Page<Business>, StoreError> {
        let before = cursor.map_or(u64::MAX, |c| c.0);
        let (entries, count): (Entries<'_>, u64) = match owner {
            // Businesses being deleted are counted until their last step; they are few.
            None => (
                Box::new(self.trees.business_order.range(..u64_key(before)).rev()),
                self.business_count()?
                    .saturating_sub(self.trees.closings.len() as u64),
            ),
            Some(email) => {
                let prefix = email_prefix(email);
                let mut count = 0u64;
                for entry in self.trees.owner_index.scan_prefix(&prefix) {
                    let (_, id) = entry?;
                    count += u64::from(!self.trees.closings.contains_key(&id)?);
                }
                (
                    Box::new(
                        self.trees
                            .owner_index
                            .range(prefix..email_u64_key(email, before))
                            .rev(),
                    ),
                    count,
                )
            }
        };
        let mut items = Vec::with_capacity(limit.min(512));
        let mut last_seq = None;
        let mut more = false;
        for entry in entries {
            let (_, id) = entry?;
            let Some(record) = read_uuid(&id)
                .map(|id| self.business_record(id))
                .transpose()?
                .flatten()
            else {
                continue;
            };
            if items.len() == limit {
                more = true;
                break;
            }
            last_seq = Some(record.seq);
            items.push(record.business);
        }
        Ok(Page {
            items,
            count,
            next_cursor: if more {
                last_seq.map(PageCursor::render)
            } else {
                None
            },
        })
    }

    /// Reservations of one business, newest first.
    pub fn list_reservations(
        &self,
        business_id: Uuid,
        limit: usize,
        cursor: Option<PageCursor>,
    ) -> Result<Page<Reservation>, StoreError> {
        let before = cursor.map_or(u64::MAX, |c| c.0);
        let count = match self.trees.reservation_counts.get(business_id.as_bytes())? {
            Some(bytes) => decode("reservation_counts", &bytes)?,
            None => 0,
        };
        let range = uuid_u64_key(business_id, 0)..uuid_u64_key(business_id, before);
        let mut items = Vec::with_capacity(limit.min(512));
        let mut last_seq = None;
        let mut more = false;
        for entry in self.trees.reservations.range(range).rev() {
            let (key, value) = entry?;
            if items.len() == limit {
                more = true;
                break;
            }
            last_seq = uuid_u64_suffix(&key);
            items.push(decode("reservations", &value)?);
        }
        Ok(Page {
            items,
            count,
            next_cursor: if more {
                last_seq.map(PageCursor::render)
            } else {
                None
            },
        })
    }

    /// The oldest event id still retained for resume (the next id when the log is empty).
    ///
    /// The `events` tree may hold more than the retention (it keeps at least the activity
    /// log's 50), so this is the newer of its first key and the retention bound. The bound is
    /// read after the tree, and both only move forward: read after a scan, it is never older
    /// than what the scan found missing.
    pub fn oldest_event_id(&self) -> Result<u64, StoreError> {
        let first = self
            .trees
            .events
            .first()?
            .map(|(key, _)| read_u64(&key).unwrap_or(0));
        let next = self.next_event_id()?;
        Ok(first
            .unwrap_or(next)
            .max(next.saturating_sub(self.retention)))
    }

    /// The event with this id, if still retained.
    pub fn event(&self, id: u64) -> Result<Option<Event>, StoreError> {
        match self.trees.events.get(u64_key(id))? {
            Some(bytes) => decode("events", &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// One step of a replay (a resuming or lagging socket): the events with
    /// `after < id <= up_to` that `visibility` allows, oldest first, at most `limit` of them —
    /// or `None` when any event after `after` has already left the retention window, so the
    /// caller resyncs instead of handing out a replay with a gap (DESIGN invariant 2).
    ///
    /// # Errors
    /// The log cannot be read.
    pub fn replay_after(
        &self,
        visibility: &Visibility,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Option<Vec<Event>>, StoreError> {
        let events = self.events_between(visibility, after, up_to, limit)?;
        // Checked after the read, because the writer prunes while we read: the log is always
        // one contiguous run of ids and pruning only takes its oldest, so if `after + 1` is
        // still retained now, nothing the read wanted was missing when it ran.
        if self.oldest_event_id()? > after + 1 {
            return Ok(None);
        }
        Ok(Some(events))
    }

    /// Retained events with `after < id <= up_to` that `visibility` allows, oldest first,
    /// at most `limit` of them; silently short when pruning got there first.
    fn events_between(
        &self,
        visibility: &Visibility,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let mut events = Vec::new();
        if after >= up_to {
            return Ok(events);
        }
        match visibility {
            Visibility::All | Visibility::Audience(_) => {
                for entry in self.trees.events.range(u64_key(after + 1)..=u64_key(up_to)) {
                    if events.len() == limit {
                        break;
                    }
                    let (_, value) = entry?;
                    let event: Event = decode("events", &value)?;
                    if visibility.allows(&event) {
                        events.push(event);
                    }
                }
            }
            Visibility::Businesses(ids) => {
                let mut event_ids = Vec::new();
                for business_id in ids {
                    let range =
                        uuid_u64_key(*business_id, after + 1)..=uuid_u64_key(*business_id, up_to);
                    for entry in self.trees.business_events.range(range) {
                        let (key, _) = entry?;
                        event_ids.extend(uuid_u64_suffix(&key));
                    }
                }
                event_ids.sort_unstable();
                for id in event_ids.into_iter().take(limit) {
                    events.extend(self.event(id)?);
                }
            }
        }
        Ok(events)
    }

    /// The activity log — the newest 50 events written — newest first, optionally of one kind
    /// only, limited to what `visibility` allows and to events up to `up_to` (the durable
    /// watermark). The `events` tree always holds at least those 50.
    pub fn activity(
        &self,
        visibility: &Visibility,
        kind: Option<EventKind>,
        up_to: u64,
    ) -> Result<Vec<Event>, StoreError> {
        let newest = self.next_event_id()? - 1;
        let from = newest.saturating_sub(ACTIVITY_LIMIT) + 1;
        let mut items = Vec::new();
        if from > up_to {
            return Ok(items);
        }
        for entry in self
            .trees
            .events
            .range(u64_key(from)..=u64_key(up_to))
            .rev()
        {
            let (_, value) = entry?;
            let event: Event = decode("events", &value)?;
            if visibility.allows(&event) && kind.is_none_or(|k| k == event.kind) {
                items.push(event);
            }
        }
        Ok(items)
    }

    /// The newest `limit` retained events `visibility` allows, up to `up_to`, newest first,
    /// and how many of the retained ones are newer than `read_up_to`.
    pub fn notifications(
        &self,
        visibility: &Visibility,
        read_up_to: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<(u64, Vec<Event>), StoreError> {
        // Only what is retained for resume: the log may hold a few more for the activity log.
        let oldest = self.oldest_event_id()?;
        match visibility {
            Visibility::All => {
                let unread_from = (read_up_to + 1).max(oldest);
                let unread = (up_to + 1).saturating_sub(unread_from);
                let mut items = Vec::new();
                if oldest > up_to {
                    return Ok((unread, items));
                }
                let retained = u64_key(oldest)..=u64_key(up_to);
                for entry in self.trees.events.range(retained).rev().take(limit) {
                    let (_, value) = entry?;
                    items.push(decode("events", &value)?);
                }
                Ok((unread, items))
            }
            Visibility::Audience(_) => {
                // The audience is in each event, so this reads the retained window (bounded
                // by `--event-retention`) rather than an index.
                let mut unread = 0;
                let mut items = Vec::new();
                if oldest > up_to {
                    return Ok((unread, items));
                }
                for entry in self
                    .trees
                    .events
                    .range(u64_key(oldest)..=u64_key(up_to))
                    .rev()
                {
                    let (_, value) = entry?;
                    let event: Event = decode("events", &value)?;
                    if !visibility.allows(&event) {
                        continue;
                    }
                    let is_unread = event.id > read_up_to;
                    if !is_unread && items.len() == limit {
                        break;
                    }
                    unread += u64::from(is_unread);
                    if items.len() < limit {
                        items.push(event);
                    }
                }
                Ok((unread, items))
            }
            Visibility::Businesses(ids) => {
                let mut unread = 0;
                let mut event_ids = Vec::new();
                let unread_from = (read_up_to + 1).max(oldest);
                for business_id in ids {
                    if unread_from <= up_to {
                        let range = uuid_u64_key(*business_id, unread_from)
                            ..=uuid_u64_key(*business_id, up_to);
                        unread += self.trees.business_events.range(range).count() as u64;
                    }
                    if oldest > up_to {
                        continue;
                    }
                    let all =
                        uuid_u64_key(*business_id, oldest)..=uuid_u64_key(*business_id, up_to);
                    for entry in self.trees.business_events.range(all).rev().take(limit) {
                        let (key, _) = entry?;
                        event_ids.extend(uuid_u64_suffix(&key));
                    }
                }
                event_ids.sort_unstable_by(|a, b| b.cmp(a));
                let mut items = Vec::new();
                for id in event_ids.into_iter().take(limit) {
                    items.extend(self.event(id)?);
                }
                Ok((unread, items))
            }
        }
    }

    /// The user's read position (the newest event id they have marked read).
    pub fn read_up_to(&self, user_id: Uuid) -> Result<u64, StoreError> {
        Ok(self
            .trees
            .receipts
            .get(user_id.as_bytes())?
            .and_then(|bytes| read_u64(&bytes))
            .unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;
    use crate::store::codec;

    fn business(name: &str) -> Business {
        let now = Timestamp::now();
        Business {
            id: Uuid::new_v4(),
            name: name.into(),
            subdomain: name.into(),
            owner_email: "owner@example.com".into(),
            created_at: now,
            updated_at: now,
        }
    }

    /// A store whose log holds `ids`, alternating between two businesses (as if the
    /// ones before were pruned).
    fn store_with_log(ids: std::ops::RangeInclusive<u64>) -> (tempfile::TempDir, Store, [Uuid; 2]) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), 1 << 20, 100).unwrap();
        let owners = [business("a"), business("b")];
        for id in ids {
            let owner = &owners[(id % 2) as usize];
            let event =
                Event::for_business(id, EventKind::BusinessUpdated, owner, Timestamp::now());
            store
                .trees
                .events
                .insert(u64_key(id), codec::encode(&event))
                .unwrap();
            store
                .trees
                .business_events
                .insert(uuid_u64_key(owner.id, id), &[])
                .unwrap();
        }
        (dir, store, [owners[0].id, owners[1].id])
    }

    fn ids(events: Option<Vec<Event>>) -> Option<Vec<u64>> {
        events.map(|events| events.iter().map(|e| e.id).collect())
    }

    #[test]
    fn a_replay_is_whole_or_refused() {
        let (_dir, store, [even, _]) = store_with_log(4..=8);
        let all = Visibility::All;
        let replay = |visibility: &Visibility, after| {
            ids(store.replay_after(visibility, after, 8, 100).unwrap())
        };
        assert_eq!(
            replay(&all, 3),
            Some(vec![4, 5, 6, 7, 8]),
            "everything after 3 is kept"
        );
        assert_eq!(replay(&all, 2), None, "3 is gone");
        assert_eq!(replay(&all, 8), Some(vec![]), "nothing missed");
        let one = Visibility::Businesses(vec![even]);
        assert_eq!(replay(&one, 3), Some(vec![4, 6, 8]));
        assert_eq!(
            replay(&one, 2),
            None,
            "3 was another business's, but it is gone"
        );
        // The writer prunes 4 while a socket that has seen 3 replays.
        store.trees.events.remove(u64_key(4)).unwrap();
        assert_eq!(replay(&all, 3), None);
        assert_eq!(replay(&one, 3), None);
        assert_eq!(replay(&all, 4), Some(vec![5, 6, 7, 8]));
    }
}
