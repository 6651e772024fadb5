#!/usr/bin/env bash
# Cache hits of several gateway builds, rounds alternating between them, to
# tell a change in one build's hit rate or p99 from this machine's noise
# (bench/cache-hit.sh measures each proxy once a round beside nginx,
# Varnish and the floor; its single p99s swing by 2x between runs).
#
# Each build (NAME=PATH pairs in BINS; default: this checkout's release
# binary as "rampart") runs `rampart serve` on core 0 with one cached route
# in front of an nginx origin on core 1; wrk (core 1) asks for the same
# stored SIZE body over CONNS connections, DURATION seconds a run, each build
# in turn for ROUNDS rounds. Prints every run, then each build's medians.
#
# Usage: [BINS="before=PATH now=PATH"] bench/hits-ab.sh [ROUNDS] [SIZE: 1k|16k] [CONNS] [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-6}
SIZE=${2:-16k}
CONNS=${3:-64}
DURATION=${4:-5}
source bench/lib.sh
bench_start bench
read -r -a BUILDS <<<"${BINS:-rampart=$BIN}"
ORIGIN=18281
random_body "$WORK/www/1k" 1024
random_body "$WORK/www/16k" 16384
write_origin_conf "$ORIGIN"
taskset -c 1 "$NGINX" -c "$WORK/origin.conf" -p "$WORK" & PIDS+=($!)
port=18290
PORTS=()
for b in "${BUILDS[@]}"; do
  port=$((port + 2))
  rampart_conf "$port" "$((port + 1))" '[[routes]]
match = "GET /*"
upstream = "origin"
cache = { ttl = "10m" }' > "$WORK/${b%%=*}.toml"
  env RUST_LOG=warn taskset -c 0 "${b#*=}" serve --config "$WORK/${b%%=*}.toml" & PIDS+=($!)
  PORTS+=("$port")
done
for i in "${!BUILDS[@]}"; do
  wait_http "http://127.0.0.1:${PORTS[$i]}/$SIZE"
  wrk_run "${PORTS[$i]}" "/$SIZE" "$CONNS" 2 >/dev/null
done
echo "# $SIZE hits, $CONNS connections, ${DURATION}s runs, $ROUNDS rounds alternating; gateways on core 0, wrk and origin on core 1"
echo "# builds: ${BUILDS[*]}"
printf "%-10s %5s %12s %8s %8s\n" build round req/s p50_us p99_us
for r in $(seq "$ROUNDS"); do
  for i in "${!BUILDS[@]}"; do
    n=${BUILDS[$i]%%=*}
    read -r rps p50 p99 < <(wrk_run "${PORTS[$i]}" "/$SIZE" "$CONNS" "$DURATION")
    echo "$rps $p50 $p99" >> "$WORK/$n"
    printf "%-10s %5s %12s %8s %8s\n" "$n" "$r" "$rps" "$p50" "$p99"
  done
done
for b in "${BUILDS[@]}"; do
  read -r rps p50 p99 < <(report "${b%%=*}")
  printf "%-10s %5s %12s %8s %8s\n" "${b%%=*}" median "$rps" "$p50" "$p99"
done
