//! Keccak-256 for the guest, in software: alloy's `keccak256` (every trie node, transaction, receipt and the
//! EVM's KECCAK256) calls this through alloy-primitives' `native-keccak` hook. The `keccak` 0.1 crate's
//! unrolled permutation takes ~16.6 K cycles on rv32im, half of what the sha3 0.11 hasher alloy uses
//! otherwise costs per block (~33 K; measured side by side in the zkVM, docs/BENCHMARKS.md). RISC Zero's
//! keccak accelerator needs the keccak circuit and recursion, which Cairn cannot build offline.

const RATE: usize = 136;

fn absorb(state: &mut [u64; 25], block: &[u8]) {
    for (lane, bytes) in state.iter_mut().zip(block.chunks_exact(8)) {
        *lane ^= u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    }
    keccak::f1600(state);
}

/// Keccak-256 (Ethereum's, with the original 0x01 padding) of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut state = [0u64; 25];
    let mut blocks = data.chunks_exact(RATE);
    for block in &mut blocks {
        absorb(&mut state, block);
    }
    let rest = blocks.remainder();
    let mut last = [0u8; RATE];
    last[..rest.len()].copy_from_slice(rest);
    last[rest.len()] ^= 0x01;
    last[RATE - 1] ^= 0x80;
    absorb(&mut state, &last);
    let mut out = [0u8; 32];
    for (i, lane) in state[..4].iter().enumerate() {
        out[8 * i..8 * i + 8].copy_from_slice(&lane.to_le_bytes());
    }
    out
}

/// alloy-primitives' `native-keccak` hook.
///
/// # Safety
/// alloy calls it with `bytes` valid for `len` bytes and `output` valid for 32 bytes.
#[no_mangle]
pub unsafe extern "C" fn native_keccak256(bytes: *const u8, len: usize, output: *mut u8) {
    let input = core::slice::from_raw_parts(bytes, len);
    let hash = keccak256(input);
    core::ptr::copy_nonoverlapping(hash.as_ptr(), output, 32);
}
