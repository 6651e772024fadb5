#!/usr/bin/env bash
# What an L2 hit costs the gateway under load, per request: its CPU time
# (user and kernel, from /proc/PID/stat), its system calls, split by the
# calls that move bytes (perf stat), and its context switches. The
# throughput of such runs moves by ±20 % on this machine from round to
# round (wrk and Redis share the second core); CPU time per request is what
# the gateway itself spends, and moves far less.
#
# Setup as bench/l2-hit.sh: a Rampart with its memory tier off (every hit is
# read from a loopback redis-server and decoded), KEYS URLs per size so that
# requests rarely meet on one key, CONNS connections; the gateway on core 0,
# wrk, the origin and Redis on core 1; 1 KiB and 16 KiB bodies.
# BASELINE_BIN=PATH runs another build the same way, alternating each round.
# Usage: [BASELINE_BIN=PATH] bench/l2-hit-cpu.sh [DURATION] [CONNS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONNS=${2:-64}
ROUNDS=${3:-3}
KEYS=${KEYS:-2000}
source bench/lib.sh
bench_start bench test
command -v perf >/dev/null 2>&1 || { echo "l2-hit-cpu.sh needs perf (apt-get install linux-perf)" >&2; exit 1; }
ORIGIN=18121 REDIS=18122 NODE=18123 NODE_ADMIN=18124 BASE=18125 BASE_ADMIN=18126
mkdir -p "$WORK/www/c"
for size in 1k:1024 16k:16384; do
  random_body "$WORK/www/c/${size%%:*}" "${size#*:}"
done
write_origin_conf "$ORIGIN"
L2_ONLY="[cache]
memory = \"0\"
redis = \"redis://127.0.0.1:$REDIS\"
[[routes]]
match = \"GET /c/*\"
upstream = \"origin\"
cache = { ttl = \"10m\" }"
rampart_conf "$NODE" "$NODE_ADMIN" "$L2_ONLY" > "$WORK/node.toml"
rampart_conf "$BASE" "$BASE_ADMIN" "$L2_ONLY" > "$WORK/baseline.toml"

start_redis "$REDIS"
taskset -c 1 "$NGINX" -c "$WORK/origin.conf" -p "$WORK" & PIDS+=($!)
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/node.toml" & PIDS+=($!)
NODES="rampart:$NODE:$!"
BASELINE_BIN=${BASELINE_BIN:-}
if [ -n "$BASELINE_BIN" ]; then
  RUST_LOG=warn taskset -c 0 "$BASELINE_BIN" serve --config "$WORK/baseline.toml" & PIDS+=($!)
  NODES+=" baseline:$BASE:$!"
fi
for s in 1k 16k; do key_walk "c-$s" "/c/$s" "$KEYS"; done
for n in $NODES; do
  IFS=: read -r _ port _ <<<"$n"
  for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port/c/1k" 2>/dev/null && break; sleep 0.1; done
  # Warm every key (L2 writes are in the background, hence the pause).
  for s in 1k 16k; do wrk_run "$port" / 1 3 "$WORK/c-$s.lua" >/dev/null; done
done
sleep 1

EVENTS=raw_syscalls:sys_enter,context-switches,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait
for _ in $(seq "$ROUNDS"); do
  for s in 1k 16k; do
    for n in $NODES; do
      IFS=: read -r name port pid <<<"$n"
      perf stat -x, -e "$EVENTS" -p "$pid" -o "$WORK/perf" -- sleep "$((DURATION + 1))" &
      perf_pid=$!
      before=$(awk '{ print $14, $15 }' "/proc/$pid/stat")
      out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION"s -s "$WORK/c-$s.lua" "http://127.0.0.1:$port/")
      after=$(awk '{ print $14, $15 }' "/proc/$pid/stat")
      wait "$perf_pid"
      requests=$(awk '/requests in/ { print $1 }' <<<"$out")
      rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
      # The gateway is idle in the second perf watches past wrk.
      awk -F, -v name="$name" -v s="$s" -v r="$requests" -v rps="$rps" -v b="$before" -v a="$after" -v hz="$(getconf CLK_TCK)" '
        { count[$3] = $1 }
        END {
          split(b, x, " "); split(a, y, " ")
          printf "%-8s %-4s %9.0f req/s  user %5.1f us  kernel %5.1f us  syscalls %4.2f (writev %4.2f sendto %4.2f recvfrom %4.2f epoll_wait %4.2f)  switches %4.2f\n",
            name, s, rps, (y[1] - x[1]) * 1e6 / hz / r, (y[2] - x[2]) * 1e6 / hz / r,
            count["raw_syscalls:sys_enter"] / r, count["syscalls:sys_enter_writev"] / r, count["syscalls:sys_enter_sendto"] / r,
            count["syscalls:sys_enter_recvfrom"] / r, count["syscalls:sys_enter_epoll_wait"] / r, count["context-switches"] / r
        }' "$WORK/perf" >> "$WORK/rows"
    done
  done
done
echo "# L2 hits, $CONNS connections, ${DURATION}s runs, $ROUNDS rounds; per request: the gateway's CPU time, system calls, context switches"
sort -k1,1 -k2,2 -s "$WORK/rows"
echo "# medians"
for n in $NODES; do
  for s in 1k 16k; do
    awk -v n="${n%%:*}" -v s="$s" '$1 == n && $2 == s { print $3, $6, $9 }' "$WORK/rows" > "$WORK/m"
    printf "%-8s %-4s %9s req/s  user %5s us  kernel %5s us\n" "${n%%:*}" "$s" \
      "$(cut -d' ' -f1 "$WORK/m" | median)" "$(cut -d' ' -f2 "$WORK/m" | median)" "$(cut -d' ' -f3 "$WORK/m" | median)"
  done
done
