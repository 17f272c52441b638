#!/usr/bin/env bash
# Cairn's test suite: every crate, including real RISC Zero proofs at po2 14 (a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/cargo.sh test --workspace --locked "$@"
