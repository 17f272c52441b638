//! Cairn's scheduler: who proves what, what happens when they fail. A pure state machine: no I/O, no clock,
//! no async. The real node, the tests and the simulator drive the same code.
//!
//! # Bird's-eye view
//!
//! ```text
//!   Input ──► Scheduler::handle(now, input) ──► Vec<Action>        Scheduler::next_deadline() ──► send Input::Tick
//! ```
//!
//! **Inputs**: a job is submitted ([`JobSpec`]: po2, redundancy r, attempts, slack, aggregation, in-flight cap,
//! reward); segments are reported while execution runs, then execution finishes (or fails); nodes join with a
//! [`NodeCapacity`], heartbeat, leave; a node declines a task ([`Input::TaskFailed`]); the driver reports a result
//! it verified ([`Input::ResultVerified`]) or rejected ([`Input::ResultRejected`]); time passes ([`Input::Tick`]).
//!
//! **Actions**: assign a task to a node with an absolute deadline; cancel a copy; reward; penalize (cause
//! recorded); job finished (completed with its root, failed with a reason, cancelled).
//!
//! **The plan.** Each segment becomes a Prove task (which, for a join-tree job, also lifts). With
//! [`Aggregation::JoinTree`], a join tree grows as segments arrive, merging equal-height peaks like a binary counter
//! (Bento's "mountain range"), so joins run before execution ends; at the end the remaining peaks are joined into
//! one root. With [`Aggregation::Composite`] there are no joins: the job completes when every segment is verified.
//! Join task indices start at [`JOIN_INDEX_BASE`]; a Prove task's index is its segment number.
//!
//! **Task lifecycle.** `WaitingForInputs` (a join whose children are not verified) → `Throttled` (held back by the
//! job's `max_in_flight`) → `Queued` (in a queue per requirement class: po2, recursion) → `Running` (r copies on r
//! distinct nodes, each with a deadline = now + slack + expected time at that node's speed) → `Verified` (first
//! verified copy wins; the others are cancelled and their compute counted as redundancy cost). A copy that fails,
//! misses its deadline (Silence penalty, cancel), is rejected (penalty by cause) or whose node leaves or goes silent
//! costs one attempt, excludes that node from the task, and the task is queued again; at `max_attempts` the job
//! fails with a reason. Near the end of a job, or when a copy runs past `slow_factor` x its task's expected time
//! (at the median live node's speed, or at its own node's if that is shorter), one speculative backup copy is
//! launched on another free node ([`SpeculativeConfig`]).
//!
//! **Who gets work.** Only nodes with a free slot (min of their slots and the per-node cap), whose `max_po2` covers
//! the task's po2, and with recursion for joins and join-tree Prove tasks; among those, a pluggable
//! [`SelectionPolicy`] chooses (FIFO, VRF, reputation, stake lottery, reverse Dutch auction). Joins (optionally
//! also join-tree Prove tasks) prefer fast nodes: the policy chooses among the fastest free fitting nodes only
//! ([`PreferFastConfig`]). Free nodes are indexed by (max_po2, recursion) bucket and by speed, so a placement
//! never scans all nodes.
//!
//! **Invariants** (tested, including by property tests over random input orders, failures and churn):
//! a job completes only when every one of its tasks has a verified winner; a task's result is accepted at most once
//! (a late duplicate is ignored: no second reward, no second completion); no node is ever assigned a task above its
//! `max_po2`, nor a recursion task without recursion, nor more copies than its free slots; after a job ends no
//! assignment of it is made and every copy in flight is cancelled; every job ends completed or with a reason (or is
//! still waiting on inputs); inputs about unknown jobs, nodes or tasks are ignored; value in the [`Ledger`] is
//! conserved and rewards are only paid for verified winning results.

mod backup_queue;
pub mod config;
mod horizon;
mod idmap;
pub mod ledger;
mod liveness;
mod plan;
pub mod policy;
mod pool;
pub mod predict;
mod quantile;
mod scheduler;
pub mod status;
pub mod types;

pub use config::{
    LedgerConfig, PreferFastConfig, QuarantineConfig, SchedulerConfig, SlowBenchConfig,
    SpeculativeConfig,
};
pub use ledger::{Account, CountAmount, Ledger, LedgerError, PenaltyTally, Totals};
pub use policy::{
    policy_by_name, AuctionPolicy, FifoPolicy, Pick, ReputationPolicy, Selection, SelectionPolicy,
    SelectionRequest, StakePolicy, UnknownPolicy, VrfPolicy, POLICY_NAMES,
};
pub use pool::Candidates;
pub use scheduler::Scheduler;
pub use status::{AssigneeStatus, JobState, JobStatus, SchedulerStats, TaskState, TaskStatus};
pub use types::*;
