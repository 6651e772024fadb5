#!/usr/bin/env bash
# The load generator against a fast target: requests/s Rampart drives versus
# wrk over HTTP/1.1 and HTTPS and versus h2load over HTTP/2 (TLS, ALPN h2),
# with oha and k6 beside them on all three, and 20,000 users' resident
# memory.
#
# Setup: nginx answering `return 200` with one worker pinned to core 1 (plain,
# TLS with an ECDSA P-256 certificate made here, and TLS with HTTP/2); the
# generator pinned to core 0; 64 keep-alive connections, closed model (each
# connection sends its next request when the last one answered), one stream
# per connection on HTTP/2; DURATION s per run, ROUNDS rounds alternating
# between the tools; medians of the per-round ratios.
# Usage: bench/load-generator.sh [DURATION] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
ROUNDS=${2:-3}
bash scripts/install-deps.sh bench
export PATH="${RAMPART_BENCH_TOOLS:-$HOME/.cache/rampart-bench}/bin:$PATH"
cargo build --release --locked -q -p rampart
BIN=$PWD/target/release/rampart
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
WORK=$(mktemp -d /dev/shm/rampart-gen.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=18091 TLS_PORT=18093 H2_PORT=18094
chmod 755 "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj /CN=localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 2>/dev/null
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 30000;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 25000; }
http {
  access_log off; keepalive_requests 1000000;
  ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
  server { listen 127.0.0.1:$PORT backlog=4096; location / { return 200 "ok"; } }
  server { listen 127.0.0.1:$TLS_PORT ssl backlog=4096; location / { return 200 "ok"; } }
  server { listen 127.0.0.1:$H2_PORT ssl http2 backlog=4096; location / { return 200 "ok"; } }
}
CONF
taskset -c 1 "$NGINX" -c "$WORK/nginx.conf" -p "$WORK" & PIDS+=($!)
for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$PORT/" 2>/dev/null && break; sleep 0.1; done

rampart_rps() { # ARGS... -> req/s of one run
  taskset -c 0 "$BIN" load --quiet "$@" -c 64 -z "${DURATION}s" --out "$WORK/r.json"
  python3 -c "import json; r=json.load(open('$WORK/r.json')); print(round(r['overall']['requests']/r['duration_s'],1))"
}
wrk_rps() { taskset -c 0 wrk -t1 -c64 -d"${DURATION}"s "$1" | awk '/Requests\/sec/ {print $2}'; }
h2load_rps() { taskset -c 0 h2load -t1 -c64 -m1 -D "$DURATION" "$1" | awk '/^finished in/ {print $4}'; }
oha_rps() { # URL [FLAGS...]
  local url=$1; shift
  taskset -c 0 oha --no-tui -c 64 -z "${DURATION}s" --output-format json "$@" "$url" \
    | python3 -c "import json, sys; print(round(json.load(sys.stdin)['summary']['requestsPerSec'], 1))"
}
cat > "$WORK/k6.js" <<'JS'
import http from 'k6/http';
export const options = { vus: 64, duration: __ENV.DURATION, insecureSkipTLSVerify: true };
export default function () { http.get(__ENV.URL); }
JS
k6_rps() { # URL (k6 speaks HTTP/2 wherever TLS offers it)
  taskset -c 0 k6 run --quiet --no-usage-report --no-color -e URL="$1" -e DURATION="${DURATION}s" \
    --summary-export "$WORK/k6.json" "$WORK/k6.js" >/dev/null 2>&1
  python3 -c "import json; print(round(json.load(open('$WORK/k6.json'))['metrics']['http_reqs']['rate'], 1))"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "# requests/s against nginx return 200: generator on core 0, 64 connections, ${DURATION}s runs, $ROUNDS rounds"
echo "# round lines: protocol, tool, req/s, rampart req/s in the same round"
taskset -c 0 wrk -t1 -c64 -d2s "http://127.0.0.1:$PORT/" >/dev/null
taskset -c 0 "$BIN" load --quiet "http://127.0.0.1:$PORT/" -c 64 -z 2s
for r in $(seq "$ROUNDS"); do
  for proto in http1 https h2; do
    case $proto in
      http1) url="http://127.0.0.1:$PORT/"; flags=(); peer=wrk ;;
      https) url="https://localhost:$TLS_PORT/"; flags=(--insecure); peer=wrk ;;
      h2) url="https://localhost:$H2_PORT/"; flags=(--insecure --http2); peer=h2load ;;
    esac
    g=$(rampart_rps "$url" "${flags[@]}")
    ip=${url/localhost/127.0.0.1}
    p=$("${peer}_rps" "$ip")
    o=$(oha_rps "$ip" "${flags[@]}")
    k=$(k6_rps "$ip")
    for pair in "$peer $p" "oha $o" "k6 $k"; do echo "$proto $pair $g" | tee -a "$WORK/rounds"; done
  done
done
echo "# protocol, tool, tool req/s (median), rampart req/s (median), median of the rounds' rampart/tool"
for proto in http1 https h2; do
  for tool in $([ "$proto" = h2 ] && echo h2load || echo wrk) oha k6; do
    p=$(awk -v k="$proto" -v t="$tool" '$1 == k && $2 == t { print $3 }' "$WORK/rounds" | median)
    g=$(awk -v k="$proto" -v t="$tool" '$1 == k && $2 == t { print $4 }' "$WORK/rounds" | median)
    ratio=$(awk -v k="$proto" -v t="$tool" '$1 == k && $2 == t { print $4 / $3 }' "$WORK/rounds" | median)
    printf "%-6s %-7s %12s %12s %6.3fx\n" "$proto" "$tool" "$p" "$g" "$ratio"
  done
done

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
