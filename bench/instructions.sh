#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: repeatable for
# the same binary and workload whatever else the machine is doing, so a
# change's cost shows even where wall-clock noise hides it.
#
# For each build (this checkout's release binary, and BASELINE_BIN when
# given), Rampart runs under callgrind in front of an nginx origin and a
# small client sends exactly REQUESTS requests on one kept-alive connection
# of each kind:
#   hit   the same cached 1 KiB URL (stored by one request first)
#   miss  a new 1 KiB URL every request (fetched, stored, answered)
#   pass  an uncached route, 1 KiB
#   l2    the same cached 1 KiB URL from a gateway whose memory tier is off
#         (`memory = "0"`), so every request is read from a redis-server of
#         the script's own and decoded (stored by one request first)
# The instructions of a run with no requests (start and stop) are taken
# away, and the rest divided by the requests: instructions per request,
# everything the gateway process executes for it (hyper, tokio, the cache,
# compression made on the miss path, metrics).
#
# glibc copies and clears large blocks with `rep movsb`/`rep stosb` on CPUs
# that do them fast (ERMS, FSRM); callgrind counts every byte such an
# instruction moves as one instruction, which made a hit count 1.8x more on
# one machine than on another. The runs set glibc's thresholds for those out
# of reach, so every machine counts the same vector copies.
#
# With KEEP=DIR the callgrind files stay in DIR (NAME.KIND.out), to read
# per function with `callgrind_annotate --inclusive=yes`. EXTRA_CONF is
# appended to the gateway's config (say, a [tracing] section, to count what
# exporting spans costs).
#
# Usage: [BASELINE_BIN=PATH] [KEEP=DIR] [EXTRA_CONF=TOML] bench/instructions.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${1:-2000}
source bench/lib.sh
bench_start callgrind test
command -v valgrind >/dev/null 2>&1 || { echo "instructions.sh needs valgrind (apt-get install valgrind)" >&2; exit 1; }
ORIGIN=18181 RAMPART=18183 ADMIN=18184 REDIS=18185
mkdir -p "$WORK/www/pass"
random_body "$WORK/www/1k" 1024
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
if [ -n "${EXTRA_CONF:-}" ]; then printf '\n%b\n' "$EXTRA_CONF" >> "$WORK/rampart.toml"; fi
# The same gateway with its memory tier off and the script's Redis as L2.
{ cat "$WORK/rampart.toml"; printf '\n[cache]\nmemory = "0"\nredis = "redis://127.0.0.1:%s"\nredis_timeout = "5s"\n' "$REDIS"; } > "$WORK/rampart-l2.toml"
start_redis "$REDIS"

# send PATH_PREFIX UNIQUE: exactly REQUESTS GETs on one kept-alive
# connection (a new URL each when UNIQUE is 1), each response read whole.
send() {
  python3 - "$RAMPART" "$1" "$2" "$REQUESTS" <<'PY'
import http.client, sys, time
port, path, unique, n = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
run = str(time.time_ns())
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for i in range(n):
    conn.request("GET", f"{path}?run={run}&miss={i}" if unique else path)
    conn.getresponse().read()
PY
}

for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$ORIGIN/1k" 2>/dev/null && break; sleep 0.1; done

NO_REP_STRINGS=glibc.cpu.x86_rep_movsb_threshold=18446744073709551615:glibc.cpu.x86_rep_stosb_threshold=18446744073709551615

# instructions BIN KIND: total instructions of one run of BIN serving KIND.
instructions() {
  local bin=$1 kind=$2 out="$WORK/callgrind.$RANDOM" conf=$WORK/rampart.toml
  case "$kind" in idle-l2|l2) conf=$WORK/rampart-l2.toml ;; esac
  RUST_LOG=warn GLIBC_TUNABLES=$NO_REP_STRINGS taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" -q \
    "$bin" serve --config "$conf" &
  local pid=$!
  for _ in $(seq 300); do curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN/healthz" 2>/dev/null && break; sleep 0.2; done
  case "$kind" in
    idle|idle-l2) ;;
    hit)
      curl -fsS -o /dev/null "http://127.0.0.1:$RAMPART/1k"
      send /1k 0 ;;
    l2)
      # Stored by one request; L2 stores in the background, so wait for it.
      redis-cli -p "$REDIS" flushall >/dev/null
      curl -fsS -o /dev/null "http://127.0.0.1:$RAMPART/1k"
      for _ in $(seq 100); do [ -n "$(redis-cli -p "$REDIS" --scan --pattern '*:c:*')" ] && break; sleep 0.1; done
      send /1k 0 ;;
    miss) send /1k 1 ;;
    pass) send /pass/1k 0 ;;
  esac
  kill -INT "$pid"; wait "$pid" || true
  awk '/^summary:/ { print $2 }' "$out"
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$out" "$KEEP/${3:-run}.$kind.out"; fi
}

# Per kind, (run - idle run) / requests. The hit run's one priming miss is
# left in: spread over the requests it adds a few hundred instructions.
report_for() {
  local name=$1 bin=$2 idle idle_l2 total i
  idle=$(instructions "$bin" idle "$name")
  idle_l2=$(instructions "$bin" idle-l2 "$name")
  for kind in hit miss pass l2; do
    total=$(instructions "$bin" "$kind" "$name")
    if [ "$kind" = l2 ]; then i=$idle_l2; else i=$idle; fi
    awk -v n="$name" -v k="$kind" -v t="$total" -v i="$i" -v r="$REQUESTS" \
      'BEGIN { printf "%-9s %-5s %12.0f instructions per request\n", n, k, (t - i) / r }'
  done
}

echo "# instructions per request (callgrind), $REQUESTS requests of each kind on one connection, 1 KiB"
report_for rampart "$BIN"
if [ -n "${BASELINE_BIN:-}" ]; then report_for baseline "$BASELINE_BIN"; fi
