//! Generated blocks execute from their own witness, deterministically, in both commitment modes and with
//! signatures; a witness with something missing, a bad signature or a malformed input fails with its reason.

use cairn_evm::gen::{generate, host_sha256, GenConfig, Kind, Mix};
use cairn_evm::{execute, BlockError, BlockInput, Commitment, Journal, Signatures};

fn small(mix: Mix) -> GenConfig {
    GenConfig {
        gas: 3_000_000,
        seed: 7,
        mix,
        accounts: 40,
        tokens: 4,
        pools: 5,
        ..GenConfig::default()
    }
}

#[test]
fn every_kind_fills_its_block_and_re_executes_to_the_same_journal() {
    for kind in Kind::ALL {
        let g = generate(&small(Mix::only(kind))).unwrap();
        let j = &g.journal;
        assert_eq!(j.tx_count as usize, g.input.txs.len());
        assert_eq!(j.reverted, 0, "{kind:?}: no generated transaction reverts");
        assert!(
            j.gas_used <= 3_000_000 && j.gas_used > 3_000_000 - 1_500_000,
            "{kind:?}: {}",
            j.gas_used
        );
        assert_ne!(j.pre_state, j.post_state);
        let (count, gas) = g.by_kind[&kind];
        assert!(count > 0 && gas > 0);
        let again = execute(&g.input.encode(), host_sha256, &mut |_| {}).unwrap();
        assert_eq!(again.journal, g.journal);
        assert_eq!(
            Journal::from_bytes(&g.journal.to_bytes()).unwrap(),
            g.journal
        );
    }
}

#[test]
fn the_mix_is_deterministic_and_the_seed_matters() {
    let a = generate(&small(Mix::default())).unwrap();
    let b = generate(&small(Mix::default())).unwrap();
    assert_eq!(a.input.encode(), b.input.encode());
    assert_eq!(a.journal, b.journal);
    let c = generate(&GenConfig {
        seed: 8,
        ..small(Mix::default())
    })
    .unwrap();
    assert_ne!(a.journal.post_state, c.journal.post_state);
    assert!(
        a.by_kind.len() >= 3,
        "a mixed block has several kinds: {:?}",
        a.by_kind
    );
}

#[test]
fn merkle_patricia_and_signed_modes_execute() {
    let mpt = generate(&GenConfig {
        commitment: Commitment::MerklePatricia,
        ..small(Mix::default())
    })
    .unwrap();
    let sha = generate(&small(Mix::default())).unwrap();
    assert_eq!(mpt.journal.commitment, 1);
    assert_eq!(mpt.journal.gas_used, sha.journal.gas_used);
    assert_ne!(mpt.journal.post_state, sha.journal.post_state);
    let signed = generate(&GenConfig {
        signatures: Signatures::Checked,
        ..small(Mix::only(Kind::Eth))
    })
    .unwrap();
    assert!(signed.journal.signatures_checked);
    assert!(signed.input.txs.iter().all(|t| t.signature.len() == 65));

    // A signature by someone else, or over other bytes, fails the block.
    let mut forged = signed.input.clone();
    forged.txs[3].value[31] ^= 1;
    let err = execute(&forged.encode(), host_sha256, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, BlockError::BadSignature { index: 3, .. }),
        "{err}"
    );
}

#[test]
fn a_witness_missing_an_account_or_a_slot_fails_with_what_is_missing() {
    let g = generate(&small(Mix::only(Kind::Erc20))).unwrap();
    // Drop a slot of a token contract.
    let mut input = g.input.clone();
    let holder = input
        .accounts
        .iter_mut()
        .find(|a| !a.storage.is_empty())
        .unwrap();
    holder.storage.pop();
    let err = execute(&input.encode(), host_sha256, &mut |_| {}).unwrap_err();
    assert!(matches!(err, BlockError::MissingWitness { .. }), "{err}");
    assert!(
        err.to_string().contains("not in the block's witness"),
        "{err}"
    );
    // Drop an account.
    let mut input = g.input.clone();
    input.accounts.remove(0);
    let err = execute(&input.encode(), host_sha256, &mut |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("not in the block's witness"),
        "{err}"
    );
    // Duplicate an account.
    let mut input = g.input.clone();
    input.accounts.push(input.accounts[0].clone());
    assert!(matches!(
        execute(&input.encode(), host_sha256, &mut |_| {}),
        Err(BlockError::DuplicateAccount(_))
    ));
}

#[test]
fn malformed_inputs_and_invalid_blocks_are_refused_with_a_reason() {
    let g = generate(&small(Mix::only(Kind::Eth))).unwrap();
    let bytes = g.input.encode();
    for bad in [
        &bytes[..bytes.len() - 1],
        &[bytes.as_slice(), &[0]].concat()[..],
        &[1, 2, 3][..],
        &[][..],
    ] {
        let err = execute(bad, host_sha256, &mut |_| {}).unwrap_err();
        assert!(matches!(err, BlockError::Decode(_)), "{err}");
    }
    let mut other = g.input.clone();
    other.format = 2;
    assert!(execute(&other.encode(), host_sha256, &mut |_| {})
        .unwrap_err()
        .to_string()
        .contains("format 2"));
    // A replayed nonce makes the block invalid, not a proof of a failed transaction.
    let mut replay = g.input.clone();
    let first = replay.txs[0].clone();
    replay.txs.insert(1, first);
    let err = execute(&replay.encode(), host_sha256, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, BlockError::InvalidTx { index: 1, .. }),
        "{err}"
    );
    // A gas limit no real block has (where a 32-bit guest and a 64-bit host would part ways).
    let mut huge = g.input.clone();
    huge.header.gas_limit = u64::MAX;
    assert!(matches!(
        execute(&huge.encode(), host_sha256, &mut |_| {}),
        Err(BlockError::GasLimitTooHigh(_))
    ));
    // Storage under an account that cannot exist.
    let mut ghost = g.input.clone();
    let empty = ghost
        .accounts
        .iter_mut()
        .find(|a| a.nonce == 0 && a.code.is_empty())
        .unwrap();
    empty.storage.push(([1; 32], [2; 32]));
    assert!(matches!(
        execute(&ghost.encode(), host_sha256, &mut |_| {}),
        Err(BlockError::StorageWithoutAccount(_))
    ));
    // More gas than the block has.
    let mut greedy = g.input.clone();
    greedy.header.gas_limit = 100_000;
    assert!(matches!(
        execute(&greedy.encode(), host_sha256, &mut |_| {}),
        Err(BlockError::BlockGas { .. })
    ));
    assert_eq!(BlockInput::decode(&bytes).unwrap(), g.input);
}
