#!/usr/bin/env bash
# Cairn's main job on the embedded default: a local network on this machine. Starts 2 prover nodes and a
# client as separate processes on loopback, proves the bundled sha-chain program at po2 14 across them
# (every segment proof verified against the segment it was asked for), writes the receipt, verifies it
# again from the file, and stops everything. Extra arguments go to `cairn devnet` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/cargo.sh build -q -p cairn-cli --locked
cairn="$(CAIRN_QUIET_MODE=1 scripts/cargo.sh --profile-dir)/cairn"
exec "$cairn" devnet --nodes 2 --po2 14 --out cairn-out/devnet/receipt.bin "$@"
