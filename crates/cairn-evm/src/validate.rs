//! Stateless validation of one block, as reth's stateless validator, zeth and rsp do it:
//!
//! 1. decode the input and the block; the ancestor headers must hash-chain to the block's parent;
//! 2. the header's rules, alone and against the parent's header; the body against the header
//!    (transactions root, ommers, withdrawals root, blob gas);
//! 3. open the parent's state trie from the witness nodes: its root must be the parent's state root;
//! 4. recover every sender from Ethereum's own signatures;
//! 5. the fork's system calls (EIP-2935, EIP-4788), every transaction, then withdrawals and the EIP-7002 /
//!    EIP-7251 requests, with `alloy-evm`'s Ethereum block executor (revm) over the witness;
//! 6. gas used, receipts root, logs bloom and requests hash against the header;
//! 7. the post-state root, by applying the block's changes to the tries (updates, then deletions with node
//!    collapse), against the header's.
//!
//! The guest and the host run this same code; only SHA-256 (used for the chain digest) differs.

use std::borrow::Cow;
use std::collections::HashMap;

use alloy_consensus::proofs::{
    calculate_ommers_root, calculate_receipt_root, calculate_transaction_root,
    calculate_withdrawals_root,
};
use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{Block, Header, Transaction, TxEnvelope, TxReceipt};
use alloy_evm::block::{BlockExecutionError, BlockExecutor, BlockValidationError};
use alloy_evm::eth::receipt_builder::AlloyReceiptBuilder;
use alloy_evm::eth::{EthBlockExecutionCtx, EthBlockExecutor, EthEvmFactory};
use alloy_evm::{EvmEnv, EvmFactory};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::{keccak256, Address, Bloom, B256, U256};
use alloy_rlp::{Decodable, Encodable};
use alloy_trie::{TrieAccount, EMPTY_ROOT_HASH};
use cairn_mpt::{NodeStore, SparseTrie, TrieError};
use revm::database::states::bundle_state::BundleRetention;
use revm::database::State;
use revm::state::Bytecode;

use crate::chain::ChainSpec;
use crate::db::{WitnessDb, WitnessError};
use crate::error::BlockError;
use crate::header::{check_against_parent, check_standalone};
use crate::input::{StatelessInput, MAX_ANCESTORS};
use crate::journal::Journal;
use crate::Sha256Fn;

/// The stages of [`validate`], reported as each one ends (the guest counts cycles per stage with them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// The input and the block are decoded.
    Decode,
    /// The ancestor headers are decoded, hashed and chained; the header and body checked.
    Header,
    /// The witness's nodes and codes are hashed and the parent's state trie opened.
    Witness,
    /// Every sender is recovered from its signature.
    Senders,
    /// System calls, transactions, withdrawals and requests have run.
    Execute,
    /// Gas, receipts root, logs bloom and requests hash are computed and compared.
    Receipts,
    /// The post-state root is computed and compared.
    PostState,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Decode,
        Stage::Header,
        Stage::Witness,
        Stage::Senders,
        Stage::Execute,
        Stage::Receipts,
        Stage::PostState,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Header => "header",
            Stage::Witness => "witness",
            Stage::Senders => "senders",
            Stage::Execute => "execute",
            Stage::Receipts => "receipts",
            Stage::PostState => "post-state",
        }
    }
}

/// Progress marks [`validate`] reports as it goes: each stage as it ends, and each transaction as it has run
/// (inside [`Stage::Execute`]), so the guest can count cycles per stage and per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Stage(Stage),
    /// The fork's pre-execution system calls (EIP-2935, EIP-4788) have run.
    SystemCalls,
    /// Transaction `index` has run.
    Transaction(usize),
}

/// What executing a block gives, before it is compared with the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The journal a valid block commits (its post-state root is the one computed here).
    pub journal: Journal,
    pub gas_used: u64,
    pub blob_gas_used: u64,
    pub receipts_root: B256,
    pub logs_bloom: Bloom,
    /// `None` before Prague.
    pub requests_hash: Option<B256>,
    pub post_state_root: B256,
    /// Per transaction: gas used, and whether it succeeded.
    pub tx_gas: Vec<(u64, bool)>,
    pub stats: Stats,
}

/// Sizes of what a block needed, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub witness_nodes: usize,
    pub witness_codes: usize,
    pub ancestors: usize,
    pub accounts_read: usize,
    pub storage_tries: usize,
    pub accounts_written: usize,
    pub slots_written: usize,
}

/// Validates the block in `input_bytes` (a [`StatelessInput`]): every check above, then the journal.
pub fn validate(
    input_bytes: &[u8],
    sha256: Sha256Fn,
    meter: &mut dyn FnMut(Mark),
) -> Result<Executed, BlockError> {
    let input = StatelessInput::decode(input_bytes)?;
    validate_input(&input, sha256, meter)
}

/// [`validate`] on a decoded input.
pub fn validate_input(
    input: &StatelessInput,
    sha256: Sha256Fn,
    meter: &mut dyn FnMut(Mark),
) -> Result<Executed, BlockError> {
    let (executed, header) = execute_input(input, sha256, meter)?;
    compare(&executed, &header)?;
    Ok(executed)
}

/// What execution gives against what the header says.
fn compare(executed: &Executed, header: &Header) -> Result<(), BlockError> {
    let cmp = |field: &'static str, header: String, computed: String| {
        if header == computed {
            Ok(())
        } else {
            Err(BlockError::Mismatch {
                field,
                header,
                computed,
            })
        }
    };
    cmp(
        "gasUsed",
        header.gas_used.to_string(),
        executed.gas_used.to_string(),
    )?;
    if let Some(used) = header.blob_gas_used {
        cmp(
            "blobGasUsed",
            used.to_string(),
            executed.blob_gas_used.to_string(),
        )?;
    }
    cmp(
        "receiptsRoot",
        header.receipts_root.to_string(),
        executed.receipts_root.to_string(),
    )?;
    cmp(
        "logsBloom",
        header.logs_bloom.to_string(),
        executed.logs_bloom.to_string(),
    )?;
    cmp(
        "requestsHash",
        format!("{:?}", header.requests_hash),
        format!("{:?}", executed.requests_hash),
    )?;
    cmp(
        "stateRoot",
        header.state_root.to_string(),
        executed.post_state_root.to_string(),
    )?;
    Ok(())
}

/// Everything [`validate_input`] does except comparing what execution gives (gas used, blob gas used, receipts
/// root, logs bloom, requests hash, state root) with the header: what a block builder (`cairn block gen`)
/// calls to fill those fields in.
pub fn execute_input(
    input: &StatelessInput,
    sha256: Sha256Fn,
    meter: &mut dyn FnMut(Mark),
) -> Result<(Executed, Header), BlockError> {
    execute_inner(input, sha256, meter, false).map(|(e, h, _)| (e, h))
}

/// [`validate_input`], also giving the witness of the block's post-state for a block built on it (every node of
/// the input's witness, plus the tries' new and changed nodes and the code the block deployed; the headers
/// with this block's last): how Ethereum's multi-block tests are chained through stateless validation. Only
/// useful where the input's witness holds the whole state.
pub fn validate_chained(
    input: &StatelessInput,
    sha256: Sha256Fn,
) -> Result<(Executed, crate::input::Witness), BlockError> {
    let (executed, header, post) = execute_inner(input, sha256, &mut |_| {}, true)?;
    compare(&executed, &header)?;
    Ok((executed, post.expect("asked for")))
}

fn execute_inner(
    input: &StatelessInput,
    sha256: Sha256Fn,
    meter: &mut dyn FnMut(Mark),
    want_post: bool,
) -> Result<(Executed, Header, Option<crate::input::Witness>), BlockError> {
    let chain_digest = input.chain.digest(sha256);
    let spec = input.chain.spec()?;
    let mut raw = input.block.as_slice();
    let header_rlp = first_item(raw).map_err(BlockError::BlockRlp)?;
    let block_hash = keccak256(header_rlp);
    let block =
        Block::<TxEnvelope>::decode(&mut raw).map_err(|e| BlockError::BlockRlp(e.to_string()))?;
    if !raw.is_empty() {
        return Err(BlockError::BlockRlp(format!(
            "{} bytes after the block",
            raw.len()
        )));
    }
    let header = block.header;
    let body = block.body;
    // A block carries blob transactions without their blobs (the network form with a sidecar is for the
    // mempool only).
    if let Some(index) = body.transactions.iter().position(|t| {
        matches!(t, TxEnvelope::Eip4844(s) if matches!(s.tx(), alloy_consensus::TxEip4844Variant::TxEip4844WithSidecar(_)))
    }) {
        return Err(BlockError::BlockRlp(format!(
            "transaction {index} is a blob transaction with its blobs (the mempool form), not a block's"
        )));
    }
    meter(Mark::Stage(Stage::Decode));

    // Ancestors: a hash chain ending at the parent.
    let headers = &input.witness.headers;
    if headers.is_empty() {
        return Err(BlockError::NoParent);
    }
    if headers.len() > MAX_ANCESTORS {
        return Err(BlockError::TooManyAncestors(headers.len()));
    }
    let mut ancestors: Vec<(Header, B256)> = Vec::with_capacity(headers.len());
    for (index, rlp) in headers.iter().enumerate() {
        let mut buf = rlp.as_slice();
        let h = Header::decode(&mut buf).map_err(|e| BlockError::AncestorRlp {
            index,
            reason: e.to_string(),
        })?;
        if !buf.is_empty() {
            return Err(BlockError::AncestorRlp {
                index,
                reason: format!("{} bytes after the header", buf.len()),
            });
        }
        let hash = keccak256(rlp);
        if let Some((prev, prev_hash)) = ancestors.last() {
            if h.parent_hash != *prev_hash || prev.number.checked_add(1) != Some(h.number) {
                return Err(BlockError::BrokenAncestry(format!(
                    "header {index} (block {}) does not follow header {} (block {}, hash {prev_hash})",
                    h.number,
                    index - 1,
                    prev.number
                )));
            }
        }
        ancestors.push((h, hash));
    }
    let (parent, parent_hash) = ancestors.last().expect("not empty");
    if header.parent_hash != *parent_hash {
        return Err(BlockError::BrokenAncestry(format!(
            "the last header (block {}) hashes to {parent_hash}, the block's parent is {}",
            parent.number, header.parent_hash
        )));
    }
    check_standalone(&header, input.block.len(), &spec)?;
    check_against_parent(&header, parent, &spec)?;
    check_body(&header, &body, &spec)?;
    let block_hashes: HashMap<u64, B256> = ancestors
        .iter()
        .map(|(h, hash)| (h.number, *hash))
        .collect();
    let pre_state_root = parent.state_root;
    let parent_number = parent.number;
    meter(Mark::Stage(Stage::Header));

    // The witness: nodes and codes by hash, the parent's state trie.
    let store = NodeStore::new(input.witness.state.iter().map(|n| n.as_slice()));
    let accounts = SparseTrie::open(pre_state_root, &store).map_err(|e| match e {
        TrieError::MissingRoot(root) => BlockError::MissingPreStateRoot(root),
        other => BlockError::Witness(WitnessError::Malformed(format!("the state trie: {other}"))),
    })?;
    let mut codes = HashMap::with_capacity(input.witness.codes.len());
    for code in &input.witness.codes {
        let bytecode = Bytecode::new_raw_checked(code.clone().into()).map_err(|e| {
            BlockError::Witness(WitnessError::Malformed(format!(
                "code does not decode: {e}"
            )))
        })?;
        codes.insert(keccak256(code), bytecode);
    }
    let mut stats = Stats {
        witness_nodes: store.len(),
        witness_codes: codes.len(),
        ancestors: ancestors.len(),
        ..Stats::default()
    };
    let db = WitnessDb::new(&store, accounts, codes, block_hashes);
    meter(Mark::Stage(Stage::Witness));

    // Senders.
    let mut txs = Vec::with_capacity(body.transactions.len());
    for (index, tx) in body.transactions.into_iter().enumerate() {
        let signer = tx.recover_signer().map_err(|e| BlockError::Signature {
            index,
            reason: e.to_string(),
        })?;
        txs.push(alloy_consensus::transaction::Recovered::new_unchecked(
            tx, signer,
        ));
    }
    meter(Mark::Stage(Stage::Senders));

    // Execution.
    let mut state = State::builder()
        .with_database(db)
        .with_bundle_update()
        .build();
    let env = EvmEnv::for_eth_block(
        &header,
        &spec,
        spec.chain_id,
        spec.blob_params_at(header.timestamp),
    );
    let result = {
        let evm = EthEvmFactory::default().create_evm(&mut state, env);
        let ctx = EthBlockExecutionCtx {
            parent_hash: header.parent_hash,
            parent_beacon_block_root: header.parent_beacon_block_root,
            ommers: &body.ommers,
            withdrawals: body
                .withdrawals
                .as_ref()
                .map(|w| Cow::Borrowed(w.as_slice())),
            extra_data: header.extra_data.clone(),
            tx_count_hint: Some(txs.len()),
            slot_number: None,
        };
        let mut executor = EthBlockExecutor::new(evm, ctx, &spec, AlloyReceiptBuilder::default());
        let step = || -> Result<_, (Option<usize>, BlockExecutionError)> {
            executor
                .apply_pre_execution_changes()
                .map_err(|e| (None, e))?;
            meter(Mark::SystemCalls);
            for (index, tx) in txs.iter().enumerate() {
                executor
                    .execute_transaction(tx.as_recovered_ref())
                    .map_err(|e| (Some(index), e))?;
                meter(Mark::Transaction(index));
            }
            executor.finish().map_err(|e| (None, e))
        };
        step().map(|(_, result)| result)
    };
    let result = match result {
        Ok(r) => r,
        Err((index, e)) => {
            if let Some(w) = state.database.take_error() {
                return Err(BlockError::Witness(w));
            }
            return Err(execution_error(index, e));
        }
    };
    meter(Mark::Stage(Stage::Execute));

    // Receipts, logs, requests.
    let receipts_root = calculate_receipt_root(&result.receipts);
    let mut logs_bloom = Bloom::ZERO;
    let mut tx_gas = Vec::with_capacity(result.receipts.len());
    let mut previous = 0u64;
    for r in &result.receipts {
        logs_bloom.accrue_bloom(&r.bloom());
        let cumulative = r.cumulative_gas_used();
        tx_gas.push((cumulative - previous, r.status()));
        previous = cumulative;
    }
    let requests_hash = spec
        .is_prague_active_at_timestamp(header.timestamp)
        .then(|| result.requests.requests_hash());
    meter(Mark::Stage(Stage::Receipts));

    // Post-state.
    state.merge_transitions(BundleRetention::PlainState);
    let bundle = state.take_bundle();
    let new_codes: Vec<Vec<u8>> = if want_post {
        bundle
            .contracts
            .values()
            .map(|c| c.original_bytes().to_vec())
            .collect()
    } else {
        Vec::new()
    };
    let mut db = state.database;
    stats.accounts_read = db.loaded.len();
    stats.storage_tries = db.storage.len();
    let mut post_nodes = want_post.then(Vec::new);
    let post_state_root = apply_changes(&mut db, bundle, &mut stats, post_nodes.as_mut())?;
    meter(Mark::Stage(Stage::PostState));

    let journal = Journal {
        chain_id: spec.chain_id,
        number: header.number,
        parent_hash: header.parent_hash,
        block_hash,
        pre_state_root,
        post_state_root,
        gas_used: result.gas_used,
        tx_count: txs.len() as u32,
        chain_digest,
    };
    debug_assert_eq!(parent_number + 1, header.number);
    let post = post_nodes.map(|mut nodes| {
        nodes.extend(db.accounts.witness_nodes());
        nodes.extend(input.witness.state.iter().cloned());
        nodes.sort();
        nodes.dedup();
        let mut codes = input.witness.codes.clone();
        codes.extend(new_codes);
        codes.sort();
        codes.dedup();
        let mut headers = input.witness.headers.clone();
        headers.push(header_rlp_of(&input.block));
        let excess = headers.len().saturating_sub(MAX_ANCESTORS);
        headers.drain(..excess);
        crate::input::Witness {
            state: nodes,
            codes,
            headers,
        }
    });
    Ok((
        Executed {
            journal,
            gas_used: result.gas_used,
            blob_gas_used: result.blob_gas_used,
            receipts_root,
            logs_bloom,
            requests_hash,
            post_state_root,
            tx_gas,
            stats,
        },
        header,
        post,
    ))
}

fn header_rlp_of(block: &[u8]) -> Vec<u8> {
    first_item(block).map(|h| h.to_vec()).unwrap_or_default()
}

/// The raw bytes of the first item of the RLP list `buf` (the header of a block).
fn first_item(buf: &[u8]) -> Result<&[u8], String> {
    let mut b = buf;
    let outer = alloy_rlp::Header::decode(&mut b).map_err(|e| e.to_string())?;
    if !outer.list {
        return Err("a block is an RLP list".into());
    }
    let start = b;
    let mut inner = b;
    let h = alloy_rlp::Header::decode(&mut inner).map_err(|e| e.to_string())?;
    let head_len = start.len() - inner.len();
    let total = head_len
        .checked_add(h.payload_length)
        .filter(|t| *t <= start.len())
        .ok_or("the header runs past the block")?;
    Ok(&start[..total])
}

/// The body against the header: what reth checks before execution.
fn check_body(
    header: &Header,
    body: &alloy_consensus::BlockBody<TxEnvelope>,
    spec: &ChainSpec,
) -> Result<(), BlockError> {
    if !body.ommers.is_empty() {
        return Err(BlockError::Body(format!(
            "{} ommers after the merge",
            body.ommers.len()
        )));
    }
    let ommers = calculate_ommers_root(&body.ommers);
    if ommers != header.ommers_hash {
        return Err(BlockError::Body(format!(
            "ommers hash {ommers} differs from the header's {}",
            header.ommers_hash
        )));
    }
    let tx_root = calculate_transaction_root(&body.transactions);
    if tx_root != header.transactions_root {
        return Err(BlockError::Body(format!(
            "transactions root {tx_root} differs from the header's {}",
            header.transactions_root
        )));
    }
    match (&body.withdrawals, header.withdrawals_root) {
        (Some(w), Some(root)) => {
            let computed = calculate_withdrawals_root(w);
            if computed != root {
                return Err(BlockError::Body(format!(
                    "withdrawals root {computed} differs from the header's {root}"
                )));
            }
        }
        (None, None) => {}
        (Some(_), None) => return Err(BlockError::Body("withdrawals before Shanghai".into())),
        (None, Some(_)) => {
            return Err(BlockError::Body(
                "no withdrawals list, but the header has a withdrawals root".into(),
            ))
        }
    }
    if spec.is_cancun_active_at_timestamp(header.timestamp) {
        let mut blob_gas = 0u64;
        for tx in &body.transactions {
            blob_gas = blob_gas.saturating_add(tx.blob_gas_used().unwrap_or(0));
        }
        if Some(blob_gas) != header.blob_gas_used {
            return Err(BlockError::Body(format!(
                "the transactions use {blob_gas} blob gas, the header says {:?}",
                header.blob_gas_used
            )));
        }
    } else if body.transactions.iter().any(|t| t.is_eip4844()) {
        return Err(BlockError::Transaction {
            index: body
                .transactions
                .iter()
                .position(|t| t.is_eip4844())
                .unwrap_or(0),
            reason: "blob transactions before Cancun".into(),
        });
    }
    Ok(())
}

fn execution_error(index: Option<usize>, e: BlockExecutionError) -> BlockError {
    match (index, e) {
        (Some(index), BlockExecutionError::Validation(v)) => match v {
            BlockValidationError::InvalidTx { error, .. } => BlockError::Transaction {
                index,
                reason: error.to_string(),
            },
            other => BlockError::Transaction {
                index,
                reason: other.to_string(),
            },
        },
        (Some(index), other) => BlockError::Transaction {
            index,
            reason: other.to_string(),
        },
        (None, other) => BlockError::Execution(other.to_string()),
    }
}

/// Applies the block's changes to the parent's tries and returns the new state root. Updates go in before
/// deletions, so a deletion only collapses nodes the witness must hold anyway.
fn apply_changes(
    db: &mut WitnessDb<'_>,
    bundle: revm::database::BundleState,
    stats: &mut Stats,
    mut post_nodes: Option<&mut Vec<Vec<u8>>>,
) -> Result<B256, BlockError> {
    let mut changed: Vec<(Address, revm::database::BundleAccount)> =
        bundle.state.into_iter().collect();
    changed.sort_unstable_by_key(|(a, _)| *a);
    let mut removals = Vec::new();
    for (address, account) in changed {
        let key = keccak256(address);
        let Some(info) = account.info.as_ref().filter(|i| !i.is_empty()) else {
            removals.push((address, key));
            continue;
        };
        let storage_root = if account.storage.is_empty() && !account.was_destroyed() {
            db.account(address)?
                .map(|a| a.storage_root)
                .unwrap_or(EMPTY_ROOT_HASH)
        } else {
            let mut trie = if account.was_destroyed() {
                SparseTrie::empty()
            } else {
                db.storage_trie(address)?;
                db.storage.remove(&address).expect("opened above").trie
            };
            let mut slots: Vec<(&U256, _)> = account.storage.iter().collect();
            slots.sort_unstable_by_key(|(k, _)| **k);
            let mut zeroed = Vec::new();
            for (slot, value) in slots {
                let hashed = keccak256(slot.to_be_bytes::<32>());
                stats.slots_written += 1;
                if value.present_value.is_zero() {
                    zeroed.push((*slot, hashed));
                } else {
                    trie.insert(&hashed, alloy_rlp::encode(value.present_value))
                        .map_err(|e| storage_err(address, *slot, e))?;
                }
            }
            for (slot, hashed) in zeroed {
                trie.remove(&hashed)
                    .map_err(|e| storage_err(address, slot, e))?;
            }
            if let Some(out) = post_nodes.as_deref_mut() {
                out.extend(trie.witness_nodes());
            }
            trie.hash()
        };
        let rlp = alloy_rlp::encode(TrieAccount {
            nonce: info.nonce,
            balance: info.balance,
            storage_root,
            code_hash: info.code_hash,
        });
        stats.accounts_written += 1;
        db.accounts
            .insert(&key, rlp)
            .map_err(|e| account_err(address, e))?;
    }
    for (address, key) in removals {
        stats.accounts_written += 1;
        db.accounts
            .remove(&key)
            .map_err(|e| account_err(address, e))?;
    }
    Ok(db.accounts.hash())
}

fn storage_err(address: Address, slot: U256, e: TrieError) -> BlockError {
    BlockError::Witness(match e {
        TrieError::Unresolved { hash } => WitnessError::MissingNode {
            what: format!("update slot {slot:#x} of {address}"),
            node: hash,
        },
        other => WitnessError::Malformed(format!("slot {slot:#x} of {address}: {other}")),
    })
}

fn account_err(address: Address, e: TrieError) -> BlockError {
    BlockError::Witness(match e {
        TrieError::Unresolved { hash } => WitnessError::MissingNode {
            what: format!("update account {address}"),
            node: hash,
        },
        other => WitnessError::Malformed(format!("account {address}: {other}")),
    })
}

/// The RLP of a header (for builders and importers).
pub fn header_rlp(header: &Header) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.length());
    header.encode(&mut out);
    out
}
