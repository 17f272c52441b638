//! Lower bounds on a job's time-to-proof that no scheduler can beat, whatever it does.
//!
//! The critical-path bound (in `engine`) puts every task of the job's tree on the fastest eligible node with no
//! queueing: it ignores that the network has only so many fast nodes. The *capacity bound* here adds that
//! limit. Each honest node that fits the job's segments proves one leaf at a time, so the k-th earliest moment
//! at which k leaves can be done is fixed by the nodes' speeds alone (`earliest_slots`); and a leaf at depth d
//! of the join tree still needs d joins, one after the other, after its own proof. Pairing the earliest slots
//! with the deepest leaves is the best any schedule can do (an exchange argument: swapping a later slot onto a
//! deeper leaf never lowers the maximum), so
//!
//! `root >= lead + max_k (slot_k + depth_(k) x join_chain) + tail`
//!
//! with depths sorted deepest first. It is a relaxation too: it ignores when segments become ready, the
//! transfers of all but one leaf, the node time joins take, faults and churn, so it never exceeds a simulated
//! time. `tight = max(critical path, capacity)`; the scheduler's overhead against it is what scheduling, not the
//! hardware, costs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// The earliest `count` moments (seconds from a common start, ascending) at which leaves can be finished by
/// provers taking `leaf_secs[i]` per leaf, one at a time each. Only the `count` fastest provers can matter
/// (each of them alone finishes one leaf before any slower prover does), so this costs O(count log count).
pub fn earliest_slots(leaf_secs: &[f64], count: usize) -> Vec<f64> {
    let mut fastest: Vec<f64> = leaf_secs
        .iter()
        .copied()
        .filter(|s| s.is_finite() && *s > 0.0)
        .collect();
    fastest.sort_by(f64::total_cmp);
    fastest.truncate(count);
    if fastest.is_empty() {
        return Vec::new();
    }
    // (next finish time as order-preserving bits, prover); non-negative floats order like their bits.
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = fastest
        .iter()
        .enumerate()
        .map(|(i, s)| Reverse((s.to_bits(), i)))
        .collect();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let Reverse((bits, i)) = heap.pop().expect("provers never run out");
        let t = f64::from_bits(bits);
        out.push(t);
        heap.push(Reverse(((t + fastest[i]).to_bits(), i)));
    }
    out
}

/// Depth of every leaf (segment index `0..segments`) in a recorded join tree (`joins`: join index -> its two
/// children), from `root`; `None` if the tree does not cover every leaf.
pub fn leaf_depths(segments: u32, joins: &HashMap<u32, (u32, u32)>, root: u32) -> Option<Vec<u32>> {
    let mut depth = vec![u32::MAX; segments as usize];
    let mut stack = vec![(root, 0u32)];
    while let Some((t, d)) = stack.pop() {
        match joins.get(&t) {
            Some(&(l, r)) => {
                stack.push((l, d + 1));
                stack.push((r, d + 1));
            }
            None => *depth.get_mut(t as usize)? = d,
        }
    }
    depth.iter().all(|d| *d != u32::MAX).then_some(depth)
}

/// The parts of the capacity bound that do not depend on the slots (seconds).
#[derive(Debug, Clone, Copy)]
pub struct Chain {
    /// Before a leaf's proof can start: its segment's transfer on the fastest link.
    pub lead: f64,
    /// After the root's last proof: its upload and verification, and the client's final check.
    pub tail: f64,
    /// One join after its children: inputs in, the join itself on the fastest recursion node, upload, check.
    pub per_join: f64,
}

/// The capacity bound for leaves at `depths` (any order) on provers taking `leaf_secs` per leaf.
pub fn capacity_bound(leaf_secs: &[f64], depths: &[u32], chain: Chain) -> Option<f64> {
    let slots = earliest_slots(leaf_secs, depths.len());
    if slots.len() < depths.len() {
        return None;
    }
    let mut deepest_first = depths.to_vec();
    deepest_first.sort_unstable_by(|a, b| b.cmp(a));
    let worst = slots
        .iter()
        .zip(&deepest_first)
        .map(|(t, d)| t + f64::from(*d) * chain.per_join)
        .fold(0.0, f64::max);
    Some(chain.lead + worst + chain.tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_interleave_fast_and_slow_provers() {
        // A prover taking 10 s and one taking 25 s: 10, 20, 25, 30, 40, 50, 50 ...
        assert_eq!(
            earliest_slots(&[25.0, 10.0], 6),
            vec![10.0, 20.0, 25.0, 30.0, 40.0, 50.0]
        );
        // Only the fastest `count` provers matter; invalid speeds are ignored.
        assert_eq!(
            earliest_slots(&[1.0, 2.0, 3.0, f64::INFINITY, 0.0], 2),
            vec![1.0, 2.0]
        );
        assert!(earliest_slots(&[], 3).is_empty());
    }

    #[test]
    fn depths_follow_the_recorded_tree() {
        // Leaves 0..3; join 100 = (0, 1), 101 = (100, 2).
        let joins = HashMap::from([(100, (0, 1)), (101, (100, 2))]);
        assert_eq!(leaf_depths(3, &joins, 101), Some(vec![2, 2, 1]));
        assert_eq!(leaf_depths(4, &joins, 101), None, "leaf 3 is missing");
        assert_eq!(leaf_depths(1, &HashMap::new(), 0), Some(vec![0]));
    }

    #[test]
    fn deepest_leaves_take_the_earliest_slots() {
        let chain = Chain {
            lead: 1.0,
            tail: 2.0,
            per_join: 5.0,
        };
        // One prover, 10 s a leaf, leaves at depths 2, 2, 1: slots 10, 20, 30 -> 10+10, 20+10, 30+5.
        let b = capacity_bound(&[10.0], &[1, 2, 2], chain).expect("bound");
        assert!((b - (1.0 + 35.0 + 2.0)).abs() < 1e-9, "{b}");
        // No prover: no bound.
        assert_eq!(capacity_bound(&[], &[0], chain), None);
    }
}
