//! RFC 6962 / RFC 9162 Merkle tree math: leaf and node hashes, tree heads, inclusion and
//! consistency proofs and their verification.
//!
//! Proof construction is generic over a function that returns the hash of the subtree over
//! leaves `[start, end)`. The RFC's algorithms only ever ask for two kinds of subtree: complete,
//! power-of-two-aligned ones (which a store keeps), and ranges that end at the tree's right edge
//! (which [`subtree_hash`] composes from complete ones). So a store answers a proof with
//! O(log n) reads of stored hashes (about two per level) and never rebuilds the tree.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of the empty tree: SHA-256 of no bytes.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A leaf's hash: SHA-256(0x00 ‖ bytes).
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(bytes);
    hasher.finalize().into()
}

/// An interior node's hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two strictly less than `n` (for `n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The root of a list of leaf hashes (RFC 9162 §2.1.1), computed in memory.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = usize::try_from(split_point(n as u64)).expect("in memory");
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// A log's right edge: the roots of its complete subtrees, largest first. Enough to compute the
/// root as leaves arrive, in O(log n) memory, however long the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    nodes: Vec<(u32, Hash)>,
    size: u64,
}

impl Frontier {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many leaves were pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_reporting(leaf, |_, _, _| {});
    }

    /// Appends a leaf hash, reporting each complete subtree it completes as
    /// `(level, index, hash)`, lowest first (the nodes [`nodes_completed_by`] names).
    pub fn push_reporting(&mut self, leaf: Hash, mut completed: impl FnMut(u32, u64, &Hash)) {
        let mut node = (0u32, leaf);
        let new_size = self.size + 1;
        while let Some(&(level, left)) = self.nodes.last() {
            if level != node.0 {
                break;
            }
            self.nodes.pop();
            node = (level + 1, node_hash(&left, &node.1));
            completed(node.0, (new_size >> node.0) - 1, &node.1);
        }
        self.nodes.push(node);
        self.size = new_size;
    }

    /// Rebuilds the frontier of a log of `size` leaves from its stored complete subtrees.
    pub fn from_stored<E>(
        size: u64,
        complete: &mut (impl FnMut(u32, u64) -> Result<Hash, E> + ?Sized),
    ) -> Result<Self, E> {
        let mut nodes = Vec::new();
        let mut covered = 0u64;
        for level in (0..64u32).rev() {
            if size & (1 << level) != 0 {
                nodes.push((level, complete(level, covered >> level)?));
                covered += 1 << level;
            }
        }
        Ok(Self { nodes, size })
    }

    /// The root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(&(_, mut root)) = nodes.next() else {
            return empty_root();
        };
        for (_, left) in nodes {
            root = node_hash(left, &root);
        }
        root
    }
}

/// The complete subtrees a log of `size` leaves stores, as `(level, index)`: the node at `level`
/// covers leaves `[index << level, (index + 1) << level)`. Appending the leaf that makes the log
/// `size` long completes exactly the nodes [`nodes_completed_by`] returns.
pub fn nodes_completed_by(size: u64) -> impl Iterator<Item = (u32, u64)> {
    // Appending leaf `size - 1` completes the node at every level `l >= 1` where `size` is a
    // multiple of 2^l.
    (1..64u32)
        .take_while(move |level| size.is_multiple_of(1u64 << level))
        .map(move |level| (level, (size >> level) - 1))
}

/// The hash of the subtree over leaves `[start, end)`, from `complete(level, index)`, which
/// returns the stored hash of a complete, aligned subtree (`level` 0 being a leaf).
pub fn subtree_hash<E>(
    start: u64,
    end: u64,
    complete: &mut (impl FnMut(u32, u64) -> Result<Hash, E> + ?Sized),
) -> Result<Hash, E> {
    debug_assert!(start < end);
    let size = end - start;
    if size.is_power_of_two() && start.is_multiple_of(size) {
        return complete(size.trailing_zeros(), start >> size.trailing_zeros());
    }
    let k = split_point(size);
    let left = subtree_hash(start, start + k, complete)?;
    let right = subtree_hash(start + k, end, complete)?;
    Ok(node_hash(&left, &right))
}

/// The root of the first `size` leaves of a log, from its stored complete subtrees.
pub fn tree_root<E>(size: u64, complete: &mut (impl FnMut(u32, u64) -> Result<Hash, E> + ?Sized)) -> Result<Hash, E> {
    if size == 0 {
        Ok(empty_root())
    } else {
        subtree_hash(0, size, complete)
    }
}

/// The audit path of leaf `index` in a tree of `size` leaves (RFC 6962 §2.1.1 PATH), leaf side
/// first.
pub fn inclusion_proof<E>(
    index: u64,
    size: u64,
    complete: &mut (impl FnMut(u32, u64) -> Result<Hash, E> + ?Sized),
) -> Result<Vec<Hash>, E> {
    assert!(index < size, "leaf {index} is not in a tree of {size}");
    let mut proof = Vec::new();
    path(index, 0, size, complete, &mut proof)?;
    Ok(proof)
}

fn path<E>(
    index: u64,
    start: u64,
    end: u64,
    complete: &mut (impl FnMut(u32, u64) -> Result<Hash, E> + ?Sized),
    proof: &mut Vec<Hash>,
) -> Result<(), E> {
    let size = end - start;
    if size == 1 {
        return Ok(());
    }
    let k = split_point(size);
    if index < k {
        path(index, start, start + k, complete, proof)?;
        proof.push(subtree_hash(start + k, end, complete)?);
    } else {
        path(index - k, start + k, end, complete, proof)?;
        proof.push(subtree_hash(start, start + k, complete)?);
    }
    Ok(())
}

/// The consistency proof between the trees of `first` and `second` leaves (RFC 6962 §2.1.2
/// PROOF), for `0 < first <= second`.
pub fn consistency_proof<E>(
    first: u64,
    second: u64,
    complete: &mut (impl FnMut(u32, u64) -> Result<Hash, E> + ?Sized),
) -> Result<Vec<Hash>, E> {
    assert!(
        0 < first && first <= second,
        "no consistency proof from {first} to {second}"
    );
    let mut proof = Vec::new();
    subproof(first, 0, second, true, complete, &mut proof)?;
    Ok(proof)
}

fn subproof<E>(
    first: u64,
    start: u64,
    end: u64,
    first_is_whole: bool,
    complete: &mut (impl FnMut(u32, u64) -> Result<Hash, E> + ?Sized),
    proof: &mut Vec<Hash>,
) -> Result<(), E> {
    let size = end - start;
    if first == size {
        if !first_is_whole {
            proof.push(subtree_hash(start, end, complete)?);
        }
        return Ok(());
    }
    let k = split_point(size);
    if first <= k {
        subproof(first, start, start + k, first_is_whole, complete, proof)?;
        proof.push(subtree_hash(start + k, end, complete)?);
    } else {
        subproof(first - k, start + k, end, false, complete, proof)?;
        proof.push(subtree_hash(start, start + k, complete)?);
    }
    Ok(())
}

/// Checks an audit path (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut node, mut last) = (index, size - 1);
    let mut hash = *leaf;
    for sibling in proof {
        if last == 0 {
            return false;
        }
        if node & 1 == 1 || node == last {
            hash = node_hash(sibling, &hash);
            if node & 1 == 0 {
                while node & 1 == 0 && node != 0 {
                    node >>= 1;
                    last >>= 1;
                }
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        node >>= 1;
        last >>= 1;
    }
    last == 0 && hash == *root
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2). An empty first tree is consistent with
/// everything, with an empty proof.
pub fn verify_consistency(first: u64, second: u64, first_root: &Hash, second_root: &Hash, proof: &[Hash]) -> bool {
    if first > second {
        return false;
    }
    if first == 0 {
        return proof.is_empty();
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    let mut hashes: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        hashes.push(*first_root);
    }
    hashes.extend_from_slice(proof);
    let Some((seed, rest)) = hashes.split_first() else {
        return false;
    };
    let (mut node, mut last) = (first - 1, second - 1);
    while node & 1 == 1 {
        node >>= 1;
        last >>= 1;
    }
    let (mut first_hash, mut second_hash) = (*seed, *seed);
    for hash in rest {
        if last == 0 {
            return false;
        }
        if node & 1 == 1 || node == last {
            first_hash = node_hash(hash, &first_hash);
            second_hash = node_hash(hash, &second_hash);
            if node & 1 == 0 {
                while node & 1 == 0 && node != 0 {
                    node >>= 1;
                    last >>= 1;
                }
            }
        } else {
            second_hash = node_hash(&second_hash, hash);
        }
        node >>= 1;
        last >>= 1;
    }
    first_hash == *first_root && second_hash == *second_root && last == 0
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    use proptest::prelude::*;

    use super::*;

    /// A store of complete subtrees, filled the way a log fills it: leaf by leaf.
    struct Nodes {
        nodes: HashMap<(u32, u64), Hash>,
        size: u64,
    }

    impl Nodes {
        fn build(leaves: &[Vec<u8>]) -> Self {
            let mut store = Self {
                nodes: HashMap::new(),
                size: 0,
            };
            for leaf in leaves {
                store.nodes.insert((0, store.size), leaf_hash(leaf));
                store.size += 1;
                for (level, index) in nodes_completed_by(store.size) {
                    let left = store.nodes[&(level - 1, 2 * index)];
                    let right = store.nodes[&(level - 1, 2 * index + 1)];
                    store.nodes.insert((level, index), node_hash(&left, &right));
                }
            }
            store
        }

        fn lookup(&self) -> impl FnMut(u32, u64) -> Result<Hash, String> + '_ {
            |level, index| {
                self.nodes
                    .get(&(level, index))
                    .copied()
                    .ok_or(format!("no node ({level}, {index})"))
            }
        }
    }

    fn leaves(count: usize) -> Vec<Vec<u8>> {
        (0..count).map(|index| format!("leaf {index}").into_bytes()).collect()
    }

    fn oracle(leaves: &[Vec<u8>]) -> MemoryBackedTree<Sha256, Vec<u8>> {
        let mut tree = MemoryBackedTree::new();
        for leaf in leaves {
            tree.push(leaf.clone());
        }
        tree
    }

    fn flatten(proof: &[Hash]) -> Vec<u8> {
        proof.iter().flatten().copied().collect()
    }

    #[test]
    fn known_roots() {
        // RFC 6962 trees: the empty tree is SHA-256 of nothing; one leaf is its leaf hash.
        assert_eq!(
            empty_root(),
            [
                0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27,
                0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55
            ]
        );
        let data = leaves(7);
        let hashes: Vec<Hash> = data.iter().map(|leaf| leaf_hash(leaf)).collect();
        assert_eq!(root_of(&hashes[..1]), hashes[0]);
        assert_eq!(root_of(&hashes), oracle(&data).root().as_bytes().as_slice());
    }

    #[test]
    fn the_frontier_tracks_the_root() {
        let hashes: Vec<Hash> = leaves(300).iter().map(|leaf| leaf_hash(leaf)).collect();
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), empty_root());
        for (index, hash) in hashes.iter().enumerate() {
            frontier.push(*hash);
            assert_eq!(frontier.root(), root_of(&hashes[..=index]), "size {}", index + 1);
        }
        assert_eq!(frontier.size(), 300);
    }

    #[test]
    fn a_frontier_rebuilt_from_stored_nodes_continues_the_log() {
        let data = leaves(300);
        let store = Nodes::build(&data);
        let hashes: Vec<Hash> = data.iter().map(|leaf| leaf_hash(leaf)).collect();
        for size in [0u64, 1, 2, 3, 7, 8, 100, 255, 256, 299] {
            let mut frontier = Frontier::from_stored(size, &mut store.lookup()).unwrap();
            assert_eq!(frontier.root(), root_of(&hashes[..size as usize]));
            let mut reported = Vec::new();
            frontier.push_reporting(hashes[size as usize], |level, index, hash| {
                reported.push((level, index, *hash))
            });
            let expected: Vec<_> = nodes_completed_by(size + 1)
                .map(|(level, index)| (level, index, store.nodes[&(level, index)]))
                .collect();
            assert_eq!(reported, expected, "size {size}");
        }
    }

    #[test]
    fn stored_nodes_reproduce_every_root_up_to_300() {
        let data = leaves(300);
        let store = Nodes::build(&data);
        let hashes: Vec<Hash> = data.iter().map(|leaf| leaf_hash(leaf)).collect();
        for size in 0..=300u64 {
            let root = tree_root(size, &mut store.lookup()).unwrap();
            assert_eq!(root, root_of(&hashes[..size as usize]), "size {size}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn inclusion_proofs_match_an_independent_implementation(size in 1usize..10_000, seed in any::<u64>()) {
            let data = leaves(size);
            let store = Nodes::build(&data);
            let tree = oracle(&data);
            let root = tree_root(size as u64, &mut store.lookup()).unwrap();
            let oracle_root = tree.root();
            prop_assert_eq!(root.as_slice(), oracle_root.as_bytes().as_slice());
            for index in [0, (seed % size as u64), size as u64 - 1] {
                let proof = inclusion_proof(index, size as u64, &mut store.lookup()).unwrap();
                let expected = tree.prove_inclusion(index as usize);
                prop_assert_eq!(flatten(&proof), expected.as_bytes().to_vec());
                let leaf = leaf_hash(&data[index as usize]);
                prop_assert!(verify_inclusion(index, size as u64, &leaf, &proof, &root));
                prop_assert!(tree.root().verify_inclusion(&data[index as usize], index, &ct_merkle::InclusionProof::from_digests(proof.iter().map(|hash| hash.into()))).is_ok());
                // A wrong leaf, index or root fails.
                prop_assert!(!verify_inclusion(index, size as u64, &leaf_hash(b"forged"), &proof, &root));
                if size > 1 {
                    prop_assert!(!verify_inclusion((index + 1) % size as u64, size as u64, &leaf, &proof, &root));
                }
                prop_assert!(!verify_inclusion(index, size as u64, &leaf, &proof, &leaf_hash(b"other root")));
            }
        }

        #[test]
        fn consistency_proofs_match_an_independent_implementation(second in 1usize..10_000, seed in any::<u64>()) {
            let data = leaves(second);
            let store = Nodes::build(&data);
            let tree = oracle(&data);
            let second_root = tree_root(second as u64, &mut store.lookup()).unwrap();
            for first in [1, 1 + seed % second as u64, second as u64] {
                let first_root = tree_root(first, &mut store.lookup()).unwrap();
                let proof = consistency_proof(first, second as u64, &mut store.lookup()).unwrap();
                if first < second as u64 {
                    let expected = tree.prove_consistency(second - first as usize);
                    prop_assert_eq!(flatten(&proof), expected.as_bytes().to_vec());
                    let old_root = ct_merkle::RootHash::<Sha256>::new(first_root.into(), first);
                    prop_assert!(tree.root().verify_consistency(&old_root, &ct_merkle::ConsistencyProof::from_digests(proof.iter().map(|hash| hash.into()))).is_ok());
                    prop_assert!(!verify_consistency(first, second as u64, &leaf_hash(b"forged"), &second_root, &proof));
                    prop_assert!(!verify_consistency(first, second as u64, &first_root, &leaf_hash(b"forged"), &proof));
                }
                prop_assert!(verify_consistency(first, second as u64, &first_root, &second_root, &proof));
            }
        }
    }
}
