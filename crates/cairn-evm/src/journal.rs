//! What a proof of a block says: the journal the `eth-block` guest commits, 188 bytes in a fixed layout.
//! Integers are big-endian, so a contract can read each field with one `calldataload`/shift.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | chain id |
//! | 8 | 8 | block number |
//! | 16 | 32 | parent hash |
//! | 48 | 32 | block hash (keccak-256 of the header's RLP) |
//! | 80 | 32 | pre-state root (the parent's state root) |
//! | 112 | 32 | post-state root (the block's state root) |
//! | 144 | 8 | gas used |
//! | 152 | 4 | transaction count |
//! | 156 | 32 | chain digest: SHA-256 of the chain's rules as the guest read them (`Chain::digest`) |
//!
//! A receipt with this journal and `eth-block`'s image id says: *the block with hash H, applied to the state
//! of its parent P (state root S), is valid under the rules with digest D and gives state root S'.*

use std::fmt;

use alloy_primitives::B256;

/// Size of the journal in bytes.
pub const JOURNAL_LEN: usize = 188;

/// What a proved block says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    pub chain_id: u64,
    pub number: u64,
    pub parent_hash: B256,
    pub block_hash: B256,
    pub pre_state_root: B256,
    pub post_state_root: B256,
    pub gas_used: u64,
    pub tx_count: u32,
    pub chain_digest: [u8; 32],
}

impl Journal {
    pub fn to_bytes(&self) -> [u8; JOURNAL_LEN] {
        let mut out = [0u8; JOURNAL_LEN];
        out[0..8].copy_from_slice(&self.chain_id.to_be_bytes());
        out[8..16].copy_from_slice(&self.number.to_be_bytes());
        out[16..48].copy_from_slice(self.parent_hash.as_slice());
        out[48..80].copy_from_slice(self.block_hash.as_slice());
        out[80..112].copy_from_slice(self.pre_state_root.as_slice());
        out[112..144].copy_from_slice(self.post_state_root.as_slice());
        out[144..152].copy_from_slice(&self.gas_used.to_be_bytes());
        out[152..156].copy_from_slice(&self.tx_count.to_be_bytes());
        out[156..188].copy_from_slice(&self.chain_digest);
        out
    }

    /// Reads a journal; `None` unless it is exactly [`JOURNAL_LEN`] bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Journal> {
        if b.len() != JOURNAL_LEN {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(Journal {
            chain_id: u64_at(0),
            number: u64_at(8),
            parent_hash: B256::from_slice(&b[16..48]),
            block_hash: B256::from_slice(&b[48..80]),
            pre_state_root: B256::from_slice(&b[80..112]),
            post_state_root: B256::from_slice(&b[112..144]),
            gas_used: u64_at(144),
            tx_count: u32::from_be_bytes(b[152..156].try_into().expect("4 bytes")),
            chain_digest: b[156..188].try_into().expect("32 bytes"),
        })
    }
}

impl fmt::Display for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chain id        {}", self.chain_id)?;
        writeln!(f, "block           {} {}", self.number, self.block_hash)?;
        writeln!(f, "parent          {}", self.parent_hash)?;
        writeln!(f, "pre-state root  {}", self.pre_state_root)?;
        writeln!(f, "post-state root {}", self.post_state_root)?;
        writeln!(f, "gas used        {}", self.gas_used)?;
        writeln!(f, "transactions    {}", self.tx_count)?;
        write!(f, "chain digest    0x{}", hex_str(&self.chain_digest))
    }
}

fn hex_str(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_lengths() {
        let j = Journal {
            chain_id: 560_048,
            number: 1_265_656,
            parent_hash: B256::repeat_byte(1),
            block_hash: B256::repeat_byte(2),
            pre_state_root: B256::repeat_byte(3),
            post_state_root: B256::repeat_byte(4),
            gas_used: 4_402_947,
            tx_count: 11,
            chain_digest: [5; 32],
        };
        let b = j.to_bytes();
        assert_eq!(&b[0..8], &560_048u64.to_be_bytes());
        assert_eq!(Journal::from_bytes(&b), Some(j));
        assert_eq!(Journal::from_bytes(&b[..187]), None);
    }
}
