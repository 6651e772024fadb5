#!/usr/bin/env bash
# The load generator against a fast target: requests/s Rampart drives versus
# wrk (and oha/k6 where installed), and 20,000 users' resident memory.
#
# Setup: nginx answering `return 200` with one worker pinned to core 1; the
# generator pinned to core 0; 64 keep-alive connections, closed model (each
# connection sends its next request when the last one answered), DURATION s.
# Usage: bench/load-generator.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
bash scripts/install-deps.sh bench
cargo build --release --locked -q -p rampart
BIN=$PWD/target/release/rampart
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
WORK=$(mktemp -d /dev/shm/rampart-gen.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=18091
chmod 755 "$WORK"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 30000;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 25000; }
http { access_log off; keepalive_requests 1000000; server { listen 127.0.0.1:$PORT backlog=4096; location / { return 200 "ok"; } } }
CONF
taskset -c 1 "$NGINX" -c "$WORK/nginx.conf" -p "$WORK" & PIDS+=($!)
for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && break; sleep 0.1; done

echo "# requests/s against nginx return 200: generator on core 0, 64 connections, ${DURATION}s"
taskset -c 0 wrk -t1 -c64 -d2s "http://127.0.0.1:$PORT/" >/dev/null
wrk_rps=$(taskset -c 0 wrk -t1 -c64 -d"${DURATION}"s "http://127.0.0.1:$PORT/" | awk '/Requests\/sec/ {print $2}')
taskset -c 0 "$BIN" load --quiet --url "http://127.0.0.1:$PORT/" --vus 64 --duration 2s
taskset -c 0 "$BIN" load --quiet --url "http://127.0.0.1:$PORT/" --vus 64 --duration "${DURATION}s" --out "$WORK/r.json"
r_rps=$(python3 -c "import json; r=json.load(open('$WORK/r.json')); print(round(r['overall']['requests']/r['duration_s'],1))")
printf "%-10s %12s req/s\n" wrk "$wrk_rps" rampart "$r_rps"
for tool in oha k6; do command -v $tool >/dev/null && echo "$tool installed: not yet scripted" || echo "$tool: not installed"; done
awk -v r="$r_rps" -v w="$wrk_rps" 'BEGIN { printf "rampart/wrk = %.2fx\n", r/w }'

echo
echo "# 20,000 users: 20s ramp, 40s total, 0.5 iterations per user per second (10,000 req/s at full strength), pool of 2,000 connections"
cat > "$WORK/users.toml" <<TOML
base_url = "http://127.0.0.1:$PORT"
[[scenarios]]
name = "members"
executor = "users"
users = 20000
ramp_up = "20s"
duration = "40s"
rate_per_user = 0.5
pool = 2000
flow = "lookup"
[[flows]]
name = "lookup"
steps = [{ name = "lookup", url = "/api/v1/members/{{vu}}" }]
TOML
taskset -c 0 "$BIN" load --quiet "$WORK/users.toml" --out "$WORK/u.json" &
GEN=$!
peak=0
while kill -0 $GEN 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print $2}' /proc/$GEN/status 2>/dev/null || echo 0)
  [ "${rss:-0}" -gt "$peak" ] && peak=$rss
  sleep 0.5
done
wait $GEN || true
python3 - "$WORK/u.json" "$peak" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); peak_kib = int(sys.argv[2])
o = r["overall"]
print(f"requests {o['requests']} in {r['duration_s']:.1f}s, errors {o['failures']}, late starts {r['late_starts']}, dropped {r['dropped_iterations']}")
print(f"latency p50 {o['latency']['p50_ms']:.2f} ms, p99 {o['latency']['p99_ms']:.2f} ms; generator cpu {r['generator']['mean_cpu_cores']:.2f} cores, saturated={r['generator']['saturated']}")
print(f"peak resident memory {peak_kib/1024:.0f} MiB (target < 1024 MiB)")
PY
