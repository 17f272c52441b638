//! The block input: what the `evm-block` guest reads from stdin, byte for byte.
//!
//! Encoding: bincode 1 with fixed-width little-endian integers (what `bincode::serialize` writes), lengths as
//! u64, `Option` as a 0/1 byte, enums as a u32 tag, byte arrays without a length. `docs/EVM.md` spells out the
//! layout field by field for users who build inputs without this crate.

use serde::{Deserialize, Serialize};

/// The format version this crate reads and writes.
pub const FORMAT: u32 = 1;

/// Inputs larger than this are refused before decoding (the guest's memory is ~3 GiB and a 30 M-gas witness
/// is a few MB).
pub const MAX_INPUT_BYTES: usize = 512 << 20;

/// One block: its header fields, the pre-state it touches (the witness), and its transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInput {
    /// [`FORMAT`].
    pub format: u32,
    /// How the journal commits to the pre- and post-state.
    pub commitment: Commitment,
    /// Whether every transaction carries a signature that the guest checks against its sender.
    pub signatures: Signatures,
    pub header: Header,
    /// Every account the block reads or writes, with every storage slot it reads or writes (a slot or
    /// account the block touches that is missing here makes the block fail with [`crate::BlockError::
    /// MissingWitness`]: the guest never assumes a value). Accounts that do not exist yet are listed empty.
    pub accounts: Vec<Account>,
    pub txs: Vec<Tx>,
}

/// How the pre- and post-state are committed to in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Commitment {
    /// SHA-256 over the accounts sorted by address, each with its sorted non-zero storage (cheap in the
    /// zkVM: SHA-256 is accelerated). Layout in `docs/EVM.md`.
    Sha256Sorted,
    /// Ethereum's Merkle-Patricia state root (keccak, RLP) over the accounts in the witness.
    MerklePatricia,
}

impl Commitment {
    pub fn tag(self) -> u8 {
        match self {
            Commitment::Sha256Sorted => 0,
            Commitment::MerklePatricia => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Commitment::Sha256Sorted => "sha256",
            Commitment::MerklePatricia => "mpt",
        }
    }
}

/// Whether transactions are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Signatures {
    /// Senders are given, not proved: the proof shows what these transactions from these senders do (the
    /// sequencer's ordering is trusted). The default, and what the published cycles-per-gas figures for
    /// accelerated guests are closest to once ECDSA is accelerated.
    Unchecked,
    /// Each transaction carries a secp256k1 signature over [`crate::signing_hash`]; the guest recovers the
    /// signer (pure-Rust k256, not accelerated) and fails the block if it is not the sender.
    Checked,
}

/// The block header fields execution depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub chain_id: u64,
    pub number: u64,
    pub timestamp: u64,
    pub gas_limit: u64,
    pub base_fee: u64,
    pub coinbase: [u8; 20],
    pub prevrandao: [u8; 32],
}

/// An account of the pre-state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub address: [u8; 20],
    pub nonce: u64,
    /// Big-endian 256-bit.
    pub balance: [u8; 32],
    /// Runtime bytecode (empty for accounts without code).
    pub code: Vec<u8>,
    /// (slot, value), both big-endian 256-bit; zero values are allowed (a slot read while empty).
    pub storage: Vec<([u8; 32], [u8; 32])>,
}

/// A transaction (EIP-1559 fees; no access list, blobs or authorizations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tx {
    pub from: [u8; 20],
    /// `None` creates a contract with `data` as its init code.
    pub to: Option<[u8; 20]>,
    pub nonce: u64,
    pub gas_limit: u64,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    /// Big-endian 256-bit.
    pub value: [u8; 32],
    pub data: Vec<u8>,
    /// Empty, or 65 bytes `r || s || y_parity` over [`crate::signing_hash`] (with [`Signatures::Checked`]).
    pub signature: Vec<u8>,
}

/// Why an input could not be read.
#[derive(Debug)]
pub enum DecodeError {
    TooLarge(usize),
    Malformed(String),
    Format(u32),
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::TooLarge(n) => {
                write!(f, "block input is {n} bytes, more than the {MAX_INPUT_BYTES} a block may have")
            }
            DecodeError::Malformed(e) => write!(
                f,
                "block input is not a bincode-encoded BlockInput ({e}); build it with `cairn block gen` or \
                 cairn_evm::BlockInput::encode (layout in docs/EVM.md)"
            ),
            DecodeError::Format(v) => {
                write!(f, "block input has format {v}; this program reads format {FORMAT}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

fn options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(MAX_INPUT_BYTES as u64)
}

impl BlockInput {
    /// The bytes the guest reads.
    pub fn encode(&self) -> Vec<u8> {
        use bincode::Options;
        options()
            .serialize(self)
            .expect("a BlockInput always serializes")
    }

    /// Reads an input, refusing oversized, malformed, trailing-byte or other-format inputs.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        use bincode::Options;
        if bytes.len() > MAX_INPUT_BYTES {
            return Err(DecodeError::TooLarge(bytes.len()));
        }
        let input: BlockInput = options()
            .deserialize(bytes)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if input.format != FORMAT {
            return Err(DecodeError::Format(input.format));
        }
        Ok(input)
    }

    /// Total gas limit of the transactions (an upper bound on the block's gas).
    pub fn gas_limit_sum(&self) -> u64 {
        self.txs
            .iter()
            .fold(0u64, |sum, t| sum.saturating_add(t.gas_limit))
    }
}

/// The part of a transaction its signature covers, with the chain id (Cairn's own canonical encoding: the
/// bincode bytes of this struct; not Ethereum's RLP, which would cost the same keccak and ECDSA work).
#[derive(Serialize)]
struct SigningPayload<'a> {
    chain_id: u64,
    from: &'a [u8; 20],
    to: &'a Option<[u8; 20]>,
    nonce: u64,
    gas_limit: u64,
    max_fee_per_gas: u128,
    max_priority_fee_per_gas: u128,
    value: &'a [u8; 32],
    data: &'a [u8],
}

/// The 32-byte hash a transaction's signature signs: keccak-256 of its canonical encoding with the chain id.
pub fn signing_hash(chain_id: u64, tx: &Tx) -> [u8; 32] {
    let payload = SigningPayload {
        chain_id,
        from: &tx.from,
        to: &tx.to,
        nonce: tx.nonce,
        gas_limit: tx.gas_limit,
        max_fee_per_gas: tx.max_fee_per_gas,
        max_priority_fee_per_gas: tx.max_priority_fee_per_gas,
        value: &tx.value,
        data: &tx.data,
    };
    let bytes = bincode::serialize(&payload).expect("serializes");
    alloy_primitives::keccak256(bytes).0
}
