//! Running one session: load its program and input, prove it as a job of the coordinator service (or only
//! execute it), verify the receipt against the session's image id, store it, and record how it ended.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use cairn_backend::BackendError;
use cairn_node::coordinator::{JobRequest, Progress};
use cairn_node::NodeError;
use tracing::{info, info_span, warn, Instrument};

use crate::store::{SessionRow, Stats, ABORTED, FAILED, SUCCEEDED, TIMED_OUT};
use crate::{Inner, Live};

/// How a session ended, if not with a receipt.
struct End {
    status: &'static str,
    message: String,
}

impl End {
    fn failed(message: impl Into<String>) -> Self {
        Self {
            status: FAILED,
            message: message.into(),
        }
    }
}

/// Runs the session in the background.
pub(crate) fn spawn(inner: Arc<Inner>, row: SessionRow) {
    inner.live().insert(
        row.uuid.clone(),
        Live {
            job: row.job.map(cairn_scheduler::JobId),
            state: "queued".into(),
            stop: false,
        },
    );
    inner.metrics.running.inc();
    let span = info_span!("session", session = %row.uuid, owner = %row.owner);
    tokio::spawn(async move { run(inner, row).await }.instrument(span));
}

async fn run(inner: Arc<Inner>, row: SessionRow) {
    let outcome = prove(&inner, &row).await;
    inner.metrics.running.dec();
    if inner.shutting_down.load(Ordering::SeqCst) {
        // Left RUNNING in the database: the next gateway on this data directory resumes it.
        inner.live().remove(&row.uuid);
        return;
    }
    let (status, message, stats) = match outcome {
        Ok(stats) => (SUCCEEDED, None, Some(stats)),
        Err(end) => (end.status, Some(end.message), None),
    };
    match &message {
        None => info!(status, "session ended"),
        Some(m) => warn!(status, message = %m, "session ended"),
    }
    inner.metrics.ended(status);
    let (store, uuid) = (inner.store.clone(), row.uuid.clone());
    let stored = tokio::task::spawn_blocking(move || {
        store.finish_session(&uuid, status, message.as_deref(), stats)
    })
    .await;
    if !matches!(stored, Ok(Ok(()))) {
        warn!(
            ?stored,
            "could not record how the session ended; it will run again at the next start"
        );
    }
    inner.live().remove(&row.uuid);
}

fn set_state(inner: &Inner, uuid: &str, state: String) {
    if let Some(l) = inner.live().get_mut(uuid) {
        l.state = state;
    }
}

async fn read(path: std::path::PathBuf, what: &str) -> Result<Vec<u8>, End> {
    tokio::fs::read(&path)
        .await
        .map_err(|e| End::failed(format!("the gateway lost the session's {what}: {e}")))
}

async fn prove(inner: &Arc<Inner>, row: &SessionRow) -> Result<Stats, End> {
    let program = read(inner.store.image_path(&row.image_id), "program").await?;
    let input = read(inner.store.upload_path(&row.input), "input").await?;
    if !row.assumptions.is_empty() {
        let why = match inner.backend.recursion_available() {
            Err(e) => format!("resolving them needs RISC Zero's recursion programs, and {e}"),
            Ok(()) => "Cairn does not resolve assumptions into a receipt yet".into(),
        };
        return Err(End::failed(format!(
            "this session has {} assumption receipt(s) (composition, `env::verify`): {why}",
            row.assumptions.len()
        )));
    }
    let mut settings = inner.cfg.job.clone();
    settings.cycle_limit = cycle_limit(inner.cfg.job.cycle_limit, row.cycle_limit);
    if row.execute_only {
        let limit = settings.cycle_limit;
        return execute_only(inner, row, program, input, settings.po2, limit).await;
    }
    let started = Instant::now();
    let mut handle = inner
        .service
        .submit(JobRequest {
            program,
            input,
            settings,
            owner: row.owner.clone(),
        })
        .await
        .map_err(|e| end_of(inner, &row.uuid, e))?;
    if let Some(c) = &handle.po2_choice {
        info!(
            session = %row.uuid,
            po2 = c.po2,
            predicted_secs = c.predicted_secs,
            provers = c.provers,
            "po2 auto chose the segment size"
        );
    }
    let image_matches = handle.image_id.to_string() == row.image_id;
    let stop_now = {
        let mut live = inner.live();
        let l = live.get_mut(&row.uuid);
        l.map(|l| {
            l.job = Some(handle.id);
            l.stop
        })
        .unwrap_or(false)
    };
    if stop_now {
        let _ = inner.service.cancel(handle.id).await;
    }
    let (store, uuid, job) = (inner.store.clone(), row.uuid.clone(), handle.id.0);
    let _ = tokio::task::spawn_blocking(move || store.set_job(&uuid, job)).await;
    if !image_matches {
        // Checked at upload; a second look costs nothing.
        let _ = inner.service.cancel(handle.id).await;
        return Err(End::failed("the stored program's image id changed"));
    }

    let (mut executed, mut segments, mut verified) = (0u32, None::<u32>, 0u32);
    let result = loop {
        tokio::select! {
            Some(p) = handle.progress.recv() => {
                match p {
                    Progress::SegmentExecuted(_) => executed += 1,
                    Progress::ExecutionFinished { segments: n } => {
                        inner.metrics.stage("execute", started.elapsed().as_secs_f64());
                        segments = Some(n);
                    }
                    Progress::Resumed { verified: v } => {
                        verified += v;
                        let (store, uuid) = (inner.store.clone(), row.uuid.clone());
                        let _ = tokio::task::spawn_blocking(move || store.set_resumed(&uuid, v)).await;
                    }
                    Progress::Verified { .. } => {
                        verified += 1;
                        inner.metrics.segments_verified.inc();
                    }
                    Progress::Rejected { .. } => {
                        inner.metrics.segments_rejected.inc();
                    }
                    _ => {}
                }
                let state = match (segments, &p) {
                    (_, Progress::Aggregating) => "assembling the receipt".to_string(),
                    (None, _) => format!("executing: {executed} segments so far, {verified} verified"),
                    (Some(n), _) => format!("proving: {verified} of {n} segments verified"),
                };
                set_state(inner, &row.uuid, state);
            }
            r = &mut handle.result => {
                break r.unwrap_or_else(|_| Err(NodeError::Internal("the coordinator stopped".into())));
            }
        }
    };
    let proof = result.map_err(|e| end_of(inner, &row.uuid, e))?;
    for s in &proof.segment_latency_secs {
        inner.metrics.stage("prove", *s);
    }
    inner.metrics.stage("assemble", proof.assemble_secs);

    // The gateway's own check of what it is about to hand out.
    let t = Instant::now();
    let (backend, receipt, image) = (
        inner.backend.clone(),
        proof.receipt.clone(),
        proof.summary.image_id,
    );
    tokio::task::spawn_blocking(move || backend.verify_receipt(&receipt, &image))
        .await
        .map_err(|e| End::failed(format!("receipt check stopped: {e}")))?
        .map_err(|e| End::failed(format!("the assembled receipt does not verify: {e}")))?;
    inner.metrics.stage("verify", t.elapsed().as_secs_f64());
    write_file(inner, inner.store.receipt_path(&row.uuid), proof.receipt).await?;
    Ok(Stats {
        segments: proof.summary.segments as usize,
        total_cycles: proof.summary.total_cycles,
        cycles: proof.summary.user_cycles,
    })
}

/// An `execute_only` session: run the guest, keep its journal, prove nothing.
/// The cycle limit a session runs under: its own `exec_cycle_limit`, capped by the gateway's `--cycle-limit`
/// (a session could raise the operator's limit before, issue 29 item 4).
fn cycle_limit(gateway: Option<u64>, session: Option<u64>) -> Option<u64> {
    match (gateway, session) {
        (Some(g), Some(s)) => Some(g.min(s)),
        (g, s) => g.or(s),
    }
}

async fn execute_only(
    inner: &Arc<Inner>,
    row: &SessionRow,
    program: Vec<u8>,
    input: Vec<u8>,
    po2: u8,
    limit: Option<u64>,
) -> Result<Stats, End> {
    set_state(inner, &row.uuid, "executing".into());
    let backend = inner.backend.clone();
    let t = Instant::now();
    // `/sessions/stop` only set a flag nothing here read, so a stopped execute-only session ran to its end
    // (for ever, for an endless guest): the executor now looks at the flag at every segment (issue 29, item 4).
    let (state, uuid) = (inner.clone(), row.uuid.clone());
    let summary = tokio::task::spawn_blocking(move || {
        backend.execute_limited(&program, &input, po2, limit, &mut |_| {
            if state.live().get(&uuid).is_some_and(|l| l.stop) {
                return Err(BackendError::Execution(
                    "stopped at the client's request".into(),
                ));
            }
            Ok(())
        })
    })
    .await
    .map_err(|e| End::failed(format!("execution stopped: {e}")))?
    .map_err(|e| end_of(inner, &row.uuid, NodeError::Backend(e)))?;
    inner.metrics.stage("execute", t.elapsed().as_secs_f64());
    write_file(inner, inner.store.journal_path(&row.uuid), summary.journal).await?;
    Ok(Stats {
        segments: summary.segments as usize,
        total_cycles: summary.total_cycles,
        cycles: summary.user_cycles,
    })
}

async fn write_file(inner: &Inner, dest: std::path::PathBuf, bytes: Vec<u8>) -> Result<(), End> {
    let (store, tmp) = (inner.store.clone(), inner.store.temp_path());
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        std::fs::write(&tmp, &bytes).map_err(|e| e.to_string())?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())?;
        store.commit_file(&tmp, &dest).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| End::failed(e.to_string()))?
    .map_err(|e| End::failed(format!("could not store the result: {e}")))
}

/// What a job's error means to the client.
fn end_of(inner: &Inner, uuid: &str, e: NodeError) -> End {
    let stopped = inner.live().get(uuid).is_some_and(|l| l.stop);
    if stopped && matches!(e, NodeError::Backend(BackendError::Execution(_))) {
        return End {
            status: ABORTED,
            message: "stopped at the client's request (/sessions/stop)".into(),
        };
    }
    match e {
        NodeError::JobFailed(m) if stopped || m == "cancelled" => End {
            status: ABORTED,
            message: if stopped {
                "stopped at the client's request (/sessions/stop)".into()
            } else {
                m
            },
        },
        NodeError::Timeout(m) => End {
            status: TIMED_OUT,
            message: m,
        },
        NodeError::Backend(BackendError::GuestFailed(m)) => {
            End::failed(format!("the guest failed: {m}"))
        }
        NodeError::Backend(e @ BackendError::CycleLimit { .. }) => {
            End::failed(format!("{e} (the session's exec_cycle_limit)"))
        }
        other => End::failed(other.to_string()),
    }
}

#[cfg(test)]
mod cycle_limit_tests {
    use super::cycle_limit;

    /// Issue 29, item 4: a session's `exec_cycle_limit` replaced the gateway's instead of being capped by it.
    #[test]
    fn item4_a_sessions_cycle_limit_is_capped_by_the_gateways() {
        assert_eq!(cycle_limit(Some(1_000), Some(u64::MAX)), Some(1_000));
        assert_eq!(cycle_limit(Some(1_000), Some(10)), Some(10));
        assert_eq!(cycle_limit(Some(1_000), None), Some(1_000));
        assert_eq!(cycle_limit(None, Some(10)), Some(10));
        assert_eq!(cycle_limit(None, None), None);
    }
}
