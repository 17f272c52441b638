//! The client coordinator (`cairn prove --network`).
//!
//! It executes the program once on a blocking thread, streaming segments into its blob store as they are
//! produced; drives the scheduler (redundancy, deadlines, reassignment, speculative backups, selection
//! policy) with what the network reports; offers tasks to provers; fetches, checks and verifies every result
//! off the async runtime; commits each verified receipt to SQLite before the scheduler hears of it; and
//! assembles the final receipt. Restarted on the same job (same program, input, po2 and database), it skips
//! every segment already verified.
//!
//! One loop owns the scheduler and all job state; everything slow (execution, verification, assembly,
//! requests) runs elsewhere and reports back through a channel.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_backend::{
    BackendError, Digest32, ExecutionSummary, ProvingBackend, SegmentBlob, SegmentClaim,
};
use cairn_net::protocol::{
    ErrorCode, ErrorReply, FailureKind, NodeCapacity as NetCapacity, Offer, Request, Response,
    TaskKind as NetTaskKind,
};
use cairn_net::{BlobRef, Client, Event, Network, PeerId, Retention};
use cairn_scheduler::{
    policy_by_name, Action, Aggregation, Input, JobId, JobOutcome, JobSpec, NodeCapacity, NodeId,
    RejectReason, Scheduler, SchedulerConfig, TaskId, TaskKind,
};
use tokio::sync::mpsc;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::jobdb::JobDb;
use crate::status::{Metrics, StatusServer};
use crate::NodeError;

/// Largest receipt a prover may hand us (segment receipts are ~200-300 KB).
pub const MAX_RECEIPT_BYTES: u64 = 16 << 20;

/// Everything the coordinator needs.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub net: cairn_net::Config,
    pub db_path: PathBuf,
    pub po2: u8,
    pub redundancy: u32,
    pub max_attempts: u32,
    /// Slack added to each task's expected proving time before it is reassigned.
    pub task_slack: Duration,
    /// Selection policy name (`fifo`, `vrf`, `reputation`, `stake`, `auction`).
    pub policy: String,
    pub scheduler: SchedulerConfig,
    /// Serve job status (JSON) and Prometheus metrics here.
    pub status_addr: Option<SocketAddr>,
    /// Give up if the job is not done by then.
    pub job_timeout: Duration,
    /// How the verified segments become one receipt: `Composite` (assembled here, no recursion needed) or
    /// `JoinTree` (provers lift each segment and join the receipts pairwise; the client verifies every lift
    /// and join and finishes with a succinct receipt). A join tree needs provers with recursion.
    pub aggregation: Aggregation,
}

/// Progress, for progress bars and logs.
#[derive(Debug, Clone)]
pub enum Progress {
    Listening(Vec<String>),
    StatusServer(SocketAddr),
    Resumed {
        verified: u32,
    },
    /// The previous run stopped during execution: its `dropped` verified segments cannot be reused.
    Restarted {
        dropped: u32,
    },
    SegmentExecuted(u32),
    ExecutionFinished {
        segments: u32,
    },
    ProverJoined(PeerId),
    Assigned {
        segment: u32,
        prover: PeerId,
    },
    Verified {
        segment: u32,
        prover: PeerId,
    },
    Rejected {
        segment: u32,
        prover: PeerId,
        reason: String,
    },
    Aggregating,
}

/// A finished network proof.
#[derive(Debug)]
pub struct NetworkProof {
    pub summary: ExecutionSummary,
    /// Final receipt (bincode `risc0_zkvm::Receipt` for the RISC Zero backend).
    pub receipt: Vec<u8>,
    /// Segments already verified in an earlier run of this job (not proved again).
    pub resumed_segments: u32,
    /// Verified segments proved during this run, by prover.
    pub proved_by: BTreeMap<String, u32>,
    pub execute_secs: f64,
    /// Per segment proved in this run: seconds from its first offer to its verified result (proving,
    /// transfers, verification, queueing at the prover).
    pub segment_latency_secs: Vec<f64>,
    pub assemble_secs: f64,
    pub total_secs: f64,
    /// How the final receipt was made.
    pub aggregation: Aggregation,
    /// Join-tree jobs: joins proved by the network and verified here.
    pub joins_verified: u32,
}

/// What finished elsewhere and reports back to the loop.
enum Report {
    Segment(SegmentBlob),
    Executed(Result<ExecutionSummary, BackendError>),
    Status(PeerId, Option<NetCapacity>),
    OfferAnswer {
        task: TaskId,
        node: NodeId,
        declined: Option<String>,
    },
    Checked {
        task: TaskId,
        node: NodeId,
        outcome: Result<(), RejectReason>,
        receipt: Option<Vec<u8>>,
        reason: String,
    },
    FetchFailed {
        task: TaskId,
        node: NodeId,
        reason: String,
    },
    Assembled(Result<Vec<u8>, BackendError>),
}

fn to_sched_capacity(c: &NetCapacity) -> NodeCapacity {
    NodeCapacity {
        memory_bytes: c.memory_bytes,
        max_po2: c.max_po2,
        cycles_per_sec: c.cycles_per_sec as f64,
        slots: c.slots,
        recursion: c.recursion,
    }
}

/// The key under which a job is stored: same program, input, po2 and aggregation means the same job (a
/// composite job's segment receipts cannot serve a join tree, which needs lifted ones).
pub fn job_key(image_id: &Digest32, input: &[u8], po2: u8, aggregation: Aggregation) -> String {
    let base = format!("{image_id}:{}:{po2}", Digest32::sha256(input));
    match aggregation {
        Aggregation::Composite => base,
        Aggregation::JoinTree => format!("{base}:join-tree"),
    }
}

/// What a result must be checked against.
enum Expect {
    /// A segment receipt proving this claim.
    Segment(SegmentClaim),
    /// A lifted segment receipt proving this claim.
    Lifted(SegmentClaim),
    /// The join of these two verified results (left, right).
    Join(Vec<u8>, Vec<u8>),
}

struct Coordinator {
    backend: Arc<dyn ProvingBackend>,
    client: Client,
    db: JobDb,
    sched: Scheduler,
    job: JobId,
    program: BlobRef,
    reports: mpsc::Sender<Report>,
    peers: HashMap<PeerId, NodeId>,
    nodes: HashMap<NodeId, PeerId>,
    next_node: u64,
    segments: BTreeMap<u32, (SegmentClaim, BlobRef)>,
    aggregation: Aggregation,
    /// Verified results by task index: segment receipts (composite), or lifted segments and joins.
    verified: BTreeMap<u32, Vec<u8>>,
    /// Join-tree jobs: verified results published as blobs, for the joins that take them as input.
    result_refs: BTreeMap<u32, BlobRef>,
    /// Join-tree jobs: each join task's two inputs (task indices), as assigned.
    joins: BTreeMap<u32, (u32, u32)>,
    joins_verified: u32,
    proved_by: BTreeMap<String, u32>,
    summary: Option<ExecutionSummary>,
    segment_latency_secs: Vec<f64>,
    assemble_started: Option<Instant>,
    metrics: Metrics,
    status: Arc<Mutex<serde_json::Value>>,
    start: Instant,
    /// Blobs this job pinned in the store (program, segments, published results): unpinned when the job's
    /// coordinator goes away, however it ends, so a long-running client's store can evict them.
    pinned: Vec<cairn_net::BlobId>,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        // In-memory pin counts only: no disk I/O here.
        for id in self.pinned.drain(..) {
            let _ = self.client.store().unpin(&id);
        }
    }
}

impl Coordinator {
    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn node_of(&mut self, peer: PeerId) -> NodeId {
        if let Some(n) = self.peers.get(&peer) {
            return *n;
        }
        let n = NodeId(self.next_node);
        self.next_node += 1;
        self.peers.insert(peer, n);
        self.nodes.insert(n, peer);
        n
    }

    /// A prover told us its capacity (status answer or gossip): it joins the pool if it is not in it. A peer
    /// back after a disconnect keeps the node id it had, so its quarantine, learned speed and ledger account
    /// are where it left them (the scheduler keeps a quarantined node out).
    fn prover_seen(
        &mut self,
        peer: PeerId,
        capacity: &NetCapacity,
        progress: &mut dyn FnMut(Progress),
    ) -> Option<JobOutcome> {
        let node = match self.peers.get(&peer).copied() {
            Some(node) if self.sched.node_capacity(node).is_some() => return None,
            Some(node) => {
                info!(%peer, "prover reconnected");
                node
            }
            None => {
                progress(Progress::ProverJoined(peer));
                info!(%peer, max_po2 = capacity.max_po2, slots = capacity.slots, "prover joined");
                self.node_of(peer)
            }
        };
        self.feed(
            Input::NodeJoined {
                node,
                capacity: to_sched_capacity(capacity),
            },
            progress,
        )
    }

    fn feed(&mut self, input: Input, progress: &mut dyn FnMut(Progress)) -> Option<JobOutcome> {
        let now = self.now();
        let actions = self.sched.handle(now, input);
        let mut finished = None;
        for action in actions {
            if let Some(outcome) = self.act(action, progress) {
                finished = Some(outcome);
            }
        }
        if let Some(s) = self.sched.job_status(self.job) {
            *self.status.lock().expect("poisoned") = serde_json::to_value(s).unwrap_or_default();
        }
        finished
    }

    fn act(&mut self, action: Action, progress: &mut dyn FnMut(Progress)) -> Option<JobOutcome> {
        match action {
            Action::Assign {
                task,
                kind,
                node,
                attempt,
                deadline,
            } => {
                let peer = self.nodes.get(&node).copied()?;
                let kind = match kind {
                    TaskKind::Prove { segment, po2 } => {
                        let (_, data) = self.segments.get(&segment).copied()?;
                        progress(Progress::Assigned {
                            segment,
                            prover: peer,
                        });
                        NetTaskKind::Prove {
                            segment,
                            po2,
                            data,
                            lift: self.aggregation == Aggregation::JoinTree,
                        }
                    }
                    TaskKind::Join { left, right } => {
                        let (Some(l), Some(r)) = (
                            self.result_refs.get(&left.index).copied(),
                            self.result_refs.get(&right.index).copied(),
                        ) else {
                            warn!(%task, "join assigned before both of its inputs were verified");
                            return None;
                        };
                        self.joins.insert(task.index, (left.index, right.index));
                        NetTaskKind::Join { left: l, right: r }
                    }
                };
                self.metrics.assigned.inc();
                let offer = Request::Offer(Offer {
                    job: self.job.0,
                    task: task.index,
                    kind,
                    program: self.program,
                    deadline_ms: deadline.saturating_sub(self.now()),
                });
                debug!(%task, %peer, attempt, "offering");
                let (client, reports) = (self.client.clone(), self.reports.clone());
                tokio::spawn(async move {
                    let declined = match client.request(peer, &offer).await {
                        Ok(Response::Accept) => None,
                        Ok(Response::Decline { reason }) => Some(reason),
                        Ok(other) => Some(format!("unexpected answer {other:?}")),
                        Err(e) => Some(e.to_string()),
                    };
                    let _ = reports
                        .send(Report::OfferAnswer {
                            task,
                            node,
                            declined,
                        })
                        .await;
                });
            }
            Action::Cancel { task, node } => {
                if let Some(peer) = self.nodes.get(&node).copied() {
                    let client = self.client.clone();
                    let req = Request::Cancel {
                        job: task.job.0,
                        task: task.index,
                    };
                    tokio::spawn(async move {
                        let _ = client.request(peer, &req).await;
                    });
                }
            }
            Action::Reward { node, task, amount } => {
                let prover = self
                    .nodes
                    .get(&node)
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let now = self.now();
                if let Err(e) = self.db.ledger_event(
                    Some(task.job.0),
                    Some(task.index),
                    &prover,
                    "reward",
                    None,
                    amount,
                    now,
                ) {
                    warn!(error = %e, "could not record a reward");
                }
            }
            Action::Penalize {
                node,
                task,
                cause,
                amount,
            } => {
                let prover = self
                    .nodes
                    .get(&node)
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let cause = format!("{cause:?}");
                self.metrics.penalties.inc();
                warn!(%prover, task = task.index, %cause, "penalized");
                let now = self.now();
                if let Err(e) = self.db.ledger_event(
                    Some(task.job.0),
                    Some(task.index),
                    &prover,
                    "penalty",
                    Some(&cause),
                    amount,
                    now,
                ) {
                    warn!(error = %e, "could not record a penalty");
                }
            }
            Action::JobFinished { outcome, .. } => return Some(outcome),
        }
        None
    }

    /// Publishes a verified result of a join-tree job as a blob, for the join that takes it as input.
    fn publish_result(&mut self, index: u32, bytes: &[u8]) -> Result<(), NodeError> {
        let r = BlobRef::of(bytes);
        let id = self
            .client
            .store()
            .put(bytes, Retention::Pinned)
            .map_err(|e| NodeError::Internal(format!("blob store: {e}")))?;
        self.pinned.push(id);
        self.result_refs.insert(index, r);
        Ok(())
    }

    /// A prover says it finished: fetch its receipt and check it, off the loop.
    fn on_result(&mut self, peer: PeerId, task_index: u32, receipt: BlobRef) -> Response {
        let Some(node) = self.peers.get(&peer).copied() else {
            return Response::Error(ErrorReply::new(ErrorCode::UnknownTask, "unknown prover"));
        };
        let expect = match (self.segments.get(&task_index), self.joins.get(&task_index)) {
            (Some((claim, _)), _) if self.aggregation == Aggregation::JoinTree => {
                Expect::Lifted(*claim)
            }
            (Some((claim, _)), _) => Expect::Segment(*claim),
            // The inputs of a join were verified before it was offered.
            (None, Some((l, r))) => match (self.verified.get(l), self.verified.get(r)) {
                (Some(l), Some(r)) => Expect::Join(l.clone(), r.clone()),
                _ => {
                    return Response::Error(ErrorReply::new(
                        ErrorCode::UnknownTask,
                        "this join's inputs are not verified here",
                    ))
                }
            },
            (None, None) => {
                return Response::Error(ErrorReply::new(
                    ErrorCode::UnknownTask,
                    "no such task in this job",
                ))
            }
        };
        let task = TaskId {
            job: self.job,
            index: task_index,
        };
        if receipt.size > MAX_RECEIPT_BYTES {
            let reports = self.reports.clone();
            tokio::spawn(async move {
                let _ = reports
                    .send(Report::Checked {
                        task,
                        node,
                        outcome: Err(RejectReason::Malformed),
                        receipt: None,
                        reason: "receipt too large".into(),
                    })
                    .await;
            });
            return Response::Ack;
        }
        let (client, backend, reports) = (
            self.client.clone(),
            self.backend.clone(),
            self.reports.clone(),
        );
        let span = info_span!("verify", job = task.job.0, segment = task_index, %peer);
        tokio::spawn(
            async move {
                let fetched = match client
                    .fetch_blob(&[peer], receipt.id, Retention::Evictable)
                    .await
                {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = reports
                            .send(Report::FetchFailed {
                                task,
                                node,
                                reason: e.to_string(),
                            })
                            .await;
                        return;
                    }
                };
                let checked = tokio::task::spawn_blocking(move || {
                    let bytes = std::fs::read(&fetched.path)
                        .map_err(|e| (RejectReason::Malformed, e.to_string()))?;
                    let checked = match &expect {
                        Expect::Segment(claim) => backend.verify_segment(&bytes, claim),
                        Expect::Lifted(claim) => backend.verify_lifted(&bytes, claim),
                        Expect::Join(l, r) => backend.verify_join(&bytes, l, r),
                    };
                    match checked {
                        Ok(()) => Ok(bytes),
                        Err(BackendError::WrongClaim { .. } | BackendError::WrongJoin { .. }) => {
                            Err((
                                RejectReason::WrongClaim,
                                "proves another segment, job or program".to_string(),
                            ))
                        }
                        Err(BackendError::BadReceipt(e)) => Err((RejectReason::Malformed, e)),
                        Err(e) => Err((RejectReason::InvalidProof, e.to_string())),
                    }
                })
                .await;
                let report = match checked {
                    Ok(Ok(bytes)) => Report::Checked {
                        task,
                        node,
                        outcome: Ok(()),
                        receipt: Some(bytes),
                        reason: String::new(),
                    },
                    Ok(Err((reason, detail))) => Report::Checked {
                        task,
                        node,
                        outcome: Err(reason),
                        receipt: None,
                        reason: detail,
                    },
                    Err(e) => Report::Checked {
                        task,
                        node,
                        outcome: Err(RejectReason::InvalidProof),
                        receipt: None,
                        reason: e.to_string(),
                    },
                };
                let _ = reports.send(report).await;
            }
            .instrument(span),
        );
        Response::Ack
    }

    fn on_checked(
        &mut self,
        task: TaskId,
        node: NodeId,
        outcome: Result<(), RejectReason>,
        receipt: Option<Vec<u8>>,
        reason: String,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Option<JobOutcome>, NodeError> {
        let peer = self.nodes.get(&node).copied();
        let prover = peer.map(|p| p.to_string()).unwrap_or_default();
        let outcome = match (outcome, receipt) {
            (Ok(()), Some(bytes)) => {
                // Proofs are randomized: the same bytes from a second prover are a copy. Without the check
                // (the database failed) nothing is accepted: the job stops, to be resumed.
                match self.db.note_receipt(
                    &Digest32::sha256(&bytes),
                    task.job.0,
                    task.index,
                    &prover,
                )? {
                    Some(original) => {
                        warn!(%prover, %original, segment = task.index, "receipt copied from another prover");
                        Err((
                            RejectReason::NotProversOwn,
                            format!("identical to the receipt {original} delivered"),
                        ))
                    }
                    None => Ok(bytes),
                }
            }
            (Ok(()), None) => Err((RejectReason::Malformed, "no receipt".to_string())),
            (Err(r), _) => Err((r, reason)),
        };
        match outcome {
            Ok(bytes) => {
                if !self.verified.contains_key(&task.index) {
                    // Durable before anyone else hears of it (joins are not stored: a resumed job re-plans
                    // them from its verified segments).
                    // A failure here stops the job (rerun to resume) rather than accepting a result that a
                    // restart would lose, or a join input nobody could fetch.
                    let now = self.now();
                    if !task.is_join() {
                        self.db
                            .store_verified(task.job.0, task.index, &bytes, &prover, now)?;
                    }
                    if self.aggregation == Aggregation::JoinTree {
                        // The input of a join to come: served to whoever is given it.
                        self.publish_result(task.index, &bytes)?;
                    }
                    self.verified.insert(task.index, bytes);
                    self.metrics.verified.inc();
                    if task.is_join() {
                        self.joins_verified += 1;
                        info!(%prover, %task, "join verified");
                    } else {
                        *self.proved_by.entry(prover.clone()).or_default() += 1;
                        if let Some(p) = peer {
                            progress(Progress::Verified {
                                segment: task.index,
                                prover: p,
                            });
                        }
                    }
                }
                Ok(self.feed(Input::ResultVerified { node, task }, progress))
            }
            Err((reason, detail)) => {
                self.metrics.rejected.inc();
                if let Some(p) = peer {
                    progress(Progress::Rejected {
                        segment: task.index,
                        prover: p,
                        reason: format!("{reason:?}: {detail}"),
                    });
                }
                let now = self.now();
                let _ = self.db.ledger_event(
                    Some(task.job.0),
                    Some(task.index),
                    &prover,
                    "rejected",
                    Some(&format!("{reason:?}")),
                    0,
                    now,
                );
                Ok(self.feed(Input::ResultRejected { node, task, reason }, progress))
            }
        }
    }
}

/// Proves `program` on `input` with the provers of the network. See the module docs.
pub async fn prove_network(
    cfg: CoordinatorConfig,
    backend: Arc<dyn ProvingBackend>,
    program: Vec<u8>,
    input: Vec<u8>,
    mut progress: impl FnMut(Progress),
) -> Result<NetworkProof, NodeError> {
    let start = Instant::now();
    let image_id = {
        let (b, p) = (backend.clone(), program.clone());
        tokio::task::spawn_blocking(move || b.image_id(&p))
            .await
            .map_err(NodeError::join)??
    };
    let db = JobDb::open(&cfg.db_path)?;
    let key = job_key(&image_id, &input, cfg.po2, cfg.aggregation);
    let (record, resumed) = db.job(&key, image_id, cfg.po2, 0)?;
    // Resume from the recorded execution: re-executing could give a different (equally valid) trace, whose
    // segments would not chain with receipts already verified.
    let recorded = if resumed {
        db.execution(record.id)?
    } else {
        None
    };
    let verified: BTreeMap<u32, Vec<u8>> = if recorded.is_some() {
        db.verified(record.id)?.into_iter().collect()
    } else {
        let dropped = db.reset_segments(record.id)?;
        if dropped > 0 {
            warn!(
                job = record.id,
                dropped, "the previous run stopped during execution; starting the job over"
            );
            progress(Progress::Restarted {
                dropped: dropped as u32,
            });
        }
        BTreeMap::new()
    };
    if recorded.is_some() {
        info!(job = record.id, verified = verified.len(), "resuming job");
        progress(Progress::Resumed {
            verified: verified.len() as u32,
        });
    }
    let resumed_segments = verified.len() as u32;
    let job = JobId(record.id);

    let (client, mut events, event_loop) = Network::new(cfg.net.clone()).await?;
    tokio::spawn(event_loop.run());
    let addrs = client.listen_addrs().await?;
    progress(Progress::Listening(
        addrs.iter().map(|a| a.to_string()).collect(),
    ));
    let program_ref = BlobRef::of(&program);
    let program_id = client
        .publish_blob(program.clone(), Retention::Pinned)
        .await?;

    let metrics = Metrics::default();
    let status = Arc::new(Mutex::new(serde_json::Value::Null));
    if let Some(addr) = cfg.status_addr {
        let bound = StatusServer::start(addr, status.clone(), metrics.clone()).await?;
        progress(Progress::StatusServer(bound));
    }

    let policy =
        policy_by_name(&cfg.policy, record.id).map_err(|e| NodeError::Config(e.to_string()))?;
    let (reports_tx, mut reports) = mpsc::channel::<Report>(256);
    let mut c = Coordinator {
        backend: backend.clone(),
        client: client.clone(),
        db,
        sched: Scheduler::new(cfg.scheduler.clone(), policy),
        job,
        program: program_ref,
        reports: reports_tx.clone(),
        peers: HashMap::new(),
        nodes: HashMap::new(),
        next_node: 0,
        segments: BTreeMap::new(),
        aggregation: cfg.aggregation,
        verified,
        result_refs: BTreeMap::new(),
        joins: BTreeMap::new(),
        joins_verified: 0,
        proved_by: BTreeMap::new(),
        summary: None,
        segment_latency_secs: Vec::new(),
        assemble_started: None,
        metrics,
        status,
        start,
        pinned: vec![program_id],
    };
    let mut spec = JobSpec::new(cfg.po2);
    spec.redundancy = cfg.redundancy.max(1);
    spec.max_attempts = cfg.max_attempts.max(1);
    spec.task_timeout_ms = cfg.task_slack.as_millis() as u64;
    spec.aggregation = cfg.aggregation;
    c.feed(Input::SubmitJob { job, spec }, &mut progress);

    if let Some((summary, segments)) = recorded {
        // Replay the recorded execution.
        let reports = reports_tx.clone();
        tokio::spawn(async move {
            for (claim, bytes) in segments {
                let _ = reports
                    .send(Report::Segment(SegmentBlob { claim, bytes }))
                    .await;
            }
            let _ = reports.send(Report::Executed(Ok(summary))).await;
        });
    } else {
        // Execute on a blocking thread, streaming segments to the loop.
        let (backend, reports, po2) = (backend.clone(), reports_tx.clone(), cfg.po2);
        let (program, input) = (program.clone(), input.clone());
        tokio::task::spawn_blocking(move || {
            let r = backend.execute(&program, &input, po2, &mut |blob| {
                reports
                    .blocking_send(Report::Segment(blob))
                    .map_err(|_| BackendError::Execution("coordinator stopped".into()))
            });
            let _ = reports.blocking_send(Report::Executed(r));
        });
    }
    // Provers already connected (bootstrap) are asked for their capacity as they connect.
    let deadline = tokio::time::Instant::now() + cfg.job_timeout;
    let mut execute_secs = 0.0;
    let mut assembling = false;

    loop {
        let tick_at = c.sched.next_deadline().map(|t| {
            let now = c.now();
            tokio::time::Instant::now() + Duration::from_millis(t.saturating_sub(now))
        });
        tokio::select! {
            Some(report) = reports.recv() => {
                let finished = match report {
                    Report::Segment(blob) => {
                        let index = blob.claim.index;
                        c.db.record_segment(job.0, &blob.claim, &blob.bytes)?;
                        let data = BlobRef::of(&blob.bytes);
                        let id = c.client.publish_blob(blob.bytes, Retention::Pinned).await?;
                        c.pinned.push(id);
                        c.segments.insert(index, (blob.claim, data));
                        progress(Progress::SegmentExecuted(index));
                        // Proving cost follows the padded trace (2^po2 rows), not the guest's own cycles.
                        let cycles = 1u64 << blob.claim.po2;
                        if let Some(bytes) = c.verified.get(&index).cloned() {
                            if c.aggregation == Aggregation::JoinTree {
                                c.publish_result(index, &bytes)?;
                            }
                            c.feed(Input::SegmentRestored { job, segment: index, cycles }, &mut progress)
                        } else {
                            c.feed(Input::SegmentReady { job, segment: index, cycles }, &mut progress)
                        }
                    }
                    Report::Executed(Ok(summary)) => {
                        c.db.record_execution(job.0, &summary)?;
                        execute_secs = c.start.elapsed().as_secs_f64();
                        let segments = summary.segments;
                        progress(Progress::ExecutionFinished { segments });
                        c.summary = Some(summary);
                        c.feed(Input::ExecutionFinished { job, segments }, &mut progress)
                    }
                    Report::Executed(Err(e)) => {
                        c.db.set_state(job.0, "failed")?;
                        return Err(e.into());
                    }
                    Report::Status(peer, Some(capacity)) => c.prover_seen(peer, &capacity, &mut progress),
                    Report::Status(_, None) => None,
                    Report::OfferAnswer { task, node, declined: Some(reason) } => {
                        debug!(task = task.index, %reason, "offer declined");
                        // Busy or draining passes; anything else (does not fit, unreachable) is a failed attempt.
                        let passing = ["busy", "draining", "already working"].iter().any(|p| reason.starts_with(p));
                        if passing {
                            c.feed(Input::TaskDeclined { node, task, reason }, &mut progress)
                        } else {
                            c.feed(Input::TaskFailed { node, task, reason }, &mut progress)
                        }
                    }
                    Report::OfferAnswer { declined: None, .. } => None,
                    Report::Checked { task, node, outcome, receipt, reason } => {
                        c.on_checked(task, node, outcome, receipt, reason, &mut progress)?
                    }
                    Report::FetchFailed { task, node, reason } => {
                        c.feed(Input::TaskFailed { node, task, reason: format!("receipt transfer failed: {reason}") }, &mut progress)
                    }
                    Report::Assembled(result) => {
                        let receipt = result?;
                        c.db.set_state(job.0, "done")?;
                        let summary = c.summary.take().expect("assembled after execution");
                        c.client.shutdown().await;
                        return Ok(NetworkProof {
                            summary,
                            receipt,
                            resumed_segments,
                            proved_by: std::mem::take(&mut c.proved_by),
                            execute_secs,
                            segment_latency_secs: std::mem::take(&mut c.segment_latency_secs),
                            assemble_secs: c.assemble_started.map_or(0.0, |t| t.elapsed().as_secs_f64()),
                            total_secs: c.start.elapsed().as_secs_f64(),
                            aggregation: c.aggregation,
                            joins_verified: c.joins_verified,
                        });
                    }
                };
                if let Some(outcome) = finished {
                    finish(&mut c, outcome, &mut assembling, &mut progress)?;
                }
            }
            Some(event) = events.recv() => {
                let finished = match event {
                    Event::PeerConnected { peer } => {
                        let (client, reports) = (c.client.clone(), c.reports.clone());
                        tokio::spawn(async move {
                            let capacity = match client.request(peer, &Request::Status).await {
                                Ok(Response::Status(s)) => Some(s.capacity),
                                _ => None,
                            };
                            let _ = reports.send(Report::Status(peer, capacity)).await;
                        });
                        None
                    }
                    // Handled here, not sent through `reports`: this loop is that channel's only reader, so
                    // waiting for room in it (full after a resume replays its segments) would block it for good.
                    Event::Capacity { from, announcement } => c.prover_seen(from, &announcement.capacity, &mut progress),
                    // The peer keeps its node id: identity follows the peer id, so a reconnect does not wash
                    // away a quarantine or a record (see `prover_seen`).
                    Event::PeerDisconnected { peer } => match c.peers.get(&peer).copied() {
                        Some(node) => {
                            info!(%peer, "prover left");
                            c.feed(Input::NodeLeft { node }, &mut progress)
                        }
                        None => None,
                    },
                    Event::InboundRequest { peer, request, responder } => {
                        let (response, input) = match request {
                            Request::Result(r) if r.job == job.0 && !r.signed_by(&peer) => (
                                Response::Error(ErrorReply::new(
                                    ErrorCode::Refused,
                                    "results must be signed by the prover's identity key (TaskResult::signing_bytes)",
                                )),
                                None,
                            ),
                            Request::Result(r) if r.job == job.0 => (c.on_result(peer, r.task, r.receipt), None),
                            Request::Result(_) => (Response::Error(ErrorReply::new(ErrorCode::UnknownJob, "no such job here")), None),
                            Request::Heartbeat(hb) => match c.peers.get(&peer).copied() {
                                // Alive after all (dropped for a missed heartbeat): back in the pool, unless quarantined.
                                Some(node) if c.sched.node_capacity(node).is_none() => {
                                    (Response::Ack, Some(Input::NodeJoined { node, capacity: to_sched_capacity(&hb.capacity) }))
                                }
                                Some(node) => (Response::Ack, Some(Input::Heartbeat { node })),
                                None => (Response::Ack, None),
                            },
                            Request::Failed { job: j, task, reason, kind } if j == job.0 => match c.peers.get(&peer).copied() {
                                Some(node) => {
                                    info!(%peer, task, %reason, ?kind, "prover gave up a task");
                                    let task = TaskId::new(job, task);
                                    let input = match kind {
                                        // The task's own fault: the scheduler ends the job if a second prover
                                        // fails it the same way.
                                        FailureKind::Task => Input::TaskErrored { node, task, error: reason },
                                        FailureKind::Transient => Input::TaskFailed { node, task, reason: format!("the prover gave up: {reason}") },
                                    };
                                    (Response::Ack, Some(input))
                                }
                                None => (Response::Ack, None),
                            },
                            Request::Failed { .. } => (Response::Error(ErrorReply::new(ErrorCode::UnknownJob, "no such job here")), None),
                            _ => (Response::Error(ErrorReply::new(ErrorCode::Refused, "this node is a client; it takes results and heartbeats")), None),
                        };
                        responder.respond(response);
                        input.and_then(|i| c.feed(i, &mut progress))
                    }
                    Event::ProtocolViolation { peer, reason } => {
                        warn!(%peer, %reason, "protocol violation");
                        let now = c.now();
                        // Not tied to a task, so not a scheduler penalty: recorded in the job database's ledger.
                        let _ = c.db.ledger_event(None, None, &peer.to_string(), "penalty", Some("ProtocolViolation"), 0, now);
                        None
                    }
                    _ => None,
                };
                if let Some(outcome) = finished {
                    finish(&mut c, outcome, &mut assembling, &mut progress)?;
                }
            }
            () = async { match tick_at { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                if let Some(outcome) = c.feed(Input::Tick, &mut progress) {
                    finish(&mut c, outcome, &mut assembling, &mut progress)?;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                c.client.shutdown().await;
                return Err(NodeError::Timeout(format!(
                    "job not done after {:?}: {} of {} segments verified; rerun the same command to resume",
                    cfg.job_timeout,
                    c.verified.len(),
                    c.segments.len()
                )));
            }
        }
    }
}

fn finish(
    c: &mut Coordinator,
    outcome: JobOutcome,
    assembling: &mut bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), NodeError> {
    match outcome {
        JobOutcome::Completed { root } => {
            if *assembling {
                return Ok(());
            }
            *assembling = true;
            progress(Progress::Aggregating);
            c.assemble_started = Some(Instant::now());
            if let Some(status) = c.sched.job_status(c.job) {
                c.segment_latency_secs = status
                    .tasks
                    .iter()
                    .filter(|t| !t.task.is_join())
                    .filter_map(|t| {
                        Some(t.verified_at?.saturating_sub(t.first_assigned_at?) as f64 / 1000.0)
                    })
                    .collect();
            }
            let summary = c
                .summary
                .clone()
                .ok_or_else(|| NodeError::Internal("completed before execution finished".into()))?;
            let (backend, reports) = (c.backend.clone(), c.reports.clone());
            if let Some(root) = root {
                // Join tree: the verified root covers every segment; it becomes the succinct final receipt.
                let root = c.verified.get(&root.index).cloned().ok_or_else(|| {
                    NodeError::Internal(format!("the root {root} has no verified receipt"))
                })?;
                tokio::task::spawn_blocking(move || {
                    let r = backend.finish_succinct(&summary, &root);
                    let _ = reports.blocking_send(Report::Assembled(r));
                });
                return Ok(());
            }
            let receipts: Vec<Vec<u8>> = (0..summary.segments)
                .map(|i| {
                    c.verified.get(&i).cloned().ok_or_else(|| {
                        NodeError::Internal(format!("segment {i} has no verified receipt"))
                    })
                })
                .collect::<Result<_, _>>()?;
            tokio::task::spawn_blocking(move || {
                let r = backend.assemble(&summary, &receipts);
                let _ = reports.blocking_send(Report::Assembled(r));
            });
            Ok(())
        }
        JobOutcome::Failed { reason } => {
            c.db.set_state(c.job.0, "failed")?;
            Err(NodeError::JobFailed(reason))
        }
        JobOutcome::Cancelled => Err(NodeError::JobFailed("cancelled".into())),
    }
}
