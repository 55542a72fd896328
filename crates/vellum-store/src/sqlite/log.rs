//! The verifiable log in SQLite: leaf hashes in `events`, even-level subtree hashes in `log_nodes`, the latest signed
//! checkpoint per organization in `log_checkpoints`.

use rusqlite::{Connection, OptionalExtension, params};
use vellum_core::checkpoint::{Checkpoint, NoteSigner};
use vellum_core::merkle::{self, Hash};
use vellum_core::{Event, EventId, OrganizationId};

use super::events::{events_by_log_range, live_organization_seq};
use crate::{InclusionProof, LogRecord, SignedCheckpoint, StoreError};

fn hash_from(bytes: &[u8]) -> Result<Hash, StoreError> {
    Hash::try_from(bytes).map_err(|_| StoreError::Internal("stored hash is not 32 bytes".into()))
}

/// Reads (or, for odd levels, composes) one complete subtree hash.
fn node(connection: &Connection, organization_seq: i64, level: u32, index: u64) -> Result<Hash, StoreError> {
    if level == 0 {
        let mut statement =
            connection.prepare_cached("select leaf_hash from events where organization_seq = ?1 and log_index = ?2")?;
        let bytes: Option<Vec<u8>> = statement
            .query_row(params![organization_seq, index_i64(index)?], |row| row.get(0))
            .optional()?;
        return hash_from(&bytes.ok_or_else(|| {
            StoreError::Internal(format!("leaf {index} of organization {organization_seq} is missing"))
        })?);
    }
    if level % 2 == 1 {
        let left = node(connection, organization_seq, level - 1, 2 * index)?;
        let right = node(connection, organization_seq, level - 1, 2 * index + 1)?;
        return Ok(merkle::node_hash(&left, &right));
    }
    let mut statement = connection
        .prepare_cached("select hash from log_nodes where organization_seq = ?1 and level = ?2 and node_index = ?3")?;
    let bytes: Option<Vec<u8>> = statement
        .query_row(params![organization_seq, level, index_i64(index)?], |row| row.get(0))
        .optional()?;
    hash_from(&bytes.ok_or_else(|| {
        StoreError::Internal(format!(
            "log node ({level}, {index}) of organization {organization_seq} is missing"
        ))
    })?)
}

fn index_i64(index: u64) -> Result<i64, StoreError> {
    i64::try_from(index).map_err(|_| StoreError::Internal("log index out of range".into()))
}

/// The right edge of each organization's log, kept by the writer so that appending a leaf reads
/// nothing. An entry is trusted only while its size equals the log's size read in the same job;
/// any rollback leaves the entry ahead of the log, and it is rebuilt from stored nodes.
#[derive(Debug, Default)]
pub(super) struct Frontiers {
    logs: std::sync::Mutex<std::collections::HashMap<i64, merkle::Frontier>>,
}

/// Stores the even-level nodes completed by the leaf at `index` (the leaf itself is in its event
/// row, written just before). Runs inside the append's commit, in the writer.
pub(super) fn append_leaf(
    connection: &Connection,
    frontiers: &Frontiers,
    organization_seq: i64,
    index: u64,
    leaf: &Hash,
) -> Result<(), StoreError> {
    let mut logs = frontiers.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let frontier = match logs.remove(&organization_seq) {
        Some(frontier) if frontier.size() == index => frontier,
        _ => merkle::Frontier::from_stored(index, &mut lookup(connection, organization_seq))?,
    };
    let mut frontier = frontier;
    let mut insert = connection
        .prepare_cached("insert into log_nodes (organization_seq, level, node_index, hash) values (?1, ?2, ?3, ?4)")?;
    let mut result = Ok(());
    frontier.push_reporting(*leaf, |level, node_index, hash| {
        if level % 2 == 0 && result.is_ok() {
            result = index_i64(node_index)
                .and_then(|node_index| {
                    Ok(insert.execute(params![organization_seq, level, node_index, hash.as_slice()])?)
                })
                .map(|_| ());
        }
    });
    result?;
    logs.insert(organization_seq, frontier);
    Ok(())
}

/// How many leaves the organization's log holds: one per event.
pub(super) fn size(connection: &Connection, organization_seq: i64) -> Result<u64, StoreError> {
    let size: i64 = connection
        .prepare_cached("select coalesce(max(log_index) + 1, 0) from events where organization_seq = ?1")?
        .query_row([organization_seq], |row| row.get(0))?;
    u64::try_from(size).map_err(|_| StoreError::Internal("negative log size".into()))
}

/// Reads complete subtree hashes for one proof or root, remembering each one read. The
/// right-edge ranges a proof needs are all suffixes of the same tree, so they decompose into the
/// same right-edge subtrees: with the memo a proof reads O(log n) distinct stored hashes.
fn lookup(connection: &Connection, organization_seq: i64) -> impl FnMut(u32, u64) -> Result<Hash, StoreError> + '_ {
    let mut seen: std::collections::HashMap<(u32, u64), Hash> = std::collections::HashMap::new();
    move |level, index| {
        if let Some(hash) = seen.get(&(level, index)) {
            return Ok(*hash);
        }
        let hash = node(connection, organization_seq, level, index)?;
        seen.insert((level, index), hash);
        Ok(hash)
    }
}

/// The root of the first `tree_size` leaves.
pub(super) fn root(connection: &Connection, organization_seq: i64, tree_size: u64) -> Result<Hash, StoreError> {
    merkle::tree_root(tree_size, &mut lookup(connection, organization_seq))
}

fn check_size(requested: u64, current: u64, field: &'static str) -> Result<(), StoreError> {
    if requested > current {
        return Err(StoreError::InvalidInput {
            field,
            message: format!("{field} {requested} is larger than the log ({current} entries)"),
        });
    }
    Ok(())
}

/// Signs a checkpoint of the current log, unless the latest signed one already covers it; a new
/// checkpoint is signed only if it is consistent with the previous one. Runs in the writer, so
/// checkpoints of one log are signed one at a time.
pub(super) fn sign_checkpoint(
    connection: &Connection,
    organization_id: OrganizationId,
    signer: &NoteSigner,
    origin: &str,
) -> Result<SignedCheckpoint, StoreError> {
    let organization_seq = live_organization_seq(connection, organization_id)?;
    let tree_size = size(connection, organization_seq)?;
    let previous: Option<(i64, Vec<u8>, String)> = connection
        .prepare_cached("select tree_size, root_hash, note from log_checkpoints where organization_seq = ?1")?
        .query_row([organization_seq], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    if let Some((previous_size, previous_root, note)) = &previous {
        let previous_size = u64::try_from(*previous_size).map_err(|_| StoreError::Internal("bad checkpoint".into()))?;
        let previous_root = hash_from(previous_root)?;
        if previous_size > tree_size {
            return Err(StoreError::Internal(format!(
                "the log of {organization_id} has {tree_size} entries but a checkpoint of {previous_size} was signed: refusing to sign"
            )));
        }
        // The log must still contain the tree the previous checkpoint signed.
        if root(connection, organization_seq, previous_size)? != previous_root {
            return Err(StoreError::Internal(format!(
                "the log of {organization_id} no longer matches its checkpoint at size {previous_size}: refusing to sign"
            )));
        }
        if previous_size == tree_size
            && Checkpoint::parse_body(note).is_ok_and(|checkpoint| checkpoint.origin == origin)
        {
            return Ok(SignedCheckpoint {
                checkpoint: Checkpoint {
                    origin: origin.to_owned(),
                    size: tree_size,
                    root: previous_root,
                },
                note: note.clone(),
            });
        }
    }
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size: tree_size,
        root: root(connection, organization_seq, tree_size)?,
    };
    let note = signer.sign(&checkpoint);
    connection
        .prepare_cached(
            "insert into log_checkpoints (organization_seq, tree_size, root_hash, note, signed_at) values (?1, ?2, ?3, ?4, ?5)
             on conflict (organization_seq) do update set tree_size = excluded.tree_size, root_hash = excluded.root_hash,
                 note = excluded.note, signed_at = excluded.signed_at",
        )?
        .execute(params![
            organization_seq,
            index_i64(tree_size)?,
            checkpoint.root.as_slice(),
            note,
            crate::now().unix_millis()
        ])?;
    Ok(SignedCheckpoint { checkpoint, note })
}

pub(super) fn inclusion_proof(
    connection: &Connection,
    organization_id: OrganizationId,
    event_id: EventId,
    tree_size: Option<u64>,
) -> Result<InclusionProof, StoreError> {
    let organization_seq = live_organization_seq(connection, organization_id)?;
    let current = size(connection, organization_seq)?;
    let tree_size = tree_size.unwrap_or(current);
    check_size(tree_size, current, "tree_size")?;
    let leaf_index: i64 = connection
        .prepare_cached("select log_index from events where id = ?1 and organization_seq = ?2")?
        .query_row(
            params![event_id.ulid().to_bytes().as_slice(), organization_seq],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::not_found("Audit log event", event_id))?;
    let leaf_index = u64::try_from(leaf_index).map_err(|_| StoreError::Internal("negative log index".into()))?;
    if leaf_index >= tree_size {
        return Err(StoreError::InvalidInput {
            field: "tree_size",
            message: format!("event {event_id} is at position {leaf_index}, outside a tree of {tree_size}"),
        });
    }
    let hashes = merkle::inclusion_proof(leaf_index, tree_size, &mut lookup(connection, organization_seq))?;
    Ok(InclusionProof {
        leaf_index,
        tree_size,
        hashes,
    })
}

pub(super) fn consistency_proof(
    connection: &Connection,
    organization_id: OrganizationId,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, StoreError> {
    let organization_seq = live_organization_seq(connection, organization_id)?;
    let current = size(connection, organization_seq)?;
    check_size(second, current, "second")?;
    if first > second {
        return Err(StoreError::InvalidInput {
            field: "first",
            message: "first must not exceed second".into(),
        });
    }
    if first == 0 {
        return Ok(Vec::new());
    }
    merkle::consistency_proof(first, second, &mut lookup(connection, organization_seq))
}

/// The events at positions `[start, end)` of a live organization's log.
pub(super) fn entries(
    connection: &Connection,
    organization_id: OrganizationId,
    start: u64,
    end: u64,
) -> Result<Vec<Event>, StoreError> {
    let organization_seq = live_organization_seq(connection, organization_id)?;
    let current = size(connection, organization_seq)?;
    check_size(end, current, "end")?;
    Ok(
        events_by_log_range(connection, organization_id, organization_seq, start, end)?
            .into_iter()
            .filter_map(|record| record.event.ok())
            .collect(),
    )
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

fn any_organization_seq(connection: &Connection, organization_id: OrganizationId) -> Result<i64, StoreError> {
    connection
        .prepare_cached("select seq from organizations where id = ?1")?
        .query_row([organization_id.ulid().to_bytes().as_slice()], |row| row.get(0))
        .optional()?
        .ok_or_else(|| StoreError::not_found("Organization", organization_id))
}

/// The size and stored root of an organization's log, deleted organizations included.
pub(super) fn tree_head(connection: &Connection, organization_id: OrganizationId) -> Result<(u64, Hash), StoreError> {
    let organization_seq = any_organization_seq(connection, organization_id)?;
    let tree_size = size(connection, organization_seq)?;
    Ok((tree_size, root(connection, organization_seq, tree_size)?))
}

/// For verification: the first stored subtree hash that does not equal the hash of the four
/// subtrees two levels below it (leaves, for level 2), walking bottom-up. With the leaves checked
/// against event content, this proves every stored hash, and so every proof served from them.
pub(super) fn first_inconsistent_node(
    connection: &Connection,
    organization_id: OrganizationId,
) -> Result<Option<(u32, u64)>, StoreError> {
    let organization_seq = any_organization_seq(connection, organization_id)?;
    let mut statement = connection.prepare(
        "select level, node_index, hash from log_nodes where organization_seq = ?1 order by level, node_index",
    )?;
    let mut rows = statement.query([organization_seq])?;
    while let Some(row) = rows.next()? {
        let level: u32 = row.get(0)?;
        let index = u64::try_from(row.get::<_, i64>(1)?).map_err(|_| StoreError::Internal("negative index".into()))?;
        let stored = hash_from(&row.get::<_, Vec<u8>>(2)?)?;
        let below = |offset: u64| node(connection, organization_seq, level - 2, 4 * index + offset);
        let expected = if level < 2 {
            None
        } else {
            match (below(0), below(1), below(2), below(3)) {
                (Ok(a), Ok(b), Ok(c), Ok(d)) => Some(merkle::node_hash(
                    &merkle::node_hash(&a, &b),
                    &merkle::node_hash(&c, &d),
                )),
                _ => None,
            }
        };
        if expected != Some(stored) {
            return Ok(Some((level, index)));
        }
    }
    Ok(None)
}

/// For verification: a page of raw log records from `start`, with what is stored for each.
pub(super) fn scan(
    connection: &Connection,
    organization_id: OrganizationId,
    start: u64,
    limit: u64,
) -> Result<(Vec<LogRecord>, u64, Option<String>), StoreError> {
    let organization_seq = any_organization_seq(connection, organization_id)?;
    let records = events_by_log_range(
        connection,
        organization_id,
        organization_seq,
        start,
        start.saturating_add(limit),
    )?;
    let note: Option<String> = connection
        .prepare_cached("select note from log_checkpoints where organization_seq = ?1")?
        .query_row([organization_seq], |row| row.get(0))
        .optional()?;
    Ok((records, size(connection, organization_seq)?, note))
}

/// The hashes of the complete subtrees that make up the first `size` leaves, largest first.
pub(super) fn frontier(
    connection: &Connection,
    organization_id: OrganizationId,
    size: u64,
) -> Result<Vec<Hash>, StoreError> {
    let organization_seq = any_organization_seq(connection, organization_id)?;
    check_size(size, self::size(connection, organization_seq)?, "size")?;
    let mut hashes = Vec::new();
    let mut lookup = lookup(connection, organization_seq);
    merkle::Frontier::from_stored(size, &mut |level, index| {
        let hash = lookup(level, index)?;
        hashes.push(hash);
        Ok::<_, StoreError>(hash)
    })?;
    Ok(hashes)
}
