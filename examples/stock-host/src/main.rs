//! An unchanged RISC Zero host: proves the bundled `user-loop` guest with `default_prover()` and verifies the
//! receipt against the guest's image id. Nothing here knows about Cairn: with `BONSAI_API_URL` and
//! `BONSAI_API_KEY` set, risc0-zkvm sends the work to that Bonsai-compatible server (`cairn gateway`).
//!
//! Usage: `stock-host [N K]` (defaults 1 1: five segments at po2 14).

use risc0_zkvm::{compute_image_id, default_prover, ExecutorEnv};

/// The guest, as `scripts/build-guests.sh` built it (a RISC Zero program binary: user ELF + kernel).
const GUEST: &[u8] = include_bytes!("../../../guests/bin/user-loop.bin");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let (n, k) = match args.as_slice() {
        [] => (1, 1),
        [n, k] => (*n, *k),
        _ => return Err("usage: stock-host [N K]".into()),
    };
    let image_id = compute_image_id(GUEST)?;
    let env = ExecutorEnv::builder().write(&(n, k))?.build()?;
    let info = default_prover().prove(env, GUEST)?;
    info.receipt.verify(image_id)?;
    let (n2, k2, x): (u64, u64, u64) = info.receipt.journal.decode()?;
    assert_eq!((n2, k2), (n, k), "the journal answers another input");
    println!(
        "verified: image {image_id} n={n} k={k} x={x} segments={} cycles={}",
        info.stats.segments, info.stats.user_cycles
    );
    Ok(())
}
