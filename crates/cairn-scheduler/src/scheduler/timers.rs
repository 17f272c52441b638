//! The scheduler's timers: deadlines, straggler checks, wake-ups of parked tasks, stall checks, declined slots and
//! finish-time rechecks; when each is still due, and what firing it does. Liveness (nodes silent for the heartbeat
//! timeout) is no timer: the pool keeps nodes in the order they were last heard from, and the least recent one's
//! expiry is checked with the timers.

use std::collections::VecDeque;

use super::*;

/// A timer in the heap, ordered by its time and then by the order it was set (the timer itself never decides:
/// comparing it made the derived order a call per step of every sift).
#[derive(Debug, Clone, Copy)]
pub(super) struct TimerEntry {
    pub at: Time,
    seq: u64,
    pub timer: Timer,
}

impl PartialEq for TimerEntry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for TimerEntry {}

impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TimerEntry {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The pending timers, earliest first (by time, then by the order they were set).
///
/// Most timers are first stall checks, set a fixed delay after a task is queued, so they arrive in time order:
/// they wait in a plain queue, and only the others go to the heap. At 100,000 nodes there were 2.5 M of them per
/// run, and sifting them through a heap of 15,000 was 6 % of the run.
#[derive(Debug, Default)]
pub(super) struct TimerQueue {
    heap: BinaryHeap<TimerEntry>,
    in_order: VecDeque<TimerEntry>,
    seq: u64,
}

impl TimerQueue {
    /// Sets `timer` for `at`; `in_order` if it belongs to a stream whose times never decrease (it still goes to
    /// the heap if one came earlier than the stream's last).
    pub fn push(&mut self, at: Time, timer: Timer, in_order: bool) {
        self.seq += 1;
        let entry = TimerEntry {
            at,
            seq: self.seq,
            timer,
        };
        if in_order && self.in_order.back().is_none_or(|last| last.at <= at) {
            self.in_order.push_back(entry);
        } else {
            self.heap.push(entry);
        }
    }

    /// Whether the head of the in-order queue comes before the head of the heap.
    fn queue_first(&self) -> bool {
        match (self.in_order.front(), self.heap.peek()) {
            (Some(q), Some(h)) => q > h,
            (q, _) => q.is_some(),
        }
    }

    pub fn peek(&self) -> Option<&TimerEntry> {
        if self.queue_first() {
            self.in_order.front()
        } else {
            self.heap.peek()
        }
    }

    pub fn pop(&mut self) -> Option<TimerEntry> {
        if self.queue_first() {
            self.in_order.pop_front()
        } else {
            self.heap.pop()
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len() + self.in_order.len()
    }
}

/// What a popped timer is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimerState {
    Due,
    Stale,
}

impl Scheduler {
    pub(super) fn push_timer(&mut self, at: Time, timer: Timer) {
        // A first stall check is set `stall_timeout_ms` after the task is queued, and time never goes back.
        let in_order = matches!(timer, Timer::Stall { round: 0, .. });
        self.timers.push(at, timer, in_order);
    }

    pub(super) fn copy_live(&self, task: TaskId, copy: u64) -> Option<&CopyRun> {
        let job = self
            .jobs
            .get(&task.job)
            .filter(|j| j.state == JobState::Running)?;
        job.tasks
            .get(&task.index)?
            .copies
            .iter()
            .find(|c| c.id == copy)
    }

    /// Whether the timer still means something at its time `at`.
    pub(super) fn timer_state(&self, at: Time, timer: &Timer) -> TimerState {
        match *timer {
            Timer::ReleaseDeclined { .. } | Timer::Recheck => TimerState::Due,
            Timer::Unbench { node } => {
                if self.benched.get(&node) == Some(&at) {
                    TimerState::Due
                } else {
                    TimerState::Stale
                }
            }
            Timer::Deadline { task, copy } => {
                if self.copy_live(task, copy).is_some() {
                    TimerState::Due
                } else {
                    TimerState::Stale
                }
            }
            Timer::Straggler { task, copy } => {
                let sc = &self.cfg.speculative;
                let ok = sc.enabled
                    && self.copy_live(task, copy).is_some()
                    && self.jobs[&task.job].tasks[&task.index].backups < sc.max_backups_per_task
                    && !self.jobs[&task.job].tasks[&task.index].backup_queued;
                if ok {
                    TimerState::Due
                } else {
                    TimerState::Stale
                }
            }
            Timer::Wake { task } | Timer::Stall { task, .. } => {
                let queued = self
                    .jobs
                    .get(&task.job)
                    .filter(|j| j.state == JobState::Running)
                    .and_then(|j| j.tasks.get(&task.index))
                    .is_some_and(|t| t.queued);
                let same = match *timer {
                    Timer::Wake { .. } => self
                        .jobs
                        .get(&task.job)
                        .and_then(|j| j.tasks.get(&task.index))
                        .is_some_and(|t| t.parked_until == Some(at)),
                    Timer::Stall { since, .. } => self
                        .jobs
                        .get(&task.job)
                        .and_then(|j| j.tasks.get(&task.index))
                        .is_some_and(|t| t.waiting_since == since),
                    _ => true,
                };
                if queued && same {
                    TimerState::Due
                } else {
                    TimerState::Stale
                }
            }
        }
    }

    /// When the live node heard from least recently times out (with liveness tracking on).
    pub(super) fn liveness_expiry(&self) -> Option<Time> {
        let hb = self.cfg.heartbeat_timeout_ms?;
        let (_, seen) = self.index.least_recently_seen()?;
        Some(seen.saturating_add(hb))
    }

    /// Fires the timers due at `now`, and takes out the nodes silent for the heartbeat timeout, in time order
    /// (a timer first at equal times); whether anything fired.
    pub(super) fn fire_timers(&mut self, now: Time, out: &mut Vec<Action>) -> bool {
        let mut fired = false;
        loop {
            let timer_at = self.timers.peek().map(|e| e.at);
            let silent_at = self.liveness_expiry();
            if silent_at.is_some_and(|s| s <= now && timer_at.is_none_or(|t| s < t)) {
                let (node, seen) = self.index.least_recently_seen().expect("a node times out");
                fired = true;
                if self.excused.remove(&node) {
                    // Still silent at the end of its excuse: out, tasks reassigned, no penalty.
                    self.stats.excused_gone += 1;
                    self.on_node_gone(now, node, false, out);
                    continue;
                }
                if self.excuse_burst(now, node, seen) {
                    continue;
                }
                self.on_node_gone(now, node, true, out);
                continue;
            }
            let Some(TimerEntry { at, timer, .. }) = self.timers.peek().copied() else {
                break;
            };
            if at > now {
                break;
            }
            self.timers.pop();
            match self.timer_state(at, &timer) {
                TimerState::Stale => {}
                TimerState::Due => {
                    self.fire(now, timer, out);
                    fired = true;
                }
            }
        }
        fired
    }

    /// `node`, last heard from at `seen`, times out: if it holds tasks and enough other nodes holding tasks
    /// were last heard from within the burst window of it, excuse them all once
    /// (`SchedulerConfig::silence_burst`). Whether it did.
    fn excuse_burst(&mut self, now: Time, node: NodeId, seen: Time) -> bool {
        let Some(burst) = self.cfg.silence_burst else {
            return false;
        };
        let holds = |s: &Self, n: NodeId| s.index.get(n).is_some_and(|e| !e.tasks.is_empty());
        if !holds(self, node) {
            return false;
        }
        let together: Vec<NodeId> = self
            .index
            .seen_until(seen.saturating_add(burst.window_ms))
            .map(|(n, _)| n)
            .filter(|n| holds(self, *n) && !self.excused.contains(n))
            .collect();
        if together.len() < burst.min_nodes as usize {
            return false;
        }
        for n in together {
            self.index.touch(n, now);
            self.excused.insert(n);
            self.stats.silences_excused += 1;
        }
        true
    }

    pub(super) fn fire(&mut self, now: Time, timer: Timer, out: &mut Vec<Action>) {
        match timer {
            Timer::Deadline { task, copy } => {
                let started = self.copy_live(task, copy).expect("due").started;
                let node = self.copy_live(task, copy).expect("due").node;
                self.learn_from_deadline(task, node, now - started);
                if self.extend_if_alive(now, task, copy) {
                    return;
                }
                self.remove_copy_of(now, task, node, ComputeKind::Failed);
                self.stats.timeouts += 1;
                self.cancel_for_silence(node, task, out);
                self.after_failure(now, task, node, format!("{node} missed its deadline"), out);
            }
            Timer::Straggler { task, .. } => self.want_backup(task, true),
            Timer::ReleaseDeclined { node, task } => self.index.on_release(node, task),
            Timer::Unbench { node } => {
                // Dispatch runs after the timers: it may be tried again now.
                self.benched.remove(&node);
                self.index.set_benched(node, false);
                self.horizons.clear();
                // Benches that gave way while every live node was benched hold again now that this one is
                // free.
                self.apply_benches(now);
            }
            Timer::Recheck => {
                // Dispatch runs after the timers; the horizon is recomputed there.
                if self.recheck_at.is_some_and(|at| at <= now) {
                    self.recheck_at = None;
                }
                self.horizons.clear();
            }
            Timer::Wake { task } => {
                // Back into its class queue; dispatch runs after the timers.
                let job = self.jobs.get_mut(&task.job).expect("due");
                let aggregation = job.spec.aggregation;
                let key = qkey(job, task.index, job.tasks[&task.index].height);
                let t = job.tasks.get_mut(&task.index).expect("due");
                t.parked_until = None;
                self.queues
                    .entry(class_of(&t.kind, aggregation))
                    .or_default()
                    .insert(key);
            }
            Timer::Stall { task, since, round } => {
                let job = &self.jobs[&task.job];
                let t = &job.tasks[&task.index];
                let (po2, rec) = class_of(&t.kind, job.spec.aggregation);
                let fitting = self.index.live_fitting(po2, rec);
                let excluded = t
                    .excluded
                    .iter()
                    .filter(|n| {
                        self.index
                            .get(**n)
                            .is_some_and(|e| NodeIndex::fits(&e.cap, po2, rec))
                    })
                    .count() as u64;
                if t.copies.is_empty() && fitting <= excluded {
                    let reason = format!(
                        "no live node can take {task} (needs po2 >= {po2}{}; {excluded} fitting node(s) excluded \
                         after failing it) for {} ms",
                        if rec { " and recursion" } else { "" },
                        now - since
                    );
                    self.end_job(now, task.job, JobOutcome::Failed { reason }, out);
                } else if let Some(stall) = self.cfg.stall_timeout_ms {
                    let wait = stall.saturating_mul(1u64 << (round + 1).min(16));
                    self.push_timer(
                        now.saturating_add(wait),
                        Timer::Stall {
                            task,
                            since,
                            round: round + 1,
                        },
                    );
                }
            }
        }
    }

    /// Drop stale timers from the head so that `next_deadline` is exact.
    pub(super) fn clean_timers(&mut self) {
        while let Some(TimerEntry { at, timer, .. }) = self.timers.peek().copied() {
            match self.timer_state(at, &timer) {
                TimerState::Due => break,
                TimerState::Stale => {
                    self.timers.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The two lanes pop in the order one heap of (time, set order) would, whether or not an "in order" timer
    /// really comes in order.
    #[test]
    fn timer_queue_pops_as_one_heap() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut queue = TimerQueue::default();
        let mut model: BinaryHeap<std::cmp::Reverse<(Time, u64)>> = BinaryHeap::new();
        let (mut seq, mut now, mut to_lane, mut to_heap) = (0u64, 0u64, 0, 0);
        for _ in 0..20_000 {
            if rng.random_bool(0.55) {
                seq += 1;
                let in_order = rng.random_bool(0.6);
                let at = if in_order && rng.random_bool(0.95) {
                    now + 1_000
                } else {
                    now + rng.random_range(0..3_000)
                };
                // The round carries the set order, to tell equal times apart.
                let timer = Timer::Stall {
                    task: TaskId::new(JobId(0), 0),
                    since: 0,
                    round: seq as u32,
                };
                let before = queue.in_order.len();
                queue.push(at, timer, in_order);
                if queue.in_order.len() > before {
                    to_lane += 1;
                } else {
                    to_heap += 1;
                }
                model.push(std::cmp::Reverse((at, seq)));
            } else {
                let got = queue.pop().map(|e| match e.timer {
                    Timer::Stall { round, .. } => (e.at, u64::from(round)),
                    _ => unreachable!(),
                });
                assert_eq!(got, model.pop().map(|std::cmp::Reverse(x)| x));
                if let Some((at, _)) = got {
                    now = now.max(at);
                }
            }
            now += rng.random_range(0..300);
            assert_eq!(queue.len(), model.len());
            assert_eq!(
                queue.peek().map(|e| e.at),
                model.peek().map(|std::cmp::Reverse((at, _))| *at)
            );
        }
        // Both lanes held many timers at once (the heads were compared, not just one lane drained).
        assert!(to_lane > 1_000 && to_heap > 1_000, "{to_lane} {to_heap}");
    }
}
