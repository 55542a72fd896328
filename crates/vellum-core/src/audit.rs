//! Verifying a log from its entries: the checks `vellum verify` runs, on an embedded store or
//! over HTTP, trusting nothing but the entries' content and a pinned public key.
//!
//! Entries are fed in log order. Each entry's leaf is recomputed from its canonical bytes; the
//! recomputed leaves are folded into a root that must equal the root of the signed checkpoint at
//! its size. The first problem found is reported with the position and event it concerns.

use std::fmt;

use std::collections::BTreeMap;

use crate::checkpoint::Checkpoint;
use crate::log_record::{ErasureRecord, PositionsDigest, PurgeRecord};
use crate::merkle::{Frontier, Hash, leaf_hash};

/// The first thing found wrong with a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The log position concerned, if one.
    pub position: Option<u64>,
    /// The event concerned, if known.
    pub event_id: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(position) = self.position {
            write!(formatter, "position {position}")?;
            if let Some(event_id) = &self.event_id {
                write!(formatter, " (event {event_id})")?;
            }
            write!(formatter, ": ")?;
        }
        formatter.write_str(&self.message)
    }
}

/// Checks a log entry by entry.
#[derive(Debug)]
pub struct LogAuditor {
    checkpoints: Vec<Checkpoint>,
    frontier: Frontier,
    problem: Option<Problem>,
    /// Positions removed by purges, by the position of the record the store says removed them;
    /// settled when that record is reached.
    pending_purges: BTreeMap<u64, PositionsDigest>,
    purged: u64,
    purge_records: u64,
    /// Positions erasures removed personal data from, by the position of the erasure record the
    /// event names; settled when that record is reached.
    pending_erasures: BTreeMap<u64, PositionsDigest>,
    erased: u64,
    erasure_records: u64,
}

/// One entry as found, with what the store claims about it.
#[derive(Debug)]
pub struct Entry<'a> {
    /// The position the entry claims.
    pub position: i64,
    /// Its event id, if readable.
    pub event_id: Option<String>,
    /// Its canonical bytes, recomputed from its content, or why they could not be.
    pub canonical: Result<&'a [u8], String>,
    /// The leaf hash the store holds for this position, when the store is being audited
    /// directly (`None` over HTTP, where no stored hash is trusted anyway).
    pub stored_leaf: Option<Option<Hash>>,
    /// The erasure records the event names as having erased personal data from it.
    pub erased_by: &'a [u64],
}

impl LogAuditor {
    /// Starts an audit against checkpoints the caller trusts (signatures verified, or remembered
    /// from an earlier audit): the entries must hash to each one's root at its size.
    pub fn new(checkpoints: impl IntoIterator<Item = Checkpoint>) -> Self {
        Self {
            checkpoints: checkpoints.into_iter().collect(),
            frontier: Frontier::new(),
            problem: None,
            pending_purges: BTreeMap::new(),
            purged: 0,
            purge_records: 0,
            pending_erasures: BTreeMap::new(),
            erased: 0,
            erasure_records: 0,
        }
    }

    /// The first problem found, if any.
    pub fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }

    /// How many entries were accepted.
    pub fn entries_checked(&self) -> u64 {
        self.frontier.size()
    }

    /// The root of the entries accepted so far.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    fn fail(&mut self, position: Option<u64>, event_id: Option<String>, message: String) {
        if self.problem.is_none() {
            self.problem = Some(Problem {
                position,
                event_id,
                message,
            });
        }
    }

    /// Checks that `position` is the next one expected; returns it.
    fn next_position(&mut self, position: i64, event_id: Option<&String>) -> Option<u64> {
        let expected = self.frontier.size();
        match u64::try_from(position) {
            Ok(position) if position == expected => Some(expected),
            Ok(position) if position > expected => {
                self.fail(
                    Some(expected),
                    None,
                    format!(
                        "missing: the log jumps from position {} to {position} (an event was deleted)",
                        expected as i64 - 1
                    ),
                );
                None
            }
            _ => {
                self.fail(
                    u64::try_from(position).ok(),
                    event_id.cloned(),
                    format!("position {position} appears more than once (an event was inserted or duplicated)"),
                );
                None
            }
        }
    }

    /// Feeds the next entry. Returns false once a problem was found (later entries are ignored).
    pub fn push(&mut self, entry: Entry<'_>) -> bool {
        if self.problem.is_some() {
            return false;
        }
        let event_id = entry.event_id.clone();
        let Some(expected) = self.next_position(entry.position, event_id.as_ref()) else {
            return false;
        };
        let bytes = match entry.canonical {
            Ok(bytes) => bytes,
            Err(reason) => {
                self.fail(Some(expected), event_id, format!("the event cannot be read: {reason}"));
                return false;
            }
        };
        let leaf = leaf_hash(bytes);
        match entry.stored_leaf {
            None => {}
            Some(None) => {
                self.fail(
                    Some(expected),
                    event_id,
                    "the event has no leaf in the log (it was inserted outside Vellum)".into(),
                );
                return false;
            }
            Some(Some(stored)) if stored != leaf => {
                self.fail(
                    Some(expected),
                    event_id,
                    "the event's content does not match the leaf logged for it (it was changed after it was logged)"
                        .into(),
                );
                return false;
            }
            Some(Some(_)) => {}
        }
        if let Some(record) = PurgeRecord::from_canonical(bytes)
            && !self.settle_purge(expected, event_id.as_ref(), record)
        {
            return false;
        }
        if let Some(record) = ErasureRecord::from_canonical(bytes)
            && !self.settle_erasure(expected, event_id.as_ref(), record)
        {
            return false;
        }
        if !self.note_erased(expected, event_id.as_ref(), entry.erased_by) {
            return false;
        }
        self.accept(expected, event_id, leaf)
    }

    /// Feeds the next position when it holds an event of format v1 that an erasure redacted: its
    /// content no longer hashes to its leaf, so the leaf is taken as given (the signed roots check
    /// it), and the erasure records it names must account for the position.
    pub fn push_redacted(&mut self, position: i64, event_id: Option<String>, leaf: Hash, erased_by: &[u64]) -> bool {
        if self.problem.is_some() {
            return false;
        }
        let Some(expected) = self.next_position(position, event_id.as_ref()) else {
            return false;
        };
        if erased_by.is_empty() || !self.note_erased(expected, event_id.as_ref(), erased_by) {
            self.fail(
                Some(expected),
                event_id,
                "the event's content does not match the leaf logged for it (it was changed after it was logged)".into(),
            );
            return false;
        }
        self.accept(expected, event_id, leaf)
    }

    /// Registers an event's erasures with the records it names, which must come later.
    fn note_erased(&mut self, position: u64, event_id: Option<&String>, erased_by: &[u64]) -> bool {
        for &record in erased_by {
            if record <= position {
                self.fail(
                    Some(position),
                    event_id.cloned(),
                    format!(
                        "the event's personal data was removed, and it names position {record} as the erasure that \
                         removed it, which is not after it (data was removed outside an erasure)"
                    ),
                );
                return false;
            }
            self.pending_erasures.entry(record).or_default().push(position);
        }
        if !erased_by.is_empty() {
            self.erased += 1;
        }
        true
    }

    fn settle_erasure(
        &mut self,
        position: u64,
        event_id: Option<&String>,
        record: Result<ErasureRecord, String>,
    ) -> bool {
        let record = match record {
            Ok(record) => record,
            Err(reason) => {
                self.fail(
                    Some(position),
                    event_id.cloned(),
                    format!("an unreadable erasure record: {reason}"),
                );
                return false;
            }
        };
        let erased = self.pending_erasures.remove(&position).unwrap_or_default();
        if !record.accounts_for(&erased, position) {
            let found = describe_positions(&erased);
            self.fail(
                Some(position),
                event_id.cloned(),
                format!(
                    "this erasure record erased {} events (positions {} to {}), but the events naming it are {found}: \
                     personal data was removed outside an erasure, or an erasure was rewritten",
                    record.events_erased, record.first_log_index, record.last_log_index
                ),
            );
            return false;
        }
        self.erasure_records += 1;
        true
    }

    /// Feeds the next position when its event was removed by a purge: the store keeps only its
    /// leaf hash and the position of the purge record that removed it. The leaf is taken as given
    /// (the signed roots check it); the record must later account for the position.
    pub fn push_purged(&mut self, position: i64, leaf: Hash, purged_by: u64) -> bool {
        if self.problem.is_some() {
            return false;
        }
        let Some(expected) = self.next_position(position, None) else {
            return false;
        };
        if purged_by <= expected {
            self.fail(
                Some(expected),
                None,
                format!(
                    "missing: the event was deleted, and the store names position {purged_by} as the purge that removed it, \
                     which is not after it (an event was deleted outside a purge)"
                ),
            );
            return false;
        }
        self.pending_purges.entry(purged_by).or_default().push(expected);
        self.purged += 1;
        self.accept(expected, None, leaf)
    }

    fn settle_purge(&mut self, position: u64, event_id: Option<&String>, record: Result<PurgeRecord, String>) -> bool {
        let record = match record {
            Ok(record) => record,
            Err(reason) => {
                self.fail(
                    Some(position),
                    event_id.cloned(),
                    format!("an unreadable purge record: {reason}"),
                );
                return false;
            }
        };
        let removed = self.pending_purges.remove(&position).unwrap_or_default();
        if record.below_log_index > position || !record.accounts_for(&removed) {
            let found = describe_positions(&removed);
            self.fail(
                Some(position),
                event_id.cloned(),
                format!(
                    "this purge record removed {} events (positions {} to {}), but the positions missing in its name \
                     are {found}: events were deleted outside a purge, or a purge was rewritten",
                    record.events_purged, record.first_log_index, record.last_log_index
                ),
            );
            return false;
        }
        self.purge_records += 1;
        true
    }

    fn accept(&mut self, expected: u64, event_id: Option<String>, leaf: Hash) -> bool {
        self.frontier.push(leaf);
        let size = self.frontier.size();
        // The root is computed only where a checkpoint needs it: a handful of times per audit.
        if self.checkpoints.iter().any(|checkpoint| checkpoint.size == size) {
            let root = self.frontier.root();
            if self
                .checkpoints
                .iter()
                .any(|checkpoint| checkpoint.size == size && checkpoint.root != root)
            {
                self.fail(
                    Some(expected),
                    event_id,
                    format!(
                        "the first {size} entries do not hash to the root of the signed checkpoint of size {size} \
                         (entries were changed, reordered or replaced)"
                    ),
                );
                return false;
            }
        }
        true
    }

    /// Ends the audit: `stored_size` is how many leaves the store says it holds, if known.
    pub fn finish(mut self, stored_size: Option<u64>) -> Result<Summary, Problem> {
        if let Some(problem) = self.problem.take() {
            return Err(problem);
        }
        let entries = self.frontier.size();
        if let Some((&record, removed)) = self.pending_purges.iter().next() {
            let (first, _) = removed.span().unwrap_or_default();
            return Err(Problem {
                position: Some(first),
                event_id: None,
                message: format!(
                    "missing: the event was deleted, and the store names position {record} as the purge that removed it, \
                     but no purge record is there (an event was deleted outside a purge)"
                ),
            });
        }
        if let Some((&record, erased)) = self.pending_erasures.iter().next() {
            let (first, _) = erased.span().unwrap_or_default();
            return Err(Problem {
                position: Some(first),
                event_id: None,
                message: format!(
                    "the event's personal data was removed, and it names position {record} as the erasure that removed \
                     it, but no erasure record is there (data was removed outside an erasure)"
                ),
            });
        }
        if let Some(stored_size) = stored_size
            && stored_size != entries
        {
            let message = if stored_size > entries {
                format!("the log holds {stored_size} leaves but only {entries} events: events at the end were deleted")
            } else {
                format!("there are {entries} events but the log holds only {stored_size} leaves")
            };
            return Err(Problem {
                position: Some(entries.min(stored_size)),
                event_id: None,
                message,
            });
        }
        let largest = self.checkpoints.iter().max_by_key(|checkpoint| checkpoint.size);
        if let Some(checkpoint) = largest {
            if checkpoint.size > entries {
                return Err(Problem {
                    position: Some(entries),
                    event_id: None,
                    message: format!(
                        "the signed checkpoint covers {} entries but only {entries} remain: entries were deleted",
                        checkpoint.size
                    ),
                });
            }
            if checkpoint.size == 0 && checkpoint.root != crate::merkle::empty_root() {
                return Err(Problem {
                    position: None,
                    event_id: None,
                    message: "an empty checkpoint with a non-empty root".into(),
                });
            }
        }
        let checkpoint_size = largest.map(|checkpoint| checkpoint.size);
        Ok(Summary {
            entries,
            root: self.frontier.root(),
            checkpoint_size,
            purged: self.purged,
            purge_records: self.purge_records,
            erased: self.erased,
            erasure_records: self.erasure_records,
        })
    }
}

/// How many positions a digest holds and their span, for a problem's message.
fn describe_positions(digest: &PositionsDigest) -> String {
    match digest.span() {
        Some((first, last)) => format!("{} positions ({first} to {last})", digest.count()),
        None => "none".to_owned(),
    }
}

/// What an audit that found nothing wrong covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Entries checked.
    pub entries: u64,
    /// Their root.
    pub root: Hash,
    /// The size of the signed checkpoint the entries were checked against, if any.
    pub checkpoint_size: Option<u64>,
    /// How many of the entries were removed by purges (their leaves taken as given).
    pub purged: u64,
    /// How many purge records accounted for them.
    pub purge_records: u64,
    /// How many of the entries had personal data erased.
    pub erased: u64,
    /// How many erasure records accounted for them.
    pub erasure_records: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::root_of;

    fn entries(count: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|index| format!("{{\"n\":{index}}}").into_bytes())
            .collect()
    }

    fn checkpoint_of(data: &[Vec<u8>], size: usize) -> Checkpoint {
        let hashes: Vec<Hash> = data[..size].iter().map(|bytes| leaf_hash(bytes)).collect();
        Checkpoint {
            origin: "test".into(),
            size: size as u64,
            root: root_of(&hashes),
        }
    }

    fn audit(
        data: &[Vec<u8>],
        positions: &[i64],
        stored: &[Vec<u8>],
        checkpoint: Option<Checkpoint>,
    ) -> Result<Summary, Problem> {
        let mut auditor = LogAuditor::new(checkpoint);
        for (bytes, position) in data.iter().zip(positions) {
            let stored_leaf = stored.get(*position as usize).map(|bytes| leaf_hash(bytes));
            auditor.push(Entry {
                position: *position,
                event_id: Some(format!("e{position}")),
                canonical: Ok(bytes),
                stored_leaf: Some(stored_leaf),
                erased_by: &[],
            });
        }
        auditor.finish(Some(stored.len() as u64))
    }

    #[test]
    fn an_intact_log_passes() {
        let data = entries(10);
        let positions: Vec<i64> = (0..10).collect();
        let summary = audit(&data, &positions, &data, Some(checkpoint_of(&data, 7))).unwrap();
        assert_eq!(summary.entries, 10);
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let data = entries(10);
        let positions: Vec<i64> = (0..10).collect();
        let checkpoint = Some(checkpoint_of(&data, 10));

        let mut changed = data.clone();
        changed[4] = b"{\"n\":40}".to_vec();
        let problem = audit(&changed, &positions, &data, checkpoint.clone()).unwrap_err();
        assert_eq!((problem.position, problem.event_id.as_deref()), (Some(4), Some("e4")));
        assert!(problem.message.contains("changed"), "{problem}");

        let deleted: Vec<Vec<u8>> = data
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != 3)
            .map(|(_, bytes)| bytes.clone())
            .collect();
        let deleted_positions: Vec<i64> = positions.iter().copied().filter(|position| *position != 3).collect();
        let problem = audit(&deleted, &deleted_positions, &data, checkpoint.clone()).unwrap_err();
        assert_eq!(problem.position, Some(3));
        assert!(problem.message.contains("deleted"), "{problem}");

        let problem = audit(&data[..9], &positions[..9], &data, checkpoint.clone()).unwrap_err();
        assert!(problem.message.contains("deleted"), "the last event deleted: {problem}");

        // Content and leaf both rewritten: only the signed root catches it.
        let problem = audit(&changed, &positions, &changed, checkpoint.clone()).unwrap_err();
        assert!(problem.message.contains("signed checkpoint"), "{problem}");

        let mut extra = data.clone();
        extra.push(b"{\"n\":\"forged\"}".to_vec());
        let mut extra_positions = positions;
        extra_positions.push(10);
        let problem = audit(&extra, &extra_positions, &data, checkpoint).unwrap_err();
        assert_eq!(problem.position, Some(10));
        assert!(problem.message.contains("inserted"), "{problem}");

        let duplicated_positions = vec![0, 1, 1, 2];
        let problem = audit(&data[..4], &duplicated_positions, &data, None).unwrap_err();
        assert!(problem.message.contains("more than once"), "{problem}");
    }

    /// A log of 12 entries where a purge record at position 10 removed positions 2, 3 and 7.
    fn purged_log() -> (Vec<Vec<u8>>, Vec<u64>) {
        use crate::log_record::{PositionsDigest, PurgeRecord};
        let mut data = entries(12);
        let removed = vec![2, 3, 7];
        let mut digest = PositionsDigest::new();
        removed.iter().for_each(|position| {
            digest.push(*position);
        });
        let record = PurgeRecord {
            occurred_before: crate::Timestamp::from_unix_millis(1_000).unwrap(),
            below_log_index: 10,
            retention_period_in_days: 1,
            events_purged: 3,
            first_log_index: 2,
            last_log_index: 7,
            positions_sha256: digest.finish(),
        };
        let event = crate::Event {
            id: crate::EventId::from_ulid(ulid::Ulid::from_parts(5, 5)),
            organization_id: crate::OrganizationId::from_ulid(ulid::Ulid::from_parts(5, 6)),
            log_index: 10,
            received_at: crate::Timestamp::from_unix_millis(2_000).unwrap(),
            schema_version: 1,
            input: record.to_input("org", crate::Timestamp::from_unix_millis(2_000).unwrap()),
            seals: None,
            erased_by: Vec::new(),
        };
        data[10] = crate::canonical::canonical_event_bytes(&event);
        (data, removed)
    }

    fn audit_purged(data: &[Vec<u8>], removed: &[u64], purged_by: u64) -> Result<Summary, Problem> {
        let mut auditor = LogAuditor::new(Some(checkpoint_of(data, data.len())));
        for (position, bytes) in data.iter().enumerate() {
            if removed.contains(&(position as u64)) {
                auditor.push_purged(position as i64, leaf_hash(bytes), purged_by);
            } else {
                auditor.push(Entry {
                    position: position as i64,
                    event_id: None,
                    canonical: Ok(bytes),
                    stored_leaf: Some(Some(leaf_hash(bytes))),
                    erased_by: &[],
                });
            }
        }
        auditor.finish(Some(data.len() as u64))
    }

    #[test]
    fn positions_a_purge_record_accounts_for_pass_and_no_others() {
        let (data, removed) = purged_log();
        let summary = audit_purged(&data, &removed, 10).unwrap();
        assert_eq!((summary.entries, summary.purged, summary.purge_records), (12, 3, 1));

        // One more event deleted and marked as purged by the same record.
        let problem = audit_purged(&data, &[2, 3, 5, 7], 10).unwrap_err();
        assert_eq!(problem.position, Some(10), "{problem}");
        assert!(problem.message.contains("outside a purge"), "{problem}");

        // One of the purged positions restored by hand: the record no longer adds up.
        let problem = audit_purged(&data, &[2, 7], 10).unwrap_err();
        assert!(problem.message.contains("outside a purge"), "{problem}");

        // Marked as purged by a position that holds no purge record, or one before it.
        let problem = audit_purged(&data, &removed, 11).unwrap_err();
        assert!(problem.message.contains("deleted outside a purge"), "{problem}");
        let problem = audit_purged(&data, &removed, 1).unwrap_err();
        assert_eq!(problem.position, Some(2), "{problem}");
    }

    /// A log of 12 entries whose position 10 is an erasure record naming positions 1, 4 and 6.
    fn erased_log() -> Vec<Vec<u8>> {
        use crate::log_record::{ErasureRecord, PositionsDigest, RecordedBy};
        let mut data = entries(12);
        let mut digest = PositionsDigest::new();
        for position in [1, 4, 6] {
            digest.push(position);
        }
        let event = crate::Event {
            id: crate::EventId::from_ulid(ulid::Ulid::from_parts(5, 5)),
            organization_id: crate::OrganizationId::from_ulid(ulid::Ulid::from_parts(5, 6)),
            log_index: 10,
            received_at: crate::Timestamp::from_unix_millis(2_000).unwrap(),
            schema_version: 1,
            input: ErasureRecord::of(&digest).to_input(
                "org",
                crate::Timestamp::from_unix_millis(2_000).unwrap(),
                &RecordedBy::vellum("test"),
            ),
            seals: None,
            erased_by: Vec::new(),
        };
        data[10] = crate::canonical::canonical_event_bytes(&event);
        data
    }

    /// Audits `data` where the events at `sealed` name record `by` and still hash to their leaves
    /// (sealed parties), and those at `redacted` name it and do not (taken on its word).
    fn audit_erased(data: &[Vec<u8>], sealed: &[u64], redacted: &[u64], by: u64) -> Result<Summary, Problem> {
        audit_erased_against(data, data, sealed, redacted, by)
    }

    fn audit_erased_against(
        signed: &[Vec<u8>],
        data: &[Vec<u8>],
        sealed: &[u64],
        redacted: &[u64],
        by: u64,
    ) -> Result<Summary, Problem> {
        let mut auditor = LogAuditor::new(Some(checkpoint_of(signed, signed.len())));
        for (position, bytes) in data.iter().enumerate() {
            let position = position as u64;
            if redacted.contains(&position) {
                auditor.push_redacted(position as i64, None, leaf_hash(bytes), &[by]);
            } else {
                let erased_by = if sealed.contains(&position) {
                    vec![by]
                } else {
                    Vec::new()
                };
                auditor.push(Entry {
                    position: position as i64,
                    event_id: None,
                    canonical: Ok(bytes),
                    stored_leaf: Some(Some(leaf_hash(bytes))),
                    erased_by: &erased_by,
                });
            }
        }
        auditor.finish(Some(data.len() as u64))
    }

    #[test]
    fn events_an_erasure_record_accounts_for_pass_and_no_others() {
        let data = erased_log();
        let summary = audit_erased(&data, &[1, 6], &[4], 10).unwrap();
        assert_eq!((summary.entries, summary.erased, summary.erasure_records), (12, 3, 1));

        // An event claiming the erasure that the record does not name.
        let problem = audit_erased(&data, &[1, 5, 6], &[4], 10).unwrap_err();
        assert_eq!(problem.position, Some(10), "{problem}");
        assert!(problem.message.contains("outside an erasure"), "{problem}");
        // An event the record names that does not claim it (its erasure was undone by hand).
        let problem = audit_erased(&data, &[1], &[4], 10).unwrap_err();
        assert!(problem.message.contains("outside an erasure"), "{problem}");
        // Claiming a position that holds no erasure record, or one before the event.
        let problem = audit_erased(&data, &[1, 6], &[4], 11).unwrap_err();
        assert!(problem.message.contains("outside an erasure"), "{problem}");
        let mut no_record = data.clone();
        no_record[10] = b"{\"n\":10}".to_vec();
        let problem = audit_erased(&no_record, &[1, 6], &[4], 11).unwrap_err();
        assert!(problem.message.contains("no erasure record is there"), "{problem}");
        let problem = audit_erased(&data, &[1, 6], &[4], 0).unwrap_err();
        assert_eq!(problem.position, Some(1), "{problem}");
        // A redacted event whose leaf was replaced: the signed root catches it.
        let mut altered = data.clone();
        altered[4] = b"{\"n\":\"changed\"}".to_vec();
        let problem = audit_erased_against(&data, &altered, &[1, 6], &[4], 10).unwrap_err();
        assert!(problem.message.contains("signed checkpoint"), "{problem}");
        // Content changed without any erasure claim is tampering, as always.
        let problem = audit_erased(&data, &[1, 6], &[], 10);
        assert!(problem.is_err());
    }
}
