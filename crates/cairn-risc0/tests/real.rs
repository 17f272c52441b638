//! Real RISC Zero proofs at po2 14 (~12 s per segment on 2 cores): one run of the corpus program `user-loop`
//! (written as a user would: `env::read` of two u64s) is executed, proved segment by segment and shared by
//! every test below through a fixture. Its last segment is a short po2 13 one, as users' runs often are.

use std::sync::OnceLock;

use cairn_backend::{BackendError, Digest32, ExecutionSummary, ProvingBackend, SegmentBlob};
use cairn_guests::corpus::{user_loop_input, user_loop_journal, USER_LOOP};
use cairn_guests::{SEED_BENCH, SHA_CHAIN};
use cairn_risc0::RiscZeroBackend;

const PO2: u8 = 14;

struct Run {
    summary: ExecutionSummary,
    segments: Vec<SegmentBlob>,
    receipts: Vec<Vec<u8>>,
}

fn execute(backend: &RiscZeroBackend, input: &[u8]) -> (ExecutionSummary, Vec<SegmentBlob>) {
    execute_program(backend, USER_LOOP.binary, input)
}

fn execute_program(
    backend: &RiscZeroBackend,
    program: &[u8],
    input: &[u8],
) -> (ExecutionSummary, Vec<SegmentBlob>) {
    let mut segments = Vec::new();
    let summary = backend
        .execute(program, input, PO2, &mut |s| {
            segments.push(s);
            Ok(())
        })
        .expect("execute");
    (summary, segments)
}

/// The fixture's input: `(1, 1)`, which RISC Zero runs as 4 segments of po2 14 and a short last one of po2 13
/// (the executor sizes a run's last segment to the cycles it holds).
fn fixture_input() -> Vec<u8> {
    user_loop_input(1, 1)
}

/// The shared run: several segments, the last one short, every one proved for real.
fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let backend = RiscZeroBackend::new();
        let input = fixture_input();
        let (summary, segments) = execute(&backend, &input);
        let receipts = segments
            .iter()
            .map(|s| backend.prove_segment(&s.bytes).expect("prove"))
            .collect();
        Run {
            summary,
            segments,
            receipts,
        }
    })
}

/// One segment of a different run of the same program (another job).
fn other_job_receipt() -> &'static (SegmentBlob, Vec<u8>) {
    static OTHER: OnceLock<(SegmentBlob, Vec<u8>)> = OnceLock::new();
    OTHER.get_or_init(|| {
        let backend = RiscZeroBackend::new();
        let (_, segments) = execute(&backend, &user_loop_input(2, 3));
        let seg = segments.into_iter().nth(1).expect("at least two segments");
        let receipt = backend.prove_segment(&seg.bytes).expect("prove");
        (seg, receipt)
    })
}

fn final_receipt() -> &'static Vec<u8> {
    static FINAL: OnceLock<Vec<u8>> = OnceLock::new();
    FINAL.get_or_init(|| {
        RiscZeroBackend::new()
            .assemble(&run().summary, &run().receipts)
            .expect("assemble")
    })
}

#[test]
fn committed_image_ids_match_binaries() {
    let backend = RiscZeroBackend::new();
    for guest in cairn_guests::ALL {
        let id = backend.image_id(guest.binary).unwrap();
        assert_eq!(
            id.to_string(),
            guest.image_id_hex.trim(),
            "{}: committed image id is stale; run scripts/build-guests.sh and commit guests/bin",
            guest.name
        );
    }
}

#[test]
fn proves_several_segments_and_journal_matches_host_reference() {
    let run = run();
    assert!(
        run.summary.segments >= 3,
        "want several segments, got {}",
        run.summary.segments
    );
    assert_eq!(run.summary.journal, user_loop_journal(1, 1));
    let backend = RiscZeroBackend::new();
    for (seg, receipt) in run.segments.iter().zip(&run.receipts) {
        backend
            .verify_segment(receipt, &seg.claim)
            .expect("each segment receipt answers its own claim");
    }
    let journal = backend
        .verify_receipt(final_receipt(), &run.summary.image_id)
        .unwrap();
    assert_eq!(journal, run.summary.journal);
}

/// Issue 7: a run whose last segment is smaller than the po2 asked for (po2 13 at po2 14) proves, verifies
/// segment by segment, and assembles into a receipt RISC Zero's own verifier accepts (next test).
#[test]
fn a_short_final_segment_is_proved_and_verified() {
    let run = run();
    let sizes: Vec<u8> = run.summary.claims.iter().map(|c| c.po2).collect();
    assert_eq!(sizes.last(), Some(&13), "{sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|&p| p == PO2),
        "{sizes:?}"
    );
    let backend = RiscZeroBackend::new();
    let last = run.segments.last().unwrap();
    assert_eq!(backend.segment_claim(&last.bytes).unwrap(), last.claim);
    backend
        .verify_segment(run.receipts.last().unwrap(), &last.claim)
        .expect("the po2 13 segment's receipt answers its claim");
}

#[test]
fn stock_risc0_verifier_accepts_the_final_receipt() {
    // Only RISC Zero's own API: what any RISC Zero user would do with the receipt file.
    let receipt: risc0_zkvm::Receipt = bincode::deserialize(final_receipt()).unwrap();
    let image_id = risc0_zkvm::compute_image_id(USER_LOOP.binary).unwrap();
    receipt.verify(image_id).expect("stock verify");
    assert_eq!(receipt.journal.bytes, run().summary.journal);
    assert!(matches!(
        receipt.inner,
        risc0_zkvm::InnerReceipt::Composite(_)
    ));
}

#[test]
fn wrong_image_id_is_rejected() {
    let backend = RiscZeroBackend::new();
    let other = backend.image_id(SEED_BENCH.binary).unwrap();
    let err = backend.verify_receipt(final_receipt(), &other).unwrap_err();
    assert!(matches!(err, BackendError::WrongImage { .. }), "{err}");
}

#[test]
fn segment_receipt_for_another_segment_is_rejected() {
    let run = run();
    let backend = RiscZeroBackend::new();
    let err = backend
        .verify_segment(&run.receipts[0], &run.segments[1].claim)
        .unwrap_err();
    assert!(
        matches!(err, BackendError::WrongClaim { index: 1, .. }),
        "{err}"
    );
}

#[test]
fn segments_out_of_order_are_rejected() {
    let run = run();
    let mut swapped = run.receipts.clone();
    swapped.swap(0, 1);
    let err = RiscZeroBackend::new()
        .assemble(&run.summary, &swapped)
        .unwrap_err();
    assert!(matches!(err, BackendError::WrongClaim { .. }), "{err}");
}

#[test]
fn segment_receipt_from_another_run_is_rejected() {
    let run = run();
    let (other_seg, other_receipt) = other_job_receipt();
    let backend = RiscZeroBackend::new();
    // It is a valid proof ...
    backend
        .verify_segment(other_receipt, &other_seg.claim)
        .unwrap();
    // ... of the wrong thing, for this job.
    let err = backend
        .verify_segment(other_receipt, &run.segments[1].claim)
        .unwrap_err();
    assert!(matches!(err, BackendError::WrongClaim { .. }), "{err}");
    let mut mixed = run.receipts.clone();
    mixed[1] = other_receipt.clone();
    assert!(backend.assemble(&run.summary, &mixed).is_err());
}

#[test]
fn modified_journal_is_rejected() {
    let mut receipt: risc0_zkvm::Receipt = bincode::deserialize(final_receipt()).unwrap();
    receipt.journal.bytes[0] ^= 1;
    let bytes = bincode::serialize(&receipt).unwrap();
    let err = RiscZeroBackend::new()
        .verify_receipt(&bytes, &run().summary.image_id)
        .unwrap_err();
    assert!(matches!(err, BackendError::InvalidProof(_)), "{err}");
}

/// Issue 12: a copier cannot pass another prover's proof off as its own by re-encoding it. Bytes appended
/// (bincode ignores them) or the claim's output pruned to its digest leave a receipt that still verifies for
/// the same segment, but the proof fingerprint the client's copy check uses is the same; another proof of the
/// same segment has another fingerprint.
#[test]
fn a_re_encoded_copy_of_a_proof_has_the_same_fingerprint() {
    use risc0_zkvm::sha::Digestible;
    use risc0_zkvm::{MaybePruned, SegmentReceipt};
    let backend = RiscZeroBackend::new();
    let (claim, original) = (&run().segments[0].claim, &run().receipts[0]);
    let fingerprint = backend.proof_fingerprint(original).unwrap();

    let mut appended = original.clone();
    appended.extend_from_slice(&[0, 1, 2]);
    let mut pruned: SegmentReceipt = bincode::deserialize(original).unwrap();
    pruned.claim.output = MaybePruned::Pruned(pruned.claim.output.digest());
    let pruned = bincode::serialize(&pruned).unwrap();
    for copy in [appended, pruned] {
        assert_ne!(&copy, original);
        backend
            .verify_segment(&copy, claim)
            .expect("the re-encoded copy still verifies");
        assert_eq!(backend.proof_fingerprint(&copy).unwrap(), fingerprint);
    }
    let again = backend.prove_segment(&run().segments[0].bytes).unwrap();
    backend.verify_segment(&again, claim).unwrap();
    assert_ne!(backend.proof_fingerprint(&again).unwrap(), fingerprint);
}

#[test]
fn corrupted_and_truncated_files_are_rejected() {
    let backend = RiscZeroBackend::new();
    let image_id = run().summary.image_id;
    let good = final_receipt();
    // Flip bytes across the file: every variant must be refused without a panic.
    for pos in [good.len() / 3, good.len() / 2, good.len() - 40] {
        let mut bad = good.clone();
        bad[pos] ^= 0x5a;
        assert!(
            backend.verify_receipt(&bad, &image_id).is_err(),
            "corruption at byte {pos} accepted"
        );
    }
    for len in [0, 10, good.len() / 2, good.len() - 1] {
        let err = backend.verify_receipt(&good[..len], &image_id).unwrap_err();
        assert!(
            matches!(err, BackendError::BadReceipt(_)),
            "truncated to {len}: {err}"
        );
    }
    let mut bad_segment = run().receipts[0].clone();
    let mid = bad_segment.len() / 2;
    bad_segment[mid] ^= 1;
    assert!(backend
        .verify_segment(&bad_segment, &run().segments[0].claim)
        .is_err());
}

#[test]
fn recursion_absent_is_reported_plainly_or_works() {
    let backend = RiscZeroBackend::new();
    match backend.recursion_available() {
        Err(err) => {
            assert!(matches!(err, BackendError::RecursionUnavailable(_)));
            assert!(err.to_string().contains("composite receipt"), "{err}");
            let lift = backend.lift(&run().receipts[0]).unwrap_err();
            assert!(
                matches!(lift, BackendError::RecursionUnavailable(_)),
                "{lift}"
            );
        }
        Ok(()) => {
            // Networked build: the recursion programs are in. Lifts and a join verify against what they
            // were asked to prove, and a lift of one segment does not pass for another (~3 x 50 s here).
            let claims = &run().summary.claims;
            let l0 = backend.lift(&run().receipts[0]).expect("lift");
            let l1 = backend.lift(&run().receipts[1]).expect("lift");
            backend
                .verify_lifted(&l0, &claims[0])
                .expect("lift 0 verifies");
            assert!(matches!(
                backend.verify_lifted(&l1, &claims[0]),
                Err(BackendError::WrongClaim { .. })
            ));
            let j = backend.join(&l0, &l1).expect("join");
            backend.verify_join(&j, &l0, &l1).expect("join verifies");
            assert!(matches!(
                backend.verify_join(&l0, &l0, &l1),
                Err(BackendError::WrongJoin { .. })
            ));
        }
    }
    // Wherever recursion stands, what is not a succinct receipt is refused with a plain error.
    for bad in [&b"garbage"[..], &run().receipts[0][..]] {
        assert!(backend
            .verify_lifted(bad, &run().summary.claims[0])
            .is_err());
        assert!(backend.verify_join(bad, bad, bad).is_err());
    }
}

#[test]
fn bad_programs_and_inputs_get_clear_errors() {
    let backend = RiscZeroBackend::new();
    let mut sink = |_: SegmentBlob| Ok(());
    let not_elf = backend
        .execute(b"hello world", &[], PO2, &mut sink)
        .unwrap_err();
    assert!(matches!(not_elf, BackendError::BadProgram(_)), "{not_elf}");
    // An x86-64 ELF: this test binary's own executable.
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let x86 = backend.execute(&exe, &[], PO2, &mut sink).unwrap_err();
    assert!(x86.to_string().contains("not 32-bit RISC-V"), "{x86}");
    let po2 = backend
        .execute(SHA_CHAIN.binary, &[0; 8], 12, &mut sink)
        .unwrap_err();
    assert!(matches!(po2, BackendError::BadPo2(12)), "{po2}");
    // sha-chain rejects an input shorter than 8 bytes.
    let guest = backend
        .execute(SHA_CHAIN.binary, &[1, 2], PO2, &mut sink)
        .unwrap_err();
    assert!(matches!(guest, BackendError::GuestFailed(_)), "{guest}");
    assert!(matches!(
        backend.prove_segment(b"junk"),
        Err(BackendError::BadSegment(_))
    ));
    let _ = Digest32::default();
}

#[test]
fn re_execution_keeps_the_segment_structure_but_not_the_claims() {
    // The guest runtime draws host randomness, so two executions are different valid traces: same segments
    // and cycle counts, different state digests. This is why a resumed client replays its recorded segments
    // (cairn-node's job database) instead of executing again.
    let backend = RiscZeroBackend::new();
    let input = cairn_guests::sha_chain_input(1, b"determinism");
    let (a, sa) = execute_program(&backend, SHA_CHAIN.binary, &input);
    let (b, sb) = execute_program(&backend, SHA_CHAIN.binary, &input);
    assert_eq!(a.segments, b.segments);
    assert_eq!(a.journal, b.journal);
    let cycles = |s: &[SegmentBlob]| {
        s.iter()
            .map(|s| (s.claim.index, s.claim.po2, s.claim.user_cycles))
            .collect::<Vec<_>>()
    };
    assert_eq!(cycles(&sa), cycles(&sb));
    // ... but not the claims: every segment's claim (its pre- and post-state digests) differs between the two
    // runs, so a receipt proved for one execution's segment answers nothing in the other's.
    assert_eq!(sa.len(), sb.len());
    for (x, y) in sa.iter().zip(&sb) {
        assert_ne!(
            x.claim.claim_digest, y.claim.claim_digest,
            "segment {}: two executions made the same claim",
            x.claim.index
        );
    }
    assert_ne!(a.claims, b.claims);
}
