//! The smallest useful program: no input, a fixed journal. One segment at po2 16 and above.
#![no_main]

use risc0_zkvm::guest::env;

risc0_zkvm::guest::entry!(main);

fn main() {
    env::commit_slice(b"hello from one segment");
}
