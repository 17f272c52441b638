//! When each live node was last heard from, least recently first.
//!
//! Times only grow, so a node heard from moves to the back of a list that stays in order of `last_seen`: a
//! heartbeat costs one lookup and a relink, and the next node to time out is the head. A timer per node in
//! the scheduler's heap cost more than everything else together at 100,000 nodes heartbeating every 30 s.

use std::collections::BTreeMap;

use crate::idmap::DENSE_IDS;
use crate::types::{NodeId, Time};

const NIL: u32 = u32::MAX;

/// Each node's slot: indexed by id for the ids drivers hand out (one load per heartbeat, where a `NodeMap` took
/// two), in a tree for the others.
#[derive(Debug, Clone, Default)]
struct SlotIndex {
    dense: Vec<u32>,
    sparse: BTreeMap<NodeId, u32>,
}

impl SlotIndex {
    fn get(&self, node: NodeId) -> Option<u32> {
        if node.0 < DENSE_IDS {
            self.dense
                .get(node.0 as usize)
                .copied()
                .filter(|&s| s != NIL)
        } else {
            self.sparse.get(&node).copied()
        }
    }

    fn insert(&mut self, node: NodeId, slot: u32) {
        if node.0 < DENSE_IDS {
            let i = node.0 as usize;
            if self.dense.len() <= i {
                self.dense.resize(i + 1, NIL);
            }
            self.dense[i] = slot;
        } else {
            self.sparse.insert(node, slot);
        }
    }

    fn remove(&mut self, node: NodeId) {
        if node.0 < DENSE_IDS {
            if let Some(s) = self.dense.get_mut(node.0 as usize) {
                *s = NIL;
            }
        } else {
            self.sparse.remove(&node);
        }
    }
}

#[derive(Debug, Clone)]
struct Slot {
    node: NodeId,
    last_seen: Time,
    prev: u32,
    next: u32,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Liveness {
    slot_of: SlotIndex,
    slots: Vec<Slot>,
    /// Slots of removed nodes, reused by the next ones.
    spare: Vec<u32>,
    head: Option<u32>,
    tail: Option<u32>,
}

impl Liveness {
    /// `node` was heard from at `now` (not before any earlier call's `now`); adds it if it is not known.
    pub fn seen(&mut self, node: NodeId, now: Time) {
        if !self.touch(node, now) {
            let slot = Slot {
                node,
                last_seen: now,
                prev: NIL,
                next: NIL,
            };
            let i = match self.spare.pop() {
                Some(i) => {
                    self.slots[i as usize] = slot;
                    i
                }
                None => {
                    self.slots.push(slot);
                    (self.slots.len() - 1) as u32
                }
            };
            self.slot_of.insert(node, i);
            self.link_back(i);
        }
    }

    /// `node` was heard from at `now`; false (and nothing done) if it is not known.
    pub fn touch(&mut self, node: NodeId, now: Time) -> bool {
        let Some(i) = self.slot(node) else {
            return false;
        };
        debug_assert!(self
            .tail
            .is_none_or(|t| self.slots[t as usize].last_seen <= now));
        self.slots[i as usize].last_seen = now;
        if self.tail != Some(i) {
            self.unlink(i);
            self.link_back(i);
        }
        true
    }

    pub fn remove(&mut self, node: NodeId) {
        if let Some(i) = self.slot(node) {
            self.slot_of.remove(node);
            self.unlink(i);
            self.spare.push(i);
        }
    }

    pub fn last_seen(&self, node: NodeId) -> Option<Time> {
        self.slot(node).map(|i| self.slots[i as usize].last_seen)
    }

    /// The node heard from least recently, and when.
    pub fn oldest(&self) -> Option<(NodeId, Time)> {
        self.head.map(|i| {
            let s = &self.slots[i as usize];
            (s.node, s.last_seen)
        })
    }

    /// Nodes heard from least recently first, as long as they were last heard from at or before `until`.
    pub fn oldest_until(&self, until: Time) -> impl Iterator<Item = (NodeId, Time)> + '_ {
        let mut at = self.head.unwrap_or(NIL);
        std::iter::from_fn(move || {
            let s = self
                .slots
                .get(at as usize)
                .filter(|s| s.last_seen <= until)?;
            at = s.next;
            Some((s.node, s.last_seen))
        })
    }

    fn slot(&self, node: NodeId) -> Option<u32> {
        self.slot_of.get(node)
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        match prev {
            NIL => self.head = (next != NIL).then_some(next),
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = (prev != NIL).then_some(prev),
            n => self.slots[n as usize].prev = prev,
        }
    }

    fn link_back(&mut self, i: u32) {
        let prev = self.tail.unwrap_or(NIL);
        {
            let s = &mut self.slots[i as usize];
            s.prev = prev;
            s.next = NIL;
        }
        match self.tail {
            Some(t) => self.slots[t as usize].next = i,
            None => self.head = Some(i),
        }
        self.tail = Some(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list against a plain map, under joins, heartbeats and departures in random order.
    #[test]
    fn the_oldest_is_always_the_least_recently_seen() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut live = Liveness::default();
        let mut model: std::collections::BTreeMap<NodeId, Time> = Default::default();
        let mut now = 0;
        for _ in 0..20_000 {
            now += rng.random_range(0..3);
            // Small ids (looked up in a vector) and large ones (in a tree).
            let id = rng.random_range(0..50u64);
            let node = NodeId(if id % 2 == 0 { id } else { u64::MAX - id });
            match rng.random_range(0..4) {
                0 => {
                    live.remove(node);
                    model.remove(&node);
                }
                1 => {
                    live.seen(node, now);
                    model.insert(node, now);
                }
                _ => {
                    let known = live.touch(node, now);
                    assert_eq!(known, model.contains_key(&node));
                    if known {
                        model.insert(node, now);
                    }
                }
            }
            assert_eq!(live.last_seen(node), model.get(&node).copied());
            let oldest = model.values().min().copied();
            assert_eq!(live.oldest().map(|(_, t)| t), oldest);
            if let Some((n, t)) = live.oldest() {
                assert_eq!(model.get(&n), Some(&t));
            }
            // The whole list, both ways: every live node once, in order of last contact.
            let mut forward = Vec::new();
            let mut at = live.head;
            while let Some(i) = at {
                let s = &live.slots[i as usize];
                forward.push((s.last_seen, s.node));
                at = (s.next != NIL).then_some(s.next);
            }
            let mut backward = Vec::new();
            let mut at = live.tail;
            while let Some(i) = at {
                let s = &live.slots[i as usize];
                backward.push((s.last_seen, s.node));
                at = (s.prev != NIL).then_some(s.prev);
            }
            backward.reverse();
            assert_eq!(forward, backward);
            assert!(forward.windows(2).all(|w| w[0].0 <= w[1].0));
            let mut nodes: Vec<NodeId> = forward.iter().map(|(_, n)| *n).collect();
            nodes.sort();
            assert_eq!(nodes, model.keys().copied().collect::<Vec<_>>());
        }
    }
}
