//! Timestamps: UTC instants with millisecond precision, rendered exactly as WorkOS does
//! (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
//!
//! Milliseconds are the precision of the WorkOS wire format and of every stored timestamp. The
//! Python SDK parses with `datetime.fromisoformat`, which on Python 3.10 only accepts 3 or 6
//! fractional digits, so the output form is fixed and never varies with the value.

use std::fmt;

use time::OffsetDateTime;
use time::macros::format_description;

/// A UTC instant with millisecond precision, stored as milliseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// The earliest instant that renders as a four-digit year (0000-01-01T00:00:00.000Z).
const MIN_MILLIS: i64 = -62_167_219_200_000;
/// The latest instant that renders as a four-digit year (9999-12-31T23:59:59.999Z).
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    /// The earliest timestamp: 0000-01-01T00:00:00.000Z.
    pub const MIN: Self = Self(MIN_MILLIS);
    /// The latest timestamp: 9999-12-31T23:59:59.999Z.
    pub const MAX: Self = Self(MAX_MILLIS);

    /// Builds a timestamp from milliseconds since the Unix epoch, if it renders as a
    /// four-digit year.
    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        (MIN_MILLIS..=MAX_MILLIS).contains(&millis).then_some(Self(millis))
    }

    /// Truncates an instant to milliseconds and normalises it to UTC.
    pub fn from_datetime(datetime: OffsetDateTime) -> Option<Self> {
        let millis = datetime.unix_timestamp_nanos().div_euclid(1_000_000);
        i64::try_from(millis).ok().and_then(Self::from_unix_millis)
    }

    /// Returns milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Returns the instant as a `time` value in UTC.
    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .expect("a timestamp is always within the representable range")
    }

    /// Renders the WorkOS wire form, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn to_wire(self) -> String {
        let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
        self.to_datetime()
            .format(&format)
            .expect("a four-digit-year UTC timestamp always formats")
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.to_wire())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, formatter)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn renders_exactly_three_fractional_digits_and_z() {
        let stamp = Timestamp::from_unix_millis(1_660_000_000_000).unwrap();
        assert_eq!(stamp.to_wire(), "2022-08-08T23:06:40.000Z");
        let stamp = Timestamp::from_unix_millis(1_660_000_000_007).unwrap();
        assert_eq!(stamp.to_wire(), "2022-08-08T23:06:40.007Z");
    }

    #[test]
    fn normalises_offsets_and_truncates_to_milliseconds() {
        let stamp = Timestamp::from_datetime(datetime!(2022-08-29 21:47:52.336999 +02:00)).unwrap();
        assert_eq!(stamp.to_wire(), "2022-08-29T19:47:52.336Z");
    }

    #[test]
    fn truncates_toward_the_past_before_the_epoch() {
        let stamp = Timestamp::from_datetime(datetime!(1969-12-31 23:59:59.9999 UTC)).unwrap();
        assert_eq!(stamp.to_wire(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn refuses_years_that_do_not_fit_four_digits() {
        assert!(Timestamp::from_unix_millis(MAX_MILLIS).is_some());
        assert!(Timestamp::from_unix_millis(MAX_MILLIS + 1).is_none());
        assert!(Timestamp::from_unix_millis(MIN_MILLIS - 1).is_none());
        assert_eq!(
            Timestamp::from_unix_millis(MIN_MILLIS).unwrap().to_wire(),
            "0000-01-01T00:00:00.000Z"
        );
    }
}
