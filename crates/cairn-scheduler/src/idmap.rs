//! A map keyed by `NodeId` that is a vector for the ids drivers actually hand out.
//!
//! The coordinator numbers its nodes in order and the simulator numbers its own from 0, so ids are small and
//! dense: a lookup is an index, not a walk down a tree (at 100,000 nodes the node table's lookups, removals and
//! inserts on every assignment were a large share of a simulated run). Ids from `DENSE_IDS` up still work, in
//! an ordered map. Iteration is in id order either way, as with a `BTreeMap`.

use std::collections::BTreeMap;

use crate::types::NodeId;

/// Ids below this live in the vector (grown to the largest id seen).
pub(crate) const DENSE_IDS: u64 = 1 << 22;

#[derive(Debug, Clone)]
pub(crate) struct NodeMap<V> {
    dense: Vec<Option<V>>,
    sparse: BTreeMap<NodeId, V>,
    len: usize,
}

impl<V> Default for NodeMap<V> {
    fn default() -> Self {
        Self {
            dense: Vec::new(),
            sparse: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<V> NodeMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, node: &NodeId) -> Option<&V> {
        if node.0 < DENSE_IDS {
            self.dense.get(node.0 as usize).and_then(Option::as_ref)
        } else {
            self.sparse.get(node)
        }
    }

    pub fn get_mut(&mut self, node: &NodeId) -> Option<&mut V> {
        if node.0 < DENSE_IDS {
            self.dense.get_mut(node.0 as usize).and_then(Option::as_mut)
        } else {
            self.sparse.get_mut(node)
        }
    }

    pub fn insert(&mut self, node: NodeId, value: V) -> Option<V> {
        let old = if node.0 < DENSE_IDS {
            let at = node.0 as usize;
            if self.dense.len() <= at {
                self.dense.resize_with(at + 1, || None);
            }
            self.dense[at].replace(value)
        } else {
            self.sparse.insert(node, value)
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, node: &NodeId) -> Option<V> {
        let old = if node.0 < DENSE_IDS {
            self.dense.get_mut(node.0 as usize).and_then(Option::take)
        } else {
            self.sparse.remove(node)
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Entries in id order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &V)> + '_ {
        self.dense
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (NodeId(i as u64), v)))
            .chain(self.sparse.iter().map(|(n, v)| (*n, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The map against a `BTreeMap`, with small and large ids, in random order.
    #[test]
    fn behaves_as_an_ordered_map() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut map = NodeMap::default();
        let mut model = BTreeMap::new();
        for step in 0..10_000u32 {
            let id = rng.random_range(0..40u64);
            let node = NodeId(if id % 3 == 0 { u64::MAX - id } else { id });
            if rng.random_bool(0.4) {
                assert_eq!(map.remove(&node), model.remove(&node));
            } else {
                assert_eq!(map.insert(node, step), model.insert(node, step));
            }
            if let Some(v) = map.get_mut(&node) {
                *v += 1;
                *model.get_mut(&node).expect("in both") += 1;
            }
            assert_eq!(map.len(), model.len());
            assert_eq!(map.get(&node), model.get(&node));
            let a: Vec<(NodeId, u32)> = map.iter().map(|(n, v)| (n, *v)).collect();
            let b: Vec<(NodeId, u32)> = model.iter().map(|(n, v)| (*n, *v)).collect();
            assert_eq!(a, b);
        }
    }
}
