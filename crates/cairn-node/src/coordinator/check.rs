//! Fetching a prover's result and checking it, off the service's loop: the transfer is async, the
//! verification runs on a blocking thread, and the outcome comes back as a report.

use std::sync::Arc;

use cairn_backend::{BackendError, Digest32, ProvingBackend};
use cairn_net::{BlobRef, Client, PeerId, Retention};
use cairn_scheduler::{NodeId, RejectReason, TaskId};
use tokio::sync::mpsc;
use tracing::{info_span, Instrument};

use super::job::Expect;
use super::service::Report;

/// The outcome of checking one result: the verified receipt bytes and the fingerprint of the proof in them
/// (`ProvingBackend::proof_fingerprint`, for the copy check), or why it was refused.
pub(super) type Checked = Result<(Vec<u8>, Digest32), (RejectReason, String)>;

/// A result to check: the receipt `peer` (scheduler node `node`) delivered for `task`, and what it must prove.
pub(super) struct Delivery {
    pub peer: PeerId,
    pub node: NodeId,
    pub task: TaskId,
    pub receipt: BlobRef,
    pub expect: Expect,
    /// The proving time the prover reported (kept with a verified receipt).
    pub prove_ms: Option<u64>,
}

/// How long a receipt of `bytes` may take to arrive before its task is backed up elsewhere
/// (`Report::ResultSlow`): two seconds (a manifest and a chunk over a relayed link with a long round trip),
/// plus the size at 256 KiB/s (a slow home uplink), the size counted up to [`PATIENT_BYTES`]: the size is the
/// prover's word, and padding a receipt (decoders ignore trailing bytes) must not buy a trickler more time.
/// The fetch goes on; the first verified result wins, and the backup costs only a second copy of one proof.
pub(super) fn patience(bytes: u64) -> std::time::Duration {
    std::time::Duration::from_secs(2)
        + std::time::Duration::from_secs_f64(bytes.min(PATIENT_BYTES) as f64 / (256.0 * 1024.0))
}

/// Receipt bytes that earn patience: 1 MiB, several times a RISC Zero segment, lifted or join receipt
/// (~200-300 kB whatever the po2).
pub(super) const PATIENT_BYTES: u64 = 1 << 20;

/// How many results are fetched and verified at once (each holds a receipt of up to
/// [`super::MAX_RECEIPT_BYTES`] in memory).
pub(super) const CONCURRENT_CHECKS: usize = 8;

/// Fetches the delivered receipt (exactly the size announced, at most [`super::MAX_RECEIPT_BYTES`]), checks
/// it against what it must prove and reports `Report::Checked` (or `Report::FetchFailed` when the transfer
/// fails).
pub(super) fn spawn(
    client: Client,
    backend: Arc<dyn ProvingBackend>,
    reports: mpsc::Sender<Report>,
    permits: Arc<tokio::sync::Semaphore>,
    delivery: Delivery,
) {
    let Delivery {
        peer,
        node,
        task,
        receipt,
        expect,
        prove_ms,
    } = delivery;
    let span = info_span!("verify", job = task.job.0, segment = task.index, %peer);
    tokio::spawn(
        async move {
            let report = async {
                if receipt.size > super::MAX_RECEIPT_BYTES {
                    let outcome = Err((RejectReason::Malformed, "receipt too large".to_string()));
                    return Some(Report::Checked {
                        task,
                        node,
                        outcome,
                        prove_ms,
                    });
                }
                // At most a few checks at once: each holds a receipt in memory. (Closed only when the
                // service is gone: then nobody is listening.)
                let _permit = permits.acquire_owned().await.ok()?;
                let slow = tokio::time::sleep(patience(receipt.size));
                let providers = [peer];
                let fetch = client.fetch_blob_ref(&providers, receipt, Retention::Evictable);
                tokio::pin!(fetch);
                let fetched = tokio::select! {
                    f = &mut fetch => f,
                    () = slow => {
                        // Too slow: the task is backed up, and this fetch goes on until it ends or the task is
                        // verified another way (the service drops `abort`), freeing its transfer slot.
                        let (abort, aborted) = tokio::sync::oneshot::channel();
                        match reports.try_send(Report::ResultSlow { task, node, abort }) {
                            Ok(()) => tokio::select! {
                                f = &mut fetch => f,
                                _ = aborted => {
                                    tracing::debug!("the task was verified meanwhile; the slow fetch is dropped");
                                    return None;
                                }
                            },
                            // The loop is busy: no backup this time, and the fetch simply goes on.
                            Err(_) => fetch.await,
                        }
                    }
                };
                let fetched = match fetched {
                    Ok(f) => f,
                    Err(e) => {
                        let reason = e.to_string();
                        return Some(Report::FetchFailed { task, node, reason });
                    }
                };
                let outcome = tokio::task::spawn_blocking(move || {
                    let bytes = std::fs::read(&fetched.path)
                        .map_err(|e| (RejectReason::Malformed, e.to_string()))?;
                    verify(&*backend, &bytes, &expect)?;
                    let fingerprint = backend
                        .proof_fingerprint(&bytes)
                        .map_err(|e| (RejectReason::Malformed, e.to_string()))?;
                    Ok((bytes, fingerprint))
                })
                .await
                .unwrap_or_else(|e| Err((RejectReason::InvalidProof, e.to_string())));
                Some(Report::Checked {
                    task,
                    node,
                    outcome,
                    prove_ms,
                })
            }
            .await;
            if let Some(report) = report {
                let _ = reports.send(report).await;
            }
        }
        .instrument(span),
    );
}

/// Verifies `bytes` and checks that they prove exactly what was asked.
fn verify(
    backend: &dyn ProvingBackend,
    bytes: &[u8],
    expect: &Expect,
) -> Result<(), (RejectReason, String)> {
    let checked = match expect {
        Expect::Segment(claim) => backend.verify_segment(bytes, claim),
        Expect::Lifted(claim) => backend.verify_lifted(bytes, claim),
        Expect::Join(l, r) => backend.verify_join(bytes, l, r),
    };
    match checked {
        Ok(()) => Ok(()),
        Err(BackendError::WrongClaim { .. } | BackendError::WrongJoin { .. }) => Err((
            RejectReason::WrongClaim,
            "proves another segment, job or program".to_string(),
        )),
        Err(BackendError::BadReceipt(e)) => Err((RejectReason::Malformed, e)),
        Err(e) => Err((RejectReason::InvalidProof, e.to_string())),
    }
}
