#!/usr/bin/env bash
# Runs cargo for Cairn in the right build mode, so users never have to know about it:
# - reuses one target directory outside the clone ($CARGO_TARGET_DIR, default ~/.cache/cairn/target), so a
#   warm machine does not rebuild RISC Zero;
# - where RISC Zero's recursion artifacts (recursion_zkr.zip, fetched by risc0-circuit-recursion's build
#   script) cannot be downloaded, sets DOCS_RS=1 so that build script embeds an empty archive instead of
#   failing. Cairn then detects at run time that lift/join/resolve are absent and uses composite receipts.
#   Without those programs nothing can prove with the recursion circuit, so the build uses the `offline` profile,
#   whose recursion kernels (over 15 minutes of -O3 compilation on 2 cores) are built at -O1 (see Cargo.toml
#   for why not -O0). A networked build uses `dev`, recursion kernels at -O3; it downloads the programs with
#   `curl` (vendor/downloader).
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
zkr="https://risc0-artifacts.s3.us-west-2.amazonaws.com/zkr/744b999f0a35b3c86753311c7efb2a0054be21727095cf105af6ee7d3f4d8849.zip"
if [ -z "${DOCS_RS:-}" ] && [ -z "${RECURSION_SRC_PATH:-}" ]; then
  if ! command -v curl >/dev/null 2>&1 || ! curl -sf -r 0-0 --max-time 8 -o /dev/null "$zkr"; then
    [ -n "${CAIRN_QUIET_MODE:-}" ] || echo "cairn: RISC Zero recursion artifacts are not reachable; building without them (composite receipts; succinct receipts need a networked build)" >&2
    export DOCS_RS=1
  fi
fi
# The cargo profile: `offline` where recursion is absent (see Cargo.toml), else `dev`. Its output directory is
# printed by `scripts/cargo.sh --profile-dir` (for scripts that run the built binary).
profile=dev
if [ -n "${DOCS_RS:-}" ] && [ -z "${RECURSION_SRC_PATH:-}" ]; then
  profile=offline
fi
if [ "${1:-}" = "--profile-dir" ]; then
  [ "$profile" = dev ] && echo "$CARGO_TARGET_DIR/debug" || echo "$CARGO_TARGET_DIR/$profile"
  exit 0
fi
case "${1:-}" in
  build|test|run|bench|check|clippy|rustc|doc) exec cargo "$1" --profile "$profile" "${@:2}" ;;
  *) exec cargo "$@" ;;
esac
