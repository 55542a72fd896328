//! The verifiable log's storage in SQLite: leaf hashes in `events`, even-level subtree hashes in
//! `log_nodes`, the latest signed checkpoint per organization in `log_checkpoints`. Everything
//! Merkle (what is stored, roots, proofs, signing) is in `crate::verifiable_log`; this file is SQL.

use rusqlite::{Connection, OptionalExtension, params};
use vellum_core::checkpoint::NoteSigner;
use vellum_core::merkle::Hash;
use vellum_core::{EventId, OrganizationId, Timestamp};

use super::events::{events_by_log_range, live_organization_seq};
use crate::verifiable_log::{self, LogStorage, StoredCheckpoint, StoredNode, SubtreeHash, ready};
use crate::{InclusionProof, LogRecord, SignedCheckpoint, StoreError};

fn hash_from(bytes: &[u8]) -> Result<Hash, StoreError> {
    Hash::try_from(bytes).map_err(|_| StoreError::Internal("stored hash is not 32 bytes".into()))
}

fn index_i64(index: u64) -> Result<i64, StoreError> {
    i64::try_from(index).map_err(|_| StoreError::Internal("log index out of range".into()))
}

fn index_u64(index: i64) -> Result<u64, StoreError> {
    u64::try_from(index).map_err(|_| StoreError::Internal("negative log index".into()))
}

/// One organization's log, on a connection (inside its transaction, for writes).
pub(super) struct SqliteLog<'c> {
    pub(super) connection: &'c Connection,
    pub(super) organization_seq: i64,
}

impl LogStorage for SqliteLog<'_> {
    async fn size(&self) -> Result<u64, StoreError> {
        let size: i64 = self
            .connection
            .prepare_cached("select coalesce(max(log_index) + 1, 0) from events where organization_seq = ?1")?
            .query_row([self.organization_seq], |row| row.get(0))?;
        index_u64(size)
    }

    async fn read(&self, nodes: &[StoredNode]) -> Result<Vec<Option<Hash>>, StoreError> {
        // A purged position keeps its leaf in the run of `purged_leaf_runs` that starts at or
        // before it and is long enough, or, if an earlier version purged it, in `purged_leaves`.
        let mut leaf = self.connection.prepare_cached(
            "select coalesce(
                 (select leaf_hash from events where organization_seq = ?1 and log_index = ?2),
                 (select substr(leaves, (?2 - first_index) * 32 + 1, 32)
                  from (select first_index, leaves from purged_leaf_runs
                        where organization_seq = ?1 and first_index <= ?2 order by first_index desc limit 1)
                  where ?2 - first_index < length(leaves) / 32),
                 (select leaf_hash from purged_leaves where organization_seq = ?1 and log_index = ?2))",
        )?;
        let mut subtree = self.connection.prepare_cached(
            "select hash from log_nodes where organization_seq = ?1 and level = ?2 and node_index = ?3",
        )?;
        nodes
            .iter()
            .map(|node| {
                let bytes: Option<Vec<u8>> = match *node {
                    StoredNode::Leaf(index) => leaf
                        .query_row(params![self.organization_seq, index_i64(index)?], |row| row.get(0))
                        .optional()?
                        .flatten(),
                    StoredNode::Subtree { level, index } => subtree
                        .query_row(params![self.organization_seq, level, index_i64(index)?], |row| {
                            row.get(0)
                        })
                        .optional()?,
                };
                bytes.map(|bytes| hash_from(&bytes)).transpose()
            })
            .collect()
    }

    async fn write_subtrees(&self, subtrees: &[SubtreeHash]) -> Result<(), StoreError> {
        let mut insert = self.connection.prepare_cached(
            "insert into log_nodes (organization_seq, level, node_index, hash) values (?1, ?2, ?3, ?4)",
        )?;
        for subtree in subtrees {
            insert.execute(params![
                self.organization_seq,
                subtree.level,
                index_i64(subtree.index)?,
                subtree.hash.as_slice()
            ])?;
        }
        Ok(())
    }

    async fn subtrees_after(&self, after: Option<(u32, u64)>, limit: u32) -> Result<Vec<SubtreeHash>, StoreError> {
        let (level, index) = match after {
            Some((level, index)) => (i64::from(level), index_i64(index)?),
            None => (-1, -1),
        };
        let mut statement = self.connection.prepare_cached(
            "select level, node_index, hash from log_nodes
             where organization_seq = ?1 and (level, node_index) > (?2, ?3)
             order by level, node_index limit ?4",
        )?;
        let mut rows = statement.query(params![self.organization_seq, level, index, limit])?;
        let mut subtrees = Vec::new();
        while let Some(row) = rows.next()? {
            subtrees.push(SubtreeHash {
                level: row.get(0)?,
                index: index_u64(row.get(1)?)?,
                hash: hash_from(&row.get::<_, Vec<u8>>(2)?)?,
            });
        }
        Ok(subtrees)
    }

    async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let row: Option<(i64, Vec<u8>, String, i64)> = self
            .connection
            .prepare_cached(
                "select tree_size, root_hash, note, signed_at from log_checkpoints where organization_seq = ?1",
            )?
            .query_row([self.organization_seq], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()?;
        row.map(|(tree_size, root, note, signed_at)| {
            Ok(StoredCheckpoint {
                tree_size: index_u64(tree_size)?,
                root: hash_from(&root)?,
                note,
                signed_at: Timestamp::from_unix_millis(signed_at)
                    .ok_or_else(|| StoreError::Internal("bad checkpoint time".into()))?,
            })
        })
        .transpose()
    }

    async fn write_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        self.connection
            .prepare_cached(
                "insert into log_checkpoints (organization_seq, tree_size, root_hash, note, signed_at) values (?1, ?2, ?3, ?4, ?5)
                 on conflict (organization_seq) do update set tree_size = excluded.tree_size, root_hash = excluded.root_hash,
                     note = excluded.note, signed_at = excluded.signed_at",
            )?
            .execute(params![
                self.organization_seq,
                index_i64(checkpoint.tree_size)?,
                checkpoint.root.as_slice(),
                checkpoint.note,
                checkpoint.signed_at.unix_millis()
            ])?;
        Ok(())
    }
}

fn live_log(connection: &Connection, organization_id: OrganizationId) -> Result<SqliteLog<'_>, StoreError> {
    Ok(SqliteLog {
        connection,
        organization_seq: live_organization_seq(connection, organization_id)?,
    })
}

/// The log of an organization, deleted or not (logs outlive their organizations).
fn any_log(connection: &Connection, organization_id: OrganizationId) -> Result<SqliteLog<'_>, StoreError> {
    let organization_seq = connection
        .prepare_cached("select seq from organizations where id = ?1")?
        .query_row([organization_id.ulid().to_bytes().as_slice()], |row| row.get(0))
        .optional()?
        .ok_or_else(|| StoreError::not_found("Organization", organization_id))?;
    Ok(SqliteLog {
        connection,
        organization_seq,
    })
}

/// Signs a checkpoint of a live organization's log. Runs in the writer, so checkpoints of one
/// log are signed one at a time.
pub(super) fn sign_checkpoint(
    connection: &Connection,
    organization_id: OrganizationId,
    signer: &NoteSigner,
    origin: &str,
) -> Result<SignedCheckpoint, StoreError> {
    let log = live_log(connection, organization_id)?;
    ready(verifiable_log::sign_checkpoint(
        &log,
        organization_id,
        signer,
        origin,
        crate::now(),
    ))
}

pub(super) fn inclusion_proof(
    connection: &Connection,
    organization_id: OrganizationId,
    event_id: EventId,
    tree_size: Option<u64>,
) -> Result<InclusionProof, StoreError> {
    let log = live_log(connection, organization_id)?;
    let leaf_index: i64 = connection
        .prepare_cached("select log_index from events where id = ?1 and organization_seq = ?2")?
        .query_row(
            params![event_id.ulid().to_bytes().as_slice(), log.organization_seq],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::not_found("Audit log event", event_id))?;
    ready(verifiable_log::inclusion_proof(&log, index_u64(leaf_index)?, tree_size))
}

pub(super) fn consistency_proof(
    connection: &Connection,
    organization_id: OrganizationId,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, StoreError> {
    ready(verifiable_log::consistency_proof(
        &live_log(connection, organization_id)?,
        first,
        second,
    ))
}

/// The events at positions `[start, end)` of a live organization's log.
pub(super) fn entries(
    connection: &Connection,
    organization_id: OrganizationId,
    start: u64,
    end: u64,
) -> Result<Vec<crate::LogEntry>, StoreError> {
    let log = live_log(connection, organization_id)?;
    let current = ready(log.size())?;
    if end > current {
        return Err(StoreError::InvalidInput {
            field: "end",
            message: format!("end {end} is larger than the log ({current} entries)"),
        });
    }
    Ok(crate::listing::log_entries(events_by_log_range(
        connection,
        organization_id,
        log.organization_seq,
        start,
        end,
    )?))
}

/// Every organization that has a log (deleted ones too: their logs outlive them).
pub(super) fn organizations_with_logs(connection: &Connection) -> Result<Vec<(OrganizationId, bool)>, StoreError> {
    let mut statement = connection.prepare_cached(
        "select o.id, o.deleted_at is not null from organizations o
         where exists (select 1 from events e where e.organization_seq = o.seq)
            or exists (select 1 from log_checkpoints c where c.organization_seq = o.seq)
         order by o.seq",
    )?;
    statement
        .query_map([], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, bool>(1)?)))?
        .map(|row| {
            let (id, deleted) = row?;
            Ok((OrganizationId::from_ulid(super::ulid_from_blob(&id)?), deleted))
        })
        .collect()
}

/// The size and stored root of an organization's log, deleted organizations included.
pub(super) fn tree_head(connection: &Connection, organization_id: OrganizationId) -> Result<(u64, Hash), StoreError> {
    ready(verifiable_log::tree_head(&any_log(connection, organization_id)?))
}

/// For verification: the first stored subtree hash that does not match the hashes below it.
pub(super) fn first_inconsistent_node(
    connection: &Connection,
    organization_id: OrganizationId,
) -> Result<Option<(u32, u64)>, StoreError> {
    // One read transaction for the whole walk: its pages and the many small reads between them
    // then share one snapshot and one lock, instead of taking the file's lock for each.
    let snapshot = connection.unchecked_transaction()?;
    let found = ready(verifiable_log::first_inconsistent_subtree(&any_log(
        connection,
        organization_id,
    )?));
    snapshot.finish()?;
    found
}

/// For verification: a page of raw log records from `start`, with what is stored for each.
pub(super) fn scan(
    connection: &Connection,
    organization_id: OrganizationId,
    start: u64,
    limit: u64,
) -> Result<(Vec<LogRecord>, u64, Option<String>), StoreError> {
    let log = any_log(connection, organization_id)?;
    let records = events_by_log_range(
        connection,
        organization_id,
        log.organization_seq,
        start,
        start.saturating_add(limit),
    )?;
    let note = ready(log.checkpoint())?.map(|checkpoint| checkpoint.note);
    Ok((records, ready(log.size())?, note))
}

/// The hashes of the complete subtrees that make up the first `size` leaves, largest first.
pub(super) fn frontier(
    connection: &Connection,
    organization_id: OrganizationId,
    size: u64,
) -> Result<Vec<Hash>, StoreError> {
    ready(verifiable_log::frontier(&any_log(connection, organization_id)?, size))
}
