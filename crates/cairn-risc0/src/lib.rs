//! The RISC Zero implementation of Cairn's [`ProvingBackend`].
//!
//! - Programs are accepted as a RISC-V user ELF (wrapped with RISC Zero's v1compat kernel, as `risc0-build`
//!   does) or as an encoded RISC Zero program binary (`R0BF`). Anything else is refused with a clear error.
//! - Segments are `risc0_zkvm::Segment`s serialized with bincode. Each segment's expected claim digest is
//!   computed at execution time from the segment's own rv32im claim, exactly as RISC Zero derives a segment
//!   receipt's claim from its seal (`ReceiptClaim::decode_from_seal_v2`), so a returned receipt can be checked
//!   against the segment it was meant to prove before anyone else touches it.
//! - Segment receipts are `risc0_zkvm::SegmentReceipt`s (bincode). The final receipt is a standard
//!   `risc0_zkvm::Receipt` (bincode) that verifies with stock `receipt.verify(image_id)`: a composite receipt
//!   of the segment receipts, or a succinct one where the recursion programs are compiled in.
//! - The prover (`Rc<dyn ProverServer>`) is not `Send`: it is created on the calling (worker) thread for each
//!   call, which costs nothing next to proving.
//!
//! `CompositeReceipt` is `#[non_exhaustive]` with no public constructor in risc0-zkvm 3.0.6, so it is built by
//! deserializing an identically shaped structure (see [`composite_receipt`]); a test guards the shape.

use std::sync::{Arc, Mutex};

use cairn_backend::{
    check_po2, check_segment_po2, check_segment_receipts, BackendError, Digest32, ExecutionSummary,
    ProvingBackend, SegmentBlob, SegmentClaim, MAX_PO2,
};
use risc0_binfmt::{tagged_struct, Digestible, ProgramBinary};
use risc0_zkvm::{
    get_prover_server, sha, CompositeReceipt, ExecutorEnv, ExecutorImpl, ExitCode,
    InnerAssumptionReceipt, InnerReceipt, NullSegmentRef, ProverOpts, Receipt, ReceiptClaim,
    SegmentReceipt, SuccinctReceipt, VerifierContext,
};
use serde::{Deserialize, Serialize};

/// What one execution (no proving) measured: for benchmarks that need the guest's stderr too.
#[derive(Debug, Clone)]
pub struct ExecutionStats {
    pub user_cycles: u64,
    pub total_cycles: u64,
    pub segments: u32,
    pub journal: Vec<u8>,
    /// What the guest wrote to stderr.
    pub stderr: Vec<u8>,
    pub seconds: f64,
}

/// Executes `program` on `input` at `po2` without keeping segments, capturing the guest's stderr.
pub fn execute_stats(
    program: &[u8],
    input: &[u8],
    po2: u8,
) -> Result<ExecutionStats, BackendError> {
    execute_stats_with_progress(program, input, po2, &mut |_| {})
}

/// As [`execute_stats`], calling `on_segment` with the count of segments so far after each one (for a progress
/// display: an execution at po2 15 can make hundreds of thousands).
pub fn execute_stats_with_progress(
    program: &[u8],
    input: &[u8],
    po2: u8,
    on_segment: &mut (dyn FnMut(u32) + Send),
) -> Result<ExecutionStats, BackendError> {
    check_po2(po2)?;
    let binary = program_binary(program)?;
    let stderr = SharedBuf::default();
    let env = ExecutorEnv::builder()
        .write_slice(input)
        .segment_limit_po2(u32::from(po2))
        .stderr(stderr.clone())
        .build()
        .map_err(|e| BackendError::Execution(e.to_string()))?;
    let started = std::time::Instant::now();
    let mut exec = ExecutorImpl::from_elf(env, &binary)
        .map_err(|e| BackendError::BadProgram(e.to_string()))?;
    let mut segments = 0u32;
    let session = exec
        .run_with_callback(|_| {
            segments += 1;
            on_segment(segments);
            Ok(Box::new(NullSegmentRef))
        })
        .map_err(|e| BackendError::GuestFailed(format!("{e:#}")))?;
    if session.exit_code != ExitCode::Halted(0) {
        return Err(BackendError::GuestFailed(format!(
            "guest exited with {:?}",
            session.exit_code
        )));
    }
    let stderr = stderr.0.lock().expect("poisoned").clone();
    Ok(ExecutionStats {
        user_cycles: session.user_cycles,
        total_cycles: session.total_cycles,
        segments,
        journal: session.journal.map(|j| j.bytes).unwrap_or_default(),
        stderr,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[derive(Debug, Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// ELF machine number of RISC-V.
const EM_RISCV: u16 = 0xF3;

/// The real backend: RISC Zero's CPU prover.
#[derive(Debug, Clone, Default)]
pub struct RiscZeroBackend {
    _private: (),
}

impl RiscZeroBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Checks `program` and returns it as an encoded RISC Zero program binary.
pub fn program_binary(program: &[u8]) -> Result<Vec<u8>, BackendError> {
    if program.starts_with(b"R0BF") {
        let binary = ProgramBinary::decode(program)
            .map_err(|e| BackendError::BadProgram(format!("malformed program binary: {e}")))?;
        binary
            .to_image()
            .map_err(|e| BackendError::BadProgram(format!("program binary does not load: {e}")))?;
        return Ok(program.to_vec());
    }
    if !program.starts_with(b"\x7fELF") {
        return Err(BackendError::BadProgram(
            "the file is neither an ELF file nor a RISC Zero program binary".into(),
        ));
    }
    if program.len() < 20 {
        return Err(BackendError::BadProgram("the ELF file is truncated".into()));
    }
    let class = program[4];
    let machine = u16::from_le_bytes([program[18], program[19]]);
    if class != 1 || machine != EM_RISCV {
        return Err(BackendError::BadProgram(format!(
            "the ELF file is for {} (class {class}, machine {machine:#x}), not 32-bit RISC-V",
            machine_name(machine)
        )));
    }
    let encoded = ProgramBinary::new(program, risc0_zkos_v1compat::V1COMPAT_ELF).encode();
    ProgramBinary::decode(&encoded)
        .and_then(|b| b.to_image())
        .map_err(|e| BackendError::BadProgram(format!("the RISC-V ELF does not load: {e}")))?;
    Ok(encoded)
}

fn machine_name(machine: u16) -> &'static str {
    match machine {
        0x03 => "x86",
        0x3E => "x86-64",
        0x28 => "ARM",
        0xB7 => "AArch64",
        0xF3 => "RISC-V",
        _ => "another machine",
    }
}

fn to_d32(d: risc0_zkvm::sha::Digest) -> Digest32 {
    Digest32(d.as_bytes().try_into().expect("digests are 32 bytes"))
}

/// The layout of a serialized `risc0_zkvm::Segment` (risc0-zkvm 3.0.6), read to learn the segment's claim.
#[derive(Deserialize)]
struct SegmentLayout {
    index: u32,
    inner: risc0_circuit_rv32im::execute::Segment,
}

/// The expected receipt claim digest of a serialized segment, computed the way `decode_from_seal_v2` builds a
/// segment receipt's claim from the rv32im claim.
pub fn expected_claim(segment_bytes: &[u8]) -> Result<SegmentClaim, BackendError> {
    let seg: SegmentLayout =
        bincode::deserialize(segment_bytes).map_err(|e| BackendError::BadSegment(e.to_string()))?;
    let c = &seg.inner.claim;
    let exit_code = match &c.terminate_state {
        None => ExitCode::SystemSplit,
        Some(t) => {
            let risc0_circuit_rv32im::HighLowU16(user_exit, halt_type) = t.a0;
            match halt_type {
                0 => ExitCode::Halted(u32::from(user_exit)),
                1 => ExitCode::Paused(u32::from(user_exit)),
                other => {
                    return Err(BackendError::BadSegment(format!(
                        "illegal halt type {other}"
                    )))
                }
            }
        }
    };
    let post = match exit_code {
        ExitCode::Halted(_) => risc0_zkvm::sha::Digest::ZERO,
        _ => c.post_state,
    };
    let state = |root: risc0_zkvm::sha::Digest| risc0_zkvm::SystemState {
        pc: 0,
        merkle_root: root,
    };
    let (sys_exit, user_exit) = exit_code.into_pair();
    // Same fields and order as `impl Digestible for ReceiptClaim`.
    let digest = tagged_struct::<sha::Impl>(
        "risc0.ReceiptClaim",
        &[
            c.input,
            state(c.pre_state).digest::<sha::Impl>(),
            state(post).digest::<sha::Impl>(),
            c.output.unwrap_or_default(),
        ],
        &[sys_exit, user_exit],
    );
    Ok(SegmentClaim {
        index: seg.index,
        // Range-checked before it is narrowed: a peer's segment may say anything.
        po2: check_segment_po2(seg.inner.po2, MAX_PO2)?,
        user_cycles: u64::from(seg.inner.suspend_cycle),
        claim_digest: to_d32(digest),
    })
}

/// Same fields, types and order as `risc0_zkvm::CompositeReceipt` in 3.0.6.
#[derive(Serialize)]
struct CompositeLayout<'a> {
    segments: &'a [SegmentReceipt],
    assumption_receipts: Vec<InnerAssumptionReceipt>,
    verifier_parameters: risc0_zkvm::sha::Digest,
}

/// Builds a `CompositeReceipt` from segment receipts proved elsewhere (there is no public constructor).
pub fn composite_receipt(segments: &[SegmentReceipt]) -> Result<CompositeReceipt, BackendError> {
    let params = VerifierContext::default()
        .composite_verifier_parameters()
        .ok_or_else(|| BackendError::Assembly("composite verifier parameters missing".into()))?
        .digest::<sha::Impl>();
    let layout = CompositeLayout {
        segments,
        assumption_receipts: Vec::new(),
        verifier_parameters: params,
    };
    let bytes = bincode::serialize(&layout).map_err(|e| BackendError::Assembly(e.to_string()))?;
    bincode::deserialize(&bytes).map_err(|e| {
        BackendError::Assembly(format!(
            "CompositeReceipt layout changed in this risc0-zkvm version: {e}"
        ))
    })
}

/// The digest of a receipt's seal: the proof itself. Segment and succinct receipts both begin with the seal
/// (`Vec<u32>`), so the prefix is read whatever the kind; the rest (claims that may be pruned or not, trailing
/// bytes bincode would ignore) does not enter it.
fn seal_fingerprint(bytes: &[u8]) -> Result<Digest32, BackendError> {
    let seal: Vec<u32> =
        bincode::deserialize(bytes).map_err(|e| BackendError::BadReceipt(e.to_string()))?;
    let mut words = b"cairn/seal/v1".to_vec();
    for w in &seal {
        words.extend_from_slice(&w.to_le_bytes());
    }
    Ok(Digest32::sha256(&words))
}

fn decode_segment_receipt(bytes: &[u8]) -> Result<SegmentReceipt, BackendError> {
    bincode::deserialize(bytes).map_err(|e| BackendError::BadReceipt(e.to_string()))
}

fn decode_succinct(bytes: &[u8]) -> Result<SuccinctReceipt<ReceiptClaim>, BackendError> {
    bincode::deserialize(bytes).map_err(|e| BackendError::BadReceipt(e.to_string()))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("in-memory serialization cannot fail")
}

fn prover() -> Result<std::rc::Rc<dyn risc0_zkvm::ProverServer>, BackendError> {
    get_prover_server(&ProverOpts::default()).map_err(|e| BackendError::Proving(e.to_string()))
}

/// Maps recursion failures caused by the missing recursion programs to `RecursionUnavailable`.
fn recursion_error(e: impl std::fmt::Display) -> BackendError {
    let msg = format!("{e:#}");
    if msg.contains("Zip") || msg.contains("zip") {
        BackendError::RecursionUnavailable(msg)
    } else {
        BackendError::Proving(msg)
    }
}

/// Decodes a serialized segment as a prover does before proving it, with its size checked. Short final
/// segments (po2 13) included: whatever RISC Zero's executor makes, it proves.
pub fn decode_segment(bytes: &[u8]) -> Result<risc0_zkvm::Segment, BackendError> {
    let segment: risc0_zkvm::Segment =
        bincode::deserialize(bytes).map_err(|e| BackendError::BadSegment(e.to_string()))?;
    check_segment_po2(u32::try_from(segment.po2()).unwrap_or(u32::MAX), MAX_PO2)?;
    Ok(segment)
}

/// Decodes a final receipt file's bytes.
pub fn decode_receipt(bytes: &[u8]) -> Result<Receipt, BackendError> {
    bincode::deserialize(bytes).map_err(|e| BackendError::BadReceipt(e.to_string()))
}

impl ProvingBackend for RiscZeroBackend {
    fn name(&self) -> &'static str {
        "risc0"
    }

    fn image_id(&self, program: &[u8]) -> Result<Digest32, BackendError> {
        let binary = program_binary(program)?;
        let id = risc0_zkvm::compute_image_id(&binary)
            .map_err(|e| BackendError::BadProgram(e.to_string()))?;
        Ok(to_d32(id))
    }

    fn execute_limited(
        &self,
        program: &[u8],
        input: &[u8],
        po2: u8,
        cycle_limit: Option<u64>,
        on_segment: &mut (dyn FnMut(SegmentBlob) -> Result<(), BackendError> + Send),
    ) -> Result<ExecutionSummary, BackendError> {
        check_po2(po2)?;
        let binary = program_binary(program)?;
        let image_id = self.image_id(&binary)?;
        let env = ExecutorEnv::builder()
            .write_slice(input)
            .segment_limit_po2(u32::from(po2))
            .session_limit(cycle_limit)
            .build()
            .map_err(|e| BackendError::Execution(e.to_string()))?;
        let mut exec = ExecutorImpl::from_elf(env, &binary)
            .map_err(|e| BackendError::BadProgram(e.to_string()))?;
        // The callback's own error, kept typed (the executor only passes anyhow errors through).
        let failure: Arc<Mutex<Option<BackendError>>> = Arc::default();
        let mut claims = Vec::new();
        let session = {
            let failure = failure.clone();
            let claims = &mut claims;
            exec.run_with_callback(move |segment| {
                let result = bincode::serialize(&segment)
                    .map_err(|e| BackendError::BadSegment(e.to_string()))
                    .and_then(|bytes| {
                        let claim = expected_claim(&bytes)?;
                        // Fail now, not after proving: every segment must be one the provers can prove.
                        check_segment_po2(u32::from(claim.po2), po2)?;
                        claims.push(claim);
                        on_segment(SegmentBlob { claim, bytes })
                    });
                match result {
                    Ok(()) => Ok(Box::new(NullSegmentRef)),
                    Err(e) => {
                        let msg = e.to_string();
                        *failure.lock().expect("poisoned") = Some(e);
                        Err(anyhow::anyhow!(msg))
                    }
                }
            })
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                if let Some(err) = failure.lock().expect("poisoned").take() {
                    return Err(err);
                }
                let msg = format!("{e:#}");
                if msg.contains("resolve assumption") {
                    // `env::verify` of a receipt the executor was not given.
                    return Err(BackendError::Unsupported(
                        "programs that use composition (`env::verify` of another receipt, an assumption) yet: \
                         Cairn has no way to hand the executor the receipts a program verifies",
                    ));
                }
                if let Some(limit) = cycle_limit.filter(|_| msg.contains("Session limit exceeded"))
                {
                    return Err(BackendError::CycleLimit { limit, detail: msg });
                }
                return Err(
                    if msg.contains("panicked") || msg.contains("Guest") || msg.contains("guest") {
                        BackendError::GuestFailed(msg)
                    } else {
                        BackendError::Execution(msg)
                    },
                );
            }
        };
        if !session.assumptions.is_empty() {
            return Err(BackendError::Unsupported(
                "programs that use composition (assumptions) yet",
            ));
        }
        match session.exit_code {
            ExitCode::Halted(0) => {}
            other => {
                return Err(BackendError::GuestFailed(format!(
                    "guest exited with {other:?}"
                )))
            }
        }
        Ok(ExecutionSummary {
            image_id,
            po2,
            segments: claims.len() as u32,
            user_cycles: session.user_cycles,
            total_cycles: session.total_cycles,
            journal: session.journal.map(|j| j.bytes).unwrap_or_default(),
            exit_code: format!("{:?}", session.exit_code),
            claims,
        })
    }

    fn segment_claim(&self, segment: &[u8]) -> Result<SegmentClaim, BackendError> {
        expected_claim(segment)
    }

    fn prove_segment(&self, segment: &[u8]) -> Result<Vec<u8>, BackendError> {
        let segment = decode_segment(segment)?;
        let receipt = prover()?
            .prove_segment(&VerifierContext::default(), &segment)
            .map_err(|e| BackendError::Proving(format!("{e:#}")))?;
        Ok(encode(&receipt))
    }

    fn verify_segment(&self, receipt: &[u8], expected: &SegmentClaim) -> Result<(), BackendError> {
        let receipt = decode_segment_receipt(receipt)?;
        receipt
            .verify_integrity_with_context(&VerifierContext::default())
            .map_err(|e| BackendError::InvalidProof(e.to_string()))?;
        let actual = to_d32(receipt.claim.digest::<sha::Impl>());
        if actual != expected.claim_digest || receipt.index != expected.index {
            return Err(BackendError::WrongClaim {
                index: expected.index,
                expected: expected.claim_digest,
                actual,
            });
        }
        Ok(())
    }

    fn proof_fingerprint(&self, receipt: &[u8]) -> Result<Digest32, BackendError> {
        seal_fingerprint(receipt)
    }

    fn assemble(
        &self,
        summary: &ExecutionSummary,
        receipts: &[Vec<u8>],
    ) -> Result<Vec<u8>, BackendError> {
        check_segment_receipts(self, summary, receipts)?;
        let segments = receipts
            .iter()
            .map(|bytes| decode_segment_receipt(bytes))
            .collect::<Result<Vec<_>, _>>()?;
        let composite = composite_receipt(&segments)?;
        let receipt = Receipt::new(InnerReceipt::Composite(composite), summary.journal.clone());
        receipt
            .verify(risc0_zkvm::sha::Digest::from(summary.image_id.0))
            .map_err(|e| {
                BackendError::Assembly(format!("assembled receipt does not verify: {e}"))
            })?;
        Ok(encode(&receipt))
    }

    fn verify_receipt(&self, receipt: &[u8], image_id: &Digest32) -> Result<Vec<u8>, BackendError> {
        let receipt = decode_receipt(receipt)?;
        let claimed = receipt.claim().ok().and_then(|c| {
            c.as_value()
                .ok()
                .and_then(|c| c.pre.as_value().ok().map(|s| s.digest::<sha::Impl>()))
        });
        receipt
            .verify(risc0_zkvm::sha::Digest::from(image_id.0))
            .map_err(|e| match claimed {
                Some(pre) if to_d32(pre) != *image_id => BackendError::WrongImage {
                    expected: *image_id,
                    actual: to_d32(pre),
                },
                _ => BackendError::InvalidProof(e.to_string()),
            })?;
        Ok(receipt.journal.bytes)
    }

    fn recursion_available(&self) -> Result<(), BackendError> {
        risc0_circuit_recursion::prove::zkr::get_zkr("join.zkr", 18)
            .map(|_| ())
            .map_err(recursion_error)
    }

    fn lift(&self, segment_receipt: &[u8]) -> Result<Vec<u8>, BackendError> {
        self.recursion_available()?;
        let receipt = decode_segment_receipt(segment_receipt)?;
        let lifted = prover()?.lift(&receipt).map_err(recursion_error)?;
        Ok(encode(&lifted))
    }

    fn join(&self, left: &[u8], right: &[u8]) -> Result<Vec<u8>, BackendError> {
        self.recursion_available()?;
        let (l, r) = (decode_succinct(left)?, decode_succinct(right)?);
        let joined = prover()?.join(&l, &r).map_err(recursion_error)?;
        Ok(encode(&joined))
    }

    fn verify_lifted(&self, receipt: &[u8], expected: &SegmentClaim) -> Result<(), BackendError> {
        let receipt = decode_succinct(receipt)?;
        receipt
            .verify_integrity_with_context(&VerifierContext::default())
            .map_err(|e| BackendError::InvalidProof(e.to_string()))?;
        // A lift keeps the segment's claim: its digest is the one computed at execution time.
        let actual = to_d32(receipt.claim.digest::<sha::Impl>());
        if actual != expected.claim_digest {
            return Err(BackendError::WrongClaim {
                index: expected.index,
                expected: expected.claim_digest,
                actual,
            });
        }
        Ok(())
    }

    fn verify_join(&self, receipt: &[u8], left: &[u8], right: &[u8]) -> Result<(), BackendError> {
        let receipt = decode_succinct(receipt)?;
        let (l, r) = (decode_succinct(left)?, decode_succinct(right)?);
        receipt
            .verify_integrity_with_context(&VerifierContext::default())
            .map_err(|e| BackendError::InvalidProof(e.to_string()))?;
        // What RISC Zero's join program claims: left's pre-state and input, right's post-state, exit code and
        // output.
        let expected = l.claim.join(&r.claim).map_err(|e| {
            BackendError::BadReceipt(format!("a receipt to join has a pruned claim: {e}"))
        })?;
        let (expected, actual) = (
            to_d32(expected.digest::<sha::Impl>()),
            to_d32(receipt.claim.digest::<sha::Impl>()),
        );
        if actual != expected {
            return Err(BackendError::WrongJoin { expected, actual });
        }
        Ok(())
    }

    fn finish_succinct(
        &self,
        summary: &ExecutionSummary,
        root: &[u8],
    ) -> Result<Vec<u8>, BackendError> {
        let root = decode_succinct(root)?;
        let receipt = Receipt::new(InnerReceipt::Succinct(root), summary.journal.clone());
        receipt
            .verify(risc0_zkvm::sha::Digest::from(summary.image_id.0))
            .map_err(|e| {
                BackendError::Assembly(format!("succinct receipt does not verify: {e}"))
            })?;
        Ok(encode(&receipt))
    }
}
