//! Rejects odd inputs with a panic whose message the host must show. Journal for even `n`: `n` (one u32 word).
#![no_main]

use risc0_zkvm::guest::env;

risc0_zkvm::guest::entry!(main);

fn main() {
    let n: u32 = env::read();
    if n % 2 == 1 {
        panic!("corpus guest refuses odd input {n}");
    }
    env::commit(&n);
}
