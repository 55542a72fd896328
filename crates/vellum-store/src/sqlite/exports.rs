//! Export jobs: created pending, claimed by workers under a lease (again when a lease runs out
//! or is released), finished once, by the lease's owner.

use rusqlite::{Connection, OptionalExtension, Row, params};
use vellum_core::export::{Export, ExportFilter, ExportFormat, ExportState};
use vellum_core::{ExportId, OrganizationId, Timestamp};

use super::events::live_organization_seq;
use super::ulid_from_blob;
use crate::{ExportOutcome, StoreError, not_leased};

const COLUMNS: &str = "x.id, o.id, x.format, x.filter, x.state, x.error, x.object_path, x.rows, x.bytes, \
                       x.attempts, x.created_at, x.updated_at";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("an export row has {what}"))
}

fn read_export(row: &Row<'_>) -> rusqlite::Result<Result<Export, StoreError>> {
    let id: Vec<u8> = row.get(0)?;
    let organization: Vec<u8> = row.get(1)?;
    let format: String = row.get(2)?;
    let filter: String = row.get(3)?;
    let state: String = row.get(4)?;
    let rows: Option<i64> = row.get(7)?;
    let bytes: Option<i64> = row.get(8)?;
    let attempts: i64 = row.get(9)?;
    let created_at: i64 = row.get(10)?;
    let updated_at: i64 = row.get(11)?;
    let error: Option<String> = row.get(5)?;
    let object_path: Option<String> = row.get(6)?;
    Ok((|| {
        Ok(Export {
            id: ExportId::from_ulid(ulid_from_blob(&id).map_err(|_| corrupt("a malformed id"))?),
            organization_id: OrganizationId::from_ulid(
                ulid_from_blob(&organization).map_err(|_| corrupt("a malformed organization id"))?,
            ),
            format: ExportFormat::parse(&format).ok_or_else(|| corrupt("an unknown format"))?,
            filter: serde_json::from_str(&filter)
                .ok()
                .and_then(|value| ExportFilter::from_json(&value))
                .ok_or_else(|| corrupt("a malformed filter"))?,
            state: ExportState::parse(&state).ok_or_else(|| corrupt("an unknown state"))?,
            error,
            object_path,
            rows: rows.and_then(|value| u64::try_from(value).ok()),
            bytes: bytes.and_then(|value| u64::try_from(value).ok()),
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            created_at: Timestamp::from_unix_millis(created_at).ok_or_else(|| corrupt("a bad created_at"))?,
            updated_at: Timestamp::from_unix_millis(updated_at).ok_or_else(|| corrupt("a bad updated_at"))?,
        })
    })())
}

pub(super) fn insert(
    connection: &Connection,
    id: ExportId,
    organization_id: OrganizationId,
    format: ExportFormat,
    filter: &ExportFilter,
    now: Timestamp,
) -> Result<Export, StoreError> {
    let organization_seq = live_organization_seq(connection, organization_id)?;
    connection
        .prepare_cached(
            "insert into exports (id, organization_seq, format, filter, state, created_at, updated_at)
             values (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
        )?
        .execute(params![
            id.ulid().to_bytes().as_slice(),
            organization_seq,
            format.as_str(),
            filter.to_json().to_string(),
            now.unix_millis(),
        ])?;
    get(connection, id)
}

pub(super) fn get(connection: &Connection, id: ExportId) -> Result<Export, StoreError> {
    let sql =
        format!("select {COLUMNS} from exports x join organizations o on o.seq = x.organization_seq where x.id = ?1");
    connection
        .prepare_cached(&sql)?
        .query_row([id.ulid().to_bytes().as_slice()], read_export)
        .optional()?
        .ok_or_else(|| StoreError::not_found("Audit Log Export", id))?
}

pub(super) fn in_state(
    connection: &Connection,
    state: ExportState,
    updated_before: Timestamp,
) -> Result<Vec<Export>, StoreError> {
    let sql = format!(
        "select {COLUMNS} from exports x join organizations o on o.seq = x.organization_seq
         where x.state = ?1 and x.updated_at < ?2 order by x.updated_at, x.seq"
    );
    connection
        .prepare_cached(&sql)?
        .query_map(params![state.as_str(), updated_before.unix_millis()], read_export)?
        .map(|row| row.map_err(StoreError::from).and_then(|export| export))
        .collect()
}

/// Counts a start of a pending export. `NotFound`-free: a finished export is returned unchanged.
pub(super) fn start(connection: &Connection, id: ExportId, now: Timestamp) -> Result<Export, StoreError> {
    connection
        .prepare_cached(
            "update exports set attempts = attempts + 1, updated_at = ?2 where id = ?1 and state = 'pending'",
        )?
        .execute(params![id.ulid().to_bytes().as_slice(), now.unix_millis()])?;
    get(connection, id)
}

/// Moves an export to its outcome, only from the state that outcome follows, and (when `owner`
/// is given) only while that worker holds its lease. Finishing clears the lease.
pub(super) fn finish(
    connection: &Connection,
    id: ExportId,
    outcome: &ExportOutcome,
    owner: Option<&str>,
    now: Timestamp,
) -> Result<Export, StoreError> {
    let key = id.ulid().to_bytes();
    let changed = match outcome {
        ExportOutcome::Ready {
            object_path,
            rows,
            bytes,
        } => connection
            .prepare_cached(
                "update exports set state = 'ready', object_path = ?2, rows = ?3, bytes = ?4, updated_at = ?5,
                     lease_owner = null, lease_until = null
                 where id = ?1 and state = 'pending' and (?6 is null or lease_owner = ?6)",
            )?
            .execute(params![
                key.as_slice(),
                object_path,
                i64::try_from(*rows).unwrap_or(i64::MAX),
                i64::try_from(*bytes).unwrap_or(i64::MAX),
                now.unix_millis(),
                owner,
            ])?,
        ExportOutcome::Failed(reason) => connection
            .prepare_cached(
                "update exports set state = 'error', error = ?2, updated_at = ?3, lease_owner = null, lease_until = null
                 where id = ?1 and state = 'pending' and (?4 is null or lease_owner = ?4)",
            )?
            .execute(params![key.as_slice(), reason, now.unix_millis(), owner])?,
        // A ready export has no lease, so no worker can expire it under one.
        ExportOutcome::Expired => connection
            .prepare_cached(
                "update exports set state = 'expired', updated_at = ?2
                 where id = ?1 and state = 'ready' and ?3 is null",
            )?
            .execute(params![key.as_slice(), now.unix_millis(), owner])?,
    };
    let export = get(connection, id)?;
    if changed == 0 {
        return Err(outcome.refused(&export, owner));
    }
    Ok(export)
}

/// Leases the oldest pending export whose lease is absent or ran out (`lease_until <= now`) to
/// `worker` until `lease_until`, and counts the start. Runs on the single writer, whose
/// `BEGIN IMMEDIATE` also holds off every other process's writer, so the scan and the update
/// are one atomic step.
pub(super) fn claim(
    connection: &Connection,
    worker: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<Export>, StoreError> {
    let claimed: Option<Vec<u8>> = connection
        .prepare_cached(
            "update exports set lease_owner = ?1, lease_until = ?3, attempts = attempts + 1, updated_at = ?2
             where seq = (select seq from exports
                          where state = 'pending' and (lease_until is null or lease_until <= ?2)
                          order by seq limit 1)
             returning id",
        )?
        .query_row(params![worker, now.unix_millis(), lease_until.unix_millis()], |row| {
            row.get(0)
        })
        .optional()?;
    let Some(id) = claimed else {
        return Ok(None);
    };
    let id = ExportId::from_ulid(ulid_from_blob(&id).map_err(|_| corrupt("a malformed id"))?);
    get(connection, id).map(Some)
}

/// Extends the lease `worker` holds on a pending export. `Conflict` once it holds it no more.
pub(super) fn renew_lease(
    connection: &Connection,
    id: ExportId,
    worker: &str,
    lease_until: Timestamp,
) -> Result<(), StoreError> {
    let changed = connection
        .prepare_cached("update exports set lease_until = ?3 where id = ?1 and state = 'pending' and lease_owner = ?2")?
        .execute(params![
            id.ulid().to_bytes().as_slice(),
            worker,
            lease_until.unix_millis()
        ])?;
    if changed == 0 {
        get(connection, id)?;
        return Err(not_leased(id, worker));
    }
    Ok(())
}

/// Drops the lease `worker` holds on a pending export, so that the next claim takes it at once,
/// and takes back the start its claim counted: a worker that stopped cleanly did not use up an
/// attempt. A lease it does not hold is left alone.
pub(super) fn release_lease(connection: &Connection, id: ExportId, worker: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "update exports set lease_owner = null, lease_until = null, attempts = max(attempts - 1, 0)
             where id = ?1 and state = 'pending' and lease_owner = ?2",
        )?
        .execute(params![id.ulid().to_bytes().as_slice(), worker])?;
    Ok(())
}
