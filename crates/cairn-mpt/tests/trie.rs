//! The sparse trie against alloy-trie's `HashBuilder` (the oracle for Ethereum's roots): whole
//! tries, interleaved inserts and removes, tries opened from whole and from partial witnesses.

use alloy_primitives::keccak256;
use alloy_trie::{proof::ProofRetainer, HashBuilder, Nibbles};
use cairn_mpt::{nodes_of, NodeStore, SparseTrie, TrieError, B256, EMPTY_ROOT_HASH};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

type Map = BTreeMap<B256, Vec<u8>>;

/// Ethereum's root of `map`, by alloy-trie.
fn oracle_root(map: &Map) -> B256 {
    let mut hb = HashBuilder::default();
    for (k, v) in map {
        hb.add_leaf(Nibbles::unpack(k), v);
    }
    hb.root()
}

/// The nodes alloy-trie gives as proofs for `targets` (present or absent) in the trie of `map`:
/// what a real witness for reading or writing those keys holds.
fn proof_nodes(map: &Map, targets: &[B256]) -> Vec<Vec<u8>> {
    let retainer = ProofRetainer::new(targets.iter().map(Nibbles::unpack).collect());
    let mut hb = HashBuilder::default().with_proof_retainer(retainer);
    for (k, v) in map {
        hb.add_leaf(Nibbles::unpack(k), v);
    }
    hb.root();
    hb.take_proof_nodes()
        .into_nodes_sorted()
        .into_iter()
        .map(|(_, node)| node.to_vec())
        .collect()
}

fn store_of(nodes: &[Vec<u8>]) -> NodeStore {
    NodeStore::new(nodes.iter().map(Vec::as_slice))
}

/// A key built from a hex prefix, zero-padded.
fn key(hex: &str) -> B256 {
    let mut nibbles: Vec<u8> = hex
        .bytes()
        .map(|c| (c as char).to_digit(16).unwrap() as u8)
        .collect();
    nibbles.resize(64, 0);
    B256::from_slice(
        &nibbles
            .chunks(2)
            .map(|p| (p[0] << 4) | p[1])
            .collect::<Vec<_>>(),
    )
}

/// `base`'s first `shared` nibbles, then `rest`'s.
fn mix(base: &[u8; 32], rest: &[u8; 32], shared: usize) -> B256 {
    let mut out = *rest;
    out[..shared / 2].copy_from_slice(&base[..shared / 2]);
    if shared % 2 == 1 {
        out[shared / 2] = (base[shared / 2] & 0xf0) | (rest[shared / 2] & 0x0f);
    }
    B256::from(out)
}

/// Keys sharing prefixes of every length with one base key (long shared prefixes give deep
/// branches, extensions and embedded nodes), plus unrelated ones.
fn keys(max: usize) -> impl Strategy<Value = Vec<B256>> {
    let shared = prop_oneof![3 => 0..=2usize, 2 => 56..=64usize, 2 => 0..=64usize];
    (
        any::<[u8; 32]>(),
        prop::collection::vec((shared, any::<[u8; 32]>()), 0..=max),
    )
        .prop_map(|(base, ks)| ks.iter().map(|(s, r)| mix(&base, r, *s)).collect())
}

/// Values of 1 to 120 bytes; short ones make leaves embedded in their parent.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 1..=3),
        2 => prop::collection::vec(any::<u8>(), 1..=40),
        1 => prop::collection::vec(any::<u8>(), 50..=120),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    /// Insert at the pool key with this index (mod pool size).
    Insert(usize, Vec<u8>),
    Remove(usize),
}

fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            (any::<usize>(), value()).prop_map(|(i, v)| Op::Insert(i, v)),
            any::<usize>().prop_map(Op::Remove),
        ],
        0..=max,
    )
}

/// A pool of keys and the initial map (values for the first `n` of them).
fn start(max_keys: usize) -> impl Strategy<Value = (Vec<B256>, Map)> {
    (
        keys(max_keys),
        prop::collection::vec(value(), max_keys),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut pool, values, n)| {
            if pool.is_empty() {
                pool.push(B256::ZERO);
            }
            let n = n.index(pool.len() + 1);
            let map = pool
                .iter()
                .take(n)
                .zip(values)
                .map(|(k, v)| (*k, v))
                .collect();
            (pool, map)
        })
}

/// Applies `op` to both the trie and the oracle map; checks the root and every pool key.
fn apply_and_check(
    trie: &mut SparseTrie,
    map: &mut Map,
    pool: &[B256],
    op: &Op,
) -> Result<(), TestCaseError> {
    match op {
        Op::Insert(i, v) => {
            let k = pool[i % pool.len()];
            trie.insert(&k, v.clone()).unwrap();
            map.insert(k, v.clone());
        }
        Op::Remove(i) => {
            let k = pool[i % pool.len()];
            trie.remove(&k).unwrap();
            map.remove(&k);
        }
    }
    prop_assert_eq!(trie.hash(), oracle_root(map), "after {:?}", op);
    prop_assert_eq!(trie.is_empty(), map.is_empty());
    for k in pool {
        prop_assert_eq!(trie.get(k).unwrap(), map.get(k).map(Vec::as_slice));
    }
    Ok(())
}

proptest! {
    /// Inserting a key set in any order gives Ethereum's root; every key reads back; `nodes_of`
    /// gives the same root and exactly the nodes alloy-trie's proofs hold (embedded ones aside).
    #[test]
    fn built_tries_match_the_oracle((pool, map) in start(48)) {
        let mut trie = SparseTrie::empty();
        // Insert in pool order (not sorted), then once more (nothing changes).
        for k in &pool {
            if let Some(v) = map.get(k) {
                trie.insert(k, v.clone()).unwrap();
            }
        }
        let root = oracle_root(&map);
        prop_assert_eq!(trie.hash(), root);
        for (k, v) in &map {
            trie.insert(k, v.clone()).unwrap();
            prop_assert_eq!(trie.get(k).unwrap(), Some(v.as_slice()));
        }
        prop_assert_eq!(trie.hash(), root);

        let (nroot, nodes) = nodes_of(map.iter().map(|(k, v)| (*k, v.clone())));
        prop_assert_eq!(nroot, root);
        let mine: BTreeSet<Vec<u8>> = nodes.iter().cloned().collect();
        prop_assert_eq!(mine.len(), nodes.len(), "no node twice");
        let keys: Vec<B256> = map.keys().copied().collect();
        let theirs: BTreeSet<Vec<u8>> = proof_nodes(&map, &keys)
            .into_iter()
            .filter(|n| n.len() >= 32 || keccak256(n) == root)
            .collect();
        if map.is_empty() {
            prop_assert!(mine.is_empty());
        } else {
            prop_assert_eq!(mine, theirs);
        }
    }

    /// Random interleavings of inserts and removes (on keys present and absent) match the oracle
    /// after every step, with hashes computed incrementally in between.
    #[test]
    fn interleaved_updates_match_the_oracle((pool, mut map) in start(24), ops in ops(48)) {
        let mut trie = SparseTrie::empty();
        for (k, v) in &map {
            trie.insert(k, v.clone()).unwrap();
        }
        prop_assert_eq!(trie.hash(), oracle_root(&map));
        for op in &ops {
            apply_and_check(&mut trie, &mut map, &pool, op)?;
        }
    }

    /// Open the trie from the nodes of a whole trie, then change it: same roots as the oracle.
    #[test]
    fn opened_whole_tries_update_like_the_oracle((pool, mut map) in start(32), ops in ops(32)) {
        let (root, nodes) = nodes_of(map.iter().map(|(k, v)| (*k, v.clone())));
        let mut trie = SparseTrie::open(root, &store_of(&nodes)).unwrap();
        prop_assert_eq!(trie.hash(), root);
        for k in &pool {
            prop_assert_eq!(trie.get(k).unwrap(), map.get(k).map(Vec::as_slice));
        }
        for op in &ops {
            apply_and_check(&mut trie, &mut map, &pool, op)?;
        }
        // Remove everything: the empty root.
        for k in &pool {
            trie.remove(k).unwrap();
        }
        prop_assert!(trie.is_empty());
        prop_assert_eq!(trie.hash(), EMPTY_ROOT_HASH);
    }

    /// A trie opened from a partial witness (the proofs of a few keys, as a real witness has):
    /// reads and writes of those keys work and match the oracle; any other read is right or
    /// `Unresolved` (never a wrong `None`); a write that fails is `Unresolved`, names a node the
    /// witness lacks, and leaves the trie as it was.
    #[test]
    fn partial_witnesses_are_exact_or_unresolved(
        (pool, mut map) in start(40),
        targets in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
        ops in ops(24),
    ) {
        let targets: Vec<B256> = targets.iter().map(|i| pool[i.index(pool.len())]).collect();
        let root = oracle_root(&map);
        let nodes = proof_nodes(&map, &targets);
        let store = store_of(&nodes);
        let mut trie = SparseTrie::open(root, &store).unwrap();
        prop_assert_eq!(trie.hash(), root);
        for k in &targets {
            prop_assert_eq!(trie.get(k).unwrap(), map.get(k).map(Vec::as_slice));
        }
        for k in &pool {
            match trie.get(k) {
                Ok(v) => prop_assert_eq!(v, map.get(k).map(Vec::as_slice)),
                Err(TrieError::Unresolved { hash }) => {
                    prop_assert!(store.get(&hash).is_none());
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
        for op in &ops {
            let before = trie.hash();
            let (k, result) = match op {
                Op::Insert(i, v) => {
                    let k = targets[i % targets.len()];
                    (k, trie.insert(&k, v.clone()).map(|()| Some(v.clone())))
                }
                Op::Remove(i) => {
                    let k = targets[i % targets.len()];
                    (k, trie.remove(&k).map(|()| None))
                }
            };
            match result {
                Ok(Some(v)) => { map.insert(k, v); }
                Ok(None) => { map.remove(&k); }
                Err(TrieError::Unresolved { hash }) => {
                    prop_assert!(store.get(&hash).is_none());
                    prop_assert_eq!(trie.hash(), before, "a failed write changes nothing");
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
            prop_assert_eq!(trie.hash(), oracle_root(&map), "after {:?}", op);
            for k in &pool {
                if let Ok(v) = trie.get(k) {
                    prop_assert_eq!(v, map.get(k).map(Vec::as_slice));
                }
            }
        }
    }
}

/// Three leaves; removing one leaves a branch with one leaf child: they merge into one leaf.
#[test]
fn removal_collapses_a_branch_into_a_leaf() {
    let (a, b, c) = (key("ab12"), key("ab34"), key("cd"));
    let big = vec![0x42; 40];
    let mut map: Map = [(a, big.clone()), (b, big.clone()), (c, big.clone())].into();
    let (root, nodes) = nodes_of(map.clone());
    assert_eq!(root, oracle_root(&map));
    // Root branch, extension `b`, branch {1, 3}, three leaves.
    assert_eq!(nodes.len(), 6);
    let mut trie = SparseTrie::open(root, &store_of(&nodes)).unwrap();
    trie.remove(&a).unwrap();
    map.remove(&a);
    assert_eq!(trie.hash(), oracle_root(&map));
    // Root branch and two leaves.
    assert_eq!(trie.witness_nodes().len(), 3);
    assert_eq!(trie.get(&b).unwrap(), Some(&big[..]));
    assert_eq!(trie.get(&a).unwrap(), None);
}

/// Removing a leaf whose sibling is a branch: the branch becomes an extension and merges with
/// the extension above it.
#[test]
fn removal_collapses_into_an_extension() {
    let (a, b, c) = (key("1234"), key("12355"), key("12356"));
    let mut map: Map = [(a, vec![1; 40]), (b, vec![2; 40]), (c, vec![3; 40])].into();
    let (root, nodes) = nodes_of(map.clone());
    let mut trie = SparseTrie::open(root, &store_of(&nodes)).unwrap();
    trie.remove(&a).unwrap();
    map.remove(&a);
    assert_eq!(trie.hash(), oracle_root(&map));
    assert_eq!(
        trie.witness_nodes().len(),
        4,
        "extension 1235, branch, two leaves"
    );

    // The sibling is an extension: the two extensions join.
    let (a, b, c) = (key("14"), key("123455"), key("123456"));
    let mut map: Map = [(a, vec![1; 40]), (b, vec![2; 40]), (c, vec![3; 40])].into();
    let (root, nodes) = nodes_of(map.clone());
    let mut trie = SparseTrie::open(root, &store_of(&nodes)).unwrap();
    trie.remove(&a).unwrap();
    map.remove(&a);
    assert_eq!(trie.hash(), oracle_root(&map));
    assert_eq!(
        trie.witness_nodes().len(),
        4,
        "extension 12345, branch, two leaves"
    );
}

/// Keys differing only in the last nibble, short values: the leaves (empty paths) and even the
/// branch above them are embedded in their parent.
#[test]
fn embedded_nodes() {
    let mut map = Map::new();
    let base = key("77");
    for last in [0u8, 5, 15] {
        let mut k = base;
        k.0[31] = last;
        map.insert(k, vec![last + 1]);
    }
    let mut k = base;
    k.0[31] = 0x50;
    map.insert(k, vec![9]);
    let (root, nodes) = nodes_of(map.clone());
    assert_eq!(root, oracle_root(&map));
    assert_eq!(
        nodes.len(),
        2,
        "the root extension and the branch at nibble 62: the rest is embedded"
    );
    let mut trie = SparseTrie::open(root, &store_of(&nodes)).unwrap();
    for (k, v) in &map {
        assert_eq!(trie.get(k).unwrap(), Some(&v[..]));
    }
    for k in map.clone().keys() {
        trie.remove(k).unwrap();
        map.remove(k);
        assert_eq!(trie.hash(), oracle_root(&map));
    }
    assert_eq!(trie.hash(), EMPTY_ROOT_HASH);
}

/// Deleting every key, in an order unlike insertion: the empty trie.
#[test]
fn deleting_everything_gives_the_empty_root() {
    let keys: Vec<B256> = (0u32..200).map(|i| keccak256(i.to_be_bytes())).collect();
    let (root, nodes) = nodes_of(keys.iter().map(|k| (*k, vec![0x11; 33])));
    let mut trie = SparseTrie::open(root, &store_of(&nodes)).unwrap();
    for k in keys.iter().rev() {
        trie.remove(k).unwrap();
        trie.remove(k).unwrap(); // again: absent, fine
    }
    assert!(trie.is_empty());
    assert_eq!(trie.hash(), EMPTY_ROOT_HASH);
    assert_eq!(trie.get(&keys[0]).unwrap(), None);
    assert!(trie.witness_nodes().is_empty());
    trie.insert(&keys[3], vec![1]).unwrap();
    assert_eq!(trie.hash(), oracle_root(&[(keys[3], vec![1])].into()));
}

/// A witness holding only one key's path: the sibling needed to collapse, and the paths of other
/// keys, are digests.
#[test]
fn partial_witness_reports_what_it_lacks() {
    let (a, b) = (key("00"), key("10"));
    let map: Map = [(a, vec![1; 40]), (b, vec![2; 40])].into();
    let root = oracle_root(&map);
    let nodes = proof_nodes(&map, &[a]);
    assert_eq!(nodes.len(), 2, "root branch and leaf a");
    let store = store_of(&nodes);
    let mut trie = SparseTrie::open(root, &store).unwrap();
    let leaf_b = {
        let (_, all) = nodes_of(map.clone());
        let b_leaf: Vec<_> = all.iter().filter(|n| !nodes.contains(n)).collect();
        assert_eq!(b_leaf.len(), 1);
        keccak256(b_leaf[0])
    };

    assert_eq!(trie.get(&a).unwrap(), Some(&[1; 40][..]));
    assert_eq!(trie.get(&b), Err(TrieError::Unresolved { hash: leaf_b }));
    assert_eq!(
        trie.get(&key("11")),
        Err(TrieError::Unresolved { hash: leaf_b })
    );
    assert_eq!(
        trie.get(&key("5")).unwrap(),
        None,
        "an empty branch slot proves absence"
    );
    assert_eq!(
        trie.get(&key("01")).unwrap(),
        None,
        "a different leaf proves absence"
    );

    // Removing a leaves the root branch with one child, b, which the witness lacks.
    assert_eq!(trie.remove(&a), Err(TrieError::Unresolved { hash: leaf_b }));
    assert_eq!(trie.hash(), root, "unchanged");
    assert_eq!(trie.get(&a).unwrap(), Some(&[1; 40][..]));
    // Writing below b needs b.
    assert_eq!(
        trie.insert(&key("11"), vec![3]),
        Err(TrieError::Unresolved { hash: leaf_b })
    );
    assert_eq!(trie.remove(&b), Err(TrieError::Unresolved { hash: leaf_b }));
    assert_eq!(trie.hash(), root, "unchanged");
    // Removing an absent key the witness proves absent is fine.
    trie.remove(&key("01")).unwrap();
    assert_eq!(trie.hash(), root);
    // Writing into an empty slot, or over a, needs nothing more.
    let mut map2 = map.clone();
    trie.insert(&key("5"), vec![5]).unwrap();
    map2.insert(key("5"), vec![5]);
    trie.insert(&a, vec![6]).unwrap();
    map2.insert(a, vec![6]);
    assert_eq!(trie.hash(), oracle_root(&map2));
    // Now the root has three children: a can go.
    trie.remove(&a).unwrap();
    map2.remove(&a);
    assert_eq!(trie.hash(), oracle_root(&map2));

    // With the sibling in the witness, the collapse works.
    let mut trie = SparseTrie::open(root, &store_of(&proof_nodes(&map, &[a, b]))).unwrap();
    trie.remove(&a).unwrap();
    assert_eq!(trie.hash(), oracle_root(&[(b, vec![2; 40])].into()));
}

#[test]
fn empty_and_missing_roots() {
    assert_eq!(EMPTY_ROOT_HASH, alloy_trie::EMPTY_ROOT_HASH);
    let store = NodeStore::new([]);
    assert!(store.is_empty());
    let mut trie = SparseTrie::open(EMPTY_ROOT_HASH, &store).unwrap();
    assert!(trie.is_empty());
    assert_eq!(trie.hash(), EMPTY_ROOT_HASH);
    assert_eq!(trie.get(&key("12")).unwrap(), None);
    trie.remove(&key("12")).unwrap();
    assert_eq!(SparseTrie::empty().hash(), EMPTY_ROOT_HASH);
    assert_eq!(nodes_of([]), (EMPTY_ROOT_HASH, vec![]));

    let missing = keccak256(b"nope");
    assert_eq!(
        SparseTrie::open(missing, &store).unwrap_err(),
        TrieError::MissingRoot(missing)
    );
    assert_eq!(trie.insert(&key("12"), vec![]), Err(TrieError::EmptyValue));
    assert!(trie.is_empty());

    // A single key.
    let map: Map = [(key("ff"), vec![0x80])].into();
    trie.insert(&key("ff"), vec![0x80]).unwrap();
    assert_eq!(trie.hash(), oracle_root(&map));
}

#[test]
fn store_dedups_and_finds_nodes() {
    let a = vec![0xc2, 0x20, 0x01];
    let b = vec![0xc3, 0x20, 0x81, 0xff];
    let store = NodeStore::new([&a[..], &b[..], &a[..]]);
    assert_eq!(store.len(), 2);
    assert_eq!(store.get(&keccak256(&a)), Some(&a[..]));
    assert_eq!(store.get(&keccak256(&b)), Some(&b[..]));
    assert_eq!(store.get(&keccak256(b"c")), None);
}
