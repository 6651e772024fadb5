#!/usr/bin/env bash
# Memory per idle keep-alive connection, and whether it comes back.
#
# For each build (NAME=PATH pairs in BINS; default: this checkout's release
# binary as "rampart"), `rampart serve` runs in front of an nginx origin
# with a cached 1 KiB URL. A client opens CONNS connections, sends one GET
# (a hit) on each and keeps them all open and idle; the gateway's resident
# memory (VmRSS) is read before, with all of them open, and after they are
# closed. "open" is read as soon as the last connection has had its hit;
# "idle" once the gateway has parked them all (its rampart_idle_connections
# gauge, at most 20 s; a build without it at once) and its resident size
# stopped falling; "closed" once that size stopped falling after the
# clients closed them. The gateway's idle timeout (header_read_timeout) is
# raised to 120 s so that no build closes them meanwhile. Then 10 s of hits
# (wrk, 64 connections, proxy on core 0 and wrk on core 1) give each
# build's hit rate, so an allocator is picked on both. With UPLOAD=1 each
# connection's one request is instead a POST with a 16-byte body, passed
# to the origin (which answers 405): connections idle after an upload.
# With H2=1 each connection speaks HTTP/2 (h2c with prior knowledge) and
# its one request is the hit.
#
# Usage: [BINS="glibc=PATH jemalloc=PATH ..."] [UPLOAD=1 | H2=1] bench/idle-connections.sh [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-10000}
source bench/lib.sh
bench_start bench
ORIGIN=18191 RAMPART=18192 ADMIN=18193
cached_1k_setup
sed -i 's/^\[server\]$/[server]\nmax_connections = 20000\nheader_read_timeout = "120s"/' "$WORK/rampart.toml"
if [ "${UPLOAD:-0}" = 1 ]; then
  printf '\n[[routes]]\nmatch = "POST /*"\nupstream = "origin"\n' >> "$WORK/rampart.toml"
fi
ulimit -n 20000

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# settled PID: its resident size once it has not fallen for 6 s (freed
# memory is given back up to 5 s after the connections released it),
# polled every half second, at most 40 s.
settled() {
  local low now still=0
  low=$(rss_kib "$1")
  for _ in $(seq 80); do
    sleep 0.5
    now=$(rss_kib "$1")
    if [ "$now" -lt "$low" ]; then low=$now still=0; else still=$((still + 1)); fi
    [ "$still" -ge 12 ] && break
  done
  echo "$low"
}

# hold CONNS: opens the connections, one hit each, then waits for a line
# on stdin before closing them all.
cat > "$WORK/hold.py" <<'PY'
import socket, sys
sys.path.insert(0, "bench")
from http1 import read_response
port, n, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
req = b"GET /1k HTTP/1.1\r\nHost: bench\r\n\r\n"
if kind == "upload":
    req = b"POST /1k HTTP/1.1\r\nHost: bench\r\nContent-Length: 16\r\n\r\n" + b"u" * 16

def exactly(s, n):
    got = b""
    while len(got) < n:
        more = s.recv(n - len(got))
        if not more:
            raise EOFError("closed")
        got += more
    return got

def frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload

def h2_get(s):
    # GET http://bench/1k: :method GET, :scheme http (static table), then
    # :path and :authority as literals with indexed names (HPACK).
    block = b"\x82\x86\x04\x03/1k\x01\x05bench"
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0) + frame(1, 5, 1, block))
    while True:
        head = exactly(s, 9)
        length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
        exactly(s, length)
        if kind == 4 and not flags & 1:
            s.sendall(frame(4, 1, 0))
        if kind in (0, 1) and flags & 1:
            return

socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if kind == "h2":
        h2_get(s)
        socks.append(s)
        continue
    s.sendall(req)
    read_response(s)
    socks.append(s)
print("open", flush=True)
sys.stdin.readline()
for s in socks:
    s.close()
print("closed", flush=True)
PY

KIND=http1
[ "${UPLOAD:-0}" = 1 ] && KIND=upload
[ "${H2:-0}" = 1 ] && KIND=h2
case $KIND in
  upload) echo "# $CONNS idle keep-alive connections, one upload (POST, 16 bytes, passed to the origin) each; RSS in KiB" ;;
  h2) echo "# $CONNS idle HTTP/2 (h2c) connections, one 1 KiB hit each; RSS in KiB" ;;
  *) echo "# $CONNS idle keep-alive connections, one 1 KiB hit each; RSS in KiB" ;;
esac
printf '%-10s %10s %10s %12s %10s %12s %10s %12s %10s\n' build before open per_conn_B idle idle_per_B closed kept_per_B hits_rps
for pair in ${BINS:-rampart=$BIN}; do
  name=${pair%%=*} bin=${pair#*=}
  RUST_LOG=warn taskset -c 0 "$bin" serve --config "$WORK/rampart.toml" & pid=$!
  PIDS+=("$pid")
  for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$RAMPART/1k" 2>/dev/null && break; sleep 0.1; done
  before=$(rss_kib "$pid")
  coproc HOLD { taskset -c 1 python3 "$WORK/hold.py" "$RAMPART" "$CONNS" "$KIND"; }
  read -r _ <&"${HOLD[0]}"
  open=$(rss_kib "$pid")
  for _ in $(seq 200); do
    parked=$(curl -fsS "http://127.0.0.1:$ADMIN/metrics" | awk '/^rampart_idle_connections\{listener="public"/ {print int($2)}')
    [ "$KIND" = h2 ] || [ -z "$parked" ] || [ "$parked" -ge "$CONNS" ] && break
    sleep 0.1
  done
  idle=$(settled "$pid")
  echo >&"${HOLD[1]}"
  read -r _ <&"${HOLD[0]}"
  wait "$HOLD_PID" 2>/dev/null || true
  closed=$(settled "$pid")
  read -r rps _ <<<"$(wrk_run "$RAMPART" /1k 64 10)"
  printf '%-10s %10d %10d %12d %10d %12d %10d %12d %10s\n' "$name" "$before" "$open" \
    "$(( (open - before) * 1024 / CONNS ))" "$idle" "$(( (idle - before) * 1024 / CONNS ))" \
    "$closed" "$(( (closed - before) * 1024 / CONNS ))" "$rps"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
