//! Touches `pages` KiB-pages of a heap buffer (RISC Zero pages memory in 1 KiB pages), twice, and commits a
//! checksum. Input: `pages: u32` with `env::read`. Journal: `(pages, checksum): (u32, u64)`.
#![no_main]

use risc0_zkvm::guest::env;

risc0_zkvm::guest::entry!(main);

const PAGE: usize = 1024;

fn main() {
    let pages: u32 = env::read();
    let mut buf = vec![0u8; pages as usize * PAGE];
    for (i, page) in buf.chunks_mut(PAGE).enumerate() {
        page[i % PAGE] = (i % 251) as u8;
        page[PAGE - 1] = 1;
    }
    let mut checksum: u64 = 0;
    for (i, page) in buf.chunks(PAGE).enumerate() {
        checksum = checksum
            .wrapping_mul(31)
            .wrapping_add(u64::from(page[i % PAGE]) + u64::from(page[PAGE - 1]));
    }
    env::commit(&(pages, checksum));
}
