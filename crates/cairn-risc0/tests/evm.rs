//! The `evm-block` guest in RISC Zero's executor: generated blocks of every kind, in both commitment modes and
//! with checked signatures, commit exactly the journal the host's native execution of the same input gives;
//! an invalid block fails the guest with its reason. Execution only (proofs of EVM blocks are in
//! `cairn-cli/tests/network.rs`).

use cairn_backend::{BackendError, ProvingBackend};
use cairn_evm::gen::{generate, GenConfig, Kind, Mix};
use cairn_evm::{Commitment, Signatures};
use cairn_risc0::RiscZeroBackend;

fn small(mix: Mix) -> GenConfig {
    GenConfig {
        gas: 400_000,
        seed: 3,
        mix,
        accounts: 30,
        tokens: 3,
        pools: 3,
        ..GenConfig::default()
    }
}

#[test]
fn the_guest_commits_the_hosts_journal_for_every_kind_and_mode() {
    let backend = RiscZeroBackend::new();
    let mut cases: Vec<GenConfig> = Kind::ALL.into_iter().map(|k| small(Mix::only(k))).collect();
    cases.push(GenConfig {
        commitment: Commitment::MerklePatricia,
        ..small(Mix::default())
    });
    cases.push(GenConfig {
        signatures: Signatures::Checked,
        gas: 100_000,
        ..small(Mix::only(Kind::Eth))
    });
    for cfg in cases {
        let g = generate(&cfg).unwrap();
        let input = g.input.encode();
        let summary = backend
            .execute(cairn_guests::EVM_BLOCK.binary, &input, 20, &mut |_| Ok(()))
            .unwrap();
        assert_eq!(summary.journal, g.journal.to_bytes(), "{:?}", cfg.mix);
        assert_eq!(
            cairn_guests::reference_journal(&cairn_guests::EVM_BLOCK, &input).unwrap(),
            summary.journal
        );
        // The guest reports its stages on stderr.
        let stats = cairn_risc0::execute_stats(cairn_guests::EVM_BLOCK.binary, &input, 20).unwrap();
        let stderr = String::from_utf8_lossy(&stats.stderr);
        for stage in ["decode", "pre-state", "execute", "post-state"] {
            assert!(
                stderr.contains(&format!("cairn-evm phase {stage} cycles ")),
                "{stderr}"
            );
        }
        assert_eq!(stats.user_cycles, summary.user_cycles);
    }
}

#[test]
fn an_invalid_block_fails_the_guest_with_its_reason() {
    let g = generate(&small(Mix::only(Kind::Eth))).unwrap();
    let mut input = g.input.clone();
    input.accounts.remove(0);
    let err = RiscZeroBackend::new()
        .execute(
            cairn_guests::EVM_BLOCK.binary,
            &input.encode(),
            20,
            &mut |_| Ok(()),
        )
        .unwrap_err();
    assert!(matches!(err, BackendError::GuestFailed(_)), "{err}");
    assert!(
        err.to_string().contains("not in the block's witness"),
        "{err}"
    );
    assert!(cairn_guests::reference_journal(&cairn_guests::EVM_BLOCK, &input.encode()).is_none());

    // The committed guest has the same bounds as the host: a gas limit where 32-bit and 64-bit would differ.
    let mut huge = g.input.clone();
    huge.header.gas_limit = u64::MAX;
    let err = RiscZeroBackend::new()
        .execute(
            cairn_guests::EVM_BLOCK.binary,
            &huge.encode(),
            20,
            &mut |_| Ok(()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("block gas limit"), "{err}");
}
