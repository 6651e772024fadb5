#!/usr/bin/env bash
# What a request costs when its connection was parked (idle HTTP/1.1
# connections give back hyper's buffers after one to two seconds), in
# instructions counted by valgrind's callgrind over the whole process.
#
# For each build (this checkout's release binary, and BASELINE_BIN when
# given), `rampart serve` runs under callgrind in front of an nginx origin
# with a cached 1 KiB URL, three times:
#   pauses  one kept-alive connection, REQUESTS hits, a pause of GAP seconds
#           after each (over a second: the connection parks every time)
#   idle    one hit, then as long without requests (the process's own
#           background work for that time)
# and prints (pauses - idle) / (REQUESTS - 1): instructions per request
# after a pause.
#
# Usage: [BASELINE_BIN=PATH] bench/parked-request.sh [REQUESTS] [GAP]
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${1:-20}
GAP=${2:-2.6}
source bench/lib.sh
bench_start bench
ORIGIN=18291 RAMPART=18292 ADMIN=18293
cached_1k_setup

# client N GAP: one connection, N hits of /1k, GAP seconds after each.
cat > "$WORK/client.py" <<'PY'
import socket, sys, time
sys.path.insert(0, "bench")
from http1 import read_response
port, n, gap = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
for _ in range(n):
    s.sendall(b"GET /1k HTTP/1.1\r\nHost: bench\r\n\r\n")
    read_response(s)
    time.sleep(gap)
s.close()
PY

# counted BIN N GAP: the instructions of a whole run.
counted() {
  local out="$WORK/cg.out"
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" "$1" serve --config "$WORK/rampart.toml" >/dev/null 2>&1 & local pid=$!
  for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$RAMPART/1k" 2>/dev/null && break; sleep 0.5; done
  python3 "$WORK/client.py" "$RAMPART" "$2" "$3"
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:|^totals:/ {print $2; exit}' "$out"
}

echo "# instructions per request after a ${GAP} s pause (callgrind, whole process, 1 KiB hits, $REQUESTS requests)"
whole=$(python3 -c "print($REQUESTS * $GAP)")
for pair in "rampart=$BIN" ${BASELINE_BIN:+"baseline=$BASELINE_BIN"}; do
  name=${pair%%=*} bin=${pair#*=}
  pauses=$(counted "$bin" "$REQUESTS" "$GAP")
  idle=$(counted "$bin" 1 "$whole")
  printf '%-9s pauses %12d  idle %12d  per request %8d\n' "$name" "$pauses" "$idle" $(( (pauses - idle) / (REQUESTS - 1) ))
done
