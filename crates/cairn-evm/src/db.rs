//! The database under execution: only the witness. Anything the block touches that the input does not carry
//! is an error, never an assumed value (an omitted account or slot cannot make a false block prove).

use revm::database_interface::{DBErrorMarker, DatabaseRef};
use revm::primitives::{Address, StorageKey, StorageValue, B256};
use revm::state::{AccountInfo, Bytecode};

/// A [`DatabaseRef`] that knows nothing: placed under a `CacheDB` filled with the witness, every read that
/// misses the witness fails with [`MissingWitness`].
#[derive(Debug, Default, Clone, Copy)]
pub struct WitnessOnly;

/// A read the witness could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissingWitness {
    Account(Address),
    Storage(Address, StorageKey),
    Code(B256),
    BlockHash(u64),
}

impl core::fmt::Display for MissingWitness {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MissingWitness::Account(a) => write!(f, "account {a} is not in the block's witness"),
            MissingWitness::Storage(a, k) => write!(
                f,
                "storage slot {k:#x} of {a} is not in the block's witness"
            ),
            MissingWitness::Code(h) => write!(f, "code {h} is not in the block's witness"),
            MissingWitness::BlockHash(n) => {
                write!(
                    f,
                    "BLOCKHASH({n}) was read; block hashes are not part of a block input"
                )
            }
        }
    }
}

impl std::error::Error for MissingWitness {}
impl DBErrorMarker for MissingWitness {}

impl DatabaseRef for WitnessOnly {
    type Error = MissingWitness;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Err(MissingWitness::Account(address))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Err(MissingWitness::Code(code_hash))
    }

    fn storage_ref(
        &self,
        address: Address,
        index: StorageKey,
    ) -> Result<StorageValue, Self::Error> {
        Err(MissingWitness::Storage(address, index))
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        Err(MissingWitness::BlockHash(number))
    }
}
