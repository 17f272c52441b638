//! The guest's input: a block as Ethereum encodes it, its execution witness, and its chain.
//!
//! Encoded with bincode 1 in its fixed-width form (`docs/EVM.md` has the byte layout): a format number (2),
//! the [`Chain`], the block's RLP (`debug_getRawBlock`), then the witness as reth's `debug_executionWitness`
//! returns it: `state` (RLP trie nodes of the account trie and the storage tries), `codes` (bytecode) and
//! `headers` (RLP ancestor headers, oldest first, the parent last). The witness's `keys` (preimages) are not
//! needed: the guest hashes addresses and slots itself.

use serde::{Deserialize, Serialize};

use crate::chain::Chain;

/// The input format this crate reads and writes.
pub const FORMAT: u32 = 2;

/// The largest input the guest accepts (bytes).
pub const MAX_INPUT_BYTES: u64 = 512 << 20;

/// At most this many ancestor headers (`BLOCKHASH` reaches 256 blocks back).
pub const MAX_ANCESTORS: usize = 256;

/// What the guest reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatelessInput {
    pub format: u32,
    pub chain: Chain,
    /// The block's RLP: `[header, transactions, ommers, withdrawals?]`.
    pub block: Vec<u8>,
    pub witness: Witness,
}

/// A block's execution witness (`debug_executionWitness` without `keys`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    pub state: Vec<Vec<u8>>,
    pub codes: Vec<Vec<u8>>,
    pub headers: Vec<Vec<u8>>,
}

/// Why input bytes are not a [`StatelessInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the input is not a Cairn block input: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

fn options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(MAX_INPUT_BYTES)
        .reject_trailing_bytes()
}

impl StatelessInput {
    pub fn new(chain: Chain, block: Vec<u8>, witness: Witness) -> Self {
        StatelessInput {
            format: FORMAT,
            chain,
            block,
            witness,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        use bincode::Options;
        options().serialize(self).expect("an input always encodes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        use bincode::Options;
        if bytes.len() < 4 {
            return Err(DecodeError(format!("{} bytes is too short", bytes.len())));
        }
        let format = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        if format != FORMAT {
            return Err(DecodeError(format!(
                "format {format}, this program reads format {FORMAT} (make inputs with `cairn block import` \
                 or `cairn block gen`)"
            )));
        }
        options()
            .deserialize(bytes)
            .map_err(|e| DecodeError(e.to_string()))
    }
}
