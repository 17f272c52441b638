//! One job's state inside the service: its segments and their expected claims, its verified results, who
//! waits for it, and the blobs it pinned.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use cairn_backend::{ExecutionSummary, SegmentClaim};
use cairn_net::{BlobId, BlobRef, Client};
use cairn_scheduler::{Aggregation, JobId, NodeId};
use tokio::sync::{mpsc, oneshot};

use super::{JobSettings, NetworkProof, Progress};
use crate::NodeError;

/// What a result must be checked against.
pub(super) enum Expect {
    /// A segment receipt proving this claim.
    Segment(SegmentClaim),
    /// A lifted segment receipt proving this claim.
    Lifted(SegmentClaim),
    /// The join of these two verified results (left, right).
    Join(Vec<u8>, Vec<u8>),
}

pub(super) type Waiter = oneshot::Sender<Result<NetworkProof, NodeError>>;

/// A job the service is working on.
pub(super) struct JobRun {
    pub id: JobId,
    /// Its key in the job database (program, input, po2, aggregation).
    pub key: String,
    pub owner: String,
    pub settings: JobSettings,
    pub program: BlobRef,
    pub client: Client,
    /// Segments stored and published, with their expected claims.
    pub segments: BTreeMap<u32, (SegmentClaim, BlobRef)>,
    /// Execution ended with this many segments, some not stored yet: the scheduler hears of the end when
    /// they are.
    pub pending_total: Option<u32>,
    /// Verified results by task index: segment receipts (composite), or lifted segments and joins.
    pub verified: BTreeMap<u32, Vec<u8>>,
    /// Join-tree jobs: verified results published as blobs, for the joins that take them as input.
    pub result_refs: BTreeMap<u32, BlobRef>,
    /// Join-tree jobs: each join task's two inputs (task indices), as assigned.
    pub joins: BTreeMap<u32, (u32, u32)>,
    pub joins_verified: u32,
    pub proved_by: BTreeMap<String, u32>,
    pub summary: Option<ExecutionSummary>,
    pub resumed_segments: u32,
    pub started: Instant,
    pub deadline: tokio::time::Instant,
    pub execute_secs: f64,
    pub segment_latency_secs: Vec<f64>,
    /// Per segment verified in this run (by index): the proving time its prover reported.
    pub segment_prove_ms: BTreeMap<u32, u64>,
    pub assemble_started: Option<Instant>,
    pub assembling: bool,
    /// Who waits for the result (a job submitted twice while it runs has two).
    pub waiters: Vec<Waiter>,
    /// Who follows its progress.
    pub watchers: Vec<mpsc::UnboundedSender<Progress>>,
    /// Blobs this job pinned in the store (program, segments, published results): unpinned when the job goes
    /// away, however it ends, so a long-running service's store can evict them.
    pub pinned: Vec<BlobId>,
    /// The receipt each prover delivered for each task (task index, node), while it is checked and after: a
    /// prover answers a task once. A repeat of the same receipt (a retried request) is acknowledged without a
    /// second fetch; another receipt is refused, so a prover cannot make this client fetch and verify
    /// receipt after receipt for one task. A failed transfer spends the prover's copy too (issue 29, item 2):
    /// it is remembered in `failed_fetches` and forgotten only when the prover takes the task again.
    pub delivered: HashMap<(u32, NodeId), BlobId>,
    /// Deliveries whose receipt could not be fetched (task index, node).
    pub failed_fetches: std::collections::HashSet<(u32, NodeId)>,
    /// Fetches of receipts that arrived slowly, by task index: dropped (which aborts the fetch and frees its
    /// transfer slot) once the task is verified, or when the job goes away.
    pub slow_fetches: HashMap<u32, Vec<tokio::sync::oneshot::Sender<()>>>,
    /// Set when the job goes away, however it ends (cancelled, timed out, failed, done): its executor stops
    /// at its next segment (issue 29, item 4: it ran on until the program ended, endless ones never).
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for JobRun {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // In-memory pin counts only: no disk I/O here.
        for id in self.pinned.drain(..) {
            let _ = self.client.store().unpin(&id);
        }
    }
}

impl JobRun {
    pub fn aggregation(&self) -> Aggregation {
        self.settings.aggregation
    }

    pub fn emit(&mut self, p: Progress) {
        self.watchers.retain(|w| w.send(p.clone()).is_ok());
    }

    /// What a result for `task_index` must prove, or why this job cannot take one.
    pub fn expectation(&self, task_index: u32) -> Result<Expect, &'static str> {
        match (self.segments.get(&task_index), self.joins.get(&task_index)) {
            (Some((claim, _)), _) if self.aggregation() == Aggregation::JoinTree => {
                Ok(Expect::Lifted(*claim))
            }
            (Some((claim, _)), _) => Ok(Expect::Segment(*claim)),
            // The inputs of a join were verified before it was offered.
            (None, Some((l, r))) => match (self.verified.get(l), self.verified.get(r)) {
                (Some(l), Some(r)) => Ok(Expect::Join(l.clone(), r.clone())),
                _ => Err("this join's inputs are not verified here"),
            },
            (None, None) => Err("no such task in this job"),
        }
    }

    /// Hands the result to everyone waiting: the first waiter gets the error itself, the others a copy of
    /// its message.
    pub fn deliver(&mut self, result: Result<NetworkProof, NodeError>) {
        let waiters = std::mem::take(&mut self.waiters);
        match result {
            Ok(proof) => {
                for w in waiters {
                    let _ = w.send(Ok(proof.clone()));
                }
            }
            Err(e) => {
                let copies: Vec<NodeError> = (1..waiters.len()).map(|_| e.duplicate()).collect();
                for (w, e) in waiters.into_iter().zip(std::iter::once(e).chain(copies)) {
                    let _ = w.send(Err(e));
                }
            }
        }
    }
}
