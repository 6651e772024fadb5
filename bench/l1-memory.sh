#!/usr/bin/env bash
# L1 memory bound: a million distinct keys into a 64 MiB cache, with small and
# 1 KiB bodies. Reports the bytes charged to the budget and the growth of the
# process's resident memory, each as a multiple of the budget (target: <= 1.10).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p rampart-cache --example l1_memory
for body in 100 1024 16384; do
  ./target/release/examples/l1_memory 1000000 64 "$body"
done
