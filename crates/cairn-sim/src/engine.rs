//! The discrete-event engine: one event queue (a binary heap keyed by time, then insertion order), one seeded
//! RNG, and the scheduler under test as the brain. The engine plays every other part: clients that execute and
//! stream segments, links that move blobs, nodes that prove (or misbehave), churn, heartbeats and the verifier.
//!
//! Time is integer milliseconds (the scheduler's `Time`); every duration is rounded up, so the critical-path
//! bound (computed in exact seconds) can never exceed a simulated time.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use cairn_scheduler::types::{
    Action, Aggregation, Input, JobId, JobOutcome, JobSpec, NodeId, PenaltyCause, RejectReason,
    TaskId, TaskKind, Time,
};

use crate::bounds;
use crate::model;
use crate::nodes::{self, Behavior, NodeSpec};
use crate::scenario::{AggregationMode, RunParams};

/// What the simulator needs from a scheduler. Implemented for the real `cairn_scheduler::Scheduler`.
pub trait Brain {
    fn handle(&mut self, now: Time, input: Input) -> Vec<Action>;
    /// `Input::Heartbeats` of `nodes`, without handing over a vector each round.
    fn heartbeats(&mut self, now: Time, nodes: &[NodeId]) -> Vec<Action> {
        self.handle(
            now,
            Input::Heartbeats {
                nodes: nodes.to_vec(),
            },
        )
    }
    fn next_deadline(&self) -> Option<Time>;
    /// The job finished and its outcome was taken: the brain may drop it (a real coordinator forgets a job once
    /// its client has the result).
    fn forget_job(&mut self, _job: JobId) {}
    /// Called once per node before it joins: stake and asking price go to the ledger.
    fn register(&mut self, node: &NodeSpec);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Submit(u32),
    Segment(u32, u32),
    ComputeDone(usize),
    Result(usize),
    Leave(u32),
    Join(u32),
    HeartbeatRound,
    Tick,
}

/// An event in the queue, ordered by time and then by the order it was pushed in (the event itself never
/// decides: comparing it was a tenth of the queue's cost).
#[derive(Debug, Clone, Copy)]
struct Scheduled {
    at: Time,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The engine's maps, keyed by small ids it made itself: a fast fixed hasher (SipHash was a tenth of a run).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkState {
    Queued,
    Running,
    Uploading,
    Done,
    Cancelled,
}

#[derive(Debug, Clone)]
struct Work {
    task: TaskId,
    node: u32,
    ready_at: Time,
    compute_ms: u64,
    /// Reference-machine seconds this attempt really computes if it runs to the end.
    units: f64,
    compute_start: Time,
    state: WorkState,
    /// The attempt fails after computing (honest crash) instead of answering.
    fails: bool,
}

#[derive(Debug)]
struct NodeState {
    spec: NodeSpec,
    running: u32,
    queue: VecDeque<usize>,
    /// Works not yet finished or cancelled on this node.
    active: Vec<usize>,
}

#[derive(Debug, Clone)]
struct JobState {
    submit_at: Time,
    segments: u32,
    total_cycles: f64,
    seg_ms: f64,
    client_free: f64,
    deadline: Time,
    finished_at: Option<Time>,
    final_ms: u64,
    outcome: Option<JobOutcome>,
    joins: HashMap<u32, (u32, u32)>,
    assigns: u64,
    reassigned: bool,
    backup: bool,
    /// Leaves (segments) with a verified result, and when the last of them got one.
    leaf_done: Vec<bool>,
    leaves_left: u32,
    leaves_at: Option<Time>,
    /// Its works (indices into `Engine::works`), so that its entries in the engine's maps go when it ends.
    works: Vec<usize>,
}

/// One job's result.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub job: u64,
    pub submit_s: f64,
    pub segments: u32,
    pub total_cycles: f64,
    pub exec_s: f64,
    /// "completed", "failed: ..." , "cancelled" or "unfinished".
    pub outcome: String,
    /// Submission to final receipt at the client (None unless completed).
    pub ttp_s: Option<f64>,
    /// Lower bound: the actual proof tree with every task on the fastest eligible node, no queueing.
    pub cp_bound_s: Option<f64>,
    /// Lower bound from the network's capacity (`bounds`): the leaves packed onto the honest fitting nodes,
    /// deepest leaves first, each followed by its chain of joins on the fastest recursion node.
    pub cap_bound_s: Option<f64>,
    /// Submission to the last leaf's first verified result: the rest (`ttp_s` minus this) is the join tail.
    pub leaves_s: Option<f64>,
    /// The formula on a typical (median-speed) eligible node: execute + transfer + one segment + lift +
    /// ceil(log2 S) joins (+ uploads, verification). An estimate in the seed's style, not a bound.
    pub cp_formula_s: f64,
    pub within_deadline: bool,
    /// Some task got a new copy after a copy ended without a verified result (failure, timeout, rejection).
    pub reassigned: bool,
    /// Some task got a copy beyond its redundancy while another copy was still running (speculative backup or
    /// emergency race).
    pub backup: bool,
    pub assigns: u64,
    pub receipt_bytes: f64,
}

/// Everything a run produced, before aggregation into metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutput {
    pub jobs: Vec<JobRecord>,
    /// Rewards per operator (sybil identities summed), in operator order.
    pub operator_rewards: Vec<f64>,
    pub rewards_total: u64,
    /// Penalize actions by cause name, and total amount slashed.
    pub slashes: BTreeMap<String, u64>,
    pub slashed_amount: u64,
    /// Reference-machine seconds computed in all, and by attempts whose result won.
    pub total_work_s: f64,
    pub useful_work_s: f64,
    pub events: u64,
    pub end_s: f64,
    /// With `split_block`: joining the chunks' receipts into the block's (s, after the last chunk).
    pub stitch_s: Option<f64>,
    /// The po2 the run used (chosen by the run when `po2_auto`).
    pub po2: u8,
}

fn ms(secs: f64) -> u64 {
    (secs * 1000.0).ceil().max(0.0) as u64
}

fn cause_name(cause: PenaltyCause) -> &'static str {
    match cause {
        PenaltyCause::Silence => "silence",
        PenaltyCause::Invalid(RejectReason::InvalidProof) => "invalid_proof",
        PenaltyCause::Invalid(RejectReason::WrongClaim) => "wrong_claim",
        PenaltyCause::Invalid(RejectReason::NotProversOwn) => "not_provers_own",
        PenaltyCause::Invalid(RejectReason::Malformed) => "malformed",
    }
}

/// Slash causes, in the order outputs list them.
pub const SLASH_CAUSES: [&str; 5] = [
    "silence",
    "invalid_proof",
    "wrong_claim",
    "not_provers_own",
    "malformed",
];

/// The scheduler's job spec for these parameters.
pub fn job_spec(p: &RunParams, submit_at: Time) -> JobSpec {
    JobSpec {
        po2: p.po2,
        redundancy: p.redundancy,
        max_attempts: p.max_attempts,
        task_timeout_ms: ms(p.task_slack_s),
        deadline: Some(submit_at + ms(p.deadline_s)),
        aggregation: match p.aggregation {
            AggregationMode::JoinTree => Aggregation::JoinTree,
            AggregationMode::Composite => Aggregation::Composite,
        },
        max_in_flight: p.max_in_flight,
        reward_per_task: p.reward_per_task,
    }
}

/// Fastest possible parts of a job, for the critical-path bound.
#[derive(Debug, Clone, Copy)]
struct BoundParts {
    /// The formula uses a typical node: the median speed of the eligible nodes.
    leaf_median: f64,
    join_median: f64,
    /// Segment blob to the fastest link.
    xfer_in: f64,
    /// Prove (+ lift with a join tree) on the fastest node that fits the po2.
    leaf: f64,
    join_in: f64,
    join: f64,
    upload: f64,
    verify: f64,
}

/// Runs one simulation.
pub struct Engine<B: Brain> {
    p: RunParams,
    brain: B,
    rng: ChaCha8Rng,
    now: Time,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    pending_ticks: BTreeSet<Time>,
    nodes: Vec<NodeState>,
    /// Whether each node (same order) is online, apart from the rest: a heartbeat round reads only this.
    online: Vec<bool>,
    works: Vec<Work>,
    work_of: FastMap<(TaskId, NodeId), usize>,
    copies: FastMap<TaskId, u32>,
    live: FastMap<TaskId, u32>,
    /// The nodes of a heartbeat round (kept between rounds: at 100,000 nodes a fresh one each round was a
    /// megabyte mapped and unmapped every time).
    beating: Vec<NodeId>,
    jobs: Vec<JobState>,
    unfinished: usize,
    rewards: Vec<u64>,
    slashes: BTreeMap<String, u64>,
    slashed_amount: u64,
    total_work: f64,
    useful_work: f64,
    events: u64,
    bound: BoundParts,
    /// Seconds per leaf (prove, + lift with a join tree) on each honest node lane that fits the po2, fastest
    /// first: the capacity bound's provers.
    leaf_secs: Vec<f64>,
}

impl<B: Brain> std::fmt::Debug for Engine<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("now", &self.now)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// The fastest possible parts of a job at `p.po2` on `specs` (see `BoundParts`).
fn bound_parts(p: &RunParams, specs: &[NodeSpec]) -> BoundParts {
    let bw_max = specs
        .iter()
        .map(|n| n.bandwidth)
        .fold(f64::MIN_POSITIVE, f64::max);
    let lat_min = specs.iter().map(|n| n.latency).fold(f64::MAX, f64::min);
    let prove_speed = specs
        .iter()
        .filter(|n| n.capacity.max_po2 >= p.po2)
        .map(|n| n.speed)
        .fold(f64::MIN_POSITIVE, f64::max);
    let rec_speed = specs
        .iter()
        .filter(|n| n.capacity.recursion)
        .map(|n| n.speed)
        .fold(f64::MIN_POSITIVE, f64::max);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::MIN_POSITIVE)
    };
    let prove_median = median(
        specs
            .iter()
            .filter(|n| n.capacity.max_po2 >= p.po2)
            .map(|n| n.speed)
            .collect(),
    );
    let rec_median = median(
        specs
            .iter()
            .filter(|n| n.capacity.recursion)
            .map(|n| n.speed)
            .collect(),
    );
    let join_tree = p.aggregation == AggregationMode::JoinTree;
    let receipt = if join_tree {
        model::SUCCINCT_RECEIPT_BYTES
    } else {
        model::segment_receipt_bytes(p.po2)
    };
    BoundParts {
        leaf_median: model::prove_secs(p.po2) / prove_median
            + if join_tree {
                model::RECURSION_SECS / prove_median
            } else {
                0.0
            },
        join_median: model::RECURSION_SECS / rec_median,
        xfer_in: lat_min + model::segment_blob_bytes(p.po2) / bw_max,
        leaf: model::prove_secs(p.po2) / prove_speed
            + if join_tree {
                model::RECURSION_SECS / prove_speed
            } else {
                0.0
            },
        join_in: lat_min + 2.0 * model::SUCCINCT_RECEIPT_BYTES / bw_max,
        join: model::RECURSION_SECS / rec_speed,
        upload: lat_min + receipt / bw_max,
        verify: model::VERIFY_SECS_PER_RECEIPT,
    }
}

/// Seconds per leaf (prove, + lift with a join tree) on each node lane that fits `p.po2`, fastest first: of the
/// honest nodes only (the capacity bound), or of every node (what a client can know, for `po2_auto`).
fn leaf_secs(p: &RunParams, specs: &[NodeSpec], honest_only: bool) -> Vec<f64> {
    let join_tree = p.aggregation == AggregationMode::JoinTree;
    let leaf_units = model::prove_secs(p.po2)
        + if join_tree {
            model::RECURSION_SECS
        } else {
            0.0
        };
    let mut out: Vec<f64> = specs
        .iter()
        .filter(|n| {
            (!honest_only || n.behavior == Behavior::Honest)
                && n.capacity.max_po2 >= p.po2
                && (!join_tree || n.capacity.recursion)
        })
        .flat_map(|n| std::iter::repeat_n(leaf_units / n.speed, n.capacity.slots.max(1) as usize))
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

/// What a client could predict of one job at `p.po2` from the network it sees (every node's memory, speed and
/// recursion, faulty or not) and the program's size: the larger of the critical-path and capacity bounds of
/// the job's own tree, execution streamed at `exec_mhz`: `cairn_scheduler::predict`, the prediction `cairn prove
/// --po2 auto` makes, fed with the simulator's cost model (the nodes' true speeds, as a client that has learned
/// them would know them). `None` if no node can take a segment of that size.
pub fn predict_secs(p: &RunParams, specs: &[NodeSpec]) -> Option<f64> {
    let b = bound_parts(p, specs);
    let (segments, total_cycles) = model::split_program(p.user_cycles, p.po2);
    let costs = cairn_scheduler::predict::JobCosts {
        segments,
        exec_secs_per_segment: total_cycles / f64::from(segments) / (p.exec_mhz * 1e6),
        aggregation: match p.aggregation {
            AggregationMode::JoinTree => cairn_scheduler::Aggregation::JoinTree,
            AggregationMode::Composite => cairn_scheduler::Aggregation::Composite,
        },
        leaf_lanes: leaf_secs(p, specs, false),
        leaf: b.leaf,
        // The simulator's programs split into full segments (Table 2's totals are whole segments).
        last_leaf_share: 1.0,
        join: b.join,
        xfer_in: b.xfer_in,
        join_in: b.join_in,
        upload: b.upload,
        verify: b.verify,
    };
    cairn_scheduler::predict::predict(&costs).map(|pr| pr.secs)
}

/// `p` with its po2 chosen when `po2_auto` is set: the po2 (from 14 up to the largest any node can take) with
/// the shortest `predict_secs`; the smaller po2 on a tie.
fn choose_po2(p: &RunParams, specs: &[NodeSpec]) -> RunParams {
    let mut p = p.clone();
    if !p.po2_auto {
        return p;
    }
    let mut best: Option<(f64, u8)> = None;
    for po2 in model::MIN_PO2..=model::MAX_PO2 {
        let q = RunParams { po2, ..p.clone() };
        if let Some(t) = predict_secs(&q, specs) {
            if best.is_none_or(|(b, _)| t < b) {
                best = Some((t, po2));
            }
        }
    }
    if let Some((_, po2)) = best {
        p.po2 = po2;
    }
    p
}

impl<B: Brain> Engine<B> {
    /// Builds the population and the job arrivals from `seed`. The population uses its own RNG stream, so runs
    /// that differ only in scheduling knobs see the same nodes.
    pub fn new(p: &RunParams, seed: u64, brain: B) -> Self {
        let mut pop_rng = ChaCha8Rng::seed_from_u64(seed);
        let specs = nodes::population(p, &mut pop_rng);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_CA1E_0000_0001);
        let p = &choose_po2(p, &specs);
        let bound = bound_parts(p, &specs);
        let leaf_secs = leaf_secs(p, &specs, true);

        let mut jobs = Vec::with_capacity(p.jobs as usize);
        let mut t = 1000.0f64;
        for j in 0..p.jobs {
            if j > 0 {
                let gap = if p.poisson_arrivals {
                    -p.job_interval_s * (1.0 - rng.random::<f64>()).ln()
                } else {
                    p.job_interval_s
                };
                t += gap * 1000.0;
            }
            let spread = 1.0 + p.cycles_spread * (2.0 * rng.random::<f64>() - 1.0);
            let user_cycles = if p.cycles_spread > 0.0 {
                p.user_cycles * spread
            } else {
                p.user_cycles
            };
            let (segments, total_cycles) = model::split_program(user_cycles, p.po2);
            let submit_at = t.round() as Time;
            jobs.push(JobState {
                submit_at,
                segments,
                total_cycles,
                seg_ms: total_cycles / f64::from(segments) / (p.exec_mhz * 1e6) * 1000.0,
                client_free: 0.0,
                deadline: submit_at + ms(p.deadline_s),
                finished_at: None,
                final_ms: 0,
                outcome: None,
                joins: HashMap::new(),
                assigns: 0,
                reassigned: false,
                backup: false,
                leaf_done: vec![false; segments as usize],
                leaves_left: segments,
                leaves_at: None,
                works: Vec::new(),
            });
        }
        let operators = specs.iter().map(|n| n.operator).max().unwrap_or(0) as usize;
        let nodes = specs
            .into_iter()
            .map(|spec| NodeState {
                spec,
                running: 0,
                queue: VecDeque::new(),
                active: Vec::new(),
            })
            .collect::<Vec<_>>();
        let online = vec![true; nodes.len()];
        Self {
            p: p.clone(),
            brain,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            pending_ticks: BTreeSet::new(),
            nodes,
            online,
            works: Vec::new(),
            work_of: FastMap::default(),
            copies: FastMap::default(),
            live: FastMap::default(),
            beating: Vec::new(),
            unfinished: jobs.len(),
            jobs,
            rewards: vec![0; operators + 1],
            slashes: SLASH_CAUSES.iter().map(|c| ((*c).to_string(), 0)).collect(),
            slashed_amount: 0,
            total_work: 0.0,
            useful_work: 0.0,
            events: 0,
            bound,
            leaf_secs,
        }
    }

    fn push(&mut self, at: Time, ev: Ev) {
        self.seq += 1;
        // A tick comes after everything else due at its millisecond, whenever it was asked for: the ticks the
        // scheduler asks for (some only to check liveness, at times set by the heartbeat period) must not
        // reorder the other events.
        let seq = if matches!(ev, Ev::Tick) {
            u64::MAX
        } else {
            self.seq
        };
        self.queue.push(Scheduled { at, seq, ev });
    }

    fn exp(&mut self, mean_s: f64) -> Time {
        ms(-mean_s * (1.0 - self.rng.random::<f64>()).ln())
    }

    fn feed(&mut self, input: Input) {
        let actions = self.brain.handle(self.now, input);
        self.after_input(actions);
    }

    /// Carries out what the brain answered to an input, and asks for a tick at its next deadline.
    fn after_input(&mut self, actions: Vec<Action>) {
        for action in actions {
            self.apply(action);
        }
        if let Some(d) = self.brain.next_deadline() {
            let at = d.max(self.now + 1);
            if self.pending_ticks.insert(at) {
                self.push(at, Ev::Tick);
            }
        }
    }

    /// Runs to the end (all jobs finished, or `max_sim_hours`) and returns the raw output.
    pub fn run(mut self) -> RunOutput {
        for i in 0..self.nodes.len() {
            let spec = self.nodes[i].spec.clone();
            self.brain.register(&spec);
            self.feed(Input::NodeJoined {
                node: spec.id,
                capacity: spec.capacity,
            });
            if spec.churns {
                let up = self.exp(self.p.churn_up_s);
                self.push(up, Ev::Leave(i as u32));
            }
        }
        for j in 0..self.jobs.len() {
            self.push(self.jobs[j].submit_at, Ev::Submit(j as u32));
        }
        if self.p.heartbeat_s > 0.0 {
            self.push(ms(self.p.heartbeat_s), Ev::HeartbeatRound);
        }
        let end = ms(self.p.max_sim_hours * 3600.0);
        while self.unfinished > 0 {
            let Some(Scheduled { at, ev, .. }) = self.queue.pop() else {
                break;
            };
            if at > end {
                break;
            }
            self.now = at;
            self.events += 1;
            self.event(ev);
        }
        self.finish()
    }

    fn event(&mut self, ev: Ev) {
        match ev {
            Ev::Tick => {
                self.pending_ticks.remove(&self.now);
                self.feed(Input::Tick);
            }
            Ev::Submit(j) => {
                let spec = job_spec(&self.p, self.now);
                self.feed(Input::SubmitJob {
                    job: JobId(u64::from(j)),
                    spec,
                });
                let at = self.segment_time(j, 0);
                self.push(at, Ev::Segment(j, 0));
            }
            Ev::Segment(j, s) => {
                let job = &self.jobs[j as usize];
                let cycles = (job.total_cycles / f64::from(job.segments)).round() as u64;
                let segments = job.segments;
                self.feed(Input::SegmentReady {
                    job: JobId(u64::from(j)),
                    segment: s,
                    cycles,
                });
                if s + 1 < segments {
                    let at = self.segment_time(j, s + 1);
                    self.push(at, Ev::Segment(j, s + 1));
                } else {
                    self.feed(Input::ExecutionFinished {
                        job: JobId(u64::from(j)),
                        segments,
                    });
                }
            }
            Ev::ComputeDone(w) => self.compute_done(w),
            Ev::Result(w) => self.result(w),
            Ev::Leave(n) => self.leave(n),
            Ev::Join(n) => {
                self.online[n as usize] = true;
                let node = &self.nodes[n as usize];
                let (id, capacity) = (node.spec.id, node.spec.capacity);
                self.feed(Input::NodeJoined { node: id, capacity });
                let up = self.exp(self.p.churn_up_s);
                self.push(self.now + up, Ev::Leave(n));
            }
            Ev::HeartbeatRound => {
                let mut nodes = std::mem::take(&mut self.beating);
                nodes.clear();
                // A node's id is its index (as everywhere in the engine).
                nodes.extend(
                    self.online
                        .iter()
                        .enumerate()
                        .filter(|(_, on)| **on)
                        .map(|(i, _)| NodeId(i as u64)),
                );
                let actions = self.brain.heartbeats(self.now, &nodes);
                self.beating = nodes;
                self.after_input(actions);
                self.push(self.now + ms(self.p.heartbeat_s), Ev::HeartbeatRound);
            }
        }
    }

    fn segment_time(&self, j: u32, s: u32) -> Time {
        let job = &self.jobs[j as usize];
        job.submit_at + (job.seg_ms * f64::from(s + 1)).ceil() as Time
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Assign {
                task, kind, node, ..
            } => self.assign(task, kind, node),
            Action::Cancel { task, node } => {
                if let Some(&w) = self.work_of.get(&(task, node)) {
                    self.cancel(w);
                }
            }
            Action::Reward { node, task, amount } => {
                let op = self.nodes[node.0 as usize].spec.operator as usize;
                self.rewards[op] += amount;
                if let Some(&w) = self.work_of.get(&(task, node)) {
                    self.useful_work += self.works[w].units;
                }
            }
            Action::Penalize { cause, amount, .. } => {
                *self
                    .slashes
                    .entry(cause_name(cause).to_string())
                    .or_default() += 1;
                self.slashed_amount += amount;
            }
            Action::JobFinished { job, outcome } => {
                let state = &mut self.jobs[job.0 as usize];
                if state.finished_at.is_some() {
                    return;
                }
                state.finished_at = Some(self.now);
                if let JobOutcome::Completed { .. } = outcome {
                    // The client checks the final receipt; a composite one is every segment receipt.
                    let receipts = match self.p.aggregation {
                        AggregationMode::Composite => f64::from(state.segments),
                        AggregationMode::JoinTree => 1.0,
                    };
                    state.final_ms = ms(receipts * model::VERIFY_SECS_PER_RECEIPT);
                }
                state.outcome = Some(outcome);
                self.unfinished -= 1;
                self.brain.forget_job(job);
                // Nothing names its tasks after this: their entries go, so the maps hold only running jobs
                // (growing them to every work of the run was a twentieth of a run of 100,000 nodes).
                for w in std::mem::take(&mut state.works) {
                    let work = &self.works[w];
                    let (task, node) = (work.task, self.nodes[work.node as usize].spec.id);
                    self.work_of.remove(&(task, node));
                    self.copies.remove(&task);
                    self.live.remove(&task);
                }
            }
        }
    }

    fn assign(&mut self, task: TaskId, kind: TaskKind, node_id: NodeId) {
        let n = node_id.0 as usize;
        let job_idx = task.job.0 as usize;
        let before = *self.copies.get(&task).unwrap_or(&0);
        self.copies.insert(task, before + 1);
        let live = self.live.entry(task).or_insert(0);
        let live_before = *live;
        *live += 1;
        let job = &mut self.jobs[job_idx];
        job.assigns += 1;
        if live_before >= self.p.redundancy {
            job.backup = true;
        } else if before >= self.p.redundancy {
            job.reassigned = true;
        }
        if let TaskKind::Join { left, right } = kind {
            job.joins.insert(task.index, (left.index, right.index));
        }
        let node = &self.nodes[n];
        let spec = &node.spec;
        let now = self.now as f64 / 1000.0;
        // Inputs: a segment blob from the job's client (its uplink is shared by all its blobs), or two
        // succinct receipts from the peers that made them.
        let ready = match kind {
            TaskKind::Prove { po2, .. } => {
                let blob = model::segment_blob_bytes(po2);
                let up = self.p.client_uplink_mbps * 1e6 / 8.0;
                job.client_free = job.client_free.max(now) + blob / up;
                job.client_free.max(now + blob / spec.bandwidth) + spec.latency
            }
            TaskKind::Join { .. } => {
                now + spec.latency + 2.0 * model::SUCCINCT_RECEIPT_BYTES / spec.bandwidth
            }
        };
        let honest_units = match kind {
            TaskKind::Prove { po2, .. } => {
                model::prove_secs(po2)
                    + if self.p.aggregation == AggregationMode::JoinTree {
                        model::RECURSION_SECS
                    } else {
                        0.0
                    }
            }
            TaskKind::Join { .. } => model::RECURSION_SECS,
        };
        let (units, compute_secs) = match spec.behavior {
            Behavior::Honest | Behavior::WrongClaim => (honest_units, honest_units / spec.speed),
            // Garbage or a copy costs next to nothing to produce.
            Behavior::Invalid | Behavior::Copier => (0.0, 1.0),
            Behavior::Silent => (0.0, f64::INFINITY),
            // Nothing answers: the offer fails when its dial times out.
            Behavior::Phantom => (0.0, self.p.phantom_dial_s),
        };
        let fails =
            spec.behavior == Behavior::Honest && self.rng.random::<f64>() < self.p.task_fail_rate;
        let w = self.works.len();
        self.works.push(Work {
            task,
            node: n as u32,
            ready_at: ms(ready),
            compute_ms: if compute_secs.is_finite() {
                ms(compute_secs)
            } else {
                u64::MAX
            },
            units,
            compute_start: 0,
            state: WorkState::Queued,
            fails,
        });
        self.work_of.insert((task, node_id), w);
        self.jobs[job_idx].works.push(w);
        if !self.online[n] {
            // Assigned to a node that already left: nothing happens, the scheduler's deadline catches it.
            self.works[w].state = WorkState::Cancelled;
            return;
        }
        self.nodes[n].queue.push_back(w);
        self.nodes[n].active.push(w);
        self.try_start(n);
    }

    fn try_start(&mut self, n: usize) {
        while self.nodes[n].running < self.nodes[n].spec.capacity.slots.max(1) {
            let Some(w) = self.nodes[n].queue.pop_front() else {
                return;
            };
            if self.works[w].state != WorkState::Queued {
                continue;
            }
            let start = self.now.max(self.works[w].ready_at);
            let work = &mut self.works[w];
            work.state = WorkState::Running;
            work.compute_start = start;
            self.nodes[n].running += 1;
            if work.compute_ms != u64::MAX {
                let at = start + work.compute_ms;
                self.push(at, Ev::ComputeDone(w));
            }
        }
    }

    fn release(&mut self, w: usize) {
        if let Some(live) = self.live.get_mut(&self.works[w].task) {
            *live = live.saturating_sub(1);
        }
        let n = self.works[w].node as usize;
        let node = &mut self.nodes[n];
        if let Some(pos) = node.active.iter().position(|&x| x == w) {
            node.active.swap_remove(pos);
        }
    }

    fn compute_done(&mut self, w: usize) {
        if self.works[w].state != WorkState::Running {
            return;
        }
        let n = self.works[w].node as usize;
        self.nodes[n].running -= 1;
        let work = &mut self.works[w];
        self.total_work += work.units;
        work.state = WorkState::Uploading;
        let spec = &self.nodes[n].spec;
        let receipt = match (work.task.is_join(), self.p.aggregation) {
            (false, AggregationMode::Composite) => model::segment_receipt_bytes(self.p.po2),
            _ => model::SUCCINCT_RECEIPT_BYTES,
        };
        let secs = if work.fails {
            spec.latency
        } else {
            spec.latency + receipt / spec.bandwidth + model::VERIFY_SECS_PER_RECEIPT
        };
        let at = self.now + ms(secs);
        self.push(at, Ev::Result(w));
        self.try_start(n);
    }

    fn result(&mut self, w: usize) {
        if self.works[w].state != WorkState::Uploading {
            return;
        }
        self.works[w].state = WorkState::Done;
        self.release(w);
        let work = &self.works[w];
        let n = work.node as usize;
        let (node, task) = (self.nodes[n].spec.id, work.task);
        let input = if work.fails {
            Input::TaskFailed {
                node,
                task,
                reason: "simulated crash".into(),
            }
        } else {
            match self.nodes[n].spec.behavior {
                Behavior::Honest => {
                    self.leaf_verified(task);
                    Input::ResultVerified { node, task }
                }
                Behavior::Invalid => Input::ResultRejected {
                    node,
                    task,
                    reason: RejectReason::InvalidProof,
                },
                Behavior::Copier => Input::ResultRejected {
                    node,
                    task,
                    reason: RejectReason::NotProversOwn,
                },
                Behavior::WrongClaim => Input::ResultRejected {
                    node,
                    task,
                    reason: RejectReason::WrongClaim,
                },
                Behavior::Silent => return,
                Behavior::Phantom => Input::TaskFailed {
                    node,
                    task,
                    reason: "unreachable: the dial timed out".into(),
                },
            }
        };
        self.feed(input);
    }

    fn leaf_verified(&mut self, task: TaskId) {
        if task.is_join() {
            return;
        }
        let now = self.now;
        let job = &mut self.jobs[task.job.0 as usize];
        if let Some(done) = job.leaf_done.get_mut(task.index as usize) {
            if !*done {
                *done = true;
                job.leaves_left -= 1;
                if job.leaves_left == 0 {
                    job.leaves_at = Some(now);
                }
            }
        }
    }

    /// Stops a work: partial compute counts as spent.
    fn cancel(&mut self, w: usize) {
        let state = self.works[w].state;
        let n = self.works[w].node as usize;
        match state {
            WorkState::Queued => {}
            WorkState::Running => {
                let work = &self.works[w];
                if work.compute_ms != u64::MAX && self.now > work.compute_start {
                    let frac =
                        (self.now - work.compute_start) as f64 / work.compute_ms.max(1) as f64;
                    self.total_work += work.units * frac.min(1.0);
                }
                self.nodes[n].running -= 1;
            }
            WorkState::Uploading => {}
            WorkState::Done | WorkState::Cancelled => return,
        }
        self.works[w].state = WorkState::Cancelled;
        self.release(w);
        self.try_start(n);
    }

    fn leave(&mut self, n: u32) {
        let idx = n as usize;
        if !self.online[idx] {
            return;
        }
        let active = self.nodes[idx].active.clone();
        for w in active {
            self.cancel(w);
        }
        self.online[idx] = false;
        let node = &mut self.nodes[idx];
        node.queue.clear();
        node.running = 0;
        let id = node.spec.id;
        self.feed(Input::NodeLeft { node: id });
        let down = self.exp(self.p.churn_down_s);
        self.push(self.now + down, Ev::Join(n));
    }

    fn cp_bound(&self, j: usize, root: Option<TaskId>) -> Option<f64> {
        let job = &self.jobs[j];
        let b = self.bound;
        let leaf_done = |s: u32| {
            let ready = (job.seg_ms * f64::from(s + 1)) / 1000.0;
            ready + b.xfer_in + b.leaf + b.upload + b.verify
        };
        let final_verify = match self.p.aggregation {
            AggregationMode::Composite => f64::from(job.segments) * model::VERIFY_SECS_PER_RECEIPT,
            AggregationMode::JoinTree => model::VERIFY_SECS_PER_RECEIPT,
        };
        let end = match (self.p.aggregation, root) {
            (AggregationMode::Composite, _) => (0..job.segments).map(leaf_done).fold(0.0, f64::max),
            (AggregationMode::JoinTree, Some(root)) => {
                // Depth-first over the recorded tree (explicit stack: trees can be deep).
                let mut done: HashMap<u32, f64> = HashMap::new();
                let mut stack = vec![root.index];
                while let Some(&t) = stack.last() {
                    if done.contains_key(&t) {
                        stack.pop();
                        continue;
                    }
                    match job.joins.get(&t) {
                        None => {
                            if t >= job.segments {
                                return None;
                            }
                            done.insert(t, leaf_done(t));
                            stack.pop();
                        }
                        Some(&(l, r)) => match (done.get(&l), done.get(&r)) {
                            (Some(a), Some(c)) => {
                                let v = a.max(*c) + b.join_in + b.join + b.upload + b.verify;
                                done.insert(t, v);
                                stack.pop();
                            }
                            _ => {
                                stack.push(l);
                                stack.push(r);
                            }
                        },
                    }
                }
                done[&root.index]
            }
            (AggregationMode::JoinTree, None) => return None,
        };
        Some(end + final_verify)
    }

    /// The capacity bound (see `bounds`) of job `j`, whose tree ended at `root`.
    fn cap_bound(&self, j: usize, root: Option<TaskId>) -> Option<f64> {
        let job = &self.jobs[j];
        let b = self.bound;
        let (depths, final_verify) = match self.p.aggregation {
            AggregationMode::Composite => (
                vec![0; job.segments as usize],
                f64::from(job.segments) * model::VERIFY_SECS_PER_RECEIPT,
            ),
            AggregationMode::JoinTree => (
                bounds::leaf_depths(job.segments, &job.joins, root?.index)?,
                model::VERIFY_SECS_PER_RECEIPT,
            ),
        };
        let provers = &self.leaf_secs[..self.leaf_secs.len().min(depths.len())];
        bounds::capacity_bound(
            provers,
            &depths,
            bounds::Chain {
                lead: b.xfer_in,
                tail: b.upload + b.verify + final_verify,
                per_join: b.join_in + b.join + b.upload + b.verify,
            },
        )
    }

    fn cp_formula(&self, j: usize) -> f64 {
        let job = &self.jobs[j];
        let b = self.bound;
        let exec = job.total_cycles / (self.p.exec_mhz * 1e6);
        let (joins, final_verify) = match self.p.aggregation {
            AggregationMode::Composite => (
                0.0,
                f64::from(job.segments) * model::VERIFY_SECS_PER_RECEIPT,
            ),
            AggregationMode::JoinTree => (
                f64::from(model::ceil_log2(job.segments))
                    * (b.join_in + b.join_median + b.upload + b.verify),
                model::VERIFY_SECS_PER_RECEIPT,
            ),
        };
        exec + b.xfer_in + b.leaf_median + b.upload + b.verify + joins + final_verify
    }

    fn finish(self) -> RunOutput {
        let mut records = Vec::with_capacity(self.jobs.len());
        for (j, job) in self.jobs.iter().enumerate() {
            let root = match &job.outcome {
                Some(JobOutcome::Completed { root }) => Some(*root),
                _ => None,
            };
            let completed = root.is_some();
            let ttp = match (completed, job.finished_at) {
                (true, Some(t)) => Some((t + job.final_ms - job.submit_at) as f64 / 1000.0),
                _ => None,
            };
            let outcome = match &job.outcome {
                Some(JobOutcome::Completed { .. }) => "completed".to_string(),
                Some(JobOutcome::Failed { reason }) => format!("failed: {reason}"),
                Some(JobOutcome::Cancelled) => "cancelled".to_string(),
                None => "unfinished".to_string(),
            };
            let receipt_bytes = match self.p.aggregation {
                AggregationMode::Composite => {
                    f64::from(job.segments) * model::segment_receipt_bytes(self.p.po2)
                }
                AggregationMode::JoinTree => model::SUCCINCT_RECEIPT_BYTES,
            };
            records.push(JobRecord {
                job: j as u64,
                submit_s: job.submit_at as f64 / 1000.0,
                segments: job.segments,
                total_cycles: job.total_cycles,
                exec_s: job.total_cycles / (self.p.exec_mhz * 1e6),
                outcome,
                ttp_s: ttp,
                cp_bound_s: root.and_then(|r| self.cp_bound(j, r)),
                cap_bound_s: root.and_then(|r| self.cap_bound(j, r)),
                leaves_s: job
                    .leaves_at
                    .filter(|_| completed)
                    .map(|t| (t - job.submit_at) as f64 / 1000.0),
                cp_formula_s: self.cp_formula(j),
                within_deadline: job
                    .finished_at
                    .is_some_and(|t| completed && t + job.final_ms <= job.deadline),
                reassigned: job.reassigned,
                backup: job.backup,
                assigns: job.assigns,
                receipt_bytes,
            });
        }
        RunOutput {
            jobs: records,
            operator_rewards: self.rewards.iter().skip(1).map(|r| *r as f64).collect(),
            rewards_total: self.rewards.iter().sum(),
            slashes: self.slashes,
            slashed_amount: self.slashed_amount,
            total_work_s: self.total_work,
            useful_work_s: self.useful_work,
            events: self.events,
            end_s: self.now as f64 / 1000.0,
            po2: self.p.po2,
            stitch_s: self.p.split_block.then(|| {
                let b = &self.bound;
                f64::from(model::ceil_log2(self.p.jobs))
                    * (b.join_in + b.join + b.upload + b.verify)
            }),
        }
    }
}
