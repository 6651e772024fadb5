#!/usr/bin/env bash
# Cache hits over TLS, and new TLS handshakes, against nginx with the same
# certificate (ECDSA P-256, made here) and the cipher both negotiate
# (TLS 1.3, TLS_AES_256_GCM_SHA384 from wrk/OpenSSL). Both proxies run one
# worker on core 0 with an nginx origin; wrk runs on core 1.
#   hits        wrk over HTTPS, CONNS kept-alive connections, 1 KiB cached
#   handshakes  `openssl s_time -new`: full handshakes per second, one client
# Rounds alternate between the two; medians are reported.
#
# Usage: bench/tls.sh [ROUNDS] [SECONDS] [CONNS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3} DURATION=${2:-8} CONNS=${3:-64}
source bench/lib.sh
bench_start bench
ORIGIN=18281 NGX=18283 RAMPART=18285 ADMIN=18286
random_body "$WORK/www/1k" 1024
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj /CN=bench.test -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 2>/dev/null
write_origin_conf "$ORIGIN"
taskset -c 1 "$NGINX" -c "$WORK/origin.conf" -p "$WORK" & PIDS+=($!)
write_proxy_conf "ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:tls:10m;" \
  "$NGX ssl; ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;"
# write_proxy_conf puts the TLS lines in the location: move them to the server.
sed -i "s|listen 127.0.0.1:$NGX;|listen 127.0.0.1:$NGX ssl; ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;|; s|location / { ssl; ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;|location / {|" "$WORK/proxy.conf"
taskset -c 0 "$NGINX" -c "$WORK/proxy.conf" -p "$WORK" & PIDS+=($!)
rampart_conf "$RAMPART" "$ADMIN" "[server.tls]
cert = \"$WORK/cert.pem\"
key = \"$WORK/key.pem\"
[[routes]]
match = \"GET /*\"
upstream = \"origin\"
cache = { ttl = \"10m\" }" > "$WORK/rampart.toml"
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/rampart.toml" & PIDS+=($!)
for port in $NGX $RAMPART; do
  for _ in $(seq 100); do curl -fsSk -o /dev/null "https://127.0.0.1:$port/1k" 2>/dev/null && break; sleep 0.1; done
done

https_run() { # PORT -> "rps p50_us p99_us"
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION"s --latency "https://127.0.0.1:$1/1k")
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(to_us "$(awk '$1=="50%" {print $2}' <<<"$out")") $(to_us "$(awk '$1=="99%" {print $2}' <<<"$out")")"
}
handshakes() { # PORT -> new connections per second
  taskset -c 1 openssl s_time -connect "127.0.0.1:$1" -new -time "$DURATION" 2>/dev/null \
    | awk '/connections in .* real seconds/ { print $1 / $4; exit }'
}
for r in $(seq "$ROUNDS"); do
  https_run "$NGX" >> "$WORK/nginx-hits"
  https_run "$RAMPART" >> "$WORK/rampart-hits"
  handshakes "$NGX" >> "$WORK/nginx-hs"
  handshakes "$RAMPART" >> "$WORK/rampart-hs"
done
echo "# TLS, $ROUNDS rounds x ${DURATION}s, $CONNS connections, 1 KiB cached; medians"
echo "# name req/s p50_us p99_us | handshakes/s"
for name in nginx rampart; do
  echo "$name $(report "$name-hits") | $(median < "$WORK/$name-hs")"
done
