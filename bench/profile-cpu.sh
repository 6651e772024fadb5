#!/usr/bin/env bash
# Where a seed profile's CPU goes, process by process: the origin, the
# gateway and the load generator each run as a process of their own, and
# each run reads every process's user and kernel CPU time from /proc before
# and after the load. Runs alternate between straight at the origin and
# through Rampart, ROUNDS of each, each on a fresh origin and gateway (the
# origin's database grows with every write). With PERF=1 the gateway of each
# run through Rampart is sampled by `perf record` (99 Hz per CPU, no call
# graphs), and its CPU is listed by object (kernel, binary, libc) and by
# symbol; those runs go to a file of their own (…-perf.txt).
#
# With GATEWAYS="NAME=BIN NAME=BIN …" each round runs straight at the origin
# and then through each of those gateway builds in turn (the origin and the
# generator stay this checkout's), to compare gateway builds on the same
# profile; results go to …-gateways.txt.
#
#   bench/profile-cpu.sh [APP] [SCENARIO] [ROUNDS] [SECONDS]
#
# Defaults: education vus-1000 3 30. Per run it prints requests per second,
# p95 and p99 (from the generator's report) and CPU microseconds per request
# of each process (user + kernel). Results: bench/runs/DATE-HOST/
# profile-cpu-APP-SCENARIO.txt (with PERF=1, profile-cpu-APP-SCENARIO-perf.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

APP=${1:-education}
SCENARIO=${2:-vus-1000}
ROUNDS=${3:-3}
SECS=${4:-30}

bench_start test
OUT=$(runs_dir)/profile-cpu-$APP-$SCENARIO${GATEWAYS:+-gateways}${PERF:+-perf}.txt
read -r -a GWS <<<"${GATEWAYS:-rampart=$BIN}"
# gateway_bin NAME: the binary of the gateway build NAME (this checkout's for origin).
gateway_bin() {
  local g
  for g in "${GWS[@]}"; do [ "${g%%=*}" = "$1" ] && { echo "${g#*=}"; return; }; done
  echo "$BIN"
}
: > "$OUT"
say() { echo "$*" | tee -a "$OUT"; }

HEALTH=$(health_path "$APP")
# cpu PID: user and kernel CPU time of the process so far, in clock ticks.
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

STACK=()
stop_stack() {
  for p in "${STACK[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  STACK=()
}

# run TARGET(origin or a gateway's NAME) N
run() {
  local target=$1 n=$2 origin_port gw_port admin port json origin gw load c0 g0 c1 g1 l1 code=0
  origin_port=$(free_port); gw_port=$(free_port); admin=$(free_port)
  RAMPART_ADMIN_TOKEN=bench-token "$BIN" demo --app "$APP" --origin-only --scale 1 \
    --listen "127.0.0.1:$origin_port" --events-to "http://127.0.0.1:$admin" \
    2>>"$WORK/logs/origin.log" &
  origin=$!; STACK=("$origin"); PIDS+=("$origin")
  wait_http "http://127.0.0.1:$origin_port$HEALTH"
  ORIGIN_ADDR=127.0.0.1:$origin_port RAMPART_LISTEN=127.0.0.1:$gw_port \
    RAMPART_ADMIN_LISTEN=127.0.0.1:$admin RAMPART_ADMIN_TOKEN=bench-token \
    "$(gateway_bin "$target")" serve --config "examples/$APP/rampart.toml" 2>>"$WORK/logs/gateway.log" &
  gw=$!; STACK+=("$gw"); PIDS+=("$gw")
  wait_http "http://127.0.0.1:$admin/healthz"
  if [ "$target" = origin ]; then port=$origin_port; else port=$gw_port; fi
  json=$WORK/$target-$n.json
  c0=$(cpu "$origin"); g0=$(cpu "$gw")
  if [ "${PERF:-0}" = 1 ] && [ "$target" != origin ]; then
    perf record -q -F 99 -p "$gw" -o "$WORK/perf-$n.data" 2>/dev/null &
    PERF_PID=$!
  fi
  "$BIN" load "examples/$APP/scenarios/$SCENARIO.toml" --base-url "http://127.0.0.1:$port" \
    --duration "${SECS}s" --quiet --out "$json" 2>"$WORK/load.err" &
  load=$!
  # The generator's own CPU, read just before it exits: poll while it runs.
  l1=0
  while kill -0 "$load" 2>/dev/null; do
    l1=$(cpu "$load" 2>/dev/null || echo "$l1"); sleep 0.2
  done
  wait "$load" || code=$?
  c1=$(cpu "$origin"); g1=$(cpu "$gw")
  if [ -n "${PERF_PID:-}" ]; then
    kill -INT "$PERF_PID"; wait "$PERF_PID" || true; PERF_PID=
    for sort in dso sym; do
      perf report -q -i "$WORK/perf-$n.data" --sort "$sort" --percent-limit 0.8 2>/dev/null \
        | grep -v '^\s*$' | sed 's/^/    /' | head -40 >> "$WORK/perf-$n.txt" || true
    done
  fi
  stop_stack
  python3 - "$json" "$target" "$n" "$code" "$TICK" "$((c1 - c0))" "$((g1 - g0))" "$l1" <<'PY' | tee -a "$OUT"
import json, os, sys
path, target, n, code, tick, origin, gw, load = sys.argv[1:]
tick = int(tick)
if not os.path.exists(path):
    print("%-8s %2s not run (exit %s)" % (target, n, code)); sys.exit(0)
r = json.load(open(path))
o = r["overall"]
reqs = max(o["requests"], 1)
us = lambda ticks: 1e6 * int(ticks) / tick / reqs
print("%-8s %2s %8.0f %8.1f %8.1f %9.1f %9.1f %9.1f %9.1f" % (
    target, n, o["requests"] / max(r["duration_s"], 1e-9), o["latency"]["p95_ms"], o["latency"]["p99_ms"],
    us(origin), us(gw) if target != "origin" else 0.0, us(load), us(int(origin) + (int(gw) if target != "origin" else 0) + int(load))))
PY
  if [ -s "$WORK/perf-$n.txt" ]; then say "  gateway's hottest symbols, run $n:"; tee -a "$OUT" < "$WORK/perf-$n.txt"; fi
}

say "# bench/profile-cpu.sh $APP $SCENARIO $ROUNDS $SECS — $(date -u +%FT%TZ) on $(hostname), $(nproc) cores, $BIN"
say "# gateways: ${GWS[*]}"
say "# origin, gateway and generator are processes of their own; CPU is user + kernel per request"
say "$(printf '%-8s %2s %8s %8s %8s %9s %9s %9s %9s' target n 'req/s' 'p95 ms' 'p99 ms' 'origin µs' 'gw µs' 'load µs' 'all µs')"
for n in $(seq 1 "$ROUNDS"); do
  run origin "$n"
  for g in "${GWS[@]}"; do run "${g%%=*}" "$n"; done
done
echo "results: $OUT"
