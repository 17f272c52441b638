//! What a job will take before it runs: lower bounds on its time-to-proof that no schedule can beat, and the
//! prediction a client makes from them to choose its segment size (`cairn prove --po2 auto`).
//!
//! Two bounds, both in seconds from the job's start:
//! - the **critical path** puts every task of the job's tree on the fastest eligible node with no queueing:
//!   segment `i` is ready when execution has streamed `i + 1` segments, then it travels, is proved (and
//!   lifted), uploaded and checked, then climbs its `d` joins one after the other;
//! - the **capacity bound** adds that the network has only so many provers. Each prover lane proves one leaf
//!   at a time, so the k-th earliest moment at which k leaves can be done is fixed by the lanes' speeds alone
//!   ([`earliest_slots`]); pairing the earliest slots with the deepest leaves is the best any schedule can do
//!   (an exchange argument: swapping a later slot onto a deeper leaf never lowers the maximum), so
//!   `root >= lead + max_k (slot_k + depth_(k) x join_chain) + tail` with depths sorted deepest first.
//!
//! Both are relaxations (they ignore queueing behind other jobs, all transfers but one leaf's, faults and
//! churn), so neither exceeds a real time; the larger of the two is the *tight* bound, and it is the
//! prediction. One refinement makes the prediction no longer a strict bound: a short last segment
//! (`JobCosts::last_leaf_share`) is placed after the full ones, where a schedule might run it earlier. The simulator reports every job against it, and the client predicts with the very cost model
//! the scheduler uses for deadlines ([`SchedulerConfig::prove_cost`], `lift_cycles`, `join_cycles`, each
//! prover's speed as the scheduler knows it) in [`job_costs`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::config::SchedulerConfig;
use crate::types::{Aggregation, NodeCapacity};

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

/// The capacity bound for leaves at `depths` (any order) on provers taking `leaf_secs` per leaf; `None` if no
/// prover can take a leaf.
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

/// Depth of each leaf in the join tree of `segments` leaves that the scheduler builds as a "mountain range":
/// equal-height peaks merge as leaves arrive (a binary counter), the remaining peaks merge from the right at
/// the end.
pub fn mountain_range_depths(segments: u32) -> Vec<u32> {
    let n = segments as usize;
    let mut depth = vec![0u32; n];
    // Peaks: (first leaf, leaf count, height).
    let mut peaks: Vec<(usize, usize, u32)> = Vec::new();
    let merge = |peaks: &mut Vec<(usize, usize, u32)>, depth: &mut [u32]| {
        let right = peaks.pop().expect("two peaks");
        let left = peaks.pop().expect("two peaks");
        for d in &mut depth[left.0..right.0 + right.1] {
            *d += 1;
        }
        peaks.push((left.0, left.1 + right.1, left.2.max(right.2) + 1));
    };
    for leaf in 0..n {
        peaks.push((leaf, 1, 0));
        while peaks.len() >= 2 && peaks[peaks.len() - 1].2 == peaks[peaks.len() - 2].2 {
            merge(&mut peaks, &mut depth);
        }
    }
    while peaks.len() >= 2 {
        merge(&mut peaks, &mut depth);
    }
    depth
}

/// The seconds each part of one job takes on a given network: what [`predict`] bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct JobCosts {
    pub segments: u32,
    /// Execution streams segments: segment `i` is ready `(i + 1) x` this after the start.
    pub exec_secs_per_segment: f64,
    pub aggregation: Aggregation,
    /// Seconds per leaf (prove, and lift in a join tree) on every prover lane (node x slot) that can take one.
    pub leaf_lanes: Vec<f64>,
    /// The fastest leaf on any node that can take one.
    pub leaf: f64,
    /// The last segment's proving work as a share of a full one's (an execution ends with a segment sized to
    /// what is left: 0.25 for a po2 16 tail of a po2 18 run); 1.0 counts every segment as full.
    pub last_leaf_share: f64,
    /// One join on the fastest recursion node.
    pub join: f64,
    /// A segment's transfer to its prover.
    pub xfer_in: f64,
    /// A join's two inputs to its prover.
    pub join_in: f64,
    /// A result's upload to the client (a segment receipt, or a succinct one in a join tree).
    pub upload: f64,
    /// The client's check of one received receipt.
    pub verify: f64,
}

/// A job's predicted time-to-proof and the two bounds it is the larger of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub secs: f64,
    pub critical_secs: f64,
    pub capacity_secs: f64,
}

/// The tight bound of the job `c` describes (see the module docs); `None` if no prover lane can take a leaf.
pub fn predict(c: &JobCosts) -> Option<Prediction> {
    if c.leaf_lanes.is_empty() || c.segments == 0 {
        return None;
    }
    let join_tree = c.aggregation == Aggregation::JoinTree;
    let depths = if join_tree {
        mountain_range_depths(c.segments)
    } else {
        vec![0; c.segments as usize]
    };
    // A composite receipt is checked segment by segment at the end; a succinct one once.
    let final_verify = if join_tree {
        c.verify
    } else {
        f64::from(c.segments) * c.verify
    };
    let per_join = c.join_in + c.join + c.upload + c.verify;
    let last_share = if c.last_leaf_share.is_finite() {
        c.last_leaf_share.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let critical_secs = depths
        .iter()
        .enumerate()
        .map(|(s, d)| {
            let share = if s + 1 == depths.len() {
                last_share
            } else {
                1.0
            };
            c.exec_secs_per_segment * (s + 1) as f64
                + c.xfer_in
                + c.leaf * share
                + c.upload
                + c.verify
                + f64::from(*d) * per_join
        })
        .fold(0.0, f64::max)
        + final_verify;
    let mut lanes = c.leaf_lanes.clone();
    lanes.sort_by(f64::total_cmp);
    lanes.truncate(depths.len());
    let chain = Chain {
        lead: c.xfer_in,
        tail: c.upload + c.verify + final_verify,
        per_join,
    };
    let capacity_secs = if last_share < 1.0 {
        // The short last leaf apart: the full ones packed as usual, then the short one on whichever lane
        // finishes it first after them (a prediction here, not a bound: the short leaf might go earlier).
        let (last_depth, full) = depths.split_last().expect("one leaf or more");
        let full_bound = capacity_bound(&lanes, full, chain)?;
        let mut free = vec![0.0f64; lanes.len()];
        for _ in 0..full.len() {
            let i = (0..lanes.len())
                .min_by(|a, b| (free[*a] + lanes[*a]).total_cmp(&(free[*b] + lanes[*b])))
                .expect("lanes");
            free[i] += lanes[i];
        }
        let last = (0..lanes.len())
            .map(|i| free[i] + lanes[i] * last_share)
            .fold(f64::MAX, f64::min);
        full_bound.max(chain.lead + last + f64::from(*last_depth) * per_join + chain.tail)
    } else {
        capacity_bound(&lanes, &depths, chain)?
    };
    Some(Prediction {
        secs: critical_secs.max(capacity_secs),
        critical_secs,
        capacity_secs,
    })
}

/// What the client assumes of everything but the provers when it predicts a job on a live network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overheads {
    /// Executor speed (cycles per second), as measured on this machine.
    pub exec_hz: f64,
    /// One-way latency to a prover (seconds).
    pub latency_secs: f64,
    /// Bytes per second between the client and a prover.
    pub bytes_per_sec: f64,
    /// A serialized segment (what a prover downloads).
    pub blob_bytes: f64,
    /// A segment receipt (what a prover uploads for a composite receipt).
    pub segment_receipt_bytes: f64,
    /// A succinct receipt (a lift's or join's output).
    pub succinct_receipt_bytes: f64,
    /// The client's check of one received receipt.
    pub verify_secs: f64,
}

/// The costs of a job of `segments` segments of 2^`po2` cycles (`total_cycles` with paging, what execution
/// runs) on `provers`, in the scheduler's own cost model: a leaf costs `prove_cost(2^po2)` (+ `lift_cycles` in a
/// join tree) cycles and a join `join_cycles`, at each prover's speed as the scheduler knows it (claimed, or
/// learned from its results). Provers that cannot take the po2 (or the recursion a join tree needs) are left
/// out; `None` if none can.
pub fn job_costs(
    cfg: &SchedulerConfig,
    provers: &[NodeCapacity],
    po2: u8,
    segments: u32,
    total_cycles: f64,
    aggregation: Aggregation,
    o: &Overheads,
) -> Option<JobCosts> {
    let join_tree = aggregation == Aggregation::JoinTree;
    let po2 = po2.min(63);
    let speed = |c: &NodeCapacity| {
        (c.cycles_per_sec.is_finite() && c.cycles_per_sec > 0.0).then_some(c.cycles_per_sec)
    };
    let lift = if join_tree {
        cfg.lift_cycles as f64
    } else {
        0.0
    };
    let leaf_cycles = cfg.prove_cost(1u64 << po2) as f64 + lift;
    // A prover's lanes: its slots, cut to the per-node cap; one that offers none takes nothing.
    let fitting: Vec<(f64, u32)> = provers
        .iter()
        .filter(|c| c.max_po2 >= po2 && (!join_tree || c.recursion))
        .filter_map(|c| Some((speed(c)?, c.slots.min(cfg.per_node_in_flight_cap))))
        .filter(|(_, slots)| *slots > 0)
        .collect();
    let fastest = fitting.iter().map(|(s, _)| *s).fold(0.0, f64::max);
    if fastest <= 0.0 {
        return None;
    }
    let leaf_lanes = fitting
        .iter()
        .flat_map(|(s, slots)| std::iter::repeat_n(leaf_cycles / s, *slots as usize))
        .collect();
    let recursion = provers
        .iter()
        .filter(|c| c.recursion)
        .filter_map(speed)
        .fold(0.0, f64::max);
    let link = |bytes: f64| o.latency_secs + bytes / o.bytes_per_sec.max(1.0);
    Some(JobCosts {
        segments,
        exec_secs_per_segment: total_cycles / f64::from(segments.max(1)) / o.exec_hz.max(1.0),
        aggregation,
        leaf_lanes,
        leaf: leaf_cycles / fastest,
        last_leaf_share: {
            // Execution pads the last segment to the power of two above what is left.
            let size = (1u64 << po2) as f64;
            let left = total_cycles - f64::from(segments.saturating_sub(1)) * size;
            if left > 0.0 && left < size {
                let padded = left.log2().ceil().exp2().min(size);
                (cfg.prove_cost(padded as u64) as f64 + lift) / leaf_cycles
            } else {
                1.0
            }
        },
        join: if recursion > 0.0 {
            cfg.join_cycles as f64 / recursion
        } else {
            0.0
        },
        xfer_in: link(o.blob_bytes),
        join_in: link(2.0 * o.succinct_receipt_bytes),
        upload: link(if join_tree {
            o.succinct_receipt_bytes
        } else {
            o.segment_receipt_bytes
        }),
        verify: o.verify_secs,
    })
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

    #[test]
    fn mountain_range_depths_are_balanced() {
        assert_eq!(mountain_range_depths(1), vec![0]);
        assert_eq!(mountain_range_depths(2), vec![1, 1]);
        assert_eq!(mountain_range_depths(4), vec![2, 2, 2, 2]);
        assert_eq!(mountain_range_depths(5), vec![3, 3, 3, 3, 1]);
        for s in 1..300u32 {
            let d = mountain_range_depths(s);
            let ceil_log2 = if s <= 1 {
                0
            } else {
                32 - (s - 1).leading_zeros()
            };
            assert_eq!(*d.iter().max().expect("leaf"), ceil_log2, "S={s}");
        }
    }

    fn cap(max_po2: u8, cycles_per_sec: f64, slots: u32) -> NodeCapacity {
        NodeCapacity {
            memory_bytes: 0,
            max_po2,
            cycles_per_sec,
            slots,
            recursion: false,
        }
    }

    fn overheads() -> Overheads {
        Overheads {
            exec_hz: 1e7,
            latency_secs: 0.0,
            bytes_per_sec: 1e12,
            blob_bytes: 0.0,
            segment_receipt_bytes: 0.0,
            succinct_receipt_bytes: 0.0,
            verify_secs: 0.0,
        }
    }

    /// `job_costs` with free transfers and checks.
    fn costs(
        cfg: &SchedulerConfig,
        provers: &[NodeCapacity],
        po2: u8,
        segments: u32,
        total_cycles: f64,
        aggregation: Aggregation,
    ) -> Option<JobCosts> {
        job_costs(
            cfg,
            provers,
            po2,
            segments,
            total_cycles,
            aggregation,
            &overheads(),
        )
    }

    #[test]
    fn a_composite_job_on_two_provers_takes_its_waves() {
        let cfg = SchedulerConfig {
            po2_step_growth: 1.0,
            ..SchedulerConfig::default()
        };
        // Two provers at 2,048 cycles/s: a po2 14 segment takes 8 s; 5 segments take 3 waves = 24 s.
        let provers = [cap(20, 2048.0, 1), cap(20, 2048.0, 1)];
        let c = costs(&cfg, &provers, 14, 5, 5.0 * 16384.0, Aggregation::Composite).expect("fits");
        assert_eq!(c.leaf_lanes, vec![8.0, 8.0]);
        let p = predict(&c).expect("prediction");
        assert!((p.capacity_secs - 24.0).abs() < 1e-9, "{p:?}");
        assert!(p.critical_secs < 8.1, "{p:?}");
        assert_eq!(p.secs, p.capacity_secs);
        // A prover whose memory does not reach po2 18 cannot take a segment of it.
        let small = [cap(16, 2048.0, 1)];
        assert!(costs(&cfg, &small, 18, 1, 262144.0, Aggregation::Composite).is_none());
        // A join tree needs a recursion prover.
        assert!(costs(&cfg, &provers, 14, 5, 5.0 * 16384.0, Aggregation::JoinTree).is_none());
    }

    #[test]
    fn a_short_last_segment_is_not_counted_as_full() {
        let cfg = SchedulerConfig {
            po2_step_growth: 1.0,
            ..SchedulerConfig::default()
        };
        let provers = [cap(20, 2048.0, 1), cap(20, 2048.0, 1)];
        // Two full po2 16 segments (32 s each here) and a po2 15 tail (16 s): the tail goes after one of them.
        let c = costs(
            &cfg,
            &provers,
            16,
            3,
            2.0 * 65536.0 + 32768.0,
            Aggregation::Composite,
        )
        .expect("fits");
        assert_eq!(c.last_leaf_share, 0.5);
        let p = predict(&c).expect("prediction");
        assert!((p.capacity_secs - 48.0).abs() < 1e-6, "{p:?}");
        // Counted as full it would have been 64 s.
        let full = predict(&JobCosts {
            last_leaf_share: 1.0,
            ..c
        })
        .expect("prediction");
        assert!((full.capacity_secs - 64.0).abs() < 1e-6, "{full:?}");
        // A program smaller than one segment: its one segment is padded to what it holds, not to the po2.
        let one = costs(&cfg, &provers, 20, 1, 65536.0, Aggregation::Composite).expect("fits");
        let p = predict(&one).expect("prediction");
        assert!((p.capacity_secs - 32.0).abs() < 1e-6, "{p:?}");
        assert!((p.critical_secs - 32.0).abs() < 0.1, "{p:?}");
    }

    #[test]
    fn larger_segments_cost_more_per_cycle() {
        let cfg = SchedulerConfig::default();
        let provers = [cap(20, 2048.0, 1)];
        let c14 = costs(&cfg, &provers, 14, 1, 16384.0, Aggregation::Composite).expect("fits");
        let c18 = costs(&cfg, &provers, 18, 1, 262144.0, Aggregation::Composite).expect("fits");
        // 16 times the cycles, and 1.5 % more per po2 step, exactly as the scheduler's deadlines assume.
        let ratio = c18.leaf / c14.leaf;
        assert!((ratio - 16.0 * 1.015f64.powi(4)).abs() < 1e-3, "{ratio}");
    }
}
