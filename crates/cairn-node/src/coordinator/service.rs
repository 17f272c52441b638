//! The multi-job coordinator service: one loop owns the scheduler, the network handle, the job database and
//! every job's state; everything slow (execution, verification, assembly, requests) runs elsewhere and
//! reports back through a channel. Callers talk to it through a cloneable [`Service`] handle.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_backend::{BackendError, Digest32, ExecutionSummary, ProvingBackend, SegmentBlob};
use cairn_net::protocol::{
    DeclineKind, ErrorCode, ErrorReply, FailureKind, NodeCapacity as NetCapacity, Offer, Request,
    Response, TaskKind as NetTaskKind,
};
use cairn_net::{BlobRef, Client, Event, Network, PeerId};
use cairn_scheduler::{
    policy_by_name, Action, Aggregation, Input, JobId, JobOutcome, NodeCapacity, NodeId,
    RejectReason, Scheduler, SchedulerConfig, SlowStanding, TaskId, TaskKind,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::check::{self, Checked, Delivery};
use super::job::JobRun;
use super::newcomers::{self, Newcomers};
use super::persist::{Prepared, StoredSegment, Submitter};
use super::{JobSettings, NetworkProof, Progress};
use crate::jobdb::{DbHandle, JobDb, JobState, LedgerEvent, LedgerKind};
use crate::status::{Metrics, StatusServer};
use crate::NodeError;

/// The service's own settings (each job brings its [`JobSettings`]).
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub net: cairn_net::Config,
    pub db_path: PathBuf,
    /// Selection policy name (`fifo`, `vrf`, `reputation`, `stake`, `auction`).
    pub policy: String,
    pub scheduler: SchedulerConfig,
    /// Serve job status (JSON) and Prometheus metrics here.
    pub status_addr: Option<SocketAddr>,
}

/// A job to prove.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub program: Vec<u8>,
    pub input: Vec<u8>,
    pub settings: JobSettings,
    /// Who asked (an API key's name): jobs of different owners share the provers.
    pub owner: String,
}

/// A submitted job: its id, its progress as it happens, and its result when it ends.
#[derive(Debug)]
pub struct JobHandle {
    pub id: JobId,
    pub image_id: Digest32,
    pub progress: mpsc::UnboundedReceiver<Progress>,
    pub result: oneshot::Receiver<Result<NetworkProof, NodeError>>,
    /// What `--po2 auto` chose, and its prediction of every candidate (`JobSettings::auto`).
    pub po2_choice: Option<Box<super::Po2Choice>>,
}

/// Where the service can be reached.
#[derive(Debug, Clone)]
pub struct ServiceInfo {
    pub peer_id: PeerId,
    pub listen: Vec<String>,
    pub status_addr: Option<SocketAddr>,
}

enum Command {
    Submit {
        request: Box<JobRequest>,
        image_id: Digest32,
        /// `job_key` of the request, computed by the caller.
        key: String,
        reply: oneshot::Sender<Result<JobHandle, NodeError>>,
    },
    Cancel {
        job: JobId,
        reply: oneshot::Sender<bool>,
    },
    /// The key of the latest job in the database whose key starts with `prefix`.
    PriorJob {
        prefix: String,
        reply: oneshot::Sender<Option<String>>,
    },
    /// The provers in the pool now, with the capacity the scheduler uses for each.
    Provers {
        reply: oneshot::Sender<Vec<NodeCapacity>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A handle on the running service; cheap to clone.
#[derive(Clone)]
pub struct Service {
    commands: mpsc::Sender<Command>,
    pub(super) backend: Arc<dyn ProvingBackend>,
    /// The scheduler's settings (its cost model predicts jobs for `--po2 auto`).
    pub(super) scheduler: Arc<SchedulerConfig>,
    info: Arc<ServiceInfo>,
    status: Arc<Mutex<serde_json::Value>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("info", &self.info).finish()
    }
}

impl Service {
    /// Opens the job database, joins the network and starts the loop.
    pub async fn start(
        cfg: ServiceConfig,
        backend: Arc<dyn ProvingBackend>,
    ) -> Result<Self, NodeError> {
        let db = JobDb::open(&cfg.db_path)?;
        // What earlier runs learned of provers' speeds, by peer id.
        let remembered = db
            .speeds()?
            .into_iter()
            .map(|(p, s, n)| (p, (s, n)))
            .collect();
        // And of their slow results and benches (what is left of a bench counts from this start).
        let remembered_slow_at = Instant::now();
        let remembered_slow = db
            .slow_records(crate::jobdb::unix_ms())?
            .into_iter()
            .collect();
        let db = DbHandle::spawn(db);
        let policy =
            policy_by_name(&cfg.policy, 1).map_err(|e| NodeError::Config(e.to_string()))?;
        let (client, events, event_loop) = Network::new(cfg.net.clone()).await?;
        tokio::spawn(event_loop.run());
        let listen = client
            .listen_addrs()
            .await?
            .iter()
            .map(|a| a.to_string())
            .collect();
        let metrics = Metrics::default();
        let status = Arc::new(Mutex::new(serde_json::json!({ "jobs": {}, "provers": [] })));
        let status_addr = match cfg.status_addr {
            Some(addr) => Some(StatusServer::start(addr, status.clone(), metrics.clone()).await?),
            None => None,
        };
        let info = Arc::new(ServiceInfo {
            peer_id: client.local_peer_id(),
            listen,
            status_addr,
        });
        let (reports_tx, reports) = mpsc::channel::<Report>(256);
        let (commands_tx, commands) = mpsc::channel::<Command>(64);
        let core = Core {
            backend: backend.clone(),
            client,
            db,
            sched: Scheduler::new(cfg.scheduler.clone(), policy),
            reports: reports_tx,
            peers: HashMap::new(),
            nodes: HashMap::new(),
            next_node: 0,
            jobs: BTreeMap::new(),
            running_keys: HashMap::new(),
            preparing: HashMap::new(),
            remembered,
            remembered_slow,
            remembered_slow_at,
            max_established: cfg.net.limits.max_established,
            checks: Arc::new(tokio::sync::Semaphore::new(check::CONCURRENT_CHECKS)),
            metrics,
            status: status.clone(),
            status_at: None,
            status_dirty: false,
            connected: HashSet::new(),
            newcomers: Newcomers::default(),
            excused_seen: (0, 0),
            start: Instant::now(),
        };
        tokio::spawn(core.run(commands, reports, events));
        Ok(Self {
            commands: commands_tx,
            backend,
            scheduler: Arc::new(cfg.scheduler.clone()),
            info,
            status,
        })
    }

    pub fn info(&self) -> &ServiceInfo {
        &self.info
    }

    /// What `GET /status` serves: every running job's scheduler status (its tasks, their states, provers,
    /// attempts and times) and every prover seen (capacity, learned speed, reputation, rewards, penalties),
    /// refreshed at most four times a second.
    pub fn status(&self) -> serde_json::Value {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Submits a job. The program is checked (its image id computed) before anything is stored. A job with
    /// the same program, input, po2 and aggregation as one already running joins it; one recorded in the
    /// database resumes with every segment verified there.
    ///
    /// With `settings.auto`, the po2 and aggregation are chosen first ([`Service::choose_po2`]): that waits
    /// for the pool of provers to settle and executes the program once, and the handle carries the choice.
    pub async fn submit(&self, request: JobRequest) -> Result<JobHandle, NodeError> {
        if request.settings.auto.is_none() {
            cairn_backend::check_po2(request.settings.po2)?;
        }
        // Off the runtime and the loop: the image id, and the job key's prefix (a hash of the whole input, which
        // can be hundreds of MB). The request goes to the blocking thread and comes back: no copy of the program
        // or input is made for it (issue 29, item 6: a session held them three times).
        let (request, image_id, prefix) = {
            let backend = self.backend.clone();
            tokio::task::spawn_blocking(move || {
                let id = backend.image_id(&request.program)?;
                let prefix = super::job_key_prefix(&request.owner, &id, &request.input);
                Ok::<_, cairn_backend::BackendError>((request, id, prefix))
            })
            .await
            .map_err(NodeError::join)??
        };
        let (request, choice) = match &request.settings.auto {
            Some(auto) => {
                let choice = match self.earlier_choice(&prefix, auto).await? {
                    Some(kept) => kept,
                    None => {
                        self.choose_po2(&request.program, &request.input, &request.settings, auto)
                            .await?
                    }
                };
                let settings = choice.apply(&request.settings);
                (
                    JobRequest {
                        settings,
                        ..request
                    },
                    Some(Box::new(choice)),
                )
            }
            None => (request, None),
        };
        // A chosen po2 is one a prover takes (14 up) or a kept one that was checked.
        let key = super::job_key(&prefix, request.settings.po2, request.settings.aggregation);
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Submit {
                request: Box::new(request),
                image_id,
                key,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        let mut handle = answer.await.map_err(|_| stopped())??;
        handle.po2_choice = choice;
        Ok(handle)
    }

    /// Cancels a running job (its provers are told to stop); false if no such job runs.
    pub async fn cancel(&self, job: JobId) -> Result<bool, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Cancel { job, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }

    /// `--po2 auto` for a job this database has seen before (same program and input, at a po2 and aggregation
    /// it may choose): that job's size, so that submitting it again resumes it rather than choosing afresh
    /// and proving everything again at another size.
    async fn earlier_choice(
        &self,
        prefix: &str,
        auto: &super::AutoPo2,
    ) -> Result<Option<super::Po2Choice>, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::PriorJob {
                prefix: prefix.to_string(),
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        let kept = answer
            .await
            .map_err(|_| stopped())?
            .and_then(|key| super::parse_job_key(prefix, &key))
            .filter(|(po2, aggregation)| {
                auto.aggregations.contains(aggregation) && cairn_backend::check_po2(*po2).is_ok()
            });
        Ok(kept.map(|(po2, aggregation)| super::Po2Choice::kept(po2, aggregation)))
    }

    /// The provers in the pool now (live, their capacity claimed or learned), in no particular order.
    pub async fn provers(&self) -> Result<Vec<NodeCapacity>, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Provers { reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }

    /// Stops the loop and leaves the network. Jobs still running end with an error for their waiters; their
    /// verified segments are in the database, and submitting them again resumes them.
    pub async fn shutdown(&self) {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = answer.await;
        }
    }
}

fn stopped() -> NodeError {
    NodeError::Internal("the coordinator service has stopped".into())
}

/// What finished elsewhere and reports back to the loop.
pub(super) enum Report {
    /// The database looked up a submitted job (and its program blob is published).
    Prepared {
        key: String,
        request: Box<JobRequest>,
        image_id: Digest32,
        prepared: Result<Prepared, NodeError>,
    },
    /// A segment executed (false) or replayed from the database (true).
    Segment(JobId, SegmentBlob, bool),
    /// Execution ended (replayed: true).
    Executed(JobId, Result<ExecutionSummary, BackendError>, bool),
    SegmentStored(JobId, StoredSegment),
    ExecutionStored(JobId, ExecutionSummary),
    /// A verified result is committed (and, for a join tree, published).
    Stored {
        task: TaskId,
        node: NodeId,
        bytes: Vec<u8>,
        published: Option<(BlobRef, cairn_net::BlobId)>,
        /// The proving time its prover reported.
        prove_ms: Option<u64>,
    },
    /// Storing something of this job failed: the job stops (submit it again to resume).
    JobError(JobId, NodeError),
    Status(PeerId, Option<NetCapacity>),
    OfferAnswer {
        task: TaskId,
        node: NodeId,
        /// Why not, and whether the reason is a passing one (see `DeclineKind::passing`).
        declined: Option<(String, bool)>,
    },
    Checked {
        task: TaskId,
        node: NodeId,
        outcome: Checked,
        /// The proving time the prover reported.
        prove_ms: Option<u64>,
    },
    FetchFailed {
        task: TaskId,
        node: NodeId,
        reason: String,
    },
    /// A result's receipt is still arriving after the time its size needs (`check::patience`); dropping
    /// `abort` stops that fetch.
    ResultSlow {
        task: TaskId,
        node: NodeId,
        abort: oneshot::Sender<()>,
    },
    Assembled(JobId, Result<Vec<u8>, BackendError>),
    /// A newcomer was probed: its status if it answered in time.
    Probed(PeerId, Option<NetCapacity>),
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

/// The loop's state.
pub(super) struct Core {
    pub(super) backend: Arc<dyn ProvingBackend>,
    pub(super) client: Client,
    pub(super) db: DbHandle,
    pub(super) sched: Scheduler,
    pub(super) reports: mpsc::Sender<Report>,
    pub(super) peers: HashMap<PeerId, NodeId>,
    pub(super) nodes: HashMap<NodeId, PeerId>,
    next_node: u64,
    pub(super) jobs: BTreeMap<JobId, JobRun>,
    /// Running jobs by key: a second submission of the same work joins the first.
    pub(super) running_keys: HashMap<String, JobId>,
    /// Jobs being looked up in the database, with who waits for them.
    pub(super) preparing: HashMap<String, Vec<Submitter>>,
    /// Provers' speeds learned in earlier runs (peer id -> cycles per second, results), for deadlines from
    /// a prover's first task on.
    remembered: HashMap<String, (f64, u32)>,
    /// Provers' slow-result records kept by earlier runs (peer id -> record, its bench left as of
    /// `remembered_slow_at`), so a new client process keeps a benched prover out.
    remembered_slow: HashMap<String, SlowStanding>,
    /// When `remembered_slow` was read (its benches' time left counts from then).
    remembered_slow_at: Instant,
    /// This client's connection limit (`cairn_net::ConnectionLimits::max_established`): probes of newcomers
    /// stay within a working set below it.
    max_established: u32,
    pub(super) metrics: Metrics,
    /// Bounds the results fetched and verified at once.
    checks: Arc<tokio::sync::Semaphore>,
    status: Arc<Mutex<serde_json::Value>>,
    status_at: Option<Instant>,
    /// Something changed since the status was last refreshed.
    status_dirty: bool,
    /// Peers with a live connection now.
    connected: HashSet<PeerId>,
    /// Announced provers with no connection here, waiting to be probed (`newcomers.rs`).
    newcomers: Newcomers,
    /// The scheduler's excused silences when last logged (`SchedulerConfig::silence_burst`).
    excused_seen: (u64, u64),
    start: Instant,
}

/// How often the served status is refreshed at most.
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// Jobs the scheduler ended, to be finished by the loop.
pub(super) type Ended = Vec<(JobId, JobOutcome)>;

impl Core {
    pub(super) fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut reports: mpsc::Receiver<Report>,
        mut events: mpsc::Receiver<Event>,
    ) {
        loop {
            let tick_at = self.sched.next_deadline().map(|t| {
                let now = self.now();
                tokio::time::Instant::now() + Duration::from_millis(t.saturating_sub(now))
            });
            let timeout_at = self.jobs.values().map(|j| j.deadline).min();
            // A refresh skipped by the throttle happens when the throttle allows.
            let status_at = self
                .status_dirty
                .then(|| {
                    self.status_at
                        .map(|t| tokio::time::Instant::from_std(t) + STATUS_EVERY)
                })
                .flatten();
            let ended = tokio::select! {
                Some(command) = commands.recv() => match command {
                    Command::Submit { request, image_id, key, reply } => {
                        self.begin_submit(*request, image_id, key, reply);
                        Vec::new()
                    }
                    Command::Cancel { job, reply } => {
                        let known = self.jobs.contains_key(&job);
                        let _ = reply.send(known);
                        if known { self.feed(Input::CancelJob { job }) } else { Vec::new() }
                    }
                    Command::PriorJob { prefix, reply } => {
                        // Off the loop: the database answers when it can.
                        let answer = self.db.call(move |db| db.latest_job_with_prefix(&prefix));
                        tokio::spawn(async move {
                            let _ = reply.send(answer.await.ok().and_then(Result::ok).flatten());
                        });
                        Vec::new()
                    }
                    Command::Provers { reply } => {
                        let _ = reply.send(self.sched.live_capacities().map(|(_, c)| c).collect());
                        Vec::new()
                    }
                    Command::Shutdown { reply } => {
                        self.client.shutdown().await;
                        for (_, mut job) in std::mem::take(&mut self.jobs) {
                            job.deliver(Err(NodeError::Internal(
                                "the coordinator stopped; submit the job again to resume it".into(),
                            )));
                        }
                        for s in self.preparing.drain().flat_map(|(_, s)| s) {
                            let _ = s.reply.send(Err(stopped()));
                        }
                        // Everything queued for the database (ledger events, states) is written before the
                        // caller hears the service has stopped.
                        let _ = self.db.call(|_| Ok::<(), crate::jobdb::JobDbError>(())).await;
                        let _ = reply.send(());
                        return;
                    }
                },
                Some(report) = reports.recv() => self.on_report(report),
                Some(event) = events.recv() => self.on_event(event),
                () = sleep_until(tick_at) => self.feed(Input::Tick),
                () = sleep_until(timeout_at) => {
                    self.time_out();
                    Vec::new()
                }
                () = sleep_until(status_at) => Vec::new(),
            };
            for (job, outcome) in ended {
                self.finish(job, outcome);
            }
            self.refresh_status(false);
        }
    }

    // ---- jobs ----

    /// Jobs past their deadline end with a timeout; their provers are told to stop.
    fn time_out(&mut self) {
        let now = tokio::time::Instant::now();
        let late: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| j.deadline <= now)
            .map(|j| j.id)
            .collect();
        for id in late {
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            let err = NodeError::Timeout(format!(
                "job not done after {:?}: {} of {} segments verified; submit it again to resume",
                job.settings.timeout,
                job.verified.len(),
                job.segments.len()
            ));
            self.abort(id, err);
        }
    }

    /// Ends a job with an error: the scheduler drops it (cancelling its copies at the provers) and its waiters
    /// get the error. Its verified segments stay in the database, so submitting it again resumes it.
    pub(super) fn abort(&mut self, id: JobId, err: NodeError) {
        let Some(mut job) = self.jobs.remove(&id) else {
            return;
        };
        self.running_keys.remove(&job.key);
        warn!(job = id.0, error = %err, "job stopped");
        // The job is gone from `jobs`, so the scheduler's `JobFinished { Cancelled }` finds nothing to finish.
        let ended = self.feed(Input::CancelJob { job: id });
        self.sched.forget_job(id);
        job.deliver(Err(err));
        for (job, outcome) in ended {
            self.finish(job, outcome);
        }
        self.refresh_status(true);
    }

    /// The scheduler ended a job.
    fn finish(&mut self, id: JobId, outcome: JobOutcome) {
        if let Err(e) = self.try_finish(id, outcome) {
            self.abort(id, e);
        }
    }

    fn try_finish(&mut self, id: JobId, outcome: JobOutcome) -> Result<(), NodeError> {
        let status = self.sched.job_status(id);
        let Some(job) = self.jobs.get_mut(&id) else {
            return Ok(());
        };
        match outcome {
            JobOutcome::Completed { root } => {
                if job.assembling {
                    return Ok(());
                }
                job.assembling = true;
                job.emit(Progress::Aggregating);
                job.assemble_started = Some(Instant::now());
                if let Some(status) = status {
                    job.segment_latency_secs = status
                        .tasks
                        .iter()
                        .filter(|t| !t.task.is_join())
                        .filter_map(|t| {
                            Some(
                                t.verified_at?.saturating_sub(t.first_assigned_at?) as f64 / 1000.0,
                            )
                        })
                        .collect();
                }
                let summary = job.summary.clone().ok_or_else(|| {
                    NodeError::Internal("completed before execution finished".into())
                })?;
                let (backend, reports) = (self.backend.clone(), self.reports.clone());
                if let Some(root) = root {
                    // Join tree: the verified root covers every segment; it becomes the succinct receipt.
                    let root = job.verified.get(&root.index).cloned().ok_or_else(|| {
                        NodeError::Internal(format!("the root {root} has no verified receipt"))
                    })?;
                    tokio::task::spawn_blocking(move || {
                        let r = super::unpanicked(
                            || backend.finish_succinct(&summary, &root),
                            cairn_backend::BackendError::Assembly,
                        );
                        let _ = reports.blocking_send(Report::Assembled(id, r));
                    });
                    return Ok(());
                }
                let receipts: Vec<Vec<u8>> = (0..summary.segments)
                    .map(|i| {
                        job.verified.get(&i).cloned().ok_or_else(|| {
                            NodeError::Internal(format!("segment {i} has no verified receipt"))
                        })
                    })
                    .collect::<Result<_, _>>()?;
                tokio::task::spawn_blocking(move || {
                    let r = super::unpanicked(
                        || backend.assemble(&summary, &receipts),
                        cairn_backend::BackendError::Assembly,
                    );
                    let _ = reports.blocking_send(Report::Assembled(id, r));
                });
                Ok(())
            }
            JobOutcome::Failed { reason } => {
                self.set_state(id, JobState::Failed);
                self.end(id, Err(NodeError::JobFailed(reason)));
                Ok(())
            }
            JobOutcome::Cancelled => {
                self.set_state(id, JobState::Cancelled);
                self.end(id, Err(NodeError::JobFailed("cancelled".into())));
                Ok(())
            }
        }
    }

    /// A job is over: its waiters get the result and the scheduler forgets it.
    fn end(&mut self, id: JobId, result: Result<NetworkProof, NodeError>) {
        self.sched.forget_job(id);
        if let Some(mut job) = self.jobs.remove(&id) {
            self.running_keys.remove(&job.key);
            job.deliver(result);
        }
        self.refresh_status(true);
    }

    /// Records a job's state (informational: resuming goes by the recorded execution and receipts).
    fn set_state(&self, id: JobId, state: JobState) {
        self.db.send(move |db| {
            if let Err(e) = db.set_state(id.0, state) {
                warn!(job = id.0, error = %e, "could not record the job's state");
            }
        });
    }

    /// A ledger event about `node`'s copy of `task`.
    fn ledger_for(
        &self,
        node: NodeId,
        task: TaskId,
        kind: LedgerKind,
        cause: Option<String>,
        amount: u64,
    ) {
        self.ledger(LedgerEvent {
            job: Some(task.job.0),
            task: Some(task.index),
            prover: self.prover_name(node),
            kind,
            cause,
            amount,
            at_ms: self.now(),
        });
    }

    /// Appends a ledger event, in order, off the loop.
    fn ledger(&self, event: LedgerEvent) {
        self.db.send(move |db| {
            if let Err(e) = db.ledger_event(&event) {
                warn!(error = %e, prover = %event.prover, "could not record a ledger event");
            }
        });
    }

    fn assembled(
        &mut self,
        id: JobId,
        result: Result<Vec<u8>, BackendError>,
    ) -> Result<(), NodeError> {
        let receipt = result?;
        self.set_state(id, JobState::Done);
        let Some(job) = self.jobs.get_mut(&id) else {
            return Ok(());
        };
        let summary = job
            .summary
            .take()
            .ok_or_else(|| NodeError::Internal("assembled before execution finished".into()))?;
        let proof = NetworkProof {
            summary,
            receipt,
            resumed_segments: job.resumed_segments,
            proved_by: std::mem::take(&mut job.proved_by),
            execute_secs: job.execute_secs,
            segment_latency_secs: std::mem::take(&mut job.segment_latency_secs),
            segment_prove_secs: std::mem::take(&mut job.segment_prove_ms)
                .into_iter()
                .map(|(index, ms)| (index, ms as f64 / 1000.0))
                .collect(),
            assemble_secs: job
                .assemble_started
                .map_or(0.0, |t| t.elapsed().as_secs_f64()),
            total_secs: job.started.elapsed().as_secs_f64(),
            aggregation: job.aggregation(),
            joins_verified: job.joins_verified,
            po2_choice: None,
        };
        info!(job = id.0, secs = proof.total_secs, "job done");
        self.end(id, Ok(proof));
        Ok(())
    }

    // ---- the scheduler ----

    pub(super) fn feed(&mut self, input: Input) -> Ended {
        let now = self.now();
        let actions = self.sched.handle(now, input);
        let excused = self.sched.silences_excused();
        if excused != self.excused_seen {
            let (burst, gone) = (
                excused.0 - self.excused_seen.0,
                excused.1 - self.excused_seen.1,
            );
            if burst > 0 {
                warn!(
                    provers = burst,
                    "provers with work in hand went silent at the same moment: more likely this machine \
                     (overloaded, behind on its events) or its link than all of them; no penalty, each \
                     gets one more heartbeat timeout"
                );
            }
            if gone > 0 {
                info!(
                    provers = gone,
                    "provers still silent after their excuse: their tasks go to others, no penalty"
                );
            }
            self.excused_seen = excused;
        }
        let mut ended = Vec::new();
        for action in actions {
            if let Some(end) = self.act(action) {
                ended.push(end);
            }
        }
        ended
    }

    /// Refreshes the status the HTTP API serves: at most four times a second unless `now`.
    fn refresh_status(&mut self, now: bool) {
        if !now && self.status_at.is_some_and(|t| t.elapsed() < STATUS_EVERY) {
            self.status_dirty = true;
            return;
        }
        self.status_dirty = false;
        self.status_at = Some(Instant::now());
        let jobs: serde_json::Map<String, serde_json::Value> = self
            .jobs
            .values()
            .filter_map(|j| {
                let s = self.sched.job_status(j.id)?;
                let mut v = serde_json::to_value(s).ok()?;
                v["owner"] = serde_json::Value::String(j.owner.clone());
                Some((j.id.0.to_string(), v))
            })
            .collect();
        let ledger = self.sched.ledger();
        let provers: Vec<serde_json::Value> = self
            .nodes
            .iter()
            .map(|(node, peer)| {
                let cap = self.sched.node_capacity(*node);
                let account = ledger.account(*node);
                serde_json::json!({
                    "node": node.0,
                    "peer": peer.to_string(),
                    "online": cap.is_some(),
                    "max_po2": cap.map(|c| c.max_po2),
                    "slots": cap.map(|c| c.slots),
                    "cycles_per_sec": cap.map(|c| c.cycles_per_sec),
                    "reputation": ledger.reputation(*node),
                    "tasks_won": account.map_or(0, |a| a.tasks_won),
                    "earned": account.map_or(0, |a| a.earned),
                    "slashed": account.map_or(0, |a| a.slashed),
                    "penalties": account.map_or(0, |a| a.penalties.total_count()),
                })
            })
            .collect();
        let (waiting, probing) = self.newcomers.pending();
        let newcomers = serde_json::json!({
            "waiting": waiting,
            "probing": probing,
            "dropped": self.newcomers.dropped,
            "probes_failed": self.newcomers.failures,
        });
        *self.status.lock().expect("poisoned") = serde_json::json!({
            "jobs": jobs,
            "provers": provers,
            "newcomers": newcomers,
            "silences_excused": self.excused_seen.0,
            "excused_gone": self.excused_seen.1,
            "segments_executed": self.metrics.executed.get(),
        });
    }

    fn act(&mut self, action: Action) -> Option<(JobId, JobOutcome)> {
        match action {
            Action::Assign {
                task,
                kind,
                node,
                attempt,
                deadline,
            } => {
                self.offer(task, kind, node, attempt, deadline);
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
                self.ledger_for(node, task, LedgerKind::Reward, None, amount);
            }
            Action::Penalize {
                node,
                task,
                cause,
                amount,
            } => {
                self.metrics.penalties.inc();
                let cause = format!("{cause:?}");
                warn!(prover = %self.prover_name(node), job = task.job.0, task = task.index, %cause, "penalized");
                self.ledger_for(node, task, LedgerKind::Penalty, Some(cause), amount);
            }
            Action::JobFinished { job, outcome } => return Some((job, outcome)),
        }
        None
    }

    pub(super) fn prover_name(&self, node: NodeId) -> String {
        self.nodes
            .get(&node)
            .map(|p| p.to_string())
            .unwrap_or_default()
    }

    fn offer(
        &mut self,
        task: TaskId,
        kind: TaskKind,
        node: NodeId,
        attempt: u32,
        deadline: u64,
    ) -> Option<()> {
        let peer = self.nodes.get(&node).copied()?;
        let job = self.jobs.get_mut(&task.job)?;
        let kind = match kind {
            TaskKind::Prove { segment, po2 } => {
                let (_, data) = job.segments.get(&segment).copied()?;
                job.emit(Progress::Assigned {
                    segment,
                    prover: peer,
                });
                NetTaskKind::Prove {
                    segment,
                    po2,
                    data,
                    lift: job.aggregation() == Aggregation::JoinTree,
                }
            }
            TaskKind::Join { left, right } => {
                let (Some(l), Some(r)) = (
                    job.result_refs.get(&left.index).copied(),
                    job.result_refs.get(&right.index).copied(),
                ) else {
                    warn!(%task, "join assigned before both of its inputs were verified");
                    return None;
                };
                job.joins.insert(task.index, (left.index, right.index));
                NetTaskKind::Join { left: l, right: r }
            }
        };
        let program = job.program;
        self.metrics.assigned.inc();
        let offer = Request::Offer(Offer {
            job: task.job.0,
            task: task.index,
            kind,
            program,
            deadline_ms: deadline.saturating_sub(self.now()),
        });
        debug!(%task, %peer, attempt, "offering");
        let (client, reports) = (self.client.clone(), self.reports.clone());
        tokio::spawn(async move {
            let declined = match client.request(peer, &offer).await {
                Ok(Response::Accept) => None,
                Ok(Response::Decline { reason, kind }) => {
                    let kind = kind.or_else(|| DeclineKind::from_legacy_reason(&reason));
                    Some((reason, kind.is_some_and(DeclineKind::passing)))
                }
                Ok(other) => Some((format!("unexpected answer {other:?}"), false)),
                Err(e) => Some((e.to_string(), false)),
            };
            let _ = reports
                .send(Report::OfferAnswer {
                    task,
                    node,
                    declined,
                })
                .await;
        });
        Some(())
    }

    // ---- provers ----

    fn node_of(&mut self, peer: PeerId) -> NodeId {
        if let Some(n) = self.peers.get(&peer) {
            return *n;
        }
        let n = NodeId(self.next_node);
        self.next_node += 1;
        self.peers.insert(peer, n);
        self.nodes.insert(n, peer);
        if let Some((speed, samples)) = self.remembered.remove(&peer.to_string()) {
            self.sched.remember_speed(n, speed, samples);
        }
        if let Some(mut slow) = self.remembered_slow.remove(&peer.to_string()) {
            // What was left of the bench when the database was read, less the time since.
            let since_read = self.remembered_slow_at.elapsed().as_millis() as u64;
            slow.bench_left_ms = slow.bench_left_ms.saturating_sub(since_read);
            let now = self.now();
            self.sched.remember_slow(now, n, slow);
        }
        n
    }

    /// A prover told us its capacity (status answer or gossip): it joins the pool if it is not in it. A peer
    /// back after a disconnect keeps the node id it had, so its quarantine, learned speed and ledger account
    /// are where it left them (the scheduler keeps a quarantined node out).
    fn prover_seen(&mut self, peer: PeerId, capacity: &NetCapacity) -> Ended {
        let node = match self.peers.get(&peer).copied() {
            Some(node) if self.sched.node_capacity(node).is_some() => return Vec::new(),
            Some(node) => {
                info!(%peer, "prover reconnected");
                node
            }
            None => {
                for job in self.jobs.values_mut() {
                    job.emit(Progress::ProverJoined(peer));
                }
                info!(%peer, max_po2 = capacity.max_po2, slots = capacity.slots, "prover joined");
                self.node_of(peer)
            }
        };
        self.feed(Input::NodeJoined {
            node,
            capacity: to_sched_capacity(capacity),
        })
    }

    /// Probes the newcomers whose turn it is: a `Status` request each (which dials them), off the loop.
    fn start_probes(&mut self) {
        let pool_connected = self
            .connected
            .iter()
            .filter(|p| self.peers.contains_key(p))
            .count();
        let room =
            newcomers::probe_room(self.max_established, pool_connected, self.connected.len());
        for peer in self.newcomers.next_probes(room) {
            let (client, reports) = (self.client.clone(), self.reports.clone());
            tokio::spawn(async move {
                let asked = client.request(peer, &Request::Status);
                let capacity = match tokio::time::timeout(newcomers::PROBE_TIMEOUT, asked).await {
                    Ok(Ok(Response::Status(s))) => Some(s.capacity),
                    _ => None,
                };
                let _ = reports.send(Report::Probed(peer, capacity)).await;
            });
        }
    }

    /// A prover says it finished: fetch its receipt and check it, off the loop.
    fn on_result(
        &mut self,
        peer: PeerId,
        task: TaskId,
        receipt: BlobRef,
        prove_ms: Option<u64>,
    ) -> Response {
        let Some(node) = self.peers.get(&peer).copied() else {
            return Response::Error(ErrorReply::new(ErrorCode::UnknownTask, "unknown prover"));
        };
        let Some(job) = self.jobs.get_mut(&task.job) else {
            return Response::Error(ErrorReply::new(ErrorCode::UnknownJob, "no such job here"));
        };
        // One answer per task from each prover (`JobRun::delivered`).
        match job.delivered.get(&(task.index, node)) {
            Some(first) if *first == receipt.id => return Response::Ack,
            Some(first) => {
                warn!(%peer, job = task.job.0, task = task.index, first = %first.short(), again = %receipt.id.short(), "a second result for one task refused");
                return Response::Error(ErrorReply::new(
                    ErrorCode::Refused,
                    "you already delivered a result for this task; a prover answers a task once",
                ));
            }
            None => {}
        }
        let expect = match job.expectation(task.index) {
            Ok(e) => e,
            Err(why) => return Response::Error(ErrorReply::new(ErrorCode::UnknownTask, why)),
        };
        job.delivered.insert((task.index, node), receipt.id);
        check::spawn(
            self.client.clone(),
            self.backend.clone(),
            self.reports.clone(),
            self.checks.clone(),
            Delivery {
                peer,
                node,
                task,
                receipt,
                expect,
                prove_ms,
            },
        );
        Response::Ack
    }

    /// A result was checked: a verified one goes on to be committed (`persist`); a refused one is recorded
    /// and the scheduler hears of it.
    fn on_checked(
        &mut self,
        task: TaskId,
        node: NodeId,
        outcome: Checked,
        prove_ms: Option<u64>,
    ) -> Ended {
        if !self.jobs.contains_key(&task.job) {
            // The job ended while this result was checked.
            return Vec::new();
        }
        match outcome {
            Ok((bytes, fingerprint)) => {
                self.store_result(task, node, bytes, fingerprint, prove_ms);
                Vec::new()
            }
            Err((reason, detail)) => {
                self.metrics.rejected.inc();
                let peer = self.nodes.get(&node).copied();
                if reason == RejectReason::NotProversOwn {
                    warn!(prover = %self.prover_name(node), segment = task.index, %detail, "receipt copied from another prover");
                }
                if let (Some(p), Some(job)) = (peer, self.jobs.get_mut(&task.job)) {
                    job.emit(Progress::Rejected {
                        segment: task.index,
                        prover: p,
                        reason: format!("{reason:?}: {detail}"),
                    });
                }
                self.ledger_for(
                    node,
                    task,
                    LedgerKind::Rejected,
                    Some(format!("{reason:?}")),
                    0,
                );
                self.feed(Input::ResultRejected { node, task, reason })
            }
        }
    }

    // ---- what comes back ----

    fn on_report(&mut self, report: Report) -> Ended {
        match report {
            Report::Prepared {
                key,
                request,
                image_id,
                prepared,
            } => self.start_job(key, *request, image_id, prepared),
            Report::Segment(id, blob, recorded) => {
                self.store_segment(id, blob, recorded);
                Vec::new()
            }
            Report::SegmentStored(id, stored) => self.on_segment_stored(id, stored),
            Report::Executed(id, Ok(summary), recorded) => {
                self.store_execution(id, summary, recorded)
            }
            Report::Executed(id, Err(e), _) => {
                if self.jobs.contains_key(&id) {
                    self.set_state(id, JobState::Failed);
                    self.abort(id, e.into());
                }
                Vec::new()
            }
            Report::ExecutionStored(id, summary) => self.on_execution_stored(id, summary),
            Report::Status(peer, Some(capacity)) => self.prover_seen(peer, &capacity),
            Report::Status(_, None) => Vec::new(),
            Report::Probed(peer, capacity) => {
                self.newcomers
                    .probed(peer, capacity.is_some(), Instant::now());
                self.start_probes();
                match capacity {
                    Some(c) => self.prover_seen(peer, &c),
                    None => {
                        debug!(%peer, "an announced prover did not answer its probe");
                        Vec::new()
                    }
                }
            }
            Report::OfferAnswer {
                task,
                node,
                declined: Some((reason, passing)),
            } => {
                debug!(task = task.index, %reason, passing, "offer declined");
                // Busy or draining passes; anything else (does not fit, unreachable) is a failed attempt.
                if passing {
                    self.feed(Input::TaskDeclined { node, task, reason })
                } else {
                    self.feed(Input::TaskFailed { node, task, reason })
                }
            }
            // It took the task (again): it may deliver it again.
            Report::OfferAnswer {
                task,
                node,
                declined: None,
            } => {
                if let Some(job) = self.jobs.get_mut(&task.job) {
                    if job.failed_fetches.remove(&(task.index, node)) {
                        job.delivered.remove(&(task.index, node));
                    }
                }
                Vec::new()
            }
            Report::Checked {
                task,
                node,
                outcome,
                prove_ms,
            } => self.on_checked(task, node, outcome, prove_ms),
            Report::Stored {
                task,
                node,
                bytes,
                published,
                prove_ms,
            } => self.on_stored(task, node, bytes, published, prove_ms),
            Report::ResultSlow { task, node, abort } => {
                let Some(job) = self.jobs.get_mut(&task.job) else {
                    return Vec::new(); // the job is gone: `abort` dropped, the fetch stops
                };
                if job.verified.contains_key(&task.index) {
                    return Vec::new();
                }
                job.slow_fetches.entry(task.index).or_default().push(abort);
                warn!(job = task.job.0, task = task.index, prover = ?self.nodes.get(&node), "a receipt is arriving slowly; backing the task up");
                let ended = self.feed(Input::ResultSlow { node, task });
                // What the scheduler learned of its speed and slowness outlives this process (the next run
                // places by it, and keeps it benched).
                self.save_speed(node);
                self.save_slow(node);
                ended
            }
            Report::FetchFailed { task, node, reason } => {
                // Not the prover's lie, necessarily, but its copy of the task is spent: it delivers it again
                // only if it takes the task again (an accepted offer forgets the delivery). Before, the delivery was
                // forgotten here, so a prover could answer again at once and hold a fetch slot with each
                // slow transfer, for ever (issue 29, item 2).
                if let Some(job) = self.jobs.get_mut(&task.job) {
                    job.failed_fetches.insert((task.index, node));
                }
                self.ledger_for(
                    node,
                    task,
                    LedgerKind::Penalty,
                    Some("ReceiptTransferFailed".into()),
                    0,
                );
                self.feed(Input::TaskFailed {
                    node,
                    task,
                    reason: format!("receipt transfer failed: {reason}"),
                })
            }
            Report::Assembled(id, result) => {
                if let Err(e) = self.assembled(id, result) {
                    self.abort(id, e);
                }
                Vec::new()
            }
            Report::JobError(id, e) => {
                self.abort(id, e);
                Vec::new()
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Ended {
        match event {
            Event::PeerConnected { peer } => {
                self.connected.insert(peer);
                self.newcomers.connected(&peer);
                let (client, reports) = (self.client.clone(), self.reports.clone());
                tokio::spawn(async move {
                    let capacity = match client.request(peer, &Request::Status).await {
                        Ok(Response::Status(s)) => Some(s.capacity),
                        _ => None,
                    };
                    let _ = reports.send(Report::Status(peer, capacity)).await;
                });
                Vec::new()
            }
            // Handled here, not sent through `reports`: this loop is that channel's only reader, so waiting
            // for room in it (full after a resume replays its segments) would block it for good.
            // Only a peer with a live connection joins the pool on its word; any other is a newcomer to
            // probe first (`newcomers.rs`), so a made-up identity never costs a task attempt.
            Event::Capacity { from, announcement } => {
                if self.connected.contains(&from) {
                    self.prover_seen(from, &announcement.capacity)
                } else {
                    let known = self.peers.contains_key(&from);
                    self.newcomers.heard(from, known, Instant::now());
                    self.start_probes();
                    Vec::new()
                }
            }
            // The peer keeps its node id: identity follows the peer id, so a reconnect does not wash away a
            // quarantine or a record (see `prover_seen`).
            Event::PeerDisconnected { peer } => {
                self.connected.remove(&peer);
                // A connection freed: a waiting candidate may be probed now (`newcomers::probe_room`).
                self.start_probes();
                match self.peers.get(&peer).copied() {
                    Some(node) => {
                        info!(%peer, "prover left");
                        self.feed(Input::NodeLeft { node })
                    }
                    None => Vec::new(),
                }
            }
            Event::InboundRequest {
                peer,
                request,
                responder,
            } => {
                let (response, input) = self.on_request(peer, request);
                responder.respond(response);
                input.map(|i| self.feed(i)).unwrap_or_default()
            }
            Event::ProtocolViolation { peer, reason } => {
                warn!(%peer, %reason, "protocol violation");
                // Not tied to a task, so not a scheduler penalty: recorded in the job database's ledger.
                self.ledger(LedgerEvent {
                    job: None,
                    task: None,
                    prover: peer.to_string(),
                    kind: LedgerKind::Penalty,
                    cause: Some("ProtocolViolation".into()),
                    amount: 0,
                    at_ms: self.now(),
                });
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_request(&mut self, peer: PeerId, request: Request) -> (Response, Option<Input>) {
        let refuse = |code, msg: &str| (Response::Error(ErrorReply::new(code, msg)), None);
        match request {
            Request::Result(r) if !self.jobs.contains_key(&JobId(r.job)) => {
                refuse(ErrorCode::UnknownJob, "no such job here")
            }
            Request::Result(r) if !r.signed_by(&peer) => refuse(
                ErrorCode::Refused,
                "results must be signed by the prover's identity key (TaskResult::signing_bytes)",
            ),
            // Checked before anything is fetched or recorded: a result from a peer never given the task
            // could otherwise register someone else's receipt as its own first delivery and have the honest
            // prover's refused as a copy.
            Request::Result(r)
                if !self.peers.get(&peer).is_some_and(|n| {
                    self.sched.was_given(TaskId::new(JobId(r.job), r.task), *n)
                }) =>
            {
                refuse(
                    ErrorCode::UnknownTask,
                    "this task was never assigned to you",
                )
            }
            Request::Result(r) => (
                self.on_result(
                    peer,
                    TaskId::new(JobId(r.job), r.task),
                    r.receipt,
                    r.prove_ms,
                ),
                None,
            ),
            Request::Heartbeat(hb) => match self.peers.get(&peer).copied() {
                // Alive after all (dropped for a missed heartbeat): back in the pool, unless quarantined.
                Some(node) if self.sched.node_capacity(node).is_none() => (
                    Response::Ack,
                    Some(Input::NodeJoined {
                        node,
                        capacity: to_sched_capacity(&hb.capacity),
                    }),
                ),
                Some(node) => (Response::Ack, Some(Input::Heartbeat { node })),
                None => (Response::Ack, None),
            },
            Request::Failed { job, .. } if !self.jobs.contains_key(&JobId(job)) => {
                refuse(ErrorCode::UnknownJob, "no such job here")
            }
            // Like results: only a prover given the task may report on it (the scheduler also ignores reports
            // from nodes not holding a copy now).
            Request::Failed { job, task, .. }
                if !self
                    .peers
                    .get(&peer)
                    .is_some_and(|n| self.sched.was_given(TaskId::new(JobId(job), task), *n)) =>
            {
                refuse(
                    ErrorCode::UnknownTask,
                    "this task was never assigned to you",
                )
            }
            Request::Failed {
                job,
                task,
                reason,
                kind,
            } => match self.peers.get(&peer).copied() {
                Some(node) => {
                    info!(%peer, job, task, %reason, ?kind, "prover gave up a task");
                    let task = TaskId::new(JobId(job), task);
                    let input = match kind {
                        // The task's own fault: the scheduler ends the job if a second prover fails it the
                        // same way.
                        FailureKind::Task => Input::TaskErrored {
                            node,
                            task,
                            error: reason,
                        },
                        FailureKind::Transient => Input::TaskFailed {
                            node,
                            task,
                            reason: format!("the prover gave up: {reason}"),
                        },
                    };
                    (Response::Ack, Some(input))
                }
                None => (Response::Ack, None),
            },
            _ => refuse(
                ErrorCode::Refused,
                "this node is a client; it takes results and heartbeats",
            ),
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
