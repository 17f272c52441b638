#!/usr/bin/env bash
# Cairn's test suite: every crate, including real RISC Zero proofs at po2 14 (a few minutes on 2 cores).
# First installs what the tests need from the system, or stops saying what is missing (scripts/test-deps.sh).
# Tests that cannot run here fail with the reason; a test is skipped only by its opt-out variable
# (CAIRN_SKIP_NETNS, CAIRN_SKIP_BROWSER), and the last line lists what was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
for v in CAIRN_SKIP_NETNS CAIRN_SKIP_BROWSER; do
  [ -z "${!v:-}" ] || echo "test.sh: $v is set: the tests that need it are skipped and listed at the end" >&2
done
# Each skipped test writes its name and the variable that skipped it here.
CAIRN_SKIPPED_LOG=$(mktemp)
export CAIRN_SKIPPED_LOG
trap 'rm -f "$CAIRN_SKIPPED_LOG"' EXIT
# --heavy also runs the tests marked heavy (#[ignore = "heavy: ..."]: real proofs too long for every run, such
# as Ethereum's test block proved over the devnet, ~21 min on 2 cores); without it they are listed as ignored.
args=() heavy=()
for a in "$@"; do
  if [ "$a" = --heavy ]; then heavy=(-- --include-ignored); else args+=("$a"); fi
done
# After a `--` of the caller's own, the flag joins the test binaries' arguments already there.
if [ ${#heavy[@]} -gt 0 ] && printf '%s\n' "${args[@]}" | grep -qx -- --; then heavy=(--include-ignored); fi
set +e
scripts/cargo.sh test --workspace --locked "${args[@]}" "${heavy[@]}"
rc=$?
set -e
if [ -s "$CAIRN_SKIPPED_LOG" ]; then
  n=$(sort -u "$CAIRN_SKIPPED_LOG" | wc -l)
  echo "test.sh: $n tests SKIPPED (not run, not passed), by opt-out: $(sort -u "$CAIRN_SKIPPED_LOG" | paste -sd ';' | sed 's/;/; /g')"
fi
if [ ${#heavy[@]} -eq 0 ]; then
  echo "test.sh: heavy tests not run (shown as ignored above); scripts/test.sh --heavy runs them too"
fi
exit "$rc"
