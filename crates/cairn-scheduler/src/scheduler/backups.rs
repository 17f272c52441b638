//! Speculative backups: when a running task gets an extra copy (tail of a job, stragglers, idle nodes once a
//! job's queue is empty) and how waiting requests are placed.

use super::*;

/// Backup requests looked at per dispatch (with idle backups). Each look places a request, sets it aside or
/// retries it later, but on a busy network the requests set aside come back whenever a faster node is free, and
/// looking at all of them on every input made `linea-measured` 7x slower to simulate.
const MAX_BACKUP_TRIES: usize = 32;

/// When requests are left to look at and nodes are free, the scheduler asks to be woken this much later to go
/// on (it may be sooner, with the next input): waiting requests are not left for whatever input comes next.
const BACKUP_MORE_MS: Time = 250;

/// How long a backup request that was not placed for a reason other than speed waits before it is looked at
/// again.
const BACKUP_RETRY_MS: Time = 1_000;

/// How far past its expected end a copy must be before its task counts as stuck (`dispatch_stuck_backups`): an
/// expected time leaves out transfers and checks, and on a network whose speeds are overestimated every copy
/// runs past it a little. Without this margin the node tests' two fake provers (sub-second tasks) backed each
/// other's copies up ahead of queued work, and one never finished a task of its own.
const STUCK_GRACE_MS: Time = 30_000;

impl Scheduler {
    /// Queue one backup copy of `task`. A straggler's backup (`if_faster`) is launched only on a node expected to
    /// finish before the running copies would (a copy already past its own expected time counts as never);
    /// a tail backup (against silent failures) goes to any free node.
    pub(super) fn want_backup(&mut self, task: TaskId, if_faster: bool) {
        self.want_backup_with(task, if_faster, 0);
    }

    /// `want_backup`, allowing `extra` backups beyond `max_backups_per_task`.
    pub(super) fn want_backup_with(&mut self, task: TaskId, if_faster: bool, extra: u32) {
        let sc = &self.cfg.speculative;
        if !sc.enabled {
            return;
        }
        let max = sc.max_backups_per_task.saturating_add(extra);
        let if_faster = if_faster && sc.only_if_faster;
        let Some(job) = self
            .jobs
            .get_mut(&task.job)
            .filter(|j| j.state == JobState::Running)
        else {
            return;
        };
        let Some(t) = job.tasks.get_mut(&task.index) else {
            return;
        };
        if t.phase != Phase::Released || t.copies.is_empty() || t.backups >= max {
            return;
        }
        if t.backup_queued {
            // A tail request makes a queued straggler request unconditional.
            t.backup_if_faster &= if_faster;
            self.recheck_backup(task);
            return;
        }
        let height = t.height;
        t.backup_queued = true;
        t.backup_if_faster = if_faster;
        let key = qkey(job, task.index, height);
        self.backup_queue.insert(key);
        if if_faster && self.cfg.speculative.stuck_first {
            if let Some((since, _)) = self.stuck_since(task) {
                self.stuck_watch.insert((since, task));
            }
        }
    }

    /// Tail and idle triggers, for each job touched by this input once nothing of it waits for a node: if few
    /// tasks remain, every running task gets a backup (tail); otherwise, while some node is free, every running
    /// task gets a straggler's backup request (idle: it starts only on a node expected to finish first, so
    /// equal nodes never copy each other, and idle fast nodes take over what slow or unproven ones hold).
    pub(super) fn tail_backups(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        let sc = &self.cfg.speculative;
        if !sc.enabled {
            return;
        }
        let tail = sc.tail_tasks as usize;
        let max_backups = sc.max_backups_per_task;
        let idle = sc.idle_backups && self.index.free_total() > 0;
        for id in dirty {
            let Some(job) = self.jobs.get(&id).filter(|j| j.state == JobState::Running) else {
                continue;
            };
            if !job.plan_done || job.queued > 0 || !job.local_ready.is_empty() {
                continue;
            }
            let is_tail = job.unfinished.len() <= tail;
            if !is_tail && !idle {
                continue;
            }
            let running: Vec<u32> = job
                .unfinished
                .iter()
                .copied()
                .filter(|i| {
                    let t = &job.tasks[i];
                    !t.copies.is_empty()
                        && (is_tail || (!t.backup_queued && t.backups < max_backups))
                })
                .collect();
            for i in running {
                self.want_backup(TaskId::new(id, i), !is_tail);
            }
        }
    }

    /// Backups of stuck tasks go before queued work (`SpeculativeConfig::stuck_first`): a straggler request whose
    /// every copy is well past its expected end (its node may never answer) is what its job waits for, while a
    /// queued task of another job has the rest of that job to overlap with. Backups used to get only the nodes
    /// queued work left, and on a loaded network a segment held by a silent node waited for its deadline (1,000 s
    /// and more in `scenarios/policies.toml`). Requests are watched from the time they become stuck
    /// (`stuck_since`), so a call with nothing stuck costs one look; at most `MAX_BACKUP_TRIES` stuck ones are
    /// tried per call, oldest in queue order first. What is not placed here, `dispatch_backups` looks at as before.
    pub(super) fn dispatch_stuck_backups(&mut self, now: Time, out: &mut Vec<Action>) {
        if self.index.free_total() == 0 {
            return;
        }
        while let Some(&(at, task)) = self.stuck_watch.first() {
            if at > now {
                break;
            }
            self.stuck_watch.pop_first();
            match self.stuck_since(task) {
                Some((since, key)) if since <= now => {
                    self.stuck.insert(key);
                }
                Some((since, _)) => {
                    // A copy was added since: watch again from when it would be stuck.
                    self.stuck_watch.insert((since, task));
                }
                None => {}
            }
        }
        let keys: Vec<QKey> = self.stuck.iter().take(MAX_BACKUP_TRIES).copied().collect();
        for key in keys {
            if self.index.free_total() == 0 {
                return;
            }
            let task = TaskId::new(key.3, key.2);
            match self.stuck_since(task) {
                Some((since, k)) if since <= now && k == key => {}
                changed => {
                    // Placed, dropped or given a new copy since (or queued under a new key): out of this set,
                    // and watched again if it is still a straggler request.
                    self.stuck.remove(&key);
                    if let Some((since, _)) = changed {
                        self.stuck_watch.insert((since, task));
                    }
                    continue;
                }
            }
            if self.try_assign(now, task, true, out) == Placement::Placed {
                self.stuck.remove(&key);
            }
        }
    }

    /// For a queued straggler request: when its last copy is `STUCK_GRACE_MS` past its expected end, and its
    /// queue key. `None` if `task` has no such request (placed, dropped, made unconditional, or its job is gone).
    fn stuck_since(&self, task: TaskId) -> Option<(Time, QKey)> {
        let job = self.jobs.get(&task.job)?;
        let t = job.tasks.get(&task.index)?;
        if !(t.backup_queued && t.backup_if_faster) || t.copies.is_empty() {
            return None;
        }
        let since = t
            .copies
            .iter()
            .map(|c| c.started.saturating_add(c.expected_ms))
            .max()?
            .saturating_add(STUCK_GRACE_MS);
        Some((since, qkey(job, task.index, t.height)))
    }

    pub(super) fn dispatch_backups(&mut self, now: Time, out: &mut Vec<Action>) {
        // Straggler requests wait in the queue until some free node would win, so the queue can be long. Those
        // that lost at their last look, and that nothing since can let win, are set aside (`BackupQueue`); of
        // the others a bounded number is looked at per call, round-robin, and skipped at a glance (the fastest
        // free node of the class, exclusions aside, would not finish first) if nobody can win them. Without idle
        // backups requests that cannot start are dropped, the queue stays short: look at all of it.
        let idle = self.cfg.speculative.idle_backups;
        if self.backup_more_at.is_some_and(|t| t <= now) {
            self.backup_more_at = None;
        }
        // The fastest free speed per class, exclusions aside (few classes: a vector).
        let mut fastest: Vec<(Class, Option<f64>)> = Vec::new();
        let index = &self.index;
        self.backup_queue
            .refresh(now, |class| fastest_free_speed(index, &mut fastest, class));
        if self.index.free_total() == 0 {
            return;
        }
        let tries = if idle { MAX_BACKUP_TRIES } else { usize::MAX };
        for key in self.backup_queue.to_look_at(tries) {
            if self.index.free_total() == 0 {
                return;
            }
            if idle {
                self.backup_queue.looked_at(key);
            }
            let task = TaskId::new(key.3, key.2);
            let need = if idle {
                self.straggler_need(task, now)
            } else {
                None
            };
            if let Some((class, cycles, beat)) = need {
                let speed = fastest_free_speed(&self.index, &mut fastest, class);
                let wins =
                    speed.is_some_and(|sp| now.saturating_add(horizon::task_ms(cycles, sp)) < beat);
                if !wins {
                    self.stats.backups_skipped += 1;
                    // Nobody can win it before a free node is at least this fast (the speed it takes grows
                    // as time passes, so this is a floor).
                    let needed = match beat {
                        Time::MAX => 0.0,
                        beat if beat > now + 1 => cycles as f64 * 1000.0 / (beat - now - 1) as f64,
                        _ => f64::MAX,
                    };
                    let lost = Lost {
                        class,
                        speed: needed.max(speed.unwrap_or(0.0)),
                        beat,
                    };
                    self.backup_queue.lose(key, lost);
                    continue;
                }
            }
            if self.try_assign(now, task, true, out) == Placement::Placed {
                fastest.clear();
            } else if idle {
                // Not placed for another reason (its excluded nodes aside nobody wins it, no candidate the policy
                // would take, a proven node awaited): looked at again shortly, or when its copies change. Not
                // whenever a faster node is free: on a busy network that is every other input, and such requests
                // came back and were refused again thousands of times a run.
                let Some(class) = self.backup_class(task) else {
                    self.backup_queue.remove(key);
                    continue;
                };
                let retry = now.saturating_add(BACKUP_RETRY_MS);
                let beat = need.map_or(retry, |(_, _, beat)| beat.min(retry));
                let lost = Lost {
                    class,
                    speed: f64::MAX,
                    beat,
                };
                self.backup_queue.lose(key, lost);
            }
        }
        if idle && self.index.free_total() > 0 && self.backup_queue.has_fresh() {
            self.backup_more_at
                .get_or_insert(now.saturating_add(BACKUP_MORE_MS));
        }
    }

    /// The class of node a backup of `task` needs.
    fn backup_class(&self, task: TaskId) -> Option<Class> {
        let job = self.jobs.get(&task.job)?;
        let t = job.tasks.get(&task.index)?;
        Some(class_of(&t.kind, job.spec.aggregation))
    }

    /// `task`'s copies changed: what the last look at its backup request found no longer holds.
    pub(super) fn recheck_backup(&mut self, task: TaskId) {
        let Some(job) = self.jobs.get(&task.job) else {
            return;
        };
        let Some(t) = job.tasks.get(&task.index) else {
            return;
        };
        if t.backup_queued {
            let key = qkey(job, task.index, t.height);
            self.backup_queue.forget(key);
        }
    }

    /// For a queued straggler backup that must beat its running copies: its class, work and the time to
    /// beat. `None` for any other request.
    pub(super) fn straggler_need(&self, task: TaskId, now: Time) -> Option<(Class, u64, Time)> {
        if !self.cfg.speculative.only_if_faster {
            return None;
        }
        let job = self.jobs.get(&task.job)?;
        let t = job.tasks.get(&task.index)?;
        if !t.backup_if_faster {
            return None;
        }
        let aggregation = job.spec.aggregation;
        Some((
            class_of(&t.kind, aggregation),
            self.task_cycles(t, aggregation),
            straggler_beat(t, now),
        ))
    }

    pub(super) fn dequeue_backup(&mut self, task: TaskId) {
        let Some(job) = self.jobs.get_mut(&task.job) else {
            return;
        };
        let key = qkey(job, task.index, job.tasks[&task.index].height);
        let t = job.tasks.get_mut(&task.index).expect("task");
        if t.backup_queued {
            t.backup_queued = false;
            t.backup_if_faster = false;
            self.backup_queue.remove(key);
        }
    }
}

/// The fastest free speed of `class`, exclusions aside, cached in `fastest` for one look at the queue.
fn fastest_free_speed(
    index: &NodeIndex,
    fastest: &mut Vec<(Class, Option<f64>)>,
    class: Class,
) -> Option<f64> {
    if let Some(&(_, sp)) = fastest.iter().find(|(c, _)| *c == class) {
        return sp;
    }
    let sp = index.fastest_free_speed(class.0, class.1);
    fastest.push((class, sp));
    sp
}
