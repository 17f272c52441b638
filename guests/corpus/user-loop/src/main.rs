//! A user's program: two u64s in with `env::read`, arithmetic in a loop, a tuple out with `env::commit`.
//! Journal: `(n, k, x)` in RISC Zero's serde encoding (each u64 as two little-endian u32 words).
#![no_main]

use risc0_zkvm::guest::env;

risc0_zkvm::guest::entry!(main);

fn main() {
    let (n, k): (u64, u64) = env::read();
    let mut x = k;
    for i in 0..n {
        for _ in 0..k {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407 ^ i);
        }
    }
    env::commit(&(n, k, x));
}
