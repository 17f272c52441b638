//! Fetching a block and its witness from an Ethereum node's JSON-RPC (`cairn block import --rpc URL N`):
//! `eth_chainId`, `debug_getRawBlock` (or, where the node lacks it, `eth_getBlockByNumber(n, true)`, whose
//! `hash` the re-encoded header must match) and `debug_executionWitness` (reth, Nethermind, Erigon; geth's
//! variant with JSON headers is accepted too).

use std::time::Duration;

use serde_json::{json, Value};

use crate::chain::Chain;
use crate::import::{
    block_from_json, block_rlp, raw_block_from_json, witness_from_json, ImportError,
};
use crate::input::Witness;

/// What one block's import needs from a node.
#[derive(Debug)]
pub struct Fetched {
    pub chain_id: u64,
    /// `Some` for the built-in chains; others need their genesis file.
    pub chain: Option<Chain>,
    pub block: Vec<u8>,
    pub witness: Witness,
    /// Which method gave the block.
    pub block_from: &'static str,
}

/// A JSON-RPC client for one node.
#[derive(Debug)]
pub struct Rpc {
    url: String,
    http: reqwest::blocking::Client,
    next_id: u64,
}

impl Rpc {
    pub fn new(url: &str) -> Result<Self, ImportError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| ImportError(format!("HTTP client: {e}")))?;
        Ok(Rpc {
            url: url.to_string(),
            http,
            next_id: 1,
        })
    }

    /// Calls `method`; a JSON-RPC error comes back as `Err` with the node's message.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, ImportError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .map_err(|e| ImportError(format!("{method} at {}: {e}", self.url)))?;
        let status = response.status();
        let text = response
            .text()
            .map_err(|e| ImportError(format!("{method}: reading the answer: {e}")))?;
        if !status.is_success() {
            return Err(ImportError(format!(
                "{method} at {}: HTTP {status}: {}",
                self.url,
                text.chars().take(200).collect::<String>()
            )));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| ImportError(format!("{method}: the answer is not JSON: {e}")))?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(ImportError(format!("{method}: the node says: {err}")));
        }
        v.get("result")
            .cloned()
            .filter(|r| !r.is_null())
            .ok_or_else(|| ImportError(format!("{method}: no result (block not found?)")))
    }

    /// The chain id, the block and its witness.
    pub fn fetch(&mut self, number: u64) -> Result<Fetched, ImportError> {
        let n = format!("0x{number:x}");
        let chain_id =
            crate::import::quantity("eth_chainId", &self.call("eth_chainId", json!([]))?)?
                .saturating_to::<u64>();
        let (block, block_from) = match self.call("debug_getRawBlock", json!([n])) {
            Ok(raw) => (raw_block_from_json(&raw)?, "debug_getRawBlock"),
            Err(_) => {
                let b = self.call("eth_getBlockByNumber", json!([n, true]))?;
                (block_rlp(&block_from_json(&b)?), "eth_getBlockByNumber")
            }
        };
        let witness = witness_from_json(&self.call("debug_executionWitness", json!([n]))?)?;
        Ok(Fetched {
            chain_id,
            chain: Chain::named(&chain_id.to_string()),
            block,
            witness,
            block_from,
        })
    }
}
