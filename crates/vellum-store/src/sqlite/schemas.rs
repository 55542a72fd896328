//! Actions and their schema versions.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use vellum_core::pagination::KeyBound;
use vellum_core::schema::SchemaDefinition;
use vellum_core::{ActionId, Page, PageRequest, SchemaId, Timestamp};

use super::ulid_from_blob;
use crate::codec::{decode_definition, encode_definition};
use crate::ids::IdGenerator;
use crate::{ActionSummary, StoreError, StoredSchema};

pub(super) fn create(
    connection: &Connection,
    ids: &IdGenerator,
    action: String,
    definition: SchemaDefinition,
) -> Result<(StoredSchema, bool), StoreError> {
    if let Some(latest) = get(connection, &action, None)?
        && latest.definition == definition
    {
        return Ok((latest, false));
    }
    let now = crate::now();
    let existing: Option<(i64, i64)> = connection
        .query_row(
            "select seq, latest_version from audit_log_actions where name = ?1",
            [&action],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let (action_seq, version) = match existing {
        Some((seq, latest)) => {
            connection.execute(
                "update audit_log_actions set latest_version = ?2, updated_at = ?3 where seq = ?1",
                params![seq, latest + 1, now.unix_millis()],
            )?;
            (seq, latest + 1)
        }
        None => {
            connection.execute(
                "insert into audit_log_actions (id, name, latest_version, created_at, updated_at)
                 values (?1, ?2, 1, ?3, ?3)",
                params![ids.next().to_bytes().as_slice(), action, now.unix_millis()],
            )?;
            (connection.last_insert_rowid(), 1)
        }
    };
    let id = SchemaId::from_ulid(ids.next());
    connection.execute(
        "insert into audit_log_schemas (action_seq, version, id, definition, created_at) values (?1, ?2, ?3, ?4, ?5)",
        params![
            action_seq,
            version,
            id.ulid().to_bytes().as_slice(),
            encode_definition(&definition),
            now.unix_millis()
        ],
    )?;
    let version = u32::try_from(version).map_err(|_| StoreError::Internal("schema version overflow".into()))?;
    Ok((
        StoredSchema {
            id,
            action,
            version,
            definition,
            created_at: now,
        },
        true,
    ))
}

const SCHEMA_COLUMNS: &str = "s.id, a.name, s.version, s.definition, s.created_at";

pub(super) fn get(
    connection: &Connection,
    action: &str,
    version: Option<u32>,
) -> Result<Option<StoredSchema>, StoreError> {
    let sql = format!(
        "select {SCHEMA_COLUMNS} from audit_log_schemas s join audit_log_actions a on a.seq = s.action_seq
         where a.name = ?1 and s.version = coalesce(?2, a.latest_version)"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    statement
        .query_row(params![action, version], read_schema)
        .optional()?
        .transpose()
}

pub(super) fn list_schemas(
    connection: &Connection,
    action: &str,
    page: &PageRequest<SchemaId>,
) -> Result<Page<StoredSchema, SchemaId>, StoreError> {
    let action_seq: i64 = connection
        .query_row("select seq from audit_log_actions where name = ?1", [action], |row| {
            row.get(0)
        })
        .optional()?
        .ok_or_else(|| StoreError::not_found("Audit log action", action))?;
    let plan = page.plan();
    let mut sql = format!(
        "select {SCHEMA_COLUMNS} from audit_log_schemas s join audit_log_actions a on a.seq = s.action_seq
         where s.action_seq = ?"
    );
    let mut values = vec![Value::Integer(action_seq)];
    push_bound(
        &mut sql,
        &mut values,
        "s.id",
        plan.bound
            .as_ref()
            .map(|bound| map_bound(bound, |id| id.ulid().to_bytes()))
            .as_ref(),
    );
    sql.push_str(if plan.ascending {
        " order by s.id asc limit ?"
    } else {
        " order by s.id desc limit ?"
    });
    values.push(Value::Integer(i64::from(plan.fetch)));
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement
        .query_map(params_from_iter(values), read_schema)?
        .map(|row| row.map_err(StoreError::from).and_then(|decoded| decoded))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(rows, |schema| schema.id))
}

pub(super) fn list_actions(
    connection: &Connection,
    page: &PageRequest<ActionId>,
) -> Result<Page<ActionSummary, ActionId>, StoreError> {
    let plan = page.plan();
    let mut sql = format!(
        "select a.id, a.created_at, a.updated_at, {SCHEMA_COLUMNS}
         from audit_log_actions a join audit_log_schemas s on s.action_seq = a.seq and s.version = a.latest_version
         where 1 = 1"
    );
    let mut values = Vec::new();
    push_bound(
        &mut sql,
        &mut values,
        "a.id",
        plan.bound
            .as_ref()
            .map(|bound| map_bound(bound, |id| id.ulid().to_bytes()))
            .as_ref(),
    );
    sql.push_str(if plan.ascending {
        " order by a.id asc limit ?"
    } else {
        " order by a.id desc limit ?"
    });
    values.push(Value::Integer(i64::from(plan.fetch)));
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement
        .query_map(params_from_iter(values), |row| {
            let id: Vec<u8> = row.get(0)?;
            let created_at: i64 = row.get(1)?;
            let updated_at: i64 = row.get(2)?;
            let schema = read_schema_at(row, 3)?;
            Ok((|| {
                let latest = schema?;
                Ok(ActionSummary {
                    id: ActionId::from_ulid(ulid_from_blob(&id)?),
                    name: latest.action.clone(),
                    latest,
                    created_at: timestamp(created_at)?,
                    updated_at: timestamp(updated_at)?,
                })
            })())
        })?
        .map(|row| row.map_err(StoreError::from).and_then(|decoded| decoded))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(rows, |action| action.id))
}

fn map_bound<K, T>(bound: &KeyBound<K>, convert: impl Fn(&K) -> T) -> KeyBound<T> {
    match bound {
        KeyBound::Above(key) => KeyBound::Above(convert(key)),
        KeyBound::Below(key) => KeyBound::Below(convert(key)),
    }
}

fn push_bound(sql: &mut String, values: &mut Vec<Value>, column: &str, bound: Option<&KeyBound<[u8; 16]>>) {
    match bound {
        None => {}
        Some(KeyBound::Above(bytes)) => {
            sql.push_str(&format!(" and {column} > ?"));
            values.push(Value::Blob(bytes.to_vec()));
        }
        Some(KeyBound::Below(bytes)) => {
            sql.push_str(&format!(" and {column} < ?"));
            values.push(Value::Blob(bytes.to_vec()));
        }
    }
}

fn timestamp(millis: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_millis(millis).ok_or_else(|| StoreError::Internal("stored timestamp out of range".into()))
}

fn read_schema(row: &Row<'_>) -> rusqlite::Result<Result<StoredSchema, StoreError>> {
    read_schema_at(row, 0)
}

fn read_schema_at(row: &Row<'_>, offset: usize) -> rusqlite::Result<Result<StoredSchema, StoreError>> {
    let id: Vec<u8> = row.get(offset)?;
    let action: String = row.get(offset + 1)?;
    let version: i64 = row.get(offset + 2)?;
    let definition: String = row.get(offset + 3)?;
    let created_at: i64 = row.get(offset + 4)?;
    Ok((|| {
        Ok(StoredSchema {
            id: SchemaId::from_ulid(ulid_from_blob(&id)?),
            action,
            version: u32::try_from(version)
                .map_err(|_| StoreError::Internal("stored schema version out of range".into()))?,
            definition: decode_definition(&definition)?,
            created_at: timestamp(created_at)?,
        })
    })())
}
