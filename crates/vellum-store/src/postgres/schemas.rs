//! Actions and their schema versions. A new version is created under a lock on its action's row,
//! so nodes creating versions of one action at once number them 1, 2, 3, … without a gap.

use async_trait::async_trait;
use tokio_postgres::Row;
use vellum_core::schema::SchemaDefinition;
use vellum_core::{ActionId, Page, PageRequest, SchemaId};

use super::{Params, PostgresStore, id_bytes, timestamp, ulid_from};
use crate::codec::{decode_definition, encode_definition};
use crate::{ActionSummary, CreatedSchema, SchemaStore, StoreError, StoredSchema};

const SCHEMA_COLUMNS: &str = "s.id, a.name, s.version, s.definition, s.created_at";

fn read_schema_at(row: &Row, offset: usize) -> Result<StoredSchema, StoreError> {
    let id: Vec<u8> = row.try_get(offset)?;
    let version: i32 = row.try_get(offset + 2)?;
    let definition: String = row.try_get(offset + 3)?;
    Ok(StoredSchema {
        id: SchemaId::from_ulid(ulid_from(&id)?),
        action: row.try_get(offset + 1)?,
        version: u32::try_from(version)
            .map_err(|_| StoreError::Internal("stored schema version out of range".into()))?,
        definition: decode_definition(&definition)?,
        created_at: timestamp(row.try_get(offset + 4)?, "created_at")?,
    })
}

#[async_trait]
impl SchemaStore for PostgresStore {
    async fn create_schema(&self, action: String, definition: SchemaDefinition) -> Result<CreatedSchema, StoreError> {
        let now = crate::now();
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute(
                "insert into audit_log_actions (id, name, latest_version, created_at, updated_at)
                 values ($1, $2, 0, $3, $3) on conflict (name) do nothing",
                &[&id_bytes(self.ids.next()), &action, &now.unix_millis()],
            )
            .await?;
        let row = transaction
            .query_one(
                "select id, latest_version from audit_log_actions where name = $1 for update",
                &[&action],
            )
            .await?;
        let action_id: Vec<u8> = row.try_get(0)?;
        let latest_version: i32 = row.try_get(1)?;
        if latest_version > 0 {
            let latest = transaction
                .query_one(
                    &format!(
                        "select {SCHEMA_COLUMNS} from audit_log_schemas s join audit_log_actions a on a.id = s.action_id
                         where s.action_id = $1 and s.version = $2"
                    ),
                    &[&action_id, &latest_version],
                )
                .await?;
            let latest = read_schema_at(&latest, 0)?;
            if latest.definition == definition {
                return Ok(CreatedSchema {
                    schema: latest,
                    created: false,
                });
            }
        }
        let version = latest_version + 1;
        transaction
            .execute(
                "update audit_log_actions set latest_version = $2, updated_at = $3 where id = $1",
                &[&action_id, &version, &now.unix_millis()],
            )
            .await?;
        let id = SchemaId::from_ulid(self.ids.next());
        transaction
            .execute(
                "insert into audit_log_schemas (action_id, version, id, definition, created_at)
                 values ($1, $2, $3, $4, $5)",
                &[
                    &action_id,
                    &version,
                    &id_bytes(id.ulid()),
                    &encode_definition(&definition),
                    &now.unix_millis(),
                ],
            )
            .await?;
        transaction.commit().await?;
        Ok(CreatedSchema {
            schema: StoredSchema {
                id,
                action,
                version: u32::try_from(version).map_err(|_| StoreError::Internal("schema version overflow".into()))?,
                definition,
                created_at: now,
            },
            created: true,
        })
    }

    async fn get_schema(&self, action: &str, version: Option<u32>) -> Result<Option<StoredSchema>, StoreError> {
        let version = version.map(|version| i32::try_from(version).unwrap_or(i32::MAX));
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "select {SCHEMA_COLUMNS} from audit_log_schemas s join audit_log_actions a on a.id = s.action_id
                     where a.name = $1 and s.version = coalesce($2, a.latest_version)"
                ),
                &[&action, &version],
            )
            .await?
            .map(|row| read_schema_at(&row, 0))
            .transpose()
    }

    async fn list_actions(&self, page: PageRequest<ActionId>) -> Result<Page<ActionSummary, ActionId>, StoreError> {
        let plan = page.plan();
        let mut params = Params::default();
        let mut sql = format!(
            "select a.id, a.created_at, a.updated_at, {SCHEMA_COLUMNS}
             from audit_log_actions a join audit_log_schemas s on s.action_id = a.id and s.version = a.latest_version
             where true"
        );
        params.push_id_bound(&mut sql, "a.id", plan.bound.as_ref(), |id| id.ulid());
        params.push_id_order(&mut sql, "a.id", plan.ascending, plan.fetch);
        let client = self.client().await?;
        let rows = client
            .query(&sql, &params.refs())
            .await?
            .iter()
            .map(|row| {
                let id: Vec<u8> = row.try_get(0)?;
                let latest = read_schema_at(row, 3)?;
                Ok(ActionSummary {
                    id: ActionId::from_ulid(ulid_from(&id)?),
                    name: latest.action.clone(),
                    latest,
                    created_at: timestamp(row.try_get(1)?, "created_at")?,
                    updated_at: timestamp(row.try_get(2)?, "updated_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(page.finish(rows, |action| action.id))
    }

    async fn list_schemas(
        &self,
        action: &str,
        page: PageRequest<SchemaId>,
    ) -> Result<Page<StoredSchema, SchemaId>, StoreError> {
        let client = self.client().await?;
        let action_id: Vec<u8> = client
            .query_opt(
                "select id from audit_log_actions where name = $1 and latest_version > 0",
                &[&action],
            )
            .await?
            .ok_or_else(|| StoreError::not_found("Audit log action", action))?
            .try_get(0)?;
        let plan = page.plan();
        let mut params = Params::default();
        let mut sql = format!(
            "select {SCHEMA_COLUMNS} from audit_log_schemas s join audit_log_actions a on a.id = s.action_id
             where s.action_id = {}",
            params.push(action_id)
        );
        params.push_id_bound(&mut sql, "s.id", plan.bound.as_ref(), |id| id.ulid());
        params.push_id_order(&mut sql, "s.id", plan.ascending, plan.fetch);
        let rows = client
            .query(&sql, &params.refs())
            .await?
            .iter()
            .map(|row| read_schema_at(row, 0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(rows, |schema| schema.id))
    }
}
