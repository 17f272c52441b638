//! Trie nodes in an arena, their RLP encoding, and the decoder for untrusted witness nodes.

use crate::path::{Path, KEY_NIBBLES};
use crate::store::NodeStore;
use crate::TrieError;
use alloy_primitives::B256;
use alloy_rlp::{Encodable, Header, EMPTY_STRING_CODE};
use core::fmt;

/// Index of a node in a trie's arena.
pub(crate) type Idx = u32;
/// An absent branch child.
pub(crate) const NONE: Idx = Idx::MAX;

/// How a parent refers to a node: its RLP when that is shorter than 32 bytes (embedded), else the
/// keccak-256 of its RLP. `len == 0` means "not computed yet" (the node changed since).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeRef {
    len: u8,
    bytes: [u8; 32],
}

impl fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.len {
            0 => f.write_str("stale"),
            32 => write!(f, "hash({})", B256::from(self.bytes)),
            n => write!(
                f,
                "inline({})",
                alloy_primitives::hex::encode(&self.bytes[..n as usize])
            ),
        }
    }
}

impl NodeRef {
    pub(crate) const STALE: Self = Self {
        len: 0,
        bytes: [0; 32],
    };

    pub(crate) fn hash(hash: B256) -> Self {
        Self {
            len: 32,
            bytes: hash.0,
        }
    }

    /// The reference of a node whose RLP is `rlp`, given its hash if already known.
    pub(crate) fn of_rlp(rlp: &[u8], known_hash: Option<B256>) -> Self {
        if rlp.len() < 32 {
            let mut bytes = [0u8; 32];
            bytes[..rlp.len()].copy_from_slice(rlp);
            Self {
                len: rlp.len() as u8,
                bytes,
            }
        } else {
            Self::hash(known_hash.unwrap_or_else(|| crate::keccak(rlp)))
        }
    }

    #[inline]
    pub(crate) fn is_stale(&self) -> bool {
        self.len == 0
    }

    /// The embedded RLP, or `None` for a hash reference.
    pub(crate) fn inline(&self) -> Option<&[u8]> {
        (self.len < 32).then(|| &self.bytes[..self.len as usize])
    }

    /// The hash, or `None` for an embedded node.
    pub(crate) fn as_hash(&self) -> Option<B256> {
        (self.len == 32).then_some(B256::from(self.bytes))
    }

    /// Length of this reference as an item of the parent's RLP list.
    #[inline]
    fn item_len(&self) -> usize {
        debug_assert!(!self.is_stale());
        if self.len == 32 {
            33
        } else {
            self.len as usize
        }
    }

    fn encode_item(&self, out: &mut Vec<u8>) {
        debug_assert!(!self.is_stale());
        if self.len == 32 {
            out.push(EMPTY_STRING_CODE + 32);
            out.extend_from_slice(&self.bytes);
        } else {
            out.extend_from_slice(&self.bytes[..self.len as usize]);
        }
    }
}

/// What a node is.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// The empty trie (only ever the root).
    Empty,
    /// A leaf: the rest of the key and the value.
    Leaf { path: Path, value: Vec<u8> },
    /// An extension: a non-empty shared path and its child (a branch, or a digest of one).
    Extension { path: Path, child: Idx },
    /// A branch: up to 16 children (`NONE` where absent), at least two present, no value (keys all
    /// have 64 nibbles).
    Branch { children: [Idx; 16] },
    /// A node known only by its hash: the witness did not include it.
    Digest(B256),
}

/// An arena node: what it is and its cached reference.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    pub(crate) rref: NodeRef,
}

impl Node {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            kind,
            rref: NodeRef::STALE,
        }
    }
}

/// Number of present children of a branch.
pub(crate) fn child_count(children: &[Idx; 16]) -> usize {
    children.iter().filter(|&&c| c != NONE).count()
}

/// Brings the cached reference of `idx` and of everything below it up to date: only nodes marked
/// stale are encoded (and hashed when 32 bytes or longer). `buf` is scratch space.
pub(crate) fn refresh(nodes: &mut [Node], idx: Idx, buf: &mut Vec<u8>) {
    if !nodes[idx as usize].rref.is_stale() {
        return;
    }
    match &nodes[idx as usize].kind {
        Kind::Extension { child, .. } => refresh(nodes, *child, buf),
        Kind::Branch { children } => {
            let children = *children;
            for c in children {
                if c != NONE {
                    refresh(nodes, c, buf);
                }
            }
        }
        Kind::Empty | Kind::Leaf { .. } | Kind::Digest(_) => {}
    }
    buf.clear();
    encode(nodes, &nodes[idx as usize].kind, buf);
    nodes[idx as usize].rref = NodeRef::of_rlp(buf, None);
}

/// Appends the RLP of a node to `out`; its children's references must be up to date.
pub(crate) fn encode(nodes: &[Node], kind: &Kind, out: &mut Vec<u8>) {
    match kind {
        Kind::Empty => out.push(EMPTY_STRING_CODE),
        Kind::Leaf { path, value } => {
            let (hp, n) = path.hex_prefix(true);
            let hp = &hp[..n];
            let payload_length = hp.length() + value.as_slice().length();
            Header {
                list: true,
                payload_length,
            }
            .encode(out);
            hp.encode(out);
            value.as_slice().encode(out);
        }
        Kind::Extension { path, child } => {
            let (hp, n) = path.hex_prefix(false);
            let hp = &hp[..n];
            let child = &nodes[*child as usize].rref;
            let payload_length = hp.length() + child.item_len();
            Header {
                list: true,
                payload_length,
            }
            .encode(out);
            hp.encode(out);
            child.encode_item(out);
        }
        Kind::Branch { children } => {
            let payload_length = 1 + children
                .iter()
                .map(|&c| {
                    if c == NONE {
                        1
                    } else {
                        nodes[c as usize].rref.item_len()
                    }
                })
                .sum::<usize>();
            Header {
                list: true,
                payload_length,
            }
            .encode(out);
            for &c in children {
                if c == NONE {
                    out.push(EMPTY_STRING_CODE);
                } else {
                    nodes[c as usize].rref.encode_item(out);
                }
            }
            out.push(EMPTY_STRING_CODE);
        }
        Kind::Digest(hash) => {
            // Only reached for a digest root (never in practice): its reference is its hash.
            out.push(EMPTY_STRING_CODE + 32);
            out.extend_from_slice(hash.as_slice());
        }
    }
}

/// Decodes the nodes reachable from a root into an arena. Every node is untrusted: any
/// malformation is a [`TrieError::Decode`], never a panic.
pub(crate) struct Decoder<'s> {
    pub(crate) store: &'s NodeStore,
    pub(crate) nodes: Vec<Node>,
    /// Hash-referenced nodes decoded so far. In a real trie each witness node is reached at most
    /// once (two equal subtrees would need a keccak partial collision), so reaching more than the
    /// store holds means a crafted DAG that would otherwise take exponential time to unfold.
    fetched: usize,
}

impl<'s> Decoder<'s> {
    pub(crate) fn new(store: &'s NodeStore) -> Self {
        Self {
            store,
            nodes: Vec::new(),
            fetched: 0,
        }
    }

    fn push(&mut self, node: Node) -> Idx {
        self.nodes.push(node);
        (self.nodes.len() - 1) as Idx
    }

    /// Decodes the witness node `hash` (found in the store as `rlp`) at nibble depth `depth`.
    pub(crate) fn hashed(
        &mut self,
        hash: B256,
        rlp: &[u8],
        depth: usize,
    ) -> Result<Idx, TrieError> {
        self.fetched += 1;
        if self.fetched > self.store.len() {
            return Err(bad(
                &hash,
                depth,
                "a witness node is reached twice (the nodes form a DAG)",
            ));
        }
        self.node(rlp, depth, &hash, NodeRef::of_rlp(rlp, Some(hash)))
    }

    /// Decodes one node, `rlp` (the whole of it: trailing bytes are an error), found at nibble
    /// depth `depth` inside witness node `origin` (for messages).
    fn node(
        &mut self,
        rlp: &[u8],
        depth: usize,
        origin: &B256,
        rref: NodeRef,
    ) -> Result<Idx, TrieError> {
        let mut buf = rlp;
        let header = Header::decode(&mut buf)
            .map_err(|e| bad(origin, depth, format_args!("bad RLP: {e}")))?;
        if !header.list {
            return Err(bad(origin, depth, "node is an RLP string, not a list"));
        }
        if header.payload_length != buf.len() {
            return Err(bad(
                origin,
                depth,
                format_args!("{} bytes after the node", buf.len() - header.payload_length),
            ));
        }
        let mut items: [&[u8]; 17] = [&[]; 17];
        let mut count = 0;
        while !buf.is_empty() {
            if count == 17 {
                return Err(bad(origin, depth, "node has more than 17 items"));
            }
            let start = buf;
            let h = Header::decode(&mut buf)
                .map_err(|e| bad(origin, depth, format_args!("bad RLP in item {count}: {e}")))?;
            buf = &buf[h.payload_length..];
            items[count] = &start[..start.len() - buf.len()];
            count += 1;
        }
        let kind = match count {
            2 => self.short(items[0], items[1], depth, origin)?,
            17 => self.branch(&items, depth, origin)?,
            n => {
                return Err(bad(
                    origin,
                    depth,
                    format_args!("node has {n} items (a leaf or extension has 2, a branch 17)"),
                ))
            }
        };
        Ok(self.push(Node { kind, rref }))
    }

    /// A leaf or an extension.
    fn short(
        &mut self,
        hp: &[u8],
        second: &[u8],
        depth: usize,
        origin: &B256,
    ) -> Result<Kind, TrieError> {
        let hp = string(hp)
            .ok_or_else(|| bad(origin, depth, "leaf/extension path is not an RLP string"))?;
        let (leaf, path) = Path::from_hex_prefix(hp).map_err(|e| bad(origin, depth, e))?;
        if leaf {
            if depth + path.len() != KEY_NIBBLES {
                return Err(bad(
                    origin,
                    depth,
                    format_args!(
                        "leaf path of {} nibbles at depth {depth} does not end at 64",
                        path.len()
                    ),
                ));
            }
            let value = string(second)
                .ok_or_else(|| bad(origin, depth, "leaf value is not an RLP string"))?;
            if value.is_empty() {
                return Err(bad(origin, depth, "leaf with an empty value"));
            }
            Ok(Kind::Leaf {
                path,
                value: value.to_vec(),
            })
        } else {
            if path.is_empty() {
                return Err(bad(origin, depth, "extension with an empty path"));
            }
            if depth + path.len() >= KEY_NIBBLES {
                return Err(bad(
                    origin,
                    depth,
                    format_args!(
                        "extension path of {} nibbles at depth {depth} reaches 64",
                        path.len()
                    ),
                ));
            }
            let child = self.child(second, depth + path.len(), origin)?;
            match self.nodes.get(child as usize).map(|n| &n.kind) {
                Some(Kind::Branch { .. } | Kind::Digest(_)) => Ok(Kind::Extension { path, child }),
                Some(_) => Err(bad(origin, depth, "extension child is not a branch")),
                None => Err(bad(origin, depth, "extension with an empty child")),
            }
        }
    }

    fn branch(
        &mut self,
        items: &[&[u8]; 17],
        depth: usize,
        origin: &B256,
    ) -> Result<Kind, TrieError> {
        if depth >= KEY_NIBBLES {
            return Err(bad(origin, depth, "branch below 64 nibbles"));
        }
        if items[16] != [EMPTY_STRING_CODE] {
            return Err(bad(
                origin,
                depth,
                "branch with a value (keys are all 64 nibbles)",
            ));
        }
        let mut children = [NONE; 16];
        for (slot, item) in children.iter_mut().zip(items) {
            *slot = self.child(item, depth + 1, origin)?;
        }
        if child_count(&children) < 2 {
            return Err(bad(origin, depth, "branch with fewer than 2 children"));
        }
        Ok(Kind::Branch { children })
    }

    /// A child reference: empty (`NONE`), a 32-byte hash (decoded from the store if there, else a
    /// digest), or an embedded node of under 32 bytes.
    fn child(&mut self, item: &[u8], depth: usize, origin: &B256) -> Result<Idx, TrieError> {
        let mut buf = item;
        // `item` was split off by `Header::decode`, so this cannot fail; map it anyway.
        let header = Header::decode(&mut buf)
            .map_err(|e| bad(origin, depth, format_args!("bad RLP: {e}")))?;
        if header.list {
            if item.len() >= 32 {
                return Err(bad(
                    origin,
                    depth,
                    format_args!("embedded node of {} bytes (must be under 32)", item.len()),
                ));
            }
            return self.node(item, depth, origin, NodeRef::of_rlp(item, None));
        }
        match header.payload_length {
            0 => Ok(NONE),
            32 => {
                let hash = B256::from_slice(&buf[..32]);
                match self.store.get(&hash) {
                    Some(rlp) if rlp.len() < 32 => Err(bad(
                        &hash,
                        depth,
                        format_args!(
                            "node of {} bytes referenced by hash (must be embedded)",
                            rlp.len()
                        ),
                    )),
                    Some(rlp) => self.hashed(hash, rlp, depth),
                    None => Ok(self.push(Node {
                        kind: Kind::Digest(hash),
                        rref: NodeRef::hash(hash),
                    })),
                }
            }
            n => Err(bad(
                origin,
                depth,
                format_args!("child reference is a {n}-byte string (must be 0 or 32)"),
            )),
        }
    }
}

/// The payload of an RLP string item, or `None` if the item is a list.
fn string(item: &[u8]) -> Option<&[u8]> {
    let mut buf = item;
    Header::decode_bytes(&mut buf, false).ok()
}

fn bad(origin: &B256, depth: usize, what: impl fmt::Display) -> TrieError {
    TrieError::Decode(format!(
        "in witness node {origin} at nibble depth {depth}: {what}"
    ))
}
