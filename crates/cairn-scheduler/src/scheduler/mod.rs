//! The state machine. See the crate documentation for the bird's-eye view. Here: its state, the public
//! interface, `handle`, jobs and the plan, nodes, and results and failures; in the child modules: `placement`
//! (dispatch, finish-time placement, `try_assign`), `backups` (speculative copies), `timers` and `learning`
//! (speeds, extensions, the straggler reference). Each child only adds methods to `Scheduler`.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::ops::Bound;

mod backups;
mod learning;
mod placement;
mod task_map;
mod timers;

use crate::backup_queue::{BackupQueue, Lost};
use crate::config::SchedulerConfig;
use crate::horizon;
use crate::ledger::{ComputeKind, Ledger};
use crate::plan::{PlannedJoin, Planner};
use crate::policy::{SelectionPolicy, SelectionRequest};
use crate::pool::{Candidates, NodeIndex};
use crate::status::{AssigneeStatus, JobState, JobStatus, SchedulerStats, TaskState, TaskStatus};
use crate::types::{
    Action, Aggregation, Input, JobId, JobOutcome, JobSpec, NodeCapacity, NodeId, PenaltyCause,
    RejectReason, TaskId, TaskKind, Time, JOIN_INDEX_BASE,
};
use task_map::TaskMap;

/// What a node must offer: (min po2, recursion).
type Class = (u8, bool);
/// Queue order: job submission order, then higher tasks of the tree first, then index.
type QKey = (u64, u32, u32, JobId);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Deadline {
        task: TaskId,
        copy: u64,
    },
    Straggler {
        task: TaskId,
        copy: u64,
    },
    Wake {
        task: TaskId,
    },
    Stall {
        task: TaskId,
        since: Time,
        round: u32,
    },
    /// The slot a node declined is free again.
    ReleaseDeclined {
        node: NodeId,
        task: TaskId,
    },
    /// A placement was held for faster slots expected to be free by now: dispatch again (a slot that did not
    /// finish is then past its expected end and no longer waited for).
    Recheck,
    /// A benched node may be given work again (if it is still benched until this time).
    Unbench {
        node: NodeId,
    },
}

/// A class's horizon as last computed (finish-time placement).
#[derive(Debug, Clone, Copy)]
struct HorizonMemo {
    at: Time,
    queued: usize,
    arrivals: u64,
    horizon: Option<Time>,
    /// The earliest expected end of a busy slot of the class, after `at`.
    next_end: Option<Time>,
}

/// What `try_assign` did with a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    Placed,
    NotPlaced,
    /// Every free node would finish after the class's horizon (finish-time placement).
    Held,
}

#[derive(Debug, Clone)]
struct CopyRun {
    id: u64,
    node: NodeId,
    attempt: u32,
    started: Time,
    deadline: Time,
    expected_ms: u64,
    backup: bool,
    price: Option<u64>,
    /// Deadline extensions granted to this copy because its node was still heard from (slow, not silent).
    extensions: u32,
    /// Its receipt was reported arriving slowly (`Input::ResultSlow`).
    slow: bool,
}

#[derive(Debug, Clone, Copy)]
struct PastCopy {
    node: NodeId,
    started: Time,
    price: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Ready,
    Released,
    Done,
}

#[derive(Debug, Clone)]
struct Task {
    kind: TaskKind,
    height: u32,
    /// What proving the segment's cycles costs (`SchedulerConfig::prove_cost`), worked out once: placement asks often.
    prove_cost: u64,
    phase: Phase,
    deps_left: u8,
    parent: Option<u32>,
    sibling: Option<u32>,
    copies: Vec<CopyRun>,
    past: Vec<PastCopy>,
    excluded: Vec<NodeId>,
    failures: u32,
    assigned: u32,
    backups: u32,
    backup_queued: bool,
    /// The queued backup is for a straggler: launch it only on a node expected to finish first.
    backup_if_faster: bool,
    queued: bool,
    /// Queued, but out of its class queue until this time (a policy asked to be asked again then).
    parked_until: Option<Time>,
    waiting_since: Time,
    winner: Option<NodeId>,
    created_at: Time,
    ready_at: Option<Time>,
    first_assigned_at: Option<Time>,
    verified_at: Option<Time>,
    /// Verified before this scheduler existed (a resumed job): done with no winner.
    restored: bool,
    last_failure: Option<String>,
    /// Errors nodes reported for this task (`Input::TaskErrored`), to tell a poison task from a bad node.
    errors: Vec<(NodeId, String)>,
    /// Its place in the fair queue, given when it is first queued and kept through retries (see
    /// `Scheduler::vtime`).
    tag: Option<u64>,
}

impl Task {
    fn new(kind: TaskKind, height: u32, prove_cost: u64, now: Time) -> Self {
        Self {
            kind,
            height,
            prove_cost,
            phase: Phase::Waiting,
            deps_left: 0,
            parent: None,
            sibling: None,
            copies: Vec::new(),
            past: Vec::new(),
            excluded: Vec::new(),
            failures: 0,
            assigned: 0,
            backups: 0,
            backup_queued: false,
            backup_if_faster: false,
            queued: false,
            parked_until: None,
            waiting_since: now,
            winner: None,
            created_at: now,
            ready_at: None,
            first_assigned_at: None,
            verified_at: None,
            restored: false,
            last_failure: None,
            errors: Vec::new(),
            tag: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Job {
    id: JobId,
    spec: JobSpec,
    state: JobState,
    outcome: Option<JobOutcome>,
    submitted_at: Time,
    finished_at: Option<Time>,
    planner: Planner,
    /// Segments received but not yet given to the planner (they arrived out of order).
    early: BTreeSet<u32>,
    tasks: TaskMap,
    segments_seen: u32,
    total: Option<u32>,
    plan_done: bool,
    root: Option<u32>,
    /// Ready tasks held back by `max_in_flight`: (u32::MAX - height, index).
    local_ready: BTreeSet<(u32, u32)>,
    /// Tasks released to the global queues and not yet verified (counts against `max_in_flight`).
    released: u32,
    /// Of the released, those in a global queue.
    queued: u32,
    unfinished: BTreeSet<u32>,
    done: u32,
    needed_fallback: bool,
    backups: u32,
    /// The fair-queue tag of its latest queued task.
    last_tag: u64,
}

/// Cairn's scheduler. Feed it [`Input`]s with [`Scheduler::handle`]; carry out the [`Action`]s it returns; send
/// [`Input::Tick`] at [`Scheduler::next_deadline`].
pub struct Scheduler {
    cfg: SchedulerConfig,
    policy: Box<dyn SelectionPolicy>,
    ledger: Ledger,
    index: NodeIndex,
    jobs: BTreeMap<JobId, Job>,
    queues: BTreeMap<Class, BTreeSet<QKey>>,
    /// Waiting backup requests, each with what its last look found.
    backup_queue: BackupQueue<QKey, Class>,
    /// Requests were left to look at while nodes were free: look again by then.
    backup_more_at: Option<Time>,
    /// Straggler backup requests by the time they become stuck (`stuck_since`: their last copy well past its
    /// expected end, unless their copies change), and those found stuck, in queue order:
    /// `dispatch_stuck_backups`.
    stuck_watch: BTreeSet<(Time, TaskId)>,
    stuck: BTreeSet<QKey>,
    timers: timers::TimerQueue,
    /// Fair queueing across jobs (start-time fair queueing): the tag of the latest task dispatched. A job's
    /// next task is tagged one past the later of this and the job's previous tag, so a job that arrives
    /// behind a 1,000-segment job takes turns with it instead of waiting for all of it; a join is tagged
    /// with this time itself, so a tree level above goes first within its job.
    vtime: u64,
    copy_seq: u64,
    now: Time,
    dirty: BTreeSet<JobId>,
    stats: SchedulerStats,
    /// Rejected results per node, and nodes in quarantine (until the given time; `Time::MAX` = for good).
    rejected_results: BTreeMap<NodeId, u32>,
    quarantined: BTreeMap<NodeId, Time>,
    /// Slow results per node since its last prompt verified one, and benches so far
    /// (`SchedulerConfig::slow_bench`).
    slow_results: BTreeMap<NodeId, SlowRecord>,
    /// Benched nodes, until when.
    benched: BTreeMap<NodeId, Time>,
    /// Nodes whose silence was excused as part of a burst and not heard from since
    /// (`SchedulerConfig::silence_burst`).
    excused: BTreeSet<NodeId>,
    /// Reference speed per class for the straggler trigger: (computed at, index version, speed).
    reference_speed: BTreeMap<Class, (Time, u64, Option<f64>)>,
    /// Speeds learned from what nodes did (`SchedulerConfig::learn_speed`); they replace the claims.
    learned: BTreeMap<NodeId, LearnedSpeed>,
    /// Tasks that have excluded some node after a failure (a superset: entries of finished tasks are dropped
    /// lazily). Swept when a node leaves the pool, so a task is never left waiting only for nodes it excluded.
    with_exclusions: BTreeSet<TaskId>,
    /// Finish-time placement: per class, the horizon last computed (at, queue length, arrivals then, horizon,
    /// the earliest expected end of a busy slot).
    horizons: BTreeMap<Class, HorizonMemo>,
    /// Tasks ever queued per class (finish-time placement recomputes a horizon when new ones have come).
    arrivals: BTreeMap<Class, u64>,
    /// The earliest `Timer::Recheck` pending.
    recheck_at: Option<Time>,
}

/// A node's slow results (`Input::ResultSlow`) since its last prompt verified one, and how often it has been
/// benched for them (each bench lasts twice the one before).
#[derive(Debug, Clone, Copy, Default)]
struct SlowRecord {
    strikes: u32,
    benches: u32,
}

/// A node's speed as measured by the scheduler, from its verified results (and capped after a missed
/// deadline).
#[derive(Debug, Clone, Copy)]
struct LearnedSpeed {
    /// The speed used for its deadlines.
    cycles_per_sec: f64,
    /// The speed its verified results showed (averaged).
    delivered: f64,
    samples: u32,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("policy", &self.policy.name())
            .field("now", &self.now)
            .field("jobs", &self.jobs.len())
            .field("nodes", &self.index.nodes.len())
            .field("timers", &self.timers.len())
            .finish_non_exhaustive()
    }
}

/// A task's place in its class queue: its fair-queue tag first (jobs take turns), then higher tree levels
/// first, then segment order.
fn qkey(job: &Job, index: u32, height: u32) -> QKey {
    let tag = job.tasks.get(&index).and_then(|t| t.tag).unwrap_or(0);
    (tag, u32::MAX - height, index, job.id)
}

fn needs_recursion(kind: &TaskKind, aggregation: Aggregation) -> bool {
    match kind {
        TaskKind::Join { .. } => true,
        TaskKind::Prove { .. } => aggregation == Aggregation::JoinTree,
    }
}

fn class_of(kind: &TaskKind, aggregation: Aggregation) -> Class {
    (kind.po2(), needs_recursion(kind, aggregation))
}

/// When a straggler's backup must be done to win: the earliest expected end of its running copies that are not
/// yet past it (a copy past its own expected time might never finish: it does not count).
fn straggler_beat(t: &Task, now: Time) -> Time {
    t.copies
        .iter()
        .map(|c| {
            let end = c.started.saturating_add(c.expected_ms);
            if end > now {
                end
            } else {
                Time::MAX
            }
        })
        .min()
        .unwrap_or(Time::MAX)
}

/// If every live node that could take `t` has failed it, lifts its exclusions of live nodes (the second
/// chance): a decline or a lost offer is often transient, and a task must not wait for nodes that are gone.
fn second_chance(index: &NodeIndex, t: &mut Task, aggregation: Aggregation) {
    let (po2, rec) = class_of(&t.kind, aggregation);
    let fitting = index.live_fitting(po2, rec);
    let excluded_live = t
        .excluded
        .iter()
        .filter(|n| {
            index
                .get(**n)
                .is_some_and(|e| NodeIndex::fits(&e.cap, po2, rec))
        })
        .count() as u64;
    if fitting > 0 && excluded_live >= fitting {
        t.excluded.retain(|n| index.get(*n).is_none());
    }
}

impl Scheduler {
    pub fn new(config: SchedulerConfig, policy: Box<dyn SelectionPolicy>) -> Self {
        let ledger = Ledger::new(config.ledger.clone());
        Self {
            cfg: config,
            policy,
            ledger,
            index: NodeIndex::new(),
            jobs: BTreeMap::new(),
            queues: BTreeMap::new(),
            backup_queue: BackupQueue::default(),
            backup_more_at: None,
            stuck_watch: BTreeSet::new(),
            stuck: BTreeSet::new(),
            timers: timers::TimerQueue::default(),
            vtime: 0,
            copy_seq: 0,
            now: 0,
            dirty: BTreeSet::new(),
            stats: SchedulerStats::default(),
            rejected_results: BTreeMap::new(),
            quarantined: BTreeMap::new(),
            slow_results: BTreeMap::new(),
            benched: BTreeMap::new(),
            excused: BTreeSet::new(),
            reference_speed: BTreeMap::new(),
            learned: BTreeMap::new(),
            with_exclusions: BTreeSet::new(),
            horizons: BTreeMap::new(),
            arrivals: BTreeMap::new(),
            recheck_at: None,
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn ledger_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }

    /// The latest time the scheduler has seen.
    pub fn now(&self) -> Time {
        self.now
    }

    /// When the driver must send [`Input::Tick`] next (a deadline, a liveness check, a straggler check, an
    /// auction's price step). Exact: no stale entry is ever at the head.
    pub fn next_deadline(&self) -> Option<Time> {
        let timer = self.timers.peek().map(|e| e.at);
        [timer, self.liveness_expiry(), self.backup_wake()]
            .into_iter()
            .flatten()
            .min()
    }

    /// When waiting backup requests are looked at again by time alone: a set-aside one becomes winnable (its
    /// running copy passes its expected end), or some were left over while nodes were free.
    fn backup_wake(&self) -> Option<Time> {
        [self.backup_queue.next_beat(), self.backup_more_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Silences excused in bursts, and excused nodes taken out still silent (`SchedulerConfig::silence_burst`):
    /// the two counters of [`Scheduler::stats`], without its sums over the pool.
    pub fn silences_excused(&self) -> (u64, u64) {
        (self.stats.silences_excused, self.stats.excused_gone)
    }

    pub fn stats(&self) -> SchedulerStats {
        let mut s = self.stats.clone();
        s.nodes_live = self.index.nodes.len() as u64;
        s.nodes_with_free_slot = self.index.free_total() as u64;
        s.tasks_queued = self.queues.values().map(|q| q.len() as u64).sum();
        s.jobs_running = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running)
            .count() as u64;
        s
    }

    /// Whether `node` is known and live.
    /// What the scheduler has learned of each node's speed from its verified results: (node, cycles per
    /// second, results it is based on). A driver persists it to start the next run from it
    /// ([`Scheduler::remember_speed`]).
    pub fn learned_speeds(&self) -> impl Iterator<Item = (NodeId, f64, u32)> + '_ {
        self.learned
            .iter()
            .map(|(n, l)| (*n, l.cycles_per_sec, l.samples))
    }

    /// Starts `node` from a speed learned in an earlier run of the driver, so its deadlines follow what it
    /// delivered rather than what it claims from its first task on; this run's results refine it.
    pub fn remember_speed(&mut self, node: NodeId, cycles_per_sec: f64, samples: u32) {
        if !self.cfg.learn_speed || !cycles_per_sec.is_finite() || cycles_per_sec <= 0.0 {
            return;
        }
        if self.learned.contains_key(&node) {
            return;
        }
        self.learned.insert(
            node,
            LearnedSpeed {
                cycles_per_sec,
                delivered: cycles_per_sec,
                samples,
            },
        );
        if self.index.get(node).is_some() {
            self.index.set_speed(node, cycles_per_sec);
        }
    }

    /// Whether `node` was ever given `task` (a copy running now or one that ended: a late result of a
    /// cancelled copy is still that node's answer, and evidence if it is a copy). A driver checks this
    /// before it fetches or records a result: a peer never given the task has no result to give.
    pub fn was_given(&self, task: TaskId, node: NodeId) -> bool {
        self.jobs
            .get(&task.job)
            .and_then(|j| j.tasks.get(&task.index))
            .is_some_and(|t| {
                t.copies.iter().any(|c| c.node == node) || t.past.iter().any(|c| c.node == node)
            })
    }

    pub fn node_capacity(&self, node: NodeId) -> Option<NodeCapacity> {
        self.index.get(node).map(|e| e.cap)
    }

    /// Every live node's capacity at the speed the scheduler uses for it (learned, where it has delivered),
    /// its slots cut to the per-node cap: what a client predicts a job from (`crate::predict`).
    pub fn live_capacities(&self) -> impl Iterator<Item = (NodeId, NodeCapacity)> + '_ {
        self.index.nodes.iter().map(|(n, e)| {
            (
                n,
                NodeCapacity {
                    slots: e.limit,
                    ..e.cap
                },
            )
        })
    }

    /// Ready tasks of a running job that no node has started yet (throttled or queued): a driver can pause
    /// execution while this is high (backpressure on the executor). None if the job is unknown or finished.
    pub fn backlog(&self, job: JobId) -> Option<u32> {
        let j = self
            .jobs
            .get(&job)
            .filter(|j| j.state == JobState::Running)?;
        Some(j.local_ready.len() as u32 + j.queued)
    }

    /// Forget a finished job (its status is no longer available). Returns whether it was forgotten.
    pub fn forget_job(&mut self, job: JobId) -> bool {
        if self
            .jobs
            .get(&job)
            .is_some_and(|j| j.state != JobState::Running)
        {
            self.jobs.remove(&job);
            true
        } else {
            false
        }
    }

    /// Ids of jobs known to the scheduler (running and finished, not forgotten).
    pub fn jobs(&self) -> impl Iterator<Item = JobId> + '_ {
        self.jobs.keys().copied()
    }

    pub fn job_status(&self, job: JobId) -> Option<JobStatus> {
        let j = self.jobs.get(&job)?;
        let mut tasks = Vec::with_capacity(j.tasks.len());
        let mut in_flight = 0;
        for (index, t) in j.tasks.iter() {
            in_flight += t.copies.len() as u32;
            let wanted = j.spec.redundancy;
            let state = match t.phase {
                Phase::Done => TaskState::Verified,
                _ if j.state != JobState::Running => TaskState::Abandoned,
                Phase::Waiting => TaskState::WaitingForInputs,
                Phase::Ready => TaskState::Throttled,
                Phase::Released if t.queued || (t.copies.len() as u32) < wanted => {
                    TaskState::Queued
                }
                Phase::Released => TaskState::Running,
            };
            tasks.push(TaskStatus {
                task: TaskId::new(job, index),
                kind: t.kind,
                state,
                height: t.height,
                assignees: t
                    .copies
                    .iter()
                    .map(|c| AssigneeStatus {
                        node: c.node,
                        attempt: c.attempt,
                        started_at: c.started,
                        deadline: c.deadline,
                        expected_ms: c.expected_ms,
                        backup: c.backup,
                        price: c.price,
                    })
                    .collect(),
                winner: t.winner,
                attempts: t.assigned,
                failures: t.failures,
                backups: t.backups,
                excluded: t.excluded.clone(),
                created_at: t.created_at,
                ready_at: t.ready_at,
                first_assigned_at: t.first_assigned_at,
                verified_at: t.verified_at,
                last_failure: t.last_failure.clone(),
            });
        }
        Some(JobStatus {
            job,
            state: j.state,
            spec: j.spec.clone(),
            submitted_at: j.submitted_at,
            finished_at: j.finished_at,
            outcome: j.outcome.clone(),
            segments_received: j.segments_seen,
            segments_total: j.total,
            root: j.root.map(|r| TaskId::new(job, r)),
            tasks_total: j.tasks.len() as u32,
            tasks_verified: j.done,
            copies_in_flight: in_flight,
            needed_fallback: j.needed_fallback,
            backups: j.backups,
            tasks,
        })
    }

    /// `Input::Heartbeats` without handing over a vector: `nodes` were all heard from at `now`. A driver
    /// that sends large rounds (the simulator's are every live node) keeps one buffer for them.
    pub fn heartbeats(&mut self, now: Time, nodes: &[NodeId]) -> Vec<Action> {
        let now = self.advance_to(now);
        for &node in nodes {
            self.touch(node, now);
        }
        Vec::new()
    }

    /// Moves the clock to `now` (times before the latest seen are taken as the latest), and returns it.
    fn advance_to(&mut self, now: Time) -> Time {
        let now = now.max(self.now);
        self.now = now;
        self.ledger.advance_to(now);
        now
    }

    /// Process one input at time `now` (times before the latest seen are taken as the latest).
    pub fn handle(&mut self, now: Time, input: Input) -> Vec<Action> {
        let now = self.advance_to(now);
        let mut out = Vec::new();
        // A heartbeat only says the node is alive: nothing else happens, so the schedule does not depend on how
        // often nodes heartbeat (nor does it cost a pass over the queues, 66.7 M of them in a simulated run of
        // 100,000 nodes). What waits on time alone is due at `next_deadline`, when the driver sends a tick; a
        // tick with nothing due changes nothing either.
        match input {
            Input::Heartbeat { node } => {
                self.touch(node, now);
                return out;
            }
            Input::Heartbeats { nodes } => return self.heartbeats(now, &nodes),
            _ => {}
        }
        let tick = matches!(input, Input::Tick);
        match input {
            Input::SubmitJob { job, spec } => self.on_submit(now, job, spec, &mut out),
            Input::SegmentReady {
                job,
                segment,
                cycles,
            } => self.on_segment(now, job, segment, cycles, false, &mut out),
            Input::SegmentRestored {
                job,
                segment,
                cycles,
            } => self.on_segment(now, job, segment, cycles, true, &mut out),
            Input::ExecutionFinished { job, segments } => {
                self.on_execution_finished(now, job, segments, &mut out)
            }
            Input::ExecutionFailed { job, reason } => {
                if self.is_running(job) {
                    self.end_job(
                        now,
                        job,
                        JobOutcome::Failed {
                            reason: format!("execution failed: {reason}"),
                        },
                        &mut out,
                    );
                }
            }
            Input::CancelJob { job } => {
                if self.is_running(job) {
                    self.end_job(now, job, JobOutcome::Cancelled, &mut out);
                }
            }
            Input::NodeJoined { node, capacity } => self.on_node_joined(now, node, capacity),
            Input::NodeLeft { node } => self.on_node_gone(now, node, false, &mut out),
            Input::Heartbeat { .. } | Input::Heartbeats { .. } => {}
            Input::TaskFailed { node, task, reason } => {
                self.on_failed(now, node, task, &reason, &mut out)
            }
            Input::TaskErrored { node, task, error } => match self.poison(task, node, &error) {
                Some(reason) => {
                    self.touch(node, now);
                    self.end_job(now, task.job, JobOutcome::Failed { reason }, &mut out);
                }
                None => self.on_failed(now, node, task, &error, &mut out),
            },
            Input::TaskDeclined { node, task, reason } => {
                self.touch(node, now);
                self.on_declined(now, node, task, reason);
            }
            Input::ResultSlow { node, task } => {
                let started = self
                    .jobs
                    .get_mut(&task.job)
                    .and_then(|j| j.tasks.get_mut(&task.index))
                    .and_then(|t| t.copies.iter_mut().find(|c| c.node == node))
                    .map(|c| {
                        c.slow = true;
                        c.started
                    });
                if let Some(started) = started {
                    self.learn_from_slow_result(task, node, now.saturating_sub(started));
                    self.bench_if_slow_again(now, node);
                }
                // Not a word from the node (the driver's own timer): no `touch`. Unconditional (the slow copy's proof is done; only its transfer lags) and beyond the usual
                // limit, like the backup of a copy on a node that never delivered.
                self.want_backup_with(task, false, 1);
            }
            Input::ResultVerified { node, task } => {
                self.touch(node, now);
                self.on_verified(now, node, task, &mut out);
            }
            Input::ResultRejected { node, task, reason } => {
                self.touch(node, now);
                self.on_rejected(now, node, task, reason, &mut out);
            }
            Input::Tick => {}
        }
        let fired = self.fire_timers(now, &mut out);
        let backups_due = self.backup_wake().is_some_and(|t| t <= now);
        if !tick || fired || backups_due {
            if self.cfg.speculative.stuck_first {
                self.dispatch_stuck_backups(now, &mut out);
            }
            self.dispatch(now, &mut out);
            self.tail_backups();
            self.dispatch_backups(now, &mut out);
        }
        self.clean_timers();
        out
    }

    // ---- jobs and the plan ----

    fn is_running(&self, job: JobId) -> bool {
        self.jobs
            .get(&job)
            .is_some_and(|j| j.state == JobState::Running)
    }

    fn on_submit(&mut self, now: Time, id: JobId, spec: JobSpec, out: &mut Vec<Action>) {
        if self.jobs.contains_key(&id) {
            return;
        }
        let invalid = if spec.redundancy == 0 {
            Some("invalid job spec: redundancy must be at least 1")
        } else if spec.max_attempts == 0 {
            Some("invalid job spec: max_attempts must be at least 1")
        } else if spec.max_in_flight == 0 {
            Some("invalid job spec: max_in_flight must be at least 1")
        } else {
            None
        };
        let job = Job {
            id,
            spec,
            state: JobState::Running,
            outcome: None,
            submitted_at: now,
            finished_at: None,
            planner: Planner::default(),
            early: BTreeSet::new(),
            tasks: TaskMap::default(),
            segments_seen: 0,
            total: None,
            plan_done: false,
            root: None,
            local_ready: BTreeSet::new(),
            released: 0,
            queued: 0,
            unfinished: BTreeSet::new(),
            done: 0,
            needed_fallback: false,
            backups: 0,
            last_tag: self.vtime,
        };
        self.jobs.insert(id, job);
        if let Some(reason) = invalid {
            self.end_job(
                now,
                id,
                JobOutcome::Failed {
                    reason: reason.to_string(),
                },
                out,
            );
        }
    }

    fn on_segment(
        &mut self,
        now: Time,
        id: JobId,
        segment: u32,
        cycles: u64,
        restored: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(job) = self
            .jobs
            .get_mut(&id)
            .filter(|j| j.state == JobState::Running)
        else {
            return;
        };
        if job.tasks.contains_key(&segment) {
            return; // duplicate
        }
        if segment >= JOIN_INDEX_BASE || job.total.is_some_and(|t| segment >= t) {
            let reason = match job.total {
                Some(t) => {
                    format!("segment {segment} reported, but execution finished with {t} segments")
                }
                None => format!("segment index {segment} out of range"),
            };
            self.end_job(now, id, JobOutcome::Failed { reason }, out);
            return;
        }
        let po2 = job.spec.po2;
        let cycles = if cycles == 0 {
            1u64 << po2.min(40)
        } else {
            cycles
        };
        job.segments_seen += 1;
        let cost = self.cfg.prove_cost(cycles);
        let mut task = Task::new(TaskKind::Prove { segment, po2 }, 0, cost, now);
        if restored {
            task.phase = Phase::Done;
            task.restored = true;
            task.verified_at = Some(now);
            job.done += 1;
            job.tasks.insert(segment, task);
            self.dirty.insert(id);
        } else {
            job.tasks.insert(segment, task);
            job.unfinished.insert(segment);
            self.make_ready(now, id, segment);
        }
        if self.jobs[&id].spec.aggregation == Aggregation::JoinTree {
            let job = self.jobs.get_mut(&id).expect("job");
            job.early.insert(segment);
            let mut planned = Vec::new();
            while job.early.first() == Some(&job.planner.pushed()) {
                let s = job.early.pop_first().expect("first");
                planned.extend(job.planner.push(s));
            }
            self.add_joins(now, id, planned);
        }
        self.maybe_finish_plan(now, id, out);
        if restored {
            self.check_complete(now, id, out);
        }
    }

    fn on_execution_finished(
        &mut self,
        now: Time,
        id: JobId,
        segments: u32,
        out: &mut Vec<Action>,
    ) {
        let Some(job) = self
            .jobs
            .get_mut(&id)
            .filter(|j| j.state == JobState::Running)
        else {
            return;
        };
        if job.total.is_some() {
            return;
        }
        if segments == 0 {
            self.end_job(
                now,
                id,
                JobOutcome::Failed {
                    reason: "execution produced no segments".into(),
                },
                out,
            );
            return;
        }
        if let Some(last) = job.tasks.last_segment() {
            if last >= segments {
                let reason = format!(
                    "execution finished with {segments} segments, but segment {last} was reported"
                );
                self.end_job(now, id, JobOutcome::Failed { reason }, out);
                return;
            }
        }
        job.total = Some(segments);
        self.maybe_finish_plan(now, id, out);
    }

    /// Once all segments are in: the last joins (join tree), then check for completion.
    fn maybe_finish_plan(&mut self, now: Time, id: JobId, out: &mut Vec<Action>) {
        let job = self.jobs.get_mut(&id).expect("job");
        if job.plan_done || job.total != Some(job.segments_seen) {
            return;
        }
        job.plan_done = true;
        if job.spec.aggregation == Aggregation::JoinTree {
            let (joins, root) = job.planner.finish();
            job.root = root;
            self.add_joins(now, id, joins);
        }
        self.dirty.insert(id);
        self.check_complete(now, id, out);
    }

    fn add_joins(&mut self, now: Time, id: JobId, joins: Vec<PlannedJoin>) {
        for pj in joins {
            let job = self.jobs.get_mut(&id).expect("job");
            let kind = TaskKind::Join {
                left: TaskId::new(id, pj.left),
                right: TaskId::new(id, pj.right),
            };
            let mut t = Task::new(kind, pj.height, 0, now);
            for (child, other) in [(pj.left, pj.right), (pj.right, pj.left)] {
                let c = job
                    .tasks
                    .get_mut(&child)
                    .expect("child planned before parent");
                c.parent = Some(pj.index);
                c.sibling = Some(other);
                if c.phase != Phase::Done {
                    t.deps_left += 1;
                }
            }
            let ready = t.deps_left == 0;
            job.tasks.insert(pj.index, t);
            job.unfinished.insert(pj.index);
            if ready {
                self.make_ready(now, id, pj.index);
            }
        }
    }

    /// A task's inputs are verified: it joins the job's ready set, and is released if the job has room.
    fn make_ready(&mut self, now: Time, id: JobId, index: u32) {
        let job = self.jobs.get_mut(&id).expect("job");
        let t = job.tasks.get_mut(&index).expect("task");
        t.phase = Phase::Ready;
        t.ready_at = Some(now);
        job.local_ready.insert((u32::MAX - t.height, index));
        self.release(now, id);
    }

    /// Move ready tasks to the global queues while the job is under its in-flight cap.
    fn release(&mut self, now: Time, id: JobId) {
        loop {
            let job = self.jobs.get_mut(&id).expect("job");
            if job.released >= job.spec.max_in_flight {
                return;
            }
            let Some((_, index)) = job.local_ready.pop_first() else {
                return;
            };
            job.released += 1;
            job.tasks.get_mut(&index).expect("task").phase = Phase::Released;
            self.enqueue(now, id, index);
        }
    }

    /// Put a released task in its class queue if it wants more copies and is not there yet.
    fn enqueue(&mut self, now: Time, id: JobId, index: u32) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.state != JobState::Running {
            return;
        }
        let aggregation = job.spec.aggregation;
        let redundancy = job.spec.redundancy;
        {
            let t = &job.tasks[&index];
            if t.phase != Phase::Released || t.queued || t.copies.len() as u32 >= redundancy {
                return;
            }
        }
        let t = job.tasks.get_mut(&index).expect("task");
        if t.tag.is_none() {
            let tag = if t.height > 0 {
                self.vtime
            } else {
                job.last_tag = job.last_tag.max(self.vtime) + 1;
                job.last_tag
            };
            t.tag = Some(tag);
        }
        let key = qkey(job, index, job.tasks[&index].height);
        let t = job.tasks.get_mut(&index).expect("task");
        t.queued = true;
        t.waiting_since = now;
        let class = class_of(&t.kind, aggregation);
        job.queued += 1;
        self.queues.entry(class).or_default().insert(key);
        *self.arrivals.entry(class).or_default() += 1;
        if let Some(stall) = self.cfg.stall_timeout_ms {
            self.push_timer(
                now + stall,
                Timer::Stall {
                    task: TaskId::new(id, index),
                    since: now,
                    round: 0,
                },
            );
        }
    }

    fn dequeue(&mut self, id: JobId, index: u32) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let aggregation = job.spec.aggregation;
        let key = qkey(job, index, job.tasks[&index].height);
        let t = job.tasks.get_mut(&index).expect("task");
        if t.queued {
            t.queued = false;
            t.parked_until = None;
            job.queued -= 1;
            let class = class_of(&t.kind, aggregation);
            if let Some(q) = self.queues.get_mut(&class) {
                q.remove(&key);
            }
        }
    }

    /// Out of both the class queue and the backup queue.
    fn dequeue_all(&mut self, id: JobId, index: u32) {
        self.dequeue(id, index);
        self.dequeue_backup(TaskId::new(id, index));
    }

    fn check_complete(&mut self, now: Time, id: JobId, out: &mut Vec<Action>) {
        let job = &self.jobs[&id];
        if job.state != JobState::Running || !job.plan_done {
            return;
        }
        let complete = match job.spec.aggregation {
            Aggregation::JoinTree => job.root.is_some_and(|r| job.tasks[&r].phase == Phase::Done),
            Aggregation::Composite => job.done == job.tasks.len() as u32,
        };
        if complete {
            debug_assert!(job
                .tasks
                .values()
                .all(|t| t.phase == Phase::Done && (t.winner.is_some() || t.restored)));
            let root = match job.spec.aggregation {
                Aggregation::JoinTree => job.root.map(|r| TaskId::new(id, r)),
                Aggregation::Composite => None,
            };
            self.end_job(now, id, JobOutcome::Completed { root }, out);
        }
    }

    /// Finish a job any way: stop every copy in flight, empty its queues, burn escrow of unproved tasks.
    fn end_job(&mut self, now: Time, id: JobId, outcome: JobOutcome, out: &mut Vec<Action>) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        if job.state != JobState::Running {
            return;
        }
        let indices: Vec<u32> = job.tasks.keys().collect();
        for index in indices {
            self.dequeue_all(id, index);
            let job = self.jobs.get_mut(&id).expect("job");
            let t = job.tasks.get_mut(&index).expect("task");
            let task = TaskId::new(id, index);
            for c in std::mem::take(&mut t.copies) {
                out.push(Action::Cancel { task, node: c.node });
                self.index.on_release(c.node, task);
                self.ledger
                    .record_compute(c.node, now - c.started, ComputeKind::Redundant);
            }
            if t.phase != Phase::Done {
                self.ledger.burn_escrow(task);
            }
        }
        let job = self.jobs.get_mut(&id).expect("job");
        job.state = match outcome {
            JobOutcome::Completed { .. } => {
                self.stats.jobs_completed += 1;
                JobState::Completed
            }
            JobOutcome::Failed { .. } => {
                self.stats.jobs_failed += 1;
                JobState::Failed
            }
            JobOutcome::Cancelled => {
                self.stats.jobs_cancelled += 1;
                JobState::Cancelled
            }
        };
        job.finished_at = Some(now);
        job.outcome = Some(outcome.clone());
        job.local_ready.clear();
        out.push(Action::JobFinished { job: id, outcome });
    }

    // ---- nodes ----

    fn on_node_joined(&mut self, now: Time, node: NodeId, mut capacity: NodeCapacity) {
        if let Some(&until) = self.quarantined.get(&node) {
            if now < until {
                return;
            }
            self.quarantined.remove(&node);
            self.rejected_results.remove(&node);
        }
        if let Some(l) = self.learned.get(&node) {
            // What it did outweighs what it says.
            capacity.cycles_per_sec = l.cycles_per_sec;
        }
        self.index
            .upsert(node, capacity, self.cfg.per_node_in_flight_cap, now);
        self.apply_benches(now);
        self.ledger.open_account(node);
    }

    fn touch(&mut self, node: NodeId, now: Time) {
        self.index.touch(node, now);
        if !self.excused.is_empty() {
            self.excused.remove(&node);
        }
    }

    /// Tells `node` to stop its copy of `task` and slashes it for the silence (a missed deadline, or a node
    /// gone quiet with the copy in hand).
    pub(super) fn cancel_for_silence(&mut self, node: NodeId, task: TaskId, out: &mut Vec<Action>) {
        out.push(Action::Cancel { task, node });
        let amount = self.ledger.slash(node, task, PenaltyCause::Silence);
        out.push(Action::Penalize {
            node,
            task,
            cause: PenaltyCause::Silence,
            amount,
        });
    }

    /// A node left (announced) or went silent (`silent`: its abandoned tasks cost it a Silence penalty, and it is
    /// told to stop).
    fn on_node_gone(&mut self, now: Time, node: NodeId, silent: bool, out: &mut Vec<Action>) {
        self.remove_node(now, node, silent, false, out);
    }

    /// Takes `node` out of the pool: its copies in flight are reassigned (and, if it went silent or is
    /// quarantined, it is told to stop them).
    fn remove_node(
        &mut self,
        now: Time,
        node: NodeId,
        silent: bool,
        quarantine: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(entry) = self.index.remove(node) else {
            return;
        };
        self.excused.remove(&node);
        for task in entry.tasks {
            let Some(_) = self.remove_copy_of(now, task, node, ComputeKind::Failed) else {
                continue;
            };
            self.stats.abandoned_by_departure += 1;
            if quarantine {
                out.push(Action::Cancel { task, node });
                self.after_failure(now, task, node, format!("{node} is quarantined"), out);
                continue;
            }
            if silent {
                self.cancel_for_silence(node, task, out);
            }
            let why = if silent {
                format!("{node} went silent")
            } else {
                format!("{node} left")
            };
            self.after_failure(now, task, node, why, out);
        }
        self.apply_benches(now);
        self.second_chance_sweep();
    }

    /// The pool shrank: a queued task whose remaining live fitting nodes have all failed it gets the second
    /// chance `after_failure` gives (its exclusions of live nodes are lifted) instead of waiting for a node that
    /// is gone. Without this, a task that failed on node A while node B was its only other candidate stalls
    /// when B is then quarantined.
    fn second_chance_sweep(&mut self) {
        let tasks: Vec<TaskId> = self.with_exclusions.iter().copied().collect();
        for task in tasks {
            let Some(job) = self
                .jobs
                .get_mut(&task.job)
                .filter(|j| j.state == JobState::Running)
            else {
                self.with_exclusions.remove(&task);
                continue;
            };
            let aggregation = job.spec.aggregation;
            let Some(t) = job
                .tasks
                .get_mut(&task.index)
                .filter(|t| t.phase != Phase::Done && !t.excluded.is_empty())
            else {
                self.with_exclusions.remove(&task);
                continue;
            };
            second_chance(&self.index, t, aggregation);
        }
    }

    // ---- copies, results, failures ----

    /// Remove `node`'s running copy of `task` (if any) and free its slot. Returns the copy.
    fn remove_copy_of(
        &mut self,
        now: Time,
        task: TaskId,
        node: NodeId,
        kind: ComputeKind,
    ) -> Option<CopyRun> {
        let job = self
            .jobs
            .get_mut(&task.job)
            .filter(|j| j.state == JobState::Running)?;
        let t = job.tasks.get_mut(&task.index)?;
        let i = t.copies.iter().position(|c| c.node == node)?;
        let c = t.copies.swap_remove(i);
        self.recheck_backup(task);
        self.index.on_release(node, task);
        self.ledger.record_compute(node, now - c.started, kind);
        self.dirty.insert(task.job);
        Some(c)
    }

    /// A node refused an offer for a passing reason: no attempt is spent, the task goes back to its queue, and
    /// the node's slot stays taken for a moment.
    fn on_declined(&mut self, now: Time, node: NodeId, task: TaskId, reason: String) {
        let Some(t) = self
            .jobs
            .get_mut(&task.job)
            .filter(|j| j.state == JobState::Running)
            .and_then(|j| j.tasks.get_mut(&task.index))
        else {
            return;
        };
        let Some(i) = t.copies.iter().position(|c| c.node == node) else {
            return;
        };
        let declined = t.copies.swap_remove(i);
        // Refused, so never given: it has no answer to give for this offer.
        if let Some(j) = t
            .past
            .iter()
            .rposition(|p| p.node == node && p.started == declined.started)
        {
            t.past.remove(j);
        }
        t.last_failure = Some(format!("{node} declined: {reason}"));
        self.stats.declines += 1;
        self.dirty.insert(task.job);
        let at = now.saturating_add(self.cfg.decline_backoff_ms);
        self.push_timer(at, Timer::ReleaseDeclined { node, task });
        self.enqueue(now, task.job, task.index);
        self.recheck_backup(task);
    }

    /// `node` reported that it could not do its copy of `task`: the copy ends and costs an attempt.
    fn on_failed(
        &mut self,
        now: Time,
        node: NodeId,
        task: TaskId,
        reason: &str,
        out: &mut Vec<Action>,
    ) {
        self.touch(node, now);
        if self
            .remove_copy_of(now, task, node, ComputeKind::Failed)
            .is_some()
        {
            self.stats.declines += 1;
            self.after_failure(now, task, node, format!("{node} failed it: {reason}"), out);
        }
    }

    /// Records `error` from `node` for `task`; if another node already reported the same error, the task
    /// fails the same way wherever it goes: returns the job's failure reason. Only a node holding a copy of
    /// the task is heard: otherwise any two peers could end any job by reporting the same made-up error.
    fn poison(&mut self, task: TaskId, node: NodeId, error: &str) -> Option<String> {
        let job = self
            .jobs
            .get_mut(&task.job)
            .filter(|j| j.state == JobState::Running)?;
        let t = job.tasks.get_mut(&task.index)?;
        if t.phase == Phase::Done || !t.copies.iter().any(|c| c.node == node) {
            return None;
        }
        if t.errors.iter().any(|(n, e)| *n != node && e == error) {
            let provers = t.errors.len() + 1;
            return Some(format!(
                "{task} fails the same way on {provers} different provers, so no prover can do it: {error}"
            ));
        }
        if t.errors.len() < 16 {
            t.errors.push((node, error.to_string()));
        }
        None
    }

    /// A copy failed (any way): count the attempt, exclude the node, fail the job or look for another node.
    fn after_failure(
        &mut self,
        now: Time,
        task: TaskId,
        node: NodeId,
        why: String,
        out: &mut Vec<Action>,
    ) {
        let Some(job) = self
            .jobs
            .get_mut(&task.job)
            .filter(|j| j.state == JobState::Running)
        else {
            return;
        };
        let max = job.spec.max_attempts;
        job.needed_fallback = true;
        let Some(t) = job.tasks.get_mut(&task.index) else {
            return;
        };
        if t.phase == Phase::Done {
            return;
        }
        t.failures += 1;
        if !t.excluded.contains(&node) {
            t.excluded.push(node);
        }
        self.with_exclusions.insert(task);
        t.last_failure = Some(why.clone());
        // Once every live node that could take the task has failed it, those still in the pool get another
        // chance (a decline or a lost offer is often transient; quarantined nodes are out of the pool) rather
        // than the task stalling until the stall timeout. Attempts stay bounded by `max_attempts`.
        second_chance(&self.index, t, job.spec.aggregation);
        if t.failures >= max {
            let reason = format!(
                "{task} failed {} attempts (max {max}); last: {why}",
                t.failures
            );
            self.end_job(now, task.job, JobOutcome::Failed { reason }, out);
            return;
        }
        self.enqueue(now, task.job, task.index);
    }

    fn on_verified(&mut self, now: Time, node: NodeId, task: TaskId, out: &mut Vec<Action>) {
        let Some(job) = self
            .jobs
            .get_mut(&task.job)
            .filter(|j| j.state == JobState::Running)
        else {
            return;
        };
        let reward_base = job.spec.reward_per_task;
        let Some(t) = job.tasks.get_mut(&task.index) else {
            return;
        };
        // Only a node that was given this task can answer it.
        let Some(past) = t.past.iter().rev().find(|p| p.node == node).copied() else {
            return;
        };
        if t.phase == Phase::Done {
            // A late duplicate: never accepted twice. Its compute was counted as redundant when it was cancelled.
            self.stats.late_duplicates += 1;
            return;
        }
        t.phase = Phase::Done;
        t.winner = Some(node);
        t.verified_at = Some(now);
        let mine = t
            .copies
            .iter()
            .position(|c| c.node == node)
            .map(|i| t.copies.swap_remove(i));
        let others = std::mem::take(&mut t.copies);
        let parent = t.parent;
        let was_queued = t.queued || t.backup_queued;
        let price = mine.as_ref().map_or(past.price, |c| c.price);
        self.index.on_release(node, task);
        let took = now - past.started;
        // A late result from a copy that had timed out still counts: its compute since it started was useful.
        self.ledger
            .record_compute(node, now - past.started, ComputeKind::Useful);
        for c in others {
            out.push(Action::Cancel { task, node: c.node });
            self.index.on_release(c.node, task);
            self.ledger
                .record_compute(c.node, now - c.started, ComputeKind::Redundant);
        }
        if was_queued {
            self.dequeue_all(task.job, task.index);
        }
        let amount = self.ledger.reward(node, task, price.unwrap_or(reward_base));
        out.push(Action::Reward { node, task, amount });
        self.learn_from_result(task, node, took);
        if mine.is_some_and(|c| !c.slow) {
            // Delivered promptly: its slow results so far were the link's bad moment, not its habit.
            self.slow_results.remove(&node);
        }
        let job = self.jobs.get_mut(&task.job).expect("job");
        job.done += 1;
        job.released -= 1;
        job.unfinished.remove(&task.index);
        self.dirty.insert(task.job);
        if let Some(p) = parent {
            let pt = job.tasks.get_mut(&p).expect("parent");
            pt.deps_left -= 1;
            if pt.deps_left == 0 {
                self.make_ready(now, task.job, p);
            }
        }
        self.release(now, task.job);
        self.check_complete(now, task.job, out);
    }

    fn on_rejected(
        &mut self,
        now: Time,
        node: NodeId,
        task: TaskId,
        reason: RejectReason,
        out: &mut Vec<Action>,
    ) {
        let Some(job) = self
            .jobs
            .get(&task.job)
            .filter(|j| j.state == JobState::Running)
        else {
            return;
        };
        let Some(t) = job.tasks.get(&task.index) else {
            return;
        };
        if !t.past.iter().any(|p| p.node == node) {
            return; // not its task: nothing to judge
        }
        self.stats.rejections += 1;
        let cause = PenaltyCause::Invalid(reason);
        let amount = self.ledger.slash(node, task, cause);
        out.push(Action::Penalize {
            node,
            task,
            cause,
            amount,
        });
        if self
            .remove_copy_of(now, task, node, ComputeKind::Failed)
            .is_some()
        {
            self.after_failure(
                now,
                task,
                node,
                format!("{node}'s result was rejected: {reason}"),
                out,
            );
        } else if let Some(t) = self
            .jobs
            .get_mut(&task.job)
            .and_then(|j| j.tasks.get_mut(&task.index))
            .filter(|t| !t.excluded.contains(&node))
        {
            t.excluded.push(node);
            self.with_exclusions.insert(task);
        }
        // A prover that returns bad results is not given more work for a while: otherwise a fast liar picks up
        // every retry and burns each task's attempts (found by the simulator).
        let count = self.rejected_results.entry(node).or_default();
        *count += 1;
        if let Some(q) = self
            .cfg
            .quarantine
            .filter(|q| *count >= q.after_rejections.max(1))
        {
            let until = q.duration_ms.map_or(Time::MAX, |d| now.saturating_add(d));
            self.quarantined.insert(node, until);
            self.stats.quarantines += 1;
            self.remove_node(now, node, false, true, out);
        }
    }

    /// Nodes in quarantine now, with the time it ends (`Time::MAX`: for good).
    pub fn quarantined(&self) -> impl Iterator<Item = (NodeId, Time)> + '_ {
        self.quarantined
            .iter()
            .filter(move |(_, until)| **until > self.now)
            .map(|(n, t)| (*n, *t))
    }
}
