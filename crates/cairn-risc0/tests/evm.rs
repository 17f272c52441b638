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

/// The ECRECOVER precompile on the bigint2 accelerator agrees with Ethereum's tests: valid and invalid
/// signatures, short and prefixed inputs, wrong v (ethereum/tests `CallEcrecover*`, each also a signed
/// transaction).
#[test]
fn ecrecover_on_the_accelerator_agrees_with_ethereums_tests() {
    let dir = format!(
        "{}/../cairn-evm/testdata/blockchain-tests/GeneralStateTests/stPreCompiledContracts2",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut ran = 0;
    // A sample (each execution of the 3.7 MB guest costs seconds here); the host runs them all in
    // cairn-evm's own tests.
    for name in [
        "CallEcrecover0.json",
        "CallEcrecover1.json",
        "CallEcrecover2.json",
        "CallEcrecover3.json",
        "CallEcrecover80.json",
        "CallEcrecoverCheckLengthWrongV.json",
        "CallEcrecoverH_prefixed0.json",
        "CallEcrecoverS_prefixed0.json",
    ] {
        assert!(std::path::Path::new(&dir).join(name).exists(), "{name}");
        for case in curated(&format!("GeneralStateTests/stPreCompiledContracts2/{name}")) {
            let Expect::Valid { state_root, .. } = case.expect else {
                continue;
            };
            let journal = execute(&case.input).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let j = cairn_evm::Journal::from_bytes(&journal).unwrap();
            assert_eq!(j.post_state_root, state_root, "{}", case.name);
            ran += 1;
        }
    }
    assert!(ran >= 8, "{ran} cases");
}

/// Signatures the accelerated recovery must refuse, as the host's k256 does: s above n/2 (EIP-2), an r that
/// is no curve point's x.
#[test]
fn forged_signatures_fail_the_guest() {
    use alloy_consensus::{Block, Signed, TxEnvelope};
    use alloy_primitives::{Signature, U256};
    use alloy_rlp::Decodable;
    let g = generate(&GenConfig {
        gas: 42_000,
        seed: 9,
        mix: Mix::only(Kind::Eth),
        accounts: 4,
        tokens: 2,
        pools: 1,
    })
    .unwrap();
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let forge = |f: &dyn Fn(&Signature) -> Signature| {
        let mut block = Block::<TxEnvelope>::decode(&mut g.input.block.as_slice()).unwrap();
        let TxEnvelope::Eip1559(signed) = &block.body.transactions[0] else {
            panic!("generated transactions are EIP-1559")
        };
        let sig = f(signed.signature());
        block.body.transactions[0] =
            TxEnvelope::Eip1559(Signed::new_unhashed(signed.tx().clone(), sig));
        block.header.transactions_root =
            alloy_consensus::proofs::calculate_transaction_root(&block.body.transactions);
        StatelessInput {
            block: cairn_evm::import::block_rlp(&block),
            ..g.input.clone()
        }
    };
    for (what, input) in [
        (
            "high s",
            forge(&|s| Signature::new(s.r(), n - s.s(), !s.v())),
        ),
        (
            "r off the curve",
            forge(&|s| Signature::new(U256::from(5u8), s.s(), s.v())),
        ),
    ] {
        let host =
            cairn_evm::validate_input(&input, cairn_evm::host_sha256, &mut |_| {}).expect_err(what);
        let err = execute(&input).expect_err(what);
        assert!(
            err.to_string().contains("transaction 0: bad signature"),
            "{what}: {err} (host: {host})"
        );
    }
}
