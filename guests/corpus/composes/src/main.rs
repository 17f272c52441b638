//! Composition: verifies, inside the guest, that another program (image id from the input) produced a journal
//! (bytes from the input), then commits that journal. Proving it needs that receipt as an assumption.
//! Input: `(image_id, journal): ([u32; 8], Vec<u8>)` with `env::read`.
#![no_main]

use risc0_zkvm::guest::env;

risc0_zkvm::guest::entry!(main);

fn main() {
    let (image_id, journal): ([u32; 8], Vec<u8>) = env::read();
    env::verify(image_id, journal.as_slice()).expect("composition");
    env::commit_slice(&journal);
}
