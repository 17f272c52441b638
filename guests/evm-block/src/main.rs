//! An EVM block as a RISC Zero program.
//!
//! Input (raw stdin bytes): a `cairn_evm::BlockInput` (layout in docs/EVM.md). The guest runs
//! `cairn_evm::execute` (revm, Prague) and commits the 148-byte `cairn_evm::Journal`; an invalid block panics
//! with the reason, so there is no proof of it. Per stage it writes `cairn-evm phase NAME cycles N` to stderr
//! (what `cairn bench evm` reads). SHA-256 is RISC Zero's accelerated one; keccak is software.
#![no_main]

use risc0_zkvm::guest::env;
use risc0_zkvm::sha::{Impl, Sha256};
use std::io::{Read, Write};

risc0_zkvm::guest::entry!(main);

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Impl::hash_bytes(bytes).as_bytes().try_into().expect("a SHA-256 digest is 32 bytes")
}

fn main() {
    let mut input = Vec::new();
    env::stdin().read_to_end(&mut input).expect("reading stdin");
    let mut last = env::cycle_count();
    let executed = cairn_evm::execute(&input, sha256, &mut |phase| {
        let now = env::cycle_count();
        let _ = writeln!(env::stderr(), "cairn-evm phase {} cycles {}", phase.name(), now - last);
        last = now;
    })
    .unwrap_or_else(|e| panic!("{e}"));
    env::commit_slice(&executed.journal.to_bytes());
}
