//! The corpus of user-shaped guests (`guests/corpus/README.md`): every one executes at po2 14, 15 and 16 with
//! the journal its host-side reference computes, and each shape a user's program has and ours did not gets its
//! own check. Execution only: real proofs of a short final segment are in `real.rs` (the shared fixture is
//! `user-loop`) and over the network in `cairn-cli/tests/network.rs`.

use cairn_backend::{BackendError, Digest32, ExecutionSummary, ProvingBackend, SegmentClaim};
use cairn_guests::corpus::{self, *};
use cairn_guests::Guest;
use cairn_risc0::RiscZeroBackend;

fn execute(guest: &[u8], input: &[u8], po2: u8) -> Result<ExecutionSummary, BackendError> {
    RiscZeroBackend::new().execute(guest, input, po2, &mut |_| Ok(()))
}

/// Every corpus guest with an input and the journal it must commit.
fn cases() -> Vec<(Guest, Vec<u8>, Vec<u8>)> {
    let big: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    vec![
        (USER_LOOP, user_loop_input(1, 1), user_loop_journal(1, 1)),
        (
            USER_LOOP,
            user_loop_input(40, 25),
            user_loop_journal(40, 25),
        ),
        (HELLO_ONE, Vec::new(), hello_one_journal()),
        (PANICS, u32_input(4), panics_journal(4).unwrap()),
        (BIG_INPUT, big.clone(), big_input_journal(&big)),
        (MEM_HEAVY, u32_input(2_048), mem_heavy_journal(2_048)),
        (IO_JOURNAL, u32_input(40_000), io_journal_journal(40_000)),
    ]
}

#[test]
fn committed_corpus_image_ids_match_binaries() {
    let backend = RiscZeroBackend::new();
    for guest in corpus::ALL {
        assert_eq!(
            backend.image_id(guest.binary).unwrap().to_string(),
            guest.image_id_hex.trim(),
            "{}: committed image id is stale; run scripts/build-guests.sh and commit guests/bin",
            guest.name
        );
    }
}

#[test]
fn every_corpus_guest_commits_its_reference_journal_at_po2_14_15_and_16() {
    for (guest, input, journal) in cases() {
        for po2 in [14, 15, 16] {
            let mut claims: Vec<SegmentClaim> = Vec::new();
            let summary = RiscZeroBackend::new()
                .execute(guest.binary, &input, po2, &mut |s| {
                    claims.push(s.claim);
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{} at po2 {po2}: {e}", guest.name));
            assert_eq!(summary.journal, journal, "{} at po2 {po2}", guest.name);
            assert_eq!(summary.claims, claims);
            // Every segment is one RISC Zero proves: the last may be smaller than asked, none larger.
            for c in &claims {
                assert!(
                    (13..=po2).contains(&c.po2),
                    "{} at po2 {po2}: {c:?}",
                    guest.name
                );
            }
            assert!(claims[..claims.len() - 1].iter().all(|c| c.po2 == po2));
        }
    }
}

#[test]
fn a_users_loop_ends_on_a_short_segment() {
    // The shape of the program a user reported: input (1, 1) runs as 4 segments of po2 14 and a last one of
    // po2 13, which Cairn used to refuse after proving everything else.
    let summary = execute(USER_LOOP.binary, &user_loop_input(1, 1), 14).unwrap();
    let sizes: Vec<u8> = summary.claims.iter().map(|c| c.po2).collect();
    assert_eq!(sizes, vec![14, 14, 14, 14, 13]);
}

#[test]
fn a_program_of_exactly_one_segment() {
    for po2 in [16, 18] {
        let summary = execute(HELLO_ONE.binary, &[], po2).unwrap();
        assert_eq!(summary.segments, 1, "po2 {po2}");
        assert_eq!(summary.journal, hello_one_journal());
    }
}

#[test]
fn a_guest_that_panics_fails_with_its_message_before_any_proving() {
    let err = execute(PANICS.binary, &u32_input(7), 14).unwrap_err();
    assert!(matches!(err, BackendError::GuestFailed(_)), "{err}");
    assert!(
        err.to_string().contains("corpus guest refuses odd input 7"),
        "the guest's own message is missing: {err}"
    );
}

#[test]
fn composition_is_refused_plainly() {
    let hello = Digest32::from_hex(HELLO_ONE.image_id_hex).unwrap();
    let input = composes_input(&hello.0, &hello_one_journal());
    let err = execute(COMPOSES.binary, &input, 16).unwrap_err();
    assert!(matches!(err, BackendError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("composition"), "{err}");
}

#[test]
fn the_bare_elf_and_the_program_binary_are_the_same_program() {
    let backend = RiscZeroBackend::new();
    assert_eq!(
        backend.image_id(USER_LOOP_ELF).unwrap(),
        backend.image_id(USER_LOOP.binary).unwrap()
    );
    let input = user_loop_input(2, 3);
    let from_elf = execute(USER_LOOP_ELF, &input, 14).unwrap();
    assert_eq!(from_elf.journal, user_loop_journal(2, 3));
    assert_eq!(
        from_elf.image_id,
        backend.image_id(USER_LOOP.binary).unwrap()
    );
}
