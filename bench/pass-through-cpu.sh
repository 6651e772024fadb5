#!/usr/bin/env bash
# Where a pass-through's time goes, against nginx proxy_pass: one kept-alive
# connection (as in cache-hit.sh's pass-through row), 1 KiB from an nginx
# origin, and for each proxy per request: the p50 latency, the CPU time it
# spent in user space and in the kernel (from /proc/PID/stat), its system
# calls and context switches (perf stat).
#
# On one connection a request waits for every step in turn, so what a proxy
# adds is its own CPU time per request plus the wake-ups: this tells which
# of them separates two proxies.
#
# Setup: proxies on core 0, wrk and the origin on core 1; each proxy runs
# DURATION seconds per round, alternating, ROUNDS rounds.
# BASELINE_BIN=PATH also runs another build of Rampart in the same rounds.
# Usage: [BASELINE_BIN=PATH] bench/pass-through-cpu.sh [DURATION] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
ROUNDS=${2:-3}
source bench/lib.sh
bench_start bench
command -v perf >/dev/null 2>&1 || { echo "pass-through-cpu.sh needs perf (apt-get install linux-perf)" >&2; exit 1; }
ORIGIN=18181 NGINX_PASS=18189 RAMPART=18183 ADMIN=18184 BASE=18185 BASE_ADMIN=18186
mkdir -p "$WORK/www/pass"
random_body "$WORK/www/pass/1k" 1024
write_origin_conf "$ORIGIN"
write_proxy_conf "server { listen 127.0.0.1:$NGINX_PASS; location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
ROUTES='[[routes]]
match = "GET /*"
upstream = "origin"'
rampart_conf "$RAMPART" "$ADMIN" "$ROUTES" > "$WORK/rampart.toml"
rampart_conf "$BASE" "$BASE_ADMIN" "$ROUTES" > "$WORK/baseline.toml"

taskset -c 1 "$NGINX" -c "$WORK/origin.conf" -p "$WORK" & PIDS+=($!)
taskset -c 0 "$NGINX" -c "$WORK/proxy.conf" -p "$WORK" & PIDS+=($!); NGINX_MASTER=$!
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/rampart.toml" & PIDS+=($!)
PROXIES="nginx:$NGINX_PASS rampart:$RAMPART:$!"
BASELINE_BIN=${BASELINE_BIN:-}
if [ -n "$BASELINE_BIN" ]; then
  RUST_LOG=warn taskset -c 0 "$BASELINE_BIN" serve --config "$WORK/baseline.toml" & PIDS+=($!)
  PROXIES="$PROXIES baseline:$BASE:$!"
fi
for port in $ORIGIN $NGINX_PASS $RAMPART ${BASELINE_BIN:+$BASE}; do
  for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port/pass/1k" 2>/dev/null && break; sleep 0.1; done
done
# nginx's worker is the process that serves.
NGINX_WORKER=$(pgrep -P "$NGINX_MASTER" | head -1)
PROXIES=${PROXIES/nginx:$NGINX_PASS/nginx:$NGINX_PASS:$NGINX_WORKER}
TICK_NS=$((1000000000 / $(getconf CLK_TCK)))

echo "# pass-through, one connection, 1 KiB, ${DURATION}s runs, median of $ROUNDS rounds; proxy on core 0, wrk and origin on core 1"
for _ in $(seq "$ROUNDS"); do
  measure pass-origin "$ORIGIN" /pass/1k 1
  for p in $PROXIES; do
    IFS=: read -r name port pid <<<"$p"
    read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$pid" -o "$WORK/perf-$name" -- sleep "$((DURATION + 1))" &
    perf_pid=$!
    out=$(taskset -c 1 wrk -t1 -c1 -d"$DURATION"s --latency "http://127.0.0.1:$port/pass/1k")
    read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    wait "$perf_pid"
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(to_us "$(awk '$1=="50%" {print $2}' <<<"$out")")
    calls=$(awk -F, '/sys_enter/ {print $1}' "$WORK/perf-$name")
    switches=$(awk -F, '/context-switches/ {print $1}' "$WORK/perf-$name")
    # perf watches a second longer than wrk runs; the proxy is idle then.
    awk -v r="$reqs" -v p="$p50" -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v t="$TICK_NS" -v c="$calls" -v x="$switches" \
      'BEGIN { printf "%s %.2f %.2f %.2f %.2f\n", p, u*t/r/1000, s*t/r/1000, c/r, x/r }' >> "$WORK/cpu-$name"
  done
done
read -r _ d_p50 _ < <(report pass-origin)
printf "%-9s %8s %9s %12s %12s %10s %10s\n" proxy p50_us adds_us user_us/req sys_us/req calls/req switch/req
printf "%-9s %8s\n" origin "$d_p50"
for p in $PROXIES; do
  name=${p%%:*}
  row=""
  for col in 1 2 3 4 5; do row+=" $(cut -d' ' -f$col "$WORK/cpu-$name" | median)"; done
  read -r p50 user sys calls switches <<<"$row"
  awk -v n="$name" -v p="$p50" -v d="$d_p50" -v u="$user" -v s="$sys" -v c="$calls" -v x="$switches" \
    'BEGIN { printf "%-9s %8.0f %9.0f %12.1f %12.1f %10.2f %10.2f\n", n, p, p-d, u, s, c, x }'
done
