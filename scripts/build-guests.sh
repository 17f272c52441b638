#!/usr/bin/env bash
# Rebuild Cairn's guest programs with Debian's Rust toolchain (no rzup needed) and refresh guests/bin/.
#
# Needs: apt-get install -y rustc-web cargo-web rust-web-src lld-22   (rustc >= 1.96 with its library source)
# Produces, for each guest NAME: guests/bin/NAME.bin (a RISC Zero program binary: user ELF + v1compat kernel)
# and guests/bin/NAME.image-id (hex). Commit both; `cargo test -p cairn-backend` checks that they match.
#
# `scripts/build-guests.sh --eth-block-k256 DIR` instead builds only a variant of eth-block that recovers
# signatures with pure-Rust k256 rather than the bigint2 accelerator, into DIR/eth-block-k256.bin (not
# committed; `cairn bench evm --compare DIR/eth-block-k256.bin` measures the difference).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
variant_dir=
if [ "${1:-}" = "--eth-block-k256" ]; then
  variant_dir=$(mkdir -p "${2:?--eth-block-k256 DIR}" && cd "$2" && pwd)
fi
cd "$root/guests"

RUSTC=${GUEST_RUSTC:-/usr/bin/rustc}
CARGO=${GUEST_CARGO:-/usr/bin/cargo}
LLD=${GUEST_LLD:-/usr/lib/llvm-22/bin/ld.lld}
for tool in "$RUSTC" "$CARGO" "$LLD"; do
  [ -x "$tool" ] || { echo "missing $tool: apt-get install -y rustc-web cargo-web rust-web-src lld-22" >&2; exit 1; }
done

sep=$'\x1f'
flags=(-C passes=lower-atomic -C link-arg=-Ttext=0x00200800 -C link-arg=--fatal-warnings -C panic=abort
       --cfg 'getrandom_backend="custom"' -C "linker=$LLD")
encoded=$(IFS=$sep; echo "${flags[*]}")

build() {
  env -u RUSTFLAGS -u CARGO_TARGET_DIR \
    RUSTC="$RUSTC" RUSTC_BOOTSTRAP=1 \
    CARGO_ENCODED_RUSTFLAGS="$encoded" \
    CFLAGS_riscv32im_risc0_zkvm_elf="-march=rv32im -nostdlib" \
    RISC0_FEATURE_bigint2="" \
    "$CARGO" build --release ${GUEST_LOCKED---locked} --target riscv32im-risc0-zkvm-elf \
      -Z build-std=alloc,core,proc_macro,panic_abort,std -Z build-std-features=compiler-builtins-mem "$@"
}

if [ -n "$variant_dir" ]; then
  build -p eth-block --features k256 --target-dir "$root/guests/target-k256"
  cp "$root/guests/target-k256/riscv32im-risc0-zkvm-elf/release/eth-block" "$variant_dir/eth-block-k256.elf"
  cd "$root"
  scripts/cargo.sh run -q -p cairn-risc0 --example package_guests -- "$variant_dir" "$variant_dir/eth-block-k256.elf"
  exit 0
fi

build --target-dir "$root/guests/target"

# The bundled programs, then the corpus of user-shaped programs (guests/corpus/README.md).
names=(sha-chain seed-bench eth-block user-loop hello-one panics big-input mem-heavy io-journal composes)
mkdir -p "$root/guests/bin"
elfs=()
for name in "${names[@]}"; do
  cp "$root/guests/target/riscv32im-risc0-zkvm-elf/release/$name" "$root/guests/bin/$name.elf"
  elfs+=("guests/bin/$name.elf")
done
# Wrap the ELFs into program binaries and record their image ids (uses the host workspace's risc0 crates).
cd "$root"
for name in "${names[@]}"; do  # the packager's own build embeds guests/bin: make sure the files exist
  [ -f "guests/bin/$name.bin" ] || : > "guests/bin/$name.bin"
  [ -f "guests/bin/$name.image-id" ] || : > "guests/bin/$name.image-id"
done
scripts/cargo.sh run -q -p cairn-risc0 --example package_guests -- guests/bin "${elfs[@]}"
# One bare ELF stays, so the ELF route (what a user's own build produces) is tested beside program binaries.
for name in "${names[@]}"; do
  [ "$name" = user-loop ] || rm -f "$root/guests/bin/$name.elf"
done
