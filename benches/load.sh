#!/usr/bin/env bash
# Load benchmark: wrk through (a) nothing (direct to the upstream), (b) nginx as a reverse proxy
# with a JSON access_log, (c) cutover-proxy with its JSON log (stdout) redirected to a file; and
# HTTPS (TLS 1.3, keep-alive): nginx terminating TLS vs cutover-proxy --tls-listen, both with the
# same certificate (made by `cutover-proxy certs generate`) in front of the same plain upstream.
# Everything runs on 127.0.0.1 on this machine, so load generator, proxy and upstream share the
# CPUs: read the numbers as a comparison between proxies, not as absolute capacity.
#
# Usage: benches/load.sh [--markdown]
# Env:   CONNECTIONS (64), THREADS (2), DURATION seconds (8), ROUNDS (3), TLS (1; 0 skips the
#        HTTPS rows), CUTOVER_BIN=path (skips `cargo build --release`), CUTOVER_BIN_B=path (an
#        A/B: a second build, run with the same flags as cutover-proxy in every round), IDLE (10000:
#        idle keep-alive connections held to nginx and to cutover-proxy at the end, RSS per
#        connection; 0 skips).
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-3}
TLS=${TLS:-1}
WARMUP=2
IDLE=${IDLE:-10000}
MARKDOWN=0
# cutover-off: the same build with recording and access logging off (--no-record --log-requests none),
# to show what the ledger and the log cost.
TARGETS=(direct nginx cutover-proxy cutover-off)
[[ ${TLS:-1} == 0 ]] || TARGETS+=(nginx-tls cutover-tls)
[[ -z ${CUTOVER_BIN_B:-} ]] || TARGETS+=(cutover-b)

die() { echo "load.sh: error: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }

for arg in "$@"; do
  case $arg in
    --markdown) MARKDOWN=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg (try --help)" ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/cutover-load.XXXXXX)
chmod 755 "$WORK"   # nginx workers may run as an unprivileged user
PIDS=()

# Stop every process we started (by pid) and remove the temp dir, also on failure or Ctrl-C.
cleanup() {
  local pid
  [[ -z ${WRK_PID:-} ]] || kill -TERM "$WRK_PID" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_tools() {
  if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null || die "wrk and nginx are required (apt-get install wrk nginx-light)"
    log "installing wrk and nginx-light"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
  fi
  command -v curl >/dev/null && command -v python3 >/dev/null || die "curl and python3 are required"
}

build_proxy() {
  if [[ -n ${CUTOVER_BIN:-} ]]; then BIN=$CUTOVER_BIN; else
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cutover-proxy
  fi
  [[ -x $BIN ]] || die "no executable at $BIN"
}

# Four distinct free loopback ports (sockets held open together so none repeats).
free_ports() {
  python3 -c 'import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])'
}

# nginx_conf DIR WORKERS SERVER_BLOCK: writes DIR/nginx.conf around an http-level snippet.
nginx_conf() {
  local dir=$1 workers=$2 body=$3
  mkdir -p "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 20000; }
http {
  default_type text/plain;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
$body
}
EOF
}

start_nginx() {  # start_nginx DIR
  nginx -p "$1" -c "$1/nginx.conf" -e "$1/error.log" &
  PIDS+=($!)
}

# wait_ready URL WHAT PID: poll until URL answers 200, or fail with the process's stderr.
wait_ready() {
  local i
  for ((i = 0; i < 100; i++)); do
    curl -kfsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK"/*/error.log "$WORK"/proxy.err 2>/dev/null | tail -n 20 >&2 || true
  die "$2 does not answer at $1"
}

start_all() {
  read -r UP_PORT NGINX_PORT PROXY_PORT ADMIN_PORT < <(free_ports)
  read -r OFF_PORT OFF_ADMIN_PORT NGINX_TLS_PORT PROXY_TLS_PORT < <(free_ports)
  read -r B_PORT B_ADMIN_PORT _ _ < <(free_ports)
  # One certificate for both TLS terminators.
  "$BIN" certs generate --out "$WORK/certs" bench.test >/dev/null
  local crt=$WORK/certs/bench.test.crt key=$WORK/certs/bench.test.key

  # Upstream: one nginx worker answering a fixed 16-byte body.
  nginx_conf "$WORK/upstream" 1 "  access_log off;
  server { listen 127.0.0.1:$UP_PORT; location / { return 200 \"hello, cutover!\\n\"; } }"
  start_nginx "$WORK/upstream"
  wait_ready "http://127.0.0.1:$UP_PORT/" "upstream nginx" "${PIDS[-1]}"

  # Peer under test: nginx reverse proxy. access_log with buffer=64k flush=1s is nginx's normal
  # production setting (unbuffered logging would be one write(2) per request).
  nginx_conf "$WORK/nginx" auto "  log_format json escape=json '{\"ts\":\"\$time_iso8601\",\"client_ip\":\"\$remote_addr\",'
    '\"method\":\"\$request_method\",\"host\":\"\$host\",\"path\":\"\$uri\",\"status\":\$status,'
    '\"bytes\":\$body_bytes_sent,\"request_time\":\$request_time,\"upstream\":\"\$upstream_addr\"}';
  access_log $WORK/nginx-access.log json buffer=64k flush=1s;
  upstream blue { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    listen 127.0.0.1:$NGINX_TLS_PORT ssl;
    ssl_certificate $crt;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.3;
    location / {
      proxy_pass http://blue;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }"
  start_nginx "$WORK/nginx"
  NGINX_PID=${PIDS[-1]}
  wait_ready "http://127.0.0.1:$NGINX_PORT/" "nginx reverse proxy" "${PIDS[-1]}"

  # cutover-proxy: JSON access log on stdout into a file, diagnostics on stderr.
  "$BIN" serve --listen "127.0.0.1:$PROXY_PORT" --upstream "http://127.0.0.1:$UP_PORT" \
    --tls-listen "127.0.0.1:$PROXY_TLS_PORT" --cert-dir "$WORK/certs" \
    --admin-listen "127.0.0.1:$ADMIN_PORT" --drain-delay 0s >"$WORK/proxy.log" 2>"$WORK/proxy.err" &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  wait_ready "http://127.0.0.1:$ADMIN_PORT/readyz" "cutover-proxy" "$PROXY_PID"   # not logged

  "$BIN" serve --listen "127.0.0.1:$OFF_PORT" --upstream "http://127.0.0.1:$UP_PORT" --no-record --log-requests none \
    --admin-listen "127.0.0.1:$OFF_ADMIN_PORT" --drain-delay 0s >"$WORK/proxy-off.log" 2>"$WORK/proxy-off.err" &
  PIDS+=($!)
  wait_ready "http://127.0.0.1:$OFF_ADMIN_PORT/readyz" "cutover-proxy (recording off)" "${PIDS[-1]}"

  if [[ -n ${CUTOVER_BIN_B:-} ]]; then
    "$CUTOVER_BIN_B" serve --listen "127.0.0.1:$B_PORT" --upstream "http://127.0.0.1:$UP_PORT" \
      --admin-listen "127.0.0.1:$B_ADMIN_PORT" --drain-delay 0s >"$WORK/proxy-b.log" 2>"$WORK/proxy-b.err" &
    PIDS+=($!)
    wait_ready "http://127.0.0.1:$B_ADMIN_PORT/readyz" "cutover-proxy B ($CUTOVER_BIN_B)" "${PIDS[-1]}"
    URL_cutover_b="http://127.0.0.1:$B_PORT/"
  fi
  URL_direct="http://127.0.0.1:$UP_PORT/"
  URL_cutover_off="http://127.0.0.1:$OFF_PORT/"
  URL_nginx="http://127.0.0.1:$NGINX_PORT/"
  URL_cutover_proxy="http://127.0.0.1:$PROXY_PORT/"
  URL_nginx_tls="https://127.0.0.1:$NGINX_TLS_PORT/"
  URL_cutover_tls="https://127.0.0.1:$PROXY_TLS_PORT/"
  local t body
  for t in "${TARGETS[@]}"; do   # same body through every path, or the comparison is meaningless
    body=$(curl -kfsS --max-time 2 "$(url_of "$t")") || die "$t does not answer"
    [[ $body == "hello, cutover!" ]] || die "$t answered an unexpected body: $body"
  done
}

url_of() { local v="URL_${1//-/_}"; echo "${!v}"; }

# "312.45us" / "1.20ms" / "2.00s" -> milliseconds
to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
    if (f < 0) exit 1; printf "%.3f", n * f }' || die "cannot parse latency '$1'"
}

# run_wrk TARGET SECONDS OUTFILE: runs wrk, fails on errors; counts cutover-proxy requests.
run_wrk() {
  local target=$1 secs=$2 out=$3 n
  # In the background + wait, so a signal interrupts the run at once instead of after wrk ends.
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency "$(url_of "$target")" >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || { cat "$out" >&2; die "wrk failed against $target"; }
  WRK_PID=
  n=$(awk '/ requests in /{print $1}' "$out")
  [[ ${n:-0} -gt 0 ]] || { cat "$out" >&2; die "$target served no requests"; }
  if grep -qE 'Non-2xx or 3xx responses|Socket errors' "$out"; then
    if [[ $target == direct ]]; then log "warning: wrk errors direct to the upstream:"; grep -E 'Non-2xx|Socket errors' "$out" >&2
    else cat "$out" >&2; die "wrk reported errors through $target"; fi
  fi
  [[ $target == cutover-proxy || $target == cutover-tls ]] && CUTOVER_REQUESTS=$((CUTOVER_REQUESTS + n))
  return 0
}

# measure TARGET ROUND: one measured wrk run; appends "target round rps p50 p99" to results.
measure() {
  local target=$1 round=$2 out="$WORK/wrk-$1-$2.txt" rps p50 p99
  run_wrk "$target" "$DURATION" "$out"
  rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
  p50=$(to_ms "$(awk '$1 == "50%"{print $2}' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%"{print $2}' "$out")")
  printf '%-14s round %d  %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms\n' "$target" "$round" "$rps" "$p50" "$p99"
  echo "$target $round $rps $p50 $p99" >>"$WORK/results"
}

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col_median() { awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$WORK/results" | median; }

# paired_ratio A B COLUMN: median over rounds of A's value / B's value in the same round.
paired_ratio() {
  awk -v a="$1" -v b="$2" -v c="$3" '$1 == a { x[$2] = $c } $1 == b { y[$2] = $c }
    END { for (r in x) if (r in y) print x[r] / y[r] }' "$WORK/results" | median | awk '{ printf "%.3f", $1 }'
}

summary() {
  local t rps p50 p99
  echo
  echo "Summary: median of $ROUNDS rounds, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"
  printf '%-14s %12s %10s %10s\n' target req/s "p50 ms" "p99 ms"
  : >"$WORK/summary"
  for t in "${TARGETS[@]}"; do
    rps=$(col_median "$t" 3); p50=$(col_median "$t" 4); p99=$(col_median "$t" 5)
    printf '%-14s %12.0f %10.3f %10.3f\n' "$t" "$rps" "$p50" "$p99"
    echo "$t $rps $p50 $p99" >>"$WORK/summary"
  done
  # Ratios are taken within each round (same machine state), then the median over rounds.
  RATIO_RPS=$(paired_ratio cutover-proxy nginx 3)
  RATIO_P99=$(paired_ratio cutover-proxy nginx 5)
  RATIO_REC=$(paired_ratio cutover-proxy cutover-off 3)
  echo "cutover-proxy / nginx (median of per-round ratios): req/s x$RATIO_RPS, p99 x$RATIO_P99"
  echo "recording on / off: req/s x$RATIO_REC (ledger + access log cost)"
  if [[ -n ${CUTOVER_BIN_B:-} ]]; then
    echo "A/B: cutover-proxy / cutover-b ($CUTOVER_BIN_B): req/s x$(paired_ratio cutover-proxy cutover-b 3), p99 x$(paired_ratio cutover-proxy cutover-b 5)"
    echo "     cutover-b / nginx: req/s x$(paired_ratio cutover-b nginx 3)"
  fi
  if [[ $TLS != 0 ]]; then
    RATIO_TLS_RPS=$(paired_ratio cutover-tls nginx-tls 3)
    RATIO_TLS_P99=$(paired_ratio cutover-tls nginx-tls 5)
    echo "HTTPS (TLS 1.3, keep-alive) cutover-proxy / nginx: req/s x$RATIO_TLS_RPS, p99 x$RATIO_TLS_P99"
  fi
  if [[ $MARKDOWN -eq 1 ]]; then
    echo
    echo "| target | req/s | p50 ms | p99 ms |"
    echo "|---|--:|--:|--:|"
    awk '{ printf "| %s | %.0f | %.3f | %.3f |\n", $1, $2, $3, $4 }' "$WORK/summary"
    echo
    echo "cutover-proxy ÷ nginx: req/s **×$RATIO_RPS**, p99 **×$RATIO_P99**; recording on ÷ off: **×$RATIO_REC**" \
      "(median of $ROUNDS rounds, \`wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s\`, $(nproc) cores, loopback)."
    [[ $TLS == 0 ]] || echo "HTTPS (TLS 1.3): cutover-proxy ÷ nginx req/s **×$RATIO_TLS_RPS**, p99 **×$RATIO_TLS_P99**."
  fi
}

# Resident memory of a process and its children (nginx: master and workers), KiB.
rss_tree() {
  local pid total=0 p
  for p in "$1" $(ps -o pid= --ppid "$1"); do
    pid=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${pid:-0}))
  done
  echo "$total"
}

# idle_cost NAME PORT PID: RSS per idle keep-alive client connection (IDLE of them, each after one
# answered request), as the delta of the process tree's resident memory.
idle_cost() {
  local before after fifo=$WORK/idle-$1.fifo
  before=$(rss_tree "$3")
  mkfifo "$fifo"
  python3 "$(dirname "$0")/idle_conns.py" 127.0.0.1 "$2" "$IDLE" <"$fifo" >"$WORK/idle-$1.out" &
  local holder=$!
  exec {hold}>"$fifo"
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q ready "$WORK/idle-$1.out" 2>/dev/null && break
    kill -0 "$holder" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1
  after=$(rss_tree "$3")
  exec {hold}>&-
  wait "$holder" || true
  rm -f "$fifo"
  awk -v b="$before" -v a="$after" -v n="$IDLE" -v t="$1" \
    'BEGIN { printf "%-14s idle: %d connections, RSS %d -> %d KiB: %.2f KiB each\n", t, n, b, a, (a - b) / n }'
}

# Stops cutover-proxy (so its log is complete) and compares access lines with wrk's request totals.
check_log_lines() {
  kill -TERM "$PROXY_PID"
  wait "$PROXY_PID" || log "warning: cutover-proxy exited with status $?"
  local lines dropped
  lines=$(grep -c '"status":' "$WORK/proxy.log" || true)
  dropped=$(grep -o '"log_lines_dropped":[0-9]*' "$WORK/proxy.log" | tail -n1 | cut -d: -f2)
  local checks=1 runs=$((ROUNDS + 1))   # +1: the body check in start_all (per listener)
  [[ $TLS == 0 ]] || { checks=2; runs=$((2 * (ROUNDS + 1))); }
  local sent=$((CUTOVER_REQUESTS + checks + IDLE))   # + one request per idle connection
  echo
  echo "cutover-proxy log: $lines access lines, wrk counted $sent requests (diff $((lines - sent))), dropped ${dropped:-?}"
  # wrk does not count requests still in flight when it stops: up to CONNECTIONS more lines per run.
  ((lines - sent >= 0 && lines - sent <= runs * CONNECTIONS)) ||
    log "warning: access lines do not match requests (expected diff 0..$((runs * CONNECTIONS)))"
  if [[ -s $WORK/proxy.err ]]; then log "cutover-proxy stderr:"; tail -n 20 "$WORK/proxy.err" >&2; fi
}

main() {
  ensure_tools
  # The idle measurement holds IDLE connections: the proxies (started below) and the client need
  # that many descriptors.
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  build_proxy
  echo "Machine: $(nproc) cores, $(uname -srm), $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "Date:    $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
  echo "Versions: $(nginx -v 2>&1); $( (wrk -v 2>&1 || true) | head -n1); $("$BIN" --version | head -n1)"
  start_all
  CUTOVER_REQUESTS=0
  local round t
  for ((round = 1; round <= ROUNDS; round++)); do
    for t in "${TARGETS[@]}"; do
      [[ $round -eq 1 ]] && run_wrk "$t" "$WARMUP" "$WORK/warmup-$t.txt"
      measure "$t" "$round"
    done
  done
  summary
  if ((IDLE > 0)); then
    echo
    idle_cost nginx "$NGINX_PORT" "$NGINX_PID"
    idle_cost cutover-proxy "$PROXY_PORT" "$PROXY_PID"
  fi
  check_log_lines
}

main
