#!/usr/bin/env bash
# Runs Ethereum's BlockchainTests through Cairn's stateless block validation (the eth-block guest's code, on
# the host): every single-block case of a network (default Cancun) under ValidBlocks, InvalidBlocks and
# GeneralStateTests of a copy of ethereum/tests. Prints the counts per directory and every failure with its
# reason (the table in docs/EVM.md comes from this).
#
#   scripts/eth-tests.sh PATH/TO/ethereum-tests [--network Cancun|Shanghai|...|all] [directories under BlockchainTests/]
#
# Cases of several blocks are validated block by block on each parent's post-state; networks before the merge
# (proof of work) are counted as unsupported.
#
# Get the tests with `git clone --depth 1 https://github.com/ethereum/tests` (plain JSON, no LFS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tests=${1:?usage: scripts/eth-tests.sh PATH/TO/ethereum-tests [--network NAME] [DIR...]}
shift
network=Cancun
dirs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --network) network=$2; shift 2 ;;
    *) dirs+=("$1"); shift ;;
  esac
done
bt="$tests/BlockchainTests"
[ -d "$bt" ] || { echo "no BlockchainTests/ under $tests" >&2; exit 2; }
[ ${#dirs[@]} -gt 0 ] || dirs=(ValidBlocks InvalidBlocks GeneralStateTests)
cd "$root"
# Release build of cairn-evm alone (no RISC Zero: a few minutes the first time).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
cargo build -q --release --locked -p cairn-evm --features host --example blockchain_tests
bin="$CARGO_TARGET_DIR/release/examples/blockchain_tests"
cd "$bt"
exec "$bin" --network "$network" "${dirs[@]}"
