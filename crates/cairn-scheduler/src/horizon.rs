//! Finish-time placement: when a slow free node should stay idle.
//!
//! Greedy placement gives the next task to whichever node is free. On a network of mixed speeds that hands the
//! last segments of a job to the slowest nodes while the fast ones are about to be free again, and the job
//! waits for its slowest leaf (the simulator showed leaves finishing minutes after the fast nodes ran dry).
//! List scheduling by earliest finish time fixes that: a task goes to the node that would finish it first,
//! counting when busy nodes will be free.
//!
//! For a queue of `w` tasks of the same work, [`horizon`] is the moment by which all of them could be done if
//! each went to the slot that finishes it first: the `w`-th earliest finish over every fitting slot, free now
//! or busy until its current copy is expected to end. A free node whose own finish would come after the
//! horizon is not needed (faster slots cover the queue before it would be done), so it is not given the task.
//! The queue waits only for slots the scheduler expects to be free; a copy past its expected end is not
//! counted (see `NodeIndex::slots`), so a silent or slow node never holds work back for long.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::types::Time;

/// The horizon is not worth computing (every slot will be needed) once the queue is this many times the slots
/// (the scheduler checks against its count of fitting nodes before any scan).
pub(crate) const MAX_QUEUE_PER_SLOT: usize = 4;

/// Milliseconds for `cycles` at `cycles_per_sec` (never 0; huge for a speed of 0).
pub(crate) fn task_ms(cycles: u64, cycles_per_sec: f64) -> u64 {
    if !(cycles_per_sec.is_finite() && cycles_per_sec > 0.0) {
        return u64::MAX / 4;
    }
    let ms = (cycles as f64 * 1000.0 / cycles_per_sec).ceil();
    if ms >= u64::MAX as f64 / 4.0 {
        u64::MAX / 4
    } else {
        (ms as u64).max(1)
    }
}

/// The moment by which `queued` tasks of `cycles` each could all be finished on `slots` ((free from, speed)),
/// each task on the slot that finishes it first; `None` when there is nothing to place or no slot. Slots left
/// out can only make it later, so computed on a subset it is an upper bound (what the scheduler uses to find
/// which slots it must look at).
pub(crate) fn horizon(slots: &[(Time, f64)], cycles: u64, queued: usize) -> Option<Time> {
    if queued == 0 || slots.is_empty() {
        return None;
    }
    let mut heap: BinaryHeap<Reverse<(Time, u64)>> = slots
        .iter()
        .map(|&(from, speed)| {
            let ms = task_ms(cycles, speed);
            Reverse((from.saturating_add(ms), ms))
        })
        .collect();
    let mut last = 0;
    for _ in 0..queued {
        let Reverse((end, ms)) = heap.pop()?;
        last = end;
        heap.push(Reverse((end.saturating_add(ms), ms)));
    }
    Some(last)
}

/// The slowest speed that still finishes `cycles` by `horizon` when starting at `now`, with a millisecond to
/// spare: a node whose own rounded finish is the horizon must not miss it by a floating-point hair.
pub(crate) fn min_speed(cycles: u64, now: Time, horizon: Time) -> f64 {
    let left = horizon.saturating_sub(now).max(1) + 1;
    cycles as f64 * 1000.0 / left as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_queue_waits_for_fast_slots() {
        // Five free fast slots (10 s a task) and ten free slow ones (40 s): ten tasks are done by 20 s on the
        // fast slots alone, so the slow ones are not needed.
        let mut slots = vec![(0, 100.0); 5];
        slots.extend(vec![(0, 25.0); 10]);
        let h = horizon(&slots, 1000, 10).expect("horizon");
        assert_eq!(h, 20_000);
        assert!(min_speed(1000, 0, h) > 25.0, "slow slots are left idle");
        // One task: the fastest slot's finish.
        assert_eq!(horizon(&slots, 1000, 1), Some(10_000));
    }

    #[test]
    fn a_long_queue_uses_every_slot() {
        let mut slots = vec![(0, 100.0); 5];
        slots.extend(vec![(0, 25.0); 10]);
        // 30 tasks: by 40 s the fast slots do 20 and the slow ones 10.
        let h = horizon(&slots, 1000, 30).expect("horizon");
        assert_eq!(h, 40_000);
        assert!(min_speed(1000, 0, h) <= 25.0);
    }

    #[test]
    fn busy_slots_count_from_when_they_are_free() {
        // A fast slot busy until 5 s beats a free slot four times slower for one task.
        let slots = [(5_000, 100.0), (0, 25.0)];
        assert_eq!(horizon(&slots, 1000, 1), Some(15_000));
        // Nothing to place, or nowhere: no horizon.
        assert_eq!(horizon(&slots, 1000, 0), None);
        assert_eq!(horizon(&[], 1000, 1), None);
        assert_eq!(task_ms(1, 0.0), u64::MAX / 4);
    }
}
