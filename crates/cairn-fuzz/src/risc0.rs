//! The RISC Zero targets: segments a prover is given, receipts a client is given, final receipts and programs
//! a user gives. Their seeds are real (a run of `sha-chain` at po2 14, proved), made once by
//! `cairn-fuzz make-seeds` and kept in `crates/cairn-fuzz/seeds/risc0/` (proving them takes minutes).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cairn_backend::{Digest32, ProvingBackend, SegmentClaim};
use cairn_risc0::RiscZeroBackend;

/// Where the seeds live.
pub fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/risc0")
}

fn read(name: &str) -> Vec<u8> {
    let path = seed_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; make the RISC Zero seeds with `scripts/cargo.sh run -p cairn-fuzz -- make-seeds`",
            path.display()
        )
    })
}

struct Fixture {
    backend: RiscZeroBackend,
    /// The claim the first segment's proof must carry.
    claim: SegmentClaim,
    /// Its receipt, proved.
    receipt: Vec<u8>,
    image_id: Digest32,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let backend = RiscZeroBackend::new();
        let claim = backend
            .segment_claim(&read("segment-0.bin"))
            .expect("the seed segment decodes");
        let image_id = backend
            .image_id(cairn_guests::SHA_CHAIN.binary)
            .expect("sha-chain has an image id");
        Fixture {
            backend,
            claim,
            receipt: read("receipt-0.bin"),
            image_id,
        }
    })
}

/// A segment as a prover handles it before proving: its claim, then (for sizes a fuzzer can afford to
/// decode) the full decode and size check `prove_segment` starts with.
pub fn segment(data: &[u8]) -> Result<(), String> {
    let fx = fixture();
    let claim = fx.backend.segment_claim(data).map_err(|e| e.to_string())?;
    cairn_risc0::decode_segment(data).map_err(|e| e.to_string())?;
    assert!(claim.po2 <= cairn_backend::MAX_PO2);
    Ok(())
}

/// A delivered segment receipt: verified against the first seed segment's claim, as a client does.
pub fn segment_receipt(data: &[u8]) -> Result<(), String> {
    let fx = fixture();
    let _ = fx.backend.verify_lifted(data, &fx.claim);
    fx.backend
        .verify_segment(data, &fx.claim)
        .map_err(|e| e.to_string())?;
    fx.backend
        .proof_fingerprint(data)
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A delivered join: checked against two receipts to join (the seed receipt twice: offline there are no
/// succinct receipts, so this reaches the join's decoding, not its verification).
pub fn join_receipt(data: &[u8]) -> Result<(), String> {
    let fx = fixture();
    fx.backend
        .verify_join(data, &fx.receipt, &fx.receipt)
        .map_err(|e| e.to_string())
}

/// A final receipt file, verified against `sha-chain`'s image id.
pub fn final_receipt(data: &[u8]) -> Result<(), String> {
    let fx = fixture();
    fx.backend
        .verify_receipt(data, &fx.image_id)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A program's bytes: ELF or RISC Zero binary, to an image id.
pub fn program(data: &[u8]) -> Result<(), String> {
    fixture()
        .backend
        .image_id(data)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The first and the last segment of the seed run.
pub fn segment_seeds() -> Vec<Vec<u8>> {
    vec![read("segment-0.bin"), read("segment-last.bin")]
}

/// The first segment's receipt.
pub fn segment_receipt_seeds() -> Vec<Vec<u8>> {
    vec![read("receipt-0.bin")]
}

/// The seed run's final (composite) receipt.
pub fn final_receipt_seeds() -> Vec<Vec<u8>> {
    vec![read("final.bin")]
}

/// Two bundled programs (RISC Zero binaries) and a user's ELF.
pub fn program_seeds() -> Vec<Vec<u8>> {
    vec![
        cairn_guests::SHA_CHAIN.binary.to_vec(),
        cairn_guests::corpus::HELLO_ONE.binary.to_vec(),
        cairn_guests::corpus::USER_LOOP_ELF.to_vec(),
    ]
}

/// Executes `sha-chain` (no iterations) at po2 14, proves every segment and writes the seeds; returns what
/// it wrote.
pub fn make_seeds(dir: &Path) -> Result<Vec<(String, usize)>, String> {
    let backend = RiscZeroBackend::new();
    let mut segments = Vec::new();
    let input = 0u64.to_le_bytes();
    let summary = backend
        .execute(cairn_guests::SHA_CHAIN.binary, &input, 14, &mut |s| {
            segments.push(s);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    let receipts = segments
        .iter()
        .map(|s| backend.prove_segment(&s.bytes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let last = segments.last().ok_or("no segments")?;
    let final_receipt = backend
        .assemble(&summary, &receipts)
        .map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let files = [
        ("segment-0.bin", &segments[0].bytes),
        ("segment-last.bin", &last.bytes),
        ("receipt-0.bin", &receipts[0]),
        ("final.bin", &final_receipt),
    ];
    let mut wrote = Vec::new();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).map_err(|e| e.to_string())?;
        wrote.push((name.to_string(), bytes.len()));
    }
    Ok(wrote)
}
