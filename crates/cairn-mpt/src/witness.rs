//! Building whole tries and their witnesses on the host (for test runners that have a whole
//! pre-state, e.g. the `pre` section of Ethereum's BlockchainTests).

use crate::{SparseTrie, B256, EMPTY_ROOT_HASH};

/// The root of the trie holding `entries` (hashed key, value), and the RLP of every node a witness
/// for it carries: the root node (even when under 32 bytes) and every node of 32 bytes or more
/// (those are referenced by hash; shorter ones are embedded in their parent).
///
/// Entries with an empty value are left out (an empty value is an absent key); of entries with the
/// same key, the last wins. No entries: `(EMPTY_ROOT_HASH, vec![])`.
/// `SparseTrie::open(root, &NodeStore::new(nodes.iter().map(Vec::as_slice)))` opens the whole trie.
pub fn nodes_of(entries: impl IntoIterator<Item = (B256, Vec<u8>)>) -> (B256, Vec<Vec<u8>>) {
    let mut trie = SparseTrie::empty();
    for (key, value) in entries {
        if !value.is_empty() {
            trie.insert(&key, value)
                .expect("a trie built from empty has no digests");
        }
    }
    if trie.is_empty() {
        return (EMPTY_ROOT_HASH, Vec::new());
    }
    let root = trie.hash();
    (root, trie.witness_nodes())
}
