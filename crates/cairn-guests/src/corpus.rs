//! The corpus of user-shaped guest programs (`guests/corpus/README.md`): how to encode each one's input the way
//! a RISC Zero host would (`ExecutorEnv::builder().write(..)`, RISC Zero's serde: every value as little-endian
//! u32 words, a u64 as two), and a host-side reference of its journal, so tests check what a proof says.

use sha2::{Digest, Sha256};

use crate::Guest;

macro_rules! corpus_guest {
    ($name:literal, $about:literal) => {
        Guest {
            name: $name,
            about: $about,
            binary: include_bytes!(concat!("../../../guests/bin/", $name, ".bin")),
            image_id_hex: include_str!(concat!("../../../guests/bin/", $name, ".image-id")),
        }
    };
}

/// `(n, k): (u64, u64)` in, an LCG run `n * k` steps, `(n, k, x)` committed. Ends on a short segment.
pub const USER_LOOP: Guest = corpus_guest!(
    "user-loop",
    "a user's u64 loop: input (n, k) with env::read"
);
/// The same program as a bare RISC-V ELF (what a user's own build produces), for the ELF route.
pub const USER_LOOP_ELF: &[u8] = include_bytes!("../../../guests/bin/user-loop.elf");
/// No input, a fixed journal: one segment at po2 16 and above.
pub const HELLO_ONE: Guest = corpus_guest!("hello-one", "commits a greeting; one segment");
/// Panics with a message on odd input.
pub const PANICS: Guest = corpus_guest!("panics", "panics on an odd u32");
/// Hashes all of stdin (megabytes) with the SHA-256 accelerator.
pub const BIG_INPUT: Guest = corpus_guest!("big-input", "SHA-256 of all of stdin");
/// Touches `pages` KiB-pages of heap: paging-heavy.
pub const MEM_HEAVY: Guest = corpus_guest!("mem-heavy", "touches many memory pages");
/// Writes to stdout and stderr and commits a large journal.
pub const IO_JOURNAL: Guest = corpus_guest!("io-journal", "guest I/O and a large journal");
/// Verifies another program's receipt claim inside the guest (composition).
pub const COMPOSES: Guest =
    corpus_guest!("composes", "env::verify of another receipt (an assumption)");

/// Every corpus guest.
pub const ALL: [Guest; 7] = [
    USER_LOOP, HELLO_ONE, PANICS, BIG_INPUT, MEM_HEAVY, IO_JOURNAL, COMPOSES,
];

/// RISC Zero serde words of a u64: low word, then high word, each little-endian.
fn u64_words(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

/// Input of `user-loop`.
pub fn user_loop_input(n: u64, k: u64) -> Vec<u8> {
    [u64_words(n), u64_words(k)].concat()
}

/// Journal of `user-loop`.
pub fn user_loop_journal(n: u64, k: u64) -> Vec<u8> {
    let mut x = k;
    for i in 0..n {
        for _ in 0..k {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407 ^ i);
        }
    }
    [u64_words(n), u64_words(k), u64_words(x)].concat()
}

/// Journal of `hello-one`.
pub fn hello_one_journal() -> Vec<u8> {
    b"hello from one segment".to_vec()
}

/// Input of `panics` (and of `mem-heavy`, `io-journal`): one u32.
pub fn u32_input(n: u32) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

/// Journal of `panics` for an even `n`, or `None`: the guest panics on odd input.
pub fn panics_journal(n: u32) -> Option<Vec<u8>> {
    n.is_multiple_of(2).then(|| n.to_le_bytes().to_vec())
}

/// Journal of `big-input`.
pub fn big_input_journal(input: &[u8]) -> Vec<u8> {
    let digest: [u8; 32] = Sha256::digest(input).into();
    [&(input.len() as u64).to_le_bytes()[..], &digest].concat()
}

/// Journal of `mem-heavy`: `(pages, checksum): (u32, u64)`.
pub fn mem_heavy_journal(pages: u32) -> Vec<u8> {
    const PAGE: u64 = 1024;
    let mut checksum: u64 = 0;
    for i in 0..u64::from(pages) {
        let touched = if i % PAGE == PAGE - 1 { 1 } else { i % 251 };
        checksum = checksum.wrapping_mul(31).wrapping_add(touched + 1);
    }
    [&pages.to_le_bytes()[..], &checksum.to_le_bytes()].concat()
}

/// Journal of `io-journal`.
pub fn io_journal_journal(len: u32) -> Vec<u8> {
    (0..len).map(|i| ((i * 7) % 251) as u8).collect()
}

/// Input of `composes`: an image id (eight u32 words) and a journal (`Vec<u8>`: its length, then each byte
/// as a word), as `env::read::<([u32; 8], Vec<u8>)>()` expects them.
pub fn composes_input(image_id: &[u8; 32], journal: &[u8]) -> Vec<u8> {
    let mut words: Vec<u32> = image_id
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    words.push(journal.len() as u32);
    words.extend(journal.iter().map(|&b| u32::from(b)));
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_heavy_reference_matches_the_guest_rule() {
        // page i has byte (i % 1024) set to i % 251 and its last byte set to 1; the checksum adds page[i % 1024]
        // + page[1023], and for i % 1024 == 1023 both are the same byte (1).
        assert_eq!(mem_heavy_journal(0)[4..], 0u64.to_le_bytes());
        assert_eq!(mem_heavy_journal(1)[4..], 1u64.to_le_bytes());
    }
}
