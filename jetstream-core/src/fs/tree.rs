//! Incremental BLAKE3 verification of a file that arrives out of order.
//!
//! BLAKE3 is a binary tree over 1 KiB chunks: a range of `n` chunks is split at
//! [`left_subtree_len`](blake3::hazmat::left_subtree_len), the largest power-of-two number of
//! chunks strictly below `n`. We cut a file into aligned units of [`SUBTREE_LEN`] bytes (a power
//! of two times the chunk size, the last unit possibly short). Because every split point of the
//! BLAKE3 tree of a file longer than one unit is then a multiple of `SUBTREE_LEN`, the tree over
//! the units has exactly the BLAKE3 shape, and:
//!
//! - every aligned block of `2^j` units that lies inside the file and is not the whole file is
//!   a non-root node of the tree, so two sibling blocks can be merged as soon as both are known;
//! - once everything is merged, what is left is the right spine: blocks of decreasing
//!   power-of-two sizes (the binary digits of the unit count, or two halves when the count is
//!   itself a power of two), folded right to left, with a root merge at the top.
//!
//! A file of at most one unit is a single subtree which is also the root: its hash is simply
//! `blake3::hash` of the data ([`subtree_hash`] returns [`SubtreeHash::Root`] for it).

use std::collections::BTreeMap;

use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

use crate::types::Digest;

/// Length of the aligned unit of buffering, hashing and writing (the last unit of a file may be
/// shorter). A power of two times BLAKE3's 1 KiB chunk, which the tree merge relies on.
pub const SUBTREE_LEN: u64 = 256 * 1024;

/// Number of [`SUBTREE_LEN`] units of a file of `len` bytes (0 for an empty file).
pub fn subtree_count(len: u64) -> u64 {
    len.div_ceil(SUBTREE_LEN)
}

/// Byte length of unit `index` of a file of `len` bytes (0 when `index` is past the end).
pub fn subtree_len(len: u64, index: u64) -> u64 {
    let start = index.saturating_mul(SUBTREE_LEN);
    len.saturating_sub(start).min(SUBTREE_LEN)
}

/// The hash of one aligned unit of a file, ready to be given to [`TreeHasher::add`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubtreeHash {
    /// A non-root chaining value (the file has more than one unit).
    NonRoot(ChainingValue),
    /// The file's root hash (the file is a single unit, so this unit is the whole tree).
    Root(Digest),
}

/// Non-root chaining value of the aligned subtree that starts at byte `offset` of a file.
///
/// `offset` must be a multiple of [`SUBTREE_LEN`], `data` non-empty and at most
/// `SUBTREE_LEN` bytes long, and the file must be longer than `SUBTREE_LEN` (otherwise use
/// [`single_subtree_root`]).
///
/// # Panics
/// Inside `blake3` when `data` is empty or `offset` is not chunk-aligned. Callers derive both
/// from the file's layout (see [`subtree_hash`], which cannot trigger it).
pub fn subtree_cv(offset: u64, data: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(offset);
    hasher.update(data);
    hasher.finalize_non_root()
}

/// Root hash of a file of at most [`SUBTREE_LEN`] bytes: plain `blake3::hash`.
pub fn single_subtree_root(data: &[u8]) -> Digest {
    Digest(*blake3::hash(data).as_bytes())
}

/// Hash of unit `index` of a file of `file_len` bytes whose content is `data`.
///
/// Returns `None` when `data` does not have the exact length of that unit (so no `blake3`
/// assertion can be reached through this function).
pub fn subtree_hash(file_len: u64, index: u64, data: &[u8]) -> Option<SubtreeHash> {
    let expected = subtree_len(file_len, index);
    if expected == 0 || data.len() as u64 != expected {
        return None;
    }
    if file_len <= SUBTREE_LEN {
        Some(SubtreeHash::Root(single_subtree_root(data)))
    } else {
        Some(SubtreeHash::NonRoot(subtree_cv(index * SUBTREE_LEN, data)))
    }
}

/// Computes the BLAKE3 root hash of a file of known length from the hashes of its aligned
/// [`SUBTREE_LEN`] units, given in any order.
///
/// Sibling subtrees are merged as soon as both are known, so memory stays
/// `O(log n + out-of-order span)` chaining values, not `O(n)`.
#[derive(Debug, Clone)]
pub struct TreeHasher {
    /// Number of units of the file.
    count: u64,
    /// Known, not yet merged nodes, keyed by (level, index at that level); a node at level `j`
    /// covers units `[index << j, (index + 1) << j)`.
    nodes: BTreeMap<(u32, u64), ChainingValue>,
    /// Root of a single-unit (or empty) file.
    root: Option<Digest>,
    /// Units added so far (duplicates excluded).
    added: u64,
}

impl TreeHasher {
    /// A hasher for a file of `len` bytes. An empty file is complete from the start.
    pub fn new(len: u64) -> Self {
        let root = (len == 0).then(|| single_subtree_root(&[]));
        Self {
            count: subtree_count(len),
            nodes: BTreeMap::new(),
            root,
            added: 0,
        }
    }

    /// Whether every unit has been added.
    pub fn is_complete(&self) -> bool {
        self.added == self.count
    }

    /// Adds the hash of unit `index`. Out-of-range indices, duplicates and a hash of the wrong
    /// kind (a root for a multi-unit file or the reverse) are ignored; returns whether the hash
    /// was taken.
    pub fn add(&mut self, index: u64, hash: SubtreeHash) -> bool {
        match hash {
            SubtreeHash::NonRoot(cv) => self.add_subtree(index, cv),
            SubtreeHash::Root(digest) => {
                if self.count != 1 || index != 0 || self.root.is_some() {
                    return false;
                }
                self.root = Some(digest);
                self.added = 1;
                true
            }
        }
    }

    /// Adds the non-root chaining value of unit `index` (`index = offset / SUBTREE_LEN`) of a
    /// multi-unit file. Ignored (returns `false`) when out of range, already added, or when the
    /// file has a single unit (use [`TreeHasher::add`] with [`SubtreeHash::Root`] then).
    pub fn add_subtree(&mut self, index: u64, cv: ChainingValue) -> bool {
        if self.count < 2 || index >= self.count || self.contains(index) {
            return false;
        }
        self.added += 1;
        let (mut level, mut idx, mut cv) = (0u32, index, cv);
        loop {
            // The parent covers 2^(level+1) units; it is a non-root node only if that is less
            // than the whole file. If both children exist, the parent lies inside the file.
            let parent_span = 1u64.checked_shl(level + 1).unwrap_or(u64::MAX);
            if parent_span >= self.count {
                break;
            }
            let Some(sibling) = self.nodes.remove(&(level, idx ^ 1)) else {
                break;
            };
            cv = if idx & 1 == 0 {
                merge_subtrees_non_root(&cv, &sibling, Mode::Hash)
            } else {
                merge_subtrees_non_root(&sibling, &cv, Mode::Hash)
            };
            level += 1;
            idx >>= 1;
        }
        self.nodes.insert((level, idx), cv);
        true
    }

    /// Whether unit `index` is already covered by a known node.
    fn contains(&self, index: u64) -> bool {
        (0..64).any(|level| self.nodes.contains_key(&(level, index >> level)))
    }

    /// Number of chaining values currently held (for tests and diagnostics).
    pub fn pending_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The file's BLAKE3 hash, or `None` if some unit is still missing.
    pub fn finalize(self) -> Option<Digest> {
        if !self.is_complete() {
            return None;
        }
        if let Some(root) = self.root {
            return Some(root);
        }
        // Remaining nodes are the right spine, in increasing start order; fold right to left.
        let mut spine: Vec<((u32, u64), ChainingValue)> = self.nodes.into_iter().collect();
        spine.sort_by_key(|&((level, idx), _)| idx << level);
        let (_, mut acc) = spine.pop()?;
        let (_, first) = spine.first().copied()?;
        while spine.len() > 1 {
            let (_, left) = spine.pop()?;
            acc = merge_subtrees_non_root(&left, &acc, Mode::Hash);
        }
        Some(Digest(
            *merge_subtrees_root(&first, &acc, Mode::Hash).as_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    fn data(len: u64, seed: u64) -> Vec<u8> {
        let mut rng = Rng::new(seed);
        (0..len).map(|_| rng.next_u64() as u8).collect()
    }

    fn root_via_tree(content: &[u8], order: &[u64]) -> Option<Digest> {
        let len = content.len() as u64;
        let mut tree = TreeHasher::new(len);
        for &i in order {
            let start = (i * SUBTREE_LEN) as usize;
            let end = start + subtree_len(len, i) as usize;
            let hash = subtree_hash(len, i, &content[start..end]).expect("exact unit length");
            assert!(tree.add(i, hash));
            // Duplicates are refused and change nothing.
            assert!(!tree.add(i, hash));
        }
        tree.finalize()
    }

    const LENGTHS: &[u64] = &[
        0,
        1,
        1023,
        1024,
        1025,
        SUBTREE_LEN - 1,
        SUBTREE_LEN,
        SUBTREE_LEN + 1,
        2 * SUBTREE_LEN,
        3 * SUBTREE_LEN + 5,
        4 * SUBTREE_LEN,
        5 * SUBTREE_LEN - 1,
        7 * SUBTREE_LEN,
        8 * SUBTREE_LEN + 1,
        17 * SUBTREE_LEN + 1,
        40 * 1024 * 1024 + 12_345,
    ];

    #[test]
    fn matches_blake3_in_order_reversed_and_shuffled() {
        for (n, &len) in LENGTHS.iter().enumerate() {
            let content = data(len, 0x9E37_79B9 + n as u64);
            let expected = Digest(*blake3::hash(&content).as_bytes());
            let count = subtree_count(len);
            let in_order: Vec<u64> = (0..count).collect();
            let reversed: Vec<u64> = (0..count).rev().collect();
            assert_eq!(
                root_via_tree(&content, &in_order),
                Some(expected),
                "len {len} in order"
            );
            assert_eq!(
                root_via_tree(&content, &reversed),
                Some(expected),
                "len {len} reversed"
            );
            for seed in [1u64, 7, 0xDEAD_BEEF] {
                let mut order = in_order.clone();
                let mut rng = Rng::new(seed);
                for i in (1..order.len()).rev() {
                    order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                }
                assert_eq!(
                    root_via_tree(&content, &order),
                    Some(expected),
                    "len {len} shuffled with seed {seed}"
                );
            }
        }
    }

    #[test]
    fn every_unit_count_up_to_70_matches() {
        // Exhaustive over tree shapes: all unit counts 1..=70, with a short last unit.
        let content = data(70 * SUBTREE_LEN, 42);
        for count in 1..=70u64 {
            let len = count * SUBTREE_LEN - 3;
            let slice = &content[..len as usize];
            let expected = Digest(*blake3::hash(slice).as_bytes());
            let order: Vec<u64> = (0..count).rev().collect();
            assert_eq!(
                root_via_tree(slice, &order),
                Some(expected),
                "count {count}"
            );
        }
    }

    #[test]
    fn incomplete_tree_has_no_digest() {
        let len = 3 * SUBTREE_LEN;
        let content = data(len, 3);
        let mut tree = TreeHasher::new(len);
        for i in [0u64, 2] {
            let s = (i * SUBTREE_LEN) as usize;
            let hash = subtree_hash(len, i, &content[s..s + SUBTREE_LEN as usize]);
            assert!(tree.add(i, hash.expect("exact unit length")));
        }
        assert!(!tree.is_complete());
        assert_eq!(tree.finalize(), None);
        assert_eq!(TreeHasher::new(1).finalize(), None);
    }

    #[test]
    fn refuses_bad_input_without_panicking() {
        let mut tree = TreeHasher::new(2 * SUBTREE_LEN);
        assert!(!tree.add(2, SubtreeHash::NonRoot([0; 32])));
        assert!(!tree.add(0, SubtreeHash::Root(Digest([0; 32]))));
        let mut single = TreeHasher::new(10);
        assert!(!single.add(0, SubtreeHash::NonRoot([0; 32])));
        assert_eq!(subtree_hash(10, 0, &[0; 9]), None);
        assert_eq!(subtree_hash(10, 1, &[]), None);
        assert_eq!(subtree_hash(2 * SUBTREE_LEN, 0, &[0; 10]), None);
    }

    #[test]
    fn memory_stays_logarithmic_in_order() {
        let count = 1000u64;
        let mut tree = TreeHasher::new(count * SUBTREE_LEN);
        let mut max_nodes = 0;
        for i in 0..count {
            // Values are irrelevant for the memory bound.
            assert!(tree.add_subtree(i, [i as u8; 32]));
            max_nodes = max_nodes.max(tree.pending_nodes());
        }
        assert!(max_nodes <= 11, "held {max_nodes} chaining values");
        assert!(tree.finalize().is_some());
    }
}
