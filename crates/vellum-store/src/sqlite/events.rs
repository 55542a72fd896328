//! Events: appended in group commits, listed by `(occurred_at, seq)` with keyset cursors.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use vellum_core::pagination::KeyBound;
use vellum_core::{Event, EventId, OrganizationId, Page, PageRequest, Timestamp};

use super::ulid_from_blob;
use crate::listing::{Bound, contains_pattern, tighten};
use crate::{AppendOutcome, EventFilter, IDEMPOTENCY_WINDOW_MILLIS, IdempotencyClaim, LogRecord, StoreError};

/// Returns the internal key of a live organization.
pub(super) fn live_organization_seq(connection: &Connection, id: OrganizationId) -> Result<i64, StoreError> {
    let mut statement =
        connection.prepare_cached("select seq from organizations where id = ?1 and deleted_at is null")?;
    statement
        .query_row([id.ulid().to_bytes().as_slice()], |row| row.get(0))
        .optional()?
        .ok_or_else(|| StoreError::not_found("Organization", id))
}

pub(super) fn append(
    connection: &Connection,
    frontiers: &crate::verifiable_log::Frontiers<i64>,
    organization_id: OrganizationId,
    events: Vec<crate::payload::PreparedEvent>,
    idempotency: Option<IdempotencyClaim>,
) -> Result<AppendOutcome, StoreError> {
    append_to(connection, frontiers, organization_id, events, idempotency, false)
}

/// Appends events; `to_deleted` lets Vellum's own records (a purge's) reach the log of a deleted
/// organization, which outlives it.
pub(super) fn append_to(
    connection: &Connection,
    frontiers: &crate::verifiable_log::Frontiers<i64>,
    organization_id: OrganizationId,
    events: Vec<crate::payload::PreparedEvent>,
    idempotency: Option<IdempotencyClaim>,
    to_deleted: bool,
) -> Result<AppendOutcome, StoreError> {
    // The claim is checked before the organization is required to be live: a retry of a request
    // that was stored is answered as it was, even if the organization was deleted since.
    let (organization_seq, live): (i64, bool) = connection
        .prepare_cached("select seq, deleted_at is null from organizations where id = ?1")?
        .query_row([organization_id.ulid().to_bytes().as_slice()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?
        .ok_or_else(|| StoreError::not_found("Organization", organization_id))?;
    let now = crate::now();
    if let Some(claim) = &idempotency {
        let existing = connection
            .prepare_cached(
                "select request_hash, response, event_ids, created_at from idempotency_keys
                 where organization_seq = ?1 and key_hash = ?2",
            )?
            .query_row(
                params![organization_seq, claim.key_hash.as_slice()],
                StoredClaim::from_row,
            )
            .optional()?;
        if let Some(existing) = existing {
            if existing.created_at > now.unix_millis() - IDEMPOTENCY_WINDOW_MILLIS {
                return existing.outcome(claim.request_hash);
            }
            // Expired: the key starts over.
            connection
                .prepare_cached("delete from idempotency_keys where organization_seq = ?1 and key_hash = ?2")?
                .execute(params![organization_seq, claim.key_hash.as_slice()])?;
        }
    }
    if !live && !to_deleted {
        return Err(StoreError::not_found("Organization", organization_id));
    }

    let first_log_index: i64 = connection
        .prepare_cached("select coalesce(max(log_index) + 1, 0) from events where organization_seq = ?1")?
        .query_row([organization_seq], |row| row.get(0))?;

    let mut insert_event = connection.prepare_cached(
        "insert into events (id, organization_seq, log_index, occurred_at, received_at, action, actor_id,
                             actor_name, schema_version, payload, leaf_hash)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    let mut insert_target = connection.prepare_cached(
        "insert into event_targets (organization_seq, segment, target_type, target_id, occurred_at, event_seq, position)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut spans: Vec<SegmentSpan> = Vec::new();
    let mut stored = Vec::with_capacity(events.len());
    let mut leaves = Vec::with_capacity(events.len());
    for (log_index, prepared) in (first_log_index..).zip(events) {
        let crate::payload::PreparedEvent {
            mut event,
            leaf,
            payload,
        } = prepared;
        event.log_index = u64::try_from(log_index).unwrap_or_default();
        let leaf_hash = leaf.leaf_hash(event.log_index);
        let input = &event.input;
        insert_event.execute(params![
            event.id.ulid().to_bytes().as_slice(),
            organization_seq,
            log_index,
            input.occurred_at.unix_millis(),
            event.received_at.unix_millis(),
            input.action,
            input.actor.id,
            input.actor.name,
            event.schema_version,
            payload,
            leaf_hash.as_slice(),
        ])?;
        let event_seq = connection.last_insert_rowid();
        let segment = log_index >> SEGMENT_BITS;
        let occurred_at = input.occurred_at.unix_millis();
        match spans.last_mut() {
            Some(span) if span.segment == segment => {
                span.min_occurred_at = span.min_occurred_at.min(occurred_at);
                span.max_occurred_at = span.max_occurred_at.max(occurred_at);
            }
            _ => spans.push(SegmentSpan {
                segment,
                min_occurred_at: occurred_at,
                max_occurred_at: occurred_at,
            }),
        }
        if let Some(flat) = vellum_core::audit_trail::FlatEvent::of(input) {
            connection
                .prepare_cached(
                    "insert into audit_trail_events (event_seq, occurred_at, group_name, action_type, target_name, target_id)
                     values (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    event_seq,
                    input.occurred_at.unix_millis(),
                    flat.fields.group,
                    flat.fields.crud(),
                    flat.target_name,
                    flat.target_id,
                ])?;
        }
        for (position, target) in input.targets.iter().enumerate() {
            insert_target.execute(params![
                organization_seq,
                segment,
                target.target_type,
                target.id,
                input.occurred_at.unix_millis(),
                event_seq,
                i64::try_from(position).unwrap_or(i64::MAX),
            ])?;
        }
        leaves.push(leaf_hash);
        stored.push(event);
    }
    let mut record_span = connection.prepare_cached(
        "insert into event_segments (organization_seq, segment, min_occurred_at, max_occurred_at)
         values (?1, ?2, ?3, ?4)
         on conflict (organization_seq, segment) do update set
             min_occurred_at = min(min_occurred_at, excluded.min_occurred_at),
             max_occurred_at = max(max_occurred_at, excluded.max_occurred_at)",
    )?;
    for span in &spans {
        record_span.execute(params![
            organization_seq,
            span.segment,
            span.min_occurred_at,
            span.max_occurred_at
        ])?;
    }
    let log = super::log::SqliteLog {
        connection,
        organization_seq,
    };
    crate::verifiable_log::ready(frontiers.append(
        &log,
        organization_seq,
        u64::try_from(first_log_index).unwrap_or_default(),
        &leaves,
    ))?;
    if let Some(claim) = idempotency {
        connection
            .prepare_cached(
                "insert into idempotency_keys (organization_seq, key_hash, request_hash, response, event_ids, created_at)
                 values (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                organization_seq,
                claim.key_hash.as_slice(),
                claim.request_hash.as_slice(),
                claim.record,
                event_ids_blob(&stored),
                now.unix_millis()
            ])?;
    }
    Ok(AppendOutcome::Appended(stored))
}

pub(super) fn check_idempotency(
    connection: &Connection,
    organization_id: OrganizationId,
    key_hash: [u8; 16],
    request_hash: [u8; 16],
) -> Result<Option<AppendOutcome>, StoreError> {
    let cutoff = crate::now().unix_millis() - IDEMPOTENCY_WINDOW_MILLIS;
    connection
        .prepare_cached(
            "select k.request_hash, k.response, k.event_ids, k.created_at from idempotency_keys k
             join organizations o on o.seq = k.organization_seq
             where o.id = ?1 and k.key_hash = ?2 and k.created_at > ?3",
        )?
        .query_row(
            params![
                organization_id.ulid().to_bytes().as_slice(),
                key_hash.as_slice(),
                cutoff
            ],
            StoredClaim::from_row,
        )
        .optional()?
        .map(|stored| stored.outcome(request_hash))
        .transpose()
}

/// A claimed idempotency key as stored.
struct StoredClaim {
    request_hash: Vec<u8>,
    record: Option<String>,
    event_ids: Option<Vec<u8>>,
    created_at: i64,
}

impl StoredClaim {
    /// Reads `request_hash, response, event_ids, created_at`.
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            request_hash: row.get(0)?,
            record: row.get(1)?,
            event_ids: row.get(2)?,
            created_at: row.get(3)?,
        })
    }

    /// What a live claim answers to a request with this hash.
    fn outcome(self, request_hash: [u8; 16]) -> Result<AppendOutcome, StoreError> {
        Ok(if self.request_hash == request_hash {
            AppendOutcome::Replayed {
                record: self.record,
                event_ids: event_ids_from_blob(self.event_ids.as_deref())?,
            }
        } else {
            AppendOutcome::KeyReused
        })
    }
}

/// The ids of the events an append stored, 16 bytes each, in order.
fn event_ids_blob(events: &[Event]) -> Vec<u8> {
    events.iter().flat_map(|event| event.id.ulid().to_bytes()).collect()
}

fn event_ids_from_blob(blob: Option<&[u8]>) -> Result<Vec<EventId>, StoreError> {
    let blob = blob.unwrap_or_default();
    if !blob.len().is_multiple_of(16) {
        return Err(StoreError::Internal("stored event ids are not 16 bytes each".into()));
    }
    blob.chunks_exact(16)
        .map(|id| Ok(EventId::from_ulid(ulid_from_blob(id)?)))
        .collect()
}

pub(super) fn purge_idempotency_keys(connection: &Connection, before: Timestamp) -> Result<u64, StoreError> {
    let removed = connection.execute(
        "delete from idempotency_keys where created_at < ?1",
        [before.unix_millis()],
    )?;
    Ok(u64::try_from(removed).unwrap_or_default())
}

pub(super) const EVENT_COLUMNS: &str =
    "e.seq, e.id, e.log_index, e.occurred_at, e.received_at, e.action, e.schema_version, e.payload";

/// The position of an event in the listing order, for cursors.
fn cursor_position(connection: &Connection, organization_seq: i64, id: EventId) -> Result<(i64, i64), StoreError> {
    connection
        .prepare_cached("select occurred_at, seq from events where id = ?1 and organization_seq = ?2")?
        .query_row(params![id.ulid().to_bytes().as_slice(), organization_seq], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?
        .ok_or_else(|| StoreError::InvalidInput {
            field: "cursor",
            message: format!("{id} is not an event of this organization"),
        })
}

fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// How a listing query reads the events it considers.
enum Scope<'a> {
    /// One segment of the organization, driven by the index its filters select.
    Segment(i64),
    /// Only these events (a JSON array of `seq`s, from the search index) and those past the
    /// index's mark, read by key.
    Candidates(&'a str, i64),
}

/// Appends a filter's conditions (` and ...`) and their values. With `targets_drive`, the query
/// reads `event_targets t` joined to `events e`; otherwise `events e` alone, and target filters
/// become lookups of the event's own target rows. `time_column` is the driving table's.
fn push_filter(
    sql: &mut String,
    values: &mut Vec<Value>,
    filter: &EventFilter,
    time_column: &str,
    targets_drive: bool,
) {
    if targets_drive && !filter.target_types.is_empty() {
        push_in(sql, values, "t.target_type", &filter.target_types);
        if !filter.target_ids.is_empty() {
            sql.push_str(&format!(
                " and exists (select 1 from event_targets t2 where t2.organization_seq = t.organization_seq \
                   and t2.segment = t.segment and t2.target_id in ({}) and t2.occurred_at = t.occurred_at \
                   and t2.event_seq = t.event_seq)",
                placeholders(filter.target_ids.len())
            ));
            values.extend(filter.target_ids.iter().cloned().map(Value::Text));
        }
    } else if targets_drive {
        push_in(sql, values, "t.target_id", &filter.target_ids);
    } else {
        for (column, items) in [("target_type", &filter.target_types), ("target_id", &filter.target_ids)] {
            if !items.is_empty() {
                sql.push_str(&format!(
                    " and exists (select 1 from event_targets t where t.organization_seq = e.organization_seq \
                       and t.segment = {SEGMENT_OF_EVENT} and t.{column} in ({}) and t.occurred_at = e.occurred_at \
                       and t.event_seq = e.seq)",
                    placeholders(items.len())
                ));
                values.extend(items.iter().cloned().map(Value::Text));
            }
        }
    }
    push_in(sql, values, "e.action", &filter.actions);
    push_in(sql, values, "e.actor_id", &filter.actor_ids);
    push_in(sql, values, "e.actor_name", &filter.actor_names);
    if let Some(start) = filter.range_start {
        sql.push_str(&format!(" and {time_column} >= ?"));
        values.push(Value::Integer(start.unix_millis()));
    }
    if let Some(end) = filter.range_end {
        sql.push_str(&format!(" and {time_column} < ?"));
        values.push(Value::Integer(end.unix_millis()));
    }
    if let Some(search) = &filter.search {
        push_search(sql, values, search);
    }
}

/// Starts a listing query over `scope`: `select <columns> from … where <organization and scope>`,
/// with `targets_drive` as in [`push_filter`]. Returns the SQL and the time and seq columns.
/// For a segment, the organization and the segment are the first two values: `list` rebinds the
/// second as it walks.
fn scoped_select(
    columns: &str,
    organization_seq: i64,
    scope: &Scope<'_>,
    targets_drive: bool,
    values: &mut Vec<Value>,
) -> (String, &'static str, &'static str) {
    match scope {
        Scope::Segment(segment) if targets_drive => {
            values.extend([Value::Integer(organization_seq), Value::Integer(*segment)]);
            (
                format!(
                    "select {columns} from event_targets t join events e on e.seq = t.event_seq \
                     where t.organization_seq = ? and t.segment = ?"
                ),
                "t.occurred_at",
                "t.event_seq",
            )
        }
        Scope::Segment(segment) => {
            values.extend([Value::Integer(organization_seq), Value::Integer(*segment)]);
            (
                format!("select {columns} from events e where e.organization_seq = ? and {SEGMENT_OF_EVENT} = ?"),
                "e.occurred_at",
                "e.seq",
            )
        }
        Scope::Candidates(seqs, mark) => {
            values.extend([
                Value::Text((*seqs).to_owned()),
                Value::Integer(*mark),
                Value::Integer(organization_seq),
            ]);
            // CROSS JOIN keeps the candidates the outer loop: each is one lookup by key, never
            // a scan of the organization checking membership row by row. UNION drops a
            // candidate that is also past the mark.
            (
                format!(
                    "select {columns} from (select value as seq from json_each(?) \
                     union select seq from events where seq > ?) c cross join events e \
                     where e.seq = c.seq and e.organization_seq = ?"
                ),
                "e.occurred_at",
                "e.seq",
            )
        }
    }
}

/// Log positions per segment, as a shift: an event's segment is `log_index >> SEGMENT_BITS`.
/// The indexes of migration 8 are built on the same expression, which [`SEGMENT_OF_EVENT`] spells
/// exactly as they do so that SQLite matches it to them.
pub(super) const SEGMENT_BITS: u32 = 15;
const SEGMENT_OF_EVENT: &str = "(e.log_index >> 15)";

/// A segment of one organization's log and the time span of its events.
#[derive(Clone, Copy, Debug)]
struct SegmentSpan {
    segment: i64,
    min_occurred_at: i64,
    max_occurred_at: i64,
}

/// The organization's segments that may hold events in `[lower, upper]` (milliseconds, inclusive),
/// in the order a listing walks them: by latest event, newest first, or by earliest, oldest first.
fn segment_spans(
    connection: &Connection,
    organization_seq: i64,
    lower: Option<i64>,
    upper: Option<i64>,
    ascending: bool,
) -> Result<Vec<SegmentSpan>, StoreError> {
    let mut spans = connection
        .prepare_cached(
            "select segment, min_occurred_at, max_occurred_at from event_segments
             where organization_seq = ?1 and max_occurred_at >= ?2 and min_occurred_at <= ?3",
        )?
        .query_map(
            params![organization_seq, lower.unwrap_or(i64::MIN), upper.unwrap_or(i64::MAX)],
            |row| {
                Ok(SegmentSpan {
                    segment: row.get(0)?,
                    min_occurred_at: row.get(1)?,
                    max_occurred_at: row.get(2)?,
                })
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    if ascending {
        spans.sort_by_key(|span| (span.min_occurred_at, span.segment));
    } else {
        spans.sort_by_key(|span| std::cmp::Reverse((span.max_occurred_at, span.segment)));
    }
    Ok(spans)
}

/// Collects the first `fetch` rows in listing order, `(occurred_at, seq)` ascending or descending,
/// from segments walked in [`segment_spans`] order: each segment is asked for its own first
/// `fetch`, and the walk stops as soon as the next segment cannot hold a row that would make the
/// page (its whole span lies past the `fetch`-th row found so far). When segments follow time, as
/// they do unless events arrive long after they occurred, that is one or two segments.
fn walk_segments<T>(
    spans: &[SegmentSpan],
    ascending: bool,
    fetch: usize,
    mut query: impl FnMut(i64) -> Result<Vec<(i64, i64, T)>, StoreError>,
) -> Result<Vec<(i64, i64, T)>, StoreError> {
    let order = |rows: &mut Vec<(i64, i64, T)>| {
        if ascending {
            rows.sort_by_key(|row| (row.0, row.1));
        } else {
            rows.sort_by_key(|row| std::cmp::Reverse((row.0, row.1)));
        }
        rows.truncate(fetch);
    };
    let mut rows = Vec::new();
    for span in spans {
        if rows.len() >= fetch {
            order(&mut rows);
            let last = rows.last().map_or(0, |row: &(i64, i64, T)| row.0);
            let cannot_improve = if ascending {
                span.min_occurred_at > last
            } else {
                span.max_occurred_at < last
            };
            if cannot_improve {
                break;
            }
        }
        rows.extend(query(span.segment)?);
    }
    order(&mut rows);
    Ok(rows)
}

/// At most this many events are read by key when the search index narrows a `search`; a term
/// that matches more is common enough that scanning newest first finds a page quickly.
const SEARCH_CANDIDATES: usize = 4_096;

/// At most this many events past the search index's mark (not indexed yet, see `search`) are
/// checked directly alongside its candidates; further behind (an upgraded store being indexed),
/// listings scan as they did before the index.
const SEARCH_TAIL: i64 = 50_000;

/// The events that may match `search`, when the search index can narrow them to a few: a JSON
/// array of their `seq`s and the index's mark (events past it are not indexed yet and must be
/// checked as well). `None` when the listing should scan instead.
fn search_candidates(connection: &Connection, search: &str) -> Result<Option<(String, i64)>, StoreError> {
    if trigram_queries(search).is_none() {
        return Ok(None);
    }
    // The mark first: the index rows read next are at least as recent, so nothing at or below
    // the mark is missed, and everything above it is checked directly.
    let (mark, newest): (i64, i64) = connection
        .prepare_cached(
            "select (select indexed_seq from search.search_state where id = 1),
                    (select coalesce(max(seq), 0) from events)",
        )?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    if newest - mark > SEARCH_TAIL {
        return Ok(None);
    }
    let Some(seqs) = rare_trigram_candidates(connection, search)? else {
        return Ok(None);
    };
    let seqs = serde_json::to_string(&seqs).map_err(|error| StoreError::Internal(error.to_string()))?;
    Ok(Some((seqs, mark)))
}

/// The most trigrams of a term looked up in the search index; more would only narrow a set that
/// is already small, at a cost per trigram.
const MAX_QUERY_TRIGRAMS: usize = 8;

/// FTS5 queries for the trigrams of `term`, one each (case folded by the index): an event holds
/// `term` in one of its values only if its indexed text holds every one of them. `None` for
/// terms shorter than three characters, which the index cannot look up.
fn trigram_queries(term: &str) -> Option<Vec<String>> {
    let characters: Vec<char> = term.chars().collect();
    if characters.len() < 3 {
        return None;
    }
    // FTS5 cannot take a NUL in a query; dropping a trigram only widens the candidates.
    let mut trigrams: Vec<String> = characters
        .windows(3)
        .filter(|window| !window.contains(&'\0'))
        .map(|window| window.iter().collect())
        .collect();
    if trigrams.is_empty() {
        return None;
    }
    trigrams.sort_unstable();
    trigrams.dedup();
    if trigrams.len() > MAX_QUERY_TRIGRAMS {
        let step = trigrams.len() as f64 / MAX_QUERY_TRIGRAMS as f64;
        trigrams = (0..MAX_QUERY_TRIGRAMS)
            .map(|index| trigrams[((index as f64) * step) as usize].clone())
            .collect();
    }
    Some(
        trigrams
            .iter()
            .map(|trigram| format!("\"{}\"", trigram.replace('"', "\"\"")))
            .collect(),
    )
}

/// How many events of one trigram are read, at most, to learn whether it is rare.
const TRIGRAM_PROBE: usize = 16_384;

/// The events (`seq`s) that may hold `term`: those holding every one of its rarer trigrams
/// (held by at most [`TRIGRAM_PROBE`] events each), or, when all of them are commoner, all of
/// its trigrams at once. `None` when that is still more than [`SEARCH_CANDIDATES`], or the term
/// is too short.
///
/// Why not one FTS5 query of all trigrams: with `detail=none` an AND walks every list it
/// combines, and at 10 million events the list of a common trigram ("are", "ing") holds
/// millions. Even a rare word's trigrams are held by thousands of events each (random ids hold
/// every trigram of letters and digits), but reading a few thousand entries per trigram and
/// intersecting the short lists costs a few milliseconds whatever the store's size.
fn rare_trigram_candidates(connection: &Connection, term: &str) -> Result<Option<Vec<i64>>, StoreError> {
    let Some(queries) = trigram_queries(term) else {
        return Ok(None);
    };
    let mut statement =
        connection.prepare_cached("select rowid from search.event_search where event_search match ?1 limit ?2")?;
    let probe = i64::try_from(TRIGRAM_PROBE + 1).unwrap_or(i64::MAX);
    let mut candidates: Option<Vec<i64>> = None;
    for query in &queries {
        let seqs = statement
            .query_map(params![query, probe], |row| row.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        if seqs.len() > TRIGRAM_PROBE {
            continue;
        }
        candidates = Some(match candidates {
            None => seqs,
            Some(kept) => {
                let held: std::collections::HashSet<i64> = seqs.into_iter().collect();
                kept.into_iter().filter(|seq| held.contains(seq)).collect()
            }
        });
        if candidates.as_ref().is_some_and(Vec::is_empty) {
            break;
        }
    }
    let limit = i64::try_from(SEARCH_CANDIDATES + 1).unwrap_or(i64::MAX);
    if candidates.is_none() {
        // Every trigram is common; together they may still be rare.
        let seqs = statement
            .query_map(params![queries.join(" AND "), limit], |row| row.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        if seqs.len() <= SEARCH_CANDIDATES {
            candidates = Some(seqs);
        }
    }
    Ok(candidates.filter(|seqs| seqs.len() <= SEARCH_CANDIDATES))
}

/// Appends the keyword search condition: `search` appears, ignoring ASCII case, in the action or
/// in any value of the stored payload (parties, context, metadata, legacy fields; not the seals'
/// salts nor the positions of erasure records, which are Vellum's, not the event's).
fn push_search(sql: &mut String, values: &mut Vec<Value>, search: &str) {
    // Search matches values (strings, numbers, booleans), never JSON keys or syntax, and
    // sees text unescaped. When the term has nothing JSON would escape, a plain LIKE on the
    // raw payload is a cheap necessary condition that spares most rows the JSON walk.
    let pattern = contains_pattern(search);
    let escapes_in_json = search
        .chars()
        .any(|character| matches!(character, '"' | '\\') || character.is_control());
    // `+` keeps SQLite from planning around the pattern's value (the LIKE optimisation on the
    // action's index), which would make it prepare the statement again at every new binding.
    sql.push_str(r" and (+e.action like ? escape '\'");
    values.push(Value::Text(pattern.clone()));
    if escapes_in_json {
        sql.push_str(
            r" or exists (select 1 from json_tree(json_remove(e.payload, '$.seals', '$.erased_by')) j where j.atom is not null and j.atom like ? escape '\'))",
        );
    } else {
        sql.push_str(
            r" or (e.payload like ? escape '\' and exists (select 1 from json_tree(json_remove(e.payload, '$.seals', '$.erased_by')) j
                 where j.atom is not null and j.atom like ? escape '\')))",
        );
        values.push(Value::Text(pattern.clone()));
    }
    values.push(Value::Text(pattern));
}

/// What an export of these events will hold: how many, the log positions they span, and the
/// most targets any of them names. Summed over the organization's segments (or over the search
/// index's candidates), each counted with the index its filters select.
pub(super) fn bounds(
    connection: &Connection,
    organization_id: OrganizationId,
    filter: &EventFilter,
) -> Result<crate::EventBounds, StoreError> {
    let organization_seq = live_organization_seq(connection, organization_id)?;
    let aggregates = "count(distinct e.seq), min(e.log_index), max(e.log_index), \
                      coalesce(max(json_array_length(e.payload, '$.targets')), 0)";
    let candidates = match &filter.search {
        Some(search) => search_candidates(connection, search)?,
        None => None,
    };
    let lower = filter.range_start.map(Timestamp::unix_millis);
    let upper = filter.range_end.map(|end| end.unix_millis().saturating_sub(1));
    let scopes: Vec<(Scope<'_>, bool)> = match &candidates {
        Some((seqs, mark)) => vec![(Scope::Candidates(seqs, *mark), false)],
        None => {
            // A segment that lies wholly inside the time range, under no other filter, is counted
            // from the log-position index and the target rows alone: no event row is read, and no
            // event's JSON is parsed to count its targets.
            let only_time = filter.actions.is_empty()
                && filter.actor_ids.is_empty()
                && filter.actor_names.is_empty()
                && filter.target_types.is_empty()
                && filter.target_ids.is_empty()
                && filter.search.is_none();
            segment_spans(connection, organization_seq, lower, upper, true)?
                .into_iter()
                .map(|span| {
                    let whole = only_time
                        && lower.is_none_or(|lower| lower <= span.min_occurred_at)
                        && upper.is_none_or(|upper| span.max_occurred_at <= upper);
                    (Scope::Segment(span.segment), whole)
                })
                .collect()
        }
    };
    let targets_drive = candidates.is_none() && (!filter.target_types.is_empty() || !filter.target_ids.is_empty());
    let (mut count, mut first, mut last, mut max_targets) = (0_i64, None::<i64>, None::<i64>, 0_i64);
    for (scope, whole) in &scopes {
        let (scope_count, scope_first, scope_last, scope_targets) = match scope {
            Scope::Segment(segment) if *whole => whole_segment_bounds(connection, organization_seq, *segment)?,
            _ => {
                let mut values = Vec::new();
                let (mut sql, time_column, _) =
                    scoped_select(aggregates, organization_seq, scope, targets_drive, &mut values);
                push_filter(&mut sql, &mut values, filter, time_column, targets_drive);
                connection
                    .prepare_cached(&sql)?
                    .query_row(params_from_iter(values), |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?
            }
        };
        count += scope_count;
        first = first.into_iter().chain(scope_first).min();
        last = last.into_iter().chain(scope_last).max();
        max_targets = max_targets.max(scope_targets);
    }
    let to_u64 = |value: i64| u64::try_from(value).map_err(|_| corrupt("a negative count or position"));
    Ok(crate::EventBounds {
        events: to_u64(count)?,
        log_range: match (first, last) {
            (Some(first), Some(last)) => Some((to_u64(first)?, to_u64(last)? + 1)),
            _ => None,
        },
        max_targets: to_u64(max_targets)?,
    })
}

/// `bounds` of every event of one segment: counted on the log-position index, and the widest
/// event's targets from the target rows' positions (an event's targets are 0, 1, … in order).
fn whole_segment_bounds(
    connection: &Connection,
    organization_seq: i64,
    segment: i64,
) -> Result<(i64, Option<i64>, Option<i64>, i64), StoreError> {
    let first_position = segment << SEGMENT_BITS;
    let end_position = (segment + 1) << SEGMENT_BITS;
    let (count, first, last) = connection
        .prepare_cached(
            "select count(*), min(log_index), max(log_index) from events
             where organization_seq = ?1 and log_index >= ?2 and log_index < ?3",
        )?
        .query_row(params![organization_seq, first_position, end_position], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    let targets: i64 = connection
        .prepare_cached(
            "select coalesce(max(position) + 1, 0) from event_targets
             where organization_seq = ?1 and segment = ?2",
        )?
        .query_row(params![organization_seq, segment], |row| row.get(0))?;
    Ok((count, first, last, targets))
}

pub(super) fn list(
    connection: &Connection,
    organization_id: OrganizationId,
    filter: &EventFilter,
    page: &PageRequest<EventId>,
) -> Result<Page<Event, EventId>, StoreError> {
    let organization_seq = live_organization_seq(connection, organization_id)?;
    let plan = page.plan();
    let bound = match &plan.bound {
        None => None,
        Some(KeyBound::Above(id)) => Some((true, cursor_position(connection, organization_seq, *id)?)),
        Some(KeyBound::Below(id)) => Some((false, cursor_position(connection, organization_seq, *id)?)),
    };
    let direction = if plan.ascending { "asc" } else { "desc" };
    let mut filter = filter.clone();
    let bound = tighten(bound, &mut filter.range_start, &mut filter.range_end);
    let filter = &filter;
    let fetch = usize::try_from(plan.fetch).unwrap_or(usize::MAX);

    // A rare search term is answered from the search index's candidates alone.
    let candidates = match &filter.search {
        Some(search) => search_candidates(connection, search)?,
        None => None,
    };
    // Otherwise segment by segment. Target filters are answered from `event_targets`, whose
    // primary key and index lead with (organization, segment, target type or id, occurred_at):
    // the newest matching events of a segment come first without reading any other event.
    // Everything else is answered from `events` itself.
    let targets_drive = candidates.is_none() && (!filter.target_types.is_empty() || !filter.target_ids.is_empty());
    // Each scope yields keys only, `(occurred_at, seq)`, read from its covering index; the page's
    // events are loaded once the walk has chosen them. (When segments overlap in time, a walk asks
    // several segments for a page each, and most of those rows are not kept.)
    let columns = if targets_drive {
        "distinct t.occurred_at, t.event_seq"
    } else {
        "e.occurred_at, e.seq"
    };
    // The SQL and its values are built once; walking segments rebinds only the segment (the
    // second value), so that probing a hundred segments costs a hundred index seeks, not a
    // hundred rounds of building SQL.
    let build = |scope: Scope<'_>| -> (String, Vec<Value>) {
        let mut values = Vec::new();
        let (mut sql, time_column, seq_column) =
            scoped_select(columns, organization_seq, &scope, targets_drive, &mut values);
        push_filter(&mut sql, &mut values, filter, time_column, targets_drive);
        push_keyset(&mut sql, &mut values, bound, time_column, seq_column);
        sql.push_str(&format!(
            " order by {time_column} {direction}, {seq_column} {direction} limit ?"
        ));
        values.push(Value::Integer(i64::from(plan.fetch)));
        (sql, values)
    };
    let run = |sql: &str, values: &[Value]| -> Result<Vec<(i64, i64, ())>, StoreError> {
        let mut statement = connection.prepare_cached(sql)?;
        statement
            .query_map(params_from_iter(values.iter()), |row| {
                Ok((row.get(0)?, row.get(1)?, ()))
            })?
            .map(|row| row.map_err(StoreError::from))
            .collect()
    };
    let rows = match &candidates {
        Some((seqs, mark)) => {
            let (sql, values) = build(Scope::Candidates(seqs, *mark));
            run(&sql, &values)?
        }
        None => {
            let (mut lower, mut upper) = (
                filter.range_start.map(Timestamp::unix_millis),
                filter.range_end.map(|end| end.unix_millis().saturating_sub(1)),
            );
            match bound {
                Some((true, (occurred_at, _))) => lower = Some(lower.map_or(occurred_at, |l| l.max(occurred_at))),
                Some((false, (occurred_at, _))) => upper = Some(upper.map_or(occurred_at, |u| u.min(occurred_at))),
                None => {}
            }
            let spans = segment_spans(connection, organization_seq, lower, upper, plan.ascending)?;
            let (sql, mut values) = build(Scope::Segment(0));
            walk_segments(&spans, plan.ascending, fetch, |segment| {
                values[1] = Value::Integer(segment);
                run(&sql, &values)
            })?
        }
    };
    let seqs: Vec<i64> = rows.iter().map(|row| row.1).collect();
    let events = events_by_seq(connection, organization_id, &seqs)?;
    Ok(page.finish(events, |event| event.id))
}

/// Keyset: `(occurred_at, seq)` strictly past the cursor, written so that the index range on
/// occurred_at does the work and only the boundary millisecond is filtered row by row.
fn push_keyset(sql: &mut String, values: &mut Vec<Value>, bound: Bound, time_column: &str, seq_column: &str) {
    if let Some((above, (occurred_at, seq))) = bound {
        let (range, strict, tie) = if above { (">=", ">", ">") } else { ("<=", "<", "<") };
        sql.push_str(&format!(
            " and {time_column} {range} ? and ({time_column} {strict} ? or {seq_column} {tie} ?)"
        ));
        values.extend([
            Value::Integer(occurred_at),
            Value::Integer(occurred_at),
            Value::Integer(seq),
        ]);
    }
}

fn push_in(sql: &mut String, values: &mut Vec<Value>, column: &str, items: &[String]) {
    if !items.is_empty() {
        sql.push_str(&format!(" and {column} in ({})", placeholders(items.len())));
        values.extend(items.iter().cloned().map(Value::Text));
    }
}

/// Lists legacy Audit Trail events of every live organization by `(occurred_at, seq)`, driven by
/// `audit_trail_events`: its time index (or its group index, with a group filter) yields rows
/// in listing order, so a page reads only as many rows as it skips and returns.
pub(super) fn list_audit_trail(
    connection: &Connection,
    filter: &crate::AuditTrailFilter,
    page: &PageRequest<EventId>,
) -> Result<Page<Event, EventId>, StoreError> {
    let plan = page.plan();
    let position = |id: EventId| -> Result<(i64, i64), StoreError> {
        connection
            .prepare_cached(
                "select a.occurred_at, a.event_seq from events e join audit_trail_events a on a.event_seq = e.seq
                 where e.id = ?1",
            )?
            .query_row([id.ulid().to_bytes().as_slice()], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?
            .ok_or_else(|| StoreError::InvalidInput {
                field: "cursor",
                message: format!(
                    "{} is not an Audit Trail event",
                    vellum_core::AuditTrailEventId::from(id)
                ),
            })
    };
    let bound = match &plan.bound {
        None => None,
        Some(KeyBound::Above(id)) => Some((true, position(*id)?)),
        Some(KeyBound::Below(id)) => Some((false, position(*id)?)),
    };
    let mut range_start = filter.range_start;
    let mut range_end = filter.range_end;
    let bound = tighten(bound, &mut range_start, &mut range_end);
    let direction = if plan.ascending { "asc" } else { "desc" };

    // CROSS JOIN keeps audit_trail_events the outer loop, so the scan follows its index order.
    let mut sql = format!(
        "select {EVENT_COLUMNS}, o.id from audit_trail_events a cross join events e cross join organizations o
         where e.seq = a.event_seq and o.seq = e.organization_seq and o.deleted_at is null"
    );
    let mut values = Vec::new();
    push_in(&mut sql, &mut values, "a.group_name", &filter.groups);
    push_in(&mut sql, &mut values, "e.action", &filter.actions);
    push_in(&mut sql, &mut values, "a.action_type", &filter.action_types);
    push_in(&mut sql, &mut values, "e.actor_name", &filter.actor_names);
    push_in(&mut sql, &mut values, "e.actor_id", &filter.actor_ids);
    push_in(&mut sql, &mut values, "a.target_name", &filter.target_names);
    push_in(&mut sql, &mut values, "a.target_id", &filter.target_ids);
    if let Some(start) = range_start {
        sql.push_str(" and a.occurred_at >= ?");
        values.push(Value::Integer(start.unix_millis()));
    }
    if let Some(end) = range_end {
        sql.push_str(" and a.occurred_at < ?");
        values.push(Value::Integer(end.unix_millis()));
    }
    if let Some(search) = &filter.search {
        push_search(&mut sql, &mut values, search);
    }
    push_keyset(&mut sql, &mut values, bound, "a.occurred_at", "a.event_seq");
    sql.push_str(&format!(
        " order by a.occurred_at {direction}, a.event_seq {direction} limit ?"
    ));
    values.push(Value::Integer(i64::from(plan.fetch)));
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement
        .query_map(params_from_iter(values), read_event_of_its_organization)?
        .map(|row| row.map_err(StoreError::from).and_then(|decoded| decoded))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(rows, |event| event.id))
}

/// Loads events by `seq`, in the order given.
fn events_by_seq(
    connection: &Connection,
    organization_id: OrganizationId,
    seqs: &[i64],
) -> Result<Vec<Event>, StoreError> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "select {EVENT_COLUMNS} from events e where e.seq in ({})",
        placeholders(seqs.len())
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let mut loaded = statement
        .query_map(params_from_iter(seqs.iter().copied().map(Value::Integer)), |row| {
            let seq: i64 = row.get(0)?;
            Ok(read_event(row, organization_id)?.map(|event| (seq, event)))
        })?
        .map(|row| row.map_err(StoreError::from).and_then(|decoded| decoded))
        .collect::<Result<std::collections::HashMap<_, _>, _>>()?;
    seqs.iter()
        .map(|seq| {
            loaded
                .remove(seq)
                .ok_or_else(|| StoreError::Internal(format!("event {seq} vanished while listing")))
        })
        .collect()
}

/// The events at log positions `[start, end)` of an organization (deleted or not), in log order,
/// each decoded or with the reason it could not be, and what purges left of the others.
pub(super) fn events_by_log_range(
    connection: &Connection,
    organization_id: OrganizationId,
    organization_seq: i64,
    start: u64,
    end: u64,
) -> Result<Vec<LogRecord>, StoreError> {
    let sql = format!(
        "select {EVENT_COLUMNS}, e.leaf_hash from events e
         where e.organization_seq = ?1 and e.log_index >= ?2 and e.log_index < ?3 order by e.log_index"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let bound = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    let events = statement
        .query_map(params![organization_seq, bound(start), bound(end)], |row| {
            let log_index: i64 = row.get(2)?;
            let id: Vec<u8> = row.get(1)?;
            let event = read_event(row, organization_id)?.map_err(|error| error.to_string());
            let stored_leaf: Option<Vec<u8>> = row.get(8)?;
            Ok(LogRecord {
                log_index,
                event_id: ulid_from_blob(&id).ok().map(EventId::from_ulid),
                event,
                stored_leaf: stored_leaf.and_then(|bytes| vellum_core::merkle::Hash::try_from(bytes).ok()),
                purged_by: None,
            })
        })?
        .map(|row| row.map_err(StoreError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let purged = super::retention::purged_in_range(connection, organization_seq, bound(start), bound(end))?;
    Ok(crate::listing::merge_purged(events, purged))
}

pub(super) fn get(connection: &Connection, id: EventId) -> Result<Event, StoreError> {
    let sql = format!(
        "select {EVENT_COLUMNS}, o.id from events e join organizations o on o.seq = e.organization_seq
         where e.id = ?1 and o.deleted_at is null"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    statement
        .query_row([id.ulid().to_bytes().as_slice()], |row| {
            read_event_of_its_organization(row)
        })
        .optional()?
        .transpose()?
        .ok_or_else(|| StoreError::not_found("Audit log event", id))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored event has an invalid {what}"))
}

/// Reads `EVENT_COLUMNS` followed by the organization's id (column 8).
fn read_event_of_its_organization(row: &Row<'_>) -> rusqlite::Result<Result<Event, StoreError>> {
    let organization: Vec<u8> = row.get(8)?;
    Ok(ulid_from_blob(&organization)
        .map(OrganizationId::from_ulid)
        .and_then(|organization_id| {
            read_event(row, organization_id)
                .map_err(StoreError::from)
                .and_then(|decoded| decoded)
        }))
}

pub(super) fn read_event(
    row: &Row<'_>,
    organization_id: OrganizationId,
) -> rusqlite::Result<Result<Event, StoreError>> {
    let id: Vec<u8> = row.get(1)?;
    let log_index: i64 = row.get(2)?;
    let occurred_at: i64 = row.get(3)?;
    let received_at: i64 = row.get(4)?;
    let action: String = row.get(5)?;
    let schema_version: i64 = row.get(6)?;
    let payload: String = row.get(7)?;
    Ok((|| {
        let schema_version = u32::try_from(schema_version).map_err(|_| corrupt("schema version"))?;
        Ok(
            crate::payload::decode_payload(&payload)?.into_event(crate::payload::EventColumns {
                id: EventId::from_ulid(ulid_from_blob(&id)?),
                organization_id,
                log_index: u64::try_from(log_index).map_err(|_| corrupt("log index"))?,
                received_at: Timestamp::from_unix_millis(received_at).ok_or_else(|| corrupt("received_at"))?,
                schema_version,
                action,
                occurred_at: Timestamp::from_unix_millis(occurred_at).ok_or_else(|| corrupt("occurred_at"))?,
            }),
        )
    })())
}
