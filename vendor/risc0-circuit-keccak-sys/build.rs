// Compiles the two C entry points that stand in for the keccak circuit's kernels (see Cargo.toml).
fn main() {
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        panic!(
            "Cairn's stand-in for risc0-circuit-keccak-sys has no CUDA kernels: remove the \
             `[patch.crates-io]` entry for it in Cairn's Cargo.toml to build RISC Zero's CUDA prover"
        );
    }
    println!("cargo:rerun-if-changed=src/not_built.c");
    cc::Build::new()
        .file("src/not_built.c")
        .compile("risc0_keccak_cpu_not_built");
}
