//! Read-only views of the scheduler's state, serializable for a status API.

use serde::{Deserialize, Serialize};

use crate::types::{JobId, JobOutcome, JobSpec, NodeId, TaskId, TaskKind, Time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    Running,
    Completed,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    /// Its inputs (children of a join) are not verified yet.
    WaitingForInputs,
    /// Ready, held back by the job's in-flight cap.
    Throttled,
    /// Ready and waiting for a node (possibly also running copies, if more are wanted).
    Queued,
    /// At least one copy is running and no more are wanted.
    Running,
    /// A result was verified.
    Verified,
    /// The job ended before this task was verified.
    Abandoned,
}

/// One copy of a task in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssigneeStatus {
    pub node: NodeId,
    pub attempt: u32,
    pub started_at: Time,
    pub deadline: Time,
    pub expected_ms: u64,
    pub backup: bool,
    pub price: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task: TaskId,
    pub kind: TaskKind,
    pub state: TaskState,
    /// 0 for a segment, then 1 + the height of its higher child.
    pub height: u32,
    pub assignees: Vec<AssigneeStatus>,
    pub winner: Option<NodeId>,
    /// Copies made so far (assignments, backups included).
    pub attempts: u32,
    /// Copies that failed, timed out, were abandoned or were rejected.
    pub failures: u32,
    pub backups: u32,
    /// Nodes that may not get this task again.
    pub excluded: Vec<NodeId>,
    pub created_at: Time,
    pub ready_at: Option<Time>,
    pub first_assigned_at: Option<Time>,
    pub verified_at: Option<Time>,
    pub last_failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub job: JobId,
    pub state: JobState,
    pub spec: JobSpec,
    pub submitted_at: Time,
    pub finished_at: Option<Time>,
    pub outcome: Option<JobOutcome>,
    pub segments_received: u32,
    /// Known once execution finished.
    pub segments_total: Option<u32>,
    /// The final task, once the plan is complete (join tree) .
    pub root: Option<TaskId>,
    pub tasks_total: u32,
    pub tasks_verified: u32,
    pub copies_in_flight: u32,
    /// Whether some task needed a reassignment (failure, timeout, rejection, departure).
    pub needed_fallback: bool,
    /// Speculative backups launched.
    pub backups: u32,
    pub tasks: Vec<TaskStatus>,
}

/// Counters of the whole scheduler (cheap; for metrics).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerStats {
    pub jobs_running: u64,
    pub jobs_completed: u64,
    pub jobs_failed: u64,
    pub jobs_cancelled: u64,
    pub nodes_live: u64,
    pub nodes_with_free_slot: u64,
    pub tasks_queued: u64,
    pub assignments: u64,
    pub backups_launched: u64,
    pub timeouts: u64,
    pub rejections: u64,
    pub declines: u64,
    pub abandoned_by_departure: u64,
    /// Verified results that arrived after their task was already won (not accepted).
    pub late_duplicates: u64,
    /// Nodes put in quarantine for rejected results.
    pub quarantines: u64,
    /// Times a node was benched for receipts arriving too slowly (`SchedulerConfig::slow_bench`).
    pub benched: u64,
    /// Straggler backups not launched because no free node was expected to finish before the straggler (with
    /// idle backups a request waits and is counted each time it is looked at).
    pub backups_skipped: u64,
    /// Deadlines extended because the node was still heard from (slow, not silent; no penalty).
    pub extensions: u64,
    /// Silences excused because several nodes went silent together (`SchedulerConfig::silence_burst`), and
    /// nodes later taken out still silent after their excuse (no penalty).
    #[serde(default)]
    pub silences_excused: u64,
    #[serde(default)]
    pub excused_gone: u64,
    /// Placements held back because every free node would finish after the class's horizon (finish-time
    /// placement: faster slots will be free in time).
    #[serde(default)]
    pub held: u64,
}
