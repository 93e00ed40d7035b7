//! `Timestamp`: an instant in UTC with microsecond precision.
//!
//! On the wire (JSON) it is an RFC 3339 string with a `Z` suffix; in the store (bincode) it is a
//! plain integer, so records stay small and ordering is cheap. Serde's `is_human_readable`
//! tells the two apart.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Wraps a count of microseconds since the Unix epoch.
    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub fn as_unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// This instant plus `micros` microseconds (saturating).
    pub fn plus_micros(self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }

    fn from_datetime(dt: OffsetDateTime) -> Self {
        let nanos = dt.unix_timestamp_nanos();
        Self((nanos / 1_000) as i64)
    }

    /// Parses an RFC 3339 string with any offset; the result is normalised to UTC.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let dt = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        // Reject years outside 0001–9999 so every stored time formats back to RFC 3339.
        if !(1..=9999).contains(&dt.year()) {
            return None;
        }
        Some(Self::from_datetime(dt))
    }

    /// RFC 3339 in UTC with a `Z` suffix; fractions only when the instant has them.
    pub fn to_rfc3339(self) -> String {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        // Digits pushed by hand: every event frame and record on the wire formats a few of
        // these, and `format!` twice per call showed in the writer's profile.
        let mut text = String::with_capacity(27);
        let digits = |text: &mut String, value: u32, width: u32| {
            for place in (0..width).rev() {
                let digit = (value / 10u32.pow(place)) % 10;
                text.push(char::from(b'0' + digit as u8));
            }
        };
        // Stored times are years 0001–9999 (`parse_rfc3339` and the clock make no others).
        digits(&mut text, dt.year().clamp(0, 9999) as u32, 4);
        let rest = [
            (b'-', u32::from(u8::from(dt.month()))),
            (b'-', u32::from(dt.day())),
            (b'T', u32::from(dt.hour())),
            (b':', u32::from(dt.minute())),
            (b':', u32::from(dt.second())),
        ];
        for (separator, value) in rest {
            text.push(char::from(separator));
            digits(&mut text, value, 2);
        }
        let micros = dt.microsecond();
        if micros % 1_000_000 != 0 {
            text.push('.');
            if micros % 1_000 == 0 {
                digits(&mut text, micros / 1_000, 3);
            } else {
                digits(&mut text, micros, 6);
            }
        }
        text.push('Z');
        text
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_rfc3339())
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Self::parse_rfc3339(&text)
                .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 time"))
        } else {
            i64::deserialize(deserializer).map(Self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_z_suffix() {
        let t = Timestamp::parse_rfc3339("2026-02-14T20:30:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-02-14T18:30:00Z");
        let t = Timestamp::parse_rfc3339("2026-02-14T18:30:00.250Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-02-14T18:30:00.250Z");
    }

    #[test]
    fn formats_every_precision_and_the_ends_of_the_range() {
        let cases = [
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
            ("2026-02-14T18:30:00.000001Z", "2026-02-14T18:30:00.000001Z"),
            ("2026-02-14T18:30:00.120Z", "2026-02-14T18:30:00.120Z"),
            ("2026-02-14T18:30:00.1234Z", "2026-02-14T18:30:00.123400Z"),
            ("1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.500Z"),
        ];
        for (input, shown) in cases {
            let t = Timestamp::parse_rfc3339(input).unwrap();
            assert_eq!(t.to_rfc3339(), shown, "{input}");
            assert_eq!(Timestamp::parse_rfc3339(shown), Some(t), "{input}");
        }
    }

    #[test]
    fn rejects_garbage_and_out_of_range_years() {
        assert!(Timestamp::parse_rfc3339("tomorrow").is_none());
        assert!(Timestamp::parse_rfc3339("2026-02-30T10:00:00Z").is_none());
        assert!(Timestamp::parse_rfc3339("2026-02-14 18:30:00").is_none());
    }

    #[test]
    fn json_is_an_rfc3339_string() {
        let t = Timestamp::from_micros(1_700_000_000_000_000);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2023-11-14T22:13:20Z\""
        );
        let back: Timestamp = serde_json::from_str("\"2023-11-14T22:13:20Z\"").unwrap();
        assert_eq!(back, t);
    }
}
