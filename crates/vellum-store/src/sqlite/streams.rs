//! Log streams: their settings, and deliveries claimed under a lease. Every write runs on the
//! single writer, whose `BEGIN IMMEDIATE` also holds off other processes' writers, so a claim's
//! scan and update are one atomic step.

use rusqlite::{Connection, OptionalExtension, Row, params};
use vellum_core::stream::{Destination, StreamState, StreamType};
use vellum_core::{Event, OrganizationId, StreamId, Timestamp};

use super::events::{EVENT_COLUMNS, live_organization_seq, read_event};
use super::ulid_from_blob;
use crate::{DeliveryOutcome, NewStream, StoreError, Stream, StreamChange};

const COLUMNS: &str = "s.id, o.id, s.type, s.config, s.secrets, s.state, s.cursor, s.failures, s.error, \
                       s.next_attempt_at, s.last_synced_at, s.created_at, s.updated_at, s.deliveries, \
                       s.events_delivered, s.failed_attempts";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("a log stream row has {what}"))
}

fn timestamp(millis: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    millis
        .map(|millis| Timestamp::from_unix_millis(millis).ok_or_else(|| corrupt("a bad time")))
        .transpose()
}

fn read_stream(row: &Row<'_>) -> rusqlite::Result<Result<Stream, StoreError>> {
    let id: Vec<u8> = row.get(0)?;
    let organization: Vec<u8> = row.get(1)?;
    let kind: String = row.get(2)?;
    let config: String = row.get(3)?;
    let sealed_secrets: Vec<u8> = row.get(4)?;
    let state: String = row.get(5)?;
    let cursor: i64 = row.get(6)?;
    let failures: i64 = row.get(7)?;
    let error: Option<String> = row.get(8)?;
    let next_attempt_at: Option<i64> = row.get(9)?;
    let last_synced_at: Option<i64> = row.get(10)?;
    let created_at: i64 = row.get(11)?;
    let updated_at: i64 = row.get(12)?;
    let counter = |value: i64| u64::try_from(value).unwrap_or(0);
    let counters = crate::StreamCounters {
        deliveries: counter(row.get(13)?),
        events_delivered: counter(row.get(14)?),
        failed_attempts: counter(row.get(15)?),
    };
    Ok((|| {
        let kind = StreamType::parse(&kind).ok_or_else(|| corrupt("an unknown type"))?;
        Ok(Stream {
            id: StreamId::from_ulid(ulid_from_blob(&id).map_err(|_| corrupt("a malformed id"))?),
            organization_id: OrganizationId::from_ulid(
                ulid_from_blob(&organization).map_err(|_| corrupt("a malformed organization id"))?,
            ),
            destination: serde_json::from_str(&config)
                .ok()
                .and_then(|value| Destination::from_json(kind, &value))
                .ok_or_else(|| corrupt("malformed settings"))?,
            sealed_secrets,
            state: StreamState::parse(&state).ok_or_else(|| corrupt("an unknown state"))?,
            cursor: u64::try_from(cursor).map_err(|_| corrupt("a negative cursor"))?,
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            error,
            next_attempt_at: timestamp(next_attempt_at)?,
            last_synced_at: timestamp(last_synced_at)?,
            counters,
            created_at: Timestamp::from_unix_millis(created_at).ok_or_else(|| corrupt("a bad created_at"))?,
            updated_at: Timestamp::from_unix_millis(updated_at).ok_or_else(|| corrupt("a bad updated_at"))?,
        })
    })())
}

fn key(id: StreamId) -> [u8; 16] {
    id.ulid().to_bytes()
}

fn position(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn log_size(connection: &Connection, organization_seq: i64) -> Result<u64, StoreError> {
    let size: i64 = connection
        .prepare_cached("select coalesce(max(log_index) + 1, 0) from events where organization_seq = ?1")?
        .query_row([organization_seq], |row| row.get(0))?;
    Ok(u64::try_from(size).unwrap_or(0))
}

pub(super) fn insert(
    connection: &Connection,
    id: StreamId,
    stream: &NewStream,
    now: Timestamp,
) -> Result<Stream, StoreError> {
    let organization_seq = live_organization_seq(connection, stream.organization_id)?;
    connection
        .prepare_cached(
            "insert into log_streams (id, organization_seq, type, config, secrets, state, cursor, created_at, updated_at)
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )?
        .execute(params![
            key(id).as_slice(),
            organization_seq,
            stream.destination.stream_type().as_str(),
            stream.destination.to_json().to_string(),
            stream.sealed_secrets,
            stream.state.as_str(),
            position(stream.cursor),
            now.unix_millis(),
        ])?;
    get(connection, id)
}

pub(super) fn get(connection: &Connection, id: StreamId) -> Result<Stream, StoreError> {
    let sql = format!(
        "select {COLUMNS} from log_streams s join organizations o on o.seq = s.organization_seq
         where s.id = ?1 and o.deleted_at is null"
    );
    connection
        .prepare_cached(&sql)?
        .query_row([key(id).as_slice()], read_stream)
        .optional()?
        .ok_or_else(|| StoreError::not_found("Audit Log Stream", id))?
}

pub(super) fn list(connection: &Connection, organization_id: OrganizationId) -> Result<Vec<Stream>, StoreError> {
    let organization_seq = live_organization_seq(connection, organization_id)?;
    let sql = format!(
        "select {COLUMNS} from log_streams s join organizations o on o.seq = s.organization_seq
         where s.organization_seq = ?1 order by s.seq"
    );
    connection
        .prepare_cached(&sql)?
        .query_map([organization_seq], read_stream)?
        .map(|row| row.map_err(StoreError::from).and_then(|stream| stream))
        .collect()
}

pub(super) fn all(connection: &Connection, limit: u32) -> Result<Vec<Stream>, StoreError> {
    let sql = format!(
        "select {COLUMNS} from log_streams s join organizations o on o.seq = s.organization_seq
         where o.deleted_at is null order by s.seq limit ?1"
    );
    connection
        .prepare_cached(&sql)?
        .query_map([limit], read_stream)?
        .map(|row| row.map_err(StoreError::from).and_then(|stream| stream))
        .collect()
}

pub(super) fn update(
    connection: &Connection,
    id: StreamId,
    change: &StreamChange,
    now: Timestamp,
) -> Result<Stream, StoreError> {
    let before = get(connection, id)?;
    if before.destination.stream_type() != change.destination.stream_type() {
        return Err(StoreError::Conflict("a stream's type cannot change".to_owned()));
    }
    connection
        .prepare_cached(
            "update log_streams set config = ?2, secrets = ?3, state = ?4, failures = 0, error = null,
                 next_attempt_at = null, updated_at = ?5
             where id = ?1",
        )?
        .execute(params![
            key(id).as_slice(),
            change.destination.to_json().to_string(),
            change.sealed_secrets,
            change.state.as_str(),
            now.unix_millis(),
        ])?;
    get(connection, id)
}

pub(super) fn delete(connection: &Connection, id: StreamId) -> Result<(), StoreError> {
    get(connection, id)?;
    connection
        .prepare_cached("delete from log_streams where id = ?1")?
        .execute([key(id).as_slice()])?;
    Ok(())
}

pub(super) fn replay(connection: &Connection, id: StreamId, from: u64, now: Timestamp) -> Result<Stream, StoreError> {
    let organization_seq: i64 = connection
        .prepare_cached("select organization_seq from log_streams where id = ?1")?
        .query_row([key(id).as_slice()], |row| row.get(0))
        .optional()?
        .ok_or_else(|| StoreError::not_found("Audit Log Stream", id))?;
    get(connection, id)?;
    let size = log_size(connection, organization_seq)?;
    if from > size {
        return Err(StoreError::InvalidInput {
            field: "from_log_index",
            message: format!("the log has {size} entries; replay from at most {size}"),
        });
    }
    // A worker in flight keeps its lease, but its outcome no longer matches the cursor, so it
    // records nothing and lets the stream go.
    connection
        .prepare_cached(
            "update log_streams set cursor = ?2, failures = 0, next_attempt_at = null, updated_at = ?3
             where id = ?1",
        )?
        .execute(params![key(id).as_slice(), position(from), now.unix_millis()])?;
    get(connection, id)
}

pub(super) fn first_position_since(
    connection: &Connection,
    organization_id: OrganizationId,
    since: Timestamp,
) -> Result<u64, StoreError> {
    let organization_seq = live_organization_seq(connection, organization_id)?;
    // Segments are in log order, so the first one whose span reaches `since` holds the answer.
    let segment: Option<i64> = connection
        .prepare_cached(
            "select segment from event_segments where organization_seq = ?1 and max_occurred_at >= ?2
             order by segment limit 1",
        )?
        .query_row(params![organization_seq, since.unix_millis()], |row| row.get(0))
        .optional()?;
    let found: Option<i64> = match segment {
        None => None,
        Some(segment) => connection
            .prepare_cached(
                "select min(log_index) from events
                 where organization_seq = ?1 and log_index >= ?2 and occurred_at >= ?3",
            )?
            .query_row(params![organization_seq, segment << 15, since.unix_millis()], |row| {
                row.get(0)
            })?,
    };
    match found {
        Some(found) => Ok(u64::try_from(found).unwrap_or(0)),
        None => log_size(connection, organization_seq),
    }
}

/// Whether any stream is due for a delivery (a read, so that idle workers and the wake-ups of
/// every commit do not queue empty claims on the writer).
pub(super) fn any_due(connection: &Connection, now: Timestamp) -> Result<bool, StoreError> {
    Ok(connection
        .prepare_cached(
            "select exists (select 1 from log_streams s
                            where s.state in ('active', 'error')
                              and (s.next_attempt_at is null or s.next_attempt_at <= ?1)
                              and (s.lease_until is null or s.lease_until <= ?1)
                              and exists (select 1 from events e
                                          where e.organization_seq = s.organization_seq and e.log_index >= s.cursor))",
        )?
        .query_row([now.unix_millis()], |row| row.get(0))?)
}

pub(super) fn claim(
    connection: &Connection,
    worker: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<Stream>, StoreError> {
    let claimed: Option<Vec<u8>> = connection
        .prepare_cached(
            "update log_streams set lease_owner = ?1, lease_until = ?3
             where seq = (select s.seq from log_streams s join organizations o on o.seq = s.organization_seq
                          where s.state in ('active', 'error') and o.deleted_at is null
                            and (s.next_attempt_at is null or s.next_attempt_at <= ?2)
                            and (s.lease_until is null or s.lease_until <= ?2)
                            and exists (select 1 from events e
                                        where e.organization_seq = s.organization_seq and e.log_index >= s.cursor)
                          order by coalesce(s.lease_until, 0), s.seq limit 1)
             returning id",
        )?
        .query_row(params![worker, now.unix_millis(), lease_until.unix_millis()], |row| {
            row.get(0)
        })
        .optional()?;
    let Some(id) = claimed else {
        return Ok(None);
    };
    let id = StreamId::from_ulid(ulid_from_blob(&id).map_err(|_| corrupt("a malformed id"))?);
    get(connection, id).map(Some)
}

fn lost(id: StreamId, worker: &str) -> StoreError {
    StoreError::Conflict(format!("stream {id} is no longer held by {worker} at that position"))
}

pub(super) fn finish(
    connection: &Connection,
    id: StreamId,
    worker: &str,
    from: u64,
    outcome: &DeliveryOutcome,
    now: Timestamp,
) -> Result<(), StoreError> {
    let changed = match outcome {
        DeliveryOutcome::Delivered {
            next,
            events,
            lease_until,
        } => connection
            .prepare_cached(
                "update log_streams set cursor = ?4, last_synced_at = ?5, lease_until = ?6, failures = 0,
                     deliveries = deliveries + 1, events_delivered = events_delivered + ?7,
                     state = case state when 'error' then 'active' else state end,
                     error = case state when 'error' then null else error end,
                     next_attempt_at = null
                 where id = ?1 and lease_owner = ?2 and cursor = ?3 and ?4 >= ?3",
            )?
            .execute(params![
                key(id).as_slice(),
                worker,
                position(from),
                position(*next),
                now.unix_millis(),
                lease_until.unix_millis(),
                position(*events),
            ])?,
        DeliveryOutcome::Failed {
            state,
            reason,
            next_attempt_at,
        } => connection
            .prepare_cached(
                "update log_streams set state = case state when 'inactive' then state else ?4 end, error = ?5,
                     failures = failures + 1, failed_attempts = failed_attempts + 1, next_attempt_at = ?6,
                     lease_owner = null, lease_until = ?7
                 where id = ?1 and lease_owner = ?2 and cursor = ?3",
            )?
            .execute(params![
                key(id).as_slice(),
                worker,
                position(from),
                state.as_str(),
                reason,
                next_attempt_at.map(Timestamp::unix_millis),
                now.unix_millis(),
            ])?,
    };
    if changed == 0 {
        return Err(lost(id, worker));
    }
    Ok(())
}

pub(super) fn release(connection: &Connection, id: StreamId, worker: &str, now: Timestamp) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "update log_streams set lease_owner = null, lease_until = ?3 where id = ?1 and lease_owner = ?2",
        )?
        .execute(params![key(id).as_slice(), worker, now.unix_millis()])?;
    Ok(())
}

pub(super) fn events_from(
    connection: &Connection,
    organization_id: OrganizationId,
    from: u64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let organization_seq = live_organization_seq(connection, organization_id)?;
    let sql = format!(
        "select {EVENT_COLUMNS} from events e
         where e.organization_seq = ?1 and e.log_index >= ?2 order by e.log_index limit ?3"
    );
    connection
        .prepare_cached(&sql)?
        .query_map(params![organization_seq, position(from), limit], |row| {
            read_event(row, organization_id)
        })?
        .map(|row| row.map_err(StoreError::from).and_then(|event| event))
        .collect()
}
