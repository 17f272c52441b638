//! Placement: the cost of a task on a node, global dispatch over the class queues, finish-time placement
//! (`crate::horizon`) and `try_assign`, where the policy picks among the candidates.

use super::*;

/// How many of the fastest free nodes a retry looks through for ones that have delivered before.
const PROVEN_SCAN: usize = 256;

impl Scheduler {
    pub(super) fn expected_ms(
        &self,
        t: &Task,
        aggregation: Aggregation,
        cap: &NodeCapacity,
    ) -> u64 {
        self.expected_ms_at(t, aggregation, cap.cycles_per_sec)
    }

    /// Work of a task in cycles (what `expected_ms` divides by a speed).
    pub(super) fn task_cycles(&self, t: &Task, aggregation: Aggregation) -> u64 {
        match t.kind {
            TaskKind::Prove { .. } => {
                t.prove_cost
                    + if aggregation == Aggregation::JoinTree {
                        self.cfg.lift_cycles
                    } else {
                        0
                    }
            }
            TaskKind::Join { .. } => self.cfg.join_cycles,
        }
    }

    pub(super) fn expected_ms_at(
        &self,
        t: &Task,
        aggregation: Aggregation,
        cycles_per_sec: f64,
    ) -> u64 {
        let cycles = self.task_cycles(t, aggregation);
        let cps = if cycles_per_sec.is_finite() && cycles_per_sec > 0.0 {
            cycles_per_sec
        } else {
            1.0
        };
        let ms = (cycles as f64 * 1000.0 / cps).ceil();
        if ms >= u64::MAX as f64 / 4.0 {
            u64::MAX / 4
        } else {
            ms as u64
        }
    }

    pub(super) fn cycles_of(&self, task: TaskId) -> Option<u64> {
        let job = self.jobs.get(&task.job)?;
        Some(self.task_cycles(job.tasks.get(&task.index)?, job.spec.aggregation))
    }

    /// Whether `kind` (of a job with `aggregation`) goes to the fastest free nodes.
    pub(super) fn prefers_fast(&self, kind: &TaskKind, aggregation: Aggregation) -> bool {
        let pf = &self.cfg.prefer_fast;
        match kind {
            TaskKind::Join { .. } => pf.joins,
            TaskKind::Prove { .. } => pf.join_tree_proves && aggregation == Aggregation::JoinTree,
        }
    }

    /// Global dispatch: repeatedly take the best-priority queued task among classes that still have a free node.
    pub(super) fn dispatch(&mut self, now: Time, out: &mut Vec<Action>) {
        let mut cursors: BTreeMap<Class, QKey> = BTreeMap::new();
        let mut blocked: BTreeSet<Class> = BTreeSet::new();
        let mut skipped: BTreeMap<Class, u32> = BTreeMap::new();
        loop {
            if self.index.free_total() == 0 {
                return;
            }
            let mut best: Option<(Class, QKey)> = None;
            for (class, q) in &self.queues {
                if blocked.contains(class) {
                    continue;
                }
                let head = match cursors.get(class) {
                    Some(c) => q.range((Bound::Excluded(*c), Bound::Unbounded)).next(),
                    None => q.iter().next(),
                };
                if let Some(&k) = head {
                    if best.is_none_or(|(_, b)| k < b) {
                        best = Some((*class, k));
                    }
                }
            }
            let Some((class, key)) = best else { return };
            if !self.index.has_free(class.0, class.1) {
                blocked.insert(class);
                continue;
            }
            cursors.insert(class, key);
            let placed = self.try_assign(now, TaskId::new(key.3, key.2), false, out);
            if placed == Placement::Placed {
                self.vtime = self.vtime.max(key.0);
            } else if placed == Placement::Held {
                // The class's head waits for a faster slot; so does the rest of its queue.
                blocked.insert(class);
            } else {
                let s = skipped.entry(class).or_insert(0);
                *s += 1;
                if *s > 64 {
                    blocked.insert(class);
                }
            }
        }
    }

    /// Whether some live node that fits the class has delivered a verified result (looks at a bounded number of
    /// the proven nodes).
    pub(super) fn proven_fits(&self, po2: u8, rec: bool) -> bool {
        self.learned
            .iter()
            .filter(|(_, l)| l.samples > 0)
            .take(PROVEN_SCAN)
            .any(|(n, _)| {
                self.index
                    .get(*n)
                    .is_some_and(|e| NodeIndex::fits(&e.cap, po2, rec))
            })
    }

    /// Finish-time placement (`SchedulerConfig::finish_time_placement`): the slowest speed a free node may have
    /// to be given `task` now, when that excludes some free node (`None`: any fitting free node will do).
    /// Only a first copy of a task no node has failed is held back.
    pub(super) fn hold_floor(&mut self, now: Time, task: TaskId) -> Option<f64> {
        if !self.cfg.finish_time_placement {
            return None;
        }
        let job = self.jobs.get(&task.job)?;
        let t = job.tasks.get(&task.index)?;
        if !t.excluded.is_empty() || !t.copies.is_empty() || t.failures > 0 {
            return None;
        }
        let class = class_of(&t.kind, job.spec.aggregation);
        let cycles = self.task_cycles(t, job.spec.aggregation);
        let queued = self.queues.get(&class).map_or(0, BTreeSet::len).max(1);
        let slowest = self.index.slowest_free_speed(class.0, class.1)?;
        let h = self.class_horizon(now, class, cycles, queued)?;
        let gain = self.cfg.finish_time_gain;
        let gain = if gain.is_finite() && gain >= 1.0 {
            gain
        } else {
            1.0
        };
        let floor = horizon::min_speed(cycles, now, h) / gain;
        (slowest < floor).then_some(floor)
    }

    /// The class's horizon for `queued` tasks of `cycles` (see `horizon.rs`), recomputed (a scan of the live
    /// nodes) at most once a second of scheduler time unless the queue has changed by more than a quarter.
    pub(super) fn class_horizon(
        &mut self,
        now: Time,
        class: Class,
        cycles: u64,
        queued: usize,
    ) -> Option<Time> {
        let arrivals = self.arrivals.get(&class).copied().unwrap_or(0);
        if let Some(m) = self.horizons.get(&class) {
            // Placing queued tasks the way the horizon assumes leaves it where it was (each takes the slot that
            // finishes it first); new tasks move it later. Recompute when a quarter of the queue (at least one
            // task) has arrived since, or after a second.
            let new = arrivals - m.arrivals;
            let fresh = new == 0 || new * 4 <= m.queued as u64;
            if fresh && now < m.at.saturating_add(1_000) {
                return m.horizon;
            }
        }
        // Cheap refusal before the scan: far more tasks than fitting nodes means every node will be needed.
        let nodes = self.index.live_fitting(class.0, class.1) as usize;
        let (horizon, next_end) = if queued
            > nodes.max(1)
                * horizon::MAX_QUEUE_PER_SLOT
                * self.cfg.per_node_in_flight_cap.max(1) as usize
        {
            (None, None)
        } else {
            // Only slots that can finish a task before the free nodes alone would finish the queue can
            // matter: an upper bound from the `queued` fastest free nodes sets how far down the speeds to look.
            let free: Vec<(Time, f64)> = self
                .index
                .fastest_free(class.0, class.1, &[], f64::MAX, 0.0, queued)
                .into_iter()
                .filter_map(|n| self.index.get(n))
                .map(|e| (now, e.cap.cycles_per_sec))
                .collect();
            let upper = horizon::horizon(&free, cycles, queued);
            let floor = upper.map_or(0.0, |upper| horizon::min_speed(cycles, now, upper));
            let finish_by = upper.map(|upper| (cycles, upper));
            let slots = self
                .index
                .slots(class.0, class.1, now, floor, queued, finish_by);
            (
                horizon::horizon(&slots, cycles, queued),
                slots.iter().map(|s| s.0).filter(|at| *at > now).min(),
            )
        };
        self.horizons.insert(
            class,
            HorizonMemo {
                at: now,
                queued,
                arrivals,
                horizon,
                next_end,
            },
        );
        horizon
    }

    /// Ask the policy for nodes for `task` and assign them.
    pub(super) fn try_assign(
        &mut self,
        now: Time,
        task: TaskId,
        backup: bool,
        out: &mut Vec<Action>,
    ) -> Placement {
        let hold_floor = if backup {
            None
        } else {
            self.hold_floor(now, task)
        };
        let Some(job) = self
            .jobs
            .get(&task.job)
            .filter(|j| j.state == JobState::Running)
        else {
            return Placement::NotPlaced;
        };
        let Some(t) = job.tasks.get(&task.index) else {
            return Placement::NotPlaced;
        };
        let aggregation = job.spec.aggregation;
        let (po2, rec) = class_of(&t.kind, aggregation);
        let active = t.copies.len() as u32;
        let room = self.cfg.max_copies_per_task.max(1).saturating_sub(active);
        let wanted = if backup {
            1
        } else {
            job.spec.redundancy.saturating_sub(active)
        }
        .min(room);
        if wanted == 0 {
            if backup {
                self.dequeue_backup(task);
            } else {
                self.dequeue(task.job, task.index);
            }
            return Placement::NotPlaced;
        }
        let max_extra = if backup || t.failures == 0 {
            0
        } else {
            room - wanted
        };
        let mut excluded = t.excluded.clone();
        excluded.extend(t.copies.iter().map(|c| c.node));
        if backup && t.backup_if_faster && self.cfg.speculative.only_if_faster {
            // Cheap first look (O(buckets)): if even the fastest free node would not finish first, nobody
            // would; waiting requests are looked at on every input, so this must not ask the policy.
            let beat = straggler_beat(t, now);
            let Some(fastest) = self
                .index
                .fastest_free_one(po2, rec, &excluded)
                .and_then(|n| self.index.get(n))
            else {
                // Nobody to ask now: the request waits.
                return Placement::NotPlaced;
            };
            if now.saturating_add(self.expected_ms(t, aggregation, &fastest.cap)) >= beat {
                self.stats.backups_skipped += 1;
                if !self.cfg.speculative.idle_backups {
                    self.dequeue_backup(task);
                }
                return Placement::NotPlaced;
            }
        }
        let mut hints = Vec::new();
        match t.kind {
            TaskKind::Join { left, right } => {
                for c in [left, right] {
                    if let Some(w) = job.tasks.get(&c.index).and_then(|ct| ct.winner) {
                        hints.push(w);
                    }
                }
            }
            TaskKind::Prove { .. } => {
                if let Some(w) = t
                    .sibling
                    .and_then(|s| job.tasks.get(&s))
                    .and_then(|st| st.winner)
                {
                    hints.push(w);
                }
            }
        }
        let req = SelectionRequest {
            task,
            kind: t.kind,
            now,
            wanted,
            max_extra,
            failures: t.failures,
            assigned_before: t.assigned,
            waiting_since: t.waiting_since,
            hints: &hints,
            reward: job.spec.reward_per_task,
            backup,
        };
        let prefer_fast =
            self.prefers_fast(&t.kind, aggregation) || (backup && self.cfg.prefer_fast.backups);
        // A straggler's backup is offered only to nodes fast enough to finish first (checked again exactly on
        // the picks below): the policy then never picks a slow node while a winning one waits.
        let win_floor = (backup && t.backup_if_faster && self.cfg.speculative.only_if_faster)
            .then(|| match straggler_beat(t, now) {
                Time::MAX => 0.0,
                beat if beat > now + 1 => {
                    self.task_cycles(t, aggregation) as f64 * 1000.0 / (beat - now - 1) as f64
                }
                _ => f64::INFINITY,
            })
            .filter(|floor| *floor > 0.0);
        let fast: Vec<NodeId> = if prefer_fast || hold_floor.is_some() || win_floor.is_some() {
            let pf = &self.cfg.prefer_fast;
            let max = (pf.max_candidates.max(1)).max(wanted + max_extra) as usize;
            let within = if prefer_fast { pf.within } else { f64::MAX };
            let floor = hold_floor.unwrap_or(0.0).max(win_floor.unwrap_or(0.0));
            self.index
                .fastest_free(po2, rec, &excluded, within, floor, max)
        } else {
            Vec::new()
        };
        if fast.is_empty() && win_floor.is_some() {
            // Nobody free now would finish first.
            self.stats.backups_skipped += 1;
            return Placement::NotPlaced;
        }
        if fast.is_empty() && hold_floor.is_some() {
            // No free node would finish before faster slots: wait for them, and look again when the first
            // busy slot should be free (it delivers by then, or is past its expected end and no longer
            // waited for).
            self.stats.held += 1;
            let at = self
                .horizons
                .get(&(po2, rec))
                .and_then(|m| m.next_end.or(m.horizon))
                .unwrap_or(now)
                .max(now + 1);
            if self.recheck_at.is_none_or(|r| at < r) {
                self.recheck_at = Some(at);
                self.push_timer(at, Timer::Recheck);
            }
            return Placement::Held;
        }
        // A task that failed (or a backup) goes to nodes that have delivered a verified result before, when one
        // is free: the nodes that wait longest for work are the ones never tried, and among them the faulty
        // ones are not caught yet (the simulator showed one segment going to five unproven nodes in a row, all
        // lying, each costing a full proving time).
        let proven: Vec<NodeId> = if self.cfg.proven_retries && (backup || t.failures > 0) {
            let pf = &self.cfg.prefer_fast;
            let max = (pf.max_candidates.max(1)).max(wanted + max_extra) as usize;
            let is_proven = |n: &NodeId| self.learned.get(n).is_some_and(|l| l.samples > 0);
            let scan = |floor: f64| {
                self.index
                    .fastest_free(po2, rec, &excluded, f64::MAX, floor, PROVEN_SCAN)
            };
            let mut proven: Vec<NodeId> = if fast.is_empty() {
                scan(0.0)
            } else {
                fast.clone()
            };
            proven.retain(is_proven);
            if proven.is_empty() && !prefer_fast {
                if let Some(floor) = win_floor.filter(|_| !fast.is_empty()) {
                    // None of the fastest winners is proven: one may rank further down among the winners.
                    proven = scan(floor);
                    proven.retain(is_proven);
                }
            }
            proven.truncate(max);
            proven
        } else {
            Vec::new()
        };
        if backup && proven.is_empty() && self.cfg.proven_retries && self.proven_fits(po2, rec) {
            // A backup exists to finish first; on a node never tried it may be a second faulty copy (the
            // simulator saw a backup land on another silent node and the segment wait out both deadlines).
            // Wait for a proven node while one exists; the copy's own deadline still guards the task.
            return Placement::NotPlaced;
        }
        let fast = if proven.is_empty() { fast } else { proven };
        let mut pool = Candidates::new(&self.index, po2, rec, &excluded);
        if !fast.is_empty() {
            pool = pool.restricted_to(&fast);
        }
        let mut selection = self.policy.select(&req, &pool, &self.ledger);
        if selection.picks.is_empty() && hold_floor.is_some() && !prefer_fast {
            // Finish-time placement narrowed the candidates to the fast nodes, and the policy takes none of them
            // (too little stake, an ask above the price): those nodes stay free and would hold the task for
            // ever. Let the policy choose among all the free nodes instead.
            pool = Candidates::new(&self.index, po2, rec, &excluded);
            selection = self.policy.select(&req, &pool, &self.ledger);
        }
        // Re-check every pick: the policy cannot place work on a node that does not fit.
        let mut picks = Vec::new();
        for p in selection.picks {
            if picks.len() as u32 >= wanted + max_extra {
                break;
            }
            if pool.contains(p.node)
                && !picks.iter().any(|q: &crate::policy::Pick| q.node == p.node)
            {
                picks.push(p);
            }
        }
        if backup && t.backup_if_faster && !picks.is_empty() {
            // A straggler's backup must be expected to finish first; a copy past its own expected time might
            // never finish, so it does not count.
            let beat = straggler_beat(t, now);
            picks.retain(|p| {
                self.index.get(p.node).is_some_and(|e| {
                    now.saturating_add(self.expected_ms(t, aggregation, &e.cap)) < beat
                })
            });
            if picks.is_empty() {
                // Nobody free now would win the race. With idle backups, keep the request: a faster node may be
                // free before the straggler is done, and once the straggler is past its expected time any node
                // will do. Without, drop it (the tail trigger still guards the end).
                self.stats.backups_skipped += 1;
                if !self.cfg.speculative.idle_backups {
                    self.dequeue_backup(task);
                }
                return Placement::NotPlaced;
            }
        }
        if picks.is_empty() {
            if let Some(at) = selection.retry_at.filter(|at| *at > now) {
                if !backup {
                    // Park it: out of the class queue until then, so dispatch does not ask again and again.
                    let key = qkey(job, task.index, t.height);
                    if let Some(q) = self.queues.get_mut(&(po2, rec)) {
                        q.remove(&key);
                    }
                    let job = self.jobs.get_mut(&task.job).expect("job");
                    job.tasks.get_mut(&task.index).expect("task").parked_until = Some(at);
                    self.push_timer(at, Timer::Wake { task });
                }
            }
            return Placement::NotPlaced;
        }
        let spec_timeout = job.spec.task_timeout_ms;
        let slow = self
            .cfg
            .speculative
            .slow_factor
            .filter(|_| self.cfg.speculative.enabled);
        // A copy is a straggler once it runs `slow_factor` x past the task's reference time (the median live
        // fitting node's), or past its own node's expected time if that is shorter.
        let reference_ms = match slow {
            Some(_) => self.reference_speed(now, (po2, rec)).map(|speed| {
                self.expected_ms_at(&self.jobs[&task.job].tasks[&task.index], aggregation, speed)
            }),
            None => None,
        };
        let mut assigned = Vec::new();
        for p in picks {
            let cap = self.index.get(p.node).expect("candidate is live").cap;
            let expected =
                self.expected_ms(&self.jobs[&task.job].tasks[&task.index], aggregation, &cap);
            self.copy_seq += 1;
            assigned.push((p, expected, self.copy_seq));
        }
        for (p, expected, id) in assigned {
            let job = self.jobs.get_mut(&task.job).expect("job");
            let t = job.tasks.get_mut(&task.index).expect("task");
            t.assigned += 1;
            t.first_assigned_at.get_or_insert(now);
            let deadline = now.saturating_add(spec_timeout).saturating_add(expected);
            t.copies.push(CopyRun {
                id,
                node: p.node,
                attempt: t.assigned,
                started: now,
                deadline,
                extensions: 0,
                slow: false,
                expected_ms: expected,
                backup,
                price: p.price,
            });
            t.past.push(PastCopy {
                node: p.node,
                started: now,
                price: p.price,
            });
            if backup {
                t.backups += 1;
                job.backups += 1;
                self.stats.backups_launched += 1;
            }
            out.push(Action::Assign {
                task,
                kind: t.kind,
                node: p.node,
                attempt: t.assigned,
                deadline,
            });
            self.stats.assignments += 1;
            // The slot is counted busy until a quarter past the copy's expected time: a little slack before
            // finish-time placement stops waiting for it.
            self.index
                .on_assign(p.node, task, now.saturating_add(expected + expected / 4));
            self.push_timer(deadline, Timer::Deadline { task, copy: id });
            if let Some(k) = slow {
                let base = reference_ms.map_or(expected, |r| r.min(expected));
                let at = now.saturating_add((base as f64 * k).ceil() as u64);
                if at < deadline {
                    self.push_timer(at, Timer::Straggler { task, copy: id });
                }
            }
        }
        self.dirty.insert(task.job);
        if backup {
            self.dequeue_backup(task);
        } else {
            // A new copy changes what a waiting backup request of the task must beat.
            self.recheck_backup(task);
            let job = &self.jobs[&task.job];
            if job.tasks[&task.index].copies.len() as u32 >= job.spec.redundancy {
                self.dequeue(task.job, task.index);
            }
        }
        Placement::Placed
    }
}
