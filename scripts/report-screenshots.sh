#!/usr/bin/env bash
# Screenshots of the load tester's pages for docs/load-testing.md: a run's
# report (against the demo's example origin) and the demo's comparison of
# the origin alone with Rampart, taken by Debian's headless chromium.
#
# Usage: scripts/report-screenshots.sh [BIN]   (default: target/release/rampart;
# a debug build's numbers are not Rampart's)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/rampart}
command -v chromium >/dev/null || { echo "install Debian's chromium (bash scripts/install-deps.sh test)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/rampart-shots.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=18431
"$BIN" demo --app banking --scale 0.05 --origin-only --listen "127.0.0.1:$PORT" >"$WORK/origin.log" 2>&1 &
for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
"$BIN" load "http://127.0.0.1:$PORT/api/exchange-rates" -q 300 -z 20s --html "$WORK/report.html" --quiet
"$BIN" demo --scale 0.05 --duration 20s --out-dir "$WORK/demo" >/dev/null 2>&1
mkdir -p docs/img
shot() {
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$WORK/profile" \
    --window-size=1280,"$3" --screenshot="$2" "file://$1" 2>/dev/null
}
shot "$WORK/report.html" docs/img/load-report.png 2600
shot "$WORK/demo/report.html" docs/img/load-compare.png 1900
ls -l docs/img/load-report.png docs/img/load-compare.png
