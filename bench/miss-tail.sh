#!/usr/bin/env bash
# Misses while the memory tier fills and then evicts: each proxy starts
# empty and serves ROUNDS runs of DURATION seconds back to back, every
# request a new 1 KiB URL on one connection (fetched, stored, answered), so
# its cache grows by some 90,000 entries a run until the budget (MEMORY,
# Rampart's `[cache] memory`) is full and every store evicts. Per run: req/s,
# p50 and p99, and Rampart's L1 entries after it. A cost that grows with the
# number of entries (a table rehashed inside one request, say) shows as a
# p99 that rises from run to run.
#
# nginx proxy_cache (a 64 MiB key zone, tmpfs) runs the same rounds as the
# peer; BASELINE_BIN=PATH adds another Rampart build. Proxy on core 0, wrk
# and the origin on core 1.
#
# Usage: [BASELINE_BIN=PATH] bench/miss-tail.sh [DURATION] [ROUNDS] [MEMORY]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
ROUNDS=${2:-3}
MEMORY=${3:-256MiB}
source bench/lib.sh
bench_start bench
ORIGIN=18381 NGINX_CACHE=18382 RAMPART=18383 ADMIN=18384
mkdir -p "$WORK/www" "$WORK/logs"
random_body "$WORK/www/1k" 1024
write_origin_conf "$ORIGIN"
write_proxy_conf "" "$NGINX_CACHE"
rampart_conf "$RAMPART" "$ADMIN" "[cache]
memory = \"$MEMORY\"
[[routes]]
match = \"GET /*\"
upstream = \"origin\"
cache = { ttl = \"10m\" }" > "$WORK/rampart.toml"
unique_urls unique /1k
taskset -c 1 "$NGINX" -c "$WORK/origin.conf" -p "$WORK" & PIDS+=($!)

# rounds NAME PORT: the rounds against a proxy already listening on PORT.
rounds() {
  for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$2/1k" 2>/dev/null && break; sleep 0.1; done
  for r in $(seq "$ROUNDS"); do
    read -r rps p50 p99 < <(wrk_run "$2" "" 1 "$DURATION" "$WORK/unique.lua")
    entries=$(curl -fsS "http://127.0.0.1:$ADMIN/metrics" 2>/dev/null | awk '$1 == "rampart_cache_l1_entries" { print $2 }' || true)
    [ "$1" = nginx ] && entries=-
    printf "%-9s %5s %10s %8s %8s %10s\n" "$1" "$r" "$rps" "$p50" "$p99" "${entries:-?}"
  done
}

# one NAME CMD...: starts a proxy on core 0, runs the rounds, stops it.
one() {
  local name=$1 port=$RAMPART; shift
  [ "$name" = nginx ] && port=$NGINX_CACHE
  taskset -c 0 "$@" & local pid=$!
  rounds "$name" "$port"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "# misses on one connection, a new 1 KiB URL each, ${DURATION}s runs back to back from an empty cache (Rampart memory = $MEMORY)"
printf "%-9s %5s %10s %8s %8s %10s\n" proxy run req/s p50_us p99_us l1_entries
one nginx "$NGINX" -c "$WORK/proxy.conf" -p "$WORK"
one rampart env RUST_LOG=warn "$BIN" serve --config "$WORK/rampart.toml"
if [ -n "${BASELINE_BIN:-}" ]; then
  one baseline env RUST_LOG=warn "$BASELINE_BIN" serve --config "$WORK/rampart.toml"
fi
