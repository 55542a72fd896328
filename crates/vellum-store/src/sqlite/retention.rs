//! Retention on the embedded store: purge steps, legal holds and giving freed pages back.
//!
//! A purge step runs as one job of the single writer, so it is one commit: it picks up to
//! `limit` events the rule covers (lowest positions first, found through the segment-led time
//! index, segment by segment), appends the purge record that names them, keeps their leaves in
//! `purged_leaf_runs` (runs of consecutive positions, marked with the record's position), and
//! deletes the event, target and legacy rows. The search index, in its own file, forgets them
//! right after the commit.

use rusqlite::{Connection, OptionalExtension, params};
use vellum_core::log_record::{ErasureRecord, PositionsDigest, RECORD_SCHEMA_VERSION, RecordedBy};
use vellum_core::merkle::Hash;
use vellum_core::seal::ErasureSubject;
use vellum_core::{Event, EventInput, OrganizationId, Timestamp};

use super::events::SEGMENT_BITS;
use crate::ids::IdGenerator;
use crate::verifiable_log::Frontiers;
use crate::{
    AppendOutcome, EraseStep, LegalHold, NewEvent, PurgeRule, PurgeStep, PurgedChunk, PurgedPosition, RetentionPolicy,
    StoreError,
};

/// Leaves per row of `purged_leaf_runs`: the most whose row stays within its b-tree page with
/// five rows to a 4 KiB page (migration 13).
const RUN_LEAVES: usize = 24;

/// What purges left of the positions `[start, end)` of a log, in log order: the runs this
/// version writes, and the rows of `purged_leaves` an earlier one wrote.
pub(super) fn purged_in_range(
    connection: &Connection,
    organization_seq: i64,
    start: i64,
    end: i64,
) -> Result<Vec<PurgedPosition>, StoreError> {
    let mut positions = Vec::new();
    // The run that starts at or before `start` may cover it; every later one starting before
    // `end` is in the range.
    let mut runs = connection.prepare_cached(
        "select first_index, purged_by, leaves from purged_leaf_runs
         where organization_seq = ?1 and first_index < ?3 and first_index >= coalesce(
             (select max(first_index) from purged_leaf_runs where organization_seq = ?1 and first_index <= ?2), ?2)
         order by first_index",
    )?;
    let rows = runs.query_map(params![organization_seq, start, end], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, Vec<u8>>(2)?))
    })?;
    for row in rows {
        let (first, purged_by, leaves) = row?;
        if leaves.is_empty() || leaves.len() % 32 != 0 {
            return Err(corrupt("run of leaves"));
        }
        let purged_by = u64::try_from(purged_by).map_err(|_| corrupt("purge record position"))?;
        for (offset, leaf) in (0i64..).zip(leaves.chunks_exact(32)) {
            let log_index = first + offset;
            if (start..end).contains(&log_index) {
                positions.push(PurgedPosition {
                    log_index: u64::try_from(log_index).map_err(|_| corrupt("log index"))?,
                    leaf: Hash::try_from(leaf).map_err(|_| corrupt("leaf hash"))?,
                    purged_by,
                });
            }
        }
    }
    let mut single = connection.prepare_cached(
        "select log_index, leaf_hash, purged_by from purged_leaves
         where organization_seq = ?1 and log_index >= ?2 and log_index < ?3 order by log_index",
    )?;
    let rows = single.query_map(params![organization_seq, start, end], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?, row.get::<_, i64>(2)?))
    })?;
    let mut earlier = false;
    for row in rows {
        let (log_index, leaf, purged_by) = row?;
        earlier = true;
        positions.push(PurgedPosition {
            log_index: u64::try_from(log_index).map_err(|_| corrupt("log index"))?,
            leaf: Hash::try_from(leaf.as_slice()).map_err(|_| corrupt("leaf hash"))?,
            purged_by: u64::try_from(purged_by).map_err(|_| corrupt("purge record position"))?,
        });
    }
    if earlier {
        positions.sort_unstable_by_key(|position| position.log_index);
    }
    Ok(positions)
}

/// Keeps the leaves of the positions a purge step removes (in log order), in runs of
/// consecutive positions of at most [`RUN_LEAVES`].
fn keep_leaves(
    connection: &Connection,
    organization_seq: i64,
    found: &[Candidate],
    record_position: i64,
) -> Result<(), StoreError> {
    let mut insert = connection.prepare_cached(
        "insert into purged_leaf_runs (organization_seq, first_index, purged_by, leaves) values (?1, ?2, ?3, ?4)",
    )?;
    let mut run: Vec<u8> = Vec::with_capacity(RUN_LEAVES * 32);
    let mut first = 0;
    for candidate in found {
        let next = first + i64::try_from(run.len() / 32).unwrap_or(i64::MAX);
        if !run.is_empty() && (candidate.log_index != next || run.len() == RUN_LEAVES * 32) {
            insert.execute(params![organization_seq, first, record_position, run])?;
            run.clear();
        }
        if run.is_empty() {
            first = candidate.log_index;
        }
        if candidate.leaf.len() != 32 {
            return Err(StoreError::Internal(format!(
                "the event at position {} has a leaf of {} bytes",
                candidate.log_index,
                candidate.leaf.len()
            )));
        }
        run.extend_from_slice(&candidate.leaf);
    }
    if !run.is_empty() {
        insert.execute(params![organization_seq, first, record_position, run])?;
    }
    Ok(())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("a purged position has an invalid {what}"))
}

fn hold_of(since: Option<i64>, reason: Option<String>) -> Result<Option<LegalHold>, StoreError> {
    since
        .map(|since| {
            Ok(LegalHold {
                reason,
                since: Timestamp::from_unix_millis(since).ok_or_else(|| corrupt("hold time"))?,
            })
        })
        .transpose()
}

pub(super) fn policies(connection: &Connection) -> Result<Vec<RetentionPolicy>, StoreError> {
    let mut statement = connection.prepare_cached(
        "select o.id, o.deleted_at is not null, o.retention_period_in_days, o.legal_hold_since, o.legal_hold_reason,
                (select coalesce(max(e.log_index) + 1, 0) from events e where e.organization_seq = o.seq)
         from organizations o
         where exists (select 1 from events e where e.organization_seq = o.seq)
         order by o.seq",
    )?;
    statement
        .query_map([], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, bool>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get::<_, Option<i64>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?
        .map(|row| {
            let (id, deleted, days, since, reason, size) = row?;
            Ok(RetentionPolicy {
                organization_id: OrganizationId::from_ulid(super::ulid_from_blob(&id)?),
                deleted,
                retention_period_in_days: days.and_then(|days| u32::try_from(days).ok()),
                legal_hold: hold_of(since, reason)?,
                log_size: u64::try_from(size).unwrap_or_default(),
            })
        })
        .collect()
}

/// The events a purge step removes: their rows' keys, positions, leaves and payload sizes.
struct Candidate {
    seq: i64,
    log_index: i64,
    leaf: Vec<u8>,
    payload_bytes: i64,
}

/// Up to `limit` events the rule covers, lowest positions first. Vellum's own records are never
/// purged: the verifier needs them to account for what was removed.
fn candidates(
    connection: &Connection,
    organization_seq: i64,
    rule: PurgeRule,
    limit: usize,
) -> Result<Vec<Candidate>, StoreError> {
    let below = i64::try_from(rule.below_log_index).unwrap_or(i64::MAX);
    let cutoff = rule.occurred_before.unix_millis();
    if below == 0 {
        return Ok(Vec::new());
    }
    let last_segment = (below - 1) >> SEGMENT_BITS;
    let segments: Vec<i64> = connection
        .prepare_cached(
            "select segment from event_segments
             where organization_seq = ?1 and segment <= ?2 and min_occurred_at < ?3 order by segment",
        )?
        .query_map(params![organization_seq, last_segment, cutoff], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut in_segment = connection.prepare_cached(
        "select e.seq, e.log_index, e.leaf_hash, octet_length(e.payload) from events e
         where e.organization_seq = ?1 and (e.log_index >> 15) = ?2 and e.occurred_at < ?3 and e.log_index < ?4
           and not (e.action like 'vellum.%' and e.payload like '%\"system\":true%')",
    )?;
    let mut found = Vec::new();
    for segment in segments {
        let mut rows = in_segment
            .query_map(params![organization_seq, segment, cutoff, below], |row| {
                Ok(Candidate {
                    seq: row.get(0)?,
                    log_index: row.get(1)?,
                    leaf: row.get(2)?,
                    payload_bytes: row.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.sort_unstable_by_key(|candidate| candidate.log_index);
        rows.truncate(limit - found.len());
        found.extend(rows);
        if found.len() >= limit {
            break;
        }
    }
    Ok(found)
}

/// An organization's row and whether a legal hold is in force (deleted organizations included).
fn organization_and_hold(connection: &Connection, organization_id: OrganizationId) -> Result<(i64, bool), StoreError> {
    connection
        .prepare_cached("select seq, legal_hold_since is not null from organizations where id = ?1")?
        .query_row([organization_id.ulid().to_bytes().as_slice()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?
        .ok_or_else(|| StoreError::not_found("Organization", organization_id))
}

pub(super) fn purge_step(
    connection: &Connection,
    frontiers: &Frontiers<i64>,
    ids: &IdGenerator,
    organization_id: OrganizationId,
    rule: PurgeRule,
    limit: u32,
) -> Result<(PurgeStep, Vec<i64>), StoreError> {
    let (organization_seq, held) = organization_and_hold(connection, organization_id)?;
    if held {
        return Ok((PurgeStep::Held, Vec::new()));
    }
    let found = candidates(connection, organization_seq, rule, limit.max(1) as usize)?;
    if found.is_empty() {
        return Ok((PurgeStep::Done, Vec::new()));
    }
    let mut digest = PositionsDigest::new();
    for candidate in &found {
        digest.push(u64::try_from(candidate.log_index).unwrap_or_default());
    }
    let record = rule.record(&digest);
    let now = crate::now();
    let appended = append_record(
        connection,
        frontiers,
        ids,
        organization_id,
        record.to_input(&organization_id.to_string(), now),
        now,
    )?;
    let record_position = i64::try_from(appended.log_index).unwrap_or(i64::MAX);

    connection.execute_batch(
        "create temp table if not exists purge_batch (seq integer primary key);
         delete from purge_batch;",
    )?;
    let mut insert = connection.prepare_cached("insert into temp.purge_batch (seq) values (?1)")?;
    let mut payload_bytes = 0u64;
    for candidate in &found {
        insert.execute([candidate.seq])?;
        payload_bytes += u64::try_from(candidate.payload_bytes).unwrap_or_default();
    }
    keep_leaves(connection, organization_seq, &found, record_position)?;
    let (first_segment, last_segment) = (
        found[0].log_index >> SEGMENT_BITS,
        found[found.len() - 1].log_index >> SEGMENT_BITS,
    );
    connection
        .prepare_cached(
            "delete from event_targets where organization_seq = ?1 and segment between ?2 and ?3
               and event_seq in (select seq from temp.purge_batch)",
        )?
        .execute(params![organization_seq, first_segment, last_segment])?;
    connection
        .prepare_cached("delete from audit_trail_events where event_seq in (select seq from temp.purge_batch)")?
        .execute([])?;
    let deleted = connection
        .prepare_cached("delete from events where seq in (select seq from temp.purge_batch)")?
        .execute([])?;
    if deleted != found.len() {
        return Err(StoreError::Internal(format!(
            "a purge step removed {deleted} events instead of {}",
            found.len()
        )));
    }
    let seqs = found.iter().map(|candidate| candidate.seq).collect();
    Ok((
        PurgeStep::Purged(PurgedChunk {
            record: appended,
            events: found.len() as u64,
            payload_bytes,
        }),
        seqs,
    ))
}

/// The events of an organization that name an erasure's subject: up to `limit`, lowest positions
/// first, as `(log_index, seq)`; found segment by segment through the actor and target-id
/// indexes. Vellum's own records are never erased.
fn naming(
    connection: &Connection,
    organization_seq: i64,
    subject: &ErasureSubject,
    limit: usize,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let segments: Vec<i64> = connection
        .prepare_cached("select segment from event_segments where organization_seq = ?1 order by segment")?
        .query_map([organization_seq], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut as_actor = connection.prepare_cached(
        "select e.log_index, e.seq from events e
         where e.organization_seq = ?1 and (e.log_index >> 15) = ?2 and e.actor_id = ?3
           and not (e.action like 'vellum.%' and e.payload like '%\"system\":true%')",
    )?;
    let mut as_target = connection.prepare_cached(
        "select e.log_index, e.seq from event_targets t cross join events e on e.seq = t.event_seq
         where t.organization_seq = ?1 and t.segment = ?2 and t.target_id = ?3
           and not (e.action like 'vellum.%' and e.payload like '%\"system\":true%')",
    )?;
    let mut found = std::collections::BTreeSet::new();
    for segment in segments {
        for id in &subject.ids {
            for statement in [&mut as_actor, &mut as_target] {
                let rows = statement.query_map(params![organization_seq, segment, id], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                })?;
                for row in rows {
                    found.insert(row?);
                }
            }
        }
        if found.len() >= limit {
            break;
        }
    }
    Ok(found.into_iter().take(limit).collect())
}

pub(super) fn erase_step(
    connection: &Connection,
    frontiers: &Frontiers<i64>,
    ids: &IdGenerator,
    organization_id: OrganizationId,
    subject: &ErasureSubject,
    by: &RecordedBy,
    limit: u32,
) -> Result<(EraseStep, Vec<i64>), StoreError> {
    let (organization_seq, held) = organization_and_hold(connection, organization_id)?;
    if held {
        return Ok((EraseStep::Held, Vec::new()));
    }
    let found = naming(connection, organization_seq, subject, limit.max(1) as usize)?;
    if found.is_empty() {
        return Ok((EraseStep::Done, Vec::new()));
    }
    let mut digest = PositionsDigest::new();
    for &(log_index, _) in &found {
        digest.push(u64::try_from(log_index).unwrap_or_default());
    }
    let now = crate::now();
    let record = ErasureRecord::of(&digest).to_input(&organization_id.to_string(), now, by);
    let appended = append_record(connection, frontiers, ids, organization_id, record, now)?;

    // Whatever the rewrite frees is overwritten with zeros, not left in free space.
    connection.pragma_update(None, "secure_delete", true)?;
    let rewritten = rewrite_erased(connection, organization_id, subject, appended.log_index, &found);
    connection.pragma_update(None, "secure_delete", "fast")?;
    rewritten?;
    let seqs = found.iter().map(|&(_, seq)| seq).collect();
    Ok((
        EraseStep::Erased {
            record: appended,
            events: found.len() as u64,
        },
        seqs,
    ))
}

/// Rewrites the found events without the subject: payload, indexed columns, target and legacy
/// rows.
fn rewrite_erased(
    connection: &Connection,
    organization_id: OrganizationId,
    subject: &ErasureSubject,
    record_position: u64,
    found: &[(i64, i64)],
) -> Result<(), StoreError> {
    let mut read = connection.prepare_cached(&format!(
        "select {} from events e where e.seq = ?1",
        super::events::EVENT_COLUMNS
    ))?;
    let mut update =
        connection.prepare_cached("update events set actor_id = ?2, actor_name = ?3, payload = ?4 where seq = ?1")?;
    let mut update_target =
        connection.prepare_cached("update event_targets set target_id = '' where event_seq = ?1 and position = ?2")?;
    let mut update_legacy = connection
        .prepare_cached("update audit_trail_events set target_name = ?2, target_id = ?3 where event_seq = ?1")?;
    let mut forgotten = subject.ids.clone();
    for &(_, seq) in found {
        let mut event = read.query_row([seq], |row| super::events::read_event(row, organization_id))??;
        crate::payload::note_erased_values(&mut forgotten, subject, &event);
        let erased_targets: Vec<usize> = event
            .input
            .targets
            .iter()
            .enumerate()
            .filter(|(_, target)| subject.ids.contains(&target.id))
            .map(|(position, _)| position)
            .collect();
        vellum_core::seal::erase(&mut event, subject, record_position);
        let payload = String::from_utf8(vellum_core::canonical::event_details_json(&event))
            .map_err(|_| StoreError::Internal("an erased payload is not UTF-8".into()))?;
        update.execute(params![seq, event.input.actor.id, event.input.actor.name, payload])?;
        for position in erased_targets {
            update_target.execute(params![seq, i64::try_from(position).unwrap_or_default()])?;
        }
        if let Some(flat) = vellum_core::audit_trail::FlatEvent::of(&event.input) {
            update_legacy.execute(params![seq, flat.target_name, flat.target_id])?;
        }
    }
    // Exports that are no longer run keep their filter: it must not keep the person either.
    let mut exports = connection.prepare_cached(
        "select x.seq, x.filter from exports x join organizations o on o.seq = x.organization_seq
         where o.id = ?1 and x.state <> 'pending'",
    )?;
    let filters: Vec<(i64, String)> = exports
        .query_map([organization_id.ulid().to_bytes().as_slice()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut update_filter = connection.prepare_cached("update exports set filter = ?2 where seq = ?1")?;
    for (seq, filter) in filters {
        if let Some(scrubbed) = crate::payload::filter_without(&filter, &forgotten) {
            update_filter.execute(params![seq, scrubbed])?;
        }
    }
    Ok(())
}

/// Rewrites the search entries of erased events from their stored payloads, with FTS5's
/// `secure-delete` so the old entries leave no trace in the file. Derived data: a failure is
/// logged; searches check every candidate against the payload anyway.
///
/// The index is written by its own thread, a batch at a time, each batch read before it is
/// written: a batch read before the erasure committed may still write the old text. So the
/// entries the index holds (up to its mark) are rewritten now, and, unless that covered every
/// erased event, again once the mark has moved: the batch in flight has then finished, and every
/// later one reads the erased payloads.
pub(super) fn reindex_erased(store_path: &std::path::Path, search_path: &std::path::Path, seqs: &[i64]) {
    let reindex = || -> rusqlite::Result<i64> {
        let connection = Connection::open(store_path)?;
        connection.busy_timeout(std::time::Duration::from_secs(30))?;
        connection.execute("attach database ?1 as search", [search_path.to_string_lossy()])?;
        let transaction = connection.unchecked_transaction()?;
        transaction.execute(
            "insert into search.event_search (event_search, rank) values ('secure-delete', 1)",
            [],
        )?;
        let mark: i64 =
            transaction.query_row("select indexed_seq from search.search_state where id = 1", [], |row| {
                row.get(0)
            })?;
        {
            let mut delete = transaction.prepare("delete from search.event_search where rowid = ?1")?;
            let mut insert = transaction.prepare(
                "insert into search.event_search (rowid, body)
                 select seq, action || char(10) || coalesce((select group_concat(atom, char(10))
                     from json_tree(json_remove(payload, '$.seals', '$.erased_by')) where atom is not null), '')
                 from main.events where seq = ?1",
            )?;
            for &seq in seqs.iter().filter(|&&seq| seq <= mark) {
                delete.execute([seq])?;
                insert.execute([seq])?;
            }
        }
        transaction.commit()?;
        Ok(mark)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut first_mark = None;
    loop {
        let mark = match reindex() {
            Ok(mark) => mark,
            Err(error) => {
                tracing::warn!(%error, "could not rewrite the search entries of erased events");
                return;
            }
        };
        let covered = seqs.iter().all(|&seq| seq <= mark);
        if covered || first_mark.is_some_and(|first| mark > first) {
            return;
        }
        first_mark.get_or_insert(mark);
        if std::time::Instant::now() >= deadline {
            tracing::warn!(
                "the search index did not move on after an erasure; searches still check every candidate against the stored payload"
            );
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Checkpoints a database file's WAL and truncates it, so that no older copy of a rewritten page
/// stays in it. Best effort: a busy file is logged and checkpointed by the usual means later.
pub(super) fn truncate_wal(path: &std::path::Path) {
    let truncate = || -> rusqlite::Result<()> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(std::time::Duration::from_secs(30))?;
        connection.query_row("pragma wal_checkpoint(truncate)", [], |_| Ok(()))
    };
    if let Err(error) = truncate() {
        tracing::warn!(%error, path = %path.display(), "could not truncate the write-ahead log");
    }
}

/// Appends one of Vellum's own records (to a deleted organization's log too).
fn append_record(
    connection: &Connection,
    frontiers: &Frontiers<i64>,
    ids: &IdGenerator,
    organization_id: OrganizationId,
    input: EventInput,
    now: Timestamp,
) -> Result<Event, StoreError> {
    let prepared = crate::payload::prepare(
        ids,
        organization_id,
        vec![NewEvent {
            input,
            schema_version: RECORD_SCHEMA_VERSION,
        }],
        now,
    );
    match super::events::append_to(connection, frontiers, organization_id, prepared, None, true)? {
        AppendOutcome::Appended(mut events) if events.len() == 1 => Ok(events.remove(0)),
        _ => Err(StoreError::Internal("appending a record stored no event".into())),
    }
}

pub(super) fn legal_hold(
    connection: &Connection,
    organization_id: OrganizationId,
) -> Result<Option<LegalHold>, StoreError> {
    let (since, reason): (Option<i64>, Option<String>) = connection
        .prepare_cached(
            "select legal_hold_since, legal_hold_reason from organizations where id = ?1 and deleted_at is null",
        )?
        .query_row([organization_id.ulid().to_bytes().as_slice()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?
        .ok_or_else(|| StoreError::not_found("Organization", organization_id))?;
    hold_of(since, reason)
}

pub(super) fn set_legal_hold(
    connection: &Connection,
    frontiers: &Frontiers<i64>,
    ids: &IdGenerator,
    organization_id: OrganizationId,
    hold: Option<Option<String>>,
    record: EventInput,
) -> Result<(Option<LegalHold>, Option<Event>), StoreError> {
    let current = legal_hold(connection, organization_id)?;
    if current.is_some() == hold.is_some() {
        return Ok((current, None));
    }
    let now = crate::now();
    let (since, reason) = match hold {
        Some(reason) => (Some(now.unix_millis()), reason),
        None => (None, None),
    };
    connection
        .prepare_cached("update organizations set legal_hold_since = ?2, legal_hold_reason = ?3 where id = ?1")?
        .execute(params![organization_id.ulid().to_bytes().as_slice(), since, reason])?;
    let appended = append_record(connection, frontiers, ids, organization_id, record, now)?;
    Ok((hold_of(since, reason)?, Some(appended)))
}

/// Pages given back per call when the store is in incremental auto-vacuum mode: 16 MiB at the
/// default page size, a short job for the writer.
const RECLAIM_PAGES: i64 = 4096;

/// Gives up to [`RECLAIM_PAGES`] free pages back to the file system. Returns the bytes freed.
pub(super) fn reclaim(connection: &Connection) -> Result<u64, StoreError> {
    let mode: i64 = connection.query_row("pragma auto_vacuum", [], |row| row.get(0))?;
    if mode != 2 {
        return Ok(0);
    }
    let page_size: i64 = connection.query_row("pragma page_size", [], |row| row.get(0))?;
    let free_before: i64 = connection.query_row("pragma freelist_count", [], |row| row.get(0))?;
    if free_before == 0 {
        return Ok(0);
    }
    // The pragma moves one page per row it returns: it must be stepped to its end. Stopped
    // after its first row (as `execute_batch` does), it gives back one page, and the statement
    // never reaches the end at which SQLite runs its automatic checkpoint, so a loop of such
    // calls grows the WAL without bound.
    let mut statement = connection.prepare_cached(&format!("pragma incremental_vacuum({RECLAIM_PAGES})"))?;
    let mut rows = statement.query([])?;
    while rows.next()?.is_some() {}
    let free_after: i64 = connection.query_row("pragma freelist_count", [], |row| row.get(0))?;
    Ok(u64::try_from((free_before - free_after) * page_size).unwrap_or_default())
}

/// Gives up to [`RECLAIM_PAGES`] free pages of the search index back (its own file, written by
/// its own thread: this waits for its lock). Returns the bytes freed.
pub(super) fn reclaim_search(search_path: &std::path::Path) -> Result<u64, StoreError> {
    let connection = Connection::open(search_path)?;
    connection.busy_timeout(std::time::Duration::from_secs(30))?;
    reclaim(&connection)
}

/// Forgets purged events in the search index (derived data: a failure is logged, never fatal;
/// a later rebuild reads only the events that remain).
pub(super) fn forget_in_search(search_path: &std::path::Path, seqs: &[i64]) {
    let forget = || -> rusqlite::Result<()> {
        let connection = Connection::open(search_path)?;
        connection.busy_timeout(std::time::Duration::from_secs(30))?;
        let transaction = connection.unchecked_transaction()?;
        {
            let mut delete = transaction.prepare("delete from event_search where rowid = ?1")?;
            for seq in seqs {
                delete.execute([seq])?;
            }
        }
        transaction.commit()
    };
    if let Err(error) = forget() {
        tracing::warn!(%error, "could not remove purged events from the search index; searches still skip them");
    }
}

/// What [`compact`] did to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compacted {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its size before (with its WAL).
    pub bytes_before: u64,
    /// Its size after.
    pub bytes_after: u64,
}

fn size_with_wal(path: &std::path::Path) -> u64 {
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
    [path, wal.as_path()]
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum()
}

/// Rewrites the store's files (the database, and the search index if there is one) without
/// their free pages, and switches them to incremental auto-vacuum, so that later purges give
/// space back as they go. For stores created before that mode was the default. It needs
/// exclusive use of the store (refused while a server or command has it open) and free space
/// for a copy of each file.
pub fn compact(data_dir: &std::path::Path) -> Result<Vec<Compacted>, StoreError> {
    let _lock = super::lock_data_dir(data_dir, true)?;
    let mut done = Vec::new();
    for name in [super::DATABASE_FILE_NAME, super::SEARCH_FILE_NAME] {
        let path = data_dir.join(name);
        if !path.exists() {
            continue;
        }
        let bytes_before = size_with_wal(&path);
        let connection = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        connection.busy_timeout(std::time::Duration::from_secs(2))?;
        connection.execute_batch("pragma auto_vacuum = incremental; vacuum; pragma wal_checkpoint(truncate);")?;
        drop(connection);
        done.push(Compacted {
            bytes_after: size_with_wal(&path),
            path,
            bytes_before,
        });
    }
    Ok(done)
}
