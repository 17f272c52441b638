//! Proving a whole program on this machine: execute once, prove segments on a pool of worker threads while
//! execution is still producing them, verify every segment receipt against its expected claim, then
//! assemble (composite) or lift and join (succinct). The network client does the same with remote provers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{BackendError, ExecutionSummary, ProvingBackend, SegmentClaim, WorkerPool};

/// Options of a local proof.
#[derive(Debug, Clone, Copy)]
pub struct LocalOptions {
    pub po2: u8,
    /// Proving worker threads.
    pub workers: usize,
    /// Produce a succinct receipt (lift + join tree) instead of a composite one. Needs recursion.
    pub succinct: bool,
}

/// Progress, for progress bars and logs.
#[derive(Debug, Clone)]
pub enum LocalEvent {
    SegmentExecuted(SegmentClaim),
    ExecutionFinished {
        segments: u32,
        user_cycles: u64,
        total_cycles: u64,
    },
    SegmentProved {
        index: u32,
        prove_time: Duration,
    },
    Aggregating,
}

/// Time spent in each stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LocalTimings {
    /// Wall time of execution (segments were being proved meanwhile).
    pub execute_secs: f64,
    /// Wall time from start until the last segment receipt was verified.
    pub prove_secs: f64,
    /// Sum of per-segment proving times (CPU-side cost).
    pub segment_prove_secs_sum: f64,
    /// Slowest single segment proof.
    pub segment_prove_secs_max: f64,
    /// Time spent verifying segment receipts.
    pub verify_secs: f64,
    /// Time to assemble (or lift and join) the final receipt.
    pub aggregate_secs: f64,
    pub total_secs: f64,
}

/// A finished local proof.
#[derive(Debug, Clone)]
pub struct LocalProof {
    pub summary: ExecutionSummary,
    /// The final receipt (for RISC Zero: a bincode `risc0_zkvm::Receipt`).
    pub receipt: Vec<u8>,
    /// `composite` or `succinct`.
    pub kind: &'static str,
    pub timings: LocalTimings,
}

type ProveResult = (u32, Result<Vec<u8>, BackendError>, Duration);

/// One lift or join, run on a worker.
type AggJob = Box<dyn FnOnce() -> Result<Vec<u8>, BackendError> + Send>;

/// Proves `program` on `input` on this machine. See the module docs.
pub fn prove_local(
    backend: Arc<dyn ProvingBackend>,
    program: &[u8],
    input: &[u8],
    opts: LocalOptions,
    mut on_event: impl FnMut(LocalEvent),
) -> Result<LocalProof, BackendError> {
    if opts.succinct {
        backend.recursion_available()?;
    }
    let start = Instant::now();
    let pool = WorkerPool::new("cairn-prove", opts.workers);
    let (tx, rx) = crossbeam_channel::unbounded::<ProveResult>();
    let mut receipts: Vec<Option<Vec<u8>>> = Vec::new();
    let mut timings = LocalTimings::default();

    // Verifies one finished proof against its claim; the first failure aborts the proof.
    let accept = |(index, result, took): ProveResult,
                  claims: &[SegmentClaim],
                  receipts: &mut Vec<Option<Vec<u8>>>,
                  timings: &mut LocalTimings,
                  on_event: &mut dyn FnMut(LocalEvent)|
     -> Result<(), BackendError> {
        let bytes = result?;
        let t = Instant::now();
        backend.verify_segment(&bytes, &claims[index as usize])?;
        timings.verify_secs += t.elapsed().as_secs_f64();
        timings.segment_prove_secs_sum += took.as_secs_f64();
        timings.segment_prove_secs_max = timings.segment_prove_secs_max.max(took.as_secs_f64());
        if receipts.len() <= index as usize {
            receipts.resize(index as usize + 1, None);
        }
        receipts[index as usize] = Some(bytes);
        on_event(LocalEvent::SegmentProved {
            index,
            prove_time: took,
        });
        Ok(())
    };

    let (summary, claims) = {
        let backend_for_workers = backend.clone();
        let mut executed: Vec<SegmentClaim> = Vec::new();
        let mut events: Vec<LocalEvent> = Vec::new();
        let summary = backend.execute(program, input, opts.po2, &mut |blob| {
            executed.push(blob.claim);
            events.push(LocalEvent::SegmentExecuted(blob.claim));
            let backend = backend_for_workers.clone();
            let tx = tx.clone();
            pool.spawn(move || {
                let t = Instant::now();
                let r = backend.prove_segment(&blob.bytes);
                let _ = tx.send((blob.claim.index, r, t.elapsed()));
            })
            .map_err(|e| BackendError::Proving(e.to_string()))
        })?;
        for e in events {
            on_event(e);
        }
        (summary, executed)
    };
    timings.execute_secs = start.elapsed().as_secs_f64();
    on_event(LocalEvent::ExecutionFinished {
        segments: summary.segments,
        user_cycles: summary.user_cycles,
        total_cycles: summary.total_cycles,
    });
    drop(tx);
    for _ in 0..claims.len() {
        let r = rx
            .recv()
            .map_err(|_| BackendError::Proving("a proving worker stopped".into()))?;
        accept(r, &claims, &mut receipts, &mut timings, &mut on_event)?;
    }
    timings.prove_secs = start.elapsed().as_secs_f64();
    let receipts: Vec<Vec<u8>> = receipts
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.ok_or_else(|| BackendError::Assembly(format!("segment {i} has no receipt")))
        })
        .collect::<Result<_, _>>()?;

    on_event(LocalEvent::Aggregating);
    let t = Instant::now();
    let (receipt, kind) = if opts.succinct {
        (
            aggregate_succinct(&backend, &pool, &summary, receipts)?,
            "succinct",
        )
    } else {
        (backend.assemble(&summary, &receipts)?, "composite")
    };
    timings.aggregate_secs = t.elapsed().as_secs_f64();
    timings.total_secs = start.elapsed().as_secs_f64();
    Ok(LocalProof {
        summary,
        receipt,
        kind,
        timings,
    })
}

/// Lifts every segment receipt and joins neighbours level by level on the worker pool.
fn aggregate_succinct(
    backend: &Arc<dyn ProvingBackend>,
    pool: &WorkerPool,
    summary: &ExecutionSummary,
    receipts: Vec<Vec<u8>>,
) -> Result<Vec<u8>, BackendError> {
    let run_level = |jobs: Vec<AggJob>| {
        let (tx, rx) = crossbeam_channel::unbounded();
        let n = jobs.len();
        for (i, job) in jobs.into_iter().enumerate() {
            let tx = tx.clone();
            pool.spawn(move || {
                let _ = tx.send((i, job()));
            })
            .map_err(|e| BackendError::Proving(e.to_string()))?;
        }
        let mut out: Vec<Option<Vec<u8>>> = vec![None; n];
        for _ in 0..n {
            let (i, r) = rx
                .recv()
                .map_err(|_| BackendError::Proving("a proving worker stopped".into()))?;
            out[i] = Some(r?);
        }
        Ok::<_, BackendError>(
            out.into_iter()
                .map(|r| r.expect("every job answered"))
                .collect::<Vec<_>>(),
        )
    };
    let mut level = run_level(
        receipts
            .into_iter()
            .map(|r| {
                let b = backend.clone();
                Box::new(move || b.lift(&r)) as AggJob
            })
            .collect(),
    )?;
    while level.len() > 1 {
        let mut jobs: Vec<AggJob> = Vec::new();
        let mut it = level.into_iter();
        while let Some(left) = it.next() {
            match it.next() {
                Some(right) => {
                    let b = backend.clone();
                    jobs.push(Box::new(move || b.join(&left, &right)));
                }
                None => jobs.push(Box::new(move || Ok(left))),
            }
        }
        level = run_level(jobs)?;
    }
    backend.finish_succinct(summary, &level[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeBackend;

    #[test]
    fn composite_and_succinct_with_fake_backend() {
        let backend: Arc<dyn ProvingBackend> = Arc::new(FakeBackend::new(0.0));
        let program = FakeBackend::program("local");
        let input = FakeBackend::input(200_000, b"seed");
        for succinct in [false, true] {
            let mut proved = 0;
            let proof = prove_local(
                backend.clone(),
                &program,
                &input,
                LocalOptions {
                    po2: 14,
                    workers: 2,
                    succinct,
                },
                |e| {
                    if matches!(e, LocalEvent::SegmentProved { .. }) {
                        proved += 1;
                    }
                },
            )
            .unwrap();
            assert_eq!(proved, proof.summary.segments);
            assert!(proof.summary.segments > 10);
            let journal = backend
                .verify_receipt(&proof.receipt, &proof.summary.image_id)
                .unwrap();
            assert_eq!(journal, proof.summary.journal);
        }
    }

    #[test]
    fn succinct_without_recursion_says_so() {
        let backend: Arc<dyn ProvingBackend> = Arc::new(FakeBackend {
            time_scale: 0.0,
            recursion: false,
        });
        let err = prove_local(
            backend,
            &FakeBackend::program("p"),
            &FakeBackend::input(10, b""),
            LocalOptions {
                po2: 14,
                workers: 1,
                succinct: true,
            },
            |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, BackendError::RecursionUnavailable(_)));
        assert!(err.to_string().contains("composite"));
    }
}
