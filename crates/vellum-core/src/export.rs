//! Exports: what an export asks for, its life cycle, and the verifiable NDJSON export format
//! with its offline verifier (`docs/exports.md`).
//!
//! An NDJSON export is a contiguous slice `[start, end)` of one organization's log:
//!
//! 1. a header line: the organization, the log's origin, the filter, `start`, and the hashes of
//!    the complete subtrees left of `start` (the log's frontier at `start`);
//! 2. one line per position from `start` to `end - 1`, in order: the event's canonical envelope
//!    when it matches the filter, or only its leaf hash when it does not;
//! 3. a proof line: `end`, a signed checkpoint of `tree_size >= end` leaves, and the consistency
//!    proof from the tree of `end` leaves to it.
//!
//! So a verifier holding only the log's public key recomputes the root of the first `end` leaves
//! from the header's frontier and every line, and checks it against the signed checkpoint: no
//! position in the range can be dropped, altered, duplicated or reordered unnoticed.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::canonical::{EVENT_FORMAT_V1, canonical_json};
use crate::checkpoint::NoteVerifier;
use crate::event::Event;
use crate::id::{ExportId, OrganizationId};
use crate::merkle::{self, Frontier, Hash};
use crate::timestamp::Timestamp;

/// The NDJSON export's format tag.
pub const NDJSON_EXPORT_FORMAT_V1: &str = "vellum.export.v1";

/// The file format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// WorkOS's CSV, one row per matching event (`docs/exports.md` lists the columns).
    Csv,
    /// Vellum's verifiable NDJSON.
    Ndjson,
}

impl ExportFormat {
    /// The name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(Self::Csv),
            "ndjson" => Some(Self::Ndjson),
            _ => None,
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        self.as_str()
    }

    /// The media type of the file.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
        }
    }
}

/// Where an export is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportState {
    /// Queued or being written.
    Pending,
    /// Written in full; downloadable.
    Ready,
    /// Failed; the export says why.
    Error,
    /// Was ready; its file has since been deleted.
    Expired,
}

impl ExportState {
    /// The name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Error => "error",
            Self::Expired => "expired",
        }
    }

    /// Parses [`Self::as_str`]'s output.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "ready" => Some(Self::Ready),
            "error" => Some(Self::Error),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// Which events an export holds: those that occurred in `[range_start, range_end)` and match
/// every non-empty list (each list matches any of its values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFilter {
    /// Events that occurred at or after this instant.
    pub range_start: Timestamp,
    /// Events that occurred before this instant.
    pub range_end: Timestamp,
    /// Actions.
    pub actions: Vec<String>,
    /// Actor names (WorkOS's `actor_names`, and its deprecated `actors`).
    pub actor_names: Vec<String>,
    /// Actor ids.
    pub actor_ids: Vec<String>,
    /// Target types (WorkOS's `targets`).
    pub target_types: Vec<String>,
}

impl ExportFilter {
    /// Whether an event belongs in the export.
    pub fn matches(&self, event: &Event) -> bool {
        let input = &event.input;
        input.occurred_at >= self.range_start
            && input.occurred_at < self.range_end
            && crate::filter::ListFilters {
                actions: &self.actions,
                actor_ids: &self.actor_ids,
                actor_names: &self.actor_names,
                target_types: &self.target_types,
                target_ids: &[],
            }
            .matches(input)
    }

    /// Drops these values from the lists that name people (actor ids and names), after an
    /// erasure; for exports that are no longer run. Returns whether any was there.
    pub fn forget(&mut self, values: &[String]) -> bool {
        let before = self.actor_ids.len() + self.actor_names.len();
        self.actor_ids.retain(|id| !values.contains(id));
        self.actor_names.retain(|name| !values.contains(name));
        self.actor_ids.len() + self.actor_names.len() != before
    }

    /// The filter as JSON (stored with the export and written into NDJSON headers).
    pub fn to_json(&self) -> Value {
        json!({
            "range_start": self.range_start.to_wire(),
            "range_end": self.range_end.to_wire(),
            "actions": self.actions,
            "actor_names": self.actor_names,
            "actor_ids": self.actor_ids,
            "targets": self.target_types,
        })
    }

    /// Reads [`Self::to_json`]'s output.
    pub fn from_json(value: &Value) -> Option<Self> {
        let time = |name: &str| value.get(name)?.as_str().and_then(crate::event::parse_occurred_at);
        let list = |name: &str| -> Option<Vec<String>> {
            value
                .get(name)?
                .as_array()?
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect()
        };
        Some(Self {
            range_start: time("range_start")?,
            range_end: time("range_end")?,
            actions: list("actions")?,
            actor_names: list("actor_names")?,
            actor_ids: list("actor_ids")?,
            target_types: list("targets")?,
        })
    }
}

/// An export as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// `audit_log_export_` + ULID.
    pub id: ExportId,
    /// Whose events.
    pub organization_id: OrganizationId,
    /// CSV or NDJSON.
    pub format: ExportFormat,
    /// Which events.
    pub filter: ExportFilter,
    /// Where it is in its life.
    pub state: ExportState,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Where its file is in object storage, once ready.
    pub object_path: Option<String>,
    /// Events written, once ready.
    pub rows: Option<u64>,
    /// File size in bytes, once ready.
    pub bytes: Option<u64>,
    /// How many times a worker started it (more than one means it was interrupted).
    pub attempts: u32,
    /// When it was requested.
    pub created_at: Timestamp,
    /// When its state last changed.
    pub updated_at: Timestamp,
}

fn base64_hashes(hashes: &[Hash]) -> Value {
    Value::Array(hashes.iter().map(|hash| Value::String(BASE64.encode(hash))).collect())
}

/// The header line of an NDJSON export (with its newline).
pub fn ndjson_header(export: &Export, origin: &str, start: u64, left: &[Hash]) -> Vec<u8> {
    let header = json!({
        "type": "header",
        "format": NDJSON_EXPORT_FORMAT_V1,
        "event_format": EVENT_FORMAT_V1,
        "export_id": export.id.to_string(),
        "organization_id": export.organization_id.to_string(),
        "origin": origin,
        "filter": export.filter.to_json(),
        "created_at": export.created_at.to_wire(),
        "start": start,
        "left": base64_hashes(left),
    });
    let mut line = serde_json::to_vec(&header).expect("JSON values always serialise");
    line.push(b'\n');
    line
}

/// The line of an event in the export: its canonical envelope, verbatim (with its newline).
pub fn ndjson_event_line(event: &Event) -> Vec<u8> {
    let prepared = crate::canonical::PreparedLeaf::new(event);
    let canonical = prepared.canonical_bytes(event.log_index);
    let leaf = merkle::leaf_hash(&canonical);
    let mut line = Vec::with_capacity(canonical.len() + 120);
    line.extend_from_slice(b"{\"type\":\"event\",\"log_index\":");
    line.extend_from_slice(event.log_index.to_string().as_bytes());
    line.extend_from_slice(b",\"leaf_hash\":\"");
    line.extend_from_slice(BASE64.encode(leaf).as_bytes());
    line.extend_from_slice(b"\",\"event\":");
    line.extend_from_slice(&canonical);
    // Sealed parties (format v2): the leaf holds their seals; their values are disclosed beside
    // it, each checked against its seal; an erased party's is null, on its erasure records' word.
    if let Some(disclosed) = crate::seal::disclosures_json(event) {
        line.extend_from_slice(b",\"disclosed\":");
        line.extend_from_slice(&disclosed);
    }
    if !event.erased_by.is_empty() {
        line.extend_from_slice(b",\"erased_by\":");
        line.extend_from_slice(
            serde_json::to_string(&event.erased_by)
                .expect("numbers serialise")
                .as_bytes(),
        );
    }
    line.extend_from_slice(b"}\n");
    line
}

/// The line of a position the filter leaves out: only its leaf hash (with its newline).
pub fn ndjson_omitted_line(log_index: u64, leaf: &Hash) -> Vec<u8> {
    format!(
        "{{\"type\":\"omitted\",\"log_index\":{log_index},\"leaf_hash\":\"{}\"}}\n",
        BASE64.encode(leaf)
    )
    .into_bytes()
}

/// The line of a position whose event a purge removed: its leaf hash and the position of the
/// purge record that accounts for it (with its newline).
pub fn ndjson_purged_line(log_index: u64, leaf: &Hash, purged_by: u64) -> Vec<u8> {
    format!(
        "{{\"type\":\"purged\",\"log_index\":{log_index},\"leaf_hash\":\"{}\",\"purged_by\":{purged_by}}}\n",
        BASE64.encode(leaf)
    )
    .into_bytes()
}

/// The line of an event an erasure redacted (logged before sealed parties, so its content no
/// longer hashes to its leaf): what is left of it, its leaf hash as logged, and the erasure
/// records that account for it (with its newline).
pub fn ndjson_erased_line(event: &Event, leaf: &Hash) -> Vec<u8> {
    let envelope = crate::canonical::canonical_json(&crate::canonical::event_envelope(event));
    let mut line = format!(
        "{{\"type\":\"erased\",\"log_index\":{},\"leaf_hash\":\"{}\",\"erased_by\":{},\"event\":",
        event.log_index,
        BASE64.encode(leaf),
        serde_json::to_string(&event.erased_by).expect("numbers serialise"),
    )
    .into_bytes();
    line.extend_from_slice(&envelope);
    line.extend_from_slice(b"}\n");
    line
}

/// The closing line: the signed checkpoint and the consistency proof from the first `end` leaves
/// to the checkpoint's tree (with its newline).
pub fn ndjson_proof_line(end: u64, tree_size: u64, checkpoint_note: &str, consistency: &[Hash]) -> Vec<u8> {
    let proof = json!({
        "type": "proof",
        "end": end,
        "tree_size": tree_size,
        "checkpoint": checkpoint_note,
        "consistency": base64_hashes(consistency),
    });
    let mut line = serde_json::to_vec(&proof).expect("JSON values always serialise");
    line.push(b'\n');
    line
}

/// An entry line, read without building a JSON tree: the event stays raw bytes.
#[derive(serde::Deserialize)]
struct EntryLine<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    log_index: u64,
    #[serde(borrow)]
    leaf_hash: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    event: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    purged_by: Option<u64>,
    #[serde(default)]
    erased_by: Option<Vec<u64>>,
    #[serde(borrow, default)]
    disclosed: Option<&'a serde_json::value::RawValue>,
}

/// The members of an event envelope the verifier checks.
#[derive(serde::Deserialize)]
struct EventHead<'a> {
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    log_index: Option<u64>,
    #[serde(borrow, default)]
    organization_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    format: Option<std::borrow::Cow<'a, str>>,
}

/// What is wrong with an export, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportProblem {
    /// The 1-based line, when one line is at fault.
    pub line: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ExportProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(formatter, "line {line}: {}", self.message),
            None => formatter.write_str(&self.message),
        }
    }
}

/// What an intact export proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    /// The organization.
    pub organization_id: String,
    /// The log's origin.
    pub origin: String,
    /// The first position covered.
    pub start: u64,
    /// One past the last position covered.
    pub end: u64,
    /// Events in the export.
    pub events: u64,
    /// Positions the filter left out (leaf hashes only).
    pub omitted: u64,
    /// Positions whose events a purge removed (leaf hashes only).
    pub purged: u64,
    /// Events with personal data erased: sealed ones with a party withheld, and redacted ones
    /// (format v1, their leaves taken as given).
    pub erased: u64,
    /// The signed checkpoint's size.
    pub tree_size: u64,
}

/// Checks an NDJSON export line by line, in memory independent of its length.
pub struct ExportVerifier<'a> {
    key: &'a NoteVerifier,
    line: u64,
    header: Option<(String, String)>,
    frontier: Frontier,
    start: u64,
    events: u64,
    omitted: u64,
    purged: u64,
    erased: u64,
    finished: Option<u64>,
}

fn decode_hash(value: Option<&Value>, what: &str) -> Result<Hash, String> {
    value
        .and_then(Value::as_str)
        .and_then(|text| BASE64.decode(text).ok())
        .and_then(|bytes| Hash::try_from(bytes).ok())
        .ok_or_else(|| format!("{what} is not a base64 SHA-256 hash"))
}

fn decode_hashes(value: Option<&Value>, what: &str) -> Result<Vec<Hash>, String> {
    value
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{what} is missing"))?
        .iter()
        .map(|item| decode_hash(Some(item), what))
        .collect()
}

impl<'a> ExportVerifier<'a> {
    /// A verifier trusting checkpoints signed by `key`.
    pub fn new(key: &'a NoteVerifier) -> Self {
        Self {
            key,
            line: 0,
            header: None,
            frontier: Frontier::new(),
            start: 0,
            events: 0,
            omitted: 0,
            purged: 0,
            erased: 0,
            finished: None,
        }
    }

    fn problem(&self, message: impl Into<String>) -> ExportProblem {
        ExportProblem {
            line: Some(self.line),
            message: message.into(),
        }
    }

    /// Checks the next line (without its newline).
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), ExportProblem> {
        self.line += 1;
        if self.finished.is_some() {
            return Err(self.problem("text after the proof line"));
        }
        if self.header.is_some()
            && let Ok(entry) = serde_json::from_slice::<EntryLine<'_>>(line)
            && matches!(entry.kind.as_ref(), "event" | "omitted" | "purged" | "erased")
        {
            return self.entry(&entry).map_err(|message| self.problem(message));
        }
        let value: Value = serde_json::from_slice(line).map_err(|error| self.problem(format!("not JSON: {error}")))?;
        let Value::Object(object) = value else {
            return Err(self.problem("not a JSON object"));
        };
        let kind = object.get("type").and_then(Value::as_str).unwrap_or_default();
        if self.header.is_none() {
            return if kind == "header" {
                self.header(&object).map_err(|message| self.problem(message))
            } else {
                Err(self.problem("the export does not start with its header line"))
            };
        }
        match kind {
            "event" | "omitted" | "purged" | "erased" => {
                Err(self.problem("the line lacks `log_index`, `leaf_hash` or its event"))
            }
            "proof" => self.proof(&object).map_err(|message| self.problem(message)),
            "header" => Err(self.problem("a second header line")),
            other => Err(self.problem(format!("unknown line type `{other}`"))),
        }
    }

    fn header(&mut self, header: &Map<String, Value>) -> Result<(), String> {
        let text = |name: &str| {
            header
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("the header has no `{name}`"))
        };
        let format = text("format")?;
        if format != NDJSON_EXPORT_FORMAT_V1 {
            return Err(format!("unknown export format `{format}`"));
        }
        let start = header
            .get("start")
            .and_then(Value::as_u64)
            .ok_or("the header has no `start`")?;
        let left = decode_hashes(header.get("left"), "the header's `left`")?;
        let mut hashes = left.iter();
        let frontier = Frontier::from_stored(start, &mut |_, _| hashes.next().copied().ok_or(())).map_err(|()| {
            format!(
                "the header's `left` has {} hashes, too few for start {start}",
                left.len()
            )
        })?;
        if hashes.next().is_some() {
            return Err(format!(
                "the header's `left` has {} hashes, too many for start {start}",
                left.len()
            ));
        }
        self.frontier = frontier;
        self.start = start;
        self.header = Some((text("organization_id")?, text("origin")?));
        Ok(())
    }

    fn entry(&mut self, entry: &EntryLine<'_>) -> Result<(), String> {
        let expected = self.frontier.size();
        let position = entry.log_index;
        if position != expected {
            return Err(format!(
                "expected position {expected} here but found position {position}: \
                 entries were removed, duplicated or reordered"
            ));
        }
        let listed = BASE64
            .decode(entry.leaf_hash.as_bytes())
            .ok()
            .and_then(|bytes| Hash::try_from(bytes).ok())
            .ok_or("`leaf_hash` is not a base64 SHA-256 hash")?;
        let leaf = if entry.kind == "event" {
            let raw = entry.event.ok_or("the event line has no `event`")?;
            let head: EventHead<'_> = serde_json::from_str(raw.get())
                .map_err(|error| format!("the event is not an event envelope: {error}"))?;
            let id = head.id.as_deref().unwrap_or("?");
            if head.log_index != Some(position) {
                return Err(format!("event {id} claims another position than {position}"));
            }
            let (organization, _) = self.header.as_ref().expect("entries follow the header");
            if head.organization_id.as_deref() != Some(organization.as_str()) {
                return Err(format!("event {id} belongs to another organization"));
            }
            // The bytes as written are the canonical bytes the leaf commits to; a file whose
            // JSON was merely reformatted is re-canonicalised before giving up.
            let mut leaf = merkle::leaf_hash(raw.get().as_bytes());
            if leaf != listed {
                let value: Value = serde_json::from_str(raw.get()).map_err(|error| error.to_string())?;
                leaf = merkle::leaf_hash(&canonical_json(&value));
            }
            if leaf != listed {
                return Err(format!(
                    "event {id} at position {position} does not hash to its leaf: its content was changed"
                ));
            }
            if head.format.as_deref() == Some(crate::canonical::EVENT_FORMAT_V2) {
                self.check_disclosed(raw, entry, position, id)?;
            }
            self.events += 1;
            leaf
        } else if entry.kind == "purged" {
            // Taken as given, as an omitted leaf is: the signed root checks it. The record that
            // removed it comes later in the log.
            match entry.purged_by {
                Some(record) if record > position => {}
                _ => return Err(format!("the purged position {position} names no later purge record")),
            }
            self.purged += 1;
            listed
        } else if entry.kind == "erased" {
            // An event an erasure redacted: taken as given, on the records it names, which come
            // later in the log.
            match &entry.erased_by {
                Some(records) if !records.is_empty() && records.iter().all(|&record| record > position) => {}
                _ => return Err(format!("the erased position {position} names no later erasure record")),
            }
            self.erased += 1;
            listed
        } else {
            self.omitted += 1;
            listed
        };
        self.frontier.push(leaf);
        Ok(())
    }

    /// Checks the disclosed parties of a sealed event against the seals its envelope holds.
    fn check_disclosed(
        &mut self,
        raw: &serde_json::value::RawValue,
        entry: &EntryLine<'_>,
        position: u64,
        id: &str,
    ) -> Result<(), String> {
        let envelope: Value = serde_json::from_str(raw.get()).map_err(|error| error.to_string())?;
        let disclosed: Value = match entry.disclosed {
            Some(disclosed) => serde_json::from_str(disclosed.get()).map_err(|error| error.to_string())?,
            None => {
                return Err(format!(
                    "event {id} at position {position} has sealed parties but no `disclosed`"
                ));
            }
        };
        let targets = envelope["targets"].as_array().map_or(0, Vec::len);
        let mut erased = false;
        for (party, seal, shown) in std::iter::once(("actor".to_owned(), &envelope["actor"], &disclosed["actor"]))
            .chain((0..targets).map(|index| {
                (
                    format!("target {index}"),
                    &envelope["targets"][index],
                    &disclosed["targets"][index],
                )
            }))
        {
            let seal = seal["seal"]
                .as_str()
                .ok_or_else(|| format!("event {id}: the {party} has no seal"))?;
            if shown.is_null() {
                erased = true;
            } else if !crate::seal::disclosure_matches(shown, seal) {
                return Err(format!(
                    "event {id} at position {position}: the disclosed {party} does not match its seal: \
                     its content was changed"
                ));
            }
        }
        if erased {
            match &entry.erased_by {
                Some(records) if !records.is_empty() && records.iter().all(|&record| record > position) => {}
                _ => {
                    return Err(format!(
                        "event {id} at position {position} withholds a party but names no later erasure record"
                    ));
                }
            }
            self.erased += 1;
        }
        Ok(())
    }

    fn proof(&mut self, proof: &Map<String, Value>) -> Result<(), String> {
        let end = proof
            .get("end")
            .and_then(Value::as_u64)
            .ok_or("the proof has no `end`")?;
        if end != self.frontier.size() {
            return Err(format!(
                "the proof covers positions up to {end}, but the lines end at {}: positions are missing",
                self.frontier.size()
            ));
        }
        let note = proof
            .get("checkpoint")
            .and_then(Value::as_str)
            .ok_or("the proof has no `checkpoint`")?;
        let checkpoint = self
            .key
            .verify(note)
            .map_err(|error| format!("the checkpoint's signature does not verify with the given key: {error}"))?;
        let (_, origin) = self.header.as_ref().expect("the proof follows the header");
        if &checkpoint.origin != origin {
            return Err(format!(
                "the checkpoint is for log `{}`, not `{origin}`",
                checkpoint.origin
            ));
        }
        let consistency = decode_hashes(proof.get("consistency"), "the proof's `consistency`")?;
        if end > checkpoint.size {
            return Err(format!(
                "the checkpoint covers {} entries, fewer than the export's {end}",
                checkpoint.size
            ));
        }
        if !merkle::verify_consistency(
            end,
            checkpoint.size,
            &self.frontier.root(),
            &checkpoint.root,
            &consistency,
        ) {
            return Err(format!(
                "the entries do not belong to the log the checkpoint signs (tree size {}): \
                 an entry between positions {} and {} was altered, removed or reordered",
                checkpoint.size,
                self.start,
                end.saturating_sub(1)
            ));
        }
        self.finished = Some(checkpoint.size);
        Ok(())
    }

    /// Ends the check: the export must have ended with its proof.
    pub fn finish(self) -> Result<ExportSummary, ExportProblem> {
        let (Some((organization_id, origin)), Some(tree_size)) = (self.header, self.finished) else {
            return Err(ExportProblem {
                line: None,
                message: "the export ends before its proof line: it is truncated".into(),
            });
        };
        Ok(ExportSummary {
            organization_id,
            origin,
            start: self.start,
            end: self.frontier.size(),
            events: self.events,
            omitted: self.omitted,
            purged: self.purged,
            erased: self.erased,
            tree_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, NoteSigner};
    use crate::event::{Actor, Context, EventInput, Target};
    use crate::id::EventId;

    fn event(organization_id: OrganizationId, log_index: u64, action: &str) -> Event {
        Event {
            id: EventId::from_ulid(ulid::Ulid::from_parts(1_700_000_000_000 + log_index, 7)),
            organization_id,
            log_index,
            received_at: Timestamp::from_unix_millis(1_700_000_000_000).unwrap(),
            schema_version: 1,
            input: EventInput {
                action: action.into(),
                occurred_at: Timestamp::from_unix_millis(1_700_000_000_000 + log_index as i64).unwrap(),
                version: None,
                actor: Actor {
                    id: "user_1".into(),
                    actor_type: "user".into(),
                    name: Some("Jon".into()),
                    metadata: None,
                },
                targets: vec![Target {
                    id: "team_1".into(),
                    target_type: "team".into(),
                    name: None,
                    metadata: None,
                }],
                context: Context {
                    location: "1.2.3.4".into(),
                    user_agent: None,
                },
                metadata: None,
                audit_trail: None,
                system: false,
            },
            seals: None,
            erased_by: Vec::new(),
        }
    }

    /// Writes an export of positions `[start, end)` of a log of `size` events, keeping events
    /// whose action is `keep`.
    fn export_file(size: u64, start: u64, end: u64, signer: &NoteSigner) -> Vec<Vec<u8>> {
        let organization_id = OrganizationId::from_ulid(ulid::Ulid::from_parts(1, 1));
        let origin = format!("test/{organization_id}");
        let events: Vec<Event> = (0..size)
            .map(|index| event(organization_id, index, if index % 3 == 0 { "skip" } else { "keep" }))
            .collect();
        let leaves: Vec<Hash> = events
            .iter()
            .map(|event| merkle::leaf_hash(&crate::canonical::canonical_event_bytes(event)))
            .collect();
        let mut left = Frontier::new();
        leaves[..start as usize].iter().for_each(|leaf| left.push(*leaf));
        let mut hashes = Vec::new();
        Frontier::from_stored(start, &mut |level, index| {
            let hash = merkle::root_of(&leaves[(index << level) as usize..((index + 1) << level) as usize]);
            hashes.push(hash);
            Ok::<_, ()>(hash)
        })
        .unwrap();
        let export = Export {
            id: ExportId::from_ulid(ulid::Ulid::from_parts(2, 2)),
            organization_id,
            format: ExportFormat::Ndjson,
            filter: ExportFilter {
                range_start: Timestamp::from_unix_millis(0).unwrap(),
                range_end: Timestamp::from_unix_millis(2_000_000_000_000).unwrap(),
                actions: vec!["keep".into()],
                actor_names: vec![],
                actor_ids: vec![],
                target_types: vec![],
            },
            state: ExportState::Pending,
            error: None,
            object_path: None,
            rows: None,
            bytes: None,
            attempts: 1,
            created_at: Timestamp::from_unix_millis(0).unwrap(),
            updated_at: Timestamp::from_unix_millis(0).unwrap(),
        };
        let mut lines = vec![ndjson_header(&export, &origin, start, &hashes)];
        for event in &events[start as usize..end as usize] {
            if export.filter.matches(event) {
                lines.push(ndjson_event_line(event));
            } else {
                lines.push(ndjson_omitted_line(event.log_index, &leaves[event.log_index as usize]));
            }
        }
        let note = signer.sign(&Checkpoint {
            origin,
            size,
            root: merkle::root_of(&leaves),
        });
        let consistency = merkle::consistency_proof(end, size, &mut |level: u32, index: u64| {
            Ok::<_, ()>(merkle::root_of(
                &leaves[(index << level) as usize..((index + 1) << level) as usize],
            ))
        })
        .unwrap();
        lines.push(ndjson_proof_line(end, size, &note, &consistency));
        lines
    }

    fn verify(lines: &[Vec<u8>], key: &NoteVerifier) -> Result<ExportSummary, ExportProblem> {
        let mut verifier = ExportVerifier::new(key);
        for line in lines {
            verifier.push_line(line.strip_suffix(b"\n").unwrap_or(line))?;
        }
        verifier.finish()
    }

    fn keys() -> (NoteSigner, NoteVerifier) {
        let signer = NoteSigner::new("test", &[7; 32]).unwrap();
        let verifier = NoteVerifier::parse(&signer.verifier_key()).unwrap();
        (signer, verifier)
    }

    #[test]
    fn intact_exports_verify_for_every_range() {
        let (signer, key) = keys();
        for (size, start, end) in [
            (1, 0, 1),
            (10, 0, 10),
            (10, 3, 7),
            (33, 5, 32),
            (17, 16, 17),
            (64, 0, 40),
        ] {
            let summary = verify(&export_file(size, start, end, &signer), &key)
                .unwrap_or_else(|problem| panic!("{size} {start} {end}: {problem}"));
            assert_eq!((summary.start, summary.end, summary.tree_size), (start, end, size));
            assert_eq!(summary.events + summary.omitted, end - start);
        }
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let (signer, key) = keys();
        let lines = export_file(20, 2, 18, &signer);
        let keep_line = (1..lines.len() - 1)
            .find(|index| lines[*index].starts_with(b"{\"type\":\"event\""))
            .unwrap();

        let mut removed = lines.clone();
        removed.remove(5);
        assert!(
            verify(&removed, &key)
                .unwrap_err()
                .message
                .contains("expected position 6 here but found position 7")
        );

        let mut last_removed = lines.clone();
        last_removed.remove(lines.len() - 2);
        assert!(
            verify(&last_removed, &key)
                .unwrap_err()
                .message
                .contains("positions are missing")
        );

        let mut swapped = lines.clone();
        swapped.swap(4, 5);
        assert!(verify(&swapped, &key).unwrap_err().to_string().contains("line 5"));

        let mut altered = lines.clone();
        altered[keep_line] = String::from_utf8(lines[keep_line].clone())
            .unwrap()
            .replace("1.2.3.4", "6.6.6.6")
            .into_bytes();
        let problem = verify(&altered, &key).unwrap_err();
        assert!(problem.message.contains("content was changed"), "{problem}");
        assert_eq!(problem.line, Some(keep_line as u64 + 1));

        // Rewriting the line's leaf hash too is caught by the checkpoint.
        let mut rewritten: Value = serde_json::from_slice(&altered[keep_line]).unwrap();
        let leaf = merkle::leaf_hash(&canonical_json(&rewritten["event"]));
        rewritten["leaf_hash"] = json!(BASE64.encode(leaf));
        altered[keep_line] = serde_json::to_vec(&rewritten).unwrap();
        assert!(
            verify(&altered, &key)
                .unwrap_err()
                .message
                .contains("do not belong to the log")
        );

        let truncated = &lines[..lines.len() - 1];
        assert!(verify(truncated, &key).unwrap_err().message.contains("truncated"));

        let other_key = NoteVerifier::parse(&NoteSigner::new("test", &[8; 32]).unwrap().verifier_key()).unwrap();
        assert!(
            verify(&lines, &other_key)
                .unwrap_err()
                .message
                .contains("does not verify")
        );
    }

    #[test]
    fn the_filter_round_trips_through_json_and_matches() {
        let organization_id = OrganizationId::from_ulid(ulid::Ulid::from_parts(1, 1));
        let filter = ExportFilter {
            range_start: Timestamp::from_unix_millis(1_700_000_000_000).unwrap(),
            range_end: Timestamp::from_unix_millis(1_700_000_000_005).unwrap(),
            actions: vec!["keep".into()],
            actor_names: vec!["Jon".into()],
            actor_ids: vec![],
            target_types: vec!["team".into(), "doc".into()],
        };
        assert_eq!(ExportFilter::from_json(&filter.to_json()), Some(filter.clone()));
        assert!(filter.matches(&event(organization_id, 1, "keep")));
        assert!(!filter.matches(&event(organization_id, 1, "skip")));
        assert!(
            !filter.matches(&event(organization_id, 5, "keep")),
            "range_end is exclusive"
        );
        let mut nameless = event(organization_id, 1, "keep");
        nameless.input.actor.name = None;
        assert!(!filter.matches(&nameless));
    }
}
