#!/usr/bin/env bash
# What a rate limit costs on the hot path: cache hits of 1 KiB with and
# without a per-IP limit, in Rampart (local GCRA, and `scope = "cluster"`
# through Redis) and in nginx (proxy_cache with and without limit_req). The
# limits are set so high that nothing is refused: this measures the check.
#
# Setup as bench/cache-hit.sh: proxies on core 0; wrk, the origin (nginx
# static files) and redis-server on core 1; medians of ROUNDS rounds.
# Usage: bench/guards.sh [DURATION] [CONNS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
source bench/lib.sh
bench_start bench test

ORIGIN=18091 NGINX_PLAIN=18092 NGINX_LIMIT=18093 RAMPART=18094 ADMIN=18095 REDIS=18096
mkdir -p "$WORK/www/plain" "$WORK/www/limited" "$WORK/www/cluster"
random_body "$WORK/1k" 1024
for d in plain limited cluster; do cp "$WORK/1k" "$WORK/www/$d/1k"; done

write_origin_conf "$ORIGIN"

# The same cache with, on a second port, a per-IP limit_req that never refuses.
write_proxy_conf 'limit_req_zone $binary_remote_addr zone=perip:10m rate=100000000r/s;' \
  "$NGINX_PLAIN" "$NGINX_LIMIT limit_req zone=perip burst=1000000 nodelay;"

rampart_conf "$RAMPART" "$ADMIN" "$(cat <<CONF
[cache]
redis = "redis://127.0.0.1:$REDIS"
[[routes]]
match = "GET /plain/*"
upstream = "origin"
cache = { ttl = "10m" }
[[routes]]
match = "GET /limited/*"
upstream = "origin"
cache = { ttl = "10m" }
limit = { rate = 1000000000, per = "1s" }
[[routes]]
match = "GET /cluster/*"
upstream = "origin"
cache = { ttl = "10m" }
limit = { rate = 1000000000, per = "1s", scope = "cluster" }
CONF
)" > "$WORK/rampart.toml"

start_redis "$REDIS"
taskset -c 1 "$NGINX" -c "$WORK/origin.conf" -p "$WORK" & PIDS+=($!)
taskset -c 0 "$NGINX" -c "$WORK/proxy.conf" -p "$WORK" & PIDS+=($!)
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/rampart.toml" & PIDS+=($!)

CASES="nginx:$NGINX_PLAIN:/plain/1k nginx-limit_req:$NGINX_LIMIT:/limited/1k rampart:$RAMPART:/plain/1k rampart-limit:$RAMPART:/limited/1k rampart-cluster:$RAMPART:/cluster/1k"
for c in $CASES; do
  IFS=: read -r _ port path <<<"$c"
  for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port$path" 2>/dev/null && break; sleep 0.1; done
  wrk_run "$port" "$path" "$CONNS" 2 >/dev/null
done
curl -fsS -D - -o /dev/null "http://127.0.0.1:$RAMPART/cluster/1k" | grep -qi '^ratelimit:' || { echo "the cluster route carries no RateLimit header" >&2; exit 1; }
[ "$(redis-cli -p "$REDIS" dbsize)" -ge 1 ] || { echo "the cluster limit wrote nothing to Redis" >&2; exit 1; }

for _ in $(seq "$ROUNDS"); do
  for c in $CASES; do IFS=: read -r name port path <<<"$c"; measure "$name" "$port" "$path" "$CONNS"; done
done
echo "# 1 KiB cache hits, $CONNS connections, ${DURATION}s runs, median of $ROUNDS rounds; proxies on core 0, wrk/origin/redis on core 1"
printf "%-16s %12s %10s %10s\n" case req/s p50_us p99_us
for c in $CASES; do
  name=${c%%:*}
  read -r rps p50 p99 < <(report "$name")
  printf "%-16s %12s %10s %10s\n" "$name" "$rps" "$p50" "$p99"
done
read -r np _ _ < <(report nginx); read -r nl _ _ < <(report nginx-limit_req)
read -r rp _ _ < <(report rampart); read -r rl _ _ < <(report rampart-limit); read -r rc _ _ < <(report rampart-cluster)
awk -v np="$np" -v nl="$nl" -v rp="$rp" -v rl="$rl" -v rc="$rc" 'BEGIN {
  printf "limit cost: nginx limit_req %.1f %% of throughput, rampart local %.1f %%, rampart cluster (Redis) %.1f %%\n", 100*(1-nl/np), 100*(1-rl/rp), 100*(1-rc/rp)
  printf "ratio with a limit: rampart/nginx %.2fx (local), %.2fx (cluster)\n", rl/nl, rc/nl
}'
