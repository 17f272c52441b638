//! A map keyed by `NodeId` that is indexed, not searched, for the ids drivers actually hand out.
//!
//! The coordinator numbers its nodes in order and the simulator numbers its own from 0, so ids are small and
//! dense: a lookup is two indexings, not a walk down a tree (at 100,000 nodes the node table's lookups, removals
//! and inserts on every assignment were a large share of a simulated run). The id index costs 4 bytes per id up
//! to the largest seen, the values themselves only as many slots as there are entries (slots of removed entries
//! are reused). Ids from `DENSE_IDS` up still work, in an ordered map. Iteration is in id order either way, as
//! with a `BTreeMap`.

use std::collections::BTreeMap;

use crate::types::NodeId;

/// Ids below this are indexed (the index grows to the largest id seen: at most 16 MB).
pub(crate) const DENSE_IDS: u64 = 1 << 22;

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub(crate) struct NodeMap<V> {
    /// For id `i` below `DENSE_IDS`, its slot in `values` (`NIL`: none).
    index: Vec<u32>,
    values: Vec<Option<V>>,
    /// Slots of removed entries, reused first.
    spare: Vec<u32>,
    sparse: BTreeMap<NodeId, V>,
    len: usize,
}

impl<V> Default for NodeMap<V> {
    fn default() -> Self {
        Self {
            index: Vec::new(),
            values: Vec::new(),
            spare: Vec::new(),
            sparse: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<V> NodeMap<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    fn slot(&self, node: &NodeId) -> Option<usize> {
        self.index
            .get(node.0 as usize)
            .copied()
            .filter(|&s| s != NIL)
            .map(|s| s as usize)
    }

    pub fn get(&self, node: &NodeId) -> Option<&V> {
        if node.0 < DENSE_IDS {
            self.slot(node).and_then(|s| self.values[s].as_ref())
        } else {
            self.sparse.get(node)
        }
    }

    pub fn get_mut(&mut self, node: &NodeId) -> Option<&mut V> {
        if node.0 < DENSE_IDS {
            let s = self.slot(node)?;
            self.values[s].as_mut()
        } else {
            self.sparse.get_mut(node)
        }
    }

    pub fn insert(&mut self, node: NodeId, value: V) -> Option<V> {
        let old = if node.0 < DENSE_IDS {
            match self.slot(&node) {
                Some(s) => self.values[s].replace(value),
                None => {
                    let s = match self.spare.pop() {
                        Some(s) => {
                            self.values[s as usize] = Some(value);
                            s
                        }
                        None => {
                            self.values.push(Some(value));
                            (self.values.len() - 1) as u32
                        }
                    };
                    let at = node.0 as usize;
                    if self.index.len() <= at {
                        self.index.resize(at + 1, NIL);
                    }
                    self.index[at] = s;
                    None
                }
            }
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
            let s = self.slot(node)?;
            self.index[node.0 as usize] = NIL;
            self.spare.push(s as u32);
            self.values[s].take()
        } else {
            self.sparse.remove(node)
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value for `node`, inserted by `make` first if there is none.
    pub fn get_or_insert_with(&mut self, node: NodeId, make: impl FnOnce() -> V) -> &mut V {
        if self.get(&node).is_none() {
            self.insert(node, make());
        }
        self.get_mut(&node).expect("just inserted")
    }

    /// Values in no particular order (the same order for `values` and `values_mut` while the map is unchanged).
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.values
            .iter()
            .filter_map(Option::as_ref)
            .chain(self.sparse.values())
    }

    /// Values in the order of `values`.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.values
            .iter_mut()
            .filter_map(Option::as_mut)
            .chain(self.sparse.values_mut())
    }

    /// Entries in id order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &V)> + '_ {
        self.index
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != NIL)
            .filter_map(|(i, s)| {
                self.values[*s as usize]
                    .as_ref()
                    .map(|v| (NodeId(i as u64), v))
            })
            .chain(self.sparse.iter().map(|(n, v)| (*n, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The map against a `BTreeMap`, with small ids and large ones, in random order.
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
        // Removed entries' slots are reused: no more slots than entries ever at once.
        assert!(map.values.len() <= 40);
    }

    #[test]
    fn ids_either_side_of_the_dense_range() {
        let mut map = NodeMap::default();
        let (last, first_sparse) = (NodeId(DENSE_IDS - 1), NodeId(DENSE_IDS));
        map.insert(first_sparse, "sparse");
        map.insert(last, "dense");
        map.insert(NodeId(0), "zero");
        assert_eq!(map.get(&last), Some(&"dense"));
        assert_eq!(map.get(&first_sparse), Some(&"sparse"));
        let order: Vec<NodeId> = map.iter().map(|(n, _)| n).collect();
        assert_eq!(order, vec![NodeId(0), last, first_sparse]);
        assert_eq!(map.remove(&last), Some("dense"));
        assert_eq!(map.get(&last), None);
        assert_eq!(map.len(), 2);
    }
}
