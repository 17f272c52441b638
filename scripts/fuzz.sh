#!/usr/bin/env bash
# Coverage-guided fuzzing of Cairn's decoders with libFuzzer: the targets of crates/cairn-fuzz (`cairn-fuzz list`)
# built by fuzz/ with coverage instrumentation (stable Rust: sancov flags, no cargo-fuzz needed), each run for a
# set number of executions from a corpus seeded with real messages, segments and receipts.
#
#   scripts/fuzz.sh                      every cheap target, 1,000,000 executions each
#   scripts/fuzz.sh --runs 50000 request blob_manifest
#   scripts/fuzz.sh --risc0 --seconds 1800 segment_receipt
#                                        RISC Zero targets (the instrumented build compiles RISC Zero: ~30 min cold)
#
# Corpora grow across runs in ~/.cache/cairn/fuzz-corpus/<target>; crashes, leaks and timeouts are written to
# ~/.cache/cairn/fuzz-artifacts/<target>/ and the script exits 1. A crash becomes a regression test: copy the
# input into crates/cairn-fuzz/regressions/<target>/ (the test suite replays every file there).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=1000000
seconds=0
risc0=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --risc0) risc0=1; shift ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

cache=${CAIRN_FUZZ_CACHE:-$HOME/.cache/cairn}
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT

# 1. Seeds, from the normal build (real messages; the RISC Zero seeds are committed files).
echo "fuzz: writing seed corpora" >&2
scripts/cargo.sh run -q --locked -p cairn-fuzz -- corpus "$seeds" "${targets[@]}" >&2
if [ ${#targets[@]} -eq 0 ]; then
  kind=cheap
  [ "$risc0" = 1 ] && kind=risc0
  mapfile -t targets < <(scripts/cargo.sh run -q --locked -p cairn-fuzz -- list | awk -F'\t' -v k="$kind" '$2 == k { print $1 }')
fi

# 2. The instrumented build. RUSTFLAGS with an explicit --target reach the code under test only, not build
#    scripts or proc macros. Same versions as the workspace: its lock file, its vendored stand-ins.
cp Cargo.lock fuzz/Cargo.lock
features=()
if [ "$risc0" = 1 ]; then
  features=(--features risc0)
  # Fuzzing never runs RISC Zero's recursion programs; build without downloading them.
  [ -n "${RECURSION_SRC_PATH:-}" ] || export DOCS_RS=1
fi
host=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="$cache/fuzz-target"
echo "fuzz: building fuzz/ with libFuzzer and coverage instrumentation (first build: several minutes)" >&2
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
  cargo build --release --manifest-path fuzz/Cargo.toml --target "$host" "${features[@]}"
bin="$CARGO_TARGET_DIR/$host/release/cairn-fuzz-libfuzzer"

# 3. Each target.
status=0
printf '%-16s %12s %9s %10s %8s  %s\n' target executions seconds "exec/s" corpus result
for t in "${targets[@]}"; do
  corpus="$cache/fuzz-corpus/$t"
  artifacts="$cache/fuzz-artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  log="$cache/fuzz-artifacts/$t.log"
  limit=()
  [ "$seconds" -gt 0 ] && limit=(-max_total_time="$seconds")
  t0=$(date +%s)
  set +e
  CAIRN_FUZZ_TARGET=$t "$bin" -runs="$runs" "${limit[@]}" -rss_limit_mb=2048 -timeout=20 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "$seeds/$t" >"$log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - t0 ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  size=$(ls "$corpus" | wc -l)
  result=ok
  if [ "$rc" -ne 0 ]; then
    status=1
    result="FOUND (rc $rc): $(grep -m1 -E '^==[0-9]+== ERROR|panicked at|out-of-memory|timeout' "$log" | cut -c1-120); see $log"
  fi
  rate=$(awk -v e="${execs:-0}" -v s="${secs:-0}" 'BEGIN { if (s > 0) printf "%.0f", e / s; else print "-" }')
  printf '%-16s %12s %9s %10s %8s  %s\n' "$t" "${execs:-?}" "${secs:-?}" "$rate" "$size" "$result"
done
exit $status
