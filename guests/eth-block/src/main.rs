//! An Ethereum block's stateless validation as a RISC Zero program.
//!
//! Input (raw stdin bytes): a `cairn_evm::StatelessInput` (the block's RLP, its `debug_executionWitness`,
//! its chain; layout in docs/EVM.md). The guest runs `cairn_evm::validate` (the header against its parent,
//! the parent's state trie from the witness, senders from their signatures, alloy-evm's block executor with
//! the fork's system calls, receipts and the post-state root) and commits the 188-byte `cairn_evm::Journal`;
//! an invalid block panics with the reason, so there is no proof of it. Per stage it writes
//! `cairn-evm stage NAME cycles N` and `cairn-evm tx I cycles N` to stderr (what `cairn bench evm` reads). SHA-256 is RISC Zero's
//! accelerated one, secp256k1 recovery runs on the bigint2 accelerator (`secp256k1.rs`; the `k256` feature
//! builds a variant with pure-Rust k256 instead, for `cairn bench evm --compare`); keccak is software, the
//! fastest permutation measured here (`keccak.rs`).
#![no_main]

mod keccak;
#[cfg_attr(feature = "k256", allow(dead_code))]
mod secp256k1;

use risc0_zkvm::guest::env;
use risc0_zkvm::sha::{Impl, Sha256};
use std::io::{Read, Write};

risc0_zkvm::guest::entry!(main);

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Impl::hash_bytes(bytes).as_bytes().try_into().expect("a SHA-256 digest is 32 bytes")
}

fn main() {
    #[cfg(not(feature = "k256"))]
    {
        let _ = cairn_evm::alloy_consensus::crypto::backend::install_default_provider(std::sync::Arc::new(
            secp256k1::Accelerated,
        ));
        let _ = cairn_evm::revm::precompile::install_crypto(secp256k1::Accelerated);
    }
    let mut input = Vec::new();
    env::stdin().read_to_end(&mut input).expect("reading stdin");
    let mut last = env::cycle_count();
    let mut tx_start = last;
    let executed = cairn_evm::validate(&input, sha256, &mut |mark| {
        let now = env::cycle_count();
        match mark {
            cairn_evm::Mark::Stage(stage) => {
                let _ = writeln!(env::stderr(), "cairn-evm stage {} cycles {}", stage.name(), now - last);
                last = now;
                tx_start = now;
            }
            cairn_evm::Mark::SystemCalls => {
                let _ = writeln!(env::stderr(), "cairn-evm system-calls cycles {}", now - tx_start);
                tx_start = now;
            }
            cairn_evm::Mark::Transaction(index) => {
                let _ = writeln!(env::stderr(), "cairn-evm tx {index} cycles {}", now - tx_start);
                tx_start = now;
            }
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    env::commit_slice(&executed.journal.to_bytes());
}
