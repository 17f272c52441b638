//! Witness nodes are untrusted bytes: every malformation is a `TrieError::Decode` saying what is
//! wrong, never a panic.

use alloy_primitives::keccak256;
use alloy_rlp::Header;
use cairn_mpt::{nodes_of, NodeStore, SparseTrie, TrieError, B256};
use proptest::prelude::*;

fn string(bytes: &[u8]) -> Vec<u8> {
    alloy_rlp::encode(bytes)
}

fn list(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    Header {
        list: true,
        payload_length: items.iter().map(Vec::len).sum(),
    }
    .encode(&mut out);
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// The hex-prefix encoding of `nibbles`, as an RLP string.
fn hp(leaf: bool, nibbles: &[u8]) -> Vec<u8> {
    let flag = if leaf { 2 } else { 0 };
    let mut out = Vec::new();
    let rest = if nibbles.len() % 2 == 1 {
        out.push(((flag | 1) << 4) | nibbles[0]);
        &nibbles[1..]
    } else {
        out.push(flag << 4);
        nibbles
    };
    out.extend(rest.chunks(2).map(|p| (p[0] << 4) | p[1]));
    string(&out)
}

fn hash_ref(hash: B256) -> Vec<u8> {
    string(hash.as_slice())
}

/// A leaf at nibble depth `depth` (its path runs to nibble 64).
fn leaf(depth: usize, value: &[u8]) -> Vec<u8> {
    list(&[hp(true, &vec![7; 64 - depth]), string(value)])
}

/// A branch with these children (by slot) and no value.
fn branch(children: &[(usize, Vec<u8>)]) -> Vec<u8> {
    let mut items = vec![vec![0x80]; 17];
    for (slot, child) in children {
        items[*slot] = child.clone();
    }
    list(&items)
}

fn some_hash(n: u8) -> Vec<u8> {
    hash_ref(keccak256([n]))
}

fn open_as_root(root_node: &[u8], extra: &[Vec<u8>]) -> Result<SparseTrie, TrieError> {
    let mut nodes: Vec<&[u8]> = vec![root_node];
    nodes.extend(extra.iter().map(Vec::as_slice));
    SparseTrie::open(keccak256(root_node), &NodeStore::new(nodes))
}

/// A malformed-node case: name, root node, other witness nodes, what the error must say.
type Case = (&'static str, Vec<u8>, Vec<Vec<u8>>, &'static str);

#[test]
fn malformed_nodes_are_decode_errors() {
    let valid_leaf = leaf(0, b"value");
    let short_node = list(&[hp(true, &[]), string(&[1])]); // 3 bytes: must be embedded
    let not_a_list = string(&[9; 40]);
    let wrong_depth_leaf = leaf(0, &[1; 10]); // 64 nibbles, but found at depth 1
    let mut nested = vec![0xc0];
    for _ in 0..2_000 {
        nested = list(&[nested]);
    }
    let mut trailing = valid_leaf.clone();
    trailing.push(0);
    let mut bad_value = vec![vec![0x80]; 16];
    bad_value.push(string(b"v"));
    let mut list_value = vec![vec![0x80]; 16];
    list_value.push(vec![0xc0]);

    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("empty input", vec![], vec![], "bad RLP"),
        ("not RLP", vec![0xff], vec![], "bad RLP"),
        ("truncated list", vec![0xc5, 0x01], vec![], "bad RLP"),
        ("non-canonical length", vec![0xf8, 0x03, 0x80, 0x80, 0x80], vec![], "bad RLP"),
        ("non-canonical single byte", list(&[vec![0x81, 0x05], string(&[1])]), vec![], "bad RLP in item 0"),
        ("item overruns the list", vec![0xc3, 0x85, 0x01, 0x02], vec![], "bad RLP in item 0"),
        ("a string, not a list", string(b"abc"), vec![], "not a list"),
        ("trailing bytes", trailing, vec![], "1 bytes after the node"),
        ("empty list", vec![0xc0], vec![], "0 items"),
        ("one item", list(&[string(&[0x20])]), vec![], "1 items"),
        ("three items", list(&[vec![0x80], vec![0x80], vec![0x80]]), vec![], "3 items"),
        ("branch of 16 items", list(&vec![vec![0x80]; 16]), vec![], "16 items"),
        ("branch of 18 items", list(&vec![vec![0x80]; 18]), vec![], "more than 17 items"),
        ("deeply nested lists", nested, vec![], "1 items"),
        ("hex-prefix flag 4", list(&[string(&[0x40; 33]), string(b"v")]), vec![], "flag"),
        ("even path with a padding nibble", list(&[string(&[0x21; 33]), string(b"v")]), vec![], "padding"),
        ("empty hex-prefix", list(&[string(&[]), string(b"v")]), vec![], "empty hex-prefix"),
        ("path is a list", list(&[vec![0xc0], string(b"v")]), vec![], "path is not an RLP string"),
        ("leaf path ends before 64", list(&[hp(true, &[1; 62]), string(b"v")]), vec![], "does not end at 64"),
        ("path over 64 nibbles", list(&[hp(true, &[1; 66]), string(b"v")]), vec![], "longer than 64"),
        ("leaf value is a list", list(&[hp(true, &[1; 64]), vec![0xc0]]), vec![], "value is not an RLP string"),
        ("leaf with an empty value", list(&[hp(true, &[1; 64]), string(&[])]), vec![], "empty value"),
        ("extension with an empty path", list(&[hp(false, &[]), some_hash(1)]), vec![], "empty path"),
        ("extension reaching nibble 64", list(&[hp(false, &[1; 64]), some_hash(1)]), vec![], "reaches 64"),
        ("extension with an empty child", list(&[hp(false, &[1, 2]), string(&[])]), vec![], "empty child"),
        ("extension child is a leaf", list(&[hp(false, &[3; 62]), leaf(62, &[1])]), vec![], "not a branch"),
        ("child reference of 20 bytes", branch(&[(0, string(&[7; 20])), (1, some_hash(1))]), vec![], "20-byte string"),
        ("child reference of 1 byte", branch(&[(0, vec![0x05]), (1, some_hash(1))]), vec![], "1-byte string"),
        ("embedded node of 32 bytes or more", branch(&[(0, leaf(1, &[1])), (1, some_hash(1))]), vec![], "embedded node of"),
        ("invalid embedded node", branch(&[(0, vec![0xc1, 0x80]), (1, some_hash(1))]), vec![], "1 items"),
        ("branch with a value", list(&bad_value), vec![], "branch with a value"),
        ("branch with a list as value", list(&list_value), vec![], "branch with a value"),
        ("branch with one child", branch(&[(3, some_hash(1))]), vec![], "fewer than 2 children"),
        ("branch with no child", branch(&[]), vec![], "fewer than 2 children"),
        ("short node referenced by hash", branch(&[(0, hash_ref(keccak256(&short_node))), (1, some_hash(1))]), vec![short_node.clone()], "must be embedded"),
        ("malformed node below the root", branch(&[(0, hash_ref(keccak256(&not_a_list))), (1, some_hash(1))]), vec![not_a_list.clone()], "not a list"),
        ("leaf with a path for another depth", branch(&[(0, hash_ref(keccak256(&wrong_depth_leaf))), (1, some_hash(1))]), vec![wrong_depth_leaf.clone()], "does not end at 64"),
    ];
    for (name, root, extra, expected) in cases {
        match open_as_root(&root, &extra) {
            Err(TrieError::Decode(msg)) => {
                assert!(msg.contains(expected), "{name}: {msg:?} lacks {expected:?}");
                assert!(msg.contains("at nibble depth"), "{name}: {msg:?}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// A chain of branches 70 deep (each with a digest beside the next): nothing is deeper than 64
/// nibbles in a trie of 32-byte keys.
#[test]
fn branches_below_nibble_64_are_rejected() {
    let mut nodes = Vec::new();
    let mut below = branch(&[(0, some_hash(1)), (1, some_hash(2))]);
    for _ in 0..70 {
        let node = branch(&[(0, hash_ref(keccak256(&below))), (1, some_hash(3))]);
        nodes.push(below);
        below = node;
    }
    let root = keccak256(&below);
    nodes.push(below);
    let err = SparseTrie::open(root, &NodeStore::new(nodes.iter().map(Vec::as_slice))).unwrap_err();
    assert!(
        matches!(&err, TrieError::Decode(m) if m.contains("branch below 64 nibbles")),
        "{err}"
    );
}

/// Branches whose two children are the same node, 40 levels: 2^40 paths over 41 nodes. Opening
/// stops once more nodes are reached than the witness holds.
#[test]
fn node_dags_are_rejected() {
    let mut nodes = Vec::new();
    let mut below = leaf(40, &[1; 40]);
    for _ in 0..40 {
        let h = hash_ref(keccak256(&below));
        let node = branch(&[(0, h.clone()), (1, h)]);
        nodes.push(below);
        below = node;
    }
    let root = keccak256(&below);
    nodes.push(below);
    let err = SparseTrie::open(root, &NodeStore::new(nodes.iter().map(Vec::as_slice))).unwrap_err();
    assert!(
        matches!(&err, TrieError::Decode(m) if m.contains("reached twice")),
        "{err}"
    );
}

/// The well-formed nodes the helpers above build do open (so the table tests what it says).
#[test]
fn the_helpers_build_valid_nodes() {
    let root = branch(&[
        (0, some_hash(1)),
        (5, hash_ref(keccak256(leaf(1, &[1; 40])))),
    ]);
    let trie = open_as_root(&root, &[leaf(1, &[1; 40])]).unwrap();
    let mut key = [0x77u8; 32];
    key[0] = 0x57;
    assert_eq!(trie.get(&B256::from(key)).unwrap(), Some(&[1; 40][..]));
    assert!(open_as_root(&leaf(0, b"value"), &[]).is_ok());
    let ext = list(&[
        hp(false, &[3; 62]),
        branch(&[
            (1, list(&[hp(true, &[2]), string(&[1])])),
            (2, list(&[hp(true, &[2]), string(&[2])])),
        ]),
    ]);
    assert!(
        open_as_root(&ext, &[]).is_ok(),
        "an extension to an embedded branch"
    );
}

proptest! {
    /// Arbitrary bytes as a root node: an error or a trie, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = open_as_root(&bytes, &[]);
    }

    /// Valid witnesses with a byte changed, inserted or cut: opening and then using whatever opens
    /// never panics.
    #[test]
    fn damaged_witnesses_never_panic(
        keys in prop::collection::vec(any::<[u8; 32]>(), 1..20),
        value_len in 1usize..60,
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        how in 0u8..3,
    ) {
        let keys: Vec<B256> = keys.into_iter().map(B256::from).collect();
        let (_, mut nodes) = nodes_of(keys.iter().map(|k| (*k, vec![0x33; value_len])));
        let i = which.index(nodes.len());
        let node = &mut nodes[i];
        let pos = at.index(node.len());
        match how {
            0 => node[pos] ^= byte | 1,
            1 => node.insert(pos, byte),
            _ => node.truncate(pos),
        }
        let damaged = keccak256(&nodes[i]);
        let store = NodeStore::new(nodes.iter().map(Vec::as_slice));
        // Open at the damaged node (as if it were a root) and at the real root.
        for root in [damaged, keccak256(&nodes[0])] {
            if let Ok(mut trie) = SparseTrie::open(root, &store) {
                for k in &keys {
                    let _ = trie.get(k);
                    let _ = trie.insert(k, vec![1]);
                }
                for k in &keys {
                    let _ = trie.remove(k);
                }
                let _ = trie.hash();
            }
        }
    }
}
