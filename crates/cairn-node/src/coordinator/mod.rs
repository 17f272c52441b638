//! The client coordinator: one long-running [`Service`] that proves many jobs at once over one network
//! presence and one SQLite database, and [`prove_network`] (`cairn prove --network`), a thin user of it that
//! proves one job in-process.
//!
//! For each job the service executes the program once on a blocking thread, streaming segments into its blob
//! store as they are produced; drives the scheduler (redundancy, deadlines, reassignment, speculative backups,
//! selection policy, fair sharing between jobs) with what the network reports; offers tasks to provers;
//! fetches, checks and verifies every result off the async runtime; commits each verified receipt to SQLite
//! before the scheduler hears of it; and assembles the final receipt. A job submitted again (same program,
//! input, po2 and database, after a restart) skips every segment already verified.
//!
//! Rooms: [`service`] holds the loop that owns the scheduler and the network handle and routes what happens to
//! the job it concerns; `job` holds one job's state; `check` fetches and verifies a result off the loop;
//! `persist` keeps every database and blob write off the loop, in the order the invariants need.

pub mod auto;
mod check;
mod job;
pub mod newcomers;
mod persist;
pub mod service;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_backend::{Digest32, ExecutionSummary, ProvingBackend};
use cairn_net::PeerId;
use cairn_scheduler::{Aggregation, SchedulerConfig};

pub use auto::{AutoPo2, Po2Choice, Po2Row};
pub use service::{JobHandle, JobRequest, Service, ServiceConfig, ServiceInfo};

use crate::NodeError;

/// Largest receipt a prover may hand us (segment receipts are ~200-300 KB).
pub const MAX_RECEIPT_BYTES: u64 = 16 << 20;

/// Runs backend work (on a blocking thread), turning a panic into `wrap("panicked: ...")`: the job then ends
/// with that error at once, where a panic would have sent no report and left it waiting for its timeout.
fn unpanicked<T>(
    f: impl FnOnce() -> Result<T, cairn_backend::BackendError>,
    wrap: fn(String) -> cairn_backend::BackendError,
) -> Result<T, cairn_backend::BackendError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Err(wrap(format!("panicked: {msg}")))
    })
}

/// Everything `cairn prove --network` needs: the service's settings and the one job's.
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
    /// `--po2 auto` (see [`JobSettings::auto`]).
    pub auto: Option<AutoPo2>,
}

impl CoordinatorConfig {
    fn split(self) -> (ServiceConfig, JobSettings) {
        (
            ServiceConfig {
                net: self.net,
                db_path: self.db_path,
                policy: self.policy,
                scheduler: self.scheduler,
                status_addr: self.status_addr,
            },
            JobSettings {
                po2: self.po2,
                redundancy: self.redundancy,
                max_attempts: self.max_attempts,
                task_slack: self.task_slack,
                timeout: self.job_timeout,
                aggregation: self.aggregation,
                cycle_limit: None,
                auto: self.auto,
            },
        )
    }
}

/// How one job is to be proved.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub po2: u8,
    pub redundancy: u32,
    pub max_attempts: u32,
    /// Slack added to each task's expected proving time before it is reassigned.
    pub task_slack: Duration,
    /// Give up if the job is not done this long after it was submitted.
    pub timeout: Duration,
    pub aggregation: Aggregation,
    /// Stop execution (and fail the job) once the run reaches this many cycles.
    pub cycle_limit: Option<u64>,
    /// `--po2 auto`: choose `po2` (and `aggregation`, among the ones allowed) from a prediction on the provers
    /// heard, when the job is submitted (`auto`). `None`: prove at `po2` as given.
    pub auto: Option<AutoPo2>,
}

/// Progress, for progress bars, logs and the gateway's session states.
#[derive(Debug, Clone)]
pub enum Progress {
    Listening(Vec<String>),
    /// `--po2 auto` chose the job's po2 (before its execution starts).
    Po2Chosen(Box<Po2Choice>),
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
#[derive(Debug, Clone)]
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
    /// Per segment proved in this run, by index: the proving time its prover reported
    /// (`TaskResult::prove_ms`; self-reported, absent from provers that do not report it). With the latencies
    /// above, what the network added to each proof.
    pub segment_prove_secs: BTreeMap<u32, f64>,
    pub assemble_secs: f64,
    pub total_secs: f64,
    /// How the final receipt was made.
    pub aggregation: Aggregation,
    /// Join-tree jobs: joins proved by the network and verified here.
    pub joins_verified: u32,
    /// What `--po2 auto` chose, with its prediction (`total_secs` is the measured time to set beside it).
    pub po2_choice: Option<Box<Po2Choice>>,
}

/// The key under which a job is stored: same program, input, po2 and aggregation means the same job (a
/// composite job's segment receipts cannot serve a join tree, which needs lifted ones).
/// Built on [`job_key_prefix`], so the input is hashed once however many keys are tried.
pub fn job_key(prefix: &str, po2: u8, aggregation: Aggregation) -> String {
    let base = format!("{prefix}{po2}");
    match aggregation {
        Aggregation::Composite => base,
        Aggregation::JoinTree => format!("{base}:join-tree"),
    }
}

/// The part of a [`job_key`] that names who asked, the program and the input (any po2, any aggregation).
///
/// The owner is part of it: two owners (a gateway's API keys) submitting the same work get a job each, so
/// one stopping its session, or its timeout and cycle limit, never reaches the other's (issue 29, item 5).
/// The same owner submitting it twice joins the running job. The command line's own jobs (owner `cli`)
/// keep the key they always had, so job databases written before resume.
pub fn job_key_prefix(owner: &str, image_id: &Digest32, input: &[u8]) -> String {
    let base = format!("{image_id}:{}:", Digest32::sha256(input));
    match owner {
        "" | "cli" => base,
        // The image id and input digest after the owner are fixed-length hex, so no two owners' keys can be
        // equal; the name is written escaped, keeping control characters out of the key.
        owner => format!("{}@{base}", owner.escape_default()),
    }
}

/// The po2 and aggregation of a key made by [`job_key`] with this `prefix`.
pub(crate) fn parse_job_key(prefix: &str, key: &str) -> Option<(u8, Aggregation)> {
    let rest = key.strip_prefix(prefix)?;
    match rest.split_once(':') {
        Some((po2, "join-tree")) => Some((po2.parse().ok()?, Aggregation::JoinTree)),
        None => Some((rest.parse().ok()?, Aggregation::Composite)),
        Some(_) => None,
    }
}

/// Proves `program` on `input` with the provers of the network: starts a [`Service`] in-process, submits the
/// one job, reports its progress and stops the service when the job ends. See the module docs.
pub async fn prove_network(
    cfg: CoordinatorConfig,
    backend: Arc<dyn ProvingBackend>,
    program: Vec<u8>,
    input: Vec<u8>,
    mut progress: impl FnMut(Progress),
) -> Result<NetworkProof, NodeError> {
    let (service_cfg, settings) = cfg.split();
    let service = Service::start(service_cfg, backend).await?;
    progress(Progress::Listening(service.info().listen.clone()));
    if let Some(addr) = service.info().status_addr {
        progress(Progress::StatusServer(addr));
    }
    let result = async {
        let mut handle = service
            .submit(JobRequest {
                program,
                input,
                settings,
                owner: "cli".into(),
            })
            .await?;
        let choice = handle.po2_choice.take();
        if let Some(c) = &choice {
            progress(Progress::Po2Chosen(c.clone()));
        }
        loop {
            tokio::select! {
                Some(p) = handle.progress.recv() => progress(p),
                r = &mut handle.result => {
                    // Whatever was reported before the end.
                    while let Ok(p) = handle.progress.try_recv() {
                        progress(p);
                    }
                    let r = r.unwrap_or_else(|_| Err(NodeError::Internal("the coordinator stopped".into())));
                    return r.map(|proof| NetworkProof { po2_choice: choice, ..proof });
                }
            }
        }
    }
    .await;
    service.shutdown().await;
    result
}
