//! Export jobs: created pending, claimed under a lease (`FOR UPDATE SKIP LOCKED`: concurrent
//! claims on any node pass each other by), finished once, by the lease's owner.

use async_trait::async_trait;
use tokio_postgres::Row;
use vellum_core::export::{Export, ExportFilter, ExportFormat, ExportState};
use vellum_core::{ExportId, OrganizationId, Timestamp};

use super::{PostgresStore, id_bytes, timestamp, ulid_from};
use crate::{ExportOutcome, ExportStore, StoreError, not_leased};

const COLUMNS: &str = "id, organization_id, format, filter, state, error, object_path, rows, bytes, \
                       attempts, created_at, updated_at";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("an export row has {what}"))
}

fn read_export(row: &Row) -> Result<Export, StoreError> {
    let id: Vec<u8> = row.try_get(0)?;
    let organization: Vec<u8> = row.try_get(1)?;
    let format: String = row.try_get(2)?;
    let filter: String = row.try_get(3)?;
    let state: String = row.try_get(4)?;
    let rows: Option<i64> = row.try_get(7)?;
    let bytes: Option<i64> = row.try_get(8)?;
    let attempts: i32 = row.try_get(9)?;
    Ok(Export {
        id: ExportId::from_ulid(ulid_from(&id).map_err(|_| corrupt("a malformed id"))?),
        organization_id: OrganizationId::from_ulid(
            ulid_from(&organization).map_err(|_| corrupt("a malformed organization id"))?,
        ),
        format: ExportFormat::parse(&format).ok_or_else(|| corrupt("an unknown format"))?,
        filter: serde_json::from_str(&filter)
            .ok()
            .and_then(|value| ExportFilter::from_json(&value))
            .ok_or_else(|| corrupt("a malformed filter"))?,
        state: ExportState::parse(&state).ok_or_else(|| corrupt("an unknown state"))?,
        error: row.try_get(5)?,
        object_path: row.try_get(6)?,
        rows: rows.and_then(|value| u64::try_from(value).ok()),
        bytes: bytes.and_then(|value| u64::try_from(value).ok()),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        created_at: timestamp(row.try_get(10)?, "export created_at")?,
        updated_at: timestamp(row.try_get(11)?, "export updated_at")?,
    })
}

impl PostgresStore {
    async fn finish(&self, id: ExportId, outcome: &ExportOutcome, owner: Option<&str>) -> Result<Export, StoreError> {
        let key = id_bytes(id.ulid());
        let now = crate::now().unix_millis();
        let client = self.client().await?;
        let changed =
            match outcome {
                ExportOutcome::Ready {
                    object_path,
                    rows,
                    bytes,
                } => client
                    .execute(
                        "update exports set state = 'ready', object_path = $2, rows = $3, bytes = $4, updated_at = $5,
                             lease_owner = null, lease_until = null
                         where id = $1 and state = 'pending' and ($6::text is null or lease_owner = $6)",
                        &[
                            &key,
                            object_path,
                            &i64::try_from(*rows).unwrap_or(i64::MAX),
                            &i64::try_from(*bytes).unwrap_or(i64::MAX),
                            &now,
                            &owner,
                        ],
                    )
                    .await?,
                ExportOutcome::Failed(reason) => {
                    client
                        .execute(
                            "update exports set state = 'error', error = $2, updated_at = $3,
                             lease_owner = null, lease_until = null
                         where id = $1 and state = 'pending' and ($4::text is null or lease_owner = $4)",
                            &[&key, reason, &now, &owner],
                        )
                        .await?
                }
                // A ready export has no lease, so no worker can expire it under one.
                ExportOutcome::Expired => {
                    client
                        .execute(
                            "update exports set state = 'expired', updated_at = $2
                         where id = $1 and state = 'ready' and $3::text is null",
                            &[&key, &now, &owner],
                        )
                        .await?
                }
            };
        drop(client);
        let export = self.get_export(id).await?;
        if changed == 0 {
            return Err(outcome.refused(&export, owner));
        }
        Ok(export)
    }
}

#[async_trait]
impl ExportStore for PostgresStore {
    async fn create_export(
        &self,
        organization_id: OrganizationId,
        format: ExportFormat,
        filter: ExportFilter,
    ) -> Result<Export, StoreError> {
        let id = ExportId::from_ulid(self.ids.next());
        let now = crate::now().unix_millis();
        let client = self.client().await?;
        let inserted = client
            .execute(
                "insert into exports (id, organization_id, format, filter, state, created_at, updated_at)
                 select $1, id, $3, $4, 'pending', $5, $5 from organizations where id = $2 and deleted_at is null",
                &[
                    &id_bytes(id.ulid()),
                    &id_bytes(organization_id.ulid()),
                    &format.as_str(),
                    &filter.to_json().to_string(),
                    &now,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::not_found("Organization", organization_id));
        }
        drop(client);
        self.get_export(id).await
    }

    async fn get_export(&self, id: ExportId) -> Result<Export, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("select {COLUMNS} from exports where id = $1"),
                &[&id_bytes(id.ulid())],
            )
            .await?
            .map(|row| read_export(&row))
            .transpose()?
            .ok_or_else(|| StoreError::not_found("Audit Log Export", id))
    }

    async fn exports_in_state(&self, state: ExportState, updated_before: Timestamp) -> Result<Vec<Export>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                &format!("select {COLUMNS} from exports where state = $1 and updated_at < $2 order by updated_at, seq"),
                &[&state.as_str(), &updated_before.unix_millis()],
            )
            .await?
            .iter()
            .map(read_export)
            .collect()
    }

    async fn start_export(&self, id: ExportId) -> Result<Export, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "update exports set attempts = attempts + 1, updated_at = $2 where id = $1 and state = 'pending'",
                &[&id_bytes(id.ulid()), &crate::now().unix_millis()],
            )
            .await?;
        drop(client);
        self.get_export(id).await
    }

    async fn finish_export(&self, id: ExportId, outcome: ExportOutcome) -> Result<Export, StoreError> {
        self.finish(id, &outcome, None).await
    }

    async fn claim_export(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Export>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "update exports set lease_owner = $1, lease_until = $3, attempts = attempts + 1, updated_at = $2
                     where seq = (select seq from exports
                                  where state = 'pending' and (lease_until is null or lease_until <= $2)
                                  order by seq limit 1 for update skip locked)
                     returning {COLUMNS}"
                ),
                &[&worker, &now.unix_millis(), &lease_until.unix_millis()],
            )
            .await?
            .map(|row| read_export(&row))
            .transpose()
    }

    async fn renew_export_lease(&self, id: ExportId, worker: &str, lease_until: Timestamp) -> Result<(), StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "update exports set lease_until = $3 where id = $1 and state = 'pending' and lease_owner = $2",
                &[&id_bytes(id.ulid()), &worker, &lease_until.unix_millis()],
            )
            .await?;
        if changed == 0 {
            drop(client);
            self.get_export(id).await?;
            return Err(not_leased(id, worker));
        }
        Ok(())
    }

    async fn release_export_lease(&self, id: ExportId, worker: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "update exports set lease_owner = null, lease_until = null, attempts = greatest(attempts - 1, 0)
                 where id = $1 and state = 'pending' and lease_owner = $2",
                &[&id_bytes(id.ulid()), &worker],
            )
            .await?;
        Ok(())
    }

    async fn finish_leased_export(
        &self,
        id: ExportId,
        worker: &str,
        outcome: ExportOutcome,
    ) -> Result<Export, StoreError> {
        self.finish(id, &outcome, Some(worker)).await
    }
}
