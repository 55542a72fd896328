//! Operator accounts and their signed-in sessions.

use rusqlite::{Connection, OptionalExtension, Row, params};
use vellum_core::operator::{Email, Operator, OperatorSession, PasswordHash, SessionTokenHash};
use vellum_core::sign_in_throttle::{self, FailureRecord, RetryAfterSeconds, Step, ThrottleKey};
use vellum_core::{OperatorId, Timestamp};

use super::ulid_from_blob;
use crate::StoreError;
use crate::ids::IdGenerator;

const COLUMNS: &str = "id, email, password_hash, created_at";

fn corrupt() -> StoreError {
    StoreError::Internal("stored operator is invalid".into())
}

pub(super) fn insert(
    connection: &Connection,
    ids: &IdGenerator,
    email: Email,
    password_hash: PasswordHash,
) -> Result<Operator, StoreError> {
    let operator = Operator {
        id: OperatorId::from_ulid(ids.next()),
        email,
        password_hash,
        created_at: crate::now(),
    };
    connection
        .execute(
            "insert into operators (id, email, password_hash, created_at, updated_at) values (?1, ?2, ?3, ?4, ?4)",
            params![
                operator.id.ulid().to_bytes().as_slice(),
                operator.email.as_str(),
                operator.password_hash.as_str(),
                operator.created_at.unix_millis(),
            ],
        )
        .map_err(|error| match &error {
            rusqlite::Error::SqliteFailure(failure, _) if failure.code == rusqlite::ErrorCode::ConstraintViolation => {
                StoreError::Conflict(format!("an operator with the email {} already exists", operator.email))
            }
            _ => StoreError::from(error),
        })?;
    Ok(operator)
}

pub(super) fn find_by_email(connection: &Connection, email: &Email) -> Result<Option<Operator>, StoreError> {
    let mut statement = connection.prepare_cached(&format!("select {COLUMNS} from operators where email = ?1"))?;
    statement.query_row([email.as_str()], read_row).optional()?.transpose()
}

pub(super) fn list(connection: &Connection) -> Result<Vec<Operator>, StoreError> {
    let mut statement = connection.prepare_cached(&format!("select {COLUMNS} from operators order by id"))?;
    statement
        .query_map([], read_row)?
        .map(|row| row.map_err(StoreError::from).and_then(|decoded| decoded))
        .collect()
}

/// Replaces an operator's password hash and ends every session of that operator, so that a
/// password reset also signs out whoever knew the old one.
pub(super) fn set_password(
    connection: &Connection,
    id: OperatorId,
    password_hash: &PasswordHash,
) -> Result<(), StoreError> {
    let blob = id.ulid().to_bytes();
    let changed = connection.execute(
        "update operators set password_hash = ?2, updated_at = ?3 where id = ?1",
        params![blob.as_slice(), password_hash.as_str(), crate::now().unix_millis()],
    )?;
    if changed == 0 {
        return Err(StoreError::not_found("operator", id));
    }
    connection.execute(
        "delete from operator_sessions where operator_id = ?1",
        [blob.as_slice()],
    )?;
    Ok(())
}

/// Stores a new session, and forgets sessions that expired (they are never valid again).
pub(super) fn insert_session(
    connection: &Connection,
    operator_id: OperatorId,
    token_hash: SessionTokenHash,
    expires_at: Timestamp,
) -> Result<OperatorSession, StoreError> {
    let now = crate::now();
    connection.execute(
        "delete from operator_sessions where expires_at <= ?1",
        [now.unix_millis()],
    )?;
    let inserted = connection
        .execute(
            "insert into operator_sessions (token_hash, operator_id, created_at, expires_at)
             select ?1, id, ?3, ?4 from operators where id = ?2",
            params![
                token_hash.0.as_slice(),
                operator_id.ulid().to_bytes().as_slice(),
                now.unix_millis(),
                expires_at.unix_millis(),
            ],
        )
        .map_err(|error| match &error {
            rusqlite::Error::SqliteFailure(failure, _) if failure.code == rusqlite::ErrorCode::ConstraintViolation => {
                StoreError::Conflict("a session with this token already exists".into())
            }
            _ => StoreError::from(error),
        })?;
    if inserted == 0 {
        return Err(StoreError::not_found("operator", operator_id));
    }
    find_session(connection, token_hash, now)?.ok_or_else(|| StoreError::Internal("the new session vanished".into()))
}

pub(super) fn find_session(
    connection: &Connection,
    token_hash: SessionTokenHash,
    now: Timestamp,
) -> Result<Option<OperatorSession>, StoreError> {
    let mut statement = connection.prepare_cached(
        "select s.operator_id, o.email, s.created_at, s.expires_at
         from operator_sessions s join operators o on o.id = s.operator_id
         where s.token_hash = ?1 and s.expires_at > ?2",
    )?;
    statement
        .query_row(params![token_hash.0.as_slice(), now.unix_millis()], |row| {
            let operator_id: Vec<u8> = row.get(0)?;
            let email: String = row.get(1)?;
            let created_at: i64 = row.get(2)?;
            let expires_at: i64 = row.get(3)?;
            Ok((|| {
                Ok(OperatorSession {
                    token_hash,
                    operator_id: OperatorId::from_ulid(ulid_from_blob(&operator_id)?),
                    email: Email::parse(&email).map_err(|_| corrupt())?,
                    created_at: Timestamp::from_unix_millis(created_at).ok_or_else(corrupt)?,
                    expires_at: Timestamp::from_unix_millis(expires_at).ok_or_else(corrupt)?,
                })
            })())
        })
        .optional()?
        .transpose()
}

pub(super) fn delete_session(connection: &Connection, token_hash: SessionTokenHash) -> Result<(), StoreError> {
    connection.execute(
        "delete from operator_sessions where token_hash = ?1",
        [token_hash.0.as_slice()],
    )?;
    Ok(())
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<Operator, StoreError>> {
    let id: Vec<u8> = row.get(0)?;
    let email: String = row.get(1)?;
    let password_hash: String = row.get(2)?;
    let created_at: i64 = row.get(3)?;
    Ok((|| {
        Ok(Operator {
            id: OperatorId::from_ulid(ulid_from_blob(&id)?),
            email: Email::parse(&email).map_err(|_| corrupt())?,
            password_hash: PasswordHash::from_stored(password_hash),
            created_at: Timestamp::from_unix_millis(created_at).ok_or_else(corrupt)?,
        })
    })())
}

/// One step of the sign-in throttle, in the writer's transaction.
pub(super) fn sign_in_throttle(
    connection: &Connection,
    keys: &[ThrottleKey],
    step: Step,
    now: Timestamp,
) -> Result<Result<(), RetryAfterSeconds>, StoreError> {
    if step == Step::Begin {
        connection
            .prepare_cached(sign_in_sql::DELETE_STALE)?
            .execute(params![stale_before(now), now.unix_millis()])?;
    }
    let digests: Vec<[u8; 16]> = keys.iter().map(ThrottleKey::digest).collect();
    let mut records = Vec::with_capacity(keys.len());
    {
        let mut select = connection.prepare_cached(sign_in_sql::SELECT)?;
        for digest in &digests {
            let record = select
                .query_row([digest.as_slice()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
                })
                .optional()?
                .map(failure_record)
                .transpose()?;
            records.push(record);
        }
    }
    let before = records.clone();
    let verdict = sign_in_throttle::apply(step, keys, &mut records, now);
    let mut created = false;
    for ((digest, record), previous) in digests.iter().zip(&records).zip(&before) {
        if record == previous {
            continue;
        }
        match record {
            Some(record) => {
                created |= previous.is_none();
                connection.prepare_cached(sign_in_sql::UPSERT)?.execute(params![
                    digest.as_slice(),
                    record.count,
                    record.in_flight,
                    record.in_flight_until.unix_millis(),
                    record.last.unix_millis(),
                    record.locked_until.map(Timestamp::unix_millis),
                ])?;
            }
            None => {
                connection
                    .prepare_cached(sign_in_sql::DELETE)?
                    .execute([digest.as_slice()])?;
            }
        }
    }
    if created {
        let stored: i64 = connection.query_row("select count(*) from sign_in_failures", [], |row| row.get(0))?;
        let excess = u64::try_from(stored)
            .unwrap_or(0)
            .saturating_sub(sign_in_throttle::MAX_RECORDS);
        if excess > 0 {
            // The least recently used records go first; this attempt's own (touched just now)
            // are kept.
            connection
                .prepare_cached(sign_in_sql::DELETE_OLDEST)?
                .execute(params![now.unix_millis(), i64::try_from(excess).unwrap_or(i64::MAX)])?;
        }
    }
    Ok(verdict)
}

/// Records whose last attempt is at or before this instant may be stale.
fn stale_before(now: Timestamp) -> i64 {
    now.unix_millis()
        .saturating_sub(sign_in_throttle::FAILURE_WINDOW_MILLIS)
}

type FailureColumns = (i64, i64, i64, i64, Option<i64>);

fn failure_record(
    (count, in_flight, in_flight_until, last, locked_until): FailureColumns,
) -> Result<FailureRecord, StoreError> {
    let corrupt = || StoreError::Internal("stored sign-in failure record is invalid".into());
    let millis = |value: i64| Timestamp::from_unix_millis(value).ok_or_else(corrupt);
    Ok(FailureRecord {
        count: u32::try_from(count).map_err(|_| corrupt())?,
        in_flight: u32::try_from(in_flight).map_err(|_| corrupt())?,
        in_flight_until: millis(in_flight_until)?,
        last: millis(last)?,
        locked_until: locked_until.map(millis).transpose()?,
    })
}

/// The statements of the sign-in throttle.
mod sign_in_sql {
    /// Forgets records that are idle and whose last attempt is outside the window (as
    /// `sign_in_throttle::is_stale` says).
    pub(super) const DELETE_STALE: &str = "delete from sign_in_failures
         where last <= ?1 and (in_flight = 0 or in_flight_until <= ?2)
           and (locked_until is null or locked_until <= ?2)";
    pub(super) const SELECT: &str =
        "select count, in_flight, in_flight_until, last, locked_until from sign_in_failures where key = ?1";
    pub(super) const UPSERT: &str = "insert into sign_in_failures
         (key, count, in_flight, in_flight_until, last, locked_until) values (?1, ?2, ?3, ?4, ?5, ?6)
         on conflict (key) do update set count = excluded.count, in_flight = excluded.in_flight,
           in_flight_until = excluded.in_flight_until, last = excluded.last, locked_until = excluded.locked_until";
    pub(super) const DELETE: &str = "delete from sign_in_failures where key = ?1";
    pub(super) const DELETE_OLDEST: &str = "delete from sign_in_failures where key in
         (select key from sign_in_failures where last < ?1 order by last limit ?2)";
}
