//! Rules of listing and searching that every backend applies the same way.

use vellum_core::Timestamp;

/// A cursor resolved to `(occurred_at, seq)`: `true` for "above it" (larger keys), `false` for below.
pub(crate) type Bound = Option<(bool, (i64, i64))>;

/// A time range and a cursor both bound occurred_at. Keeps only the tighter of the two on each
/// side (`None` when the cursor is past the range: nothing else can match): given two lower
/// bounds on one column, a planner seeks the index with either one, and seeking with the
/// range's would rescan every earlier page (quadratic for deep pages).
pub(crate) fn tighten(bound: Bound, range_start: &mut Option<Timestamp>, range_end: &mut Option<Timestamp>) -> Bound {
    let (above, (occurred_at, _)) = bound?;
    if above {
        match range_start {
            Some(start) if start.unix_millis() > occurred_at => return None,
            _ => *range_start = None,
        }
    } else {
        match range_end {
            Some(end) if end.unix_millis() <= occurred_at => return None,
            _ => *range_end = None,
        }
    }
    bound
}

/// `%text%` for `LIKE … escape '\'`, with the pattern characters of `text` escaped.
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    escaped.push('%');
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped.push('%');
    escaped
}

/// Merges the records of a log range read from its events with what purges left of the other
/// positions (both in log order), into one list in log order.
pub(crate) fn merge_purged(events: Vec<crate::LogRecord>, purged: Vec<crate::PurgedPosition>) -> Vec<crate::LogRecord> {
    if purged.is_empty() {
        return events;
    }
    let mut merged = Vec::with_capacity(events.len() + purged.len());
    let mut purged = purged.into_iter().peekable();
    for record in events {
        while let Some(position) = purged.next_if(|position| (position.log_index as i64) < record.log_index) {
            merged.push(purged_record(position));
        }
        merged.push(record);
    }
    merged.extend(purged.map(purged_record));
    merged
}

fn purged_record(position: crate::PurgedPosition) -> crate::LogRecord {
    crate::LogRecord {
        log_index: i64::try_from(position.log_index).unwrap_or(i64::MAX),
        event_id: None,
        event: Err(format!(
            "removed by the purge recorded at position {}",
            position.purged_by
        )),
        stored_leaf: Some(position.leaf),
        purged_by: Some(position.purged_by),
    }
}

/// The entries of a log range as served: its events, and what purges left of the other
/// positions. Unreadable events are left out (the verifier reports the gap).
pub(crate) fn log_entries(records: Vec<crate::LogRecord>) -> Vec<crate::LogEntry> {
    records
        .into_iter()
        .filter_map(|record| match (record.purged_by, record.stored_leaf, record.event) {
            (Some(purged_by), Some(leaf), _) => Some(crate::LogEntry::Purged(crate::PurgedPosition {
                log_index: u64::try_from(record.log_index).ok()?,
                leaf,
                purged_by,
            })),
            (_, _, Ok(event)) => Some(crate::LogEntry::Event(event)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_escape_their_wildcards() {
        assert_eq!(contains_pattern(r"a%b_c\d"), r"%a\%b\_c\\d%");
    }

    #[test]
    fn a_cursor_replaces_the_looser_side_of_a_range() {
        let at = |millis| Timestamp::from_unix_millis(millis);
        let (mut start, mut end) = (at(10), at(100));
        assert_eq!(
            tighten(Some((true, (50, 1))), &mut start, &mut end),
            Some((true, (50, 1)))
        );
        assert_eq!((start, end), (None, at(100)));
        let (mut start, mut end) = (at(10), at(100));
        assert_eq!(
            tighten(Some((false, (5, 1))), &mut start, &mut end),
            Some((false, (5, 1)))
        );
        assert_eq!((start, end), (at(10), None));
        // A cursor past the range leaves the range to say that nothing matches.
        let (mut start, mut end) = (at(60), at(100));
        assert_eq!(tighten(Some((true, (50, 1))), &mut start, &mut end), None);
        assert_eq!((start, end), (at(60), at(100)));
    }
}
