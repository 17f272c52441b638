//! The sparse trie: read, insert, remove, root.

use crate::node::{child_count, encode, refresh, Decoder, Idx, Kind, Node, NodeRef, NONE};
use crate::path::{key_nibble, Path};
use crate::store::NodeStore;
use crate::{TrieError, EMPTY_ROOT_HASH};
use alloy_primitives::B256;
use core::mem;

/// A sparse Ethereum Merkle-Patricia trie over 32-byte (hashed) keys.
///
/// Parts of the trie that the witness did not include are kept as digests (their hash). Reads,
/// writes and the root are exact wherever the trie is resolved; anything that needs a digest's
/// content fails with [`TrieError::Unresolved`] naming it, and leaves the trie unchanged.
///
/// Nodes live in one arena (no per-node allocation but leaf values) and each caches its reference
/// (embedded RLP or hash): [`SparseTrie::hash`] re-encodes and re-hashes only the nodes changed since
/// the last call, and nodes opened from a witness start with the hash the store computed.
#[derive(Clone, Debug)]
pub struct SparseTrie {
    nodes: Vec<Node>,
    root: Idx,
    /// The root hash, while no change has been made since it was known.
    root_hash: Option<B256>,
}

/// What a removal did to a subtree.
enum Removed {
    /// The key was not there: nothing changed.
    Absent,
    /// The subtree changed (and is still non-empty).
    Changed,
    /// The subtree was exactly the removed leaf: the parent must drop it. The node itself is left
    /// untouched so that the parent can still fail without having changed anything.
    Emptied,
}

impl Default for SparseTrie {
    fn default() -> Self {
        Self::empty()
    }
}

impl SparseTrie {
    /// The empty trie (root [`EMPTY_ROOT_HASH`]).
    pub fn empty() -> Self {
        Self {
            nodes: vec![Node::new(Kind::Empty)],
            root: 0,
            root_hash: Some(EMPTY_ROOT_HASH),
        }
    }

    /// Opens the trie with this root: the root node, and every node reachable from it through the
    /// store, decoded; children whose node is not in the store stay unresolved (a digest).
    /// `root == EMPTY_ROOT_HASH` gives an empty trie. Nothing is hashed: each node keeps the hash
    /// the store computed.
    ///
    /// Errors: [`TrieError::MissingRoot`] if the root node is not in the store,
    /// [`TrieError::Decode`] if any reached node is malformed (or not in canonical form: a branch
    /// with a value or under two children, an extension not followed by a branch, a leaf whose
    /// path does not end at 64 nibbles, a node of under 32 bytes referenced by hash, ...).
    pub fn open(root: B256, store: &NodeStore) -> Result<Self, TrieError> {
        if root == EMPTY_ROOT_HASH {
            return Ok(Self::empty());
        }
        let rlp = store.get(&root).ok_or(TrieError::MissingRoot(root))?;
        let mut decoder = Decoder::new(store);
        let idx = decoder.hashed(root, rlp, 0)?;
        Ok(Self {
            nodes: decoder.nodes,
            root: idx,
            root_hash: Some(root),
        })
    }

    /// Whether the trie holds no key.
    pub fn is_empty(&self) -> bool {
        matches!(self.nodes[self.root as usize].kind, Kind::Empty)
    }

    /// The value at `key` (a 32-byte hashed key). `Ok(None)` only when the trie proves the key
    /// absent; `Err(TrieError::Unresolved { .. })` when the path runs into a node the witness did
    /// not include.
    pub fn get(&self, key: &B256) -> Result<Option<&[u8]>, TrieError> {
        let mut idx = self.root;
        let mut depth = 0;
        loop {
            match &self.nodes[idx as usize].kind {
                Kind::Empty => return Ok(None),
                Kind::Digest(hash) => return Err(TrieError::Unresolved { hash: *hash }),
                Kind::Leaf { path, value } => {
                    return Ok(path
                        .is_prefix_of_key(key, depth)
                        .then_some(value.as_slice()));
                }
                Kind::Extension { path, child } => {
                    if !path.is_prefix_of_key(key, depth) {
                        return Ok(None);
                    }
                    depth += path.len();
                    idx = *child;
                }
                Kind::Branch { children } => {
                    let c = children[key_nibble(key, depth) as usize];
                    if c == NONE {
                        return Ok(None);
                    }
                    depth += 1;
                    idx = c;
                }
            }
        }
    }

    /// Sets `key` to `value` (non-empty: [`TrieError::EmptyValue`] otherwise; to delete, use
    /// [`SparseTrie::remove`]). Setting a key to the value it already has changes nothing.
    ///
    /// Errors with [`TrieError::Unresolved`] when the key's path runs into a digest; the trie is then
    /// unchanged.
    pub fn insert(&mut self, key: &B256, value: Vec<u8>) -> Result<(), TrieError> {
        if value.is_empty() {
            return Err(TrieError::EmptyValue);
        }
        if self.insert_at(self.root, key, 0, value)? {
            self.root_hash = None;
        }
        Ok(())
    }

    /// Removes `key`; removing an absent key (proven absent) is `Ok` and changes nothing. A branch
    /// left with one child is merged with that child (and an extension above it with the result),
    /// keeping the trie canonical, so the root is the one Ethereum computes.
    ///
    /// Errors with [`TrieError::Unresolved`] when the key's path runs into a digest, or when the
    /// merge needs the remaining child and that is a digest; the trie is then unchanged.
    pub fn remove(&mut self, key: &B256) -> Result<(), TrieError> {
        match self.remove_at(self.root, key, 0)? {
            Removed::Absent => {}
            Removed::Changed => self.root_hash = None,
            Removed::Emptied => {
                self.nodes[self.root as usize] = Node::new(Kind::Empty);
                self.root_hash = Some(EMPTY_ROOT_HASH);
            }
        }
        Ok(())
    }

    /// The root hash. Each node's reference is cached: only nodes changed since the last call
    /// are re-encoded and (when their RLP is 32 bytes or more) re-hashed, plus the root when its RLP
    /// is under 32 bytes (the root is always hashed).
    pub fn hash(&mut self) -> B256 {
        if let Some(hash) = self.root_hash {
            return hash;
        }
        let hash = if self.is_empty() {
            EMPTY_ROOT_HASH
        } else {
            let mut buf = Vec::with_capacity(600);
            refresh(&mut self.nodes, self.root, &mut buf);
            let rref = self.nodes[self.root as usize].rref;
            match rref.inline() {
                Some(rlp) => crate::keccak(rlp),
                None => rref.as_hash().expect("a reference is inline or a hash"),
            }
        };
        self.root_hash = Some(hash);
        hash
    }

    /// The RLP of every resolved node that a witness for this trie carries: the root node (unless
    /// the trie is empty) and every node referenced by hash (embedded nodes are inside their
    /// parent). Digests are skipped. Brings the cached references up to date, like
    /// [`SparseTrie::hash`].
    pub fn witness_nodes(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if self.is_empty() {
            return out;
        }
        self.hash();
        let mut stack = vec![(self.root, true)];
        while let Some((idx, is_root)) = stack.pop() {
            let node = &self.nodes[idx as usize];
            match &node.kind {
                Kind::Extension { child, .. } => stack.push((*child, false)),
                Kind::Branch { children } => {
                    stack.extend(children.iter().filter(|&&c| c != NONE).map(|&c| (c, false)))
                }
                Kind::Digest(_) => continue,
                Kind::Empty | Kind::Leaf { .. } => {}
            }
            if is_root || node.rref.inline().is_none() {
                let mut rlp = Vec::new();
                encode(&self.nodes, &node.kind, &mut rlp);
                out.push(rlp);
            }
        }
        out
    }

    fn push(&mut self, kind: Kind) -> Idx {
        self.nodes.push(Node::new(kind));
        (self.nodes.len() - 1) as Idx
    }

    /// Replaces node `idx` with `kind`, marking it changed.
    fn set(&mut self, idx: Idx, kind: Kind) {
        self.nodes[idx as usize] = Node::new(kind);
    }

    fn mark_changed(&mut self, idx: Idx) {
        self.nodes[idx as usize].rref = NodeRef::STALE;
    }

    /// A branch with `children`, under an extension with `prefix` unless that is empty, in place
    /// of node `idx`.
    fn set_branch(&mut self, idx: Idx, prefix: Path, children: [Idx; 16]) {
        if prefix.is_empty() {
            self.set(idx, Kind::Branch { children });
        } else {
            let branch = self.push(Kind::Branch { children });
            self.set(
                idx,
                Kind::Extension {
                    path: prefix,
                    child: branch,
                },
            );
        }
    }

    /// Inserts into the subtree at `idx`, found at nibble `depth` of `key`. Returns whether
    /// anything changed. Fails only before changing anything (on reaching a digest).
    fn insert_at(
        &mut self,
        idx: Idx,
        key: &B256,
        depth: usize,
        value: Vec<u8>,
    ) -> Result<bool, TrieError> {
        match &mut self.nodes[idx as usize].kind {
            Kind::Empty => {
                self.set(
                    idx,
                    Kind::Leaf {
                        path: Path::key_suffix(key, depth),
                        value,
                    },
                );
                Ok(true)
            }
            Kind::Digest(hash) => Err(TrieError::Unresolved { hash: *hash }),
            Kind::Leaf { path, value: old } => {
                let common = path.common_prefix_with_key(key, depth);
                if common == path.len() {
                    // Same key (a leaf's path always runs to nibble 64).
                    if *old == value {
                        return Ok(false);
                    }
                    *old = value;
                    self.mark_changed(idx);
                    return Ok(true);
                }
                let path = *path;
                let old = mem::take(old);
                let mut children = [NONE; 16];
                children[path.at(common) as usize] = self.push(Kind::Leaf {
                    path: path.slice(common + 1, path.len()),
                    value: old,
                });
                children[key_nibble(key, depth + common) as usize] = self.push(Kind::Leaf {
                    path: Path::key_suffix(key, depth + common + 1),
                    value,
                });
                self.set_branch(idx, path.slice(0, common), children);
                Ok(true)
            }
            Kind::Extension { path, child } => {
                let (path, child) = (*path, *child);
                let common = path.common_prefix_with_key(key, depth);
                if common == path.len() {
                    let changed = self.insert_at(child, key, depth + common, value)?;
                    if changed {
                        self.mark_changed(idx);
                    }
                    return Ok(changed);
                }
                let mut children = [NONE; 16];
                children[path.at(common) as usize] = if common + 1 < path.len() {
                    self.push(Kind::Extension {
                        path: path.slice(common + 1, path.len()),
                        child,
                    })
                } else {
                    child // the branch moves up unchanged: its cached reference stays valid
                };
                children[key_nibble(key, depth + common) as usize] = self.push(Kind::Leaf {
                    path: Path::key_suffix(key, depth + common + 1),
                    value,
                });
                self.set_branch(idx, path.slice(0, common), children);
                Ok(true)
            }
            Kind::Branch { children } => {
                let nibble = key_nibble(key, depth) as usize;
                let child = children[nibble];
                if child == NONE {
                    let leaf = self.push(Kind::Leaf {
                        path: Path::key_suffix(key, depth + 1),
                        value,
                    });
                    if let Kind::Branch { children } = &mut self.nodes[idx as usize].kind {
                        children[nibble] = leaf;
                    }
                    self.mark_changed(idx);
                    return Ok(true);
                }
                let changed = self.insert_at(child, key, depth + 1, value)?;
                if changed {
                    self.mark_changed(idx);
                }
                Ok(changed)
            }
        }
    }

    /// Removes `key` from the subtree at `idx`, found at nibble `depth`. Fails only before changing
    /// anything: on reaching a digest, or when a branch would need to merge with a digest.
    fn remove_at(&mut self, idx: Idx, key: &B256, depth: usize) -> Result<Removed, TrieError> {
        match &self.nodes[idx as usize].kind {
            Kind::Empty => Ok(Removed::Absent),
            Kind::Digest(hash) => Err(TrieError::Unresolved { hash: *hash }),
            Kind::Leaf { path, .. } => Ok(if path.is_prefix_of_key(key, depth) {
                Removed::Emptied
            } else {
                Removed::Absent
            }),
            Kind::Extension { path, child } => {
                let (path, child) = (*path, *child);
                if !path.is_prefix_of_key(key, depth) {
                    return Ok(Removed::Absent);
                }
                match self.remove_at(child, key, depth + path.len())? {
                    Removed::Absent => Ok(Removed::Absent),
                    // A branch is never emptied (it has two children or merges); kept for safety.
                    Removed::Emptied => Ok(Removed::Emptied),
                    Removed::Changed => {
                        // The branch below may have merged into a leaf or an extension: absorb it.
                        match &mut self.nodes[child as usize].kind {
                            Kind::Leaf { path: rest, value } => {
                                let kind = Kind::Leaf {
                                    path: path.concat(rest),
                                    value: mem::take(value),
                                };
                                self.set(idx, kind);
                            }
                            Kind::Extension {
                                path: rest,
                                child: grandchild,
                            } => {
                                let kind = Kind::Extension {
                                    path: path.concat(rest),
                                    child: *grandchild,
                                };
                                self.set(idx, kind);
                            }
                            _ => self.mark_changed(idx),
                        }
                        Ok(Removed::Changed)
                    }
                }
            }
            Kind::Branch { children } => {
                let children = *children;
                let nibble = key_nibble(key, depth) as usize;
                let child = children[nibble];
                if child == NONE {
                    return Ok(Removed::Absent);
                }
                match self.remove_at(child, key, depth + 1)? {
                    Removed::Absent => Ok(Removed::Absent),
                    Removed::Changed => {
                        self.mark_changed(idx);
                        Ok(Removed::Changed)
                    }
                    Removed::Emptied => {
                        let mut rest = children;
                        rest[nibble] = NONE;
                        match child_count(&rest) {
                            0 => Ok(Removed::Emptied), // not canonical; kept for safety
                            1 => {
                                let (m, sibling) = rest
                                    .iter()
                                    .enumerate()
                                    .find(|(_, &c)| c != NONE)
                                    .map(|(m, &c)| (m as u8, c))
                                    .expect("one child is present");
                                let kind = match &mut self.nodes[sibling as usize].kind {
                                    Kind::Digest(hash) => {
                                        return Err(TrieError::Unresolved { hash: *hash })
                                    }
                                    Kind::Leaf { path, value } => Kind::Leaf {
                                        path: path.prepend(m),
                                        value: mem::take(value),
                                    },
                                    Kind::Extension { path, child } => Kind::Extension {
                                        path: path.prepend(m),
                                        child: *child,
                                    },
                                    Kind::Branch { .. } | Kind::Empty => {
                                        let mut path = Path::default();
                                        path.push(m);
                                        Kind::Extension {
                                            path,
                                            child: sibling,
                                        }
                                    }
                                };
                                self.set(idx, kind);
                                Ok(Removed::Changed)
                            }
                            _ => {
                                self.set(idx, Kind::Branch { children: rest });
                                Ok(Removed::Changed)
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> B256 {
        let mut k = [0u8; 32];
        let bytes = alloy_primitives::hex::decode(s).unwrap();
        k[..bytes.len()].copy_from_slice(&bytes);
        B256::from(k)
    }

    /// Only changed paths are re-hashed; opening and reading hash nothing.
    #[test]
    fn hashes_only_changed_paths() {
        let mut trie = SparseTrie::empty();
        for i in 0u32..1000 {
            let k = crate::keccak(i.to_be_bytes());
            trie.insert(&k, vec![0xaa; 70]).unwrap();
        }
        let before = crate::keccak_count();
        let root = trie.hash();
        let full = crate::keccak_count() - before;
        assert!(full > 1000, "every node hashed once: {full}");

        let before = crate::keccak_count();
        assert_eq!(trie.hash(), root);
        assert_eq!(crate::keccak_count(), before, "unchanged: no hashing");

        trie.insert(&crate::keccak(7u32.to_be_bytes()), vec![0xbb; 70])
            .unwrap();
        let before = crate::keccak_count();
        trie.hash();
        let one = crate::keccak_count() - before;
        assert!(one <= 5, "one leaf and its ancestors: {one}");

        // Same value again: nothing to do.
        trie.insert(&crate::keccak(7u32.to_be_bytes()), vec![0xbb; 70])
            .unwrap();
        let before = crate::keccak_count();
        trie.hash();
        assert_eq!(crate::keccak_count(), before);

        let nodes = trie.witness_nodes();
        let store = NodeStore::new(nodes.iter().map(Vec::as_slice));
        let k = crate::keccak(500u32.to_be_bytes());
        let before = crate::keccak_count();
        let mut opened = SparseTrie::open(trie.hash(), &store).unwrap();
        assert_eq!(opened.get(&k).unwrap(), Some(&[0xaa; 70][..]));
        assert_eq!(opened.hash(), trie.hash());
        assert_eq!(
            crate::keccak_count(),
            before,
            "open, get and hash of an opened trie"
        );
        opened.insert(&k, vec![1]).unwrap();
        let root = opened.hash();
        let after = crate::keccak_count() - before;
        trie.insert(&k, vec![1]).unwrap();
        assert_eq!(root, trie.hash());
        assert!(after <= 5, "{after}");
    }

    /// With 64-nibble keys every non-empty root's RLP is 32 bytes or more (the 64 nibbles of a
    /// key are spelled out within it or behind a hash), so the root is its own reference.
    #[test]
    fn single_leaf_root() {
        let mut trie = SparseTrie::empty();
        trie.insert(&key("01"), vec![1]).unwrap();
        let nodes = trie.witness_nodes();
        assert_eq!(nodes.len(), 1);
        assert_eq!(trie.hash(), crate::keccak(&nodes[0]));
        assert_eq!(
            trie.nodes[trie.root as usize].rref.as_hash(),
            Some(trie.hash())
        );
    }

    /// The keccak cost of a block-like workload: a witness for 1,000 of 50,000 accounts, opened,
    /// read, all 1,000 updated (and 10 new), the root computed. Prints the counts
    /// (`cargo test -p cairn-mpt keccak_budget -- --nocapture`).
    #[test]
    fn keccak_budget() {
        use alloy_trie::{proof::ProofRetainer, HashBuilder, Nibbles};
        let accounts: std::collections::BTreeMap<B256, Vec<u8>> = (0u32..50_000)
            .map(|i| (alloy_primitives::keccak256(i.to_be_bytes()), vec![0x5a; 70]))
            .collect();
        let touched: Vec<B256> = accounts.keys().step_by(50).copied().collect();
        let fresh: Vec<B256> = (0u32..10)
            .map(|i| alloy_primitives::keccak256((1_000_000 + i).to_be_bytes()))
            .collect();
        let targets = touched.iter().chain(&fresh).map(Nibbles::unpack).collect();
        let mut hb = HashBuilder::default().with_proof_retainer(ProofRetainer::new(targets));
        for (k, v) in &accounts {
            hb.add_leaf(Nibbles::unpack(k), v);
        }
        let root = hb.root();
        let nodes: Vec<Vec<u8>> = hb
            .take_proof_nodes()
            .into_nodes_sorted()
            .into_iter()
            .map(|(_, n)| n.to_vec())
            .collect();

        let c0 = crate::keccak_count();
        let store = NodeStore::new(nodes.iter().map(Vec::as_slice));
        let c1 = crate::keccak_count();
        let mut trie = SparseTrie::open(root, &store).unwrap();
        for k in &touched {
            assert!(trie.get(k).unwrap().is_some());
        }
        for k in &touched {
            trie.insert(k, vec![0x6b; 70]).unwrap();
        }
        for k in &fresh {
            trie.insert(k, vec![0x6b; 70]).unwrap();
        }
        let c2 = crate::keccak_count();
        let new_root = trie.hash();
        let c3 = crate::keccak_count();
        println!(
            "witness nodes {} ({} stored): NodeStore::new {} keccaks; open+get+insert {}; hash {}; arena {} nodes",
            nodes.len(),
            store.len(),
            c1 - c0,
            c2 - c1,
            c3 - c2,
            trie.nodes.len()
        );
        assert_eq!(c2, c1, "open, get and insert hash nothing");
        assert!(
            c3 - c2 <= (store.len() + 2 * fresh.len()) as u64,
            "each node on a changed path once"
        );
        let mut expected = HashBuilder::default();
        let mut updated = accounts.clone();
        for k in touched.iter().chain(&fresh) {
            updated.insert(*k, vec![0x6b; 70]);
        }
        for (k, v) in &updated {
            expected.add_leaf(Nibbles::unpack(k), v);
        }
        assert_eq!(new_root, expected.root());
    }
}
