//! What the scheduler learns of nodes from what they do: speeds from verified results, slow results and missed
//! deadlines, deadline extensions for nodes still heard from, and the straggler trigger's reference speed.

use super::*;
use crate::SlowStanding;

impl Scheduler {
    /// `node` verified a result of `task` `took_ms` after it was given the task: that is its speed now
    /// (averaged with earlier results).
    pub(super) fn learn_from_result(&mut self, task: TaskId, node: NodeId, took_ms: Time) {
        if !self.cfg.learn_speed {
            return;
        }
        let Some(cycles) = self.cycles_of(task) else {
            return;
        };
        let observed = cycles as f64 * 1000.0 / took_ms.max(1) as f64;
        let l = self.learned.entry(node).or_insert(LearnedSpeed {
            cycles_per_sec: observed,
            delivered: observed,
            samples: 0,
        });
        l.delivered = if l.samples == 0 {
            observed
        } else {
            (l.delivered + observed) / 2.0
        };
        l.cycles_per_sec = l.delivered;
        l.samples = l.samples.saturating_add(1);
        let speed = l.cycles_per_sec;
        self.index.set_speed(node, speed);
    }

    /// `node`'s result for `task` is arriving slowly `held_ms` after it was given the task: whatever it proves
    /// at, it delivers no faster than `cycles / held_ms`. The speed used to place work on it drops to that if it
    /// is lower (a later verified result averages it back up), so a node that trickles its receipts out is
    /// passed over where faster nodes are free instead of being handed task after task it loses to backups
    /// (the soak's gateway met one in 207 of 475 sessions before). Its delivered count is left alone: it has
    /// not delivered.
    pub(super) fn learn_from_slow_result(&mut self, task: TaskId, node: NodeId, held_ms: Time) {
        if !self.cfg.learn_speed {
            return;
        }
        let Some(cycles) = self.cycles_of(task) else {
            return;
        };
        let observed = cycles as f64 * 1000.0 / held_ms.max(1) as f64;
        let claimed = self.index.get(node).map(|n| n.cap.cycles_per_sec);
        let l = self.learned.entry(node).or_insert(LearnedSpeed {
            cycles_per_sec: claimed.unwrap_or(observed),
            delivered: claimed.unwrap_or(observed),
            samples: 0,
        });
        if observed < l.cycles_per_sec {
            l.cycles_per_sec = observed;
            l.delivered = l.delivered.min(observed);
            let speed = l.cycles_per_sec;
            self.index.set_speed(node, speed);
        }
    }

    /// Counts a slow result of `node`; at the configured count (and at each one after it, until a prompt
    /// verified result clears the count) the node is benched, each time for twice as long as before. A node
    /// alone in the pool is not benched: slow is better than nothing.
    pub(super) fn bench_if_slow_again(&mut self, now: Time, node: NodeId) {
        let Some(cfg) = self.cfg.slow_bench else {
            return;
        };
        let r = self.slow_results.entry(node).or_default();
        r.strikes = r.strikes.saturating_add(1);
        if r.strikes < cfg.after_slow_results.max(1) || self.index.nodes.len() < 2 {
            return;
        }
        let ms = cfg
            .first_ms
            .saturating_mul(1u64 << r.benches.min(32))
            .min(cfg.max_ms.max(cfg.first_ms));
        r.benches = r.benches.saturating_add(1);
        let until = now.saturating_add(ms);
        self.benched.insert(node, until);
        self.stats.benched += 1;
        self.push_timer(until, Timer::Unbench { node });
        self.apply_benches(now);
    }

    /// Puts the benches into placement, keeping "slow is better than nothing": while every live node is
    /// benched, none is kept out (their benches still run, and hold again once another node is live or one of
    /// the benches ends). "Live" is in the pool, whatever its free slots or the classes it can take. Costs a
    /// look at each running bench (a handful) per call, and nothing where none runs.
    pub(super) fn apply_benches(&mut self, now: Time) {
        if self.benched.is_empty() {
            return;
        }
        let live: Vec<NodeId> = self
            .benched
            .iter()
            .filter(|(n, until)| now < **until && self.index.get(**n).is_some())
            .map(|(n, _)| *n)
            .collect();
        let hold = live.len() < self.index.nodes.len();
        for n in live {
            if self.index.get(n).is_some_and(|e| e.benched != hold) {
                self.index.set_benched(n, hold);
                self.horizons.clear();
            }
        }
    }

    /// `node`'s slow-result record at `now`, for a driver to keep for its next run (`None`: no strikes and no
    /// bench running, nothing to keep). A prompt result clears the strikes but not a bench already running.
    pub fn slow_standing(&self, now: Time, node: NodeId) -> Option<SlowStanding> {
        let bench_left_ms = self
            .benched
            .get(&node)
            .map_or(0, |until| until.saturating_sub(now));
        let r = self.slow_results.get(&node);
        if r.is_none() && bench_left_ms == 0 {
            return None;
        }
        let r = r.copied().unwrap_or_default();
        Some(SlowStanding {
            strikes: r.strikes,
            benches: r.benches,
            bench_left_ms,
        })
    }

    /// Starts `node` from the slow-result record an earlier run of the driver kept: what is left of its bench
    /// holds from `now`, and its strikes count towards the next. A record this run already has wins; with
    /// `SchedulerConfig::slow_bench` off it is ignored.
    pub fn remember_slow(&mut self, now: Time, node: NodeId, standing: SlowStanding) {
        if self.cfg.slow_bench.is_none() || self.slow_results.contains_key(&node) {
            return;
        }
        self.slow_results.insert(
            node,
            SlowRecord {
                strikes: standing.strikes,
                benches: standing.benches,
            },
        );
        if standing.bench_left_ms > 0 {
            let until = now.saturating_add(standing.bench_left_ms);
            self.benched.insert(node, until);
            self.push_timer(until, Timer::Unbench { node });
            self.apply_benches(now);
        }
    }

    /// At a missed deadline: if the copy's node is still heard from and has extensions left, give it one more
    /// allowance (its original one) and ask for a backup where that would finish sooner. Returns whether it
    /// did (then the node is slow, not silent: no penalty, no cancel).
    pub(super) fn extend_if_alive(&mut self, now: Time, task: TaskId, copy: u64) -> bool {
        let Some(hb) = self.cfg.heartbeat_timeout_ms else {
            return false;
        };
        let max = self.cfg.slow_extensions;
        let Some(c) = self.copy_live(task, copy) else {
            return false;
        };
        // An excused node only looks heard from (`SchedulerConfig::silence_burst`).
        let alive = !self.excused.contains(&c.node)
            && self
                .index
                .last_seen(c.node)
                .is_some_and(|seen| now.saturating_sub(seen) <= hb);
        if !alive || c.extensions >= max {
            return false;
        }
        // A node that has never delivered may be a griefer that heartbeats and never answers: its copy keeps
        // its extension (an honest slow node is not punished), but the task may get one backup beyond the
        // usual limit, on a proven node (the simulator saw segments held by silent nodes through every
        // extension, ~1,000 s, after their one backup had gone to another silent node).
        let untried =
            self.cfg.proven_retries && self.learned.get(&c.node).is_none_or(|l| l.samples == 0);
        let Some(c) = self
            .jobs
            .get_mut(&task.job)
            .and_then(|j| j.tasks.get_mut(&task.index))
            .and_then(|t| t.copies.iter_mut().find(|c| c.id == copy))
        else {
            return false;
        };
        let allowance = c.deadline.saturating_sub(c.started).max(1) / (u64::from(c.extensions) + 1);
        c.extensions += 1;
        c.deadline = now.saturating_add(allowance);
        let deadline = c.deadline;
        self.stats.extensions += 1;
        self.push_timer(deadline, Timer::Deadline { task, copy });
        self.want_backup_with(task, true, u32::from(untried));
        true
    }

    /// `node` held `task` for `held_ms` without a result: it is slower than `cycles / held_ms`. A node that has
    /// delivered before is assumed to need up to twice that long next time (never less than a quarter of the
    /// speed its results showed), so that its next deadline is one it can meet. A node that never delivered
    /// gains nothing: a silent node must not earn ever longer deadlines by missing them (the simulator showed
    /// silent-but-heartbeating nodes doubling every retry's wait).
    pub(super) fn learn_from_deadline(&mut self, task: TaskId, node: NodeId, held_ms: Time) {
        if !self.cfg.learn_speed {
            return;
        }
        let Some(cycles) = self.cycles_of(task) else {
            return;
        };
        let Some(l) = self.learned.get_mut(&node).filter(|l| l.samples > 0) else {
            return;
        };
        let bound = cycles as f64 * 1000.0 / (2 * held_ms.max(1)) as f64;
        let floor = l.delivered / 4.0;
        let speed = l.cycles_per_sec.min(bound).max(floor);
        if speed < l.cycles_per_sec {
            l.cycles_per_sec = speed;
            self.index.set_speed(node, speed);
        }
    }

    /// The straggler trigger's reference speed for a class: the configured quantile of the claimed speeds of the
    /// live nodes that fit it. The pool keeps the quantile up to date as nodes change (O(log n) each); the value
    /// used here is refreshed only when the node set changed and it is older than `reference_refresh_ms`, so
    /// the reference does not jitter with every placement.
    pub(super) fn reference_speed(&mut self, now: Time, class: Class) -> Option<f64> {
        let q = self.cfg.speculative.reference_quantile?;
        let version = self.index.version();
        let refresh = self.cfg.speculative.reference_refresh_ms;
        if let Some(&(at, v, speed)) = self.reference_speed.get(&class) {
            if v == version || now < at.saturating_add(refresh) {
                return speed;
            }
        }
        let speed = self.index.live_speed_quantile(class.0, class.1, q);
        self.reference_speed.insert(class, (now, version, speed));
        speed
    }
}
