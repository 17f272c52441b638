//! Ethereum blocks as RISC Zero programs.
//!
//! The `eth-block` guest (`guests/eth-block`) reads a [`StatelessInput`] (a block as Ethereum encodes it,
//! its execution witness as `debug_executionWitness` returns it, and its chain), runs [`validate`] and
//! commits the 188-byte [`Journal`]: *the block with hash H, applied to the state of its parent (state root
//! S), is valid and gives state root S'*. The host runs the very same function natively to know the journal
//! a proof must carry. With the `host` feature, [`import`] builds inputs from JSON-RPC blocks and witnesses
//! and from Ethereum's BlockchainTests ([`tests`]); with `gen`, [`gen`] builds synthetic blocks (ETH
//! transfers, ERC-20 transfers, swaps, contract creations) signed and encoded as Ethereum's own.
//!
//! Layouts of the input and the journal, and what is checked: `docs/EVM.md`.

pub mod chain;
pub mod db;
pub mod error;
#[cfg(feature = "gen")]
pub mod gen;
pub mod header;
#[cfg(feature = "host")]
pub mod import;
pub mod input;
pub mod journal;
#[cfg(feature = "rpc")]
pub mod rpc;
#[cfg(feature = "host")]
pub mod samples;
#[cfg(feature = "host")]
pub mod tests;
pub mod validate;

pub use chain::{Chain, ChainError, ChainSpec};
pub use db::WitnessError;
pub use error::BlockError;
pub use input::{StatelessInput, Witness, FORMAT};
pub use journal::{Journal, JOURNAL_LEN};
pub use validate::{
    execute_input, validate, validate_chained, validate_input, Executed, Mark, Stage, Stats,
};

// The guest installs accelerated cryptography into these (alloy's and revm's crypto providers).
pub use alloy_consensus;
pub use alloy_primitives;
pub use revm;

/// A SHA-256 implementation (the guest passes RISC Zero's accelerated one, the host a software one).
pub type Sha256Fn = fn(&[u8]) -> [u8; 32];

/// SHA-256 for the host (the `sha2` crate).
#[cfg(feature = "host")]
pub fn host_sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
