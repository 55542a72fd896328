//! Retention on PostgreSQL: purge steps, legal holds, and dropping the monthly partitions that
//! purges emptied.
//!
//! A purge step is one transaction. It first locks the log's head row (the lock every append of
//! the organization takes, on every node), so no two steps pick the same events and the record
//! takes the next position. It then picks up to `limit` events the rule covers, lowest positions
//! first, appends the purge record, marks their leaves (which stay in `log_leaves`) with the
//! record's position, and deletes the event, target and legacy rows. The lock is held for one
//! bounded step, so appends of that organization wait at most that long.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use vellum_core::log_record::{ErasureRecord, PositionsDigest, RECORD_SCHEMA_VERSION, RecordedBy};
use vellum_core::seal::ErasureSubject;
use vellum_core::{Event, EventInput, OrganizationId};

use super::{PostgresStore, id_bytes, timestamp, ulid_from};
use crate::{
    EraseStep, LegalHold, NewEvent, PurgeRule, PurgeStep, PurgedChunk, RetentionPolicy, RetentionStore, StoreError,
};

fn hold_of(since: Option<i64>, reason: Option<String>) -> Result<Option<LegalHold>, StoreError> {
    since
        .map(|since| {
            Ok(LegalHold {
                reason,
                since: timestamp(since, "legal hold time")?,
            })
        })
        .transpose()
}

/// Takes the log's head row lock, held to the end of the step, then reads whether a legal hold
/// is in force. A hold is set in a transaction that appends its record under the same lock, so the
/// hold read after it is the one in force: once `set_legal_hold` has answered, no purge or erasure
/// step changes anything.
async fn locked_and_held(transaction: &Transaction<'_>, organization_id: OrganizationId) -> Result<bool, StoreError> {
    let organization = id_bytes(organization_id.ulid());
    transaction
        .execute(
            "select size from log_heads where organization_id = $1 for update",
            &[&organization],
        )
        .await?;
    Ok(transaction
        .query_opt(
            "select legal_hold_since is not null from organizations where id = $1",
            &[&organization],
        )
        .await?
        .ok_or_else(|| StoreError::not_found("Organization", organization_id))?
        .get(0))
}

impl PostgresStore {
    /// Commits a purge or erase step that succeeded. When it failed, or its commit did, the
    /// appender forgets the log's cached right edge (the step may have appended a record that
    /// did not commit).
    async fn end_step<T>(
        &self,
        organization_id: OrganizationId,
        transaction: Transaction<'_>,
        step: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let committed = match step {
            Ok(step) => transaction.commit().await.map(|()| step).map_err(StoreError::from),
            Err(error) => Err(error),
        };
        if committed.is_err() {
            self.appender.forget(organization_id);
        }
        committed
    }

    /// Appends one of Vellum's own records inside `transaction` (to a deleted organization's
    /// log too).
    async fn append_record(
        &self,
        transaction: &Transaction<'_>,
        organization_id: OrganizationId,
        input: EventInput,
    ) -> Result<Event, StoreError> {
        let prepared = crate::payload::prepare(
            &self.ids,
            organization_id,
            vec![NewEvent {
                input,
                schema_version: RECORD_SCHEMA_VERSION,
            }],
            crate::now(),
        );
        let prepared: Vec<&crate::payload::PreparedEvent> = prepared.iter().collect();
        let mut events = self.appender.append_in(transaction, organization_id, &prepared).await?;
        events
            .pop()
            .ok_or_else(|| StoreError::Internal("appending a record stored no event".into()))
    }

    async fn purge_in(
        &self,
        transaction: &Transaction<'_>,
        organization_id: OrganizationId,
        rule: PurgeRule,
        limit: u32,
    ) -> Result<PurgeStep, StoreError> {
        let organization = id_bytes(organization_id.ulid());
        if locked_and_held(transaction, organization_id).await? {
            return Ok(PurgeStep::Held);
        }
        let below = i64::try_from(rule.below_log_index).unwrap_or(i64::MAX);
        let rows = transaction
            .query(
                "select received_at, seq, log_index, octet_length(payload) from events
                 where organization_id = $1 and log_index < $2 and occurred_at < $3
                   and not (action like 'vellum.%' and payload like '%\"system\":true%')
                 order by log_index limit $4",
                &[
                    &organization,
                    &below,
                    &rule.occurred_before.unix_millis(),
                    &i64::from(limit.max(1)),
                ],
            )
            .await?;
        if rows.is_empty() {
            return Ok(PurgeStep::Done);
        }
        let mut received_at = Vec::with_capacity(rows.len());
        let mut seqs = Vec::with_capacity(rows.len());
        let mut positions = Vec::with_capacity(rows.len());
        let mut digest = PositionsDigest::new();
        let mut payload_bytes = 0u64;
        for row in &rows {
            received_at.push(row.try_get::<_, i64>(0)?);
            seqs.push(row.try_get::<_, i64>(1)?);
            let position: i64 = row.try_get(2)?;
            positions.push(position);
            digest.push(super::log::index_u64(position)?);
            payload_bytes += u64::try_from(row.try_get::<_, i32>(3)?).unwrap_or_default();
        }
        let record = rule.record(&digest);
        let appended = self
            .append_record(
                transaction,
                organization_id,
                record.to_input(&organization_id.to_string(), crate::now()),
            )
            .await?;
        let record_position = i64::try_from(appended.log_index).unwrap_or(i64::MAX);
        let marked = transaction
            .execute(
                "update log_leaves set purged_by = $3
                 where organization_id = $1 and log_index = any($2) and purged_by is null",
                &[&organization, &positions, &record_position],
            )
            .await?;
        for table in ["event_targets", "audit_trail_events"] {
            transaction
                .execute(
                    &format!(
                        "delete from {table} where organization_id = $1
                           and (received_at, event_seq) in (select * from unnest($2::bigint[], $3::bigint[]))"
                    ),
                    &[&organization, &received_at, &seqs],
                )
                .await?;
        }
        let deleted = transaction
            .execute(
                "delete from events where organization_id = $1
                   and (received_at, seq) in (select * from unnest($2::bigint[], $3::bigint[]))",
                &[&organization, &received_at, &seqs],
            )
            .await?;
        if deleted != rows.len() as u64 || marked != rows.len() as u64 {
            return Err(StoreError::Internal(format!(
                "a purge step removed {deleted} events and marked {marked} leaves instead of {}",
                rows.len()
            )));
        }
        Ok(PurgeStep::Purged(PurgedChunk {
            record: appended,
            events: rows.len() as u64,
            payload_bytes,
        }))
    }
}

impl PostgresStore {
    async fn erase_in(
        &self,
        transaction: &Transaction<'_>,
        organization_id: OrganizationId,
        subject: &ErasureSubject,
        by: &RecordedBy,
        limit: u32,
    ) -> Result<EraseStep, StoreError> {
        let organization = id_bytes(organization_id.ulid());
        if locked_and_held(transaction, organization_id).await? {
            return Ok(EraseStep::Held);
        }
        let rows = transaction
            .query(
                &format!(
                    "select {} from events e
                     where e.organization_id = $1
                       and (e.actor_id = any($2) or exists (select 1 from event_targets t
                             where t.organization_id = e.organization_id and t.received_at = e.received_at
                               and t.event_seq = e.seq and t.target_id = any($2)))
                       and not (e.action like 'vellum.%' and e.payload like '%\"system\":true%')
                     order by e.log_index limit $3",
                    super::events::EVENT_COLUMNS
                ),
                &[&organization, &subject.ids, &i64::from(limit.max(1))],
            )
            .await?;
        if rows.is_empty() {
            return Ok(EraseStep::Done);
        }
        let mut found = Vec::with_capacity(rows.len());
        let mut digest = PositionsDigest::new();
        for row in &rows {
            let event = super::events::read_event(row)?;
            digest.push(event.log_index);
            found.push((row.try_get::<_, i64>(0)?, event));
        }
        let now = crate::now();
        let record = ErasureRecord::of(&digest).to_input(&organization_id.to_string(), now, by);
        let appended = self.append_record(transaction, organization_id, record).await?;
        let mut forgotten = subject.ids.clone();
        for (seq, mut event) in found {
            crate::payload::note_erased_values(&mut forgotten, subject, &event);
            let received_at = event.received_at.unix_millis();
            let erased_targets: Vec<i32> = event
                .input
                .targets
                .iter()
                .enumerate()
                .filter(|(_, target)| subject.ids.contains(&target.id))
                .map(|(position, _)| i32::try_from(position).unwrap_or(i32::MAX))
                .collect();
            vellum_core::seal::erase(&mut event, subject, appended.log_index);
            let payload = String::from_utf8(vellum_core::canonical::event_details_json(&event))
                .map_err(|_| StoreError::Internal("an erased payload is not UTF-8".into()))?;
            transaction
                .execute(
                    "update events set actor_id = $4, actor_name = $5, payload = $6
                     where organization_id = $1 and received_at = $2 and seq = $3",
                    &[
                        &organization,
                        &received_at,
                        &seq,
                        &event.input.actor.id,
                        &event.input.actor.name,
                        &payload,
                    ],
                )
                .await?;
            if !erased_targets.is_empty() {
                transaction
                    .execute(
                        "update event_targets set target_id = ''
                         where organization_id = $1 and received_at = $2 and event_seq = $3 and position = any($4)",
                        &[&organization, &received_at, &seq, &erased_targets],
                    )
                    .await?;
            }
            if let Some(flat) = vellum_core::audit_trail::FlatEvent::of(&event.input) {
                transaction
                    .execute(
                        "update audit_trail_events set target_name = $4, target_id = $5
                         where organization_id = $1 and received_at = $2 and event_seq = $3",
                        &[&organization, &received_at, &seq, &flat.target_name, &flat.target_id],
                    )
                    .await?;
            }
        }
        // Exports that are no longer run keep their filter: it must not keep the person either.
        let exports = transaction
            .query(
                "select id, filter from exports where organization_id = $1 and state <> 'pending'",
                &[&organization],
            )
            .await?;
        for export in &exports {
            let (id, filter): (Vec<u8>, String) = (export.try_get(0)?, export.try_get(1)?);
            if let Some(scrubbed) = crate::payload::filter_without(&filter, &forgotten) {
                transaction
                    .execute("update exports set filter = $2 where id = $1", &[&id, &scrubbed])
                    .await?;
            }
        }
        Ok(EraseStep::Erased {
            record: appended,
            events: rows.len() as u64,
        })
    }
}

/// Monthly partitions whose month ended before this long ago may be dropped once empty (no row
/// can be received into them any more, whatever the nodes' clocks say).
const PARTITION_GRACE_MILLIS: i64 = 2 * 24 * 60 * 60 * 1000;

#[async_trait]
impl RetentionStore for PostgresStore {
    async fn retention_policies(&self) -> Result<Vec<RetentionPolicy>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "select o.id, o.deleted_at is not null, o.retention_period_in_days, o.legal_hold_since,
                        o.legal_hold_reason, h.size
                 from organizations o join log_heads h on h.organization_id = o.id
                 where h.size > 0 order by o.id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let id: Vec<u8> = row.try_get(0)?;
                let days: Option<i32> = row.try_get(2)?;
                let size: i64 = row.try_get(5)?;
                Ok(RetentionPolicy {
                    organization_id: OrganizationId::from_ulid(ulid_from(&id)?),
                    deleted: row.try_get(1)?,
                    retention_period_in_days: days.and_then(|days| u32::try_from(days).ok()),
                    legal_hold: hold_of(row.try_get(3)?, row.try_get(4)?)?,
                    log_size: u64::try_from(size).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn purge_step(
        &self,
        organization_id: OrganizationId,
        rule: PurgeRule,
        limit: u32,
    ) -> Result<PurgeStep, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let step = self.purge_in(&transaction, organization_id, rule, limit).await;
        self.end_step(organization_id, transaction, step).await
    }

    async fn erase_step(
        &self,
        organization_id: OrganizationId,
        subject: &ErasureSubject,
        by: &RecordedBy,
        limit: u32,
    ) -> Result<EraseStep, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let step = self.erase_in(&transaction, organization_id, subject, by, limit).await;
        self.end_step(organization_id, transaction, step).await
    }

    async fn reclaim_space(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let before = crate::now().unix_millis() - PARTITION_GRACE_MILLIS;
        // The monthly partitions of the event tables whose month is over (by their bounds).
        let rows = client
            .query(
                "select c.relname, pg_total_relation_size(c.oid),
                        (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''?(-?[0-9]+)''?\\)'))[1]::bigint
                 from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
                 where p.relname in ('events', 'event_targets', 'audit_trail_events')
                   and c.relname ~ '_p[0-9]{6}$'",
                &[],
            )
            .await?;
        let mut freed = 0u64;
        for row in rows {
            let name: String = row.try_get(0)?;
            let size: i64 = row.try_get(1)?;
            let end: Option<i64> = row.try_get(2)?;
            if end.is_none_or(|end| end > before) {
                continue;
            }
            let empty = client
                .query_opt(&format!("select 1 from {name} limit 1"), &[])
                .await?
                .is_none();
            if empty {
                client.batch_execute(&format!("drop table if exists {name}")).await?;
                freed += u64::try_from(size).unwrap_or_default();
                tracing::info!(partition = %name, "dropped a monthly partition that purges emptied");
            }
        }
        Ok(freed)
    }

    async fn store_size(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let size: i64 = client
            .query_one("select pg_database_size(current_database())", &[])
            .await?
            .get(0);
        Ok(u64::try_from(size).unwrap_or_default())
    }

    async fn legal_hold(&self, organization_id: OrganizationId) -> Result<Option<LegalHold>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "select legal_hold_since, legal_hold_reason from organizations where id = $1 and deleted_at is null",
                &[&id_bytes(organization_id.ulid())],
            )
            .await?
            .ok_or_else(|| StoreError::not_found("Organization", organization_id))?;
        hold_of(row.try_get(0)?, row.try_get(1)?)
    }

    async fn set_legal_hold(
        &self,
        organization_id: OrganizationId,
        hold: Option<Option<String>>,
        record: EventInput,
    ) -> Result<(Option<LegalHold>, Option<Event>), StoreError> {
        let organization = id_bytes(organization_id.ulid());
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let row = transaction
            .query_opt(
                "select legal_hold_since, legal_hold_reason from organizations
                 where id = $1 and deleted_at is null for update",
                &[&organization],
            )
            .await?
            .ok_or_else(|| StoreError::not_found("Organization", organization_id))?;
        let current = hold_of(row.try_get(0)?, row.try_get(1)?)?;
        if current.is_some() == hold.is_some() {
            return Ok((current, None));
        }
        let now = crate::now();
        let (since, reason) = match &hold {
            Some(reason) => (Some(now.unix_millis()), reason.clone()),
            None => (None, None),
        };
        transaction
            .execute(
                "update organizations set legal_hold_since = $2, legal_hold_reason = $3 where id = $1",
                &[&organization, &since, &reason],
            )
            .await?;
        let appended = match self.append_record(&transaction, organization_id, record).await {
            Ok(appended) => appended,
            Err(error) => {
                self.appender.forget(organization_id);
                return Err(error);
            }
        };
        if let Err(error) = transaction.commit().await {
            self.appender.forget(organization_id);
            return Err(error.into());
        }
        Ok((hold_of(since, reason)?, Some(appended)))
    }
}
