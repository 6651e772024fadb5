#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: repeatable for
# the same binary and workload whatever else the machine is doing, so a
# change's cost shows even where wall-clock noise hides it.
#
# For each build (this checkout's release binary, and BASELINE_BIN when
# given), Rampart runs under callgrind in front of an nginx origin and wrk
# sends REQUESTS requests on one kept-alive connection of each kind:
#   hit   the same cached 1 KiB URL (stored by one request first)
#   miss  a new 1 KiB URL every request (fetched, stored, answered)
#   pass  an uncached route, 1 KiB
# The instructions of a run with no requests (start and stop) are taken
# away, and the rest divided by the requests: instructions per request,
# everything the gateway process executes for it (hyper, tokio, the cache,
# compression made on the miss path, metrics).
#
# Usage: [BASELINE_BIN=PATH] bench/instructions.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${1:-2000}
source bench/lib.sh
bench_start bench
command -v valgrind >/dev/null 2>&1 || { echo "instructions.sh needs valgrind (apt-get install valgrind)" >&2; exit 1; }
ORIGIN=18181 RAMPART=18183 ADMIN=18184
mkdir -p "$WORK/www/pass"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$WORK/www/1k"
cp "$WORK/www/1k" "$WORK/www/pass/1k"
write_origin_conf "$ORIGIN"
taskset -c 1 "$NGINX" -c "$WORK/origin.conf" -p "$WORK" & PIDS+=($!)
rampart_conf "$RAMPART" "$ADMIN" '[[routes]]
match = "GET /pass/*"
upstream = "origin"
[[routes]]
match = "GET /*"
upstream = "origin"
cache = { ttl = "10m" }' > "$WORK/rampart.toml"

# wrk scripts that stop after exactly REQUESTS responses.
cat > "$WORK/count.lua" <<LUA
local n = 0
response = function() n = n + 1; if n >= $REQUESTS then wrk.thread:stop() end end
LUA
cat > "$WORK/unique.lua" <<LUA
local n = 0
math.randomseed(os.time())
local run = tostring(os.time()) .. "-" .. tostring(math.random(1000000000))
request = function() n = n + 1; return wrk.format("GET", "/1k?run=" .. run .. "&miss=" .. n) end
local done = 0
response = function() done = done + 1; if done >= $REQUESTS then wrk.thread:stop() end end
LUA

for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$ORIGIN/1k" 2>/dev/null && break; sleep 0.1; done

# instructions BIN KIND: total instructions of one run of BIN serving KIND.
instructions() {
  local bin=$1 kind=$2 out="$WORK/callgrind.$RANDOM"
  RUST_LOG=warn taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" -q \
    "$bin" serve --config "$WORK/rampart.toml" &
  local pid=$!
  for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN/healthz" 2>/dev/null && break; sleep 0.2; done
  case "$kind" in
    idle) ;;
    hit)
      curl -fsS -o /dev/null "http://127.0.0.1:$RAMPART/1k"
      taskset -c 1 wrk -t1 -c1 -d600s -s "$WORK/count.lua" "http://127.0.0.1:$RAMPART/1k" >/dev/null ;;
    miss) taskset -c 1 wrk -t1 -c1 -d600s -s "$WORK/unique.lua" "http://127.0.0.1:$RAMPART" >/dev/null ;;
    pass) taskset -c 1 wrk -t1 -c1 -d600s -s "$WORK/count.lua" "http://127.0.0.1:$RAMPART/pass/1k" >/dev/null ;;
  esac
  kill -INT "$pid"; wait "$pid" || true
  awk '/^summary:/ { print $2 }' "$out"
}

# Per kind, (run - idle run) / requests. The hit run's one priming miss is
# left in: spread over the requests it adds a few hundred instructions.
report_for() {
  local name=$1 bin=$2 idle total
  idle=$(instructions "$bin" idle)
  for kind in hit miss pass; do
    total=$(instructions "$bin" "$kind")
    awk -v n="$name" -v k="$kind" -v t="$total" -v i="$idle" -v r="$REQUESTS" \
      'BEGIN { printf "%-9s %-5s %12.0f instructions per request\n", n, k, (t - i) / r }'
  done
}

echo "# instructions per request (callgrind), $REQUESTS requests of each kind on one connection, 1 KiB"
report_for rampart "$BIN"
if [ -n "${BASELINE_BIN:-}" ]; then report_for baseline "$BASELINE_BIN"; fi
