//! Scheduler settings. Every field has a default a user can start from; the simulator overrides them per scenario.

use serde::{Deserialize, Serialize};

use crate::types::Time;

/// Settings of one [`crate::Scheduler`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// A node that sends nothing (heartbeat, result, failure) for this long is treated as gone: its tasks are
    /// reassigned and each abandoned task costs it a `Silence` penalty. `None` disables liveness tracking
    /// (a simulator that does not model heartbeats should set this).
    pub heartbeat_timeout_ms: Option<u64>,
    /// At most this many assignments per node at once, whatever slots it claims.
    pub per_node_in_flight_cap: u32,
    /// Work of one lift, in cycles at the node's measured speed (a lift is a fixed-size recursion proof:
    /// ~50 s on a 2-core machine that proves ~2 kHz). Added to the expected time of a Prove task of a join-tree job.
    pub lift_cycles: u64,
    /// Work of one join, in cycles at the node's measured speed (same size as a lift).
    pub join_cycles: u64,
    /// A queued task that no live node could take (none fits, or every fitting one is excluded) for this long
    /// fails its job with a reason instead of hanging forever. `None`: wait forever.
    pub stall_timeout_ms: Option<u64>,
    /// At most this many copies of one task at once (redundancy + backups + emergency races).
    pub max_copies_per_task: u32,
    pub speculative: SpeculativeConfig,
    pub ledger: LedgerConfig,
    /// Quarantine of nodes whose results are rejected (`None`: only the failed task excludes them).
    pub quarantine: Option<QuarantineConfig>,
    /// Benching of nodes whose receipts keep arriving too slowly (`Input::ResultSlow`), with no penalty
    /// (`None`: such a node is only passed over where a faster one is free).
    pub slow_bench: Option<SlowBenchConfig>,
    /// Several nodes with work in hand going silent at the same moment is more likely the client's own
    /// trouble (its machine overloaded, its event loop behind, its link cut) than theirs: such a burst is
    /// excused once (see [`SilenceBurstConfig`]). `None`: every silence is judged alone.
    pub silence_burst: Option<SilenceBurstConfig>,
    /// After a node declines an offer (`Input::TaskDeclined`), the slot it declined stays taken this long, so
    /// it is not offered the next task in a tight loop.
    pub decline_backoff_ms: u64,
    /// Which tasks go to the fastest free nodes rather than to whoever the policy would pick among all of them.
    pub prefer_fast: PreferFastConfig,
    /// Finish-time placement: a task is not given to a free node that would finish it after the class's
    /// horizon, the moment by which its queue could be done on the fitting slots, busy ones counted from when
    /// they are expected to be free (`horizon.rs`). The slow node stays idle and the task waits a little for a
    /// faster one, instead of becoming the job's last leaf. Only first copies of tasks that no node has failed
    /// are held, and a busy slot past its expected end is not waited for.
    pub finish_time_placement: bool,
    /// How much sooner faster slots must finish a task before a free node is passed over for them: at least
    /// this many times sooner than that node would (>= 1). At 1 a node idles whenever it would be last; under
    /// sustained load that lets the fast nodes' queues grow until waiting for them costs as much as proving on
    /// a slow node (the simulator's 10,000-node stream of jobs got slower); at 2 a slow node is passed over only
    /// when waiting is clearly better.
    pub finish_time_gain: f64,
    /// A task that failed on some node, and a speculative backup, go to the fastest free nodes that have
    /// delivered a verified result before, when any is free (else to whoever the policy picks). Unproven
    /// nodes are the ones never tried, and a faulty one is caught only by trying it: a retry should not be
    /// the try. While some proven node fits, a backup waits for one rather than go to a node never tried.
    pub proven_retries: bool,
    /// Learn each node's speed from what it does instead of trusting its claim: a verified result sets the
    /// speed to what the copy took (assignment to verification, transfers included; averaged with earlier
    /// results), and a missed deadline caps it at half of what the node has shown it cannot beat. Later
    /// deadlines, straggler checks and the fast-node preference use the learned speed, so a slow honest node
    /// gets a deadline it can meet on the retry rather than missing it again and again.
    pub learn_speed: bool,
    /// A node that misses a deadline while it is still heard from (heartbeats within `heartbeat_timeout_ms`)
    /// is slow, not silent: its deadline is extended by one more allowance, up to this many times, with no
    /// penalty and no cancel, and a backup copy is started elsewhere where that would finish sooner. Only
    /// after the extensions (or at once, for a node not heard from) does a missed deadline cost a `Silence`
    /// penalty. 0 restores the strict rule.
    pub slow_extensions: u32,
    /// Proving time grows a little faster than a segment's cycles: each po2 step above 14 costs this many
    /// times twice the one below (measured with RISC Zero 3.0.6 on the reference box: 8.2 s at po2 14, 34 s
    /// at 16, 137 s at 18, 555 s at 20, ~1.5 % per step). Node speeds are measured at po2 14, so a deadline
    /// for a larger segment scales by cycles and by this; 1.0 scales by cycles alone.
    #[serde(default = "default_po2_step_growth")]
    pub po2_step_growth: f64,
}

fn default_po2_step_growth() -> f64 {
    1.015
}

impl SchedulerConfig {
    /// What proving a segment of `cycles` costs, in po2-14 cycles: its cycles, times `po2_step_growth` for
    /// every po2 step above 14 (speeds are measured at po2 14; larger segments prove a little slower per
    /// cycle). Deadlines, placement and `crate::predict` all divide this by a node's speed.
    pub fn prove_cost(&self, cycles: u64) -> u64 {
        let steps = (cycles.max(1) as f64).log2() - 14.0;
        let growth = self.po2_step_growth;
        if steps <= 0.0 || !growth.is_finite() || growth <= 0.0 {
            return cycles;
        }
        (cycles as f64 * growth.powf(steps)).round() as u64
    }
}

/// Fast-node preference. A join (and the lift of a join-tree leaf) is a fixed-size recursion proof that sits on
/// the job's critical path: on a network with a strong minority it should run there, not on whichever weak node
/// has waited longest. For a preferred task the policy chooses only among the free fitting nodes at least
/// `1 / within` as fast (claimed `cycles_per_sec`) as the fastest of them, at most `max_candidates` of them
/// (found through the pool's speed index: no scan of the nodes). The policy still decides among those (FIFO
/// takes the longest-waiting one, VRF elects, the auction prices), so the choice stays theirs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreferFastConfig {
    /// Join tasks.
    pub joins: bool,
    /// Prove tasks of join-tree jobs (prove + lift). Off by default: on a large network it would hand every
    /// segment to the same fastest nodes (concentrating rewards), and segments are many and mostly in parallel.
    pub join_tree_proves: bool,
    /// Speculative backup copies (they exist to finish before a straggler: the faster the better).
    pub backups: bool,
    /// Tolerance: candidates down to the fastest free node's speed divided by this (>= 1; 1: ties only).
    pub within: f64,
    /// At most this many candidates (the policy's choice set).
    pub max_candidates: u32,
}

impl Default for PreferFastConfig {
    fn default() -> Self {
        Self {
            joins: true,
            join_tree_proves: false,
            backups: true,
            within: 1.5,
            max_candidates: 32,
        }
    }
}

/// When a node that returned bad results stops getting work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuarantineConfig {
    /// Rejected results (invalid, wrong claim, copied, malformed) before the quarantine starts.
    pub after_rejections: u32,
    /// How long it lasts, in ms (`None`: for good). A quarantined node's `NodeJoined` is ignored until then.
    pub duration_ms: Option<u64>,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        Self {
            after_rejections: 1,
            duration_ms: Some(3_600_000),
        }
    }
}

/// When a node whose receipts keep arriving slowly stops getting work for a while. Its receipt is raced by a
/// backup each time and loses, so it never shows the scheduler how slow it really is, and wherever the fast
/// nodes are busy (with this client's work or, at a gateway, with other clients' work the client cannot see)
/// it looks like the free node that finishes first: the soak's gateway handed a receipt trickler tasks in 92 of
/// 304 sessions, each then waiting for the backup. After `after_slow_results` slow results with no prompt
/// verified result between, the node is benched: given nothing new for `first_ms`, doubled at each further
/// slow result up to `max_ms`, then tried again. No penalty: an honest prover on a congested uplink is slow,
/// not lying. Not benched while it is the only live node (slow is better than nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlowBenchConfig {
    pub after_slow_results: u32,
    pub first_ms: u64,
    pub max_ms: u64,
}

impl Default for SlowBenchConfig {
    fn default() -> Self {
        Self {
            after_slow_results: 2,
            first_ms: 60_000,
            max_ms: 1_800_000,
        }
    }
}

/// A burst of silences: at least `min_nodes` nodes holding tasks, last heard from within `window_ms` of each
/// other, time out together. None of them is penalized or loses its tasks then: each is given one more
/// heartbeat timeout, as if heard from at that moment (but not counted as heard from for a deadline
/// extension). A node heard from again is judged as usual from then on; one still silent at the end of its
/// excuse is taken out of the pool and its tasks reassigned, still without a penalty (the client cannot tell
/// whose fault it was), and the task's attempt counts.
///
/// The trade: nodes that collude to go silent together avoid the `Silence` penalty (not the loss of their
/// pay: they deliver nothing) and hold their tasks one heartbeat timeout longer; deadlines and backups run as
/// before. Seen on one overloaded machine (issue 30): bursts of up to 15 honest provers "silent" at the same
/// instant, 99 penalties, and a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SilenceBurstConfig {
    pub min_nodes: u32,
    pub window_ms: u64,
}

impl Default for SilenceBurstConfig {
    fn default() -> Self {
        Self {
            min_nodes: 3,
            window_ms: 2_000,
        }
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            heartbeat_timeout_ms: Some(30_000),
            per_node_in_flight_cap: 4,
            lift_cycles: 100_000,
            join_cycles: 100_000,
            stall_timeout_ms: Some(600_000),
            max_copies_per_task: 8,
            speculative: SpeculativeConfig::default(),
            ledger: LedgerConfig::default(),
            quarantine: Some(QuarantineConfig::default()),
            slow_bench: Some(SlowBenchConfig::default()),
            silence_burst: Some(SilenceBurstConfig::default()),
            decline_backoff_ms: 5_000,
            prefer_fast: PreferFastConfig::default(),
            finish_time_placement: true,
            finish_time_gain: 2.0,
            proven_retries: true,
            learn_speed: true,
            slow_extensions: 3,
            po2_step_growth: default_po2_step_growth(),
        }
    }
}

/// Speculative backup copies of stragglers (MapReduce-style): one extra copy of a running task on another idle
/// node; the first verified result wins and the other copy is cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpeculativeConfig {
    pub enabled: bool,
    /// Tail trigger: once the job's execution has finished and nothing of it waits for a node, every running task
    /// gets a backup when at most this many of the job's tasks remain unfinished.
    pub tail_tasks: u32,
    /// Straggler trigger: a copy running longer than `slow_factor` x the expected time of its task gets a backup.
    /// The expected time is the shorter of the time at its own node's claimed speed (a node slower than it
    /// claims) and the time at the reference speed below (a slow but honest node that sets the pace).
    /// See `only_if_faster` for when such a backup starts, and [`PreferFastConfig::backups`] for where.
    /// `None` disables this trigger.
    pub slow_factor: Option<f64>,
    /// Reference speed for the straggler trigger: the claimed speed at this quantile of the live nodes that fit
    /// the task (0.5: the median; refreshed at most every `reference_refresh_ms` while nodes come and go).
    /// `None`: compare each copy with its own node's expected time only.
    pub reference_quantile: Option<f64>,
    /// How stale the cached reference speed may get (ms of scheduler time) while the node set changes.
    pub reference_refresh_ms: u64,
    /// A straggler's backup starts only on a node expected to finish before the straggler (a copy already past
    /// its own expected time counts as never finishing); otherwise the request is dropped. Tail backups are
    /// not affected.
    pub only_if_faster: bool,
    /// Backups per task at most (over the task's life).
    pub max_backups_per_task: u32,
    /// Idle trigger: once nothing of a job waits for a node, while some node is free, its running tasks get
    /// straggler backups (started only where a free node is expected to finish first). With it, a straggler's
    /// backup request that no free node would win waits for one instead of being dropped.
    pub idle_backups: bool,
    /// A straggler's backup whose every copy is 30 s past its expected end (stuck on a node that may never answer)
    /// is placed before queued tasks, on the nodes backups may use; otherwise backups get the nodes queued work
    /// leaves, which on a loaded network is none until the stuck copy's deadline.
    pub stuck_first: bool,
}

impl Default for SpeculativeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tail_tasks: 2,
            slow_factor: Some(1.5),
            reference_quantile: Some(0.5),
            reference_refresh_ms: 10_000,
            only_if_faster: true,
            max_backups_per_task: 1,
            idle_backups: true,
            stuck_first: true,
        }
    }
}

/// Amounts and reputation parameters of the [`crate::Ledger`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LedgerConfig {
    /// Slashed (from stake first, then balance, never below zero) when a node misses a deadline or goes silent.
    pub slash_silence: u64,
    /// Slashed when a node's result is rejected.
    pub slash_invalid: u64,
    /// Share of every slash, in per mille, held in escrow for whoever then proves the task (Boundless pays half
    /// of a burned collateral to the prover who finishes the work). The rest is burned. If the task is never
    /// proved (job failed or cancelled), the escrow is burned.
    pub slash_to_finisher_permille: u32,
    /// Epoch length for the activity score; the score is updated at every epoch boundary.
    pub epoch_ms: Time,
    /// Aztec activity score: x <- min(max(0, x - decay) + inc * [proved in epoch], upper).
    pub rep_inc: u64,
    pub rep_decay: u64,
    pub rep_upper: u64,
    /// Extension (not in Aztec's formula): the score also drops by this much at every penalty, so that a
    /// reputation-gated policy stops favouring a node that fails.
    pub rep_slash: u64,
    /// Score of a new node.
    pub rep_initial: u64,
    /// Aztec shares: y(x) = max(k - a * d^2, m) if x <= h else k, with d = (h - x) / rep_inc, the distance to `h`
    /// in epochs of activity (Aztec's live a = 1,000 only makes sense in such a unit). Used for the epoch reward
    /// split.
    pub share_k: u64,
    pub share_a: u64,
    pub share_h: u64,
    pub share_m: u64,
    /// Minted at every epoch end and split by shares among nodes that proved something in it (0: off).
    pub epoch_reward: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            slash_silence: 100,
            slash_invalid: 1_000,
            slash_to_finisher_permille: 500,
            epoch_ms: 600_000,
            rep_inc: 125_000,
            rep_decay: 100_000,
            rep_upper: 15_000_000,
            rep_slash: 250_000,
            rep_initial: 0,
            share_k: 1_000_000,
            share_a: 1_000,
            share_h: 15_000_000,
            share_m: 100_000,
            epoch_reward: 0,
        }
    }
}
