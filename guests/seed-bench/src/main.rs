//! A program in the spirit of the Wholesum seed's benchmark: work inflated with generated data.
//!
//! Input (raw stdin bytes): empty for the default size, or `words: u32 LE` (how many u32 words to generate).
//! The guest fills a buffer with xorshift32 output, sorts it, and hashes the sorted buffer with SHA-256.
//! Journal: `words: u32 LE || digest: [u8; 32]`. The host-side reference is
//! `cairn_backend::workloads::seed_bench_journal`.
#![no_main]

use risc0_zkvm::guest::env;
use std::io::Read;

risc0_zkvm::guest::entry!(main);

#[path = "../../sha-chain/src/sha256.rs"]
mod sha256;

/// The default run is 65.59 M user cycles (measured), the size of the seed's benchmark program (65.6 M).
const DEFAULT_WORDS: u32 = 131_300;

fn main() {
    let mut input = Vec::new();
    env::stdin().read_to_end(&mut input).expect("reading stdin");
    let words = match input.len() {
        0 => DEFAULT_WORDS,
        4 => u32::from_le_bytes(input[..4].try_into().unwrap()),
        n => panic!("seed-bench input must be empty or a 4-byte little-endian word count (got {n} bytes)"),
    };
    let mut state: u32 = 0x9E37_79B9;
    let mut data: Vec<u32> = (0..words)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        })
        .collect();
    data.sort_unstable();
    let bytes: Vec<u8> = data.iter().flat_map(|w| w.to_le_bytes()).collect();
    let digest = sha256::digest(&bytes);
    env::commit_slice(&words.to_le_bytes());
    env::commit_slice(&digest);
}
