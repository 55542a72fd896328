//! Verifying a log from its entries: the checks `vellum verify` runs, on an embedded store or
//! over HTTP, trusting nothing but the entries' content and a pinned public key.
//!
//! Entries are fed in log order. Each entry's leaf is recomputed from its canonical bytes; the
//! recomputed leaves are folded into a root that must equal the root of the signed checkpoint at
//! its size. The first problem found is reported with the position and event it concerns.

use std::fmt;

use crate::checkpoint::Checkpoint;
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
}

impl LogAuditor {
    /// Starts an audit against checkpoints the caller trusts (signatures verified, or remembered
    /// from an earlier audit): the entries must hash to each one's root at its size.
    pub fn new(checkpoints: impl IntoIterator<Item = Checkpoint>) -> Self {
        Self {
            checkpoints: checkpoints.into_iter().collect(),
            frontier: Frontier::new(),
            problem: None,
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

    /// Feeds the next entry. Returns false once a problem was found (later entries are ignored).
    pub fn push(&mut self, entry: Entry<'_>) -> bool {
        if self.problem.is_some() {
            return false;
        }
        let expected = self.frontier.size();
        let event_id = entry.event_id.clone();
        match u64::try_from(entry.position) {
            Ok(position) if position == expected => {}
            Ok(position) if position > expected => {
                self.fail(
                    Some(expected),
                    None,
                    format!(
                        "missing: the log jumps from position {} to {position} (an event was deleted)",
                        expected as i64 - 1
                    ),
                );
                return false;
            }
            _ => {
                self.fail(
                    u64::try_from(entry.position).ok(),
                    event_id,
                    format!(
                        "position {} appears more than once (an event was inserted or duplicated)",
                        entry.position
                    ),
                );
                return false;
            }
        }
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
        })
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
}
