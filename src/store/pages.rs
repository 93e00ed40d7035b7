//! Reads for an owner's day: the activity log paged back through the retained events, and a
//! business's upcoming reservations by start time.
//!
//! Both scan what they list rather than an index: the retained log is bounded by
//! `--event-retention`, and one business's reservations by what it was booked. A business
//! with very many reservations would want a start-time index (a tree and a migration).

use super::keys::{u64_key, uuid_u64_key, uuid_u64_suffix};
use super::{decode, Page, Store, StoreError, Visibility};
use crate::domain::{Event, EventKind, Reservation, ReservationStatus, Timestamp};
use uuid::Uuid;

/// One page of the activity log paged back.
#[derive(Debug, Clone)]
pub struct ActivityPage {
    pub items: Vec<Event>,
    /// Pass as `before` for the next (older) page; `None` when nothing older is in view.
    pub next_before: Option<u64>,
}

/// A position in the upcoming listing: reservations after it (by start, then booking order)
/// come next. Written `u<start micros>_<seq>`, so neither listing takes the other's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UpcomingCursor {
    starts_at: i64,
    seq: u64,
}

impl UpcomingCursor {
    /// Parses a cursor handed out by a previous upcoming page; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let (starts_at, seq) = text.strip_prefix('u')?.split_once('_')?;
        let cursor = Self {
            starts_at: starts_at.parse().ok()?,
            seq: seq.parse().ok()?,
        };
        (cursor.render() == text).then_some(cursor)
    }

    fn render(self) -> String {
        format!("u{}_{}", self.starts_at, self.seq)
    }
}

impl Store {
    /// Retained events older than `before` (every retained one when `None`) and up to `up_to`
    /// (the published watermark), that `visibility` allows and of `kind` if given, newest
    /// first, at most `limit`.
    pub fn activity_before(
        &self,
        visibility: &Visibility,
        kind: Option<EventKind>,
        before: Option<u64>,
        up_to: u64,
        limit: usize,
    ) -> Result<ActivityPage, StoreError> {
        let oldest = self.oldest_event_id()?;
        let newest = before.map_or(up_to, |before| before.saturating_sub(1).min(up_to));
        let mut items = Vec::new();
        let mut next_before = None;
        if oldest > newest {
            return Ok(ActivityPage { items, next_before });
        }
        for entry in self
            .trees
            .events
            .range(u64_key(oldest)..=u64_key(newest))
            .rev()
        {
            let (_, value) = entry?;
            let event: Event = decode("events", &value)?;
            if !visibility.allows(&event) || kind.is_some_and(|k| k != event.kind) {
                continue;
            }
            if items.len() == limit {
                // One more in view: the page is not the last.
                next_before = items.last().map(|last: &Event| last.id);
                break;
            }
            items.push(event);
        }
        Ok(ActivityPage { items, next_before })
    }

    /// Where the activity log's window of the newest 50 starts, when older events are still
    /// retained: the `next_before` of the unpaged answer.
    pub fn activity_window_start(&self) -> Result<Option<u64>, StoreError> {
        let newest = self.next_event_id()? - 1;
        let from = newest.saturating_sub(super::ACTIVITY_LIMIT) + 1;
        Ok((from > self.oldest_event_id()?).then_some(from))
    }

    /// The business's `confirmed` reservations starting at `now` or later, soonest first
    /// (booking order among equal starts), after `cursor`, at most `limit`; `count` is how
    /// many there are in all.
    pub fn upcoming_reservations(
        &self,
        business_id: Uuid,
        now: Timestamp,
        limit: usize,
        cursor: Option<UpcomingCursor>,
    ) -> Result<Page<Reservation>, StoreError> {
        let range = uuid_u64_key(business_id, 0)..=uuid_u64_key(business_id, u64::MAX);
        let mut upcoming = Vec::new();
        for entry in self.trees.reservations.range(range) {
            let (key, value) = entry?;
            let reservation: Reservation = decode("reservations", &value)?;
            if reservation.status != ReservationStatus::Confirmed || reservation.starts_at < now {
                continue;
            }
            let position = UpcomingCursor {
                starts_at: reservation.starts_at.as_micros(),
                seq: uuid_u64_suffix(&key).unwrap_or(0),
            };
            upcoming.push((position, reservation));
        }
        upcoming.sort_unstable_by_key(|(position, _)| *position);
        let count = upcoming.len() as u64;
        let mut rest = upcoming
            .into_iter()
            .filter(|(position, _)| cursor.is_none_or(|cursor| *position > cursor));
        let mut items = Vec::with_capacity(limit.min(512));
        let mut last = None;
        for (position, reservation) in rest.by_ref().take(limit) {
            last = Some(position);
            items.push(reservation);
        }
        let more = rest.next().is_some();
        Ok(Page {
            items,
            count,
            next_cursor: last.filter(|_| more).map(UpcomingCursor::render),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upcoming_cursor_is_only_its_own_format() {
        let cursor = UpcomingCursor {
            starts_at: 1_900_000_000_000_000,
            seq: 42,
        };
        assert_eq!(UpcomingCursor::parse(&cursor.render()), Some(cursor));
        for other in ["42", "", "u", "u1", "u1_", "u_1", "u01_2", "u1_2x", "x1_2"] {
            assert_eq!(UpcomingCursor::parse(other), None, "{other:?}");
        }
        assert_eq!(super::super::PageCursor::parse(&cursor.render()), None);
    }
}
