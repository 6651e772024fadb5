#!/usr/bin/env bash
# Cache hits and misses: Rampart against nginx proxy_cache (and Varnish when
# varnishd is installed), and the cost a miss adds over calling the origin.
#
# Setup: the proxy under test is pinned to core 0; wrk and the origin (an
# nginx serving static files) to core 1. Every proxy caches the same 1 KiB and
# 16 KiB responses for 10 minutes (nginx on tmpfs, one worker). Each number is
# the median of ROUNDS rounds, the proxies alternating within a round, each
# run DURATION seconds after a warm-up.
#
# CPU_QUOTA=N (percent of one core) additionally confines each proxy to its
# own cgroup with that CPU quota (cgroup v1 or v2, as root), so the proxy and
# never the generator is the bottleneck: with a whole core, one wrk thread
# cannot read 16 KiB responses faster than ~95k/s on this machine.
#
# "floor" is Rampart's own listener (the same hyper server, limits and
# runtime) answering from a table of the same files with no cache, routing or
# metrics (crates/rampart-gateway/examples/listener-floor.rs): the ceiling of
# any handler on this connection layer. The gap between it and rampart is what
# the cache path costs per hit.
# BASELINE_BIN=PATH also runs another build of Rampart (an earlier commit's
# release binary) as "baseline", alternating with the others in every round,
# and prints this build against it: the way to show a change kept hits,
# misses and pass-through within noise. Build one with
#   git worktree add /tmp/rampart-base REV
#   cargo build --release --locked -p rampart --manifest-path /tmp/rampart-base/Cargo.toml
# Usage: [CPU_QUOTA=50] [BASELINE_BIN=PATH] bench/cache-hit.sh [DURATION] [CONNS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
ROUNDS=${3:-3}
source bench/lib.sh
bench_start bench
VARNISHD=$(command -v varnishd || ls /usr/sbin/varnishd 2>/dev/null || true)
QUOTA=${CPU_QUOTA:-}

# proxy NAME CMD...: starts a proxy in the background, inside its own CPU-quota
# cgroup when CPU_QUOTA is set.
proxy() {
  local name=$1; shift
  if [ -z "$QUOTA" ]; then "$@" & PIDS+=($!); return; fi
  local cg
  if [ -d /sys/fs/cgroup/cpu ] && [ -w /sys/fs/cgroup/cpu ]; then
    cg=/sys/fs/cgroup/cpu/rampart-bench-$name-$$
    mkdir "$cg"; echo 10000 > "$cg/cpu.cfs_period_us"; echo $((QUOTA * 100)) > "$cg/cpu.cfs_quota_us"
  else
    cg=/sys/fs/cgroup/rampart-bench-$name-$$
    echo +cpu > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    mkdir "$cg"; echo "$((QUOTA * 100)) 10000" > "$cg/cpu.max"
  fi
  CGROUPS+=("$cg")
  bash -c 'echo $$ > "$0/cgroup.procs"; exec "$@"' "$cg" "$@" & PIDS+=($!)
}

cargo build --release --locked -q -p rampart-gateway --example listener-floor
FLOOR_BIN=$PWD/target/release/examples/listener-floor
ORIGIN=18081 NGINX_CACHE=18082 RAMPART=18083 ADMIN=18084 VARNISH=18085 FLOOR=18086 BASE=18087 BASE_ADMIN=18088 NGINX_PASS=18089
BASELINE_BIN=${BASELINE_BIN:-}
mkdir -p "$WORK/www/pass"
random_body "$WORK/www/1k" 1024
random_body "$WORK/www/16k" 16384
cp "$WORK/www/1k" "$WORK/www/pass/1k"

write_origin_conf "$ORIGIN"

# nginx's pass-through: proxy_pass with upstream keepalive, no cache.
write_proxy_conf "server { listen 127.0.0.1:$NGINX_PASS; location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }" "$NGINX_CACHE"

ROUTES='[[routes]]
match = "GET /pass/*"
upstream = "origin"
[[routes]]
match = "GET /*"
upstream = "origin"
cache = { ttl = "10m" }'
rampart_conf "$RAMPART" "$ADMIN" "$ROUTES" > "$WORK/rampart.toml"
rampart_conf "$BASE" "$BASE_ADMIN" "$ROUTES" > "$WORK/baseline.toml"

unique_urls unique /1k

taskset -c 1 "$NGINX" -c "$WORK/origin.conf" -p "$WORK" & PIDS+=($!)
proxy nginx taskset -c 0 "$NGINX" -c "$WORK/proxy.conf" -p "$WORK"
proxy rampart env RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/rampart.toml"
proxy floor taskset -c 0 "$FLOOR_BIN" "127.0.0.1:$FLOOR" "$WORK/www"
PROXIES="nginx:$NGINX_CACHE rampart:$RAMPART"
if [ -n "$BASELINE_BIN" ]; then
  proxy baseline env RUST_LOG=warn taskset -c 0 "$BASELINE_BIN" serve --config "$WORK/baseline.toml"
  PROXIES="$PROXIES baseline:$BASE"
fi
if [ -n "$VARNISHD" ]; then
  cat > "$WORK/default.vcl" <<VCL
vcl 4.1;
backend default { .host = "127.0.0.1"; .port = "$ORIGIN"; }
sub vcl_backend_response { set beresp.ttl = 10m; }
VCL
  proxy varnish taskset -c 0 "$VARNISHD" -F -a "127.0.0.1:$VARNISH" -f "$WORK/default.vcl" -s malloc,256m -n "$WORK/varnish" \
    -p thread_pools=1 >/dev/null 2>&1
  PROXIES="$PROXIES varnish:$VARNISH"
fi
for port in $ORIGIN ${PROXIES//[a-z]*:/} $FLOOR; do
  for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port/1k" 2>/dev/null && break; sleep 0.1; done
done

echo "# cache hits: $CONNS connections, ${DURATION}s runs, median of $ROUNDS rounds; proxy on core 0${QUOTA:+ limited to $QUOTA % of it}, wrk on core 1"
printf "%-6s %-8s %12s %10s %10s\n" size proxy req/s p50_us p99_us
HITS="$PROXIES floor:$FLOOR"
for size in 1k 16k; do
  for p in $HITS; do
    port=${p#*:}
    curl -fsS -o /dev/null "http://127.0.0.1:$port/$size"
    wrk_run "$port" "/$size" "$CONNS" 2 >/dev/null
  done
  curl -fsS -D - -o /dev/null "http://127.0.0.1:$NGINX_CACHE/$size" | grep -qi 'x-cache: hit' || { echo "nginx did not cache /$size" >&2; exit 1; }
  curl -fsS -D - -o /dev/null "http://127.0.0.1:$RAMPART/$size" | grep -qi 'cache-status: rampart; hit' || { echo "rampart did not cache /$size" >&2; exit 1; }
  for _ in $(seq "$ROUNDS"); do
    for p in $HITS; do measure "hit-$size-${p%%:*}" "${p#*:}" "/$size" "$CONNS"; done
  done
  for p in $HITS; do
    read -r rps p50 p99 < <(report "hit-$size-${p%%:*}")
    printf "%-6s %-8s %12s %10s %10s\n" "$size" "${p%%:*}" "$rps" "$p50" "$p99"
  done
  read -r n_rps _ n_p99 < <(report "hit-$size-nginx")
  read -r r_rps _ r_p99 < <(report "hit-$size-rampart")
  awk -v s="$size" -v a="$r_rps" -v b="$n_rps" -v c="$r_p99" -v d="$n_p99" \
    'BEGIN { printf "%-6s ratio    rampart/nginx: req/s %.2fx, p99 %.2fx\n", s, a/b, c/d }'
  if [ -n "$BASELINE_BIN" ]; then
    read -r b_rps _ b_p99 < <(report "hit-$size-baseline")
    awk -v s="$size" -v a="$r_rps" -v b="$b_rps" -v c="$r_p99" -v d="$b_p99" \
      'BEGIN { printf "%-6s ratio    rampart/baseline: req/s %.2fx, p99 %.2fx\n", s, a/b, c/d }'
  fi
  read -r f_rps _ _ < <(report "hit-$size-floor")
  awk -v s="$size" -v a="$f_rps" -v b="$n_rps" -v r="$r_rps" \
    'BEGIN { printf "%-6s ratio    floor/nginx: req/s %.2fx; the cache path costs %.2f us per hit\n", s, a/b, 1e6/r - 1e6/a }'
done

echo
echo "# misses: one connection, every request a new 1 KiB URL (fetched, stored, served); medians of $ROUNDS rounds"
for p in "origin:$ORIGIN" $PROXIES; do wrk_run "${p#*:}" "" 1 2 "$WORK/unique.lua" >/dev/null; done
for _ in $(seq "$ROUNDS"); do
  for p in "origin:$ORIGIN" $PROXIES; do measure "miss-${p%%:*}" "${p#*:}" "" 1 "$WORK/unique.lua"; done
done
read -r _ d_p50 d_p99 < <(report miss-origin)
printf "%-8s p50 %6s us  p99 %6s us\n" direct "$d_p50" "$d_p99"
for p in $PROXIES; do
  read -r _ p50 p99 < <(report "miss-${p%%:*}")
  awk -v n="${p%%:*}" -v a="$p50" -v b="$p99" -v d="$d_p50" 'BEGIN { printf "%-8s p50 %6s us  p99 %6s us  (adds %.0f us p50 over the origin)\n", n, a, b, a-d }'
done

echo
echo "# pass-through (uncached route on rampart; nginx proxy_pass with upstream keepalive), one connection, 1 KiB; medians of $ROUNDS rounds"
PASS="nginx:$NGINX_PASS rampart:$RAMPART${BASELINE_BIN:+ baseline:$BASE}"
for _ in $(seq "$ROUNDS"); do
  measure pass-origin "$ORIGIN" /pass/1k 1
  for p in $PASS; do measure "pass-${p%%:*}" "${p#*:}" /pass/1k 1; done
done
read -r _ d_p50 d_p99 < <(report pass-origin)
printf "%-8s p50 %6s us  p99 %6s us\n" direct "$d_p50" "$d_p99"
for p in $PASS; do
  read -r _ p_p50 p_p99 < <(report "pass-${p%%:*}")
  awk -v n="${p%%:*}" -v a="$p_p50" -v b="$p_p99" -v d="$d_p50" 'BEGIN { printf "%-8s p50 %6s us  p99 %6s us  (adds %.0f us p50 over the origin)\n", n, a, b, a-d }'
done
