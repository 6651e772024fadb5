# Helpers shared by the bench scripts (sourced; needs $WORK and $DURATION).

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

# write_origin_conf PORT: $WORK/origin.conf, an nginx serving $WORK/www
# statically (one worker, no access log), the origin of every proxy benchmark.
write_origin_conf() {
  cat > "$WORK/origin.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/origin.pid;
error_log $WORK/logs/origin-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$1; root $WORK/www; default_type text/plain; location / { } }
}
CONF
}
