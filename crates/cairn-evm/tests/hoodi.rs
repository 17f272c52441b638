//! A real Prague block: Hoodi block 1,265,656 (11 transactions, 4 of them blob transactions) with the witness
//! reth's `debug_executionWitness` returned for it, from lambdaclass/ethrex-replay
//! (`caches/cache_hoodi_1265656.json`, MIT licence; `testdata/README.md`). Validated statelessly, it gives
//! the chain's state root, and the header's receipts root, logs bloom, gas and requests hash.

use alloy_primitives::{b256, B256};
use cairn_evm::import::ethrex_cache;
use cairn_evm::{host_sha256, validate_input, BlockError, Chain, StatelessInput, WitnessError};

fn hoodi() -> StatelessInput {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/hoodi-1265656.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let (chain, blocks, witness) = ethrex_cache(&json).unwrap();
    assert_eq!(chain, Chain::Hoodi);
    assert_eq!(blocks.len(), 1);
    StatelessInput::new(chain, blocks[0].clone(), witness)
}

/// The state root in block 1,265,656's header on Hoodi.
const STATE_ROOT: B256 = b256!("f7c1acf1facc79a7c560efa36f1158a0b643ed14519aaa06f56949ad60d6b03f");
const PARENT: B256 = b256!("5ec43aa09c9145c93f7bc57a0d4e19e6eacdfe1b4b053e48825f9c88e120c62b");

#[test]
fn hoodi_block_1265656_validates_to_the_chains_state_root() {
    let input = hoodi();
    let executed = validate_input(&input, host_sha256, &mut |_| {}).unwrap();
    let j = &executed.journal;
    assert_eq!(j.chain_id, 560_048);
    assert_eq!(j.number, 1_265_656);
    assert_eq!(j.parent_hash, PARENT);
    assert_eq!(j.post_state_root, STATE_ROOT);
    assert_eq!(j.tx_count, 11);
    assert_eq!(j.gas_used, 0x432f03);
    assert_ne!(j.pre_state_root, j.post_state_root);
    eprintln!("{j}\n{:?}", executed.stats);
}

#[test]
fn the_hoodi_witness_is_needed_node_by_node() {
    let input = hoodi();
    // Dropping a node fails the block, naming it (spare nodes aside: reth's witness holds some the block
    // does not need).
    let mut missing = 0;
    for i in (0..input.witness.state.len()).step_by(97) {
        let mut cut = input.clone();
        let node = cut.witness.state.remove(i);
        match validate_input(&cut, host_sha256, &mut |_| {}) {
            Err(BlockError::Witness(WitnessError::MissingNode { node: n, .. }))
            | Err(BlockError::Witness(WitnessError::MissingStorageRoot { root: n, .. }))
            | Err(BlockError::MissingPreStateRoot(n)) => {
                assert_eq!(n, alloy_primitives::keccak256(&node));
                missing += 1;
            }
            Err(e) => panic!("removing node {i}: {e}"),
            Ok(_) => {}
        }
    }
    assert!(missing >= 10, "{missing}");
}
