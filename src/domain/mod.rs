//! The things the product is about: users, businesses, reservations, events, outbox mails.
//!
//! These types are shared by the store (encoded with the codec) and the API (rendered as
//! JSON). Validation of client input lives in [`validate`]: a value of a `New*`/`*Patch` type
//! has passed it.

mod event;
mod outbox;
mod push;
pub mod session;
mod time;
pub mod validate;

pub use event::{Audience, Event, EventKind};
pub use outbox::{MailKind, OutboxMail, OutboxStatus};
pub use push::{OutboxPush, PushSubscription, MAX_SUBSCRIPTIONS_PER_USER};
pub use session::AccessState;
pub use time::Timestamp;
pub use validate::{Email, Password, Subdomain, UserDraft};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a user may do. Wire names are the seed's: `super_admin`, `business_owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and does everything.
    SuperAdmin,
    /// Sees only the businesses whose `owner_email` is theirs.
    BusinessOwner,
}

impl Role {
    /// The wire name of the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::BusinessOwner => "business_owner",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "super_admin" => Some(Role::SuperAdmin),
            "business_owner" => Some(Role::BusinessOwner),
            _ => None,
        }
    }
}

/// A stored user. `password_hash` is a PHC string (argon2id) and never leaves the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    /// Lower-cased, so ownership and login compare exactly.
    pub email: String,
    pub role: Role,
    pub password_hash: String,
    pub created_at: Timestamp,
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub created_at: Timestamp,
    /// A disabled user cannot log in (API.md "Sessions that last").
    pub disabled: bool,
}

impl UserView {
    /// The user with its access state (whether it is disabled lives beside the record).
    pub fn new(user: &User, access: AccessState) -> Self {
        Self {
            disabled: access.disabled,
            ..Self::from(user)
        }
    }
}

/// For a user known to be enabled: just created, or the caller of an authenticated request.
impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            role: user.role,
            created_at: user.created_at,
            disabled: false,
        }
    }
}

/// A salon on the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Business {
    pub id: Uuid,
    pub name: String,
    pub subdomain: String,
    pub owner_email: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Whether a reservation still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Confirmed,
    Cancelled,
}

/// A customer's booking at a business.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: Uuid,
    pub business_id: Uuid,
    pub customer_name: String,
    pub customer_email: String,
    pub starts_at: Timestamp,
    pub service: String,
    pub status: ReservationStatus,
    pub created_at: Timestamp,
}

/// A validated request to create a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewUser {
    pub email: String,
    pub password_hash: String,
    pub role: Role,
}

/// A validated request to create a business.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewBusiness {
    pub name: String,
    pub subdomain: String,
    pub owner_email: String,
}

/// A validated partial update of a business (absent fields stay as they are).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BusinessPatch {
    pub name: Option<String>,
    pub owner_email: Option<String>,
}

/// A validated booking.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewReservation {
    pub customer_name: String,
    pub customer_email: String,
    pub starts_at: Timestamp,
    pub service: String,
}
