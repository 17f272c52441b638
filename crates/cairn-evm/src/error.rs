//! Why a block is not valid. Every variant makes the guest fail: there is no proof of an invalid block, and
//! the host prints the same reason.

use std::fmt;

use alloy_primitives::B256;

use crate::chain::ChainError;
use crate::db::WitnessError;
use crate::input::DecodeError;

/// Why a block does not validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    Input(DecodeError),
    Chain(ChainError),
    /// The block's RLP does not decode.
    BlockRlp(String),
    /// Ancestor header `index` (0 = oldest) does not decode.
    AncestorRlp {
        index: usize,
        reason: String,
    },
    /// The witness has no ancestor headers: the parent's header is needed for its state root.
    NoParent,
    TooManyAncestors(usize),
    /// The ancestor headers are not a hash chain ending at the block's parent.
    BrokenAncestry(String),
    /// A header field breaks a rule on its own or against the parent's header.
    Header {
        field: &'static str,
        reason: String,
    },
    /// The body disagrees with the header (transactions root, ommers, withdrawals).
    Body(String),
    /// The witness does not hold the parent's state root node.
    MissingPreStateRoot(B256),
    Witness(WitnessError),
    /// A transaction's signature does not recover a sender.
    Signature {
        index: usize,
        reason: String,
    },
    /// A transaction is invalid (nonce, balance, fees, gas, type not allowed by the fork, ...).
    Transaction {
        index: usize,
        reason: String,
    },
    /// A block-level step failed (a system call, withdrawals, requests).
    Execution(String),
    /// A header field differs from what executing the block gives.
    Mismatch {
        field: &'static str,
        header: String,
        computed: String,
    },
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::Input(e) => write!(f, "{e}"),
            BlockError::Chain(e) => write!(f, "{e}"),
            BlockError::BlockRlp(e) => write!(f, "the block's RLP does not decode: {e}"),
            BlockError::AncestorRlp { index, reason } => {
                write!(f, "witness header {index} does not decode: {reason}")
            }
            BlockError::NoParent => write!(
                f,
                "the witness has no headers: the parent's header (last in `headers`) is needed"
            ),
            BlockError::TooManyAncestors(n) => write!(
                f,
                "the witness has {n} headers; at most {} are useful",
                crate::input::MAX_ANCESTORS
            ),
            BlockError::BrokenAncestry(e) => write!(f, "the witness's headers: {e}"),
            BlockError::Header { field, reason } => write!(f, "invalid header: {field}: {reason}"),
            BlockError::Body(e) => write!(f, "invalid body: {e}"),
            BlockError::MissingPreStateRoot(root) => write!(
                f,
                "the witness lacks the node of the parent's state root {root}"
            ),
            BlockError::Witness(e) => write!(f, "{e}"),
            BlockError::Signature { index, reason } => {
                write!(f, "transaction {index}: bad signature: {reason}")
            }
            BlockError::Transaction { index, reason } => {
                write!(f, "transaction {index} is invalid: {reason}")
            }
            BlockError::Execution(e) => write!(f, "block execution failed: {e}"),
            BlockError::Mismatch {
                field,
                header,
                computed,
            } => write!(
                f,
                "{field} mismatch: the header says {header}, executing the block gives {computed}"
            ),
        }
    }
}

impl std::error::Error for BlockError {}

impl From<DecodeError> for BlockError {
    fn from(e: DecodeError) -> Self {
        BlockError::Input(e)
    }
}

impl From<ChainError> for BlockError {
    fn from(e: ChainError) -> Self {
        BlockError::Chain(e)
    }
}

impl From<WitnessError> for BlockError {
    fn from(e: WitnessError) -> Self {
        BlockError::Witness(e)
    }
}

impl BlockError {
    /// A short class name, for test reports: which kind of rule the block broke.
    pub fn class(&self) -> &'static str {
        match self {
            BlockError::Input(_) => "input",
            BlockError::Chain(_) => "chain",
            BlockError::BlockRlp(_) => "rlp",
            BlockError::AncestorRlp { .. }
            | BlockError::NoParent
            | BlockError::TooManyAncestors(_)
            | BlockError::BrokenAncestry(_) => "ancestry",
            BlockError::Header { .. } => "header",
            BlockError::Body(_) => "body",
            BlockError::MissingPreStateRoot(_) | BlockError::Witness(_) => "witness",
            BlockError::Signature { .. } => "signature",
            BlockError::Transaction { .. } => "transaction",
            BlockError::Execution(_) => "execution",
            BlockError::Mismatch { .. } => "post-execution",
        }
    }
}
