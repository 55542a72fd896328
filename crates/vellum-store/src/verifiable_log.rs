//! The verifiable log engine, written once for every backend.
//!
//! Each organization's events form an RFC 6962/9162 Merkle log. This module decides what is
//! stored of the tree, composes roots, inclusion and consistency proofs and frontiers from what
//! is stored, keeps the right edge of each log in memory so that an append reads nothing, and
//! signs checkpoints under one rule: never sign a checkpoint inconsistent with the last one
//! signed. A backend provides only [`LogStorage`]: reading and writing the stored hashes and the
//! checkpoint row of one log, inside the caller's transaction.
//!
//! **What is stored.** Leaf hashes (level 0, kept with their events) and the complete subtrees
//! of even levels 2, 4, 6, …; a subtree of odd level is composed from its two children when
//! needed. That halves the nodes written per append while keeping every read one row away.
//!
//! **How reads are planned.** Which complete subtrees a root, proof or frontier needs depends
//! only on the sizes and positions involved, never on hash values. Each operation therefore
//! runs twice: once without hashes to learn which stored hashes it needs ([`stored_nodes_for`]),
//! which the backend reads in one go, then on those hashes ([`compose`]); [`compute`] joins the
//! two steps.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use vellum_core::checkpoint::{Checkpoint, NoteSigner};
use vellum_core::merkle::{self, Hash};
use vellum_core::{OrganizationId, Timestamp};

use crate::{InclusionProof, SignedCheckpoint, StoreError};

/// A hash a backend stores: a leaf (kept with its event) or an even-level complete subtree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoredNode {
    /// The leaf hash at this log position.
    Leaf(u64),
    /// The complete subtree at `level` (even, at least 2) covering leaves
    /// `[index << level, (index + 1) << level)`.
    Subtree {
        /// Its height.
        level: u32,
        /// Its position among the subtrees of that level.
        index: u64,
    },
}

/// A complete subtree hash to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubtreeHash {
    /// Its height (even, at least 2).
    pub level: u32,
    /// Its position among the subtrees of that level.
    pub index: u64,
    /// Its hash.
    pub hash: Hash,
}

/// The latest signed checkpoint of a log, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size it signs.
    pub tree_size: u64,
    /// The root it signs.
    pub root: Hash,
    /// The signed note, as served.
    pub note: String,
    /// When it was signed.
    pub signed_at: Timestamp,
}

/// The storage of one organization's log, seen inside the caller's transaction.
///
/// The futures are not required to be `Send`: a backend whose futures are `Send` gets engine
/// futures that are too.
#[allow(async_fn_in_trait)]
pub trait LogStorage {
    /// How many leaves the log holds.
    async fn size(&self) -> Result<u64, StoreError>;
    /// The stored hashes of these nodes, in the same order; `None` for one not stored.
    async fn read(&self, nodes: &[StoredNode]) -> Result<Vec<Option<Hash>>, StoreError>;
    /// Stores complete subtree hashes (each written once: a position is never rewritten).
    async fn write_subtrees(&self, subtrees: &[SubtreeHash]) -> Result<(), StoreError>;
    /// Up to `limit` stored subtrees in `(level, index)` order, after `after` (from the first
    /// when `None`).
    async fn subtrees_after(&self, after: Option<(u32, u64)>, limit: u32) -> Result<Vec<SubtreeHash>, StoreError>;
    /// The latest signed checkpoint, if any.
    async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError>;
    /// Replaces the latest signed checkpoint.
    async fn write_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError>;
}

/// Runs an engine future over a synchronous [`LogStorage`] (one whose futures never wait) to
/// completion on the calling thread.
///
/// # Panics
/// If the future waits: only a storage that does I/O asynchronously does, and it must be awaited.
pub fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("a synchronous log storage waited"),
    }
}

/// Whether a subtree of this level is stored (leaves and even levels) or composed.
fn is_stored(level: u32) -> bool {
    level.is_multiple_of(2)
}

fn stored_node(level: u32, index: u64) -> StoredNode {
    if level == 0 {
        StoredNode::Leaf(index)
    } else {
        StoredNode::Subtree { level, index }
    }
}

/// A lookup of complete subtrees, as the Merkle math in `vellum_core::merkle` takes it.
pub type Lookup<'a> = dyn FnMut(u32, u64) -> Result<Hash, StoreError> + 'a;

/// The stored nodes an operation over complete subtrees reads, found by running it without
/// hashes. `operation` must ask for the same subtrees whatever hashes it gets, which holds for
/// roots, proofs and frontiers.
pub fn stored_nodes_for<T>(operation: impl Fn(&mut Lookup<'_>) -> Result<T, StoreError>) -> Vec<StoredNode> {
    let mut wanted = BTreeSet::new();
    let mut record = |level: u32, index: u64| {
        if is_stored(level) {
            wanted.insert(stored_node(level, index));
        } else {
            wanted.insert(stored_node(level - 1, 2 * index));
            wanted.insert(stored_node(level - 1, 2 * index + 1));
        }
        Ok([0u8; 32])
    };
    // Errors cannot depend on hashes either; the real run reports them.
    let _ = operation(&mut record);
    wanted.into_iter().collect()
}

/// Runs an operation over complete subtrees on stored hashes read beforehand.
pub fn compose<T>(
    operation: impl Fn(&mut Lookup<'_>) -> Result<T, StoreError>,
    stored: &HashMap<StoredNode, Hash>,
) -> Result<T, StoreError> {
    let find = |node: StoredNode| {
        stored.get(&node).copied().ok_or_else(|| {
            StoreError::Internal(match node {
                StoredNode::Leaf(index) => format!("the leaf at position {index} is missing"),
                StoredNode::Subtree { level, index } => format!("log node ({level}, {index}) is missing"),
            })
        })
    };
    operation(&mut |level, index| {
        if is_stored(level) {
            find(stored_node(level, index))
        } else {
            let left = find(stored_node(level - 1, 2 * index))?;
            let right = find(stored_node(level - 1, 2 * index + 1))?;
            Ok(merkle::node_hash(&left, &right))
        }
    })
}

/// Runs an operation over complete subtrees: plans its reads, reads them at once, composes.
pub async fn compute<T>(
    storage: &impl LogStorage,
    operation: impl Fn(&mut Lookup<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let nodes = stored_nodes_for(&operation);
    let hashes = storage.read(&nodes).await?;
    let stored = nodes
        .into_iter()
        .zip(hashes)
        .filter_map(|(node, hash)| hash.map(|hash| (node, hash)))
        .collect();
    compose(operation, &stored)
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

/// The root of the first `tree_size` leaves.
pub async fn root(storage: &impl LogStorage, tree_size: u64) -> Result<Hash, StoreError> {
    compute(storage, |lookup| merkle::tree_root(tree_size, lookup)).await
}

/// The current size of the log and its root.
pub async fn tree_head(storage: &impl LogStorage) -> Result<(u64, Hash), StoreError> {
    let size = storage.size().await?;
    Ok((size, root(storage, size).await?))
}

/// The audit path of the leaf at `leaf_index` in the tree of `tree_size` leaves (the current
/// size when `None`).
pub async fn inclusion_proof(
    storage: &impl LogStorage,
    leaf_index: u64,
    tree_size: Option<u64>,
) -> Result<InclusionProof, StoreError> {
    let current = storage.size().await?;
    let tree_size = tree_size.unwrap_or(current);
    check_size(tree_size, current, "tree_size")?;
    if leaf_index >= tree_size {
        return Err(StoreError::InvalidInput {
            field: "tree_size",
            message: format!("the event is at position {leaf_index}, outside a tree of {tree_size}"),
        });
    }
    let hashes = compute(storage, |lookup| merkle::inclusion_proof(leaf_index, tree_size, lookup)).await?;
    Ok(InclusionProof {
        leaf_index,
        tree_size,
        hashes,
    })
}

/// The consistency proof between the trees of `first` and `second` leaves.
pub async fn consistency_proof(storage: &impl LogStorage, first: u64, second: u64) -> Result<Vec<Hash>, StoreError> {
    check_size(second, storage.size().await?, "second")?;
    if first > second {
        return Err(StoreError::InvalidInput {
            field: "first",
            message: "first must not exceed second".into(),
        });
    }
    if first == 0 {
        return Ok(Vec::new());
    }
    compute(storage, |lookup| merkle::consistency_proof(first, second, lookup)).await
}

/// The hashes of the complete subtrees that make up the first `size` leaves, largest first.
pub async fn frontier(storage: &impl LogStorage, size: u64) -> Result<Vec<Hash>, StoreError> {
    check_size(size, storage.size().await?, "size")?;
    compute(storage, |lookup| {
        let mut hashes = Vec::new();
        merkle::Frontier::from_stored(size, &mut |level, index| {
            let hash = lookup(level, index)?;
            hashes.push(hash);
            Ok::<_, StoreError>(hash)
        })?;
        Ok(hashes)
    })
    .await
}

/// Signs a checkpoint of the current log at `now`, unless the latest signed one already covers
/// it under the same origin. A new checkpoint is signed only when the log still contains the
/// tree the previous one signed; otherwise nothing is signed and the error says why.
///
/// Callers must sign the checkpoints of one log one at a time (in one writer, or under a lock on
/// the log's checkpoint row), so that the previous checkpoint read here is the latest.
pub async fn sign_checkpoint(
    storage: &impl LogStorage,
    organization_id: OrganizationId,
    signer: &NoteSigner,
    origin: &str,
    now: Timestamp,
) -> Result<SignedCheckpoint, StoreError> {
    let tree_size = storage.size().await?;
    if let Some(previous) = storage.checkpoint().await? {
        if previous.tree_size > tree_size {
            return Err(StoreError::Internal(format!(
                "the log of {organization_id} has {tree_size} entries but a checkpoint of {} was signed: refusing to sign",
                previous.tree_size
            )));
        }
        if root(storage, previous.tree_size).await? != previous.root {
            return Err(StoreError::Internal(format!(
                "the log of {organization_id} no longer matches its checkpoint at size {}: refusing to sign",
                previous.tree_size
            )));
        }
        if previous.tree_size == tree_size
            && Checkpoint::parse_body(&previous.note).is_ok_and(|checkpoint| checkpoint.origin == origin)
        {
            return Ok(SignedCheckpoint {
                checkpoint: Checkpoint {
                    origin: origin.to_owned(),
                    size: tree_size,
                    root: previous.root,
                },
                note: previous.note,
            });
        }
    }
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size: tree_size,
        root: root(storage, tree_size).await?,
    };
    let note = signer.sign(&checkpoint);
    storage
        .write_checkpoint(&StoredCheckpoint {
            tree_size,
            root: checkpoint.root,
            note: note.clone(),
            signed_at: now,
        })
        .await?;
    metrics::counter!("vellum_log_checkpoints_signed_total").increment(1);
    Ok(SignedCheckpoint { checkpoint, note })
}

/// For verification: the first stored subtree, bottom-up, whose hash is not the hash of the four
/// subtrees two levels below it (leaves, for level 2). With the leaves checked against their
/// events, this proves every stored hash, and so every proof served from them.
pub async fn first_inconsistent_subtree(storage: &impl LogStorage) -> Result<Option<(u32, u64)>, StoreError> {
    const PAGE: u32 = 1_024;
    let mut after = None;
    loop {
        let subtrees = storage.subtrees_after(after, PAGE).await?;
        // The four subtrees below each checked one, read for the whole page at once (a read per
        // subtree made a PostgreSQL round trip of each).
        let checked = |subtree: &&SubtreeHash| subtree.level >= 2 && is_stored(subtree.level);
        let below: Vec<StoredNode> = subtrees
            .iter()
            .filter(checked)
            .flat_map(|subtree| (0..4).map(|offset| stored_node(subtree.level - 2, 4 * subtree.index + offset)))
            .collect();
        let hashes = storage.read(&below).await?;
        let mut quads = hashes.chunks_exact(4);
        for subtree in &subtrees {
            let expected = if checked(&subtree) {
                match quads.next() {
                    Some([Some(a), Some(b), Some(c), Some(d)]) => {
                        Some(merkle::node_hash(&merkle::node_hash(a, b), &merkle::node_hash(c, d)))
                    }
                    _ => None,
                }
            } else {
                None
            };
            if expected != Some(subtree.hash) {
                return Ok(Some((subtree.level, subtree.index)));
            }
        }
        match subtrees.last() {
            Some(last) if subtrees.len() == PAGE as usize => after = Some((last.level, last.index)),
            _ => return Ok(None),
        }
    }
}

/// The right edge of each log, kept by the one writer of the logs so that appending a leaf reads
/// nothing. An entry is trusted only while its size equals the position of the next leaf; after
/// a rollback it is ahead of the log and is rebuilt from the stored nodes.
#[derive(Debug, Default)]
pub struct Frontiers<K> {
    logs: Mutex<HashMap<K, merkle::Frontier>>,
}

impl<K: std::hash::Hash + Eq> Frontiers<K> {
    /// No log known yet.
    pub fn new() -> Self {
        Self {
            logs: Mutex::new(HashMap::new()),
        }
    }

    /// Appends leaves at positions `first_index, first_index + 1, …` of the log `key` and stores
    /// the subtrees they complete, inside the caller's transaction (the leaves themselves are
    /// stored with their events by the caller).
    ///
    /// Appends to one log must not run concurrently (they cannot: its next position is taken
    /// under the caller's lock on the log); appends to different logs may.
    pub async fn append(
        &self,
        storage: &impl LogStorage,
        key: K,
        first_index: u64,
        leaves: &[Hash],
    ) -> Result<(), StoreError> {
        let cached = self.logs.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
        let mut frontier = match cached {
            Some(frontier) if frontier.size() == first_index => frontier,
            _ => compute(storage, |lookup| merkle::Frontier::from_stored(first_index, lookup)).await?,
        };
        let mut completed = Vec::new();
        for leaf in leaves {
            frontier.push_reporting(*leaf, |level, index, hash| {
                if is_stored(level) {
                    completed.push(SubtreeHash {
                        level,
                        index,
                        hash: *hash,
                    });
                }
            });
        }
        storage.write_subtrees(&completed).await?;
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, frontier);
        Ok(())
    }

    /// Forgets the right edge of one log (rebuilt from stored nodes when next needed): after its
    /// append was rolled back.
    pub fn forget(&self, key: &K) {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    /// Forgets every right edge (they are rebuilt from stored nodes when next needed): after a
    /// rolled-back append, when another process may have written the same positions since.
    pub fn clear(&self) {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A log in memory, storing exactly what a backend would.
    #[derive(Default)]
    struct MemoryLog {
        leaves: RefCell<Vec<Hash>>,
        subtrees: RefCell<std::collections::BTreeMap<(u32, u64), Hash>>,
        checkpoint: RefCell<Option<StoredCheckpoint>>,
        reads: RefCell<usize>,
    }

    impl LogStorage for MemoryLog {
        async fn size(&self) -> Result<u64, StoreError> {
            Ok(self.leaves.borrow().len() as u64)
        }
        async fn read(&self, nodes: &[StoredNode]) -> Result<Vec<Option<Hash>>, StoreError> {
            *self.reads.borrow_mut() += 1;
            Ok(nodes
                .iter()
                .map(|node| match node {
                    StoredNode::Leaf(index) => self.leaves.borrow().get(*index as usize).copied(),
                    StoredNode::Subtree { level, index } => self.subtrees.borrow().get(&(*level, *index)).copied(),
                })
                .collect())
        }
        async fn write_subtrees(&self, subtrees: &[SubtreeHash]) -> Result<(), StoreError> {
            for subtree in subtrees {
                assert!(is_stored(subtree.level) && subtree.level >= 2);
                let previous = self
                    .subtrees
                    .borrow_mut()
                    .insert((subtree.level, subtree.index), subtree.hash);
                assert!(previous.is_none(), "a subtree was written twice");
            }
            Ok(())
        }
        async fn subtrees_after(&self, after: Option<(u32, u64)>, limit: u32) -> Result<Vec<SubtreeHash>, StoreError> {
            Ok(self
                .subtrees
                .borrow()
                .iter()
                .filter(|(key, _)| after.is_none_or(|after| **key > after))
                .take(limit as usize)
                .map(|((level, index), hash)| SubtreeHash {
                    level: *level,
                    index: *index,
                    hash: *hash,
                })
                .collect())
        }
        async fn checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
            Ok(self.checkpoint.borrow().clone())
        }
        async fn write_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
            *self.checkpoint.borrow_mut() = Some(checkpoint.clone());
            Ok(())
        }
    }

    fn leaf(n: u64) -> Hash {
        merkle::leaf_hash(&n.to_be_bytes())
    }

    fn grow(log: &MemoryLog, frontiers: &Frontiers<u8>, count: u64) {
        let first = ready(log.size()).unwrap();
        let leaves: Vec<Hash> = (first..first + count).map(leaf).collect();
        log.leaves.borrow_mut().extend(&leaves);
        ready(frontiers.append(log, 0, first, &leaves)).unwrap();
    }

    #[test]
    fn roots_and_proofs_match_the_merkle_math_at_every_size() {
        let log = MemoryLog::default();
        let frontiers = Frontiers::new();
        for size in 1..=70u64 {
            // A forgotten right edge must be rebuilt from what is stored.
            if size % 9 == 0 {
                frontiers.clear();
            }
            grow(&log, &frontiers, 1);
            let leaves = log.leaves.borrow().clone();
            let expected = merkle::root_of(&leaves);
            assert_eq!(ready(tree_head(&log)).unwrap(), (size, expected));
            for index in 0..size {
                let proof = ready(inclusion_proof(&log, index, None)).unwrap();
                assert!(merkle::verify_inclusion(
                    index,
                    size,
                    &leaves[index as usize],
                    &proof.hashes,
                    &expected
                ));
            }
            for first in 1..=size {
                let proof = ready(consistency_proof(&log, first, size)).unwrap();
                let first_root = merkle::root_of(&leaves[..first as usize]);
                assert!(merkle::verify_consistency(first, size, &first_root, &expected, &proof));
            }
            let mut rebuilt = merkle::Frontier::new();
            leaves.iter().for_each(|leaf| rebuilt.push(*leaf));
            let hashes = ready(frontier(&log, size)).unwrap();
            assert_eq!(hashes.len() as u32, size.count_ones());
            assert_eq!(rebuilt.root(), expected);
        }
        assert_eq!(ready(first_inconsistent_subtree(&log)).unwrap(), None);
        // Only even levels are stored.
        assert!(log.subtrees.borrow().keys().all(|(level, _)| level % 2 == 0));
    }

    #[test]
    fn a_proof_reads_its_stored_hashes_at_once() {
        let log = MemoryLog::default();
        let frontiers = Frontiers::new();
        grow(&log, &frontiers, 1000);
        *log.reads.borrow_mut() = 0;
        ready(inclusion_proof(&log, 517, None)).unwrap();
        ready(consistency_proof(&log, 333, 1000)).unwrap();
        assert_eq!(*log.reads.borrow(), 2);
    }

    #[test]
    fn out_of_range_requests_are_invalid_input() {
        let log = MemoryLog::default();
        let frontiers = Frontiers::new();
        grow(&log, &frontiers, 5);
        for error in [
            ready(inclusion_proof(&log, 0, Some(6))).unwrap_err(),
            ready(inclusion_proof(&log, 5, Some(5))).unwrap_err(),
            ready(consistency_proof(&log, 3, 6)).unwrap_err(),
            ready(consistency_proof(&log, 4, 3)).unwrap_err(),
            ready(frontier(&log, 6)).unwrap_err(),
        ] {
            assert!(matches!(error, StoreError::InvalidInput { .. }), "{error:?}");
        }
        assert_eq!(ready(consistency_proof(&log, 0, 5)).unwrap(), Vec::<Hash>::new());
    }

    #[test]
    fn a_tampered_subtree_is_found_and_blocks_signing() {
        let signer = NoteSigner::new("test", &[7; 32]).unwrap();
        let organization = OrganizationId::from_ulid(ulid::Ulid::from_parts(1, 1));
        let log = MemoryLog::default();
        let frontiers = Frontiers::new();
        grow(&log, &frontiers, 20);
        let now = Timestamp::from_unix_millis(1).unwrap();
        let first = ready(sign_checkpoint(&log, organization, &signer, "origin", now)).unwrap();
        assert_eq!(first.checkpoint.size, 20);
        // Nothing grew: the same note is served.
        assert_eq!(
            ready(sign_checkpoint(&log, organization, &signer, "origin", now))
                .unwrap()
                .note,
            first.note
        );
        grow(&log, &frontiers, 3);
        let second = ready(sign_checkpoint(&log, organization, &signer, "origin", now)).unwrap();
        assert_eq!(second.checkpoint.size, 23);

        log.subtrees.borrow_mut().insert((2, 4), [9; 32]);
        assert_eq!(ready(first_inconsistent_subtree(&log)).unwrap(), Some((2, 4)));
        grow(&log, &frontiers, 1);
        let refused = ready(sign_checkpoint(&log, organization, &signer, "origin", now)).unwrap_err();
        assert!(refused.to_string().contains("no longer matches"), "{refused}");
        assert_eq!(log.checkpoint.borrow().as_ref().unwrap().tree_size, 23);

        // A log shorter than its checkpoint is refused too.
        log.leaves.borrow_mut().truncate(10);
        let refused = ready(sign_checkpoint(&log, organization, &signer, "origin", now)).unwrap_err();
        assert!(refused.to_string().contains("refusing to sign"), "{refused}");
    }

    #[test]
    fn the_subtree_check_finds_a_rewritten_hash_on_any_page_and_level() {
        let log = MemoryLog::default();
        let frontiers = Frontiers::new();
        grow(&log, &frontiers, 5_000);
        assert_eq!(ready(first_inconsistent_subtree(&log)).unwrap(), None);
        // 1,250 subtrees of level 2 come first: these are on the check's second page.
        let original = log.subtrees.borrow()[&(4, 100)];
        log.subtrees.borrow_mut().insert((4, 100), [7; 32]);
        assert_eq!(ready(first_inconsistent_subtree(&log)).unwrap(), Some((4, 100)));
        log.subtrees.borrow_mut().insert((4, 100), original);
        assert_eq!(ready(first_inconsistent_subtree(&log)).unwrap(), None);
        log.leaves.borrow_mut()[4 * 1_100 + 2] = [8; 32];
        assert_eq!(ready(first_inconsistent_subtree(&log)).unwrap(), Some((2, 1_100)));
    }
}
