//! Blocks from elsewhere, built into the host tools (`cairn bench evm`, tests): Hoodi block 1,265,656 with
//! reth's witness, and a few of Ethereum's BlockchainTests blocks (sources and licences:
//! `testdata/README.md`).

use crate::import::ethrex_cache;
use crate::input::StatelessInput;
use crate::tests::{load, Case, Expect};

/// Hoodi block 1,265,656 (Prague; 11 transactions, 4 of them blob transactions; 4.40 M gas) with the
/// witness reth's `debug_executionWitness` returned for it (lambdaclass/ethrex-replay, MIT).
pub fn hoodi_1265656() -> StatelessInput {
    let json: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/hoodi-1265656.json"))
            .expect("committed JSON");
    let (chain, blocks, witness) = ethrex_cache(&json).expect("the committed cache imports");
    StatelessInput::new(chain, blocks[0].clone(), witness)
}

/// A few valid BlockchainTests blocks (ethereum/tests, MIT): (name, input).
pub fn test_blocks() -> Vec<(String, StatelessInput)> {
    let files = [
        include_str!("../testdata/blockchain-tests/ValidBlocks/bcValidBlockTest/SimpleTx3LowS.json"),
        include_str!(
            "../testdata/blockchain-tests/ValidBlocks/bcEIP1153-transientStorage/tloadDoesNotPersistCrossTxn.json"
        ),
        include_str!(
            "../testdata/blockchain-tests/ValidBlocks/bcEIP4844-blobtransactions/blockWithAllTransactionTypes.json"
        ),
        include_str!("../testdata/blockchain-tests/ValidBlocks/bcExample/shanghaiExample.json"),
    ];
    let mut out = Vec::new();
    for f in files {
        let (cases, _) = load(f, &["Cancun"]).expect("committed test files load");
        for Case {
            name,
            input,
            expect,
            ..
        } in cases
        {
            if matches!(expect, Expect::Valid { .. }) {
                out.push((name, input));
            }
        }
    }
    out
}
