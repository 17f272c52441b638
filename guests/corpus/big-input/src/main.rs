//! Reads all of stdin (megabytes) and hashes it with RISC Zero's SHA-256 accelerator.
//! Journal: `len: u64 LE || sha256(input): [u8; 32]`.
#![no_main]

use std::io::Read;

use risc0_zkvm::guest::env;
use risc0_zkvm::sha::{Impl, Sha256};

risc0_zkvm::guest::entry!(main);

fn main() {
    let mut input = Vec::new();
    env::stdin().read_to_end(&mut input).expect("reading stdin");
    let digest = Impl::hash_bytes(&input);
    env::commit_slice(&(input.len() as u64).to_le_bytes());
    env::commit_slice(digest.as_bytes());
}
