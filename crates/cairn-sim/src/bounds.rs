//! Lower bounds on a job's time-to-proof that no scheduler can beat, whatever it does: the critical path and
//! the capacity bound live in `cairn_scheduler::predict` (a client predicts with them too); this module adds
//! what only a simulator has, the depths of the join tree a job actually built. Every simulated job is reported
//! against `tight = max(critical path, capacity)`: the overhead over it is what scheduling, not the hardware,
//! costs.

use std::collections::HashMap;

pub use cairn_scheduler::predict::{capacity_bound, earliest_slots, Chain};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depths_follow_the_recorded_tree() {
        // Leaves 0..3; join 100 = (0, 1), 101 = (100, 2).
        let joins = HashMap::from([(100, (0, 1)), (101, (100, 2))]);
        assert_eq!(leaf_depths(3, &joins, 101), Some(vec![2, 2, 1]));
        assert_eq!(leaf_depths(4, &joins, 101), None, "leaf 3 is missing");
        assert_eq!(leaf_depths(1, &HashMap::new(), 0), Some(vec![0]));
    }
}
