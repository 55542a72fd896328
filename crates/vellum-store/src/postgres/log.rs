//! The verifiable log's storage in PostgreSQL: leaves in `log_leaves`, even-level subtrees in
//! `log_nodes`, each log's size in `log_heads` and its latest checkpoint in `log_checkpoints`.
//! Everything Merkle is in `crate::verifiable_log`; this file is SQL. Checkpoints of one log are
//! signed one at a time across every node, under a transaction-scoped advisory lock on the log.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use vellum_core::checkpoint::NoteSigner;
use vellum_core::merkle::Hash;
use vellum_core::{EventId, OrganizationId};

use super::{PostgresStore, id_bytes, timestamp};
use crate::verifiable_log::{self, LogStorage, StoredCheckpoint, StoredNode, SubtreeHash};
use crate::{InclusionProof, LogOwner, LogScan, LogStore, NodePosition, SignedCheckpoint, StoreError, TreeHead};

fn hash_from(bytes: &[u8]) -> Result<Hash, StoreError> {
    Hash::try_from(bytes).map_err(|_| StoreError::Internal("stored hash is not 32 bytes".into()))
}

pub(super) fn index_i64(index: u64) -> Result<i64, StoreError> {
    i64::try_from(index).map_err(|_| StoreError::Internal("log index out of range".into()))
}

pub(super) fn index_u64(index: i64) -> Result<u64, StoreError> {
    u64::try_from(index).map_err(|_| StoreError::Internal("negative log index".into()))
}

/// The advisory lock key of one organization's log (its checkpoint signing).
fn log_lock_key(organization: &[u8]) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&organization[8..16]);
    i64::from_be_bytes(bytes) ^ 0x5645_4c4c_554d_4c4f
}

/// One organization's log, inside a transaction.
pub(super) struct PgLog<'t, 'c> {
    pub(super) transaction: &'t Transaction<'c>,
    pub(super) organization: Vec<u8>,
}

impl LogStorage for PgLog<'_, '_> {
    async fn size(&self) -> Result<u64, StoreError> {
        let row = self
            .transaction
            .query_opt(
                &self
                    .transaction
                    .prepare_cached("select size from log_heads where organization_id = $1")
                    .await?,
                &[&self.organization],
            )
            .await?;
        match row {
            Some(row) => index_u64(row.try_get(0)?),
            None => Ok(0),
        }
    }

    async fn read(&self, nodes: &[StoredNode]) -> Result<Vec<Option<Hash>>, StoreError> {
        let mut leaves = Vec::new();
        let (mut levels, mut indexes) = (Vec::new(), Vec::new());
        for node in nodes {
            match *node {
                StoredNode::Leaf(index) => leaves.push(index_i64(index)?),
                StoredNode::Subtree { level, index } => {
                    levels.push(i32::try_from(level).unwrap_or(i32::MAX));
                    indexes.push(index_i64(index)?);
                }
            }
        }
        let mut found: HashMap<StoredNode, Hash> = HashMap::with_capacity(nodes.len());
        if !leaves.is_empty() {
            for row in self
                .transaction
                .query(
                    &self
                        .transaction
                        .prepare_cached(
                            "select log_index, leaf_hash from log_leaves where organization_id = $1 and log_index = any($2)",
                        )
                        .await?,
                    &[&self.organization, &leaves],
                )
                .await?
            {
                let hash: Vec<u8> = row.try_get(1)?;
                found.insert(StoredNode::Leaf(index_u64(row.try_get(0)?)?), hash_from(&hash)?);
            }
        }
        if !levels.is_empty() {
            for row in self
                .transaction
                .query(
                    &self
                        .transaction
                        .prepare_cached(
                            "select n.level, n.node_index, n.hash from unnest($2::int[], $3::bigint[]) w (level, node_index)
                             join log_nodes n on n.organization_id = $1 and n.level = w.level and n.node_index = w.node_index",
                        )
                        .await?,
                    &[&self.organization, &levels, &indexes],
                )
                .await?
            {
                let level: i32 = row.try_get(0)?;
                let hash: Vec<u8> = row.try_get(2)?;
                found.insert(
                    StoredNode::Subtree {
                        level: u32::try_from(level).map_err(|_| StoreError::Internal("negative level".into()))?,
                        index: index_u64(row.try_get(1)?)?,
                    },
                    hash_from(&hash)?,
                );
            }
        }
        Ok(nodes.iter().map(|node| found.get(node).copied()).collect())
    }

    async fn write_subtrees(&self, subtrees: &[SubtreeHash]) -> Result<(), StoreError> {
        if subtrees.is_empty() {
            return Ok(());
        }
        let levels: Vec<i32> = subtrees
            .iter()
            .map(|subtree| i32::try_from(subtree.level).unwrap_or(i32::MAX))
            .collect();
        let indexes = subtrees
            .iter()
            .map(|subtree| index_i64(subtree.index))
            .collect::<Result<Vec<_>, _>>()?;
        let hashes: Vec<&[u8]> = subtrees.iter().map(|subtree| subtree.hash.as_slice()).collect();
        self.transaction
            .execute(
                &self
                    .transaction
                    .prepare_cached(
                        "insert into log_nodes (organization_id, level, node_index, hash)
                 select $1, * from unnest($2::int[], $3::bigint[], $4::bytea[])",
                    )
                    .await?,
                &[&self.organization, &levels, &indexes, &hashes],
            )
            .await?;
        Ok(())
    }

    async fn subtrees_after(&self, after: Option<(u32, u64)>, limit: u32) -> Result<Vec<SubtreeHash>, StoreError> {
        let (level, index) = match after {
            Some((level, index)) => (i32::try_from(level).unwrap_or(i32::MAX), index_i64(index)?),
            None => (-1, -1),
        };
        self.transaction
            .query(
                &self
                    .transaction
                    .prepare_cached(
                        "select level, node_index, hash from log_nodes
                 where organization_id = $1 and (level, node_index) > ($2, $3)
                 order by level, node_index limit $4",
                    )
                    .await?,
                &[&self.organization, &level, &index, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|row| {
                let level: i32 = row.try_get(0)?;
                let hash: Vec<u8> = row.try_get(2)?;
                Ok(SubtreeHash {
                    level: u32::try_from(level).map_err(|_| StoreError::Internal("negative level".into()))?,
                    index: index_u64(row.try_get(1)?)?,
                    hash: hash_from(&hash)?,
                })
            })
            .collect()
    }

    async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let Some(row) = self
            .transaction
            .query_opt(
                &self
                    .transaction
                    .prepare_cached(
                        "select tree_size, root_hash, note, signed_at from log_checkpoints where organization_id = $1",
                    )
                    .await?,
                &[&self.organization],
            )
            .await?
        else {
            return Ok(None);
        };
        let root: Vec<u8> = row.try_get(1)?;
        Ok(Some(StoredCheckpoint {
            tree_size: index_u64(row.try_get(0)?)?,
            root: hash_from(&root)?,
            note: row.try_get(2)?,
            signed_at: timestamp(row.try_get(3)?, "checkpoint time")?,
        }))
    }

    async fn write_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        self.transaction
            .execute(
                &self
                    .transaction
                    .prepare_cached(
                        "insert into log_checkpoints (organization_id, tree_size, root_hash, note, signed_at)
                 values ($1, $2, $3, $4, $5)
                 on conflict (organization_id) do update set tree_size = excluded.tree_size,
                     root_hash = excluded.root_hash, note = excluded.note, signed_at = excluded.signed_at",
                    )
                    .await?,
                &[
                    &self.organization,
                    &index_i64(checkpoint.tree_size)?,
                    &checkpoint.root.as_slice(),
                    &checkpoint.note,
                    &checkpoint.signed_at.unix_millis(),
                ],
            )
            .await?;
        Ok(())
    }
}

/// Whether the organization exists: `Some(true)` live, `Some(false)` deleted.
async fn organization_state(transaction: &Transaction<'_>, organization: &[u8]) -> Result<Option<bool>, StoreError> {
    Ok(transaction
        .query_opt(
            "select deleted_at is null from organizations where id = $1",
            &[&organization],
        )
        .await?
        .map(|row| row.get(0)))
}

/// Runs `$body` with `$log` bound to one organization's log in a read-only snapshot: only a
/// live organization's when `$live_only`, a deleted one's too otherwise.
macro_rules! with_log {
    ($store:expr, $organization_id:expr, $live_only:expr, |$log:ident| $body:expr) => {{
        let mut client = $store.client().await?;
        let transaction = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let organization = id_bytes($organization_id.ulid());
        match organization_state(&transaction, &organization).await? {
            Some(live) if live || !$live_only => {}
            _ => return Err(StoreError::not_found("Organization", $organization_id)),
        }
        let $log = &PgLog {
            transaction: &transaction,
            organization,
        };
        let result = $body;
        transaction.commit().await?;
        result
    }};
}

#[async_trait]
impl LogStore for PostgresStore {
    async fn log_checkpoint(
        &self,
        organization_id: OrganizationId,
        signer: Arc<NoteSigner>,
        origin: String,
    ) -> Result<SignedCheckpoint, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let organization = id_bytes(organization_id.ulid());
        if organization_state(&transaction, &organization).await? != Some(true) {
            return Err(StoreError::not_found("Organization", organization_id));
        }
        transaction
            .execute("select pg_advisory_xact_lock($1)", &[&log_lock_key(&organization)])
            .await?;
        let log = PgLog {
            transaction: &transaction,
            organization,
        };
        let signed = verifiable_log::sign_checkpoint(&log, organization_id, &signer, &origin, crate::now()).await?;
        transaction.commit().await?;
        Ok(signed)
    }

    async fn log_inclusion_proof(
        &self,
        organization_id: OrganizationId,
        event_id: EventId,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, StoreError> {
        with_log!(self, organization_id, true, |log| {
            let row = log
                .transaction
                .query_opt(
                    "select log_index from events where id = $1 and organization_id = $2",
                    &[&id_bytes(event_id.ulid()), &log.organization],
                )
                .await?
                .ok_or_else(|| StoreError::not_found("Audit log event", event_id))?;
            verifiable_log::inclusion_proof(log, index_u64(row.try_get(0)?)?, tree_size).await
        })
    }

    async fn log_consistency_proof(
        &self,
        organization_id: OrganizationId,
        first: u64,
        second: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        with_log!(self, organization_id, true, |log| verifiable_log::consistency_proof(
            log, first, second
        )
        .await)
    }

    async fn log_entries(
        &self,
        organization_id: OrganizationId,
        start: u64,
        end: u64,
    ) -> Result<Vec<crate::LogEntry>, StoreError> {
        with_log!(self, organization_id, true, |log| {
            let current = log.size().await?;
            if end > current {
                return Err(StoreError::InvalidInput {
                    field: "end",
                    message: format!("end {end} is larger than the log ({current} entries)"),
                });
            }
            Ok(crate::listing::log_entries(
                super::events::records_by_log_range(log.transaction, organization_id, start, end).await?,
            ))
        })
    }

    async fn log_tree_head(&self, organization_id: OrganizationId) -> Result<TreeHead, StoreError> {
        let (size, root) = with_log!(self, organization_id, false, |log| verifiable_log::tree_head(log).await)?;
        Ok(TreeHead { size, root })
    }

    async fn log_first_inconsistent_node(
        &self,
        organization_id: OrganizationId,
    ) -> Result<Option<NodePosition>, StoreError> {
        let found = with_log!(self, organization_id, false, |log| {
            verifiable_log::first_inconsistent_subtree(log).await
        })?;
        Ok(found.map(|(level, index)| NodePosition { level, index }))
    }

    async fn log_organizations(&self) -> Result<Vec<LogOwner>, StoreError> {
        let client = self.client().await?;
        client
            .query(
                "select o.id, o.deleted_at is not null from organizations o
                 where exists (select 1 from log_heads h where h.organization_id = o.id and h.size > 0)
                    or exists (select 1 from log_checkpoints c where c.organization_id = o.id)
                 order by o.id",
                &[],
            )
            .await?
            .iter()
            .map(|row| {
                let id: Vec<u8> = row.try_get(0)?;
                Ok(LogOwner {
                    organization_id: OrganizationId::from_ulid(super::ulid_from(&id)?),
                    deleted: row.try_get(1)?,
                })
            })
            .collect()
    }

    async fn log_scan(&self, organization_id: OrganizationId, start: u64, limit: u64) -> Result<LogScan, StoreError> {
        with_log!(self, organization_id, false, |log| {
            let records = super::events::records_by_log_range(
                log.transaction,
                organization_id,
                start,
                start.saturating_add(limit),
            )
            .await?;
            Ok(LogScan {
                records,
                tree_size: log.size().await?,
                checkpoint_note: log.checkpoint().await?.map(|checkpoint| checkpoint.note),
            })
        })
    }

    async fn log_frontier(&self, organization_id: OrganizationId, size: u64) -> Result<Vec<Hash>, StoreError> {
        with_log!(self, organization_id, false, |log| verifiable_log::frontier(log, size)
            .await)
    }
}

/// For `LogRecord`s: the stored leaves of `[start, end)`, each with the position of the purge
/// record that removed its event, if one did.
pub(super) async fn leaves_in(
    transaction: &Transaction<'_>,
    organization: &[u8],
    start: i64,
    end: i64,
) -> Result<std::collections::BTreeMap<i64, (Hash, Option<i64>)>, StoreError> {
    transaction
        .query(
            "select log_index, leaf_hash, purged_by from log_leaves
             where organization_id = $1 and log_index >= $2 and log_index < $3",
            &[&organization, &start, &end],
        )
        .await?
        .iter()
        .map(|row| {
            let hash: Vec<u8> = row.try_get(1)?;
            Ok((row.try_get(0)?, (hash_from(&hash)?, row.try_get(2)?)))
        })
        .collect()
}
