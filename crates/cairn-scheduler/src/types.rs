//! The vocabulary shared by the scheduler and everything that drives it (the real node, tests, the simulator).
//!
//! Time is a plain number of milliseconds since an origin the driver picks: the scheduler never reads a clock.

use serde::{Deserialize, Serialize};

/// Milliseconds since the driver's origin.
pub type Time = u64;

/// A job: one program run to be proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobId(pub u64);

/// A prover node. The network layer maps libp2p peer ids to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

/// One unit of proving work inside a job. Leaves are numbered by segment index; join nodes after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId {
    pub job: JobId,
    pub index: u32,
}

/// What a task asks a prover to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// Prove segment `segment` (of size 2^po2 cycles). With recursion, the prover also lifts it.
    Prove { segment: u32, po2: u8 },
    /// Join the succinct receipts of two finished tasks (recursion only).
    Join { left: TaskId, right: TaskId },
}

/// How a job's segment receipts become one receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Aggregation {
    /// No joins: the client assembles a composite receipt from the verified segment receipts.
    Composite,
    /// Lift each segment, then a join tree that grows as segments arrive (Bento's "mountain range").
    JoinTree,
}

/// What a node says it can do. Checked against its proof-of-workload benchmark by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NodeCapacity {
    pub memory_bytes: u64,
    /// Largest segment size (log2 cycles) this node can prove in its memory.
    pub max_po2: u8,
    /// Measured proving speed in cycles per second (from its benchmark).
    pub cycles_per_sec: f64,
    /// Tasks it proves at once (worker threads).
    pub slots: u32,
    /// Whether it can run lift / join (recursion programs present and enough memory).
    pub recursion: bool,
}

/// Per-job parameters chosen by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub po2: u8,
    /// Assignees per task; the first verified result wins, the rest are cancelled.
    pub redundancy: u32,
    /// Attempts per task (assignments that failed, timed out or were rejected) before the job fails.
    pub max_attempts: u32,
    /// Fixed slack for one task attempt, in ms. The attempt's deadline is this plus the expected proving time
    /// of the task at the assigned node's measured speed.
    pub task_timeout_ms: u64,
    /// The job should finish by this time (liveness metric); not enforced as failure.
    pub deadline: Option<Time>,
    pub aggregation: Aggregation,
    /// Backpressure: at most this many tasks of the job in flight at once.
    pub max_in_flight: u32,
    /// Reward paid per verified task (ledger units), before policy adjustments.
    pub reward_per_task: u64,
}

/// Why a result was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    /// The proof does not verify.
    InvalidProof,
    /// The proof verifies but proves a different claim (other segment, other job, other image).
    WrongClaim,
    /// The result is bound to a different prover (copied from another node's result).
    NotProversOwn,
    /// Bytes could not be decoded.
    Malformed,
}

/// Why a node is penalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PenaltyCause {
    Invalid(RejectReason),
    /// Missed its task deadline without a word.
    Silence,
}

/// Everything that can happen to the scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    SubmitJob {
        job: JobId,
        spec: JobSpec,
    },
    /// A segment was produced by execution (streamed while execution runs).
    SegmentReady {
        job: JobId,
        segment: u32,
        cycles: u64,
    },
    /// A segment whose verified receipt the driver already holds (a job resumed after a restart): its task
    /// is done from the start, with no prover and no reward, and is never assigned.
    SegmentRestored {
        job: JobId,
        segment: u32,
        cycles: u64,
    },
    /// Execution ended; the job has exactly `segments` segments.
    ExecutionFinished {
        job: JobId,
        segments: u32,
    },
    ExecutionFailed {
        job: JobId,
        reason: String,
    },
    CancelJob {
        job: JobId,
    },
    NodeJoined {
        node: NodeId,
        capacity: NodeCapacity,
    },
    NodeLeft {
        node: NodeId,
    },
    Heartbeat {
        node: NodeId,
    },
    /// Heartbeats of several nodes at one moment, for a driver that collects them (the simulator's heartbeat
    /// rounds): the same as one `Heartbeat` per node, at the cost of one input.
    Heartbeats {
        nodes: Vec<NodeId>,
    },
    /// The node refused an offer for a passing reason (busy, draining): the task is offered elsewhere without
    /// costing an attempt, and the node's slot stays taken for `SchedulerConfig::decline_backoff_ms`.
    TaskDeclined {
        node: NodeId,
        task: TaskId,
        reason: String,
    },
    /// The node declined or reported an error for an assignment.
    TaskFailed {
        node: NodeId,
        task: TaskId,
        reason: String,
    },
    /// The node tried the task and its prover refused the work itself with an error that depends only on the
    /// task (a segment that cannot be decoded or proved), not on the node. Costs an attempt like
    /// `TaskFailed`; when a second node reports the very same error, the task is poison (no prover can do
    /// it) and the job fails at once with that error instead of retrying until its attempts run out.
    TaskErrored {
        node: NodeId,
        task: TaskId,
        error: String,
    },
    /// The node delivered a result whose receipt is arriving more slowly than its size needs (a congested
    /// uplink, or a prover trickling it out to hold the job up): the task gets a backup elsewhere, if backups
    /// are on, and the first verified result wins.
    ResultSlow {
        node: NodeId,
        task: TaskId,
    },
    /// The driver verified the node's result and it answers the task.
    ResultVerified {
        node: NodeId,
        task: TaskId,
    },
    ResultRejected {
        node: NodeId,
        task: TaskId,
        reason: RejectReason,
    },
    /// Time passed; deadlines are checked.
    Tick,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobOutcome {
    /// Every piece verified. With `Composite`, `root` is None and the driver assembles the verified leaves.
    Completed {
        root: Option<TaskId>,
    },
    Failed {
        reason: String,
    },
    Cancelled,
}

/// What the scheduler asks its driver to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    Assign {
        task: TaskId,
        kind: TaskKind,
        node: NodeId,
        attempt: u32,
        deadline: Time,
    },
    /// Stop work on `task` at `node` (another copy won, the job was cancelled, or the deadline passed).
    Cancel {
        task: TaskId,
        node: NodeId,
    },
    Reward {
        node: NodeId,
        task: TaskId,
        amount: u64,
    },
    Penalize {
        node: NodeId,
        task: TaskId,
        cause: PenaltyCause,
        amount: u64,
    },
    JobFinished {
        job: JobId,
        outcome: JobOutcome,
    },
}

/// Task indices at or above this number are joins; below it, the index is the segment number of a Prove task.
pub const JOIN_INDEX_BASE: u32 = 1 << 31;

impl TaskId {
    pub fn new(job: JobId, index: u32) -> Self {
        Self { job, index }
    }

    /// Whether this id names a join task (index at or above [`JOIN_INDEX_BASE`]).
    pub fn is_join(&self) -> bool {
        self.index >= JOIN_INDEX_BASE
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {}", self.0)
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {}", self.0)
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_join() {
            write!(f, "{}/join {}", self.job, self.index - JOIN_INDEX_BASE)
        } else {
            write!(f, "{}/segment {}", self.job, self.index)
        }
    }
}

impl TaskKind {
    /// Segment size a node must handle (0 for joins, which are of fixed size).
    pub fn po2(&self) -> u8 {
        match self {
            TaskKind::Prove { po2, .. } => *po2,
            TaskKind::Join { .. } => 0,
        }
    }
}

impl NodeCapacity {
    /// A node with one slot, recursion available and the memory a segment of `max_po2` needs (rough figure).
    pub fn new(max_po2: u8, cycles_per_sec: f64) -> Self {
        Self {
            memory_bytes: 1u64 << (max_po2.min(40) as u32 + 14),
            max_po2,
            cycles_per_sec,
            slots: 1,
            recursion: true,
        }
    }
}

impl JobSpec {
    /// Sensible defaults: redundancy 1, 3 attempts, 60 s slack per attempt, join tree, no in-flight cap,
    /// reward 100 per verified task.
    pub fn new(po2: u8) -> Self {
        Self {
            po2,
            redundancy: 1,
            max_attempts: 3,
            task_timeout_ms: 60_000,
            deadline: None,
            aggregation: Aggregation::JoinTree,
            max_in_flight: u32::MAX,
            reward_per_task: 100,
        }
    }
}

impl Default for JobSpec {
    fn default() -> Self {
        Self::new(20)
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RejectReason::InvalidProof => "invalid proof",
            RejectReason::WrongClaim => "wrong claim",
            RejectReason::NotProversOwn => "not the prover's own result",
            RejectReason::Malformed => "malformed result",
        })
    }
}

/// A node's slow-result record as a driver keeps it between runs ([`crate::Scheduler::slow_standing`],
/// [`crate::Scheduler::remember_slow`]): slow results since its last prompt verified one, benches so far (the
/// next lasts twice the last), and how much of its current bench is left (0: not benched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SlowStanding {
    pub strikes: u32,
    pub benches: u32,
    pub bench_left_ms: u64,
}
