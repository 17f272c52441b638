//! EVM blocks as RISC Zero programs.
//!
//! The `evm-block` guest (`guests/evm-block`) reads a [`BlockInput`] (header, pre-state witness,
//! transactions), runs [`execute`] (revm, the Prague fork) and commits its 148-byte [`Journal`]. The host runs
//! the very same function natively to know the journal a proof must carry. With the `gen` feature, [`gen`]
//! builds deterministic synthetic blocks (ETH transfers, ERC-20 transfers, swaps through constant-product
//! pools, contract creations) from Cairn's own contracts (`contracts/`).
//!
//! Layouts of the input, the commitments, the logs digest and the journal: `docs/EVM.md`.

pub mod db;
pub mod exec;
#[cfg(feature = "gen")]
pub mod gen;
pub mod input;
pub mod journal;
pub mod state;

pub use exec::{execute, BlockError, Executed, Phase};
pub use input::{signing_hash, Account, BlockInput, Commitment, Header, Signatures, Tx};
pub use journal::{Journal, JOURNAL_LEN};

/// A SHA-256 implementation (the guest passes RISC Zero's accelerated one, the host a software one).
pub type Sha256Fn = fn(&[u8]) -> [u8; 32];
