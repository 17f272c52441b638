#!/usr/bin/env bash
# Many real `cairn node` processes on loopback and one network job (issue 30's first try, repeatable):
#   scripts/many-nodes.sh N [ITERATIONS] [OUT]
# Starts N fake-backend prover nodes (named as such: their receipts are not RISC Zero receipts), each
# bootstrapped to the first, then one `cairn prove --network --backend fake` client of ITERATIONS cycles at
# po2 14 (the default, 11.4 M cycles, is 698 segments), and reports the job's outcome and time, the client's
# lost or waiting network events, and the penalties it gave (every node is honest: there should be none).
# Uses the binary `scripts/cargo.sh build` made (override with CAIRN=path). Settings by environment: SETTLE,
# IDLE (the idle measurement, docs/LAB.md), STAGGER (seconds between node starts), NO_CLIENT=1.
set -u
N=${1:?usage: scripts/many-nodes.sh N [ITERATIONS] [OUT]}
ITER=${2:-11436032}
OUT=${3:-cairn-out/many-nodes}
CAIRN=${CAIRN:-$HOME/.cache/cairn/target/offline/cairn}
rm -rf "$OUT"
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || true
pids=()
# Nodes on a saturated machine may take long to drain: TERM, up to 10 s, then KILL (a hung cleanup once left 200
# nodes holding 24 GB).
cleanup() {
	kill "${pids[@]}" 2>/dev/null
	for _ in $(seq 20); do
		alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1 && break; done
		[ "$alive" = 0 ] && return
		sleep 0.5
	done
	kill -9 "${pids[@]}" 2>/dev/null
}
trap cleanup EXIT
start_node() { # index, bootstrap (may be empty)
	local args=(node --backend fake --no-benchmark --no-mdns --workers 1 --listen /ip4/127.0.0.1/tcp/0
		--print-addr --data-dir "$OUT/node-$1")
	[ -n "$2" ] && args+=(--bootstrap "$2")
	"$CAIRN" "${args[@]}" >"$OUT/node-$1.out" 2>"$OUT/node-$1.log" &
	pids+=($!)
}
start_node 0 ""
for _ in $(seq 100); do
	first=$(sed -n 's/^listening //p' "$OUT/node-0.out" | grep /tcp/ | head -1)
	[ -n "$first" ] && break
	sleep 0.2
done
[ -n "$first" ] || { echo "node 0 did not listen"; exit 1; }
# STAGGER seconds between starts (default 0: all at once, the start-up storm docs/LAB.md describes).
for i in $(seq 1 $((N - 1))); do
	start_node "$i" "$first"
	[ -n "${STAGGER:-}" ] && sleep "$STAGGER"
done
# Every node listening.
for _ in $(seq 600); do
	up=$(grep -l '^listening ' "$OUT"/node-*.out 2>/dev/null | wc -l)
	[ "$up" -ge "$N" ] && break
	sleep 0.5
done
echo "many-nodes: $up of $N nodes listening; load $(cut -d' ' -f1-3 /proc/loadavg)"
# The nodes idle: CPU (share of one core) and RSS per node over IDLE seconds (default 30), SETTLE seconds
# (default 5) after the last one listens.
ticks() { for p in "${pids[@]}"; do awk '{print $14 + $15}' /proc/"$p"/stat 2>/dev/null || echo 0; done; }
IDLE=${IDLE:-30}
sleep "${SETTLE:-5}"
opens() { awk '/^Tcp:/ {getline; print $6}' /proc/net/snmp; }
before=($(ticks))
opened=$(opens)
sleep "$IDLE"
after=($(ticks))
opened=$(( $(opens) - opened ))
hz=$(getconf CLK_TCK)
for i in "${!pids[@]}"; do
	echo "$(( (${after[$i]:-0} - ${before[$i]:-0}) * 1000 / (hz * IDLE) )) $(awk '/VmRSS/ {print $2}' /proc/"${pids[$i]}"/status 2>/dev/null || echo 0)"
done | sort -n | awk -v n="$N" '{c[NR]=$1; r[NR]=$2; tc+=$1} END {
	printf "many-nodes: idle for '"$IDLE"' s: CPU per node median %.1f%%, max %.1f%%, all nodes %.0f%% of one core; load %s\n",
		c[int((NR+1)/2)]/10, c[NR]/10, tc/10, "'"$(cut -d' ' -f1-3 /proc/loadavg)"'" }'
ps -o rss= -p "$(IFS=,; echo "${pids[*]}")" | sort -n | awk '{r[NR]=$1} END {printf "many-nodes: node RSS median %d MB, max %d MB\n", r[int((NR+1)/2)]/1024, r[NR]/1024}'
# Connection churn: TCP connections this machine opened (its nodes' dials) during the idle window.
echo "many-nodes: connections opened while idle: $opened in ${IDLE} s ($(( opened * 60 / IDLE )) a minute)"
# Each loopback connection is two established sockets, one per end, each end a node's.
echo "many-nodes: connections per node (established TCP sockets / nodes): $(( $(ss -tnH state established 2>/dev/null | wc -l) / N ))"
echo "many-nodes: memory available $(awk '/MemAvailable/ {printf "%d MB", $2/1024}' /proc/meminfo)"
[ -n "${NO_CLIENT:-}" ] && exit 0
started=$(date +%s.%N)
RUST_LOG=${RUST_LOG:-info} "$CAIRN" prove --network --backend fake --no-progress --listen /ip4/127.0.0.1/tcp/0 \
	--bootstrap "$first" --program sha-chain --po2 14 --iterations "$ITER" \
	--out "$OUT/receipt.bin" --db "$OUT/jobs.sqlite" --data-dir "$OUT/client" >"$OUT/client.out" 2>"$OUT/client.log"
rc=$?
secs=$(echo "$(date +%s.%N) - $started" | bc)
strip() { sed 's/\x1b\[[0-9;]*m//g' "$@"; }
echo "many-nodes: client exit $rc after ${secs} s; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "many-nodes: client: $(strip "$OUT/client.log" | grep -c 'event dropped\|events lost') lost-event lines," \
	"$(strip "$OUT/client.log" | grep -c 'behind on network events') behind-on-events warnings," \
	"$(strip "$OUT/client.log" | grep -ci 'penaliz') penalty lines, $(strip "$OUT/client.log" | grep -c 'went silent') 'went silent'," \
	"$(strip "$OUT/client.log" | grep -c 'at the same moment') bursts of silences excused"
echo "many-nodes: nodes: $(cat "$OUT"/node-*.log | strip | grep -c 'event dropped') lost-event lines," \
	"peak RSS of node 1: $(grep VmHWM /proc/"${pids[1]}"/status 2>/dev/null | awk '{print $2, $3}')"
strip "$OUT/client.log" | grep -i 'penaliz\|went silent\|failed' | head -5
exit $rc
