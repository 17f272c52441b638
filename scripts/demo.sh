#!/usr/bin/env bash
# Cairn's main job on the embedded default: a local network on this machine. Starts 2 prover nodes and a
# client as separate processes on loopback, proves the bundled sha-chain program at po2 14 across them
# (every segment proof verified against the segment it was asked for), writes the receipt, verifies it
# again from the file, and stops everything. Extra arguments go to `cairn devnet` (see --help) and win over
# these defaults: `scripts/demo.sh --po2 auto` lets the network choose the segment size.
# CAIRN_DEMO_BIN=<path to cairn> runs that binary instead of building one (the test suite does).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${CAIRN_DEMO_BIN:-}" ]; then
  cairn=$CAIRN_DEMO_BIN
else
  scripts/cargo.sh build -q -p cairn-cli --locked
  cairn="$(CAIRN_QUIET_MODE=1 scripts/cargo.sh --profile-dir)/cairn"
fi
# The script's defaults, each only where the user gave neither the flag nor its environment variable.
given() {
  local flag=$1 short=${2:-} a
  for a in "${user[@]}"; do
    case "$a" in
      "$flag" | "$flag"=*) return 0 ;;
    esac
    if [ -n "$short" ] && [ "$a" = "$short" ]; then return 0; fi
  done
  return 1
}
user=("$@")
defaults=()
given --nodes || [ -n "${CAIRN_DEVNET_NODES:-}" ] || defaults+=(--nodes 2)
given --po2 || [ -n "${CAIRN_PO2:-}" ] || defaults+=(--po2 14)
given --out -o || [ -n "${CAIRN_OUT:-}" ] || defaults+=(--out cairn-out/devnet/receipt.bin)
exec "$cairn" devnet "${defaults[@]}" "$@"
