#!/bin/bash
# demo-cpu.sh BINARY OUTFILE
# The 10,000-person run of issue 11 with the CPU each process used: starts
# `BINARY demo --no-rate-limits --ip-base 201` (five nodes on 127.0.0.201-205),
# runs the bench line the demo prints with --json (60 s) into OUTFILE, reads
# /proc/PID/stat of every node and of the bench, and /proc/stat, over 20 s in
# the middle of the run, then stops the demo. It prints the machine's idle share
# and each process's share of one core, e.g.
#   simulations/scripts/demo-cpu.sh bin/barberpro o.json
# BENCH_ENV= sets variables for the bench only, e.g. BENCH_ENV=GOGC=100 (the
# bench's GC target before session 22). The p50/p95/p99 per route are in
# OUTFILE's "routes". Needs the loopback addresses free and no other demo,
# node or bench on the machine (it reads every "node start" and "bench" process).
set -u
BIN=$1; OUT=$2
LOG=$(mktemp /tmp/demo-cpu-XXXX.log)
cleanup() { pkill -INT -f "demo --no-rate-limits --ip-base 201" 2>/dev/null; rm -f "$LOG"; }
trap cleanup EXIT
"$BIN" demo --no-rate-limits --ip-base 201 > "$LOG" 2>&1 &
for _ in $(seq 1 120); do grep -q "bench --target" "$LOG" && break; sleep 1; done
line=$(grep -m1 "bench --target" "$LOG")
[ -n "$line" ] || { echo "the demo printed no bench line:" >&2; tail -20 "$LOG" >&2; exit 1; }
sleep 3
read -r -a bench <<< "$line"
env ${BENCH_ENV:-} "${bench[@]}" --json > "$OUT" &
bp=$!
sleep 25

cpu() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
idle() { awk 'NR==1 {print $5}' /proc/stat; }
pids=$(pgrep -f "node start --id|bench --target" | tr '\n' ' ')
declare -A a name
for p in $pids; do
  a[$p]=$(cpu "$p")
  name[$p]=$(tr '\0' ' ' < "/proc/$p/cmdline" | grep -o -- '--id [a-z0-9-]*\|bench --target' | head -1)
done
i0=$(idle); sleep 20; i1=$(idle)
ncpu=$(nproc)
echo "machine idle: $(( (i1 - i0) * 100 / (20 * $(getconf CLK_TCK) * ncpu) ))% of $ncpu cores"
for p in $pids; do
  echo "${name[$p]}: $(( ($(cpu "$p") - a[$p]) * 100 / (20 * $(getconf CLK_TCK)) ))% of a core"
done
wait "$bp"
