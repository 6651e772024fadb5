# Helpers shared by the bench scripts (sourced from the repository root).

# bench_start DEPS...: installs the benchmark programs, builds the release
# binary once (BIN), finds nginx (NGINX) and makes a tmpfs work directory
# (WORK) that is removed, with every process in PIDS and every cgroup in
# CGROUPS, when the script exits.
bench_start() {
  bash scripts/install-deps.sh "$@"
  cargo build --release --locked -q -p rampart
  BIN=$PWD/target/release/rampart
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
  WORK=$(mktemp -d /dev/shm/rampart-bench.XXXXXX)
  PIDS=()
  CGROUPS=()
  trap bench_cleanup EXIT
  mkdir -p "$WORK/www" "$WORK/cache" "$WORK/logs"
  # nginx workers may run as an unprivileged user: let them read and cache.
  chmod 755 "$WORK"; chmod 777 "$WORK/cache"
}
bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for cg in "${CGROUPS[@]}"; do rmdir "$cg" 2>/dev/null || true; done
  rm -rf "$WORK"
}

to_us() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else if (v ~ /s$/) print n*1000000; else print n }'; }
# wrk_run PORT PATH CONNS SECONDS [SCRIPT] -> "rps p50_us p99_us"
wrk_run() {
  local out
  out=$(taskset -c 1 wrk -t1 -c"$3" -d"$4"s --latency ${5:+-s "$5"} "http://127.0.0.1:$1$2")
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(to_us "$(awk '$1=="50%" {print $2}' <<<"$out")") $(to_us "$(awk '$1=="99%" {print $2}' <<<"$out")")"
}
median() { sort -n | awk '{ a[NR]=$1 } END { print a[int((NR+1)/2)] }'; }
# measure NAME PORT PATH CONNS [SCRIPT]: appends a round to $WORK/NAME
measure() { wrk_run "$2" "$3" "$4" "$DURATION" "${5:-}" >> "$WORK/$1"; }
report() { # NAME -> "rps p50 p99" medians
  echo "$(cut -d' ' -f1 "$WORK/$1" | median) $(cut -d' ' -f2 "$WORK/$1" | median) $(cut -d' ' -f3 "$WORK/$1" | median)"
}

# nginx_conf NAME HTTP_BODY: $WORK/NAME.conf, one nginx worker in the
# foreground without access log, HTTP_BODY in its http block.
nginx_conf() {
  cat > "$WORK/$1.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/$1.pid;
error_log $WORK/logs/$1-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  $2
}
CONF
}

# write_proxy_conf HTTP_LINES SERVER...: $WORK/proxy.conf, nginx proxying to
# 127.0.0.1:$ORIGIN and caching its 200s for 10 minutes on tmpfs. HTTP_LINES
# go in the http block; each SERVER is "PORT" or "PORT LINES", a server on
# that port with LINES added to its location.
write_proxy_conf() {
  local http=$1 servers="" port lines; shift
  for server in "$@"; do
    read -r port lines <<<"$server"
    servers+="
  server {
    listen 127.0.0.1:$port;
    location / { $lines proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_cache bench; proxy_cache_valid 200 10m; add_header X-Cache \$upstream_cache_status; }
  }"
  done
  nginx_conf proxy "proxy_cache_path $WORK/cache levels=1:2 keys_zone=bench:64m max_size=1g inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  $http$servers"
}

# write_origin_conf PORT: $WORK/origin.conf, an nginx serving $WORK/www
# statically, the origin of every proxy benchmark.
write_origin_conf() {
  nginx_conf origin "server { listen 127.0.0.1:$1; root $WORK/www; default_type text/plain; location / { } }"
}

# rampart_conf PORT ADMIN [TOML]: a Rampart config on stdout: listeners on
# PORT and ADMIN without access log, TOML (tables such as [cache], then
# [[routes]]), and the upstream "origin" at 127.0.0.1:$ORIGIN.
rampart_conf() {
  cat <<CONF
[server]
listen = "127.0.0.1:$1"
[admin]
listen = "127.0.0.1:$2"
[log]
access = false
${3:-}
[[upstreams]]
name = "origin"
targets = ["127.0.0.1:$ORIGIN"]
CONF
}

# start_redis PORT: a redis-server of the script's own on core 1, keeping
# nothing on disk, waited for until it answers.
start_redis() {
  taskset -c 1 redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >/dev/null & PIDS+=($!)
  for _ in $(seq 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && break; sleep 0.1; done
}

# key_walk NAME PATH KEYS: $WORK/NAME.lua, a wrk script whose requests walk
# over KEYS URLs (PATH?k=0 … PATH?k=KEYS-1), so that they rarely meet on one.
key_walk() {
  cat > "$WORK/$1.lua" <<LUA
n = 0
request = function()
  n = (n + 1) % $3
  return wrk.format(nil, "$2?k=" .. n)
end
LUA
}

# unique_urls NAME PATH: $WORK/NAME.lua, a wrk script whose every request
# is a new URL (PATH?run=…&miss=N), so every request is a cache miss: each
# wrk run's own prefix keeps it from asking for what an earlier run stored.
unique_urls() {
  cat > "$WORK/$1.lua" <<LUA
math.randomseed(os.time())
run = tostring(os.time()) .. "-" .. tostring(math.random(1000000000))
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "$2?run=" .. run .. "&miss=" .. counter)
end
LUA
}

# random_body PATH BYTES: a file of BYTES printable random bytes (base64 of
# random data), the body every proxy benchmark serves.
random_body() {
  head -c "$2" /dev/urandom | base64 -w0 | head -c "$2" > "$1"
}

# cached_1k_setup: an nginx origin on $ORIGIN (core 1) serving a random
# 1 KiB /1k, and $WORK/rampart.toml: a gateway on $RAMPART (admin $ADMIN)
# caching every GET for 10 minutes.
cached_1k_setup() {
  random_body "$WORK/www/1k" 1024
  write_origin_conf "$ORIGIN"
  taskset -c 1 "$NGINX" -c "$WORK/origin.conf" -p "$WORK" & PIDS+=($!)
  rampart_conf "$RAMPART" "$ADMIN" '[[routes]]
match = "GET /*"
upstream = "origin"
cache = { ttl = "10m" }' > "$WORK/rampart.toml"
}

# runs_dir: bench/runs/DATE-HOST, where a script's raw output goes (made if
# missing; RAMPART_BENCH_HOST names the host).
runs_dir() {
  local dir
  dir=bench/runs/$(date +%F)-${RAMPART_BENCH_HOST:-$(hostname -s 2>/dev/null || echo host)}
  mkdir -p "$dir"
  echo "$dir"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_http URL: until it answers, up to 120 s (a seed app's data at full
# scale takes a while to generate).
wait_http() {
  for _ in $(seq 1 1200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$(basename "$0" .sh): $1 never answered" >&2; return 1
}
# health_path APP: a seed application's health endpoint.
health_path() {
  case "$1" in
    event-registration) echo /health ;;
    membership-cards) echo /api/v1/health ;;
    *) echo /api/health ;;
  esac
}
