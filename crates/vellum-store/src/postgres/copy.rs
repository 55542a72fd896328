//! `vellum copy`: an embedded store moved into an empty PostgreSQL database, every log intact.
//!
//! Everything is written in one transaction, so a copy that fails leaves the database as it
//! was. Tables without a log (organizations, keys, operators and their live sessions, schemas,
//! idempotency keys of the last 24 hours, exports) are streamed row for row with `COPY … (format
//! binary)`. Events are read back through the log (decoded and checked against their stored
//! leaf, position by position) and inserted as an append inserts them, keeping their ids,
//! positions and times; the tree is then rebuilt from the copied leaves, and the copy is refused
//! unless every log's size and root equal the embedded store's and every copied checkpoint's
//! root is the new tree's root at its size. So a checkpoint signed before the move stays valid,
//! and the next one signed after it is consistent with it.

use std::pin::pin;

use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use vellum_core::canonical::PreparedLeaf;
use vellum_core::merkle::Hash;
use vellum_core::{OrganizationId, Timestamp};

use super::append::Batch;
use super::log::PgLog;
use super::{PostgresStore, id_bytes, partitions};
use crate::prelude::*;
use crate::sqlite::Cell;
use crate::verifiable_log::{self, Frontiers};
use crate::{IDEMPOTENCY_WINDOW_MILLIS, SqliteStore, StoreError};

/// Log positions read and inserted at a time.
const EVENT_PAGE: u64 = 2_000;

/// What a copy moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopySummary {
    /// Rows copied per table without a log, in copy order.
    pub tables: Vec<(&'static str, u64)>,
    /// Every log copied.
    pub logs: Vec<CopiedLog>,
}

impl CopySummary {
    /// Events copied, over every log.
    pub fn events(&self) -> u64 {
        self.logs.iter().map(|log| log.size).sum()
    }
}

/// One log as copied: the same size and root on both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiedLog {
    /// Its organization.
    pub organization_id: OrganizationId,
    /// Whether the organization was deleted (its log outlives it).
    pub deleted: bool,
    /// Its size.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// The size of its latest signed checkpoint, if any.
    pub checkpoint_size: Option<u64>,
}

/// How far a copy got, reported as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyProgress {
    /// A table without a log was copied.
    Table {
        /// The table.
        name: &'static str,
        /// Rows copied.
        rows: u64,
    },
    /// Events of one log were copied, `copied` of `size` so far.
    Events {
        /// The log's organization.
        organization_id: OrganizationId,
        /// Positions copied so far.
        copied: u64,
        /// The log's size.
        size: u64,
    },
}

/// One table without a log: the embedded store's query, and the PostgreSQL table and columns
/// its rows go to, in the same order.
struct Table {
    name: &'static str,
    source: &'static str,
    /// The value of the query's one parameter, if it has one.
    parameter: Parameter,
    target: &'static str,
    columns: &'static str,
}

/// The value a table's query is bound to.
#[derive(Clone, Copy)]
enum Parameter {
    None,
    /// Now: what expired before is not copied.
    Now,
    /// The start of the idempotency window: older keys are not remembered anyway.
    KeyWindowStart,
}

/// Tables copied before the events, in an order that satisfies every reference.
const TABLES: &[Table] = &[
    Table {
        name: "organizations",
        source: "select id, name, external_id, metadata, domains, stripe_customer_id,
                 allow_profiles_outside_organization, retention_period_in_days, created_at, updated_at,
                 deleted_at, legal_hold_since, legal_hold_reason from organizations order by seq",
        parameter: Parameter::None,
        target: "organizations",
        columns: "id, name, external_id, metadata, domains, stripe_customer_id,
                  allow_profiles_outside_organization, retention_period_in_days, created_at, updated_at,
                  deleted_at, legal_hold_since, legal_hold_reason",
    },
    Table {
        name: "api keys",
        source: "select id, name, secret_hash, redacted_secret, created_at, revoked_at from api_keys order by id",
        parameter: Parameter::None,
        target: "api_keys",
        columns: "id, name, secret_hash, redacted_secret, created_at, revoked_at",
    },
    Table {
        name: "operators",
        source: "select id, email, password_hash, created_at, updated_at from operators order by id",
        parameter: Parameter::None,
        target: "operators",
        columns: "id, email, password_hash, created_at, updated_at",
    },
    Table {
        name: "operator sessions",
        source: "select token_hash, operator_id, created_at, expires_at from operator_sessions where expires_at > ?1",
        parameter: Parameter::Now,
        target: "operator_sessions",
        columns: "token_hash, operator_id, created_at, expires_at",
    },
    Table {
        name: "actions",
        source: "select id, name, latest_version, created_at, updated_at from audit_log_actions order by seq",
        parameter: Parameter::None,
        target: "audit_log_actions",
        columns: "id, name, latest_version, created_at, updated_at",
    },
    Table {
        name: "schema versions",
        source: "select a.id, s.version, s.id, s.definition, s.created_at
                 from audit_log_schemas s join audit_log_actions a on a.seq = s.action_seq
                 order by s.action_seq, s.version",
        parameter: Parameter::None,
        target: "audit_log_schemas",
        columns: "action_id, version, id, definition, created_at",
    },
    Table {
        name: "idempotency keys",
        source: "select o.id, k.key_hash, k.request_hash, k.response, k.event_ids, k.created_at
                 from idempotency_keys k join organizations o on o.seq = k.organization_seq
                 where k.created_at > ?1",
        parameter: Parameter::KeyWindowStart,
        target: "idempotency_keys",
        columns: "organization_id, key_hash, request_hash, response, event_ids, created_at",
    },
    Table {
        name: "exports",
        source: "select x.id, o.id, x.format, x.filter, x.state, x.error, x.object_path, x.rows, x.bytes,
                 x.attempts, x.created_at, x.updated_at, x.lease_owner, x.lease_until
                 from exports x join organizations o on o.seq = x.organization_seq order by x.seq",
        parameter: Parameter::None,
        target: "exports",
        columns: "id, organization_id, format, filter, state, error, object_path, rows, bytes, attempts,
                  created_at, updated_at, lease_owner, lease_until",
    },
    // Their secrets stay sealed: `vellum copy` shares the stream key with the database too.
    // Leases are not copied: the first node to claim a stream takes it.
    Table {
        name: "log streams",
        source: "select s.id, o.id, s.type, s.config, s.secrets, s.state, s.cursor, s.failures, s.error,
                 s.next_attempt_at, s.last_synced_at, s.created_at, s.updated_at
                 from log_streams s join organizations o on o.seq = s.organization_seq order by s.seq",
        parameter: Parameter::None,
        target: "log_streams",
        columns: "id, organization_id, type, config, secrets, state, cursor, failures, error, next_attempt_at,
                  last_synced_at, created_at, updated_at",
    },
];

/// The checkpoints, copied after the logs they sign.
const CHECKPOINTS: Table = Table {
    name: "checkpoints",
    source: "select o.id, c.tree_size, c.root_hash, c.note, c.signed_at
             from log_checkpoints c join organizations o on o.seq = c.organization_seq",
    parameter: Parameter::None,
    target: "log_checkpoints",
    columns: "organization_id, tree_size, root_hash, note, signed_at",
};

/// What makes a database not empty, for a copy.
const HOLDS_ANYTHING: &str = "select exists (select 1 from organizations) or exists (select 1 from api_keys)
     or exists (select 1 from operators) or exists (select 1 from audit_log_actions)
     or exists (select 1 from log_heads) or exists (select 1 from exports)";

/// The earliest and latest receipt of the embedded store's events.
const RECEIPT_SPAN: &str = "select min(received_at), max(received_at) from events";

impl PostgresStore {
    /// Copies everything `source` holds into this store, which must be empty (`Conflict`
    /// otherwise), in one transaction; see the module's documentation. `progress` hears of each
    /// table and each page of events as it is copied.
    ///
    /// The embedded store must not change meanwhile (stop its server first): a log that grew
    /// during the copy fails the final comparison, and nothing is committed.
    pub async fn copy_from_embedded(
        &self,
        source: &SqliteStore,
        progress: &mut (dyn FnMut(CopyProgress) + Send),
    ) -> Result<CopySummary, StoreError> {
        let mut client = self.client().await?;
        let holds_anything: bool = client.query_one(HOLDS_ANYTHING, &[]).await?.get(0);
        if holds_anything {
            return Err(StoreError::Conflict(
                "the database already holds data: copy into an empty database".into(),
            ));
        }
        // Every month with events gets its partitions before the events arrive.
        let span = read_all(source, RECEIPT_SPAN, Vec::new()).await?;
        if let Some([Cell::Int(first), Cell::Int(last)]) = span.first().map(Vec::as_slice) {
            let at = |millis: i64| {
                Timestamp::from_unix_millis(millis)
                    .ok_or_else(|| StoreError::Internal("an event's receipt time is out of range".into()))
            };
            partitions::create_months(&self.pool, at(*first)?, at(*last)?, 0).await?;
        }

        let transaction = client.transaction().await?;
        let now = crate::now().unix_millis();
        let mut summary = CopySummary::default();
        for table in TABLES {
            let parameters = match table.parameter {
                Parameter::None => Vec::new(),
                Parameter::Now => vec![now],
                Parameter::KeyWindowStart => vec![now.saturating_sub(IDEMPOTENCY_WINDOW_MILLIS)],
            };
            let rows = copy_table(source, &transaction, table, parameters).await?;
            progress(CopyProgress::Table { name: table.name, rows });
            summary.tables.push((table.name, rows));
        }

        let frontiers = Frontiers::new();
        for owner in source.log_organizations().await? {
            let organization_id = owner.organization_id;
            let head = source.log_tree_head(organization_id).await?;
            let organization = id_bytes(organization_id.ulid());
            let log = PgLog {
                transaction: &transaction,
                organization: organization.clone(),
            };
            let mut copied = 0;
            while copied < head.size {
                let scan = source
                    .log_scan(organization_id, copied, EVENT_PAGE.min(head.size - copied))
                    .await?;
                if scan.records.is_empty() {
                    return Err(StoreError::Internal(format!(
                        "the log of {organization_id} has no event at position {copied}"
                    )));
                }
                let mut batch = Batch::default();
                let mut batch_start = copied;
                let mut count = 0u64;
                for (offset, record) in (copied..).zip(scan.records) {
                    let at_position = |what: &str| {
                        StoreError::Conflict(format!(
                            "position {offset} of the log of {organization_id} {what}; \
                             run `vellum verify store` on the data directory"
                        ))
                    };
                    if u64::try_from(record.log_index).ok() != Some(offset) {
                        return Err(at_position("is missing"));
                    }
                    count += 1;
                    if let Some(purged_by) = record.purged_by {
                        // What a purge left: the leaf and the record's position. The event's id
                        // and receipt time went with it; the row keeps zeros in their place.
                        let leaf = record.stored_leaf.ok_or_else(|| at_position("has no leaf"))?;
                        insert_batch(&transaction, &frontiers, &log, organization_id, batch_start, &batch).await?;
                        batch = Batch::default();
                        transaction
                            .execute(
                                "insert into log_leaves (organization_id, log_index, leaf_hash, event_id, received_at, purged_by)
                                 values ($1, $2, $3, $4, 0, $5)",
                                &[
                                    &organization,
                                    &i64::try_from(offset).unwrap_or(i64::MAX),
                                    &leaf.as_slice(),
                                    &[0u8; 16].as_slice(),
                                    &i64::try_from(purged_by).unwrap_or(i64::MAX),
                                ],
                            )
                            .await?;
                        frontiers
                            .append(&log, organization_id.ulid().to_bytes(), offset, &[leaf])
                            .await?;
                        batch_start = offset + 1;
                        continue;
                    }
                    let event = record.event.map_err(|_| at_position("cannot be read"))?;
                    // A redacted v1 event no longer hashes to its leaf: the erasure record that
                    // names it vouches for it, and `verify store` checks that afterwards.
                    let leaf = if vellum_core::canonical::leaf_is_recomputable(&event) {
                        PreparedLeaf::new(&event).leaf_hash(offset)
                    } else {
                        record.stored_leaf.ok_or_else(|| at_position("has no leaf"))?
                    };
                    if record.stored_leaf != Some(leaf) {
                        return Err(at_position("does not match its stored leaf"));
                    }
                    let payload = String::from_utf8(vellum_core::canonical::event_details_json(&event))
                        .map_err(|_| at_position("is not UTF-8"))?;
                    batch.push(&event, &payload, leaf, i64::try_from(offset).unwrap_or(i64::MAX));
                }
                insert_batch(&transaction, &frontiers, &log, organization_id, batch_start, &batch).await?;
                copied += count;
                transaction
                    .execute(
                        "insert into log_heads (organization_id, size) values ($1, $2)
                         on conflict (organization_id) do update set size = excluded.size",
                        &[&organization, &i64::try_from(copied).unwrap_or(i64::MAX)],
                    )
                    .await?;
                progress(CopyProgress::Events {
                    organization_id,
                    copied,
                    size: head.size,
                });
            }
            let (size, root) = verifiable_log::tree_head(&log).await?;
            if (size, root) != (head.size, head.root) {
                return Err(StoreError::Conflict(format!(
                    "the copied log of {organization_id} differs from the embedded store's \
                     (size {size} against {}): did a server write to it during the copy?",
                    head.size
                )));
            }
            summary.logs.push(CopiedLog {
                organization_id,
                deleted: owner.deleted,
                size,
                root,
                checkpoint_size: None,
            });
        }

        // A server still writing to the embedded store would leave events behind: refuse.
        let owners_now = source.log_organizations().await?;
        let mut grown = owners_now.len() != summary.logs.len();
        for copied in &summary.logs {
            grown |= source.log_tree_head(copied.organization_id).await?.size != copied.size;
        }
        if grown {
            return Err(StoreError::Conflict(
                "the embedded store changed during the copy: stop its server, then copy again".into(),
            ));
        }

        let rows = copy_table(source, &transaction, &CHECKPOINTS, Vec::new()).await?;
        progress(CopyProgress::Table {
            name: CHECKPOINTS.name,
            rows,
        });
        summary.tables.push((CHECKPOINTS.name, rows));
        for copied in &mut summary.logs {
            let log = PgLog {
                transaction: &transaction,
                organization: id_bytes(copied.organization_id.ulid()),
            };
            let Some(checkpoint) = verifiable_log::LogStorage::checkpoint(&log).await? else {
                continue;
            };
            if checkpoint.tree_size > copied.size
                || verifiable_log::root(&log, checkpoint.tree_size).await? != checkpoint.root
            {
                return Err(StoreError::Conflict(format!(
                    "the latest checkpoint of {} does not sign the copied log",
                    copied.organization_id
                )));
            }
            copied.checkpoint_size = Some(checkpoint.tree_size);
        }
        transaction.commit().await?;
        Ok(summary)
    }
}

/// Every row of a small query.
async fn read_all(source: &SqliteStore, sql: &'static str, parameters: Vec<i64>) -> Result<Vec<Vec<Cell>>, StoreError> {
    let (sender, mut receiver) = mpsc::channel(4);
    let (streamed, rows) = tokio::join!(source.stream_rows(sql, parameters, sender), async move {
        let mut rows = Vec::new();
        while let Some(chunk) = receiver.recv().await {
            rows.extend(chunk);
        }
        rows
    });
    streamed?;
    Ok(rows)
}

/// Streams one table from the embedded store into PostgreSQL with a binary COPY; returns the
/// rows copied.
async fn copy_table(
    source: &SqliteStore,
    transaction: &deadpool_postgres::Transaction<'_>,
    table: &Table,
    parameters: Vec<i64>,
) -> Result<u64, StoreError> {
    let shape = transaction
        .prepare(&format!("select {} from {} limit 0", table.columns, table.target))
        .await?;
    let types: Vec<Type> = shape.columns().iter().map(|column| column.type_().clone()).collect();
    let names: Vec<String> = shape.columns().iter().map(|column| column.name().to_owned()).collect();
    let sink = transaction
        .copy_in(&format!(
            "copy {} ({}) from stdin (format binary)",
            table.target, table.columns
        ))
        .await?;
    let (sender, mut receiver) = mpsc::channel::<Vec<Vec<Cell>>>(4);
    let write = async {
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
        let mut rows = 0_u64;
        while let Some(chunk) = receiver.recv().await {
            for row in chunk {
                if row.len() != types.len() {
                    return Err(StoreError::Internal(format!(
                        "{}: a row of the wrong width",
                        table.name
                    )));
                }
                let values = row
                    .iter()
                    .zip(types.iter().zip(&names))
                    .map(|(cell, (ty, name))| typed(cell, ty, table.name, name))
                    .collect::<Result<Vec<_>, _>>()?;
                let references: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|value| &**value as &(dyn ToSql + Sync)).collect();
                writer.as_mut().write(&references).await?;
                rows += 1;
            }
        }
        writer.finish().await?;
        Ok::<_, StoreError>(rows)
    };
    let (streamed, written) = tokio::join!(source.stream_rows(table.source, parameters, sender), write);
    let rows = written?;
    streamed?;
    Ok(rows)
}

/// An embedded store's value as the PostgreSQL column's type.
fn typed(cell: &Cell, ty: &Type, table: &str, column: &str) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
    let mismatch = || StoreError::Internal(format!("{table}.{column}: cannot store {cell:?} as {ty}"));
    let integer = || match cell {
        Cell::Null => Ok(None),
        Cell::Int(value) => Ok(Some(*value)),
        _ => Err(mismatch()),
    };
    if *ty == Type::INT8 {
        Ok(Box::new(integer()?))
    } else if *ty == Type::INT4 {
        let value = integer()?.map(i32::try_from).transpose().map_err(|_| mismatch())?;
        Ok(Box::new(value))
    } else if *ty == Type::BOOL {
        Ok(Box::new(integer()?.map(|value| value != 0)))
    } else if *ty == Type::TEXT {
        match cell {
            Cell::Null => Ok(Box::new(None::<String>)),
            Cell::Text(text) => Ok(Box::new(Some(text.clone()))),
            _ => Err(mismatch()),
        }
    } else if *ty == Type::BYTEA {
        match cell {
            Cell::Null => Ok(Box::new(None::<Vec<u8>>)),
            Cell::Blob(bytes) => Ok(Box::new(Some(bytes.clone()))),
            _ => Err(mismatch()),
        }
    } else {
        Err(mismatch())
    }
}

/// Inserts a batch of consecutive events from position `start` and appends their leaves.
async fn insert_batch(
    transaction: &deadpool_postgres::Transaction<'_>,
    frontiers: &Frontiers<[u8; 16]>,
    log: &PgLog<'_, '_>,
    organization_id: OrganizationId,
    start: u64,
    batch: &Batch,
) -> Result<(), StoreError> {
    if batch.leaves.is_empty() {
        return Ok(());
    }
    batch.insert(transaction, &id_bytes(organization_id.ulid())).await?;
    frontiers
        .append(log, organization_id.ulid().to_bytes(), start, &batch.leaves)
        .await
}
