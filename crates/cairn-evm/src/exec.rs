//! Executing a block: decode, load the witness, commit to the pre-state, run every transaction with revm,
//! commit to the post-state. The guest and the host run this same function; only the SHA-256 differs
//! (the guest's is accelerated), and it computes the same digest.

use revm::context::{Context, TxEnv};
use revm::context_interface::result::ExecutionResult;
use revm::database::CacheDB;
use revm::handler::{MainnetContext, MainnetEvm};
use revm::primitives::hardfork::SpecId;
use revm::primitives::{Address, Bytes, Log, TxKind, B256, KECCAK_EMPTY, U256};
use revm::state::{AccountInfo, Bytecode};
use revm::{Database, ExecuteCommitEvm, MainBuilder, MainContext};

use crate::db::{MissingWitness, WitnessOnly};
use crate::input::{BlockInput, DecodeError, Header, Signatures, Tx};
use crate::journal::Journal;
use crate::state::{commit, snapshot};
use crate::Sha256Fn;

/// The hard fork blocks execute under.
pub const SPEC: SpecId = SpecId::PRAGUE;

/// The largest block gas limit an input may set (2^30, ~36x a 30 M-gas block). Far beyond it revm's memory
/// offsets stop fitting a 32-bit `usize`, where the guest and a 64-bit host would disagree.
pub const MAX_BLOCK_GAS: u64 = 1 << 30;

/// Domain separator of the logs digest.
pub const LOGS_DOMAIN: &[u8] = b"cairn-evm/logs/v1";

/// The stages of [`execute`], reported as each one ends (the guest counts cycles per stage with them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The input is decoded and hashed.
    Decode,
    /// The witness is loaded and the pre-state committed.
    PreState,
    /// Every transaction has run.
    Execute,
    /// The post-state is committed.
    PostState,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Decode => "decode",
            Phase::PreState => "pre-state",
            Phase::Execute => "execute",
            Phase::PostState => "post-state",
        }
    }
}

/// Why a block does not execute. Every variant makes the guest fail: there is no proof of an invalid block.
#[derive(Debug)]
pub enum BlockError {
    Decode(DecodeError),
    GasLimitTooHigh(u64),
    DuplicateAccount(Address),
    /// Nonce 0, no code, yet storage: no such account can exist (EIP-7610), and revm would let a contract be
    /// created over it.
    StorageWithoutAccount(Address),
    DuplicateSlot(Address, U256),
    BadCode(Address, String),
    /// The transaction's gas limit exceeds what is left of the block's.
    BlockGas {
        index: usize,
        needed: u64,
        left: u64,
    },
    BadSignature {
        index: usize,
        reason: String,
    },
    /// revm refused the transaction (nonce, balance, fee, ...): the block is invalid.
    InvalidTx {
        index: usize,
        reason: String,
    },
    MissingWitness {
        index: usize,
        missing: MissingWitness,
    },
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlockError::Decode(e) => e.fmt(f),
            BlockError::GasLimitTooHigh(g) => {
                write!(f, "block gas limit {g} is above the {MAX_BLOCK_GAS} a block input may set")
            }
            BlockError::DuplicateAccount(a) => write!(f, "account {a} appears twice in the witness"),
            BlockError::StorageWithoutAccount(a) => write!(
                f,
                "account {a} has storage but no nonce and no code: no such account can exist"
            ),
            BlockError::DuplicateSlot(a, k) => write!(f, "slot {k:#x} of {a} appears twice in the witness"),
            BlockError::BadCode(a, e) => write!(f, "code of {a} is not valid bytecode: {e}"),
            BlockError::BlockGas { index, needed, left } => write!(
                f,
                "transaction {index} has a gas limit of {needed} but only {left} of the block's gas limit is left"
            ),
            BlockError::BadSignature { index, reason } => write!(f, "transaction {index}: {reason}"),
            BlockError::InvalidTx { index, reason } => write!(f, "transaction {index} is invalid: {reason}"),
            BlockError::MissingWitness { index, missing } => write!(f, "transaction {index}: {missing}"),
        }
    }
}

impl std::error::Error for BlockError {}

/// What executing a block gives besides the journal (for the generator and benchmarks).
#[derive(Debug, Clone)]
pub struct Executed {
    pub journal: Journal,
    /// Gas used by each transaction, in order.
    pub tx_gas: Vec<u64>,
}

/// Executes the block in `input` (its encoded bytes) and returns the journal the guest commits.
pub fn execute(
    input: &[u8],
    sha256: Sha256Fn,
    on_phase: &mut dyn FnMut(Phase),
) -> Result<Executed, BlockError> {
    // Decode.
    let block = BlockInput::decode(input).map_err(BlockError::Decode)?;
    let input_digest = sha256(input);
    if block.header.gas_limit > MAX_BLOCK_GAS {
        return Err(BlockError::GasLimitTooHigh(block.header.gas_limit));
    }
    on_phase(Phase::Decode);

    // Pre-state.
    let db = load_witness(&block)?;
    let pre_state = commit(&snapshot(&db), block.commitment, sha256);
    on_phase(Phase::PreState);

    // Execute.
    let header = &block.header;
    let mut evm = evm_for(db, header);
    let mut gas_used = 0u64;
    let mut reverted = 0u32;
    let mut tx_gas = Vec::with_capacity(block.txs.len());
    let mut logs = Vec::from(LOGS_DOMAIN);
    for (index, tx) in block.txs.iter().enumerate() {
        // Never underflows: a transaction uses at most its gas limit, which was at most what was left.
        let left = header.gas_limit.saturating_sub(gas_used);
        if tx.gas_limit > left {
            return Err(BlockError::BlockGas {
                index,
                needed: tx.gas_limit,
                left,
            });
        }
        if block.signatures == Signatures::Checked {
            check_signature(header.chain_id, index, tx)?;
        }
        let result = evm
            .transact_commit(tx_env(header.chain_id, tx))
            .map_err(|e| match e {
                revm::context_interface::result::EVMError::Database(missing) => {
                    BlockError::MissingWitness { index, missing }
                }
                other => BlockError::InvalidTx {
                    index,
                    reason: other.to_string(),
                },
            })?;
        let used = result.tx_gas_used().min(tx.gas_limit);
        gas_used += used; // <= header.gas_limit <= MAX_BLOCK_GAS: cannot overflow
        tx_gas.push(used);
        if !matches!(result, ExecutionResult::Success { .. }) {
            reverted += 1;
        }
        for log in result.logs() {
            encode_log(&mut logs, index as u32, log);
        }
    }
    let logs_digest = sha256(&logs);
    on_phase(Phase::Execute);

    // Post-state.
    let post_state = commit(
        &snapshot(&evm.ctx.journaled_state.database),
        block.commitment,
        sha256,
    );
    on_phase(Phase::PostState);

    Ok(Executed {
        journal: Journal {
            commitment: block.commitment.tag(),
            signatures_checked: block.signatures == Signatures::Checked,
            tx_count: block.txs.len() as u32,
            reverted,
            gas_used,
            pre_state,
            post_state,
            logs_digest,
            input_digest,
        },
        tx_gas,
    })
}

/// A mainnet EVM under [`SPEC`] for `header`'s block over `db`.
pub fn evm_for<DB: Database>(db: DB, header: &Header) -> MainnetEvm<MainnetContext<DB>> {
    Context::mainnet()
        .with_db(db)
        .modify_cfg_chained(|cfg| {
            cfg.chain_id = header.chain_id;
            cfg.set_spec_and_mainnet_gas_params(SPEC);
        })
        .modify_block_chained(|b| {
            b.number = U256::from(header.number);
            b.timestamp = U256::from(header.timestamp);
            b.gas_limit = header.gas_limit;
            b.basefee = header.base_fee;
            b.beneficiary = Address::from(header.coinbase);
            b.prevrandao = Some(B256::from(header.prevrandao));
            b.difficulty = U256::ZERO;
        })
        .build_mainnet()
}

/// A `CacheDB` holding exactly the witness.
pub fn load_witness(block: &BlockInput) -> Result<CacheDB<WitnessOnly>, BlockError> {
    let mut db = CacheDB::new(WitnessOnly);
    for account in &block.accounts {
        let address = Address::from(account.address);
        if db.cache.accounts.contains_key(&address) {
            return Err(BlockError::DuplicateAccount(address));
        }
        let code = if account.code.is_empty() {
            Bytecode::default()
        } else {
            Bytecode::new_raw_checked(Bytes::copy_from_slice(&account.code))
                .map_err(|e| BlockError::BadCode(address, format!("{e:?}")))?
        };
        let info = AccountInfo {
            balance: U256::from_be_bytes(account.balance),
            nonce: account.nonce,
            code_hash: KECCAK_EMPTY,
            code: Some(code),
            ..Default::default()
        };
        db.insert_account_info(address, info);
        if account.nonce == 0
            && account.code.is_empty()
            && account.storage.iter().any(|(_, v)| *v != [0; 32])
        {
            return Err(BlockError::StorageWithoutAccount(address));
        }
        let entry = db.cache.accounts.get_mut(&address).expect("just inserted");
        for (slot, value) in &account.storage {
            let slot = U256::from_be_bytes(*slot);
            if entry
                .storage
                .insert(slot, U256::from_be_bytes(*value))
                .is_some()
            {
                return Err(BlockError::DuplicateSlot(address, slot));
            }
        }
    }
    Ok(db)
}

/// The revm transaction for `tx` (EIP-1559).
pub fn tx_env(chain_id: u64, tx: &Tx) -> TxEnv {
    TxEnv::builder()
        .tx_type(Some(2))
        .caller(Address::from(tx.from))
        .kind(match tx.to {
            Some(to) => TxKind::Call(Address::from(to)),
            None => TxKind::Create,
        })
        .nonce(tx.nonce)
        .gas_limit(tx.gas_limit)
        .max_fee_per_gas(tx.max_fee_per_gas)
        .gas_priority_fee(Some(tx.max_priority_fee_per_gas))
        .value(U256::from_be_bytes(tx.value))
        .data(Bytes::copy_from_slice(&tx.data))
        .chain_id(Some(chain_id))
        .build_fill()
}

fn check_signature(chain_id: u64, index: usize, tx: &Tx) -> Result<(), BlockError> {
    let bad = |reason: String| BlockError::BadSignature { index, reason };
    let raw: &[u8; 65] = tx
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| bad(format!("signature is {} bytes, not 65", tx.signature.len())))?;
    let signature =
        alloy_primitives::Signature::from_raw_array(raw).map_err(|e| bad(e.to_string()))?;
    let hash = B256::from(crate::input::signing_hash(chain_id, tx));
    let signer = signature
        .recover_address_from_prehash(&hash)
        .map_err(|e| bad(e.to_string()))?;
    if signer != Address::from(tx.from) {
        return Err(bad(format!(
            "signed by {signer}, not by its sender {}",
            Address::from(tx.from)
        )));
    }
    Ok(())
}

/// Appends one log: `tx index (u32 LE) || address (20) || topics (u8) || topics (32 each) || data length (u32 LE)
/// || data`.
fn encode_log(out: &mut Vec<u8>, tx_index: u32, log: &Log) {
    out.extend_from_slice(&tx_index.to_le_bytes());
    out.extend_from_slice(log.address.as_slice());
    let topics = log.data.topics();
    out.push(topics.len() as u8);
    for topic in topics {
        out.extend_from_slice(topic.as_slice());
    }
    out.extend_from_slice(&(log.data.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&log.data.data);
}
