//! The words of every mail: one [`Content`] per [`MailKind`], rendered twice — as plain text
//! and as HTML — from the outbox row's snapshot of the business and reservation.
//!
//! Everything a user typed (business and customer names, services, addresses) is escaped in
//! the HTML part, so a business named `<script>…` shows up as text in the inbox, never as
//! markup; control characters are dropped from the subject so it stays one header line.

use super::MailError;
use crate::domain::{Business, MailKind, OutboxMail, Reservation, Timestamp};
use std::fmt::Write;
use time::macros::format_description;
use time::OffsetDateTime;

/// A mail ready to be put in a MIME message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line of UTF-8 (encoded by lettre as RFC 2047 when needed).
    pub subject: String,
    /// The `text/plain` part.
    pub text: String,
    /// The `text/html` part (a whole document, user text escaped).
    pub html: String,
}

/// What a mail says, before it is rendered as text or HTML. All strings are raw user text.
struct Content {
    subject: String,
    greeting: String,
    lead: String,
    details: Vec<(&'static str, String)>,
    closing: &'static str,
}

/// Renders `row` as subject, text and HTML.
///
/// # Errors
/// [`MailError::Permanent`] when a reservation mail has no reservation (a damaged row: it
/// will not render better next time).
pub fn render(row: &OutboxMail) -> Result<Rendered, MailError> {
    let content = content(row)?;
    Ok(Rendered {
        subject: one_line(&content.subject),
        text: text(&content),
        html: html(&content),
    })
}

/// The content of each kind of mail.
fn content(row: &OutboxMail) -> Result<Content, MailError> {
    Ok(match row.kind {
        MailKind::Welcome => welcome(&row.business),
        MailKind::Handover => handover(&row.business),
        MailKind::ReservationConfirmation => confirmation(&Booking::of(row)?),
        MailKind::ReservationNotice => notice(&Booking::of(row)?),
        MailKind::CancellationNotice => cancellation(&Booking::of(row)?),
        MailKind::Reminder => reminder(&Booking::of(row)?),
        MailKind::BusinessClosed => closed(&Booking::of(row)?),
    })
}

/// To the owner, on `business_created`.
fn welcome(business: &Business) -> Content {
    let name = &business.name;
    Content {
        subject: format!("Welcome! {name} is ready for bookings"),
        greeting: "Hello,".into(),
        lead: format!(
            "your business \u{201c}{name}\u{201d} is now on the platform. Its reservations \
             appear on your dashboard as they arrive, and we email you about each one."
        ),
        details: business_details(business),
        closing: "Happy booking!",
    }
}

/// To the new owner, when a business is reassigned to them: the welcome's words for a
/// business that already takes bookings.
fn handover(business: &Business) -> Content {
    let name = &business.name;
    Content {
        subject: format!("Welcome! {name} is now yours"),
        greeting: "Hello,".into(),
        lead: format!(
            "the business \u{201c}{name}\u{201d} has been handed over to you. From now on its \
             reservations appear on your dashboard as they arrive, and we email you about each one."
        ),
        details: business_details(business),
        closing: "Happy booking!",
    }
}

/// What the welcome mails list about the business.
fn business_details(business: &Business) -> Vec<(&'static str, String)> {
    vec![
        ("Business", business.name.clone()),
        ("Subdomain", business.subdomain.clone()),
        ("Owner", business.owner_email.clone()),
    ]
}

/// To the customer, on `reservation_created`.
fn confirmation(booking: &Booking<'_>) -> Content {
    let Booking {
        business, customer, ..
    } = booking;
    Content {
        subject: format!("Your reservation at {business} is confirmed"),
        greeting: format!("Hello {customer},"),
        lead: format!("your reservation at {business} is confirmed. See you there!"),
        details: booking.details(),
        closing: "To change or cancel it, contact the business.",
    }
}

/// To the owner, on `reservation_created`.
fn notice(booking: &Booking<'_>) -> Content {
    let Booking {
        business,
        customer,
        when,
        ..
    } = booking;
    Content {
        subject: format!("New reservation at {business}: {customer}, {when}"),
        greeting: "Hello,".into(),
        lead: format!("{customer} just booked at {business}."),
        details: booking.details(),
        closing: "It is on your dashboard too.",
    }
}

/// To the customer, on `reservation_cancelled`.
fn cancellation(booking: &Booking<'_>) -> Content {
    let Booking {
        business, customer, ..
    } = booking;
    Content {
        subject: format!("Your reservation at {business} was cancelled"),
        greeting: format!("Hello {customer},"),
        lead: format!("your reservation at {business} was cancelled."),
        details: booking.details(),
        closing: "We hope to see you another time.",
    }
}

/// To the customer, `--reminder-hours` before the appointment.
fn reminder(booking: &Booking<'_>) -> Content {
    let Booking {
        business,
        customer,
        when,
        ..
    } = booking;
    Content {
        subject: format!("Reminder: your reservation at {business}, {when}"),
        greeting: format!("Hello {customer},"),
        lead: format!("a reminder that you have a reservation at {business} on {when}."),
        details: booking.details(),
        closing: "To change or cancel it, contact the business. See you soon!",
    }
}

/// To the customer, when deleting the business cancelled their future reservation.
fn closed(booking: &Booking<'_>) -> Content {
    let Booking {
        business,
        customer,
        when,
        ..
    } = booking;
    Content {
        subject: format!("{business} has closed: your reservation on {when} is cancelled"),
        greeting: format!("Hello {customer},"),
        lead: format!(
            "we are sorry: {business} has closed and no longer takes bookings on this \
             platform, so your reservation on {when} is cancelled. Please do not go there \
             for it."
        ),
        details: booking.details(),
        closing: "We hope to see you at another business soon.",
    }
}

/// The facts a reservation mail is made of.
struct Booking<'a> {
    business: &'a str,
    customer: &'a str,
    when: String,
    reservation: &'a Reservation,
}

impl<'a> Booking<'a> {
    /// The booking a reservation mail is about.
    fn of(row: &'a OutboxMail) -> Result<Self, MailError> {
        let reservation = row.reservation.as_ref().ok_or_else(|| {
            MailError::Permanent(format!("mail {} has no reservation to describe", row.id))
        })?;
        Ok(Self {
            business: &row.business.name,
            customer: &reservation.customer_name,
            when: format_time(reservation.starts_at),
            reservation,
        })
    }

    /// The table of a reservation mail.
    fn details(&self) -> Vec<(&'static str, String)> {
        vec![
            ("Business", self.business.to_string()),
            ("Customer", self.customer.to_string()),
            ("Email", self.reservation.customer_email.clone()),
            ("Service", self.reservation.service.clone()),
            ("When", self.when.clone()),
            ("Reference", self.reservation.id.to_string()),
        ]
    }
}

/// The `text/plain` part.
fn text(content: &Content) -> String {
    let mut out = format!("{}\n\n{}\n\n", content.greeting, content.lead);
    let width = content
        .details
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    for (label, value) in &content.details {
        let _ = writeln!(out, "{label:>width$}: {value}");
    }
    let _ = write!(out, "\n{}\n", content.closing);
    out
}

/// The `text/html` part: every piece of content is escaped.
fn html(content: &Content) -> String {
    let mut rows = String::new();
    for (label, value) in &content.details {
        let _ = write!(
            rows,
            "<tr><th align=\"left\" style=\"padding:2px 12px 2px 0\">{}</th><td>{}</td></tr>",
            escape_html(label),
            escape_html(value)
        );
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;line-height:1.4\">\
         <p>{greeting}</p><p>{lead}</p><table>{rows}</table><p>{closing}</p>\
         </body></html>\n",
        title = escape_html(&content.subject),
        greeting = escape_html(&content.greeting),
        lead = escape_html(&content.lead),
        closing = escape_html(content.closing),
    )
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + raw.len() / 8);
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Collapses control characters (CR, LF, tabs…) to spaces: a header is one line.
fn one_line(raw: &str) -> String {
    raw.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `Sunday, 1 June 2031 at 10:00 UTC`.
fn format_time(at: Timestamp) -> String {
    let format = format_description!(
        "[weekday], [day padding:none] [month repr:long] [year] at [hour]:[minute] UTC"
    );
    OffsetDateTime::from_unix_timestamp(at.as_unix_seconds())
        .ok()
        .and_then(|dt| dt.format(&format).ok())
        .unwrap_or_else(|| at.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OutboxStatus, ReservationStatus};
    use uuid::Uuid;

    const HOSTILE: &str = "<script>alert('x')</script> & \"Co\"";

    fn row(kind: MailKind, name: &str, customer: &str) -> OutboxMail {
        let now = Timestamp::now();
        let business = Business {
            id: Uuid::new_v4(),
            name: name.into(),
            subdomain: "salon".into(),
            owner_email: "owner@example.com".into(),
            created_at: now,
            updated_at: now,
        };
        let reservation = Reservation {
            id: Uuid::new_v4(),
            business_id: business.id,
            customer_name: customer.into(),
            customer_email: "ann@example.com".into(),
            starts_at: Timestamp::parse_rfc3339("2031-06-01T10:00:00Z").unwrap(),
            service: "Cut <b>& colour</b>".into(),
            status: ReservationStatus::Confirmed,
            created_at: now,
        };
        OutboxMail {
            id: 1,
            message_id: "<outbox-1.e@localhost>".into(),
            kind,
            to: "ann@example.com".into(),
            event_id: 1,
            business,
            reservation: (!matches!(kind, MailKind::Welcome | MailKind::Handover))
                .then_some(reservation),
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            sent_at: None,
        }
    }

    const KINDS: [MailKind; 7] = [
        MailKind::Welcome,
        MailKind::ReservationConfirmation,
        MailKind::ReservationNotice,
        MailKind::CancellationNotice,
        MailKind::Handover,
        MailKind::Reminder,
        MailKind::BusinessClosed,
    ];

    #[test]
    fn escapes_every_html_special_character() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape_html("Salon ✂ Ünïcode"), "Salon ✂ Ünïcode");
    }

    #[test]
    fn hostile_names_never_reach_the_html_as_markup() {
        for kind in KINDS {
            let rendered = render(&row(kind, HOSTILE, HOSTILE)).unwrap();
            let html = &rendered.html;
            assert!(!html.contains("<script"), "{kind:?}: {html}");
            assert!(!html.contains("<b>"), "{kind:?}: {html}");
            assert!(html
                .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Co&quot;"));
            // The plain text part shows the name exactly as typed.
            assert!(rendered.text.contains(HOSTILE), "{kind:?}");
            assert!(rendered.subject.contains("<script>"), "{kind:?}");
        }
    }

    #[test]
    fn each_kind_says_what_happened() {
        let cases = [
            (
                MailKind::Welcome,
                "Welcome! Salon ✂ is ready for bookings",
                "Subdomain: salon",
            ),
            (
                MailKind::ReservationConfirmation,
                "Your reservation at Salon ✂ is confirmed",
                "Hello Ann,",
            ),
            (
                MailKind::ReservationNotice,
                "New reservation at Salon ✂: Ann, Sunday, 1 June 2031 at 10:00 UTC",
                "Ann just booked at Salon ✂.",
            ),
            (
                MailKind::CancellationNotice,
                "Your reservation at Salon ✂ was cancelled",
                "was cancelled.",
            ),
            (
                MailKind::Handover,
                "Welcome! Salon ✂ is now yours",
                "has been handed over to you",
            ),
            (
                MailKind::Reminder,
                "Reminder: your reservation at Salon ✂, Sunday, 1 June 2031 at 10:00 UTC",
                "a reminder that you have a reservation at Salon ✂ on Sunday, 1 June 2031",
            ),
            (
                MailKind::BusinessClosed,
                "Salon ✂ has closed: your reservation on Sunday, 1 June 2031 at 10:00 UTC is \
                 cancelled",
                "Salon ✂ has closed",
            ),
        ];
        for (kind, subject, phrase) in cases {
            let rendered = render(&row(kind, "Salon ✂", "Ann")).unwrap();
            assert_eq!(rendered.subject, subject);
            assert!(
                rendered.text.contains(phrase),
                "{kind:?}: {}",
                rendered.text
            );
            assert!(rendered.html.starts_with("<!DOCTYPE html>"));
        }
    }

    #[test]
    fn subjects_stay_on_one_line() {
        let rendered = render(&row(MailKind::Welcome, "Evil\r\nBcc: x@y", "Ann")).unwrap();
        assert!(!rendered.subject.contains(['\r', '\n']));
    }

    #[test]
    fn a_reservation_mail_without_its_reservation_fails_for_good() {
        let mut broken = row(MailKind::ReservationNotice, "Salon", "Ann");
        broken.reservation = None;
        assert!(matches!(render(&broken), Err(MailError::Permanent(_))));
    }

    #[test]
    fn times_read_like_a_person_wrote_them() {
        let at = Timestamp::parse_rfc3339("2031-06-01T10:05:00Z").unwrap();
        assert_eq!(format_time(at), "Sunday, 1 June 2031 at 10:05 UTC");
    }
}
