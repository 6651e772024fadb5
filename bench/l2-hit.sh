#!/usr/bin/env bash
# The shared tier's hit path: requests that miss memory (L1) and are answered
# from Redis (L2), against the same responses served from memory, passed
# through to the origin uncached, and served by nginx proxy_cache.
#
# Each connection walks over KEYS distinct URLs of one body size (a wrk
# script adds `?k=N`), so that requests rarely meet on one key: a hot single
# URL would be coalesced (one Redis GET shared by every waiting request) and
# would measure the wait, not the tier. Every case is warmed over all keys
# first. Two Rampart processes share the binary: one with a normal memory budget
# (L1 hits), one with its memory tier off (`memory = "0"`), so that every
# request of the measured URL is an L2 hit (checked from its metrics after
# the run). Setup as bench/cache-hit.sh: proxies on core 0;
# wrk, the origin (nginx static files) and redis-server on core 1; 1 KiB and
# 16 KiB bodies; medians of ROUNDS rounds.
# BASELINE_BIN=PATH adds another build's L2 node (memory off too), to
# compare two builds in one run.
# Usage: [BASELINE_BIN=PATH] bench/l2-hit.sh [DURATION] [CONNS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
KEYS=${KEYS:-2000}
source bench/lib.sh
bench_start bench test

ORIGIN=18101 NGINX_PROXY=18102 L1=18103 L1_ADMIN=18104 L2=18105 L2_ADMIN=18106 REDIS=18107 BASE=18108 BASE_ADMIN=18109
BASELINE_BIN=${BASELINE_BIN:-}
mkdir -p "$WORK/www/c" "$WORK/www/pass"
for size in 1k:1024 16k:16384; do
  random_body "$WORK/www/c/${size%%:*}" "${size#*:}"
  cp "$WORK/www/c/${size%%:*}" "$WORK/www/pass/"
done

write_origin_conf "$ORIGIN"
write_proxy_conf "" "$NGINX_PROXY"

# tiered MEMORY: a Rampart config's tables and routes with that memory tier.
tiered() {
  cat <<CONF
[cache]
memory = "$1"
redis = "redis://127.0.0.1:$REDIS"
[[routes]]
match = "GET /c/*"
upstream = "origin"
cache = { ttl = "10m" }
[[routes]]
match = "GET /pass/*"
upstream = "origin"
CONF
}
rampart_conf "$L1" "$L1_ADMIN" "$(tiered 256MiB)" > "$WORK/l1.toml"
rampart_conf "$L2" "$L2_ADMIN" "$(tiered 0)" > "$WORK/l2.toml"
rampart_conf "$BASE" "$BASE_ADMIN" "$(tiered 0)" > "$WORK/baseline.toml"

start_redis "$REDIS"
taskset -c 1 "$NGINX" -c "$WORK/origin.conf" -p "$WORK" & PIDS+=($!)
taskset -c 0 "$NGINX" -c "$WORK/proxy.conf" -p "$WORK" & PIDS+=($!)
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/l1.toml" & PIDS+=($!)
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/l2.toml" & PIDS+=($!)
if [ -n "$BASELINE_BIN" ]; then
  RUST_LOG=warn taskset -c 0 "$BASELINE_BIN" serve --config "$WORK/baseline.toml" & PIDS+=($!)
fi

CASES=""
for s in 1k 16k; do
  for d in c pass; do key_walk "$d-$s" "/$d/$s" "$KEYS"; done
  CASES+=" nginx-hit-$s:$NGINX_PROXY:/c/$s:c-$s rampart-l1-$s:$L1:/c/$s:c-$s rampart-l2-$s:$L2:/c/$s:c-$s rampart-pass-$s:$L1:/pass/$s:pass-$s"
  if [ -n "$BASELINE_BIN" ]; then CASES+=" baseline-l2-$s:$BASE:/c/$s:c-$s"; fi
done
for c in $CASES; do
  IFS=: read -r _ port path _ <<<"$c"
  for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port$path" 2>/dev/null && break; sleep 0.1; done
done
# Warm every case over all keys (the two Rampart nodes are reached on
# different host:ports, so each stores its own copies in Redis; nginx on disk).
for c in $CASES; do IFS=: read -r _ port _ script <<<"$c"; wrk_run "$port" / 1 3 "$WORK/$script.lua" >/dev/null; done
sleep 1
[ "$(redis-cli -p "$REDIS" --scan --pattern 'rampart:c:*' | wc -l)" -ge $((2 * KEYS)) ] || { echo "Redis holds fewer than $((2 * KEYS)) entries after warming" >&2; exit 1; }
for s in 1k 16k; do
  for _ in $(seq 20); do # the L2 writes are in the background
    sleep 0.2
    status=$(curl -fsS -D - -o /dev/null "http://127.0.0.1:$L2/c/$s" | tr -d '\r' | awk -F': ' 'tolower($1)=="cache-status" {print $2}')
    case "$status" in *detail=l2*) break ;; esac
  done
  case "$status" in *detail=l2*) ;; *) echo "the L2 node did not answer /c/$s from Redis: Cache-Status: $status" >&2; exit 1 ;; esac
done
for _ in $(seq "$ROUNDS"); do
  for c in $CASES; do IFS=: read -r name port _ script <<<"$c"; measure "$name" "$port" / "$CONNS" "$WORK/$script.lua"; done
done

metric() { curl -fsS "http://127.0.0.1:$L2_ADMIN/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'; }
l2_hits=$(metric 'rampart_cache_hits_total{route="GET /c/*",tier="l2"}')
l1_hits=$(metric 'rampart_cache_hits_total{route="GET /c/*",tier="l1"}')
misses=$(metric 'rampart_cache_results_total{route="GET /c/*",result="miss"')
collapsed=$(metric 'rampart_cache_results_total{route="GET /c/*",result="collapsed"')

echo "# cache hits by tier over $KEYS URLs per size, $CONNS connections, ${DURATION}s runs, median of $ROUNDS rounds; proxies on core 0, wrk/origin/redis on core 1"
printf "%-18s %12s %10s %10s\n" case req/s p50_us p99_us
for c in $CASES; do
  name=${c%%:*}
  read -r rps p50 p99 < <(report "$name")
  printf "%-18s %12s %10s %10s\n" "$name" "$rps" "$p50" "$p99"
done
echo "the L2 node answered $l2_hits requests from Redis, $l1_hits from memory, $collapsed by sharing a concurrent request's lookup, $misses from the origin"
for s in 1k 16k; do
  read -r n n50 _ < <(report "nginx-hit-$s"); read -r a a50 _ < <(report "rampart-l1-$s")
  read -r b b50 _ < <(report "rampart-l2-$s"); read -r p p50 _ < <(report "rampart-pass-$s")
  awk -v s="$s" -v n="$n" -v a="$a" -v b="$b" -v p="$p" -v a50="$a50" -v b50="$b50" -v p50="$p50" 'BEGIN {
    printf "%s: L2 hit = %.2fx nginx proxy_cache hit, %.2fx rampart L1 hit, %.2fx uncached pass-through; L2 adds %d us p50 over L1, pass-through %d us\n", s, b/n, b/a, b/p, b50-a50, p50-a50
  }'
done
if [ -n "$BASELINE_BIN" ]; then
  for s in 1k 16k; do
    read -r b _ b99 < <(report "rampart-l2-$s"); read -r o _ o99 < <(report "baseline-l2-$s")
    awk -v s="$s" -v b="$b" -v o="$o" -v b99="$b99" -v o99="$o99" 'BEGIN {
      printf "%s: L2 hit of this build = %.2fx the baseline build'"'"'s req/s, p99 %d us against %d us\n", s, b/o, b99, o99
    }'
  done
fi
