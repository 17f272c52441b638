//! The state a block executes on: nothing but the witness. Accounts and storage slots are read from sparse
//! Merkle-Patricia tries opened at the parent's state root (and each account's storage root), code from the
//! witness's codes (by their keccak hash), block hashes from the hash-chained ancestor headers. Whatever the
//! witness lacks fails the block with a [`WitnessError`]: nothing defaults, so a prover cannot make a block
//! valid by leaving part of the state out.

use std::collections::HashMap;
use std::fmt;

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_rlp::Decodable;
use alloy_trie::{TrieAccount, EMPTY_ROOT_HASH, KECCAK_EMPTY};
use cairn_mpt::{NodeStore, SparseTrie, TrieError};
use revm::database_interface::DBErrorMarker;
use revm::state::{AccountInfo, Bytecode};
use revm::Database;

/// Why the witness cannot answer what the block asks of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessError {
    /// A trie node on the way to an account or slot is not in the witness.
    MissingNode { what: String, node: B256 },
    /// A storage trie's root node is not in the witness.
    MissingStorageRoot { address: Address, root: B256 },
    /// Code the block runs is not in the witness.
    MissingCode(B256),
    /// `BLOCKHASH` of a block whose header is not in the witness.
    MissingBlockHash(u64),
    /// A node, account or slot in the witness does not decode.
    Malformed(String),
}

impl fmt::Display for WitnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WitnessError::MissingNode { what, node } => write!(
                f,
                "the witness lacks trie node {node} on the path to {what}"
            ),
            WitnessError::MissingStorageRoot { address, root } => write!(
                f,
                "the witness lacks the storage root node {root} of account {address}"
            ),
            WitnessError::MissingCode(hash) => write!(f, "the witness lacks the code with hash {hash}"),
            WitnessError::MissingBlockHash(n) => write!(
                f,
                "BLOCKHASH({n}) needs the header of block {n}, which is not among the witness's headers"
            ),
            WitnessError::Malformed(msg) => write!(f, "malformed witness: {msg}"),
        }
    }
}

impl std::error::Error for WitnessError {}
impl DBErrorMarker for WitnessError {}

fn trie_err(what: impl FnOnce() -> String, e: TrieError) -> WitnessError {
    match e {
        TrieError::Unresolved { hash } => WitnessError::MissingNode {
            what: what(),
            node: hash,
        },
        other => WitnessError::Malformed(format!("{}: {other}", what())),
    }
}

/// An account's storage trie, opened when the block first reads one of its slots.
#[derive(Debug)]
pub(crate) struct Storage {
    pub(crate) trie: SparseTrie,
}

/// The witness as a revm [`Database`].
#[derive(Debug)]
pub struct WitnessDb<'w> {
    pub(crate) store: &'w NodeStore,
    pub(crate) accounts: SparseTrie,
    /// Accounts as the pre-state has them (`None`: proven absent), by address.
    pub(crate) loaded: HashMap<Address, Option<TrieAccount>>,
    pub(crate) storage: HashMap<Address, Storage>,
    codes: HashMap<B256, Bytecode>,
    block_hashes: HashMap<u64, B256>,
    /// The first error the witness gave revm (revm boxes database errors; this keeps the typed one).
    error: Option<WitnessError>,
}

impl<'w> WitnessDb<'w> {
    pub(crate) fn new(
        store: &'w NodeStore,
        accounts: SparseTrie,
        codes: HashMap<B256, Bytecode>,
        block_hashes: HashMap<u64, B256>,
    ) -> Self {
        WitnessDb {
            store,
            accounts,
            loaded: HashMap::new(),
            storage: HashMap::new(),
            codes,
            block_hashes,
            error: None,
        }
    }

    /// The first error this database returned to the EVM, if any.
    pub fn take_error(&mut self) -> Option<WitnessError> {
        self.error.take()
    }

    fn remember<T>(&mut self, r: Result<T, WitnessError>) -> Result<T, WitnessError> {
        if let Err(e) = &r {
            self.error.get_or_insert_with(|| e.clone());
        }
        r
    }

    /// The pre-state account at `address` (`None`: the account trie proves it absent).
    pub(crate) fn account(
        &mut self,
        address: Address,
    ) -> Result<Option<TrieAccount>, WitnessError> {
        if let Some(a) = self.loaded.get(&address) {
            return Ok(*a);
        }
        let key = keccak256(address);
        let account = match self
            .accounts
            .get(&key)
            .map_err(|e| trie_err(|| format!("account {address}"), e))?
        {
            None => None,
            Some(mut rlp) => Some(TrieAccount::decode(&mut rlp).map_err(|e| {
                WitnessError::Malformed(format!("account {address} does not decode: {e}"))
            })?),
        };
        self.loaded.insert(address, account);
        Ok(account)
    }

    /// The storage trie of `address` as the pre-state has it.
    pub(crate) fn storage_trie(&mut self, address: Address) -> Result<&mut Storage, WitnessError> {
        if !self.storage.contains_key(&address) {
            let root = self
                .account(address)?
                .map(|a| a.storage_root)
                .unwrap_or(EMPTY_ROOT_HASH);
            let trie = SparseTrie::open(root, self.store).map_err(|e| match e {
                TrieError::MissingRoot(root) => WitnessError::MissingStorageRoot { address, root },
                other => trie_err(|| format!("the storage of {address}"), other),
            })?;
            self.storage.insert(address, Storage { trie });
        }
        Ok(self.storage.get_mut(&address).expect("inserted above"))
    }
}

/// A storage value as the trie stores it: the RLP of the value without leading zeros.
pub(crate) fn decode_slot(
    address: Address,
    slot: U256,
    mut rlp: &[u8],
) -> Result<U256, WitnessError> {
    let v = U256::decode(&mut rlp).map_err(|e| {
        WitnessError::Malformed(format!("slot {slot:#x} of {address} does not decode: {e}"))
    })?;
    if !rlp.is_empty() || v.is_zero() {
        return Err(WitnessError::Malformed(format!(
            "slot {slot:#x} of {address} is not a canonical non-zero value"
        )));
    }
    Ok(v)
}

impl Database for WitnessDb<'_> {
    type Error = WitnessError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, WitnessError> {
        let r = self.account(address);
        Ok(self.remember(r)?.map(|a| AccountInfo {
            balance: a.balance,
            nonce: a.nonce,
            code_hash: a.code_hash,
            code: (a.code_hash == KECCAK_EMPTY).then(Bytecode::default),
            ..Default::default()
        }))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, WitnessError> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        let r = self
            .codes
            .get(&code_hash)
            .cloned()
            .ok_or(WitnessError::MissingCode(code_hash));
        self.remember(r)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, WitnessError> {
        let r = self.read_slot(address, index);
        self.remember(r)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, WitnessError> {
        let r = self
            .block_hashes
            .get(&number)
            .copied()
            .ok_or(WitnessError::MissingBlockHash(number));
        self.remember(r)
    }
}

impl WitnessDb<'_> {
    fn read_slot(&mut self, address: Address, index: U256) -> Result<U256, WitnessError> {
        let key = keccak256(index.to_be_bytes::<32>());
        let storage = self.storage_trie(address)?;
        match storage
            .trie
            .get(&key)
            .map_err(|e| trie_err(|| format!("slot {index:#x} of {address}"), e))?
        {
            None => Ok(U256::ZERO),
            Some(rlp) => decode_slot(address, index, rlp),
        }
    }
}
