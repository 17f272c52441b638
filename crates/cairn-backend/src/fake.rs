//! `FakeBackend`: a fast, deterministic stand-in for RISC Zero, for scheduler, network and simulator tests.
//!
//! It is named fake everywhere it appears and never produces anything a RISC Zero verifier accepts. What it
//! keeps from the real thing is the shape that matters to Cairn:
//! - a program is `FAKE_PROGRAM_MAGIC` followed by a name; its image id is the SHA-256 of the bytes;
//! - the input's first 8 bytes (u64 LE) are the guest's cycle count; shorter input is "rejected by the guest";
//!   the rest rides in every segment, as a real segment carries the pages of memory holding its input;
//! - execution yields `ceil(cycles / usable)` segments whose pre/post states chain, bound to this program and
//!   input, each with a claim digest computed before proving; like RISC Zero's, the last segment is only as
//!   large as the cycles it holds (down to po2 13), so short final segments reach every path;
//! - a "receipt" carries the claim digest and a seal derived from it, so garbage, a receipt for another
//!   segment, job or program, or a tampered one fails [`ProvingBackend::verify_segment`] exactly as a real
//!   one would (the seal is not a proof: anyone can compute it, which is fine for a test double);
//! - proving sleeps for the cost model's time at that po2 times `time_scale`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    check_po2, check_segment_po2, check_segment_receipts, cost, BackendError, Digest32,
    ExecutionSummary, ProvingBackend, SegmentBlob, SegmentClaim, MIN_SEGMENT_PO2,
};

/// Every fake program starts with these bytes.
pub const FAKE_PROGRAM_MAGIC: &[u8] = b"cairn-fake-program:";

/// The fake backend. See the module docs.
#[derive(Debug, Clone)]
pub struct FakeBackend {
    /// Multiplies the cost model's proving times (0.0 = instant, 1.0 = as slow as the measured machine).
    pub time_scale: f64,
    /// Whether lift/join are offered.
    pub recursion: bool,
}

impl FakeBackend {
    pub fn new(time_scale: f64) -> Self {
        Self {
            time_scale,
            recursion: true,
        }
    }

    /// An input ending with this makes the fake executor panic (test support for panics in execution).
    pub const PANIC_EXECUTING: &'static [u8] = FAKE_PANIC_EXECUTING;

    /// A fake program with the given name.
    pub fn program(name: &str) -> Vec<u8> {
        [FAKE_PROGRAM_MAGIC, name.as_bytes()].concat()
    }

    /// A fake input asking for `cycles` guest cycles.
    pub fn input(cycles: u64, extra: &[u8]) -> Vec<u8> {
        [&cycles.to_le_bytes()[..], extra].concat()
    }

    fn sleep(&self, secs: f64) {
        if self.time_scale > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(secs * self.time_scale));
        }
    }
}

const FAKE_PANIC_EXECUTING: &[u8] = b"cairn-fake:panic-executing";

#[derive(Serialize, Deserialize)]
struct FakeSegment {
    run: Digest32,
    index: u32,
    po2: u8,
    user_cycles: u64,
    last: bool,
    journal: Vec<u8>,
    /// The input after its cycle count, carried by every segment as a real segment carries the memory pages
    /// holding its input: a large input makes large segment blobs (tests of transfers).
    pages: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct FakeSegmentReceipt {
    index: u32,
    claim: Digest32,
    seal: Digest32,
    /// Like RISC Zero's randomized proofs, two honest proofs of one segment differ in their bytes.
    nonce: u64,
}

fn nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32) ^ u64::from(std::process::id())
}

#[derive(Serialize, Deserialize)]
struct FakeSuccinct {
    first: u32,
    claims: Vec<Digest32>,
    seal: Digest32,
    /// Randomized like the segment receipts: two honest lifts or joins of the same inputs differ in bytes.
    nonce: u64,
}

#[derive(Serialize, Deserialize)]
struct FakeReceipt {
    image_id: Digest32,
    journal: Vec<u8>,
    claims: Vec<Digest32>,
    seal: Digest32,
}

fn h(parts: &[&[u8]]) -> Digest32 {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for p in parts {
        hasher.update((p.len() as u64).to_le_bytes());
        hasher.update(p);
    }
    Digest32(hasher.finalize().into())
}

impl FakeSegment {
    fn state(&self, i: u32) -> Digest32 {
        h(&[b"state", &self.run.0, &i.to_le_bytes()])
    }

    fn claim(&self) -> Digest32 {
        let journal = if self.last {
            h(&[b"journal", &self.journal])
        } else {
            Digest32::default()
        };
        h(&[
            b"claim",
            &self.state(self.index).0,
            &self.state(self.index + 1).0,
            &[u8::from(self.last)],
            &journal.0,
        ])
    }
}

fn seal_of(kind: &[u8], claims: &[Digest32]) -> Digest32 {
    let flat: Vec<u8> = claims.iter().flat_map(|c| c.0).collect();
    h(&[b"cairn-fake-seal", kind, &flat])
}

fn decode<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    err: fn(String) -> BackendError,
) -> Result<T, BackendError> {
    bincode::deserialize(bytes).map_err(|e| err(e.to_string()))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("in-memory serialization cannot fail")
}

impl ProvingBackend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn image_id(&self, program: &[u8]) -> Result<Digest32, BackendError> {
        if !program.starts_with(FAKE_PROGRAM_MAGIC) {
            return Err(BackendError::BadProgram(
                "the fake backend only runs fake programs".into(),
            ));
        }
        Ok(Digest32::sha256(program))
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
        let image_id = self.image_id(program)?;
        // Test support: an input that makes the executor panic, as a bug on hostile input would.
        if input.ends_with(FAKE_PANIC_EXECUTING) {
            panic!("the fake executor was asked to panic");
        }
        let cycles = input
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| {
                BackendError::GuestFailed("fake input must start with a u64 cycle count".into())
            })?;
        let size = 1u64 << po2;
        // Paging and padding take a share of each segment, larger for small segments (as in the seed's Table 2).
        let usable = size - (size / 8).max(2048);
        let segments = cycles.div_ceil(usable).max(1) as u32;
        let run = h(&[b"run", &image_id.0, input]);
        let journal = h(&[b"output", input]).0.to_vec();
        let mut claims = Vec::with_capacity(segments as usize);
        let mut total_cycles = 0;
        for index in 0..segments {
            let user_cycles = cycles.saturating_sub(u64::from(index) * usable).min(usable);
            let last = index + 1 == segments;
            // RISC Zero sizes the last segment to its cycles plus its fixed overhead (~4 K cycles).
            let seg_po2 = if last {
                let needed = (user_cycles + 4_200).next_power_of_two().trailing_zeros() as u8;
                needed.clamp(MIN_SEGMENT_PO2, po2)
            } else {
                po2
            };
            total_cycles += 1u64 << seg_po2;
            if let Some(limit) = cycle_limit.filter(|l| total_cycles > *l) {
                return Err(BackendError::CycleLimit {
                    limit,
                    detail: format!("{total_cycles} cycles after segment {index}"),
                });
            }
            let seg = FakeSegment {
                run,
                index,
                po2: seg_po2,
                user_cycles,
                last,
                journal: journal.clone(),
                pages: input[8..].to_vec(),
            };
            let claim = SegmentClaim {
                index,
                po2: seg_po2,
                user_cycles,
                claim_digest: seg.claim(),
            };
            claims.push(claim);
            on_segment(SegmentBlob {
                claim,
                bytes: encode(&seg),
            })?;
        }
        Ok(ExecutionSummary {
            image_id,
            po2,
            segments,
            user_cycles: cycles,
            total_cycles,
            journal,
            exit_code: "Halted(0)".into(),
            claims,
        })
    }

    fn segment_claim(&self, segment: &[u8]) -> Result<SegmentClaim, BackendError> {
        let seg: FakeSegment = decode(segment, BackendError::BadSegment)?;
        check_segment_po2(u32::from(seg.po2), crate::MAX_PO2)?;
        Ok(SegmentClaim {
            index: seg.index,
            po2: seg.po2,
            user_cycles: seg.user_cycles,
            claim_digest: seg.claim(),
        })
    }

    fn prove_segment(&self, segment: &[u8]) -> Result<Vec<u8>, BackendError> {
        let seg: FakeSegment = decode(segment, BackendError::BadSegment)?;
        check_segment_po2(u32::from(seg.po2), crate::MAX_PO2)?;
        self.sleep(cost::segment_cost(seg.po2).prove_secs);
        let claim = seg.claim();
        Ok(encode(&FakeSegmentReceipt {
            index: seg.index,
            claim,
            seal: seal_of(b"segment", &[claim]),
            nonce: nonce(),
        }))
    }

    fn verify_segment(&self, receipt: &[u8], expected: &SegmentClaim) -> Result<(), BackendError> {
        let r: FakeSegmentReceipt = decode(receipt, BackendError::BadReceipt)?;
        if r.seal != seal_of(b"segment", &[r.claim]) {
            return Err(BackendError::InvalidProof(
                "fake seal does not match its claim".into(),
            ));
        }
        if r.claim != expected.claim_digest || r.index != expected.index {
            return Err(BackendError::WrongClaim {
                index: expected.index,
                expected: expected.claim_digest,
                actual: r.claim,
            });
        }
        Ok(())
    }

    fn assemble(
        &self,
        summary: &ExecutionSummary,
        receipts: &[Vec<u8>],
    ) -> Result<Vec<u8>, BackendError> {
        check_segment_receipts(self, summary, receipts)?;
        let claims: Vec<Digest32> = summary.claims.iter().map(|c| c.claim_digest).collect();
        Ok(encode(&FakeReceipt {
            image_id: summary.image_id,
            journal: summary.journal.clone(),
            seal: final_seal(&summary.image_id, &summary.journal, &claims),
            claims,
        }))
    }

    fn verify_receipt(&self, receipt: &[u8], image_id: &Digest32) -> Result<Vec<u8>, BackendError> {
        let r: FakeReceipt = decode(receipt, BackendError::BadReceipt)?;
        if r.seal != final_seal(&r.image_id, &r.journal, &r.claims) {
            return Err(BackendError::InvalidProof(
                "fake seal does not match the receipt".into(),
            ));
        }
        if r.image_id != *image_id {
            return Err(BackendError::WrongImage {
                expected: *image_id,
                actual: r.image_id,
            });
        }
        Ok(r.journal)
    }

    fn recursion_available(&self) -> Result<(), BackendError> {
        if self.recursion {
            Ok(())
        } else {
            Err(BackendError::RecursionUnavailable(
                "fake backend configured without recursion".into(),
            ))
        }
    }

    fn lift(&self, segment_receipt: &[u8]) -> Result<Vec<u8>, BackendError> {
        self.recursion_available()?;
        let r: FakeSegmentReceipt = decode(segment_receipt, BackendError::BadReceipt)?;
        if r.seal != seal_of(b"segment", &[r.claim]) {
            return Err(BackendError::InvalidProof(
                "fake seal does not match its claim".into(),
            ));
        }
        self.sleep(cost::RECURSION_SECS);
        Ok(encode(&FakeSuccinct {
            first: r.index,
            claims: vec![r.claim],
            seal: seal_of(b"succinct", &[r.claim]),
            nonce: nonce(),
        }))
    }

    fn join(&self, left: &[u8], right: &[u8]) -> Result<Vec<u8>, BackendError> {
        self.recursion_available()?;
        let l = decode_succinct(left)?;
        let r = decode_succinct(right)?;
        if l.first + l.claims.len() as u32 != r.first {
            return Err(BackendError::Proving(format!(
                "cannot join segments {}..{} with {}..: not consecutive",
                l.first,
                l.first + l.claims.len() as u32,
                r.first
            )));
        }
        self.sleep(cost::RECURSION_SECS);
        let claims = [l.claims, r.claims].concat();
        Ok(encode(&FakeSuccinct {
            first: l.first,
            seal: seal_of(b"succinct", &claims),
            claims,
            nonce: nonce(),
        }))
    }

    fn verify_lifted(&self, receipt: &[u8], expected: &SegmentClaim) -> Result<(), BackendError> {
        let r = decode_succinct(receipt)?;
        if r.first != expected.index || r.claims != [expected.claim_digest] {
            return Err(BackendError::WrongClaim {
                index: expected.index,
                expected: expected.claim_digest,
                actual: claims_digest(&r.claims),
            });
        }
        Ok(())
    }

    fn verify_join(&self, receipt: &[u8], left: &[u8], right: &[u8]) -> Result<(), BackendError> {
        let r = decode_succinct(receipt)?;
        let (l, rt) = (decode_succinct(left)?, decode_succinct(right)?);
        let claims = [l.claims, rt.claims].concat();
        if r.first != l.first || r.claims != claims {
            return Err(BackendError::WrongJoin {
                expected: claims_digest(&claims),
                actual: claims_digest(&r.claims),
            });
        }
        Ok(())
    }

    fn finish_succinct(
        &self,
        summary: &ExecutionSummary,
        root: &[u8],
    ) -> Result<Vec<u8>, BackendError> {
        let root = decode_succinct(root)?;
        let expected: Vec<Digest32> = summary.claims.iter().map(|c| c.claim_digest).collect();
        if root.first != 0 || root.claims != expected {
            return Err(BackendError::Assembly(
                "root receipt does not cover exactly this job's segments".into(),
            ));
        }
        Ok(encode(&FakeReceipt {
            image_id: summary.image_id,
            journal: summary.journal.clone(),
            seal: final_seal(&summary.image_id, &summary.journal, &root.claims),
            claims: root.claims,
        }))
    }
}

fn decode_succinct(bytes: &[u8]) -> Result<FakeSuccinct, BackendError> {
    let s: FakeSuccinct = decode(bytes, BackendError::BadReceipt)?;
    if s.seal != seal_of(b"succinct", &s.claims) || s.claims.is_empty() {
        return Err(BackendError::InvalidProof(
            "fake succinct seal does not match its claims".into(),
        ));
    }
    Ok(s)
}

/// One digest for a list of claims (for messages).
fn claims_digest(claims: &[Digest32]) -> Digest32 {
    let flat: Vec<u8> = claims.iter().flat_map(|c| c.0).collect();
    Digest32::sha256(&flat)
}

fn final_seal(image_id: &Digest32, journal: &[u8], claims: &[Digest32]) -> Digest32 {
    let flat: Vec<u8> = claims.iter().flat_map(|c| c.0).collect();
    h(&[b"cairn-fake-final", &image_id.0, journal, &flat])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(backend: &FakeBackend, input: &[u8]) -> (ExecutionSummary, Vec<SegmentBlob>) {
        let mut blobs = Vec::new();
        let summary = backend
            .execute(&FakeBackend::program("t"), input, 14, &mut |b| {
                blobs.push(b);
                Ok(())
            })
            .unwrap();
        (summary, blobs)
    }

    #[test]
    fn prove_verify_assemble_round_trip() {
        let b = FakeBackend::new(0.0);
        let (summary, blobs) = run(&b, &FakeBackend::input(100_000, b"x"));
        assert_eq!(summary.segments as usize, blobs.len());
        assert!(blobs.len() > 5);
        let receipts: Vec<_> = blobs
            .iter()
            .map(|s| b.prove_segment(&s.bytes).unwrap())
            .collect();
        for (r, s) in receipts.iter().zip(&blobs) {
            b.verify_segment(r, &s.claim).unwrap();
        }
        let fin = b.assemble(&summary, &receipts).unwrap();
        assert_eq!(
            b.verify_receipt(&fin, &summary.image_id).unwrap(),
            summary.journal
        );
        let other = Digest32::sha256(b"other");
        assert!(matches!(
            b.verify_receipt(&fin, &other),
            Err(BackendError::WrongImage { .. })
        ));
    }

    #[test]
    fn cheats_fail() {
        let b = FakeBackend::new(0.0);
        let (_, blobs) = run(&b, &FakeBackend::input(100_000, b"x"));
        let (_, other_job) = run(&b, &FakeBackend::input(100_000, b"y"));
        // Two honest proofs of one segment differ in their bytes, and both verify.
        let (p1, p2) = (
            b.prove_segment(&blobs[0].bytes).unwrap(),
            b.prove_segment(&blobs[0].bytes).unwrap(),
        );
        assert_ne!(p1, p2);
        b.verify_segment(&p1, &blobs[0].claim).unwrap();
        b.verify_segment(&p2, &blobs[0].claim).unwrap();
        let r1 = b.prove_segment(&blobs[1].bytes).unwrap();
        // A valid receipt for another segment of the same job.
        assert!(matches!(
            b.verify_segment(&r1, &blobs[2].claim),
            Err(BackendError::WrongClaim { .. })
        ));
        // A valid receipt of the same segment index from another job.
        let o1 = b.prove_segment(&other_job[1].bytes).unwrap();
        assert!(matches!(
            b.verify_segment(&o1, &blobs[1].claim),
            Err(BackendError::WrongClaim { .. })
        ));
        // Garbage and a tampered seal.
        assert!(matches!(
            b.verify_segment(b"garbage", &blobs[1].claim),
            Err(BackendError::BadReceipt(_))
        ));
        let mut tampered = r1.clone();
        tampered[40] ^= 1; // inside the seal (after the index and the claim)
        assert!(matches!(
            b.verify_segment(&tampered, &blobs[1].claim),
            Err(BackendError::InvalidProof(_))
        ));
    }

    #[test]
    fn join_tree_matches_composite_claims() {
        let b = FakeBackend::new(0.0);
        let (summary, blobs) = run(&b, &FakeBackend::input(60_000, b""));
        let lifted: Vec<_> = blobs
            .iter()
            .map(|s| b.lift(&b.prove_segment(&s.bytes).unwrap()).unwrap())
            .collect();
        let mut acc = lifted[0].clone();
        for l in &lifted[1..] {
            acc = b.join(&acc, l).unwrap();
        }
        let fin = b.finish_succinct(&summary, &acc).unwrap();
        b.verify_receipt(&fin, &summary.image_id).unwrap();
        if lifted.len() > 2 {
            assert!(
                b.join(&lifted[0], &lifted[2]).is_err(),
                "non-consecutive join must fail"
            );
        }
    }

    #[test]
    fn lifted_and_joined_receipts_are_checked_against_what_was_asked() {
        let b = FakeBackend::new(0.0);
        let (summary, blobs) = run(&b, &FakeBackend::input(60_000, b""));
        assert!(blobs.len() >= 3);
        let lifted: Vec<_> = blobs
            .iter()
            .map(|s| b.lift(&b.prove_segment(&s.bytes).unwrap()).unwrap())
            .collect();
        b.verify_lifted(&lifted[1], &summary.claims[1]).unwrap();
        // A valid lift of another segment.
        assert!(matches!(
            b.verify_lifted(&lifted[2], &summary.claims[1]),
            Err(BackendError::WrongClaim { index: 1, .. })
        ));
        // A segment receipt where a lifted one is due.
        assert!(b
            .verify_lifted(
                &b.prove_segment(&blobs[1].bytes).unwrap(),
                &summary.claims[1]
            )
            .is_err());
        let j01 = b.join(&lifted[0], &lifted[1]).unwrap();
        b.verify_join(&j01, &lifted[0], &lifted[1]).unwrap();
        // A valid join, of other ranges.
        let j12 = b.join(&lifted[1], &lifted[2]).unwrap();
        assert!(matches!(
            b.verify_join(&j12, &lifted[0], &lifted[1]),
            Err(BackendError::WrongJoin { .. })
        ));
        // A lifted leaf handed in as the join.
        assert!(b.verify_join(&lifted[0], &lifted[0], &lifted[1]).is_err());
    }

    #[test]
    fn bad_inputs() {
        let b = FakeBackend::new(0.0);
        let mut sink = |_: SegmentBlob| Ok(());
        assert!(matches!(
            b.execute(b"\x7fELF", &[0; 8], 14, &mut sink),
            Err(BackendError::BadProgram(_))
        ));
        assert!(matches!(
            b.execute(&FakeBackend::program("p"), &[1], 14, &mut sink),
            Err(BackendError::GuestFailed(_))
        ));
        assert!(matches!(
            b.execute(&FakeBackend::program("p"), &[0; 8], 13, &mut sink),
            Err(BackendError::BadPo2(13))
        ));
    }

    #[test]
    fn a_short_final_segment_is_produced_proved_and_checked() {
        let b = FakeBackend::new(0.0);
        // 2.5 segments' worth of cycles: the last segment is only as large as it needs to be.
        let (summary, blobs) = run(&b, &FakeBackend::input(30_000, b"short"));
        let sizes: Vec<u8> = blobs.iter().map(|s| s.claim.po2).collect();
        assert_eq!(sizes, vec![14, 14, 13]);
        assert_eq!(summary.total_cycles, (1 << 14) * 2 + (1 << 13));
        for blob in &blobs {
            assert_eq!(b.segment_claim(&blob.bytes).unwrap(), blob.claim);
            let receipt = b.prove_segment(&blob.bytes).unwrap();
            b.verify_segment(&receipt, &blob.claim).unwrap();
        }
        // Bytes that are not a segment are refused before any proving.
        assert!(matches!(
            b.segment_claim(b"junk"),
            Err(BackendError::BadSegment(_))
        ));
    }
}
