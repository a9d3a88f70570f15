#!/usr/bin/env bash
# Cardinality benchmark: what a scanner or a crawler on a wildcard name does to the proxy. wrk
# sends FLOOD requests (1 000 000), each with a new random Host, a random 3-segment path, a random
# User-Agent and a random X-Forwarded-For (trusted), through cutover-proxy on its default flags
# (plus --report-file written every 2 s), while /metrics, /report and / are fetched every 2 s. It
# prints the proxy's peak RSS, the ledger's per-host cost, the report's bytes and build time, the
# scrape time, and the flood's requests/s against the same proxy's with repeated hosts (a fresh
# proxy per run; repeated runs before and after the flood, their median quoted).
# Everything runs on 127.0.0.1: load generator, proxy and upstream share the CPUs.
#
# Usage: benches/cardinality.sh [--markdown]
# Env:   FLOOD (1000000), CONNECTIONS (32), THREADS (2), REPEATED_DURATION seconds (10),
#        CUTOVER_BIN=path (skips `cargo build --release`).
set -euo pipefail

FLOOD=${FLOOD:-1000000}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
REPEATED_DURATION=${REPEATED_DURATION:-10}
MARKDOWN=0

die() { echo "cardinality.sh: error: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }

for arg in "$@"; do
  case $arg in
    --markdown) MARKDOWN=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $arg (try --help)" ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d /tmp/cutover-cardinality.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v wrk >/dev/null && command -v nginx >/dev/null || die "wrk and nginx are required (apt-get install wrk nginx-light)"
command -v curl >/dev/null && command -v python3 >/dev/null || die "curl and python3 are required"

if [[ -n ${CUTOVER_BIN:-} ]]; then BIN=$CUTOVER_BIN; else
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/cutover-proxy
fi
[[ -x $BIN ]] || die "no executable at $BIN"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The upstream: one nginx worker answering a fixed body.
UP_PORT=$(free_port)
mkdir -p "$WORK/upstream/tmp"
cat >"$WORK/upstream/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/upstream/nginx.pid;
error_log $WORK/upstream/error.log warn;
events { worker_connections 4096; }
http {
  client_body_temp_path $WORK/upstream/tmp/body; proxy_temp_path $WORK/upstream/tmp/proxy;
  fastcgi_temp_path $WORK/upstream/tmp/fastcgi; uwsgi_temp_path $WORK/upstream/tmp/uwsgi;
  scgi_temp_path $WORK/upstream/tmp/scgi;
  access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP_PORT; location / { return 200 "hello, cutover!\n"; } }
}
EOF
nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" -e "$WORK/upstream/error.log" &
PIDS+=($!)

# wrk scripts: a new random host (path, agent, client) per request, or one of 100 hosts.
cat >"$WORK/flood.lua" <<'EOF'
-- `id` is set per thread by setup() (a global of each thread's Lua state): distinct seeds, or
-- the threads would send the same hosts.
id = 0
local chars = "abcdefghijklmnopqrstuvwxyz"
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
end
function init() math.randomseed(os.time() * 1000 + id) end
local function word(n)
  local t = {}
  for i = 1, n do local r = math.random(1, 26); t[i] = chars:sub(r, r) end
  return table.concat(t)
end
function request()
  local mode = os.getenv("MODE")
  local host, path, ua, ip
  if mode == "flood" then
    host = word(12) .. ".tenant.example.com"
    path = "/" .. word(6) .. "/" .. word(8) .. "/" .. word(5)
    ua = "scanner/" .. word(10)
    ip = math.random(1, 254) .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  else
    local n = math.random(0, 99)
    host = "service-" .. n .. ".example.com"
    path = "/api/v1/items/" .. math.random(0, 9)
    ua = "client/" .. (n % 10)
    ip = "10.0.0." .. (n % 50 + 1)
  end
  return wrk.format("GET", path, { ["Host"] = host, ["User-Agent"] = ua, ["X-Forwarded-For"] = ip })
end
EOF

PROXY_PID=
# start_proxy NAME: a fresh cutover-proxy on default flags with a report file every 2 s.
start_proxy() {
  PROXY_PORT=$(free_port)
  ADMIN_PORT=$(free_port)
  "$BIN" serve --listen "127.0.0.1:$PROXY_PORT" --upstream "http://127.0.0.1:$UP_PORT" \
    --admin-listen "127.0.0.1:$ADMIN_PORT" --trusted-proxies 127.0.0.0/8 \
    --report-file "$WORK/$1-report.json" --report-interval 2s --drain-delay 0s \
    >"$WORK/$1.log" 2>"$WORK/$1.err" &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  local i
  for ((i = 0; i < 100; i++)); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 20 "$WORK/$1.err" >&2
  die "cutover-proxy does not answer"
}

stop_proxy() {
  kill -TERM "$PROXY_PID"
  wait "$PROXY_PID" 2>/dev/null || true
}

kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
rps_of() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }

# repeated N: requests/s with repeated hosts, on a fresh proxy.
repeated() {
  start_proxy "repeated-$1"
  MODE=repeated wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$WORK/flood.lua" \
    "http://127.0.0.1:$PROXY_PORT/" >/dev/null
  MODE=repeated wrk -t"$THREADS" -c"$CONNECTIONS" -d"${REPEATED_DURATION}s" -s "$WORK/flood.lua" \
    "http://127.0.0.1:$PROXY_PORT/" >"$WORK/repeated-$1.wrk"
  stop_proxy
  rps_of "$WORK/repeated-$1.wrk"
}

# scrape: every 2 s, /metrics, /report and / timed, with the proxy's RSS, until the flood ends.
scrape() {
  local path out
  while [[ -e $WORK/flooding ]]; do
    for path in /metrics /report /; do
      out=$(curl -sS -o /dev/null --max-time 30 -w '%{http_code} %{size_download} %{time_total}' \
        "http://127.0.0.1:$ADMIN_PORT$path" 2>/dev/null || echo "000 0 0")
      echo "$path $out" >>"$WORK/scrapes"
    done
    echo "rss $(kib "$PROXY_PID" VmRSS)" >>"$WORK/scrapes"
    sleep 2
  done
}

log "repeated hosts, before the flood"
R1=$(repeated 1)

log "flood: $FLOOD requests, each a new host"
start_proxy flood
RSS_START=$(kib "$PROXY_PID" VmRSS)
: >"$WORK/scrapes"
touch "$WORK/flooding"
start_ns=$(date +%s%N)
MODE=flood wrk -t"$THREADS" -c"$CONNECTIONS" -d3600s -s "$WORK/flood.lua" \
  "http://127.0.0.1:$PROXY_PORT/" >"$WORK/flood.wrk" &
WRK_PID=$!
scrape &
SCRAPER=$!
# wrk cannot stop after N requests (a thread that stops still waits out -d): it is interrupted
# (it then prints what it did) once the ledger has counted FLOOD requests.
while kill -0 "$WRK_PID" 2>/dev/null; do
  n=$(curl -fsS --max-time 2 "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null | awk '$1 == "cutover_ledger_requests_total" { print $2 }')
  if [[ -n $n ]] && (( ${n%.*} >= FLOOD )); then kill -INT "$WRK_PID"; break; fi
  sleep 0.2
done
wait "$WRK_PID" || true
end_ns=$(date +%s%N)
rm -f "$WORK/flooding"
wait "$SCRAPER" || true
sleep 2.5   # one more summary and report write after the last request
METRICS=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics")
DEFAULT_REPORT_BYTES=$(curl -fsS -o /dev/null -w '%{size_download}' "http://127.0.0.1:$ADMIN_PORT/report")
DEFAULT_REPORT_S=$(curl -fsS -o /dev/null -w '%{time_total}' "http://127.0.0.1:$ADMIN_PORT/report")
METRICS_S=$(curl -fsS -o /dev/null -w '%{time_total}' "http://127.0.0.1:$ADMIN_PORT/metrics")
RSS_PEAK=$(kib "$PROXY_PID" VmHWM)
stop_proxy
FLOOD_RPS=$(rps_of "$WORK/flood.wrk")
SENT=$(awk '/requests in/ { print $1 }' "$WORK/flood.wrk")

log "repeated hosts, after the flood"
R2=$(repeated 2)

metric() { awk -v m="$1" '$1 == m { print $2 }' <<<"$METRICS"; }
# Exactness: the final report file (written at shutdown) against the access lines logged.
python3 - "$WORK" "$FLOOD_RPS" "$R1" "$R2" "$RSS_START" "$RSS_PEAK" "$MARKDOWN" "$SENT" \
  "$(metric cutover_ledger_hosts)" "$(metric cutover_ledger_memory_bytes)" "$(metric cutover_ledger_memory_limit_bytes)" \
  "$(metric cutover_summary_duration_seconds)" "$DEFAULT_REPORT_BYTES" "$DEFAULT_REPORT_S" "$METRICS_S" \
  "$(( (end_ns - start_ns) / 1000000 ))" <<'EOF'
import json, statistics, sys
(work, flood_rps, r1, r2, rss_start, rss_peak, markdown, sent, hosts, mem, limit, summary_s,
 report_bytes, report_s, metrics_s, flood_ms) = sys.argv[1:]
hosts, mem, limit = int(float(hosts)), int(float(mem)), int(float(limit))
access = 0
with open(f"{work}/flood.log") as f:
    for line in f:
        if '"status"' in line and '"event"' not in line:
            access += 1
summaries, events = [], {}
with open(f"{work}/flood.log") as f:
    for line in f:
        if '"event":"' in line:
            name = json.loads(line)["event"]
            events[name] = events.get(name, 0) + 1
            if name == "summary":
                summaries.append(json.loads(line))
report = json.load(open(f"{work}/flood-report.json"))
in_hosts = sum(h["requests"] for h in report["hosts"])
total = report["totals"]["requests"]
scrapes = {}
for line in open(f"{work}/scrapes"):
    parts = line.split()
    if parts[0] == "rss":
        continue
    path, code, size, t = parts
    scrapes.setdefault(path, []).append((int(code), int(size), float(t)))
def worst(path):
    xs = scrapes.get(path, [])
    return (max((t for _, _, t in xs), default=0.0), max((s for _, s, _ in xs), default=0),
            sum(1 for c, _, _ in xs if c != 200), len(xs))
repeated = statistics.median([float(r1), float(r2)])
ratio = repeated / float(flood_rps)
writes = [s for s in summaries if s.get("took_ms") is not None]
rows = [
    ("requests sent (wrk) / logged / in the report", f"{sent} / {access} / {total} (hosts sum {in_hosts})"),
    ("totals exact", "yes" if access == total == in_hosts else "NO"),
    ("event lines: new_host, new_path, new_hosts_summary", f"{events.get('new_host', 0)}, {events.get('new_path', 0)}, {events.get('new_hosts_summary', 0)}"),
    ("flood req/s", f"{float(flood_rps):,.0f} ({int(flood_ms)/1000:.1f} s)"),
    ("repeated-host req/s (before, after)", f"{float(r1):,.0f}, {float(r2):,.0f}"),
    ("repeated / flood", f"{ratio:.2f}x"),
    ("peak RSS (start)", f"{int(rss_peak)/1024:.0f} MiB ({int(rss_start)/1024:.0f} MiB)"),
    ("hosts kept / ledger bytes / limit", f"{hosts:,} / {mem/2**20:.1f} MiB / {limit/2**20:.0f} MiB"),
    ("ledger bytes per host kept", f"{mem/max(hosts,1):.0f} B"),
    ("RSS growth per host kept", f"{(int(rss_peak)-int(rss_start))*1024/max(hosts,1):.0f} B"),
    ("summary pass (last)", f"{float(summary_s)*1000:.0f} ms"),
]
for path in ["/metrics", "/report", "/"]:
    t, size, bad, n = worst(path)
    rows.append((f"{path} during the flood: worst time, largest body, failures", f"{t*1000:.0f} ms, {size/2**20:.2f} MiB, {bad} of {n}"))
rows += [
    ("/report after the flood (default, bounded)", f"{int(report_bytes)/2**20:.2f} MiB in {float(report_s)*1000:.0f} ms"),
    ("/metrics after the flood", f"{float(metrics_s)*1000:.0f} ms"),
    ("report file writes: worst time, last size", f"{max((s['took_ms'] for s in writes), default=0)} ms, {(writes[-1].get('report_file_bytes') or 0)/2**20:.1f} MiB" if writes else "none"),
]
if markdown == "1":
    print("| measure | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
else:
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
EOF
