//! Ethereum's BlockchainTests (ethereum/tests, `BlockchainTests/`) through Cairn's stateless path: each
//! single-block case becomes a [`StatelessInput`] (the witness is every node of its `pre` state, the parent
//! is its genesis header) and is validated as the guest would. A valid block must give the state root of its
//! header and the case's `lastblockhash`; a block with `expectException` must be refused. Cases of several
//! blocks ([`ChainCase`]) are validated block by block, each on its parent's post-state witness
//! ([`crate::validate_chained`]); the last valid block must be `lastblockhash`.

use std::collections::HashMap;

use alloy_primitives::B256;
use serde_json::Value;

use crate::chain::{Chain, ChainError};
use crate::error::BlockError;
use crate::import::{full_witness, header_of_block_rlp, hex_bytes, state_from_json, ImportError};
use crate::input::StatelessInput;
use crate::validate::validate_input;
use crate::Sha256Fn;

/// What a case expects of its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The block is valid: this state root, and this block hash (`lastblockhash`).
    Valid { state_root: B256, block_hash: B256 },
    /// The block is invalid, for this reason (the test's exception name).
    Invalid(String),
}

/// One single-block case, ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub network: String,
    pub input: StatelessInput,
    pub expect: Expect,
}

/// Why a case in a file is not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// More than one block (Cairn validates one block against its parent's state).
    MultiBlock(usize),
    /// Another network than the ones asked for.
    Network(String),
    /// The network's rules are not supported (before the merge).
    Unsupported(String),
}

/// The cases of a file that were not loaded, with why.
pub type Skipped = Vec<(String, Skip)>;

/// A case's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A valid block gave the expected state root and hash.
    Valid,
    /// An invalid block was refused, with this reason (its [`BlockError::class`] and message).
    Refused { class: &'static str, reason: String },
    /// Disagreement with the test: what happened instead.
    Fail(String),
}

impl Outcome {
    pub fn passed(&self) -> bool {
        !matches!(self, Outcome::Fail(_))
    }
}

/// Reads a BlockchainTests file: its single-block cases of the `networks` asked for (all post-merge ones
/// when empty), and the names of the cases skipped with why.
pub fn load(json: &str, networks: &[&str]) -> Result<(Vec<Case>, Skipped), ImportError> {
    let v: Value = serde_json::from_str(json).map_err(|e| ImportError(format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ImportError("a test file is an object of cases".into()))?;
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    for (name, case) in obj {
        let network = case
            .get("network")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        if !networks.is_empty() && !networks.contains(&network.as_str()) {
            skipped.push((name.clone(), Skip::Network(network)));
            continue;
        }
        let blocks = case
            .get("blocks")
            .and_then(|b| b.as_array())
            .ok_or_else(|| ImportError(format!("{name}: no `blocks`")))?;
        if blocks.len() != 1 {
            skipped.push((name.clone(), Skip::MultiBlock(blocks.len())));
            continue;
        }
        let chain = match Chain::test_network(&network) {
            Ok(c) => c,
            Err(e @ (ChainError::PreMerge(_) | ChainError::UnknownNetwork(_))) => {
                skipped.push((name.clone(), Skip::Unsupported(e.to_string())));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        cases.push(case_of(name, &network, chain, case, &blocks[0])?);
    }
    Ok((cases, skipped))
}

fn case_of(
    name: &str,
    network: &str,
    chain: Chain,
    case: &Value,
    block: &Value,
) -> Result<Case, ImportError> {
    let ctx = |e: ImportError| ImportError(format!("{name}: {e}"));
    let pre = state_from_json(case.get("pre").unwrap_or(&Value::Null)).map_err(ctx)?;
    let (root, mut witness) = full_witness(&pre);
    let genesis_rlp =
        hex_bytes("genesisRLP", case.get("genesisRLP").unwrap_or(&Value::Null)).map_err(ctx)?;
    let genesis_header = header_of_block_rlp(&genesis_rlp).map_err(ctx)?;
    let genesis: alloy_consensus::Header =
        alloy_rlp::Decodable::decode(&mut genesis_header.as_slice())
            .map_err(|e| ImportError(format!("{name}: genesis header: {e}")))?;
    if genesis.state_root != root {
        return Err(ImportError(format!(
            "{name}: the trie of `pre` has root {root}, the genesis header says {} (a bug in Cairn's trie)",
            genesis.state_root
        )));
    }
    witness.headers = vec![genesis_header];
    let rlp = hex_bytes("rlp", block.get("rlp").unwrap_or(&Value::Null)).map_err(ctx)?;
    let expect = match block.get("expectException").and_then(|e| e.as_str()) {
        Some(exception) => Expect::Invalid(exception.to_string()),
        None => {
            let header = block.get("blockHeader").ok_or_else(|| {
                ImportError(format!("{name}: a valid block without `blockHeader`"))
            })?;
            let h = |k: &str| -> Result<B256, ImportError> {
                let b = hex_bytes(k, header.get(k).unwrap_or(&Value::Null)).map_err(ctx)?;
                (b.len() == 32)
                    .then(|| B256::from_slice(&b))
                    .ok_or_else(|| ImportError(format!("{name}: `{k}` is not 32 bytes")))
            };
            let last = hex_bytes(
                "lastblockhash",
                case.get("lastblockhash").unwrap_or(&Value::Null),
            )
            .map_err(ctx)?;
            let block_hash = h("hash")?;
            if last != block_hash.as_slice() {
                return Err(ImportError(format!(
                    "{name}: a valid single block whose hash is not `lastblockhash`"
                )));
            }
            Expect::Valid {
                state_root: h("stateRoot")?,
                block_hash,
            }
        }
    };
    Ok(Case {
        name: name.to_string(),
        network: network.to_string(),
        input: StatelessInput::new(chain, rlp, witness),
        expect,
    })
}

/// Runs a case as the guest would (on the host). A panic inside validation is a failure, not a crash.
pub fn run(case: &Case, sha256: Sha256Fn) -> Outcome {
    let result = std::panic::catch_unwind(|| validate_input(&case.input, sha256, &mut |_| {}));
    let result: Result<_, BlockError> = match result {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Outcome::Fail(format!("validation panicked: {msg}"));
        }
    };
    match (&case.expect, result) {
        (
            Expect::Valid {
                state_root,
                block_hash,
            },
            Ok(executed),
        ) => {
            let j = &executed.journal;
            if j.post_state_root != *state_root {
                Outcome::Fail(format!(
                    "state root {} instead of {state_root}",
                    j.post_state_root
                ))
            } else if j.block_hash != *block_hash {
                Outcome::Fail(format!(
                    "block hash {} instead of {block_hash}",
                    j.block_hash
                ))
            } else {
                Outcome::Valid
            }
        }
        (Expect::Valid { .. }, Err(e)) => Outcome::Fail(format!("a valid block refused: {e}")),
        (Expect::Invalid(why), Ok(_)) => {
            Outcome::Fail(format!("an invalid block ({why}) accepted"))
        }
        (Expect::Invalid(why), Err(BlockError::Body(msg)))
            if why.starts_with("TransactionException") && msg.starts_with("transactions root") =>
        {
            // The test's filler left the invalid transaction out of the header's transactions root, so the
            // block is already invalid by its root. Check the transaction itself too: with the root
            // corrected, the block must still be refused.
            match with_transactions_root_fixed(case) {
                Some(fixed) => match std::panic::catch_unwind(|| validate_input(&fixed, sha256, &mut |_| {})) {
                    Ok(Ok(_)) => Outcome::Fail(format!(
                        "with its transactions root corrected, the block with an invalid transaction ({why}) \
                         is accepted"
                    )),
                    Ok(Err(e)) => Outcome::Refused {
                        class: e.class(),
                        reason: format!("{e} (after correcting the transactions root: {msg})"),
                    },
                    Err(_) => Outcome::Fail("validation panicked".into()),
                },
                None => Outcome::Refused {
                    class: "body",
                    reason: msg,
                },
            }
        }
        (Expect::Invalid(_), Err(e)) => {
            if matches!(
                e,
                BlockError::Witness(_) | BlockError::MissingPreStateRoot(_)
            ) {
                // The witness holds the whole pre-state: a witness error is Cairn's, not the block's.
                Outcome::Fail(format!("refused for a witness error, not the block: {e}"))
            } else {
                Outcome::Refused {
                    class: e.class(),
                    reason: e.to_string(),
                }
            }
        }
    }
}

/// The case's block with its header's transactions root set to its transactions' (`None` if it does not decode).
fn with_transactions_root_fixed(case: &Case) -> Option<StatelessInput> {
    use alloy_rlp::Decodable;
    let mut block = alloy_consensus::Block::<alloy_consensus::TxEnvelope>::decode(
        &mut case.input.block.as_slice(),
    )
    .ok()?;
    block.header.transactions_root =
        alloy_consensus::proofs::calculate_transaction_root(&block.body.transactions);
    Some(StatelessInput {
        block: crate::import::block_rlp(&block),
        ..case.input.clone()
    })
}

/// A case of several blocks, validated one after another.
#[derive(Debug, Clone)]
pub struct ChainCase {
    pub name: String,
    pub network: String,
    pub chain: Chain,
    /// The genesis block's hash and the witness of its whole state (its header as the only ancestor).
    pub genesis: (B256, crate::input::Witness),
    /// Each block's RLP and, for an invalid one, the test's exception.
    pub blocks: Vec<(Vec<u8>, Option<String>)>,
    pub last_hash: B256,
}

/// How a chain case went: its valid blocks and refused invalid ones, or the first disagreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainOutcome {
    Agreed { valid: usize, refused: usize },
    Fail(String),
}

/// Reads a BlockchainTests file's cases of more than one block, of the `networks` asked for (all supported
/// ones when empty).
pub fn load_chains(json: &str, networks: &[&str]) -> Result<Vec<ChainCase>, ImportError> {
    let v: Value = serde_json::from_str(json).map_err(|e| ImportError(format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ImportError("a test file is an object of cases".into()))?;
    let mut out = Vec::new();
    for (name, case) in obj {
        let network = case
            .get("network")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        if !networks.is_empty() && !networks.contains(&network.as_str()) {
            continue;
        }
        let Some(blocks) = case.get("blocks").and_then(|b| b.as_array()) else {
            continue;
        };
        if blocks.len() < 2 {
            continue;
        }
        let Ok(chain) = Chain::test_network(&network) else {
            continue;
        };
        let ctx = |e: ImportError| ImportError(format!("{name}: {e}"));
        let pre = state_from_json(case.get("pre").unwrap_or(&Value::Null)).map_err(ctx)?;
        let (root, mut witness) = full_witness(&pre);
        let genesis_rlp =
            hex_bytes("genesisRLP", case.get("genesisRLP").unwrap_or(&Value::Null)).map_err(ctx)?;
        let genesis_header = header_of_block_rlp(&genesis_rlp).map_err(ctx)?;
        let genesis: alloy_consensus::Header =
            alloy_rlp::Decodable::decode(&mut genesis_header.as_slice())
                .map_err(|e| ImportError(format!("{name}: genesis header: {e}")))?;
        if genesis.state_root != root {
            return Err(ImportError(format!(
                "{name}: the trie of `pre` has root {root}, the genesis header says {}",
                genesis.state_root
            )));
        }
        let genesis_hash = alloy_primitives::keccak256(&genesis_header);
        witness.headers = vec![genesis_header];
        let mut list = Vec::with_capacity(blocks.len());
        for b in blocks {
            let rlp = hex_bytes("rlp", b.get("rlp").unwrap_or(&Value::Null)).map_err(ctx)?;
            let exception = b
                .get("expectException")
                .and_then(|e| e.as_str())
                .map(str::to_string);
            list.push((rlp, exception));
        }
        let last = hex_bytes(
            "lastblockhash",
            case.get("lastblockhash").unwrap_or(&Value::Null),
        )
        .map_err(ctx)?;
        if last.len() != 32 {
            return Err(ImportError(format!(
                "{name}: `lastblockhash` is not 32 bytes"
            )));
        }
        out.push(ChainCase {
            name: name.clone(),
            network,
            chain,
            genesis: (genesis_hash, witness),
            blocks: list,
            last_hash: B256::from_slice(&last),
        });
    }
    Ok(out)
}

/// Validates a chain case block by block, each on the post-state of the block it names as its parent.
pub fn run_chain(case: &ChainCase, sha256: Sha256Fn) -> ChainOutcome {
    let mut states: HashMap<B256, crate::input::Witness> = HashMap::new();
    states.insert(case.genesis.0, case.genesis.1.clone());
    let (mut valid, mut refused) = (0, 0);
    for (i, (rlp, exception)) in case.blocks.iter().enumerate() {
        let parent = header_of_block_rlp(rlp).ok().and_then(|h| {
            alloy_rlp::Decodable::decode(&mut h.as_slice())
                .ok()
                .map(|h: alloy_consensus::Header| h.parent_hash)
        });
        let Some(witness) = parent.and_then(|p| states.get(&p)) else {
            if exception.is_some() {
                refused += 1;
                continue;
            }
            return ChainOutcome::Fail(format!(
                "block {i}: its parent is not a valid block of the case (or its header does not decode)"
            ));
        };
        let input = StatelessInput::new(case.chain.clone(), rlp.clone(), witness.clone());
        let result = std::panic::catch_unwind(|| crate::validate_chained(&input, sha256));
        match (exception, result) {
            (_, Err(_)) => return ChainOutcome::Fail(format!("block {i}: validation panicked")),
            (None, Ok(Ok((executed, post)))) => {
                states.insert(executed.journal.block_hash, post);
                valid += 1;
            }
            (None, Ok(Err(e))) => {
                return ChainOutcome::Fail(format!("block {i}: a valid block refused: {e}"))
            }
            (Some(why), Ok(Ok(_))) => {
                return ChainOutcome::Fail(format!("block {i}: an invalid block ({why}) accepted"))
            }
            (Some(_), Ok(Err(e))) => {
                if matches!(
                    e,
                    BlockError::Witness(_) | BlockError::MissingPreStateRoot(_)
                ) {
                    return ChainOutcome::Fail(format!(
                        "block {i}: refused for a witness error, not the block: {e}"
                    ));
                }
                refused += 1;
            }
        }
    }
    if !states.contains_key(&case.last_hash) {
        return ChainOutcome::Fail(format!(
            "lastblockhash {} is not among the valid blocks",
            case.last_hash
        ));
    }
    ChainOutcome::Agreed { valid, refused }
}
