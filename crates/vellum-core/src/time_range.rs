//! Time filters: bounds as clients write them (any RFC 3339 form, up to nanoseconds, any offset)
//! turned into the exact range of stored times they select.
//!
//! Stored times are whole milliseconds from 0000-01-01T00:00:00.000Z ([`Timestamp::MIN`]) to
//! 9999-12-31T23:59:59.999Z ([`Timestamp::MAX`]). A bound is compared with them exactly, never
//! rounded first: `after 12:00:00.0005` selects 12:00:00.001 onwards, `at or after 12:00:00.0005`
//! too, `before 12:00:00.0005` includes 12:00:00.000, and `after 9999-12-31T23:59:59.999Z`
//! selects nothing (rather than being dropped because the next millisecond has no timestamp).
//! A bound outside the years 0000–9999 (in UTC) is not a date-time Vellum reads: callers refuse
//! it, naming the parameter.

use time::OffsetDateTime;

use crate::timestamp::Timestamp;

const NANOS_PER_MILLI: i128 = 1_000_000;

/// An instant as written in a bound, to the nanosecond, in the years 0000–9999 (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(i128);

impl Instant {
    /// Reads a bound in the forms `occurred_at` takes (see [`crate::event::parse_occurred_at`]),
    /// keeping every fractional digit. `None` when it is not such a date-time, or its UTC year
    /// is outside 0000–9999.
    pub fn parse(text: &str) -> Option<Self> {
        crate::event::parse_date_time(text).and_then(Self::from_datetime)
    }

    /// An instant from a `time` value, if its UTC year is within 0000–9999.
    pub fn from_datetime(datetime: OffsetDateTime) -> Option<Self> {
        let nanos = datetime.unix_timestamp_nanos();
        let millis = nanos.div_euclid(NANOS_PER_MILLI);
        (i128::from(Timestamp::MIN.unix_millis())..=i128::from(Timestamp::MAX.unix_millis()))
            .contains(&millis)
            .then_some(Self(nanos))
    }

    /// The instant of a stored timestamp.
    pub fn from_timestamp(stamp: Timestamp) -> Self {
        Self(i128::from(stamp.unix_millis()) * NANOS_PER_MILLI)
    }

    /// The millisecond the instant falls in (rounded toward the past).
    fn floor_millis(self) -> i128 {
        self.0.div_euclid(NANOS_PER_MILLI)
    }

    /// The first whole millisecond at or after the instant.
    fn ceil_millis(self) -> i128 {
        -(-self.0).div_euclid(NANOS_PER_MILLI)
    }
}

/// One bound on the time of what is listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// `>=` (`range_start`, `occurred_at_gte`).
    AtOrAfter(Instant),
    /// `>` (`occurred_at_gt`).
    After(Instant),
    /// `<` (`range_end`, `occurred_at_lt`).
    Before(Instant),
    /// `<=` (`occurred_at_lte`).
    AtOrBefore(Instant),
}

/// The stored times that every bound given admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeRange {
    /// No stored time is admitted.
    Empty,
    /// `start <= t < end`, with `None` for a side that admits every stored time.
    Within {
        /// The first time admitted.
        start: Option<Timestamp>,
        /// The first time past the range.
        end: Option<Timestamp>,
    },
}

impl TimeRange {
    /// The range every bound admits (all of them together; none means every stored time).
    pub fn of(bounds: impl IntoIterator<Item = Bound>) -> Self {
        // Whole milliseconds, half open: [start, end). Wider than i64 so that "the millisecond
        // after the last timestamp" is a value like any other.
        let mut start = i128::from(Timestamp::MIN.unix_millis());
        let mut end = i128::from(Timestamp::MAX.unix_millis()) + 1;
        for bound in bounds {
            match bound {
                Bound::AtOrAfter(instant) => start = start.max(instant.ceil_millis()),
                Bound::After(instant) => start = start.max(instant.floor_millis() + 1),
                Bound::Before(instant) => end = end.min(instant.ceil_millis()),
                Bound::AtOrBefore(instant) => end = end.min(instant.floor_millis() + 1),
            }
        }
        if start >= end {
            return Self::Empty;
        }
        let stamp = |millis: i128| i64::try_from(millis).ok().and_then(Timestamp::from_unix_millis);
        Self::Within {
            start: (start > i128::from(Timestamp::MIN.unix_millis()))
                .then(|| stamp(start))
                .flatten(),
            end: (end <= i128::from(Timestamp::MAX.unix_millis()))
                .then(|| stamp(end))
                .flatten(),
        }
    }

    /// The range as a store filter's `range_start` and `range_end` (`start <= t < end`). The empty
    /// range is `[MAX, MAX)`, which holds no time, so that a listing still checks its other
    /// parameters (cursors) and answers an empty page.
    pub fn filter_bounds(self) -> (Option<Timestamp>, Option<Timestamp>) {
        match self {
            Self::Empty => (Some(Timestamp::MAX), Some(Timestamp::MAX)),
            Self::Within { start, end } => (start, end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Instant {
        Instant::parse(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    fn stamp(text: &str) -> Option<Timestamp> {
        crate::event::parse_occurred_at(text)
    }

    fn within(start: Option<&str>, end: Option<&str>) -> TimeRange {
        TimeRange::Within {
            start: start.and_then(stamp),
            end: end.and_then(stamp),
        }
    }

    #[test]
    fn whole_millisecond_bounds() {
        let t = "2026-01-15T12:00:00.000Z";
        assert_eq!(TimeRange::of([]), within(None, None));
        assert_eq!(TimeRange::of([Bound::AtOrAfter(at(t))]), within(Some(t), None));
        assert_eq!(
            TimeRange::of([Bound::After(at(t))]),
            within(Some("2026-01-15T12:00:00.001Z"), None)
        );
        assert_eq!(TimeRange::of([Bound::Before(at(t))]), within(None, Some(t)));
        assert_eq!(
            TimeRange::of([Bound::AtOrBefore(at(t))]),
            within(None, Some("2026-01-15T12:00:00.001Z"))
        );
        assert_eq!(
            TimeRange::of([Bound::AtOrAfter(at(t)), Bound::AtOrBefore(at(t))]),
            within(Some(t), Some("2026-01-15T12:00:00.001Z"))
        );
        assert_eq!(
            TimeRange::of([Bound::After(at(t)), Bound::Before(at(t))]),
            TimeRange::Empty
        );
    }

    #[test]
    fn sub_millisecond_bounds_are_exact() {
        let t = "2026-01-15T12:00:00.0005Z";
        let next = "2026-01-15T12:00:00.001Z";
        assert_eq!(TimeRange::of([Bound::AtOrAfter(at(t))]), within(Some(next), None));
        assert_eq!(TimeRange::of([Bound::After(at(t))]), within(Some(next), None));
        assert_eq!(TimeRange::of([Bound::Before(at(t))]), within(None, Some(next)));
        assert_eq!(TimeRange::of([Bound::AtOrBefore(at(t))]), within(None, Some(next)));
        // No stored (whole-millisecond) time equals it.
        assert_eq!(
            TimeRange::of([Bound::AtOrAfter(at(t)), Bound::AtOrBefore(at(t))]),
            TimeRange::Empty
        );
        // Before the epoch, rounding goes the right way too.
        assert_eq!(
            TimeRange::of([Bound::AtOrAfter(at("1969-12-31T23:59:59.9995Z"))]),
            within(Some("1970-01-01T00:00:00.000Z"), None)
        );
        assert_eq!(
            TimeRange::of([Bound::After(at("1969-12-31T23:59:59.9995Z"))]),
            within(Some("1970-01-01T00:00:00.000Z"), None)
        );
        // Offsets are applied before comparing.
        assert_eq!(
            TimeRange::of([Bound::AtOrAfter(at("2026-01-15T14:00:00.0005+02:00"))]),
            within(Some(next), None)
        );
    }

    #[test]
    fn bounds_at_the_ends_of_time_are_exact() {
        let last = "9999-12-31T23:59:59.999Z";
        let first = "0000-01-01T00:00:00.000Z";
        assert_eq!(TimeRange::of([Bound::After(at(last))]), TimeRange::Empty);
        assert_eq!(
            TimeRange::of([Bound::After(at("9999-12-31T23:59:59.9985Z"))]),
            within(Some(last), None)
        );
        assert_eq!(
            TimeRange::of([Bound::AtOrAfter(at("9999-12-31T23:59:59.9995Z"))]),
            TimeRange::Empty
        );
        assert_eq!(TimeRange::of([Bound::AtOrBefore(at(last))]), within(None, None));
        assert_eq!(TimeRange::of([Bound::AtOrAfter(at(last))]), within(Some(last), None));
        assert_eq!(TimeRange::of([Bound::Before(at(last))]), within(None, Some(last)));
        assert_eq!(
            TimeRange::of([Bound::Before(at("9999-12-31T23:59:59.9995Z"))]),
            within(None, None)
        );
        assert_eq!(TimeRange::of([Bound::Before(at(first))]), TimeRange::Empty);
        assert_eq!(TimeRange::of([Bound::AtOrAfter(at(first))]), within(None, None));
        assert_eq!(
            TimeRange::of([Bound::AtOrBefore(at(first))]),
            within(None, Some("0000-01-01T00:00:00.001Z"))
        );
        assert_eq!(
            TimeRange::Empty.filter_bounds(),
            (Some(Timestamp::MAX), Some(Timestamp::MAX))
        );
    }

    #[test]
    fn instants_outside_the_four_digit_years_are_not_read() {
        for text in [
            "9999-12-31T23:00:00-02:00",
            "0000-01-01T00:00:00+01:00",
            "10000-01-01T00:00:00Z",
            "+10000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
        ] {
            assert_eq!(Instant::parse(text), None, "{text}");
        }
        assert!(Instant::parse("0000-01-01T00:00:00Z").is_some());
        assert!(Instant::parse("1969-07-20T20:17:40Z").is_some());
        assert!(Instant::parse("9999-12-31T23:59:59.999999999Z").is_some());
    }
}
