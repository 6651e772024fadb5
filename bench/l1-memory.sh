#!/usr/bin/env bash
# L1 memory bound (target: resident memory within 1.10x the byte budget).
#
# 1. In process: a million distinct keys into a 64 MiB cache, with 100 B,
#    1 KiB and 16 KiB bodies, headers stored as the gateway stores them.
#    Reports the bytes charged to the budget and the growth of the process's
#    resident memory, each as a multiple of the budget.
# 2. Through the proxy: `rampart serve` with a memory tier in front of
#    an nginx origin, wrk asking for a new 1 KiB URL on every request for
#    E2E_SECONDS (default 30), with compression on (at two budgets, which
#    separates the compressors' fixed working memory from what grows with
#    the cache) and off, from a client that sends no Accept-Encoding, and
#    with compression on from one that accepts "gzip, deflate, br, zstd" as
#    browsers do. Reports misses per second, entries, charged bytes and RSS
#    growth. BINS="NAME=PATH ..." runs these for other builds too (an
#    earlier commit's release binary), one after the other.
# E2E_ONLY=1 skips part 1.
# Usage: [BINS=...] [E2E_ONLY=1] bench/l1-memory.sh [E2E_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
E2E_SECONDS=${1:-30}
source bench/lib.sh
bench_start bench
if [ -z "${E2E_ONLY:-}" ]; then
  cargo build --release --locked -q -p rampart-cache --example l1_memory
  echo "# in process: 1,000,000 distinct keys, 64 MiB budget"
  for body in 100 1024 16384; do
    ./target/release/examples/l1_memory 1000000 64 "$body"
  done
fi

ORIGIN=18121 RAMPART=18122 ADMIN=18123
random_body "$WORK/www/1k" 1024
write_origin_conf "$ORIGIN"
taskset -c 1 "$NGINX" -c "$WORK/origin.conf" -p "$WORK" & PIDS+=($!)
cat > "$WORK/unique.lua" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/1k?key=" .. counter)
end
LUA
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
metric() { curl -fsS "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

echo
echo "# through the proxy: a new 1 KiB URL per request for ${E2E_SECONDS}s"
for pair in ${BINS:-rampart=$BIN}; do
name=${pair%%=*} bin=${pair#*=}
for run in "true 64 none" "true 256 none" "false 64 none" "true 64 browser"; do
  read -r compression budget accept <<<"$run"
  rampart_conf "$RAMPART" "$ADMIN" "$(cat <<CONF
[cache]
memory = "${budget}MiB"
[compression]
enabled = $compression
[[routes]]
match = "GET /*"
upstream = "origin"
cache = { ttl = "10m" }
CONF
  )" > "$WORK/rampart.toml"
  RUST_LOG=warn taskset -c 0 "$bin" serve --config "$WORK/rampart.toml" & pid=$!
  PIDS+=("$pid")
  for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$RAMPART/1k" 2>/dev/null && break; sleep 0.1; done
  before=$(rss_kib "$pid")
  header=()
  [ "$accept" = browser ] && header=(-H "Accept-Encoding: gzip, deflate, br, zstd")
  rps=$(taskset -c 1 wrk -t1 -c16 -d"${E2E_SECONDS}s" "${header[@]}" -s "$WORK/unique.lua" "http://127.0.0.1:$RAMPART" | awk '/Requests\/sec/ {print $2}')
  after=$(rss_kib "$pid")
  awk -v n="$name" -v a="$accept" -v c="$compression" -v r="$rps" -v s="$E2E_SECONDS" -v e="$(metric rampart_cache_l1_entries)" \
    -v ch="$(metric rampart_cache_l1_bytes)" -v b="$(metric rampart_cache_l1_budget_bytes)" -v g="$(( (after - before) * 1024 ))" \
    'BEGIN { printf "%-9s accept=%-7s compression=%-5s misses/s=%8.0f budget=%.0fMiB keys=%d entries=%d charged=%.3fx rss_growth=%.1fMiB (%.3fx budget)\n", n, a, c, r, b/1048576, r*s, e, ch/b, g/1048576, g/b }'
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
done
