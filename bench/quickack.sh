#!/usr/bin/env bash
# Pass-through to an origin that writes a response's head and body in two
# small writes with Nagle's algorithm on (Python's http.server with
# HTTP/1.1 keep-alive): the client's delayed ACK of the head holds the body
# back up to 40 ms. Measured on one kept-alive connection, REQUESTS
# sequential GETs each: the origin directly, Rampart (this checkout),
# nginx `proxy_pass` with upstream keepalive, and BASELINE_BIN when given.
#
# Usage: [BASELINE_BIN=PATH] bench/quickack.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${1:-200}
source bench/lib.sh
bench_start bench
ORIGIN=18191 RAMPART=18193 ADMIN=18194 BASE=18195 BASE_ADMIN=18196 NGINX_PORT=18197

python3 - "$ORIGIN" <<'PY' & PIDS+=($!)
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"x" * 512
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()          # first write: the head
        self.wfile.write(body)      # second write: the body
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
routes='[[routes]]
match = "GET /*"
upstream = "origin"'
rampart_conf "$RAMPART" "$ADMIN" "$routes" > "$WORK/rampart.toml"
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/rampart.toml" & PIDS+=($!)
if [ -n "${BASELINE_BIN:-}" ]; then
  rampart_conf "$BASE" "$BASE_ADMIN" "$routes" > "$WORK/base.toml"
  RUST_LOG=warn taskset -c 0 "$BASELINE_BIN" serve --config "$WORK/base.toml" & PIDS+=($!)
fi
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 16; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
taskset -c 0 "$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -g 'daemon off;' & PIDS+=($!)

# latency PORT: p50 and p99 (ms) of REQUESTS sequential GETs on one connection.
latency() {
  python3 - "$1" "$REQUESTS" <<'PY'
import http.client, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(100):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/warm"); conn.getresponse().read(); break
    except OSError:
        time.sleep(0.1)
times = []
for i in range(n):
    t = time.perf_counter()
    conn.request("GET", f"/r{i}")
    conn.getresponse().read()
    times.append((time.perf_counter() - t) * 1000)
times.sort()
print(f"p50 {times[len(times)//2]:.2f} ms   p99 {times[int(len(times)*0.99)-1]:.2f} ms")
PY
}

echo "# pass-through to a Nagle origin (head and body in two writes), $REQUESTS GETs on one connection"
printf '%-28s %s\n' "origin directly" "$(latency "$ORIGIN")"
printf '%-28s %s\n' "rampart" "$(latency "$RAMPART")"
printf '%-28s %s\n' "nginx proxy_pass keepalive" "$(latency "$NGINX_PORT")"
if [ -n "${BASELINE_BIN:-}" ]; then printf '%-28s %s\n' "baseline" "$(latency "$BASE")"; fi
