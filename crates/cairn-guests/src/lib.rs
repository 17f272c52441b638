//! Cairn's bundled guest programs.
//!
//! The program binaries in `guests/bin/` are built by `scripts/build-guests.sh` from the sources in `guests/`
//! and committed with their image ids, so Cairn runs without a guest toolchain. `cairn-risc0`'s tests fail when
//! a committed image id no longer matches its binary. Each program has a host-side reference of its journal,
//! computed with an independent SHA-256 implementation (the `sha2` crate), so tests check outputs, not just
//! proofs.

use sha2::{Digest, Sha256};

pub mod corpus;

/// A bundled guest program.
#[derive(Debug, Clone, Copy)]
pub struct Guest {
    pub name: &'static str,
    /// What the program does and how its input is laid out.
    pub about: &'static str,
    /// RISC Zero program binary (user ELF + v1compat kernel, `R0BF` format).
    pub binary: &'static [u8],
    /// Image id as committed next to the binary (hex).
    pub image_id_hex: &'static str,
}

/// Tunable workload: iterated SHA-256. Input: `iterations: u64 LE` then seed bytes.
pub const SHA_CHAIN: Guest = Guest {
    name: "sha-chain",
    about: "iterated SHA-256; input = iterations (u64 LE) || seed bytes; ~4.7 K cycles per iteration; at po2 14 even a tiny run is ~7 segments (paging)",
    binary: include_bytes!("../../../guests/bin/sha-chain.bin"),
    image_id_hex: include_str!("../../../guests/bin/sha-chain.image-id"),
};

/// The seed's benchmark shape: generated data sorted and hashed; 65.59 M user cycles with empty input, the
/// size of the seed's program (65.6 M); more words, more cycles (400 000 words: ~206 M).
pub const SEED_BENCH: Guest = Guest {
    name: "seed-bench",
    about: "generate, sort and hash u32 words; input = empty (131300 words, 65.6 M user cycles, the seed's size) or words (u32 LE)",
    binary: include_bytes!("../../../guests/bin/seed-bench.bin"),
    image_id_hex: include_str!("../../../guests/bin/seed-bench.image-id"),
};

/// An Ethereum block, validated statelessly: the guest reads a `cairn_evm::StatelessInput` (the block's RLP,
/// its `debug_executionWitness`, its chain), checks the block against its parent's state root (header rules,
/// witness tries, signatures, alloy-evm's executor with system calls, receipts, the post-state root) and
/// commits the 188-byte `cairn_evm::Journal`. Inputs come from `cairn block import` (real blocks) or
/// `cairn block gen`; the layout is in `docs/EVM.md`.
pub const ETH_BLOCK: Guest = Guest {
    name: "eth-block",
    about: "validate an Ethereum block against its parent's state root; input = `cairn block import`/`gen` (docs/EVM.md); journal = chain id, number, parent hash, block hash, pre/post-state roots, gas, tx count, chain digest (188 bytes)",
    binary: include_bytes!("../../../guests/bin/eth-block.bin"),
    image_id_hex: include_str!("../../../guests/bin/eth-block.image-id"),
};

/// All bundled programs.
pub const ALL: [Guest; 3] = [SHA_CHAIN, SEED_BENCH, ETH_BLOCK];

/// A bundled program by name.
pub fn by_name(name: &str) -> Option<Guest> {
    ALL.into_iter().find(|g| g.name == name)
}

/// Input for `sha-chain`.
pub fn sha_chain_input(iterations: u64, seed: &[u8]) -> Vec<u8> {
    [&iterations.to_le_bytes()[..], seed].concat()
}

/// The journal `sha-chain` commits for `input`, or `None` if the guest rejects the input.
pub fn sha_chain_journal(input: &[u8]) -> Option<Vec<u8>> {
    let iterations = u64::from_le_bytes(input.get(..8)?.try_into().ok()?);
    let mut digest: [u8; 32] = Sha256::digest(&input[8..]).into();
    for _ in 0..iterations {
        digest = Sha256::digest(digest).into();
    }
    Some([&iterations.to_le_bytes()[..], &digest].concat())
}

/// Default word count of `seed-bench` (keep in sync with the guest's `DEFAULT_WORDS`).
pub const SEED_BENCH_DEFAULT_WORDS: u32 = 131_300;

/// Input for `seed-bench` with `words` generated words (`None`: the default size).
pub fn seed_bench_input(words: Option<u32>) -> Vec<u8> {
    words.map(|w| w.to_le_bytes().to_vec()).unwrap_or_default()
}

/// The journal `seed-bench` commits for `input`, or `None` if the guest rejects the input.
pub fn seed_bench_journal(input: &[u8]) -> Option<Vec<u8>> {
    let words = match input.len() {
        0 => SEED_BENCH_DEFAULT_WORDS,
        4 => u32::from_le_bytes(input.try_into().ok()?),
        _ => return None,
    };
    let mut state: u32 = 0x9E37_79B9;
    let mut data: Vec<u32> = (0..words)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        })
        .collect();
    data.sort_unstable();
    let bytes: Vec<u8> = data.iter().flat_map(|w| w.to_le_bytes()).collect();
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    Some([&words.to_le_bytes()[..], &digest].concat())
}

/// A bundled program's journal in words, where it has a layout (`eth-block`: the block it proves).
pub fn describe_journal(guest: &Guest, journal: &[u8]) -> Option<String> {
    match guest.name {
        "eth-block" => cairn_evm::Journal::from_bytes(journal).map(|j| j.to_string()),
        _ => None,
    }
}

/// The host-side reference journal of a bundled program.
pub fn reference_journal(guest: &Guest, input: &[u8]) -> Option<Vec<u8>> {
    match guest.name {
        "sha-chain" => sha_chain_journal(input),
        "seed-bench" => seed_bench_journal(input),
        "eth-block" => eth_block_journal(input),
        _ => None,
    }
}

/// The journal `eth-block` commits for `input` (the same `cairn_evm::validate`, run natively), or `None` if
/// the block is invalid (the guest then fails).
pub fn eth_block_journal(input: &[u8]) -> Option<Vec<u8>> {
    fn sha256(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }
    let executed = cairn_evm::validate(input, sha256, &mut |_| {}).ok()?;
    Some(executed.journal.to_bytes().to_vec())
}
