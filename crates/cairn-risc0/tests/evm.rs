//! The `eth-block` guest in RISC Zero's executor: Ethereum's own BlockchainTests blocks (from the curated set
//! in `crates/cairn-evm/testdata/blockchain-tests`) and generated blocks commit exactly the journal the host's
//! native validation of the same input gives; an invalid block fails the guest with its reason. Execution
//! only (a proof of a block is in `cairn-cli/tests/network.rs`; the Hoodi block's cycles are in
//! `cairn bench evm`).

use cairn_backend::{BackendError, ProvingBackend};
use cairn_evm::gen::{generate, GenConfig, Kind, Mix};
use cairn_evm::tests::{load, Expect};
use cairn_evm::StatelessInput;
use cairn_risc0::RiscZeroBackend;

fn curated(file: &str) -> Vec<cairn_evm::tests::Case> {
    let path = format!(
        "{}/../cairn-evm/testdata/blockchain-tests/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (cases, _) = load(&json, &["Cancun"]).unwrap();
    assert!(!cases.is_empty(), "{path} has no Cancun case");
    cases
}

fn execute(input: &StatelessInput) -> Result<Vec<u8>, BackendError> {
    RiscZeroBackend::new()
        .execute(
            cairn_guests::ETH_BLOCK.binary,
            &input.encode(),
            20,
            &mut |_| Ok(()),
        )
        .map(|s| s.journal)
}

#[test]
fn ethereums_own_test_blocks_give_the_hosts_journal_in_the_zkvm() {
    // Types 0-3 in one block, type-2 calls writing transient and persistent storage, and legacy transfers with
    // low-s signatures: signature recovery, the EIP-4788 system call and storage writes in the guest.
    for file in [
        "ValidBlocks/bcEIP4844-blobtransactions/blockWithAllTransactionTypes.json",
        "ValidBlocks/bcEIP1153-transientStorage/tloadDoesNotPersistCrossTxn.json",
        "ValidBlocks/bcValidBlockTest/SimpleTx3LowS.json",
    ] {
        for case in curated(file) {
            let Expect::Valid {
                state_root,
                block_hash,
            } = case.expect
            else {
                continue;
            };
            let journal = execute(&case.input).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let j = cairn_evm::Journal::from_bytes(&journal).unwrap();
            assert_eq!(j.post_state_root, state_root, "{}", case.name);
            assert_eq!(j.block_hash, block_hash, "{}", case.name);
            assert_eq!(
                cairn_guests::reference_journal(&cairn_guests::ETH_BLOCK, &case.input.encode()),
                Some(journal),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn an_invalid_test_block_fails_the_guest_as_it_fails_the_host() {
    let cases = curated("InvalidBlocks/bcInvalidHeaderTest/wrongStateRoot.json");
    let invalid = cases
        .iter()
        .find(|c| matches!(c.expect, Expect::Invalid(_)))
        .expect("wrongStateRoot is an invalid block");
    let host =
        cairn_evm::validate_input(&invalid.input, cairn_evm::host_sha256, &mut |_| {}).unwrap_err();
    let err = execute(&invalid.input).unwrap_err();
    assert!(matches!(err, BackendError::GuestFailed(_)), "{err}");
    assert!(
        err.to_string().contains(&host.to_string()),
        "{err} / {host}"
    );
}

#[test]
fn generated_blocks_give_the_hosts_journal_and_report_their_stages() {
    for kind in [Kind::Erc20, Kind::Create] {
        let g = generate(&GenConfig {
            gas: 200_000,
            seed: 3,
            mix: Mix::only(kind),
            accounts: 8,
            tokens: 2,
            pools: 1,
        })
        .unwrap();
        let input = g.input.encode();
        let stats = cairn_risc0::execute_stats(cairn_guests::ETH_BLOCK.binary, &input, 20).unwrap();
        assert_eq!(stats.journal, g.journal.to_bytes(), "{kind:?}");
        let stderr = String::from_utf8_lossy(&stats.stderr);
        for stage in cairn_evm::Stage::ALL {
            assert!(
                stderr.contains(&format!("cairn-evm stage {} cycles ", stage.name())),
                "{stderr}"
            );
        }
    }
    // A witness missing a node: the guest names it, as the host does.
    let g = generate(&GenConfig {
        gas: 100_000,
        seed: 4,
        mix: Mix::only(Kind::Eth),
        accounts: 8,
        tokens: 2,
        pools: 1,
    })
    .unwrap();
    let mut cut = g.input.clone();
    cut.witness.state.remove(0);
    let err = execute(&cut).unwrap_err();
    assert!(err.to_string().contains("the witness lacks"), "{err}");
}
