//! Tunable workload for Cairn: iterated SHA-256 (software, so cycles scale with the iteration count).
//!
//! Input (raw stdin bytes): `iterations: u64 LE` followed by any seed bytes (may be empty).
//! Journal: `iterations: u64 LE || digest: [u8; 32]` where `digest = H^iterations(H(seed))`, H = SHA-256.
//! An input shorter than 8 bytes is rejected (the guest panics with a message), so the host sees a clear error.
//! The host-side reference is `cairn_backend::workloads::sha_chain_journal`.
#![no_main]

use risc0_zkvm::guest::env;
use std::io::Read;

risc0_zkvm::guest::entry!(main);

mod sha256;

fn main() {
    let mut input = Vec::new();
    env::stdin().read_to_end(&mut input).expect("reading stdin");
    assert!(
        input.len() >= 8,
        "sha-chain input must start with an 8-byte little-endian iteration count (got {} bytes)",
        input.len()
    );
    let iterations = u64::from_le_bytes(input[..8].try_into().unwrap());
    let mut digest = sha256::digest(&input[8..]);
    for _ in 0..iterations {
        digest = sha256::digest(&digest);
    }
    env::commit_slice(&iterations.to_le_bytes());
    env::commit_slice(&digest);
}
