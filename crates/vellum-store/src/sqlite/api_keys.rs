//! API key rows. Only the SHA-256 of each secret is stored.

use rusqlite::{Connection, OptionalExtension, Row, params};
use vellum_core::{ApiKey, ApiKeyHash, ApiKeyId, ApiKeySecret, Timestamp};

use super::ulid_from_blob;
use crate::StoreError;
use crate::ids::IdGenerator;

const COLUMNS: &str = "id, name, secret_hash, redacted_secret, created_at, revoked_at";

pub(super) fn insert(
    connection: &Connection,
    ids: &IdGenerator,
    name: String,
    secret: &ApiKeySecret,
) -> Result<ApiKey, StoreError> {
    let key = ApiKey {
        id: ApiKeyId::from_ulid(ids.next()),
        name,
        secret_hash: secret.hash(),
        redacted_secret: secret.redacted(),
        created_at: crate::now(),
        revoked_at: None,
    };
    connection
        .execute(
            &format!("insert into api_keys ({COLUMNS}) values (?1, ?2, ?3, ?4, ?5, null)"),
            params![
                key.id.ulid().to_bytes().as_slice(),
                key.name,
                key.secret_hash.0.as_slice(),
                key.redacted_secret,
                key.created_at.unix_millis(),
            ],
        )
        .map_err(|error| match &error {
            rusqlite::Error::SqliteFailure(failure, _) if failure.code == rusqlite::ErrorCode::ConstraintViolation => {
                StoreError::Conflict("an API key with this secret already exists".into())
            }
            _ => StoreError::from(error),
        })?;
    Ok(key)
}

pub(super) fn ensure(
    connection: &Connection,
    ids: &IdGenerator,
    name: String,
    secret: &ApiKeySecret,
) -> Result<(ApiKey, bool), StoreError> {
    match find_by_hash(connection, &secret.hash())? {
        Some(key) if key.is_active() => Ok((key, false)),
        // A revoked key stays revoked: a leaked bootstrap key must not come back at restart.
        Some(key) => Err(StoreError::Conflict(format!(
            "the API key {} with this secret was revoked; choose a new secret",
            key.id
        ))),
        None => Ok((insert(connection, ids, name, secret)?, true)),
    }
}

pub(super) fn find_by_hash(connection: &Connection, hash: &ApiKeyHash) -> Result<Option<ApiKey>, StoreError> {
    let mut statement = connection.prepare_cached(&format!("select {COLUMNS} from api_keys where secret_hash = ?1"))?;
    statement
        .query_row([hash.0.as_slice()], read_row)
        .optional()?
        .transpose()
}

pub(super) fn list(connection: &Connection) -> Result<Vec<ApiKey>, StoreError> {
    let mut statement = connection.prepare_cached(&format!("select {COLUMNS} from api_keys order by id"))?;
    statement
        .query_map([], read_row)?
        .map(|row| row.map_err(StoreError::from).and_then(|decoded| decoded))
        .collect()
}

pub(super) fn revoke(connection: &Connection, id: ApiKeyId) -> Result<ApiKey, StoreError> {
    let blob = id.ulid().to_bytes();
    connection.execute(
        "update api_keys set revoked_at = ?2 where id = ?1 and revoked_at is null",
        params![blob.as_slice(), crate::now().unix_millis()],
    )?;
    connection
        .query_row(
            &format!("select {COLUMNS} from api_keys where id = ?1"),
            [blob.as_slice()],
            read_row,
        )
        .optional()?
        .transpose()?
        .ok_or_else(|| StoreError::not_found("API key", id))
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<ApiKey, StoreError>> {
    let id: Vec<u8> = row.get(0)?;
    let name: String = row.get(1)?;
    let hash: Vec<u8> = row.get(2)?;
    let redacted_secret: String = row.get(3)?;
    let created_at: i64 = row.get(4)?;
    let revoked_at: Option<i64> = row.get(5)?;
    Ok((|| {
        let corrupt = || StoreError::Internal("stored API key is invalid".into());
        Ok(ApiKey {
            id: ApiKeyId::from_ulid(ulid_from_blob(&id)?),
            name,
            secret_hash: ApiKeyHash(hash.as_slice().try_into().map_err(|_| corrupt())?),
            redacted_secret,
            created_at: Timestamp::from_unix_millis(created_at).ok_or_else(corrupt)?,
            revoked_at: match revoked_at {
                Some(millis) => Some(Timestamp::from_unix_millis(millis).ok_or_else(corrupt)?),
                None => None,
            },
        })
    })())
}
