//! Header rules of a proof-of-stake block, on its own and against its parent (what reth's
//! `EthBeaconConsensus` checks before execution): number, timestamp, gas limit bounds, EIP-1559 base fee,
//! EIP-4844 blob gas, the EIP-4788 beacon root, the EIP-7685 requests hash, the fields the merge fixed to
//! zero, and which optional fields each fork requires.

use alloy_consensus::constants::EMPTY_OMMER_ROOT_HASH;
use alloy_consensus::Header;
use alloy_eips::eip1559::{BaseFeeParams, INITIAL_BASE_FEE};
use alloy_eips::eip4844::DATA_GAS_PER_BLOB;
use alloy_eips::eip7840::BlobParams;
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::{B64, U256};

use crate::chain::ChainSpec;
use crate::error::BlockError;

/// The most extra data a header may carry.
pub const MAX_EXTRA_DATA: usize = 32;
/// The smallest gas limit a block may have.
pub const MIN_GAS_LIMIT: u64 = 5_000;
/// A block's gas limit may move by less than parent / this per block.
pub const GAS_LIMIT_BOUND_DIVISOR: u64 = 1_024;
/// The largest gas limit (EIP-1985's 2^63 - 1).
pub const MAX_GAS_LIMIT: u64 = i64::MAX as u64;
/// EIP-7934 (Osaka): a block's RLP may not exceed 10 MiB less a 2 MiB margin.
pub const MAX_RLP_BLOCK_SIZE: usize = 10_485_760 - 2_097_152;

fn bad(field: &'static str, reason: impl Into<String>) -> BlockError {
    BlockError::Header {
        field,
        reason: reason.into(),
    }
}

fn presence<T>(
    field: &'static str,
    value: &Option<T>,
    required: bool,
    fork: &str,
) -> Result<(), BlockError> {
    match (value.is_some(), required) {
        (false, true) => Err(bad(field, format!("missing, required from {fork} on"))),
        (true, false) => Err(bad(field, format!("present before {fork}"))),
        _ => Ok(()),
    }
}

/// Rules the header must meet on its own (`block_len`: the size of the whole block's RLP).
pub fn check_standalone(
    header: &Header,
    block_len: usize,
    spec: &ChainSpec,
) -> Result<(), BlockError> {
    let t = header.timestamp;
    if spec.is_amsterdam_active_at_timestamp(t) {
        return Err(bad(
            "timestamp",
            "Amsterdam is active at this block; its rules (block access lists, state gas) are not supported",
        ));
    }
    if spec.is_osaka_active_at_timestamp(t) && block_len > MAX_RLP_BLOCK_SIZE {
        return Err(bad(
            "size",
            format!("the block's RLP is {block_len} bytes, over EIP-7934's {MAX_RLP_BLOCK_SIZE}"),
        ));
    }
    if !spec.is_merged(header.number) {
        return Err(BlockError::Chain(crate::chain::ChainError::PreMerge(
            format!("block {}", header.number),
        )));
    }
    if header.extra_data.len() > MAX_EXTRA_DATA {
        return Err(bad(
            "extraData",
            format!(
                "{} bytes, at most {MAX_EXTRA_DATA}",
                header.extra_data.len()
            ),
        ));
    }
    if header.difficulty != U256::ZERO {
        return Err(bad("difficulty", "must be 0 after the merge"));
    }
    if header.nonce != B64::ZERO {
        return Err(bad("nonce", "must be 0 after the merge"));
    }
    if header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
        return Err(bad(
            "ommersHash",
            "must be the empty list's hash after the merge",
        ));
    }
    if header.gas_limit > MAX_GAS_LIMIT {
        return Err(bad(
            "gasLimit",
            format!("{} is over 2^63-1", header.gas_limit),
        ));
    }
    if header.gas_used > header.gas_limit {
        return Err(bad(
            "gasUsed",
            format!(
                "{} exceeds the gas limit {}",
                header.gas_used, header.gas_limit
            ),
        ));
    }
    presence("baseFeePerGas", &header.base_fee_per_gas, true, "London")?;
    presence(
        "withdrawalsRoot",
        &header.withdrawals_root,
        spec.is_shanghai_active_at_timestamp(t),
        "Shanghai",
    )?;
    let cancun = spec.is_cancun_active_at_timestamp(t);
    presence("blobGasUsed", &header.blob_gas_used, cancun, "Cancun")?;
    presence("excessBlobGas", &header.excess_blob_gas, cancun, "Cancun")?;
    presence(
        "parentBeaconBlockRoot",
        &header.parent_beacon_block_root,
        cancun,
        "Cancun",
    )?;
    presence(
        "requestsHash",
        &header.requests_hash,
        spec.is_prague_active_at_timestamp(t),
        "Prague",
    )?;
    if header.block_access_list_hash.is_some() || header.slot_number.is_some() {
        return Err(bad(
            "blockAccessListHash",
            "Amsterdam's header fields are not supported",
        ));
    }
    if let (Some(used), Some(params)) = (header.blob_gas_used, spec.blob_params_at(t)) {
        if used % DATA_GAS_PER_BLOB != 0 {
            return Err(bad(
                "blobGasUsed",
                format!("{used} is not a multiple of {DATA_GAS_PER_BLOB}"),
            ));
        }
        if used > params.max_blob_gas_per_block() {
            return Err(bad(
                "blobGasUsed",
                format!(
                    "{used} exceeds the block maximum {}",
                    params.max_blob_gas_per_block()
                ),
            ));
        }
    }
    Ok(())
}

/// Rules the header must meet against its parent's header.
pub fn check_against_parent(
    header: &Header,
    parent: &Header,
    spec: &ChainSpec,
) -> Result<(), BlockError> {
    if parent.number.checked_add(1) != Some(header.number) {
        return Err(bad(
            "number",
            format!(
                "{} does not follow the parent's {}",
                header.number, parent.number
            ),
        ));
    }
    if header.timestamp <= parent.timestamp {
        return Err(bad(
            "timestamp",
            format!(
                "{} is not after the parent's {}",
                header.timestamp, parent.timestamp
            ),
        ));
    }
    let london_here = spec.is_london_active_at_block(header.number)
        && !spec.is_london_active_at_block(parent.number);
    // Gas limit: within 1/1024 of the parent's (doubled at the London transition, EIP-1559's elasticity).
    let parent_limit = if london_here {
        parent.gas_limit.saturating_mul(2)
    } else {
        parent.gas_limit
    };
    let bound = parent_limit / GAS_LIMIT_BOUND_DIVISOR;
    if header.gas_limit > parent_limit && header.gas_limit - parent_limit >= bound {
        return Err(bad(
            "gasLimit",
            format!(
                "{} rises too far above the parent's {parent_limit} (less than {bound} allowed)",
                header.gas_limit
            ),
        ));
    }
    if header.gas_limit < parent_limit && parent_limit - header.gas_limit >= bound {
        return Err(bad(
            "gasLimit",
            format!(
                "{} falls too far below the parent's {parent_limit} (less than {bound} allowed)",
                header.gas_limit
            ),
        ));
    }
    if header.gas_limit < MIN_GAS_LIMIT {
        return Err(bad(
            "gasLimit",
            format!("{} is below the minimum {MIN_GAS_LIMIT}", header.gas_limit),
        ));
    }
    // EIP-1559 base fee.
    let expected_base_fee = if london_here {
        INITIAL_BASE_FEE
    } else {
        let parent_fee = parent
            .base_fee_per_gas
            .ok_or_else(|| bad("baseFeePerGas", "the parent has no base fee"))?;
        if parent.gas_limit < MIN_GAS_LIMIT || parent.gas_used > parent.gas_limit {
            return Err(BlockError::BrokenAncestry(format!(
                "the parent's gas limit {} / gas used {} are not a valid block's",
                parent.gas_limit, parent.gas_used
            )));
        }
        next_base_fee(parent.gas_used, parent.gas_limit, parent_fee)
            .ok_or_else(|| bad("baseFeePerGas", "the parent's base fee overflows"))?
    };
    if header.base_fee_per_gas != Some(expected_base_fee) {
        return Err(bad(
            "baseFeePerGas",
            format!(
                "{:?}, the parent's gives {expected_base_fee}",
                header.base_fee_per_gas
            ),
        ));
    }
    // EIP-4844 excess blob gas.
    if let Some(params) = spec.blob_params_at(header.timestamp) {
        let expected = match (parent.excess_blob_gas, parent.blob_gas_used) {
            (Some(excess), Some(used)) => {
                next_excess_blob_gas(&params, excess, used, parent.base_fee_per_gas.unwrap_or(0))
                    .ok_or_else(|| bad("excessBlobGas", "the parent's blob gas overflows"))?
            }
            // The first block of Cancun.
            _ => 0,
        };
        if header.excess_blob_gas != Some(expected) {
            return Err(bad(
                "excessBlobGas",
                format!(
                    "{:?}, the parent's gives {expected}",
                    header.excess_blob_gas
                ),
            ));
        }
    }
    Ok(())
}

/// EIP-1559's next base fee, with checked arithmetic (a hostile parent must not crash the host).
fn next_base_fee(gas_used: u64, gas_limit: u64, base_fee: u64) -> Option<u64> {
    let params = BaseFeeParams::ethereum();
    let target = gas_limit / params.elasticity_multiplier as u64;
    if target == 0 {
        return None;
    }
    let denom = params.max_change_denominator;
    Some(match gas_used.cmp(&target) {
        std::cmp::Ordering::Equal => base_fee,
        std::cmp::Ordering::Greater => {
            let delta =
                (base_fee as u128 * (gas_used - target) as u128 / target as u128 / denom).max(1);
            u64::try_from(base_fee as u128 + delta).ok()?
        }
        std::cmp::Ordering::Less => {
            let delta = base_fee as u128 * (target - gas_used) as u128 / target as u128 / denom;
            (base_fee as u128 - delta) as u64
        }
    })
}

/// EIP-4844's (and EIP-7918's, from Osaka) next excess blob gas, with checked arithmetic.
fn next_excess_blob_gas(params: &BlobParams, excess: u64, used: u64, base_fee: u64) -> Option<u64> {
    excess.checked_add(used)?;
    used.checked_mul(params.max_blob_count)?;
    if params.max_blob_count == 0 || params.max_blob_count < params.target_blob_count {
        return None;
    }
    Some(params.next_block_excess_blob_gas_osaka(excess, used, base_fee))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_fee_follows_eip_1559_and_alloy() {
        for (used, limit, fee) in [
            (15_000_000, 30_000_000, 7u64),
            (30_000_000, 30_000_000, 1_000_000_000),
            (0, 30_000_000, 1_000_000_000),
            (10_000_000, 36_000_000, 1_418_264_255),
        ] {
            assert_eq!(
                next_base_fee(used, limit, fee),
                Some(alloy_eips::calc_next_block_base_fee(
                    used,
                    limit,
                    fee,
                    BaseFeeParams::ethereum()
                ))
            );
        }
        assert_eq!(next_base_fee(1, 1, 1), None);
        assert_eq!(next_base_fee(u64::MAX, u64::MAX, u64::MAX), None);
    }
}
