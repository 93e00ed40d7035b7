//! `Event`: one entry of the event log, the unit the bus publishes and sockets receive.
//!
//! The frame a socket receives is rendered once, when the event is written, and stored with
//! it: replay from the store and live delivery send the very same bytes.
//!
//! Each event also carries its [`Audience`]: the owner(s) of its business when it was
//! committed. Who may receive an event is decided from that alone, on every path (live,
//! replay, catch-up, REST lists), never from who owns the business later (DESIGN invariant 3).

use super::{Business, Reservation, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened. Wire names are the seed's message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    BusinessCreated,
    BusinessUpdated,
    BusinessDeleted,
    ReservationCreated,
    ReservationCancelled,
}

impl EventKind {
    /// Every kind, for validating `?type=` filters.
    pub const ALL: [EventKind; 5] = [
        EventKind::BusinessCreated,
        EventKind::BusinessUpdated,
        EventKind::BusinessDeleted,
        EventKind::ReservationCreated,
        EventKind::ReservationCancelled,
    ];

    /// The wire name (`business_created`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::BusinessCreated => "business_created",
            EventKind::BusinessUpdated => "business_updated",
            EventKind::BusinessDeleted => "business_deleted",
            EventKind::ReservationCreated => "reservation_created",
            EventKind::ReservationCancelled => "reservation_cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// An event frame as API.md shows it (`id`, `type`, `payload`, `timestamp`).
#[derive(Serialize)]
struct Frame<P> {
    id: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    payload: P,
    timestamp: Timestamp,
}

/// The payload of a business event.
#[derive(Serialize)]
struct BusinessPayload<'a> {
    business: &'a Business,
    message: &'a str,
}

/// The payload of a reservation event: the reservation, its business's id, a sentence.
#[derive(Serialize)]
struct ReservationPayload<'a> {
    reservation: &'a Reservation,
    business_id: Uuid,
    message: &'a str,
}

/// The owners who may receive an event, fixed when it is committed: the owner of its business
/// then — for a `business_updated` that moves the business, the former owner first and the
/// new one last; for a `business_deleted`, the owner at deletion. Super admins receive every
/// event whatever it says. An empty audience (an event from before audiences were stored,
/// whose business is gone) is for super admins only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Audience(Vec<String>);

impl Audience {
    /// An audience of one owner.
    pub fn owner(email: &str) -> Self {
        Self(vec![email.to_string()])
    }

    /// The audience of a business moved from `former` to `owner` (either order of equal
    /// emails gives one entry); the current owner stays last.
    pub fn moved(former: &str, owner: &str) -> Self {
        if former == owner {
            Self::owner(owner)
        } else {
            Self(vec![former.to_string(), owner.to_string()])
        }
    }

    /// Whether `email` is in it (exact comparison of the whole, lower-cased email).
    pub fn includes(&self, email: &str) -> bool {
        self.0.iter().any(|member| member == email)
    }

    /// The owner emails in it (super admins receive every event whatever it says).
    pub fn emails(&self) -> &[String] {
        &self.0
    }

    /// The owner of the business once the event is committed, if the event leaves it one.
    pub fn owner_after(&self, kind: EventKind) -> Option<&str> {
        match kind {
            EventKind::BusinessDeleted => None,
            _ => self.0.last().map(String::as_str),
        }
    }
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Consecutive across the server, in commit order (DESIGN invariant 2).
    pub id: u64,
    pub kind: EventKind,
    /// The business the event concerns; every event has one today, and channel filtering
    /// (DESIGN invariant 3) keys on it.
    pub business_id: Uuid,
    pub timestamp: Timestamp,
    /// The JSON text frame sent to sockets, rendered once at write time.
    pub frame: String,
    /// Who may receive it (last field: `EventHead` reads the first ones of the stored form).
    pub audience: Audience,
}

impl Event {
    /// An event about a business (created, updated, deleted), for its owner. A
    /// `business_updated` that moves the business adds the former owner with
    /// [`Event::moved_from`].
    pub fn for_business(id: u64, kind: EventKind, business: &Business, now: Timestamp) -> Self {
        let message = match kind {
            EventKind::BusinessCreated => format!("New business '{}' created", business.name),
            EventKind::BusinessDeleted => format!("Business '{}' deleted", business.name),
            _ => format!("Business '{}' updated", business.name),
        };
        let payload = BusinessPayload {
            business,
            message: &message,
        };
        Self::render(id, kind, business, payload, now)
    }

    /// The same event, for `former` (the owner before this change) too.
    pub fn moved_from(mut self, former: &str) -> Self {
        if let Some(owner) = self.audience.owner_after(self.kind).map(str::to_string) {
            self.audience = Audience::moved(former, &owner);
        }
        self
    }

    /// An event about a reservation (created, cancelled) at `business`.
    pub fn for_reservation(
        id: u64,
        kind: EventKind,
        business: &Business,
        reservation: &Reservation,
        now: Timestamp,
    ) -> Self {
        let message = match kind {
            EventKind::ReservationCancelled => format!(
                "Reservation of {} at '{}' cancelled",
                reservation.customer_name, business.name
            ),
            _ => format!(
                "New reservation by {} at '{}'",
                reservation.customer_name, business.name
            ),
        };
        let payload = ReservationPayload {
            reservation,
            business_id: business.id,
            message: &message,
        };
        Self::render(id, kind, business, payload, now)
    }

    /// Renders the frame straight from typed parts: the writer renders one per event, and a
    /// `serde_json::Value` on the way cost a map and a copy of every field.
    fn render(
        id: u64,
        kind: EventKind,
        business: &Business,
        payload: impl Serialize,
        now: Timestamp,
    ) -> Self {
        let frame = serde_json::to_string(&Frame {
            id,
            kind: kind.as_str(),
            payload,
            timestamp: now,
        })
        .expect("frames of plain records always serialize");
        Self {
            id,
            kind,
            business_id: business.id,
            timestamp: now,
            frame,
            audience: Audience::owner(&business.owner_email),
        }
    }

    /// The frame parsed back to JSON, for REST responses that embed events.
    pub fn frame_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.frame).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_has_the_seed_shape() {
        let now = Timestamp::parse_rfc3339("2026-02-14T18:30:00Z").unwrap();
        let business = Business {
            id: Uuid::nil(),
            name: "New Salon".into(),
            subdomain: "newsalon".into(),
            owner_email: "o@example.com".into(),
            created_at: now,
            updated_at: now,
        };
        let event = Event::for_business(42, EventKind::BusinessCreated, &business, now);
        let frame = event.frame_json();
        assert_eq!(frame["id"], 42);
        assert_eq!(frame["type"], "business_created");
        assert_eq!(frame["timestamp"], "2026-02-14T18:30:00Z");
        assert_eq!(frame["payload"]["business"]["subdomain"], "newsalon");
        assert_eq!(
            frame["payload"]["message"],
            "New business 'New Salon' created"
        );
    }

    #[test]
    fn reservation_frames_carry_the_reservation_and_the_business_id() {
        let now = Timestamp::parse_rfc3339("2026-02-14T18:30:00.250Z").unwrap();
        let business = Business {
            id: Uuid::from_u128(7),
            name: "Salon \"Quote\"".into(),
            subdomain: "salon".into(),
            owner_email: "o@example.com".into(),
            created_at: now,
            updated_at: now,
        };
        let reservation = Reservation {
            id: Uuid::from_u128(8),
            business_id: business.id,
            customer_name: "Ann".into(),
            customer_email: "ann@example.com".into(),
            starts_at: now,
            service: "Cut".into(),
            status: crate::domain::ReservationStatus::Cancelled,
            created_at: now,
        };
        let event = Event::for_reservation(
            9,
            EventKind::ReservationCancelled,
            &business,
            &reservation,
            now,
        );
        let frame = event.frame_json();
        assert_eq!(frame["id"], 9);
        assert_eq!(frame["type"], "reservation_cancelled");
        assert_eq!(frame["timestamp"], "2026-02-14T18:30:00.250Z");
        assert_eq!(frame["payload"]["business_id"], business.id.to_string());
        assert_eq!(frame["payload"]["reservation"]["status"], "cancelled");
        assert_eq!(frame["payload"]["reservation"]["customer_name"], "Ann");
        assert_eq!(
            frame["payload"]["message"],
            "Reservation of Ann at 'Salon \"Quote\"' cancelled"
        );
        assert_eq!(frame["payload"].as_object().unwrap().len(), 3);
        assert_eq!(frame.as_object().unwrap().len(), 4);
    }

    #[test]
    fn invariant_3_an_event_is_for_the_owner_at_commit_and_a_move_names_both() {
        let now = Timestamp::from_micros(0);
        let business = Business {
            id: Uuid::nil(),
            name: "S".into(),
            subdomain: "s".into(),
            owner_email: "new@example.com".into(),
            created_at: now,
            updated_at: now,
        };
        let created = Event::for_business(1, EventKind::BusinessCreated, &business, now);
        assert!(created.audience.includes("new@example.com"));
        assert!(!created.audience.includes("old@example.com"));
        let moved = Event::for_business(2, EventKind::BusinessUpdated, &business, now)
            .moved_from("old@example.com");
        assert!(moved.audience.includes("old@example.com"));
        assert_eq!(
            moved.audience.owner_after(moved.kind),
            Some("new@example.com")
        );
        let deleted = Event::for_business(3, EventKind::BusinessDeleted, &business, now);
        assert!(deleted.audience.includes("new@example.com"));
        assert_eq!(deleted.audience.owner_after(deleted.kind), None);
        assert!(!Audience::default().includes(""));
    }

    #[test]
    fn kinds_round_trip_through_their_wire_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("nope"), None);
    }
}
