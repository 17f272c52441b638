//! The proving backend boundary.
//!
//! Everything in Cairn that touches a proof goes through [`ProvingBackend`]:
//!
//! 1. [`ProvingBackend::execute`] runs a program once and streams out each segment as it is produced, as a
//!    [`SegmentBlob`]: the serialized segment plus its [`SegmentClaim`] (index, po2, and the digest of the
//!    claim a correct proof of exactly this segment must carry).
//! 2. [`ProvingBackend::prove_segment`] turns one serialized segment into a serialized segment receipt. It is
//!    blocking and CPU-bound: call it on a worker thread (see [`WorkerPool`]), never on an async runtime.
//! 3. [`ProvingBackend::verify_segment`] checks a receipt's proof **and** that its claim is the expected one, so
//!    a valid proof of another segment, job or program is rejected.
//! 4. [`ProvingBackend::assemble`] turns verified segment receipts into the final receipt (for RISC Zero: a
//!    standard `risc0_zkvm::Receipt` that stock `receipt.verify(image_id)` accepts).
//! 5. Recursion ([`ProvingBackend::lift`], [`ProvingBackend::join`], [`ProvingBackend::finish_succinct`]) where
//!    the backend has it; otherwise [`BackendError::RecursionUnavailable`].
//!
//! Two implementations exist: `cairn_risc0::RiscZeroBackend` (real proofs) and [`fake::FakeBackend`], a fast,
//! deterministic stand-in for scheduler, network and simulator tests whose receipts are still checked.

pub mod cost;
pub mod fake;
pub mod local;
mod pool;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use pool::{WorkerPool, WorkerPoolClosed};

/// The smallest and largest segment size (log2 of cycles) a user may ask RISC Zero 3.x for.
pub const MIN_PO2: u8 = 14;
/// See [`MIN_PO2`].
pub const MAX_PO2: u8 = 22;
/// The smallest segment RISC Zero's executor itself produces: a run's last segment is sized to the cycles it
/// holds, rounded up to a power of two, and its fixed overhead (lookup tables, paging) alone needs 2^13
/// cycles. So a job asked for at po2 14 or more can end with a po2 13 segment, which proves like any other.
pub const MIN_SEGMENT_PO2: u8 = 13;

/// A 32-byte digest (image ids, claim digests, blob ids). Shown and parsed as hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest32(pub [u8; 32]);

impl Digest32 {
    /// SHA-256 of `data`.
    pub fn sha256(data: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(data).into())
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, BackendError> {
        let bytes =
            hex::decode(s.trim()).map_err(|e| BackendError::BadDigest(format!("{s:?}: {e}")))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| BackendError::BadDigest(format!("{s:?}: expected 64 hex characters")))?;
        Ok(Self(arr))
    }
}

impl fmt::Display for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest32({self})")
    }
}

impl Serialize for Digest32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Digest32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Self::from_hex(&s).map_err(serde::de::Error::custom)
        } else {
            Ok(Self(<[u8; 32]>::deserialize(d)?))
        }
    }
}

/// What a correct proof of one segment must claim. Computed by the client at execution time, before any
/// prover sees the segment, so a returned receipt can be checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentClaim {
    /// Position of the segment in the run.
    pub index: u32,
    /// Segment size: the proof covers 2^po2 cycles.
    pub po2: u8,
    /// Cycles the guest itself executed in this segment (the rest is paging and padding).
    pub user_cycles: u64,
    /// Digest of the receipt claim (pre-state, post-state, exit code, input, output) of this segment.
    pub claim_digest: Digest32,
}

/// A serialized segment and the claim its proof must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentBlob {
    pub claim: SegmentClaim,
    pub bytes: Vec<u8>,
}

/// What one execution produced, besides its segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionSummary {
    /// Image id of the program (what a verifier checks the receipt against).
    pub image_id: Digest32,
    /// Segment size used.
    pub po2: u8,
    /// Number of segments.
    pub segments: u32,
    /// Cycles the guest executed.
    pub user_cycles: u64,
    /// Cycles proved, including paging and padding to powers of two.
    pub total_cycles: u64,
    /// Bytes the guest committed.
    pub journal: Vec<u8>,
    /// Exit code of the guest, as RISC Zero names it (for example `Halted(0)`).
    pub exit_code: String,
    /// The expected claim of every segment, in order.
    pub claims: Vec<SegmentClaim>,
}

/// Errors of the proving backend. Each message says what went wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("the program is not a RISC Zero program: {0}. Pass a RISC-V ELF built for riscv32im-risc0-zkvm-elf or a RISC Zero program binary (R0BF)")]
    BadProgram(String),
    #[error("segment size po2={0} is outside what RISC Zero accepts: choose a po2 from {MIN_PO2} to {MAX_PO2}")]
    BadPo2(u8),
    #[error("the segment is {actual} (log2 of cycles) but it must be between {MIN_SEGMENT_PO2} and {max}: it was not produced by RISC Zero's executor for this job, or it is corrupted")]
    BadSegmentPo2 { actual: String, max: u8 },
    #[error("the guest program failed on this input: {0}")]
    GuestFailed(String),
    #[error("execution failed: {0}")]
    Execution(String),
    #[error("segment blob could not be decoded: {0}. It may be truncated or from another Cairn/RISC Zero version")]
    BadSegment(String),
    #[error("proving failed: {0}")]
    Proving(String),
    #[error("receipt could not be decoded: {0}. The file is truncated, corrupted, or not a bincode-serialized risc0_zkvm::Receipt")]
    BadReceipt(String),
    #[error("receipt does not verify: {0}")]
    InvalidProof(String),
    #[error("receipt proves a different claim than segment {index} needs (expected claim {expected}, got {actual}): it is a proof of another segment, job or program")]
    WrongClaim {
        index: u32,
        expected: Digest32,
        actual: Digest32,
    },
    #[error("join receipt proves claim {actual}, not the join {expected} of the two receipts it was asked to join: it is a proof of something else")]
    WrongJoin {
        expected: Digest32,
        actual: Digest32,
    },
    #[error("receipt is for image id {actual}, but image id {expected} was expected: it proves another program")]
    WrongImage {
        expected: Digest32,
        actual: Digest32,
    },
    #[error("cannot assemble: {0}")]
    Assembly(String),
    #[error("RISC Zero's recursion programs (lift/join/resolve) are not compiled into this build (it was built offline, with DOCS_RS set). Use the composite receipt (the default), or rebuild on a machine with network access to get succinct receipts. Detail: {0}")]
    RecursionUnavailable(String),
    #[error("bad digest {0}")]
    BadDigest(String),
    #[error("this backend does not support {0}")]
    Unsupported(&'static str),
    #[error("the guest ran past the cycle limit of {limit} cycles: {detail}")]
    CycleLimit { limit: u64, detail: String },
}

/// The proving backend boundary. Implementations are cheap to share across threads; every method is
/// blocking and may take minutes (`prove_segment`, `lift`, `join`), so call them from worker threads.
pub trait ProvingBackend: Send + Sync + 'static {
    /// A short name for logs and summaries (`risc0`, `fake`).
    fn name(&self) -> &'static str;

    /// The image id of a program, after checking it is one.
    fn image_id(&self, program: &[u8]) -> Result<Digest32, BackendError>;

    /// Executes `program` on `input` with segments of 2^`po2` cycles, handing each segment to `on_segment` as
    /// soon as it is produced (so proving can start before execution ends). An error returned by `on_segment`
    /// stops execution and is passed through.
    fn execute(
        &self,
        program: &[u8],
        input: &[u8],
        po2: u8,
        on_segment: &mut (dyn FnMut(SegmentBlob) -> Result<(), BackendError> + Send),
    ) -> Result<ExecutionSummary, BackendError> {
        self.execute_limited(program, input, po2, None, on_segment)
    }

    /// [`ProvingBackend::execute`], stopped with [`BackendError::CycleLimit`] once the run reaches
    /// `cycle_limit` cycles (RISC Zero's session limit: total cycles, paging included), so a guest that loops
    /// forever costs its submitter a bounded amount of work.
    fn execute_limited(
        &self,
        program: &[u8],
        input: &[u8],
        po2: u8,
        cycle_limit: Option<u64>,
        on_segment: &mut (dyn FnMut(SegmentBlob) -> Result<(), BackendError> + Send),
    ) -> Result<ExecutionSummary, BackendError>;

    /// Decodes a serialized segment and returns the claim a proof of it must carry, checking what can be
    /// checked without proving (its size in particular). Cheap next to proving: a prover calls it before it
    /// commits a worker to the segment.
    fn segment_claim(&self, segment: &[u8]) -> Result<SegmentClaim, BackendError>;

    /// Proves one serialized segment; returns the serialized segment receipt.
    fn prove_segment(&self, segment: &[u8]) -> Result<Vec<u8>, BackendError>;

    /// Verifies a serialized segment receipt and checks that it proves exactly `expected`.
    fn verify_segment(&self, receipt: &[u8], expected: &SegmentClaim) -> Result<(), BackendError>;

    /// A fingerprint of the proof inside a verified receipt (segment, lifted or join): equal for two
    /// deliveries of one proof however their bytes differ, different for two proofs of the same claim
    /// (proofs are randomized). The client's copy check compares these, not the bytes, so a copier cannot
    /// pass off another prover's proof by re-encoding it. Default: the digest of the bytes.
    fn proof_fingerprint(&self, receipt: &[u8]) -> Result<Digest32, BackendError> {
        Ok(Digest32::sha256(receipt))
    }

    /// Builds the final receipt from verified segment receipts given in segment order.
    fn assemble(
        &self,
        summary: &ExecutionSummary,
        receipts: &[Vec<u8>],
    ) -> Result<Vec<u8>, BackendError>;

    /// Verifies a final receipt against an image id; returns its journal.
    fn verify_receipt(&self, receipt: &[u8], image_id: &Digest32) -> Result<Vec<u8>, BackendError>;

    /// Whether lift / join / resolve can run here; the error says why not.
    fn recursion_available(&self) -> Result<(), BackendError>;

    /// Lifts a segment receipt into a succinct receipt.
    fn lift(&self, segment_receipt: &[u8]) -> Result<Vec<u8>, BackendError>;

    /// Joins two succinct receipts of consecutive ranges of segments.
    fn join(&self, left: &[u8], right: &[u8]) -> Result<Vec<u8>, BackendError>;

    /// Verifies a lifted (succinct) segment receipt and checks that it proves exactly `expected`.
    fn verify_lifted(&self, receipt: &[u8], expected: &SegmentClaim) -> Result<(), BackendError>;

    /// Verifies a join receipt and checks that it proves exactly the join of `left` and `right` (succinct
    /// receipts the caller has already verified), so a valid join of anything else is refused.
    fn verify_join(&self, receipt: &[u8], left: &[u8], right: &[u8]) -> Result<(), BackendError>;

    /// Turns the root succinct receipt of the join tree into the final receipt.
    fn finish_succinct(
        &self,
        summary: &ExecutionSummary,
        root: &[u8],
    ) -> Result<Vec<u8>, BackendError>;
}

/// Checks that `receipts` hold exactly one receipt per segment of `summary`, in segment order, each one
/// verifying and proving its segment's expected claim. Every backend's `assemble` starts with this.
pub fn check_segment_receipts(
    backend: &(impl ProvingBackend + ?Sized),
    summary: &ExecutionSummary,
    receipts: &[Vec<u8>],
) -> Result<(), BackendError> {
    if receipts.len() != summary.claims.len() {
        return Err(BackendError::Assembly(format!(
            "{} segment receipts for {} segments",
            receipts.len(),
            summary.claims.len()
        )));
    }
    for (receipt, claim) in receipts.iter().zip(&summary.claims) {
        backend.verify_segment(receipt, claim)?;
    }
    Ok(())
}

/// Checks the po2 of a segment the executor produced (or a peer sent): from [`MIN_SEGMENT_PO2`] up to `max`
/// (the job's po2, or [`MAX_PO2`]). Takes the raw value so an out-of-range one is never truncated first.
pub fn check_segment_po2(po2: u32, max: u8) -> Result<u8, BackendError> {
    match u8::try_from(po2) {
        Ok(p) if (MIN_SEGMENT_PO2..=max.min(MAX_PO2)).contains(&p) => Ok(p),
        _ => Err(BackendError::BadSegmentPo2 {
            actual: format!("po2 {po2}"),
            max: max.min(MAX_PO2),
        }),
    }
}

/// Checks a po2 a user asked for against what RISC Zero accepts.
pub fn check_po2(po2: u8) -> Result<(), BackendError> {
    if (MIN_PO2..=MAX_PO2).contains(&po2) {
        Ok(())
    } else {
        Err(BackendError::BadPo2(po2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13, item 11: a segment's po2 is range-checked on its raw value, so 270 is refused rather than
    /// narrowed (`as u8`) to 14; the short last segment (po2 13) and the job's own po2 pass.
    #[test]
    fn item11_a_segment_po2_is_checked_before_it_is_narrowed() {
        assert_eq!(check_segment_po2(14, 20).unwrap(), 14);
        assert_eq!(check_segment_po2(13, 20).unwrap(), 13);
        assert!(check_segment_po2(256 + 14, 20).is_err());
        assert!(check_segment_po2(21, 20).is_err());
        assert!(check_segment_po2(12, 20).is_err());
    }
}
