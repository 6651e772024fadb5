#!/usr/bin/env bash
# `rampart demo` several times, builds alternating, and the origin-alone
# against through-Rampart latencies of each run side by side: the issue's
# "within 10 % of the origin alone" read off runs that share a session.
#
#   [BINS="before=PATH now=PATH"] bench/demo-rounds.sh [APP] [SCENARIO] [ROUNDS] [DURATION]
#
# Defaults: education vus-1000 3 30s, and only this checkout's release
# build. Each round runs every build once, in the order given. Per run it
# prints p95 and p99 alone → through Rampart with their ratio, and the CPU
# rows where the build prints them; the demo's full output goes to
# bench/runs/DATE-HOST/demo-rounds-APP-SCENARIO.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

APP=${1:-education}
SCENARIO=${2:-vus-1000}
ROUNDS=${3:-3}
DURATION=${4:-30s}

bench_start test
BINS=${BINS:-now=$BIN}
OUT=$(runs_dir)/demo-rounds-$APP-$SCENARIO.txt
: > "$OUT"
echo "# bench/demo-rounds.sh $APP $SCENARIO $ROUNDS $DURATION — $(date -u +%FT%TZ) on $(hostname), $(nproc) cores; $BINS" | tee -a "$OUT"

SUMMARY=$WORK/summary
for n in $(seq 1 "$ROUNDS"); do
  for entry in $BINS; do
    name=${entry%%=*} bin=${entry#*=}
    echo "## round $n, $name ($bin)" >> "$OUT"
    "$bin" demo --app "$APP" --scenario "$SCENARIO" --duration "$DURATION" \
      --out-dir "$WORK/demo" > "$WORK/run.txt" 2>&1 || { cat "$WORK/run.txt"; exit 1; }
    grep -v '^\s*$' "$WORK/run.txt" | grep -v '^[1-4]/4\|^    \|^report:' >> "$OUT"
    python3 - "$WORK/run.txt" "$name" "$n" <<'PY' | tee -a "$SUMMARY"
import sys
text, name, n = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
def row(label):
    for line in text.splitlines():
        if line.startswith(label):
            return line[len(label):].split()
    return None
p95, p99 = row("p95 latency (ms)"), row("p99 latency (ms)")
cpu = row("CPU µs/request: Rampart")
print("%-8s %2s  p95 %6s → %6s (%.2f×)  p99 %6s → %6s (%.2f×)%s" % (
    name, n, p95[0], p95[1], float(p95[1]) / float(p95[0]), p99[0], p99[1],
    float(p99[1]) / float(p99[0]), "  Rampart CPU %s µs/request" % cpu[1] if cpu else ""))
PY
  done
done
{ echo "## summary"; cat "$SUMMARY"; } >> "$OUT"
echo "results: $OUT"
