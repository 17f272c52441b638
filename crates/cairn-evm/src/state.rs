//! State snapshots and the two commitments the journal can carry.

use std::collections::BTreeMap;

use alloy_trie::root::{state_root_unhashed, storage_root_unhashed};
use alloy_trie::TrieAccount;
use revm::database::{AccountState, CacheDB};
use revm::primitives::{Address, B256, KECCAK_EMPTY, U256};

use crate::input::Commitment;
use crate::Sha256Fn;

/// One account as committed: non-zero storage only, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateAccount {
    pub nonce: u64,
    pub balance: U256,
    pub code_hash: B256,
    pub storage: BTreeMap<U256, U256>,
}

impl StateAccount {
    /// Empty in the sense of EIP-161 (no nonce, balance, code or storage): such accounts are not state.
    fn is_empty(&self) -> bool {
        self.nonce == 0
            && self.balance.is_zero()
            && self.code_hash == KECCAK_EMPTY
            && self.storage.is_empty()
    }
}

/// Accounts sorted by address.
pub type State = BTreeMap<Address, StateAccount>;

/// The state a `CacheDB` holds now: every account it has (the witness plus what execution created), empty
/// and destroyed ones left out, zero storage left out.
pub fn snapshot<D>(db: &CacheDB<D>) -> State {
    let mut state = State::new();
    for (address, account) in &db.cache.accounts {
        if account.account_state == AccountState::NotExisting {
            continue;
        }
        let entry = StateAccount {
            nonce: account.info.nonce,
            balance: account.info.balance,
            code_hash: account.info.code_hash,
            storage: account
                .storage
                .iter()
                .filter(|(_, v)| !v.is_zero())
                .map(|(k, v)| (*k, *v))
                .collect(),
        };
        if !entry.is_empty() {
            state.insert(*address, entry);
        }
    }
    state
}

/// Domain separator of the SHA-256 commitment.
pub const SHA256_STATE_DOMAIN: &[u8] = b"cairn-evm/state/v1";

/// The commitment to `state` in `mode`.
///
/// SHA-256 sorted: `SHA-256(domain || accounts: u32 LE || for each account by address: address (20) ||
/// nonce (u64 LE) || balance (32 BE) || code hash (32) || slots: u32 LE || for each non-zero slot by key:
/// key (32 BE) || value (32 BE))`. Merkle-Patricia: Ethereum's state root over these accounts.
pub fn commit(state: &State, mode: Commitment, sha256: Sha256Fn) -> [u8; 32] {
    match mode {
        Commitment::Sha256Sorted => {
            let slots: usize = state.values().map(|a| a.storage.len()).sum();
            let mut buf =
                Vec::with_capacity(SHA256_STATE_DOMAIN.len() + 4 + state.len() * 96 + slots * 64);
            buf.extend_from_slice(SHA256_STATE_DOMAIN);
            buf.extend_from_slice(&(state.len() as u32).to_le_bytes());
            for (address, account) in state {
                buf.extend_from_slice(address.as_slice());
                buf.extend_from_slice(&account.nonce.to_le_bytes());
                buf.extend_from_slice(&account.balance.to_be_bytes::<32>());
                buf.extend_from_slice(account.code_hash.as_slice());
                buf.extend_from_slice(&(account.storage.len() as u32).to_le_bytes());
                for (key, value) in &account.storage {
                    buf.extend_from_slice(&key.to_be_bytes::<32>());
                    buf.extend_from_slice(&value.to_be_bytes::<32>());
                }
            }
            sha256(&buf)
        }
        Commitment::MerklePatricia => {
            let accounts = state.iter().map(|(address, account)| {
                let storage_root = storage_root_unhashed(
                    account
                        .storage
                        .iter()
                        .map(|(k, v)| (B256::from(k.to_be_bytes::<32>()), *v)),
                );
                (
                    *address,
                    TrieAccount::new(
                        account.nonce,
                        account.balance,
                        storage_root,
                        account.code_hash,
                    ),
                )
            });
            state_root_unhashed(accounts).0
        }
    }
}
