#!/usr/bin/env bash
# Benchmark of the Bonsai-compatible gateway (issue 9), real proofs, one run, side by side on one devnet:
#   1. the same program and input (corpus guest user-loop, n=1 k=1, po2 14) proved by `cairn prove --network`
#      and by the unchanged example host (examples/stock-host, default_prover()) through `cairn gateway`;
#   2. session latency with 1 session alone vs 4 sessions at once (four inputs, so four jobs).
# Prints the figures; with CAIRN_BENCH_SCREENSHOT=PATH also saves a screenshot of the dashboard while the four
# sessions run (needs Debian's chromium). Takes ~15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/cargo.sh build -q -p cairn-cli --locked
cairn="$(CAIRN_QUIET_MODE=1 scripts/cargo.sh --profile-dir)/cairn"
host_target="$HOME/.cache/cairn/target/stock-host"
(cd examples/stock-host && env -i PATH="$PATH" HOME="$HOME" ${CARGO_HOME:+CARGO_HOME="$CARGO_HOME"} \
  ${RUSTUP_HOME:+RUSTUP_HOME="$RUSTUP_HOME"} CARGO_TARGET_DIR="$host_target" cargo build -q --release --locked)
host="$host_target/release/stock-host"
po2=14
nodes=${CAIRN_BENCH_NODES:-2}

dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

addrs=()
for i in $(seq 1 "$nodes"); do
  CAIRN_LOG=warn "$cairn" node --listen /ip4/127.0.0.1/tcp/0 --no-mdns --print-addr --workers 1 --threads 1 \
    --data-dir "$dir/node$i" > "$dir/node$i.out" 2> "$dir/node$i.err" &
  pids+=($!)
done
for i in $(seq 1 "$nodes"); do
  for _ in $(seq 1 600); do grep -q '^listening ' "$dir/node$i.out" 2>/dev/null && break; sleep 0.5; done
  addrs+=("$(sed -n 's/^listening //p' "$dir/node$i.out" | head -1)")
done
bootstrap=$(IFS=,; echo "${addrs[*]}")
echo "bench-gateway: $nodes nodes (1 proving thread each), po2 $po2, $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

now() { date +%s.%N; }
input_hex() { python3 -c "import struct,sys; print(struct.pack('<QQ', $1, $2).hex())"; }

# 1a. cairn prove --network
t0=$(now)
CAIRN_LOG=warn "$cairn" prove --network --no-progress --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$bootstrap" \
  --program guests/bin/user-loop.bin --input-hex "$(input_hex 1 1)" --po2 $po2 --aggregation composite \
  --db "$dir/net.sqlite" --data-dir "$dir/net-client" --out "$dir/net/receipt.bin" > "$dir/net.log" 2>&1
t_net=$(awk "BEGIN{print $(now) - $t0}")

# The gateway, on the same nodes.
CAIRN_LOG=warn "$cairn" gateway --http 127.0.0.1:0 --print-addr --po2 $po2 --listen /ip4/127.0.0.1/tcp/0 \
  --bootstrap "$bootstrap" --keys bench:bench-key-0001 --gateway-dir "$dir/gw" --db "$dir/gw.sqlite" \
  --data-dir "$dir/gw-client" --aggregation composite > "$dir/gw.out" 2> "$dir/gw.err" &
pids+=($!)
for _ in $(seq 1 120); do grep -q '^gateway ' "$dir/gw.out" 2>/dev/null && break; sleep 0.5; done
url=$(sed -n 's/^gateway //p' "$dir/gw.out" | head -1)
sleep 2   # let the gateway's coordinator meet the nodes

run_host() { # n k -> seconds
  local t; t=$(now)
  BONSAI_API_URL="$url" BONSAI_API_KEY=bench-key-0001 "$host" "$1" "$2" > "$dir/host-$1-$2.out" 2>&1
  awk "BEGIN{print $(now) - $t}"
}

# 1b. the stock host through the gateway (same program, same input: a fresh job key in the gateway's database).
t_gw=$(run_host 1 1)

# 2. one session alone, then four at once.
t_one=$(run_host 2 1)
four_pids=()
for nk in "1 2" "1 3" "2 2" "3 1"; do
  ( run_host $nk > "$dir/lat-${nk// /-}" ) &
  four_pids+=($!)
done
if [ -n "${CAIRN_BENCH_SCREENSHOT:-}" ]; then
  sleep 60
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1100 \
    --virtual-time-budget=4000 --screenshot="$CAIRN_BENCH_SCREENSHOT" "$url/" > /dev/null 2>&1 || true
fi
wait "${four_pids[@]}"
four=$(cat "$dir"/lat-* | sort -n | tr '\n' ' ')
mean4=$(cat "$dir"/lat-* | awk '{s+=$1} END {printf "%.1f", s/NR}')
segs() { sed -n 's/.*segments=\([0-9]*\).*/\1/p' "$dir/host-$1-$2.out"; }

printf '\n%-58s %8s\n' "measure (po2 $po2, $nodes nodes)" "seconds"
printf '%-58s %8.1f\n' "cairn prove --network, user-loop (1,1), $(grep -o '[0-9]* at po2' "$dir/net.log" | head -1 | cut -d' ' -f1) segments" "$t_net"
printf '%-58s %8.1f\n' "stock host through cairn gateway, same input, $(segs 1 1) segments" "$t_gw"
printf '%-58s %8.2f\n' "  ratio gateway / prove --network" "$(awk "BEGIN{print $t_gw / $t_net}")"
printf '%-58s %8.1f\n' "one session alone, (2,1), $(segs 2 1) segments" "$t_one"
printf '%-58s %8s\n' "four sessions at once, each (seconds, sorted)" ""
printf '%-58s %8s\n' "  $four" ""
printf '%-58s %8s\n' "  mean" "$mean4"
for f in "$dir"/host-*.out; do grep -q '^verified: ' "$f" || { echo "bench-gateway: a host did not verify its receipt: $f" >&2; cat "$f" >&2; exit 1; }; done
echo "every host verified its receipt with receipt.verify(image_id)"
