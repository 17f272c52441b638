//! Writes to stdout and stderr, then commits a journal of `len` bytes (`len: u32` with `env::read`):
//! byte i is `(i * 7) % 251`.
#![no_main]

use std::io::Write;

use risc0_zkvm::guest::env;

risc0_zkvm::guest::entry!(main);

fn main() {
    let len: u32 = env::read();
    writeln!(env::stdout(), "io-journal: writing {len} bytes of journal").unwrap();
    writeln!(env::stderr(), "io-journal: a line on stderr").unwrap();
    let journal: Vec<u8> = (0..len).map(|i| ((i * 7) % 251) as u8).collect();
    env::commit_slice(&journal);
}
