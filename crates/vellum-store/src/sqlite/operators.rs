//! Operator accounts and their signed-in sessions.

use rusqlite::{Connection, OptionalExtension, Row, params};
use vellum_core::operator::{Email, Operator, OperatorSession, PasswordHash, SessionTokenHash};
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
