#!/usr/bin/env bash
# Renders a real `rampart load --html` report in headless Chromium: takes a
# screenshot (bench/runs/<date>-<host>/report.png) and fails if the browser
# logs a console or script error.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
bash scripts/install-deps.sh bench
cargo build --release --locked -q -p rampart
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
chmod 755 "$WORK"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/nginx.pid; error_log $WORK/error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:18095; location / { add_header Cache-Status "nginx; hit"; return 200 "ok"; } } }
CONF
"$(command -v nginx || echo /usr/sbin/nginx)" -c "$WORK/nginx.conf" -p "$WORK" & PIDS+=($!)
sleep 0.5
./target/release/rampart load --quiet --url http://127.0.0.1:18095/ --rate 300 --duration 8s --html "$WORK/report.html"
OUT=bench/runs/$(date +%F)-${RAMPART_BENCH_HOST:-$(hostname -s 2>/dev/null || echo host)}
mkdir -p "$OUT"
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --user-data-dir="$WORK/profile" --enable-logging=stderr --v=0 \
  --window-size=1000,2600 --screenshot="$OUT/report.png" "file://$WORK/report.html" 2> "$WORK/chromium.log" || true
if grep -E "CONSOLE|Uncaught|SyntaxError" "$WORK/chromium.log"; then
  echo "html-report-check: the browser logged errors" >&2
  exit 1
fi
[ -s "$OUT/report.png" ] || { echo "html-report-check: no screenshot" >&2; cat "$WORK/chromium.log" >&2; exit 1; }
echo "rendered without console errors: $OUT/report.png"
