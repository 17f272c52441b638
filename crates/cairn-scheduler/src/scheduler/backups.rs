//! Speculative backups: when a running task gets an extra copy (tail of a job, stragglers, idle nodes once a
//! job's queue is empty) and how waiting requests are placed.

use super::*;

/// Backup requests looked at per dispatch.
const MAX_BACKUP_TRIES: usize = 32;

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
            return;
        }
        let height = t.height;
        t.backup_queued = true;
        t.backup_if_faster = if_faster;
        let key = qkey(job, task.index, height);
        self.backup_queue.insert(key);
        self.backup_inserts += 1;
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

    pub(super) fn dispatch_backups(&mut self, now: Time, out: &mut Vec<Action>) {
        // Straggler requests wait in the queue until some free node would win, so the queue can be long: look
        // at a bounded number per call, round-robin from where the last call stopped, and skip at a glance
        // (the fastest free node of the class, exclusions aside, would not finish first) those nobody can win.
        // Without idle backups requests that cannot start are dropped, the queue stays short: look at all of it.
        let idle = self.cfg.speculative.idle_backups;
        let tries = if idle { MAX_BACKUP_TRIES } else { usize::MAX };
        // Nothing can have become winnable since the last full look if no node was freed, no request was
        // added and no waiting straggler has passed its expected end (then any node would win).
        let stamp = (self.index.free_events(), self.backup_inserts);
        if idle
            && self
                .backup_idle_until
                .is_some_and(|(st, until)| st == stamp && now < until)
        {
            return;
        }
        self.backup_idle_until = None;
        let whole = self.backup_queue.len() <= tries;
        let mut until = Time::MAX;
        let mut placed_any = false;
        let cursor = self.backup_cursor.filter(|_| idle);
        let after: Vec<QKey> = match cursor {
            Some(c) => self
                .backup_queue
                .range((Bound::Excluded(c), Bound::Unbounded))
                .take(tries)
                .copied()
                .collect(),
            None => Vec::new(),
        };
        let wrap = tries - after.len();
        let keys: Vec<QKey> = after
            .into_iter()
            .chain(self.backup_queue.iter().take(wrap).copied())
            .collect();
        // The fastest free speed per class, exclusions aside (few classes: a vector).
        let mut fastest: Vec<(Class, Option<f64>)> = Vec::new();
        let first = keys.first().copied();
        for (i, key) in keys.into_iter().enumerate() {
            if self.index.free_total() == 0 {
                return;
            }
            if i > 0 && Some(key) == first {
                break;
            }
            self.backup_cursor = Some(key);
            let task = TaskId::new(key.3, key.2);
            let need = if idle {
                self.straggler_need(task, now)
            } else {
                None
            };
            if let Some((class, cycles, beat)) = need {
                let speed = match fastest.iter().find(|(c, _)| *c == class) {
                    Some(&(_, sp)) => sp,
                    None => {
                        let sp = self
                            .index
                            .fastest_free(class.0, class.1, &[], f64::MAX, 0.0, 1)
                            .first()
                            .and_then(|n| self.index.get(*n))
                            .map(|e| e.cap.cycles_per_sec);
                        fastest.push((class, sp));
                        sp
                    }
                };
                let wins =
                    speed.is_some_and(|sp| now.saturating_add(horizon::task_ms(cycles, sp)) < beat);
                if !wins {
                    self.stats.backups_skipped += 1;
                    until = until.min(beat);
                    continue;
                }
            }
            if self.try_assign(now, task, true, out) == Placement::Placed {
                fastest.clear();
                placed_any = true;
            } else {
                // Not placed for another reason (no candidate the policy would take): look again next time.
                until = now;
            }
        }
        if idle && whole && !placed_any && until > now {
            self.backup_idle_until = Some((stamp, until));
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
            self.backup_queue.remove(&key);
        }
    }
}
