//! Building the guest's input from what Ethereum nodes and tools hand out:
//! - a block as `eth_getBlockByNumber(n, true)` returns it (JSON), or as `debug_getRawBlock` does (RLP hex);
//! - its witness as reth's `debug_executionWitness` returns it (`state`, `codes`, `keys`, `headers`), or
//!   geth's variant (`headers` as JSON header objects);
//! - ethrex-replay's cache files (`{blocks, witness, network}`), which hold both;
//! - a whole pre-state (Ethereum's BlockchainTests `pre`), from which a witness of every node is built.

use std::collections::BTreeMap;
use std::fmt;

use alloy_consensus::{
    Block, BlockBody, Header, Signed, TxEip1559, TxEip2930, TxEip4844, TxEip4844Variant, TxEip7702,
    TxEnvelope, TxLegacy,
};
use alloy_eips::eip4895::{Withdrawal, Withdrawals};
use alloy_primitives::{keccak256, Address, Signature, B256, U256};
use alloy_rlp::Encodable;
use alloy_trie::{TrieAccount, EMPTY_ROOT_HASH, KECCAK_EMPTY};
use serde_json::Value;

use crate::chain::{Chain, ChainError};
use crate::input::Witness;
use crate::validate::header_rlp;

/// Why a block, witness or test file cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError(pub String);

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ImportError {}

impl From<ChainError> for ImportError {
    fn from(e: ChainError) -> Self {
        ImportError(e.to_string())
    }
}

fn err(msg: impl Into<String>) -> ImportError {
    ImportError(msg.into())
}

/// Bytes from a `0x` hex string (the prefix is optional).
pub fn hex_bytes(what: &str, v: &Value) -> Result<Vec<u8>, ImportError> {
    let s = v
        .as_str()
        .ok_or_else(|| err(format!("{what}: expected a hex string, got {v}")))?;
    alloy_primitives::hex::decode(s.trim()).map_err(|e| err(format!("{what}: not hex: {e}")))
}

/// A number from a JSON number or a (hex or decimal) string.
pub fn quantity(what: &str, v: &Value) -> Result<U256, ImportError> {
    if let Some(n) = v.as_u64() {
        return Ok(U256::from(n));
    }
    let s = v
        .as_str()
        .ok_or_else(|| err(format!("{what}: expected a number, got {v}")))?;
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some("") => Ok(U256::ZERO),
        Some(h) => U256::from_str_radix(h, 16),
        None => U256::from_str_radix(s, 10),
    };
    parsed.map_err(|e| err(format!("{what}: `{s}` is not a number: {e}")))
}

fn field<'a>(v: &'a Value, key: &str, what: &str) -> Result<&'a Value, ImportError> {
    v.get(key)
        .filter(|x| !x.is_null())
        .ok_or_else(|| err(format!("{what}: no `{key}`")))
}

fn list<'a>(v: &'a Value, key: &str, what: &str) -> Result<&'a Vec<Value>, ImportError> {
    field(v, key, what)?
        .as_array()
        .ok_or_else(|| err(format!("{what}: `{key}` is not a list")))
}

/// A transaction from its RPC JSON (`eth_getBlockByNumber(n, true)`'s `transactions` items).
pub fn tx_from_json(index: usize, v: &Value) -> Result<TxEnvelope, ImportError> {
    let what = format!("transaction {index}");
    let ty = match v.get("type") {
        None | Some(Value::Null) => 0,
        Some(t) => quantity(&what, t)?.saturating_to::<u64>(),
    };
    let r = quantity(&what, field(v, "r", &what)?)?;
    let s = quantity(&what, field(v, "s", &what)?)?;
    let parity = match v.get("yParity").filter(|p| !p.is_null()) {
        Some(p) => quantity(&what, p)?,
        None => {
            // `v`: 0/1, 27/28, or EIP-155's chain_id * 2 + 35/36.
            let vv = quantity(&what, field(v, "v", &what)?)?;
            if vv <= U256::from(1) {
                vv
            } else if vv == U256::from(27) || vv == U256::from(28) {
                vv - U256::from(27)
            } else if vv >= U256::from(35) {
                (vv - U256::from(35)) % U256::from(2)
            } else {
                return Err(err(format!(
                    "{what}: signature v {vv} is not a valid value"
                )));
            }
        }
    };
    if parity > U256::from(1) {
        return Err(err(format!("{what}: y parity {parity} is not 0 or 1")));
    }
    let sig = Signature::new(r, s, parity == U256::from(1));
    let parse = |e: serde_json::Error| err(format!("{what}: {e}"));
    let tx = match ty {
        0 => {
            let tx: TxLegacy = serde_json::from_value(v.clone()).map_err(parse)?;
            TxEnvelope::Legacy(Signed::new_unhashed(tx, sig))
        }
        1 => {
            let tx: TxEip2930 = serde_json::from_value(v.clone()).map_err(parse)?;
            TxEnvelope::Eip2930(Signed::new_unhashed(tx, sig))
        }
        2 => {
            let tx: TxEip1559 = serde_json::from_value(v.clone()).map_err(parse)?;
            TxEnvelope::Eip1559(Signed::new_unhashed(tx, sig))
        }
        3 => {
            let tx: TxEip4844 = serde_json::from_value(v.clone()).map_err(parse)?;
            TxEnvelope::Eip4844(Signed::new_unhashed(TxEip4844Variant::TxEip4844(tx), sig))
        }
        4 => {
            let tx: TxEip7702 = serde_json::from_value(v.clone()).map_err(parse)?;
            TxEnvelope::Eip7702(Signed::new_unhashed(tx, sig))
        }
        other => return Err(err(format!("{what}: unknown transaction type {other}"))),
    };
    if let Some(hash) = v.get("hash").filter(|h| !h.is_null()) {
        let expected = B256::from_slice(&hex_bytes(&what, hash)?);
        if *tx.tx_hash() != expected {
            return Err(err(format!(
                "{what}: re-encoded, it hashes to {}, the JSON says {expected}",
                tx.tx_hash()
            )));
        }
    }
    Ok(tx)
}

/// A header from its RPC JSON; checks `hash` when the JSON has one.
pub fn header_from_json(v: &Value) -> Result<Header, ImportError> {
    let header: Header =
        serde_json::from_value(v.clone()).map_err(|e| err(format!("header: {e}")))?;
    if let Some(hash) = v.get("hash").filter(|h| !h.is_null()) {
        let expected = B256::from_slice(&hex_bytes("header hash", hash)?);
        if header.hash_slow() != expected {
            return Err(err(format!(
                "header of block {}: re-encoded, it hashes to {}, the JSON says {expected} (a field this \
                 importer does not know?)",
                header.number,
                header.hash_slow()
            )));
        }
    }
    Ok(header)
}

/// A block from `eth_getBlockByNumber(n, true)` JSON, or from `{header, body: {transactions, uncles,
/// withdrawals}}` (ethrex-replay's caches). Ommers must be empty (they are only listed by hash in RPC JSON,
/// and a block after the merge has none).
pub fn block_from_json(v: &Value) -> Result<Block<TxEnvelope>, ImportError> {
    let (header_json, body_json) = match (v.get("header"), v.get("body")) {
        (Some(h), Some(b)) => (h, b),
        _ => (v, v),
    };
    let header = header_from_json(header_json)?;
    let txs = list(body_json, "transactions", "block")?;
    let mut transactions = Vec::with_capacity(txs.len());
    for (i, t) in txs.iter().enumerate() {
        if t.is_string() {
            return Err(err(
                "the block lists transactions by hash: fetch it with full transactions \
                 (eth_getBlockByNumber(n, true))",
            ));
        }
        transactions.push(tx_from_json(i, t)?);
    }
    let uncles = body_json.get("uncles").and_then(|u| u.as_array());
    if uncles.is_some_and(|u| !u.is_empty()) {
        return Err(err(
            "the block has ommers: blocks before the merge are not supported",
        ));
    }
    let withdrawals = match body_json.get("withdrawals").filter(|w| !w.is_null()) {
        None => None,
        Some(w) => {
            let w: Vec<Withdrawal> =
                serde_json::from_value(w.clone()).map_err(|e| err(format!("withdrawals: {e}")))?;
            Some(Withdrawals::new(w))
        }
    };
    Ok(Block {
        header,
        body: BlockBody {
            transactions,
            ommers: vec![],
            withdrawals,
        },
    })
}

/// A block's RLP, as `debug_getRawBlock` returns it.
pub fn block_rlp(block: &Block<TxEnvelope>) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.length());
    block.encode(&mut out);
    out
}

/// A witness from `debug_executionWitness`'s result. `headers` may be RLP hex (reth) or JSON header
/// objects (geth); `keys` is ignored.
pub fn witness_from_json(v: &Value) -> Result<Witness, ImportError> {
    let hexes = |key: &str| -> Result<Vec<Vec<u8>>, ImportError> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, x)| hex_bytes(&format!("witness {key}[{i}]"), x))
                .collect(),
            Some(other) => Err(err(format!("witness: `{key}` is not a list: {other}"))),
        }
    };
    let mut headers = Vec::new();
    for (i, h) in list(v, "headers", "witness")?.iter().enumerate() {
        headers.push(if h.is_object() {
            header_rlp(&header_from_json(h)?)
        } else {
            hex_bytes(&format!("witness headers[{i}]"), h)?
        });
    }
    Ok(Witness {
        state: hexes("state")?,
        codes: hexes("codes")?,
        headers,
    })
}

/// ethrex-replay's cache file: `{blocks: [..], witness, network: {PublicNetwork: "Hoodi"} | ..}`. Returns the
/// chain, and each block's RLP (one witness covers them all; Cairn validates the first).
pub fn ethrex_cache(v: &Value) -> Result<(Chain, Vec<Vec<u8>>, Witness), ImportError> {
    let chain = match v.get("network") {
        Some(Value::Object(n)) if n.contains_key("PublicNetwork") => {
            let name = n["PublicNetwork"].as_str().unwrap_or_default();
            Chain::named(name).ok_or_else(|| err(format!("unknown public network `{name}`")))?
        }
        Some(Value::String(name)) => {
            Chain::named(name).ok_or_else(|| err(format!("unknown network `{name}`")))?
        }
        other => {
            return Err(err(format!(
                "cache: `network` {other:?} is not a public network; give --chain or --genesis"
            )))
        }
    };
    let blocks = list(v, "blocks", "cache")?
        .iter()
        .map(|b| block_from_json(b).map(|b| block_rlp(&b)))
        .collect::<Result<Vec<_>, _>>()?;
    let witness = witness_from_json(field(v, "witness", "cache")?)?;
    Ok((chain, blocks, witness))
}

/// One account of a whole state (BlockchainTests' `pre`, a genesis `alloc`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullAccount {
    pub nonce: u64,
    pub balance: U256,
    pub code: Vec<u8>,
    pub storage: BTreeMap<U256, U256>,
}

/// A whole state from JSON: `{address: {balance, nonce, code, storage: {slot: value}}}`.
pub fn state_from_json(v: &Value) -> Result<BTreeMap<Address, FullAccount>, ImportError> {
    let obj = v
        .as_object()
        .ok_or_else(|| err("state: expected an object of accounts"))?;
    let mut out = BTreeMap::new();
    for (addr, acc) in obj {
        let address: Address = addr
            .parse()
            .map_err(|e| err(format!("state: `{addr}` is not an address: {e}")))?;
        let what = format!("account {addr}");
        let get = |k: &str| acc.get(k).filter(|x| !x.is_null());
        let nonce = match get("nonce") {
            Some(n) => quantity(&what, n)?,
            None => U256::ZERO,
        };
        let nonce = u64::try_from(nonce).map_err(|_| err(format!("{what}: nonce over 2^64")))?;
        let balance = match get("balance") {
            Some(b) => quantity(&what, b)?,
            None => U256::ZERO,
        };
        let code = match get("code") {
            Some(c) => hex_bytes(&what, c)?,
            None => vec![],
        };
        let mut storage = BTreeMap::new();
        if let Some(s) = get("storage").and_then(|s| s.as_object()) {
            for (k, val) in s {
                let key = quantity(&what, &Value::String(k.clone()))?;
                let value = quantity(&what, val)?;
                if !value.is_zero() {
                    storage.insert(key, value);
                }
            }
        }
        out.insert(
            address,
            FullAccount {
                nonce,
                balance,
                code,
                storage,
            },
        );
    }
    Ok(out)
}

/// The state root of a whole state and a witness of every one of its nodes and codes (what a stateless
/// validator needs to run any block on it). `headers` is left empty.
pub fn full_witness(state: &BTreeMap<Address, FullAccount>) -> (B256, Witness) {
    let mut nodes: Vec<Vec<u8>> = Vec::new();
    let mut codes = Vec::new();
    let mut accounts = Vec::with_capacity(state.len());
    for (address, acc) in state {
        let storage_root = if acc.storage.is_empty() {
            EMPTY_ROOT_HASH
        } else {
            let (root, n) = cairn_mpt::nodes_of(
                acc.storage
                    .iter()
                    .map(|(k, v)| (keccak256(k.to_be_bytes::<32>()), alloy_rlp::encode(v))),
            );
            nodes.extend(n);
            root
        };
        let code_hash = if acc.code.is_empty() {
            KECCAK_EMPTY
        } else {
            codes.push(acc.code.clone());
            keccak256(&acc.code)
        };
        let rlp = alloy_rlp::encode(TrieAccount {
            nonce: acc.nonce,
            balance: acc.balance,
            storage_root,
            code_hash,
        });
        accounts.push((keccak256(address), rlp));
    }
    let (root, n) = cairn_mpt::nodes_of(accounts);
    nodes.extend(n);
    nodes.sort();
    nodes.dedup();
    codes.sort();
    codes.dedup();
    (
        root,
        Witness {
            state: nodes,
            codes,
            headers: vec![],
        },
    )
}

/// The first item (the header) of a block's RLP, as raw bytes.
pub fn header_of_block_rlp(block: &[u8]) -> Result<Vec<u8>, ImportError> {
    let mut b = block;
    let outer = alloy_rlp::Header::decode(&mut b).map_err(|e| err(format!("block RLP: {e}")))?;
    if !outer.list {
        return Err(err("block RLP: not a list"));
    }
    let mut inner = b;
    let h = alloy_rlp::Header::decode(&mut inner).map_err(|e| err(format!("block RLP: {e}")))?;
    let len = (b.len() - inner.len()) + h.payload_length;
    if len > b.len() {
        return Err(err("block RLP: the header runs past the block"));
    }
    Ok(b[..len].to_vec())
}

/// Bytes of a JSON-RPC `result` that is a hex string (`debug_getRawBlock`).
pub fn raw_block_from_json(v: &Value) -> Result<Vec<u8>, ImportError> {
    hex_bytes("raw block", v)
}
