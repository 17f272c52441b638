//! A quantile of a changing set, kept up to date in O(log n) per change: the straggler trigger's reference
//! speed (the median live node of a class) at 100,000 nodes, where rescanning every node on each change of the
//! pool took half of the simulator's time.

use std::collections::BTreeSet;

use crate::types::NodeId;

/// The element at rank `round((n - 1) q)` (0-based, ascending) of a set of `(key, node)`: `lower` holds the
/// ranks up to it, `upper` the rest, so the answer is `lower`'s last element. Equal to sorting every key and
/// indexing, which it replaces.
#[derive(Debug, Clone)]
pub(crate) struct Quantile {
    q: f64,
    lower: BTreeSet<(u64, NodeId)>,
    upper: BTreeSet<(u64, NodeId)>,
}

impl Quantile {
    pub fn new(q: f64, items: impl IntoIterator<Item = (u64, NodeId)>) -> Self {
        let mut all: Vec<(u64, NodeId)> = items.into_iter().collect();
        all.sort_unstable();
        all.dedup();
        let mut s = Self {
            q,
            lower: BTreeSet::new(),
            upper: BTreeSet::new(),
        };
        // Split at the target rank and build both halves from sorted runs (moving half of 100,000 nodes one
        // by one cost as much as a thousand jobs' worth of updates).
        let upper = all.split_off(s.target(all.len()));
        s.lower = all.into_iter().collect();
        s.upper = upper.into_iter().collect();
        s
    }

    /// How many elements `lower` must hold for `n` in all.
    fn target(&self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            ((n - 1) as f64 * self.q).round() as usize + 1
        }
    }

    fn balance(&mut self) {
        let target = self.target(self.lower.len() + self.upper.len());
        while self.lower.len() > target {
            let x = self.lower.pop_last().expect("non-empty");
            self.upper.insert(x);
        }
        while self.lower.len() < target {
            let x = self.upper.pop_first().expect("enough elements");
            self.lower.insert(x);
        }
    }

    pub fn insert(&mut self, item: (u64, NodeId)) {
        if self.lower.last().is_some_and(|l| item < *l) {
            self.lower.insert(item);
        } else {
            self.upper.insert(item);
        }
        self.balance();
    }

    pub fn remove(&mut self, item: &(u64, NodeId)) {
        if !self.lower.remove(item) {
            self.upper.remove(item);
        }
        self.balance();
    }

    pub fn get(&self) -> Option<u64> {
        self.lower.last().map(|(k, _)| *k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sorted-and-indexed answer it replaces.
    fn naive(keys: &[(u64, NodeId)], q: f64) -> Option<u64> {
        let mut k: Vec<u64> = keys.iter().map(|(k, _)| *k).collect();
        k.sort_unstable();
        let i = ((k.len().checked_sub(1)?) as f64 * q).round() as usize;
        Some(k[i])
    }

    #[test]
    fn follows_inserts_and_removals_exactly() {
        for q in [0.0, 0.25, 0.5, 0.9, 1.0] {
            let mut live: Vec<(u64, NodeId)> = Vec::new();
            let mut s = Quantile::new(q, []);
            // A deterministic walk of inserts (with repeated keys) and removals.
            let mut x = 7u64;
            for step in 0..2_000u64 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if live.len() > 3 && x.is_multiple_of(3) {
                    let item = live.swap_remove((x >> 33) as usize % live.len());
                    s.remove(&item);
                } else {
                    let item = ((x >> 40) % 50, NodeId(step));
                    live.push(item);
                    s.insert(item);
                }
                assert_eq!(s.get(), naive(&live, q), "q {q} step {step}");
            }
            let rebuilt = Quantile::new(q, live.iter().copied());
            assert_eq!(rebuilt.get(), naive(&live, q));
        }
        assert_eq!(Quantile::new(0.5, []).get(), None);
    }
}
