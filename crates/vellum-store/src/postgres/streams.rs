//! Log streams: their settings, and deliveries claimed under a lease (`FOR UPDATE SKIP LOCKED`:
//! claims on any node pass each other by, and one node holds a stream at a time).

use async_trait::async_trait;
use tokio_postgres::Row;
use vellum_core::stream::{Destination, StreamState, StreamType};
use vellum_core::{Event, OrganizationId, StreamId, Timestamp};

use super::events::{EVENT_COLUMNS, read_event};
use super::{PostgresStore, id_bytes, timestamp, ulid_from};
use crate::{DeliveryOutcome, NewStream, StoreError, Stream, StreamChange, StreamStore};

const COLUMNS: &str = "s.id, s.organization_id, s.type, s.config, s.secrets, s.state, s.cursor, s.failures, s.error, \
                       s.next_attempt_at, s.last_synced_at, s.created_at, s.updated_at, s.deliveries, \
                       s.events_delivered, s.failed_attempts";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("a log stream row has {what}"))
}

fn optional_time(millis: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    millis.map(|millis| timestamp(millis, "log stream time")).transpose()
}

fn read_stream(row: &Row) -> Result<Stream, StoreError> {
    let id: Vec<u8> = row.try_get(0)?;
    let organization: Vec<u8> = row.try_get(1)?;
    let kind: String = row.try_get(2)?;
    let config: String = row.try_get(3)?;
    let state: String = row.try_get(5)?;
    let cursor: i64 = row.try_get(6)?;
    let failures: i32 = row.try_get(7)?;
    let kind = StreamType::parse(&kind).ok_or_else(|| corrupt("an unknown type"))?;
    Ok(Stream {
        id: StreamId::from_ulid(ulid_from(&id).map_err(|_| corrupt("a malformed id"))?),
        organization_id: OrganizationId::from_ulid(
            ulid_from(&organization).map_err(|_| corrupt("a malformed organization id"))?,
        ),
        destination: serde_json::from_str(&config)
            .ok()
            .and_then(|value| Destination::from_json(kind, &value))
            .ok_or_else(|| corrupt("malformed settings"))?,
        sealed_secrets: row.try_get(4)?,
        state: StreamState::parse(&state).ok_or_else(|| corrupt("an unknown state"))?,
        cursor: u64::try_from(cursor).map_err(|_| corrupt("a negative cursor"))?,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        error: row.try_get(8)?,
        next_attempt_at: optional_time(row.try_get(9)?)?,
        last_synced_at: optional_time(row.try_get(10)?)?,
        counters: crate::StreamCounters {
            deliveries: u64::try_from(row.try_get::<_, i64>(13)?).unwrap_or(0),
            events_delivered: u64::try_from(row.try_get::<_, i64>(14)?).unwrap_or(0),
            failed_attempts: u64::try_from(row.try_get::<_, i64>(15)?).unwrap_or(0),
        },
        created_at: timestamp(row.try_get(11)?, "log stream created_at")?,
        updated_at: timestamp(row.try_get(12)?, "log stream updated_at")?,
    })
}

fn position(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn lost(id: StreamId, worker: &str) -> StoreError {
    StoreError::Conflict(format!("stream {id} is no longer held by {worker} at that position"))
}

impl PostgresStore {
    async fn log_size(&self, client: &tokio_postgres::Client, organization: &[u8]) -> Result<u64, StoreError> {
        let size: Option<i64> = client
            .query_opt(
                "select size from log_heads where organization_id = $1",
                &[&organization],
            )
            .await?
            .map(|row| row.try_get(0))
            .transpose()?;
        Ok(size.and_then(|size| u64::try_from(size).ok()).unwrap_or(0))
    }
}

#[async_trait]
impl StreamStore for PostgresStore {
    async fn create_stream(&self, stream: NewStream) -> Result<Stream, StoreError> {
        let id = StreamId::from_ulid(self.ids.next());
        let now = crate::now().unix_millis();
        let client = self.client().await?;
        let inserted = client
            .execute(
                "insert into log_streams (id, organization_id, type, config, secrets, state, cursor, created_at, updated_at)
                 select $1, id, $3, $4, $5, $6, $7, $8, $8 from organizations where id = $2 and deleted_at is null",
                &[
                    &id_bytes(id.ulid()),
                    &id_bytes(stream.organization_id.ulid()),
                    &stream.destination.stream_type().as_str(),
                    &stream.destination.to_json().to_string(),
                    &stream.sealed_secrets,
                    &stream.state.as_str(),
                    &position(stream.cursor),
                    &now,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::not_found("Organization", stream.organization_id));
        }
        drop(client);
        self.get_stream(id).await
    }

    async fn get_stream(&self, id: StreamId) -> Result<Stream, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!(
                    "select {COLUMNS} from log_streams s join organizations o on o.id = s.organization_id
                     where s.id = $1 and o.deleted_at is null"
                ),
                &[&id_bytes(id.ulid())],
            )
            .await?
            .map(|row| read_stream(&row))
            .transpose()?
            .ok_or_else(|| StoreError::not_found("Audit Log Stream", id))
    }

    async fn list_streams(&self, organization_id: OrganizationId) -> Result<Vec<Stream>, StoreError> {
        let client = self.client().await?;
        self.require_live(&client, organization_id).await?;
        client
            .query(
                &format!("select {COLUMNS} from log_streams s where s.organization_id = $1 order by s.seq"),
                &[&id_bytes(organization_id.ulid())],
            )
            .await?
            .iter()
            .map(read_stream)
            .collect()
    }

    async fn all_streams(&self, limit: u32) -> Result<Vec<Stream>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "select {COLUMNS} from log_streams s join organizations o on o.id = s.organization_id
                     where o.deleted_at is null order by s.seq limit $1"
                ),
                &[&i64::from(limit)],
            )
            .await?
            .iter()
            .map(read_stream)
            .collect()
    }

    async fn update_stream(&self, id: StreamId, change: StreamChange) -> Result<Stream, StoreError> {
        let before = self.get_stream(id).await?;
        if before.destination.stream_type() != change.destination.stream_type() {
            return Err(StoreError::Conflict("a stream's type cannot change".to_owned()));
        }
        let client = self.client().await?;
        client
            .execute(
                "update log_streams set config = $2, secrets = $3, state = $4, failures = 0, error = null,
                     next_attempt_at = null, updated_at = $5
                 where id = $1",
                &[
                    &id_bytes(id.ulid()),
                    &change.destination.to_json().to_string(),
                    &change.sealed_secrets,
                    &change.state.as_str(),
                    &crate::now().unix_millis(),
                ],
            )
            .await?;
        drop(client);
        self.get_stream(id).await
    }

    async fn delete_stream(&self, id: StreamId) -> Result<(), StoreError> {
        self.get_stream(id).await?;
        let client = self.client().await?;
        client
            .execute("delete from log_streams where id = $1", &[&id_bytes(id.ulid())])
            .await?;
        Ok(())
    }

    async fn replay_stream(&self, id: StreamId, from: u64) -> Result<Stream, StoreError> {
        let stream = self.get_stream(id).await?;
        let client = self.client().await?;
        let size = self.log_size(&client, &id_bytes(stream.organization_id.ulid())).await?;
        if from > size {
            return Err(StoreError::InvalidInput {
                field: "from_log_index",
                message: format!("the log has {size} entries; replay from at most {size}"),
            });
        }
        // A worker in flight keeps its lease, but its outcome no longer matches the cursor, so it
        // records nothing and lets the stream go.
        client
            .execute(
                "update log_streams set cursor = $2, failures = 0, next_attempt_at = null, updated_at = $3
                 where id = $1",
                &[&id_bytes(id.ulid()), &position(from), &crate::now().unix_millis()],
            )
            .await?;
        drop(client);
        self.get_stream(id).await
    }

    async fn first_position_since(&self, organization_id: OrganizationId, since: Timestamp) -> Result<u64, StoreError> {
        let client = self.client().await?;
        self.require_live(&client, organization_id).await?;
        let organization = id_bytes(organization_id.ulid());
        let found: Option<i64> = client
            .query_one(
                "select min(log_index) from events where organization_id = $1 and occurred_at >= $2",
                &[&organization, &since.unix_millis()],
            )
            .await?
            .try_get(0)?;
        match found {
            Some(found) => Ok(u64::try_from(found).unwrap_or(0)),
            None => self.log_size(&client, &organization).await,
        }
    }

    async fn claim_stream(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Stream>, StoreError> {
        let client = self.client().await?;
        let claimed = client
            .query_opt(
                "update log_streams set lease_owner = $1, lease_until = $3
                 where id = (select s.id from log_streams s join organizations o on o.id = s.organization_id
                             where s.state in ('active', 'error') and o.deleted_at is null
                               and (s.next_attempt_at is null or s.next_attempt_at <= $2)
                               and (s.lease_until is null or s.lease_until <= $2)
                               and exists (select 1 from log_heads h
                                           where h.organization_id = s.organization_id and h.size > s.cursor)
                             order by coalesce(s.lease_until, 0), s.seq limit 1
                             for update of s skip locked)
                 returning id",
                &[&worker, &now.unix_millis(), &lease_until.unix_millis()],
            )
            .await?;
        let Some(row) = claimed else {
            return Ok(None);
        };
        let id: Vec<u8> = row.try_get(0)?;
        drop(client);
        let id = StreamId::from_ulid(ulid_from(&id).map_err(|_| corrupt("a malformed id"))?);
        self.get_stream(id).await.map(Some)
    }

    async fn finish_delivery(
        &self,
        id: StreamId,
        worker: &str,
        from: u64,
        outcome: DeliveryOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let key = id_bytes(id.ulid());
        let changed =
            match &outcome {
                DeliveryOutcome::Delivered {
                    next,
                    events,
                    lease_until,
                } => {
                    client
                        .execute(
                            "update log_streams set cursor = $4, last_synced_at = $5, lease_until = $6, failures = 0,
                             deliveries = deliveries + 1, events_delivered = events_delivered + $7,
                             state = case state when 'error' then 'active' else state end,
                             error = case state when 'error' then null else error end,
                             next_attempt_at = null
                         where id = $1 and lease_owner = $2 and cursor = $3 and $4 >= $3",
                            &[
                                &key,
                                &worker,
                                &position(from),
                                &position(*next),
                                &now.unix_millis(),
                                &lease_until.unix_millis(),
                                &position(*events),
                            ],
                        )
                        .await?
                }
                DeliveryOutcome::Failed {
                    state,
                    reason,
                    next_attempt_at,
                } => client
                    .execute(
                        "update log_streams set state = case state when 'inactive' then state else $4 end, error = $5,
                             failures = failures + 1, failed_attempts = failed_attempts + 1, next_attempt_at = $6,
                             lease_owner = null, lease_until = $7
                         where id = $1 and lease_owner = $2 and cursor = $3",
                        &[
                            &key,
                            &worker,
                            &position(from),
                            &state.as_str(),
                            reason,
                            &next_attempt_at.map(Timestamp::unix_millis),
                            &now.unix_millis(),
                        ],
                    )
                    .await?,
            };
        if changed == 0 {
            return Err(lost(id, worker));
        }
        Ok(())
    }

    async fn release_stream(&self, id: StreamId, worker: &str, now: Timestamp) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "update log_streams set lease_owner = null, lease_until = $3 where id = $1 and lease_owner = $2",
                &[&id_bytes(id.ulid()), &worker, &now.unix_millis()],
            )
            .await?;
        Ok(())
    }

    async fn stream_events(
        &self,
        organization_id: OrganizationId,
        from: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let client = self.client().await?;
        self.require_live(&client, organization_id).await?;
        client
            .query(
                &format!(
                    "select {EVENT_COLUMNS} from events e
                     where e.organization_id = $1 and e.log_index >= $2 order by e.log_index limit $3"
                ),
                &[&id_bytes(organization_id.ulid()), &position(from), &i64::from(limit)],
            )
            .await?
            .iter()
            .map(read_event)
            .collect()
    }
}
