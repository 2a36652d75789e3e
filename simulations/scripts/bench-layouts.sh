#!/bin/bash
# bench-layouts.sh BINARY MODE LAYOUT IPBASE OUTFILE
# Starts LAYOUT (1 or 3) Argentine nodes of BINARY as processes on 127.0.0.IPBASE..,
# runs `barberpro bench --mode spread` at 1 and 100 clients for 10 s each against the
# first node, writes the JSON results to OUTFILE and stops the nodes.
# MODE "after" (issue 8 and later builds) makes a CA, node certificates and token keys,
# and lifts the rate limits; MODE "before" starts a build older than issue 8 without them
# (one with --bootstrap-expect, as 7aff7fa, the last before issue 8: older ones, e.g.
# a629ac8, cannot start the 3-node layout).
# Issue 8's before/after figures: the same layout, the two builds, alternated, e.g.
#   simulations/scripts/bench-layouts.sh OLD/barberpro before 3 227 b3.json
#   simulations/scripts/bench-layouts.sh bin/barberpro after 3 231 a3.json
# USERS=1 (or any list) replaces the client counts 1,100. METRICS=1 prints, after the
# run, the first node's mean handler time of POST /v1/bookings and mean Raft commit
# time (batcher to FSM result) from its /metrics: where a booking's time goes, and
# each node's CPU seconds (over the bench's "ok": CPU per request) and FSM commits, e.g.
#   USERS=1 METRICS=1 simulations/scripts/bench-layouts.sh bin/barberpro after 1 90 o.json
# BENCH_MODE=availability|city|hot replaces spread, e.g. the city mix on 3 ar nodes:
#   BENCH_MODE=city USERS=5000 DURATION=25s simulations/scripts/bench-layouts.sh bin/barberpro after 3 150 o.json
# CITY_LOCAL=1 runs one spread bench per node at once instead, USERS clients
# each (default 33), booking providers of that node's city at that node, e.g.
#   CITY_LOCAL=1 PROFILE=lan USERS=33 DURATION=20s METRICS=1 simulations/scripts/bench-layouts.sh bin/barberpro after 3 150 o.json
# (results in o.json.0 .. o.json.2; the clients of a city booking at their own node).
# PROFILE=lan starts the nodes with the production timing preset instead of
# BARBERPRO_PROFILE=local (the local one snapshots every 1024 Raft entries).
# BENCH_EXTRA= adds flags to the bench, e.g. BENCH_EXTRA="--cpuprofile /tmp/bench.pprof"
# (the bench's own CPU, on the same cores as the nodes).
# PPROF=1 serves each node's runtime profiles on IP:6060 (--pprof-addr), e.g. during
# the 100-client run: go tool pprof -seconds 8 http://127.0.0.IPBASE:6060/debug/pprof/profile
set -u
BIN=$1; MODE=$2; LAYOUT=$3; BASE=$4; OUT=$5
ROOT=$(mktemp -d /tmp/bench8-XXXX)
KEY=$(head -c 32 /dev/urandom | base64)
ids=(ba-1 cba-1 ros-1); cities=(buenos-aires cordoba rosario)
if [ "$MODE" = after ]; then
  $BIN ca init --dir $ROOT/ca >/dev/null
  $BIN token init --dir $ROOT/tokens >/dev/null
fi
pids=()
for i in $(seq 0 $((LAYOUT-1))); do
  ip=127.0.0.$((BASE+i)); id=${ids[$i]}
  args=(node start --id $id --city ${cities[$i]} --data-dir $ROOT/$id --bind $ip --log-level warn)
  if [ $LAYOUT = 1 ]; then args+=(--bootstrap); else args+=(--bootstrap-expect 3); fi
  if [ $i -gt 0 ]; then args+=(--join 127.0.0.$BASE:7946); fi
  if [ "${PPROF:-}" = 1 ]; then args+=(--pprof-addr $ip:6060); fi
  if [ "$MODE" = after ]; then
    $BIN ca issue --dir $ROOT/ca --id $id --city ${cities[$i]} --ip $ip --out $ROOT/tls-$id >/dev/null
    args+=(--tls-dir $ROOT/tls-$id --token-keys $ROOT/tokens/keys.json --rate-limit inf --ip-rate-limit inf)
  fi
  BARBERPRO_GOSSIP_KEY=$KEY BARBERPRO_PROFILE=${PROFILE:-local} $BIN "${args[@]}" >$ROOT/$id.log 2>&1 &
  pids+=($!)
done
for t in $(seq 1 60); do curl -sf http://127.0.0.$BASE:8080/readyz >/dev/null && break; sleep 1; done
sleep 2
targets=http://127.0.0.$BASE:8080
# BENCH_MODE=city (the 10,000-person shape: each person at their city's node)
# targets every node; DURATION= replaces the 10 s of each run.
# SPREAD=1 does so for any mode (the anchor's "spread over the 3 nodes" rows).
if [ "${BENCH_MODE:-spread}" = city ] || [ "${SPREAD:-}" = 1 ]; then
  for i in $(seq 1 $((LAYOUT-1))); do targets=$targets,http://127.0.0.$((BASE+i)):8080; done
fi
tok=(); [ "$MODE" = after ] && tok=(--token-dir $ROOT/tokens)
# --mode spread explicitly: city is the default since session 15 (every build since
# the first bench has --mode).
# METRICS=1 also prints the bench's own CPU (user+sys, provider setup included):
# it shares the cores with the nodes, so its CPU per request counts too.
bench=($BIN bench --mode ${BENCH_MODE:-spread} --target $targets "${tok[@]}" --users ${USERS:-1,100} --duration ${DURATION:-10s} ${BENCH_EXTRA:-} --json)
TIMEFORMAT='bench CPU: %U s user, %S s sys'
if [ "${CITY_LOCAL:-}" = 1 ]; then
  # One spread bench per node at once, USERS clients each, booking providers
  # of that node's city there (OUT.0, OUT.1, ...: add their bookings/s).
  bpids=()
  for i in $(seq 0 $((LAYOUT-1))); do
    $BIN bench --mode spread --city ${cities[$i]} --target http://127.0.0.$((BASE+i)):8080 "${tok[@]}" \
      --users ${USERS:-33} --duration ${DURATION:-10s} ${BENCH_EXTRA:-} --json > $OUT.$i &
    bpids+=($!)
  done
  wait "${bpids[@]}"
elif [ "${METRICS:-}" = 1 ]; then
  { time "${bench[@]}" > $OUT 2>&3 ; } 3>&2 2>&1 | grep "^bench CPU" >&2
else
  "${bench[@]}" > $OUT
fi
if [ "${METRICS:-}" = 1 ]; then
  curl -s http://127.0.0.$BASE:8080/metrics | awk '
    /^barberpro_http_request_duration_seconds_(sum|count)\{route="POST \/v1\/bookings"\}/ { h[$0 ~ /_sum/ ? "s" : "c"] = $NF }
    /^barberpro_raft_commit_duration_seconds_(sum|count)\{/ { r[$0 ~ /_sum/ ? "s" : "c"] = $NF }
    END { if (h["c"] > 0) printf "POST /v1/bookings handler: mean %.3f ms over %d\n", 1000*h["s"]/h["c"], h["c"]
          if (r["c"] > 0) printf "raft commit (batcher to FSM result): mean %.3f ms over %d\n", 1000*r["s"]/r["c"], r["c"] }' >&2  # Each node's CPU since it started (divide by the bench's "ok" for CPU per request).
  for i in $(seq 0 $((LAYOUT-1))); do
    curl -s http://127.0.0.$((BASE+i)):8080/metrics | awk -v n=${ids[$i]} '/^process_cpu_seconds_total/ { printf "%s CPU: %s s\n", n, $NF }
      /^barberpro_fsm_commits_total/ { printf "%s FSM commits: %s\n", n, $NF }' >&2
  done
fi
kill "${pids[@]}"; wait
rm -rf $ROOT
