//! A sparse Ethereum Merkle-Patricia trie, built from witness nodes, for stateless block
//! validation natively and inside a RISC Zero guest (riscv32im: no C code, no `unsafe`).
//!
//! The trie is Ethereum's hexary "secure" trie: keys are 32-byte keccak hashes (64 nibbles),
//! values are RLP bytes (stored as RLP strings in leaves). [`NodeStore`] indexes witness nodes by
//! hash (each hashed once); [`SparseTrie::open`] decodes what a root reaches, keeping nodes the
//! witness lacks as digests; [`SparseTrie::get`], [`SparseTrie::insert`], [`SparseTrie::remove`]
//! and [`SparseTrie::hash`] then give exactly Ethereum's results, or [`TrieError::Unresolved`]
//! where the witness is too thin to know. [`nodes_of`] builds a whole trie's witness on the host.
//!
//! Costs, for the zkVM (keccak in software): `open`, `get`, `insert` and `remove` hash nothing;
//! `hash` hashes each node changed since its last call once (a changed leaf and its ancestors),
//! and nothing when nothing changed. Nodes live in one arena, nibble paths on the stack.

mod node;
mod path;
mod store;
mod trie;
pub mod witness;

pub use alloy_primitives::B256;
pub use store::NodeStore;
pub use trie::SparseTrie;
pub use witness::nodes_of;

/// The root of the empty trie: keccak-256 of the RLP of the empty string (`0x80`).
pub const EMPTY_ROOT_HASH: B256 =
    alloy_primitives::b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// What can go wrong reading or changing a sparse trie.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrieError {
    /// The operation needs the content of a node that the witness did not include.
    #[error("trie node {hash} is needed but not in the witness")]
    Unresolved {
        /// The hash of the missing node.
        hash: B256,
    },
    /// The root node is not in the witness.
    #[error("trie root node {0} is not in the witness")]
    MissingRoot(B256),
    /// A witness node is malformed or not in canonical form (what, and in which node where).
    #[error("malformed trie node: {0}")]
    Decode(String),
    /// `insert` was given an empty value (an absent key has no value: use `remove`).
    #[error("cannot insert an empty value (use remove)")]
    EmptyValue,
}

/// keccak-256, counted in tests (to check what is hashed when).
#[inline]
pub(crate) fn keccak(bytes: impl AsRef<[u8]>) -> B256 {
    #[cfg(test)]
    KECCAK_CALLS.with(|c| c.set(c.get() + 1));
    alloy_primitives::keccak256(bytes)
}

#[cfg(test)]
thread_local! {
    static KECCAK_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// keccak-256 calls made by this crate on this thread so far.
#[cfg(test)]
pub(crate) fn keccak_count() -> u64 {
    KECCAK_CALLS.with(|c| c.get())
}
