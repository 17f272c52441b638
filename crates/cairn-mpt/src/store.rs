//! Witness nodes by hash.

use alloy_primitives::B256;
use core::fmt;
use core::hash::{BuildHasherDefault, Hasher};
use std::collections::HashMap;

/// Nodes of one or more tries (a `debug_executionWitness` `state` list: account-trie and
/// storage-trie nodes mixed), keyed by the keccak-256 of their RLP.
///
/// Guarantees: every node is hashed exactly once, in [`NodeStore::new`]; `get(h)` returns bytes
/// whose keccak-256 is `h`. The bytes themselves are not checked: they are decoded (and rejected if
/// malformed) only when a trie opened from this store reaches them. All nodes live in one buffer.
#[derive(Clone, Default)]
pub struct NodeStore {
    bytes: Vec<u8>,
    index: HashMap<B256, (usize, usize), BuildHasherDefault<KeyHasher>>,
}

impl fmt::Debug for NodeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeStore")
            .field("nodes", &self.index.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl NodeStore {
    /// Hashes and indexes `nodes`. Duplicates are kept once.
    pub fn new<'a>(nodes: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let nodes = nodes.into_iter();
        let mut store = Self::default();
        store.index.reserve(nodes.size_hint().0);
        for node in nodes {
            store.insert(node);
        }
        store
    }

    /// Adds one node (hashing it) and returns its hash.
    pub fn insert(&mut self, node: &[u8]) -> B256 {
        let hash = crate::keccak(node);
        let bytes = &mut self.bytes;
        self.index.entry(hash).or_insert_with(|| {
            let start = bytes.len();
            bytes.extend_from_slice(node);
            (start, node.len())
        });
        hash
    }

    /// Number of distinct nodes.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the store holds no node.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The node whose RLP hashes to `hash`, if the store has it.
    pub fn get(&self, hash: &B256) -> Option<&[u8]> {
        self.index
            .get(hash)
            .map(|&(start, len)| &self.bytes[start..start + len])
    }
}

/// A hasher for keys that are already keccak hashes: it takes their first 8 bytes. No random
/// seed (the zkVM guest has no entropy to spare), no SipHash rounds.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // `B256` hashes as a length prefix (`write_usize`) then its 32 bytes.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(8) ^ u64::from_le_bytes(word);
    }

    #[inline]
    fn write_usize(&mut self, _len: usize) {}
}
