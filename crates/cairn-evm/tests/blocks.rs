//! Generated blocks validate statelessly from their own witness, deterministically; a witness missing or
//! altering a node, a header with a wrong root, and forged signatures each fail with a reason that says what.

use alloy_consensus::{Block, Header, Signed, TxEnvelope};
use alloy_primitives::{keccak256, Signature, B256, U256};
use alloy_rlp::Decodable;
use cairn_evm::gen::{generate, GenConfig, Kind, Mix};
use cairn_evm::import::block_rlp;
use cairn_evm::{
    host_sha256, validate, validate_input, BlockError, Journal, StatelessInput, WitnessError,
};

fn small(mix: Mix) -> GenConfig {
    GenConfig {
        gas: 3_000_000,
        seed: 7,
        mix,
        accounts: 40,
        tokens: 4,
        pools: 5,
    }
}

fn block_of(input: &StatelessInput) -> Block<TxEnvelope> {
    Block::decode(&mut input.block.as_slice()).unwrap()
}

/// The input with its block changed by `f` (transactions root fixed up, so the body still matches).
fn with_block(input: &StatelessInput, f: impl FnOnce(&mut Block<TxEnvelope>)) -> StatelessInput {
    let mut block = block_of(input);
    f(&mut block);
    block.header.transactions_root =
        alloy_consensus::proofs::calculate_transaction_root(&block.body.transactions);
    StatelessInput {
        block: block_rlp(&block),
        ..input.clone()
    }
}

fn check(input: &StatelessInput) -> Result<Journal, BlockError> {
    validate_input(input, host_sha256, &mut |_| {}).map(|e| e.journal)
}

#[test]
fn every_kind_fills_its_block_and_validates_to_the_same_journal() {
    for kind in Kind::ALL {
        let g = generate(&small(Mix::only(kind))).unwrap();
        let j = &g.journal;
        let block = block_of(&g.input);
        assert_eq!(j.tx_count as usize, block.body.transactions.len());
        assert_eq!(j.block_hash, block.header.hash_slow());
        assert_eq!(j.post_state_root, block.header.state_root);
        assert_eq!(j.gas_used, block.header.gas_used);
        assert_eq!(j.chain_id, 59_144);
        assert!(
            j.gas_used <= 3_000_000 && j.gas_used > 3_000_000 - 1_500_000,
            "{kind:?}: {}",
            j.gas_used
        );
        assert_ne!(j.pre_state_root, j.post_state_root);
        let (count, gas) = g.by_kind[&kind];
        assert!(count > 0 && gas > 0);
        // Every transaction is a signed EIP-1559 transaction whose sender recovers.
        assert!(block.body.transactions.iter().all(|t| t.is_eip1559()));
        let again = validate(&g.input.encode(), host_sha256, &mut |_| {}).unwrap();
        assert_eq!(again.journal, g.journal);
        assert_eq!(
            Journal::from_bytes(&g.journal.to_bytes()).unwrap(),
            g.journal
        );
    }
}

#[test]
fn generation_is_deterministic_and_seeded() {
    let cfg = small(Mix::default());
    let a = generate(&cfg).unwrap();
    let b = generate(&cfg).unwrap();
    assert_eq!(a.input.encode(), b.input.encode());
    let c = generate(&GenConfig { seed: 8, ..cfg }).unwrap();
    assert_ne!(a.journal.post_state_root, c.journal.post_state_root);
}

#[test]
fn a_witness_missing_or_altering_a_node_fails_the_block() {
    let g = generate(&small(Mix::default())).unwrap();
    let nodes = &g.input.witness.state;
    assert!(nodes.len() > 10);
    // Removing any node the block needs fails it, naming the node; try each of the first few.
    let mut failures = 0;
    for i in 0..nodes.len() {
        let mut input = g.input.clone();
        let removed = input.witness.state.remove(i);
        match check(&input) {
            Err(BlockError::Witness(WitnessError::MissingNode { node, what })) => {
                assert_eq!(node, keccak256(&removed), "{what}");
                failures += 1;
            }
            Err(BlockError::MissingPreStateRoot(root)) => {
                assert_eq!(root, keccak256(&removed));
                failures += 1;
            }
            Err(BlockError::Witness(WitnessError::MissingStorageRoot { root, .. })) => {
                assert_eq!(root, keccak256(&removed));
                failures += 1;
            }
            Err(e) => panic!("removing node {i}: unexpected {e}"),
            // A node only a deletion's alternative path would need may be spare.
            Ok(_) => {}
        }
    }
    assert!(
        failures * 10 >= nodes.len() * 9,
        "{failures} of {}",
        nodes.len()
    );
    // Altering a node's bytes: the node the trie refers to is gone (its hash no longer matches).
    let mut input = g.input.clone();
    let last = input.witness.state.len() - 1;
    let n = &mut input.witness.state[last];
    let at = n.len() - 1;
    n[at] ^= 1;
    assert!(check(&input).is_err());
    // Removing a code the block runs.
    let mut input = g.input.clone();
    input.witness.codes.pop();
    assert!(matches!(
        check(&input),
        Err(BlockError::Witness(WitnessError::MissingCode(_)))
    ));
}

#[test]
fn a_header_with_a_wrong_root_or_gas_is_refused_with_the_field_named() {
    let g = generate(&small(Mix::only(Kind::Erc20))).unwrap();
    let bad_root = with_block(&g.input, |b| b.header.state_root = B256::repeat_byte(7));
    match check(&bad_root) {
        Err(BlockError::Mismatch { field, .. }) => assert_eq!(field, "stateRoot"),
        other => panic!("{other:?}"),
    }
    let bad_receipts = with_block(&g.input, |b| b.header.receipts_root = B256::repeat_byte(7));
    assert!(
        matches!(
            check(&bad_receipts),
            Err(BlockError::Mismatch {
                field: "receiptsRoot",
                ..
            })
        ),
        "{:?}",
        check(&bad_receipts)
    );
    let bad_gas = with_block(&g.input, |b| b.header.gas_used -= 1);
    assert!(matches!(
        check(&bad_gas),
        Err(BlockError::Mismatch {
            field: "gasUsed",
            ..
        })
    ));
    let bad_fee = with_block(&g.input, |b| b.header.base_fee_per_gas = Some(8));
    assert!(matches!(
        check(&bad_fee),
        Err(BlockError::Header {
            field: "baseFeePerGas",
            ..
        })
    ));
    // The body must match the header: a transaction dropped without fixing the root.
    let mut block = block_of(&g.input);
    block.body.transactions.pop();
    let dropped = StatelessInput {
        block: block_rlp(&block),
        ..g.input.clone()
    };
    assert!(matches!(check(&dropped), Err(BlockError::Body(_))));
    // A parent header that is not the block's parent.
    let mut orphan = g.input.clone();
    let mut parent = Header::decode(&mut orphan.witness.headers[0].as_slice()).unwrap();
    parent.timestamp += 1;
    orphan.witness.headers[0] = cairn_evm::validate::header_rlp(&parent);
    assert!(matches!(check(&orphan), Err(BlockError::BrokenAncestry(_))));
}

#[test]
fn forged_signatures_are_refused() {
    let g = generate(&small(Mix::only(Kind::Eth))).unwrap();
    let resign = |f: &dyn Fn(&Signature) -> Signature| {
        with_block(&g.input, |b| {
            let TxEnvelope::Eip1559(signed) = &b.body.transactions[3] else {
                panic!("generated transactions are EIP-1559")
            };
            let sig = f(signed.signature());
            b.body.transactions[3] =
                TxEnvelope::Eip1559(Signed::new_unhashed(signed.tx().clone(), sig));
        })
    };
    // EIP-2: the same signature with s above n/2 recovers the same sender, and is refused.
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let high_s = resign(&|s| Signature::new(s.r(), n - s.s(), !s.v()));
    match check(&high_s) {
        Err(BlockError::Signature { index, .. }) => assert_eq!(index, 3),
        other => panic!("{other:?}"),
    }
    // An r that is no curve point's x recovers nothing.
    let no_point = resign(&|s| Signature::new(U256::from(5u8), s.s(), s.v()));
    assert!(matches!(
        check(&no_point),
        Err(BlockError::Signature { index: 3, .. })
    ));
    // A signature altered into another valid one recovers a stranger, whose account the witness lacks (or
    // who cannot pay): the block fails either way.
    let other = resign(&|s| Signature::new(s.r(), s.s() - U256::from(1u8), s.v()));
    let e = check(&other).unwrap_err();
    assert!(
        matches!(
            e,
            BlockError::Witness(_) | BlockError::Transaction { index: 3, .. }
        ),
        "{e}"
    );
}

#[test]
fn malformed_inputs_are_refused_not_panicked_on() {
    let g = generate(&small(Mix::only(Kind::Eth))).unwrap();
    let bytes = g.input.encode();
    assert!(matches!(
        validate(&bytes[..bytes.len() - 1], host_sha256, &mut |_| {}),
        Err(BlockError::Input(_))
    ));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        validate(&trailing, host_sha256, &mut |_| {}),
        Err(BlockError::Input(_))
    ));
    assert!(validate(&[], host_sha256, &mut |_| {}).is_err());
    let mut bad_block = g.input.clone();
    bad_block.block.truncate(bad_block.block.len() / 2);
    assert!(matches!(check(&bad_block), Err(BlockError::BlockRlp(_))));
    let mut no_parent = g.input.clone();
    no_parent.witness.headers.clear();
    assert!(matches!(check(&no_parent), Err(BlockError::NoParent)));
}
