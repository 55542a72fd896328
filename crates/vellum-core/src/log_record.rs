//! Entries Vellum itself writes into an organization's log: the record of a purge, an erasure,
//! the setting or lifting of a legal hold (`docs/retention.md`), and of accesses through the
//! Admin Portal and the embedded viewer (`docs/portal.md`).
//!
//! A record is an event like any other (it is listed, exported and proven like one), with three
//! differences that make it impossible to forge from outside:
//! - its action is in the reserved namespace [`RESERVED_ACTION_PREFIX`], which no client request
//!   may use;
//! - it is marked [`EventInput::system`], so its canonical bytes carry
//!   [`crate::canonical::RECORD_FORMAT_V1`] instead of the event format: the leaf itself says
//!   that Vellum wrote it;
//! - its parameters are its metadata, read back by the verifier from the canonical bytes.
//!
//! # Purge records
//!
//! A purge removes the payloads of events whose `occurred_at` is before a cutoff, in chunks; each
//! chunk is deleted in the same commit that appends its [`PurgeRecord`]. The record names how
//! many positions it removed and commits to exactly which, by [`PositionsDigest`]: SHA-256 over
//! the positions, ascending, each as 8 big-endian bytes. The removed positions keep their leaf
//! hashes, each marked with the record's position, so that the tree, its roots and every proof
//! stay as they were, and a verifier can check that the positions missing from the log are
//! exactly those the records account for.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use crate::event::{Actor, Context, EventInput, Metadata, MetadataValue, Target};
use crate::merkle::Hash;
use crate::timestamp::Timestamp;

/// Actions beginning with this are Vellum's own; no client event may use one.
pub const RESERVED_ACTION_PREFIX: &str = "vellum.";

/// The action of a purge record.
pub const PURGE_ACTION: &str = "vellum.retention.purged";

/// The action of an erasure record.
pub const ERASURE_ACTION: &str = "vellum.personal_data.erased";

/// The action of the record of a legal hold being set.
pub const LEGAL_HOLD_SET_ACTION: &str = "vellum.legal_hold.set";

/// The action of the record of a legal hold being lifted.
pub const LEGAL_HOLD_LIFTED_ACTION: &str = "vellum.legal_hold.lifted";

/// The record of an Admin Portal session being opened from a link.
pub const PORTAL_SESSION_STARTED_ACTION: &str = "vellum.portal.session_started";

/// The record of an export made through the Admin Portal.
pub const PORTAL_EXPORT_CREATED_ACTION: &str = "vellum.portal.export_created";

/// The record of a log stream created, changed, replayed or deleted through the Admin Portal.
pub const PORTAL_STREAM_CHANGED_ACTION: &str = "vellum.portal.stream_changed";

/// The record of a viewer token being issued.
pub const VIEWER_TOKEN_ISSUED_ACTION: &str = "vellum.viewer.token_issued";

/// The record of an export made through the embedded viewer.
pub const VIEWER_EXPORT_CREATED_ACTION: &str = "vellum.viewer.export_created";

/// Whether an action name is reserved for Vellum's own records.
pub fn is_reserved_action(action: &str) -> bool {
    action
        .get(..RESERVED_ACTION_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(RESERVED_ACTION_PREFIX))
}

/// The most characters of a legal hold's reason.
pub const MAX_HOLD_REASON_CHARS: usize = 500;

/// Who caused a record (the purge job, or the API key or operator that set a hold).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedBy {
    /// The actor's id.
    pub id: String,
    /// The actor's type (`vellum`, `api_key`, `operator`).
    pub actor_type: String,
    /// A name to show, if any.
    pub name: Option<String>,
}

impl RecordedBy {
    /// Vellum's own background work.
    pub fn vellum(name: &str) -> Self {
        Self {
            id: "vellum".into(),
            actor_type: "vellum".into(),
            name: Some(name.into()),
        }
    }
}

fn record_input(action: &str, organization_id: &str, at: Timestamp, by: &RecordedBy, metadata: Metadata) -> EventInput {
    EventInput {
        action: action.into(),
        occurred_at: at,
        version: None,
        actor: Actor {
            id: by.id.clone(),
            actor_type: by.actor_type.clone(),
            name: by.name.clone(),
            metadata: None,
        },
        targets: vec![Target {
            id: organization_id.into(),
            target_type: "organization".into(),
            name: None,
            metadata: None,
        }],
        context: Context {
            location: "vellum".into(),
            user_agent: None,
        },
        metadata: Some(metadata),
        audit_trail: None,
        system: true,
    }
}

/// The schema version of records (they are checked against no schema).
pub const RECORD_SCHEMA_VERSION: u32 = 1;

/// The digest of a set of log positions: SHA-256 over them in ascending order, each as 8
/// big-endian bytes. Fed one position at a time; refuses any out of order.
#[derive(Clone, Debug, Default)]
pub struct PositionsDigest {
    hasher: Sha256,
    count: u64,
    first: Option<u64>,
    last: Option<u64>,
}

impl PositionsDigest {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next position. Returns false (and adds nothing) unless it is above the last one.
    pub fn push(&mut self, position: u64) -> bool {
        if self.last.is_some_and(|last| position <= last) {
            return false;
        }
        self.hasher.update(position.to_be_bytes());
        self.count += 1;
        self.first.get_or_insert(position);
        self.last = Some(position);
        true
    }

    /// How many positions were added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The lowest and highest positions added, if any.
    pub fn span(&self) -> Option<(u64, u64)> {
        Some((self.first?, self.last?))
    }

    /// The digest of the positions added.
    pub fn finish(&self) -> Hash {
        self.hasher.clone().finalize().into()
    }
}

/// What one purge record says: which positions it removed, and by which rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeRecord {
    /// The rule: events whose `occurred_at` is before this time…
    pub occurred_before: Timestamp,
    /// …at positions below this one (the log's size when the purge pass began).
    pub below_log_index: u64,
    /// The retention period that set the cutoff.
    pub retention_period_in_days: u32,
    /// How many positions it removed.
    pub events_purged: u64,
    /// The lowest and highest of them.
    pub first_log_index: u64,
    /// See `first_log_index`.
    pub last_log_index: u64,
    /// [`PositionsDigest`] of them.
    pub positions_sha256: Hash,
}

fn number(value: u64) -> MetadataValue {
    MetadataValue::Number(value.into())
}

impl PurgeRecord {
    /// The record as an event to append to the organization's log, recorded at `at`.
    pub fn to_input(&self, organization_id: &str, at: Timestamp) -> EventInput {
        let mut metadata: Metadata = BTreeMap::new();
        metadata.insert(
            "occurred_before".into(),
            MetadataValue::String(self.occurred_before.to_wire()),
        );
        metadata.insert("below_log_index".into(), number(self.below_log_index));
        metadata.insert(
            "retention_period_in_days".into(),
            number(u64::from(self.retention_period_in_days)),
        );
        metadata.insert("events_purged".into(), number(self.events_purged));
        metadata.insert("first_log_index".into(), number(self.first_log_index));
        metadata.insert("last_log_index".into(), number(self.last_log_index));
        metadata.insert(
            "positions_sha256".into(),
            MetadataValue::String(BASE64.encode(self.positions_sha256)),
        );
        record_input(
            PURGE_ACTION,
            organization_id,
            at,
            &RecordedBy::vellum("Vellum retention"),
            metadata,
        )
    }

    /// Reads a purge record back from the canonical bytes of a log entry: `None` when the entry is
    /// not one (an event, or another kind of record), an error when it claims to be one but does
    /// not say what a purge record says.
    pub fn from_canonical(bytes: &[u8]) -> Option<Result<Self, String>> {
        // Cheap test first: canonical members are sorted, so `action` comes first.
        let prefix = format!("{{\"action\":\"{PURGE_ACTION}\"");
        if !bytes.starts_with(prefix.as_bytes()) {
            return None;
        }
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        if value.get("format").and_then(serde_json::Value::as_str) != Some(crate::canonical::RECORD_FORMAT_V1) {
            return None;
        }
        Some(Self::from_metadata(value.get("metadata")))
    }

    fn from_metadata(metadata: Option<&serde_json::Value>) -> Result<Self, String> {
        let metadata = metadata
            .and_then(serde_json::Value::as_object)
            .ok_or("a purge record without metadata")?;
        let count = |key: &str| {
            metadata
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("a purge record without `{key}`"))
        };
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| format!("a purge record without `{key}`"))
        };
        let occurred_before = crate::event::parse_occurred_at(text("occurred_before")?)
            .ok_or("a purge record with an invalid `occurred_before`")?;
        let digest = BASE64
            .decode(text("positions_sha256")?)
            .ok()
            .and_then(|bytes| Hash::try_from(bytes.as_slice()).ok())
            .ok_or("a purge record with an invalid `positions_sha256`")?;
        Ok(Self {
            occurred_before,
            below_log_index: count("below_log_index")?,
            retention_period_in_days: u32::try_from(count("retention_period_in_days")?)
                .map_err(|_| "a purge record with an invalid retention period")?,
            events_purged: count("events_purged")?,
            first_log_index: count("first_log_index")?,
            last_log_index: count("last_log_index")?,
            positions_sha256: digest,
        })
    }

    /// Whether `digest` holds exactly the positions this record names.
    pub fn accounts_for(&self, digest: &PositionsDigest) -> bool {
        digest.count() == self.events_purged
            && digest.span() == Some((self.first_log_index, self.last_log_index))
            && digest.finish() == self.positions_sha256
            && self.last_log_index < self.below_log_index
    }
}

/// What one erasure record says: which positions it erased personal data from. It does not say
/// whose: the record would otherwise keep what it erased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureRecord {
    /// How many positions it erased.
    pub events_erased: u64,
    /// The lowest and highest of them.
    pub first_log_index: u64,
    /// See `first_log_index`.
    pub last_log_index: u64,
    /// [`PositionsDigest`] of them.
    pub positions_sha256: Hash,
}

impl ErasureRecord {
    /// The record of erasing the positions fed to `digest` (at least one).
    pub fn of(digest: &PositionsDigest) -> Self {
        let (first, last) = digest.span().unwrap_or_default();
        Self {
            events_erased: digest.count(),
            first_log_index: first,
            last_log_index: last,
            positions_sha256: digest.finish(),
        }
    }

    /// The record as an event to append to the organization's log, caused by `by` at `at`.
    pub fn to_input(&self, organization_id: &str, at: Timestamp, by: &RecordedBy) -> EventInput {
        let mut metadata: Metadata = BTreeMap::new();
        metadata.insert("events_erased".into(), number(self.events_erased));
        metadata.insert("first_log_index".into(), number(self.first_log_index));
        metadata.insert("last_log_index".into(), number(self.last_log_index));
        metadata.insert(
            "positions_sha256".into(),
            MetadataValue::String(BASE64.encode(self.positions_sha256)),
        );
        record_input(ERASURE_ACTION, organization_id, at, by, metadata)
    }

    /// Reads an erasure record back from the canonical bytes of a log entry, as
    /// [`PurgeRecord::from_canonical`] does.
    pub fn from_canonical(bytes: &[u8]) -> Option<Result<Self, String>> {
        let metadata = record_metadata(bytes, ERASURE_ACTION)?;
        let Some(serde_json::Value::Object(metadata)) = metadata else {
            return Some(Err("an erasure record without metadata".into()));
        };
        let count = |key: &str| {
            metadata
                .get(key)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("an erasure record without `{key}`"))
        };
        let digest = metadata
            .get("positions_sha256")
            .and_then(serde_json::Value::as_str)
            .and_then(|text| BASE64.decode(text).ok())
            .and_then(|bytes| Hash::try_from(bytes.as_slice()).ok())
            .ok_or_else(|| "an erasure record with an invalid `positions_sha256`".to_owned());
        Some((|| {
            Ok(Self {
                events_erased: count("events_erased")?,
                first_log_index: count("first_log_index")?,
                last_log_index: count("last_log_index")?,
                positions_sha256: digest?,
            })
        })())
    }

    /// Whether `digest` holds exactly the positions this record names, all before `position`
    /// (the record's own).
    pub fn accounts_for(&self, digest: &PositionsDigest, position: u64) -> bool {
        digest.count() == self.events_erased
            && digest.span() == Some((self.first_log_index, self.last_log_index))
            && digest.finish() == self.positions_sha256
            && self.last_log_index < position
    }
}

/// The metadata of a record with `action`, from canonical bytes: `None` when the bytes are not
/// such a record.
fn record_metadata(bytes: &[u8], action: &str) -> Option<Option<serde_json::Value>> {
    // Cheap test first: canonical members are sorted, so `action` comes first.
    let prefix = format!("{{\"action\":\"{action}\"");
    if !bytes.starts_with(prefix.as_bytes()) {
        return None;
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if value.get("format").and_then(serde_json::Value::as_str) != Some(crate::canonical::RECORD_FORMAT_V1) {
        return None;
    }
    Some(value.get_mut("metadata").map(serde_json::Value::take))
}

/// The record of an access to the organization's trail from outside the API (the Admin Portal,
/// the embedded viewer): one of the `PORTAL_*` and `VIEWER_*` actions, by whoever holds the
/// link or token, with what they did as metadata. Nothing reads it back: it is for the
/// organization to see who looked.
///
/// `location` (the client's address) and `user_agent` are the request's, cut to the lengths an
/// event's context allows.
pub fn access_input(
    action: &str,
    organization_id: &str,
    by: &RecordedBy,
    at: Timestamp,
    metadata: Metadata,
    location: Option<&str>,
    user_agent: Option<&str>,
) -> EventInput {
    let mut input = record_input(action, organization_id, at, by, metadata);
    let cut = |text: &str| text.chars().take(MAX_ACCESS_CONTEXT_CHARS).collect::<String>();
    if let Some(location) = location.filter(|text| !text.is_empty()) {
        input.context.location = cut(location);
    }
    input.context.user_agent = user_agent.filter(|text| !text.is_empty()).map(cut);
    input
}

/// The most characters of an access record's location or user agent.
pub const MAX_ACCESS_CONTEXT_CHARS: usize = 256;

/// The record of a legal hold being set (`held`) or lifted.
pub fn legal_hold_input(
    organization_id: &str,
    held: bool,
    reason: Option<&str>,
    by: &RecordedBy,
    at: Timestamp,
) -> EventInput {
    let mut metadata: Metadata = BTreeMap::new();
    if let Some(reason) = reason {
        metadata.insert("reason".into(), MetadataValue::String(reason.into()));
    }
    let action = if held {
        LEGAL_HOLD_SET_ACTION
    } else {
        LEGAL_HOLD_LIFTED_ACTION
    };
    record_input(action, organization_id, at, by, metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::canonical_event_bytes;
    use crate::event::Event;
    use crate::id::{EventId, OrganizationId};

    fn record() -> PurgeRecord {
        let mut digest = PositionsDigest::new();
        for position in [3, 4, 9] {
            assert!(digest.push(position));
        }
        assert!(!digest.push(9), "positions must ascend");
        PurgeRecord {
            occurred_before: Timestamp::from_unix_millis(1_700_000_000_123).unwrap(),
            below_log_index: 12,
            retention_period_in_days: 30,
            events_purged: digest.count(),
            first_log_index: 3,
            last_log_index: 9,
            positions_sha256: digest.finish(),
        }
    }

    fn event_of(input: EventInput) -> Event {
        Event {
            id: EventId::from_ulid(ulid::Ulid::from_parts(1, 2)),
            organization_id: OrganizationId::from_ulid(ulid::Ulid::from_parts(1, 1)),
            log_index: 12,
            received_at: input.occurred_at,
            schema_version: RECORD_SCHEMA_VERSION,
            input,
            seals: None,
            erased_by: Vec::new(),
        }
    }

    #[test]
    fn a_purge_record_reads_back_from_its_canonical_bytes() {
        let record = record();
        let event = event_of(record.to_input("org_1", Timestamp::from_unix_millis(1_800_000_000_000).unwrap()));
        let bytes = canonical_event_bytes(&event);
        assert!(
            String::from_utf8_lossy(&bytes).contains("\"format\":\"vellum.log_record.v1\""),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(PurgeRecord::from_canonical(&bytes), Some(Ok(record.clone())));
        let mut digest = PositionsDigest::new();
        for position in [3, 4, 9] {
            digest.push(position);
        }
        assert!(record.accounts_for(&digest));
        let mut other = PositionsDigest::new();
        for position in [3, 5, 9] {
            other.push(position);
        }
        assert!(!record.accounts_for(&other));
    }

    #[test]
    fn a_client_event_with_the_same_content_is_not_a_record() {
        let mut input = record().to_input("org_1", Timestamp::from_unix_millis(1_800_000_000_000).unwrap());
        input.system = false;
        let bytes = canonical_event_bytes(&event_of(input));
        assert_eq!(PurgeRecord::from_canonical(&bytes), None);
    }

    #[test]
    fn the_reserved_namespace_ignores_case() {
        assert!(is_reserved_action("vellum.retention.purged"));
        assert!(is_reserved_action("Vellum.anything"));
        assert!(!is_reserved_action("vellumx.a"));
        assert!(!is_reserved_action("user.vellum."));
        assert!(!is_reserved_action("vé"));
    }
}
