#!/usr/bin/env bash
# Instructions per request, counted by valgrind (callgrind), not timed: repeatable on a noisy
# machine, so an A/B of two builds shows a change of a percent. The proxy (one worker) runs under
# callgrind in front of an nginx upstream; h2load sends N1 then N2 keep-alive HTTP/1.1 requests in
# two separate runs, and (Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of one request, start-up and
# shutdown cancelled out.
#
# Usage: benches/instructions.sh BIN [BIN_B]      (release builds; BIN_B for an A/B)
# Env:   N1 (2000), N2 (12000), CONNECTIONS (4), ARGS (extra serve flags)
set -euo pipefail
N1=${N1:-2000}
N2=${N2:-12000}
CONNECTIONS=${CONNECTIONS:-4}
command -v valgrind >/dev/null && command -v h2load >/dev/null && command -v nginx >/dev/null ||
  { echo "needs valgrind, h2load (nghttp2-client) and nginx" >&2; exit 2; }
WORK=$(mktemp -d /tmp/cutover-instr.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(port)
mkdir -p "$WORK/up"
cat >"$WORK/up/nginx.conf" <<CONF
daemon off; worker_processes 1; pid $WORK/up/nginx.pid; error_log $WORK/up/error.log warn;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  client_body_temp_path $WORK/up/b; proxy_temp_path $WORK/up/p; fastcgi_temp_path $WORK/up/f; uwsgi_temp_path $WORK/up/u; scgi_temp_path $WORK/up/s;
  server { listen 127.0.0.1:$UP; location / { return 200 "hello, cutover!\n"; } } }
CONF
nginx -p "$WORK/up" -c "$WORK/up/nginx.conf" &
PIDS+=($!)

# ir BIN N: instructions of one proxy process that served N requests.
ir() {
  local bin=$1 n=$2 p a out=$WORK/cg.$RANDOM
  p=$(port); a=$(port)
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve --workers 1 --listen "127.0.0.1:$p" \
    --admin-listen "127.0.0.1:$a" --upstream "http://127.0.0.1:$UP" --drain-delay 0s ${ARGS:-} \
    >"$WORK/proxy.log" 2>"$WORK/proxy.err" &
  local pid=$!
  for _ in $(seq 1 200); do curl -fsS -o /dev/null "http://127.0.0.1:$a/readyz" 2>/dev/null && break; sleep 0.1; done
  if ((n > 0)); then h2load --h1 -n "$n" -c "$CONNECTIONS" -t 1 "http://127.0.0.1:$p/bench/path" >"$WORK/h2load.txt" 2>&1 ||
    { cat "$WORK/h2load.txt" >&2; exit 1; }
    grep -q "succeeded, 0 failed" "$WORK/h2load.txt" || grep -q "$n succeeded" "$WORK/h2load.txt" || { cat "$WORK/h2load.txt" >&2; exit 1; }
  fi
  kill -TERM "$pid"; wait "$pid" || true
  awk '/^summary:/ { print $2 }' "$out"*
}

per_request() {
  local bin=$1 a b
  a=$(ir "$bin" "$N1"); b=$(ir "$bin" "$N2")
  echo $(( (b - a) / (N2 - N1) ))
}

A=$(per_request "$1")
echo "A $1: $A instructions per request"
if [[ -n ${2:-} ]]; then
  B=$(per_request "$2")
  echo "B $2: $B instructions per request"
  awk -v a="$A" -v b="$B" 'BEGIN { printf "A / B: %.3f\n", a / b }'
fi
