#!/usr/bin/env bash
# The instruction budget, checked by CI: instructions per hit, miss,
# pass-through and L2 hit (bench/instructions.sh, REQUESTS of each) against the
# numbers kept in bench/instruction-budget.txt. Fails when any kind costs
# more than 10 % over its budget, so a regression shows in review even
# where wall-clock noise would hide it. A change that makes requests dearer
# (or cheaper) on purpose writes the new numbers with UPDATE=1, and the
# diff of the file shows it.
#
# Usage: [UPDATE=1] bench/instruction-budget.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${1:-300}
BUDGET=bench/instruction-budget.txt
out=$(bash bench/instructions.sh "$REQUESTS")
echo "$out"
measured=$(awk '$1 == "rampart" { print $2, $3 }' <<<"$out")
[ "$(wc -l <<<"$measured")" -eq 4 ] || { echo "instruction-budget: expected four kinds, got: $measured" >&2; exit 1; }
if [ "${UPDATE:-}" = 1 ]; then
  {
    echo "# Instructions per request, bench/instructions.sh $REQUESTS (1 KiB, one connection each; l2: hits read from Redis)."
    echo "# Checked by bench/instruction-budget.sh in CI: more than 10 % over fails."
    echo "$measured"
  } > "$BUDGET"
  echo "instruction-budget: wrote $BUDGET"
  exit 0
fi
fail=0
while read -r kind count; do
  budget=$(awk -v k="$kind" '$1 == k { print $2 }' "$BUDGET")
  [ -n "$budget" ] || { echo "instruction-budget: no budget for '$kind' in $BUDGET" >&2; fail=1; continue; }
  verdict=$(awk -v c="$count" -v b="$budget" 'BEGIN { r = c / b; printf "%.3f %s", r, (r > 1.10 ? "OVER" : "ok") }')
  printf '%-5s %10s instructions, budget %10s: %s\n' "$kind" "$count" "$budget" "$verdict"
  [[ $verdict == *OVER ]] && fail=1
done <<<"$measured"
if [ "$fail" -ne 0 ]; then
  echo "instruction-budget: a request kind costs more than 10 % over its budget (see above); if intended, run UPDATE=1 bash bench/instruction-budget.sh and commit the file" >&2
  exit 1
fi
