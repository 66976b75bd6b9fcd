#!/usr/bin/env bash
# HTTP benchmark (make bench-http): wrk on loopback against GET /fhir/Patient/{id}, POST /fhir/Patient
# (registration: matching and durable writes) and POST /fhir/Patient/$match over a registry of
# BENCH_HTTP_SIZE synthetic people (default 100000): bench match's population (FEBRL names and addresses,
# corrupted re-registrations; RIDGELINE_TESTDATA), written with `ridgeline bench population` together with
# the create and $match request bodies, loaded once with `ridgeline import` and kept under build/bench/.
# Each scenario starts from a copy of that registry. Prints requests/s and latency
# percentiles per scenario, then one JSON line.
#   usage: bench/http/run.sh [BIN]      (BIN default build/ridgeline)
#   BENCH_HTTP_SIZE, BENCH_HTTP_SECONDS (15), BENCH_HTTP_CONNECTIONS (32), BENCH_HTTP_THREADS (wrk, 2),
#   BENCH_HTTP_SERVER_THREADS (the server's http.threads; default: its own default)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-build/ridgeline}
N=${BENCH_HTTP_SIZE:-100000}
DUR=${BENCH_HTTP_SECONDS:-15}
CONNS=${BENCH_HTTP_CONNECTIONS:-32}
WRK_THREADS=${BENCH_HTTP_THREADS:-2}
# "febrl": the population's kind, so that a registry made by an older generator is not reused.
OUT=build/bench/http-febrl-$N
command -v wrk >/dev/null || scripts/deps.sh --bench
mkdir -p "$OUT"

if [ ! -f "$OUT/loaded" ]; then
  echo "bench-http: making a registry of $N people (once; kept in $OUT/data)"
  rm -rf "$OUT/data"
  "$BIN" bench population --size "$N" --out "$OUT/patients.ndjson" --creates "$OUT/create.ndjson" \
    --probes "$OUT/match.ndjson"
  start=$(date +%s)
  "$BIN" import "$OUT/patients.ndjson" --data "$OUT/data" > "$OUT/import.json"
  echo "bench-http: imported in $(( $(date +%s) - start )) s"
  touch "$OUT/loaded"
fi

SERVER_THREADS=${BENCH_HTTP_SERVER_THREADS:-0}
cat > "$OUT/bench.json" <<JSON
{"http": {"rate_limit_per_s": 0, "threads": $SERVER_THREADS, "max_connections_per_ip": 0}, "log_level": "warn"}
JSON

server_pid=""
stop_server() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; server_pid=""; }
trap stop_server EXIT

start_server() {
  rm -rf "$OUT/run" "$OUT/port" "$OUT/token"
  cp -a "$OUT/data" "$OUT/run"
  # The copy has the token made by an earlier run, or none: make one for this run.
  "$BIN" token create --role admin --name "bench-$RANDOM$RANDOM" --data "$OUT/run" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' > "$OUT/token"
  "$BIN" serve --config "$OUT/bench.json" --data "$OUT/run" --listen 127.0.0.1:0 --port-file "$OUT/port" \
    2> "$OUT/server.log" &
  server_pid=$!
  for _ in $(seq 1 600); do [ -s "$OUT/port" ] && break; sleep 0.1; done
  PORT=$(cat "$OUT/port")
  TOKEN=$(cat "$OUT/token")
  export TOKEN
}

# wrk's summary -> "requests_per_s p50_ms p99_ms non2xx"
run_wrk() {
  local script=$1 name=$2 conns=${3:-$CONNS}
  local text
  text=$(wrk -t"$WRK_THREADS" -c"$conns" -d"${DUR}s" --latency -s "bench/http/$script" "http://127.0.0.1:$PORT")
  echo "$text" > "$OUT/wrk-$name.txt"
  python3 - "$OUT/wrk-$name.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(label):
    m = re.search(r"^\s*" + label + r"%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
    if not m: return float("nan")
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
errs = re.search(r"Socket errors:.*", t)
print("%.0f %.2f %.2f %s %s" % (rps, ms("50"), ms("99"), bad.group(1) if bad else "0", "errors" if errs else "ok"))
PY
}

start_server
echo "bench-http: $N people, server on 127.0.0.1:$PORT ($SERVER_THREADS threads, 0: default), $(nproc) cores," \
  "wrk -t$WRK_THREADS -c$CONNS -d${DUR}s," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
# Record ids to read: looked up by identifier, as a client would.
python3 - "$PORT" "$N" > "$OUT/ids.txt" <<'PY'
import json, random, sys, urllib.request, os
port, n = int(sys.argv[1]), int(sys.argv[2])
tok = os.environ["TOKEN"]
rng = random.Random(7)
for k in rng.sample(range(n), min(n, 2000)):
    req = urllib.request.Request("http://127.0.0.1:%d/fhir/Patient?identifier=urn:bench:clinic%%7C%d" % (port, k),
                                 headers={"Authorization": "Bearer " + tok})
    b = json.load(urllib.request.urlopen(req))
    for e in b.get("entry", []):
        print(e["resource"]["id"])
PY
export IDS="$OUT/ids.txt" CREATES="$OUT/create.ndjson" PROBES="$OUT/match.ndjson"
read -r read_rps read_p50 read_p99 read_bad read_err < <(run_wrk read.lua read)
read -r match_rps match_p50 match_p99 match_bad match_err < <(run_wrk match.lua match)
# Service time without queueing: as many connections as wrk threads.
read -r match2_rps match2_p50 match2_p99 match2_bad match2_err < <(run_wrk match.lua match-c"$WRK_THREADS" "$WRK_THREADS")
stop_server
start_server   # creates grow the registry: a fresh copy
read -r create_rps create_p50 create_p99 create_bad create_err < <(run_wrk create.lua create)
stop_server

printf "\n  %-34s %10s %9s %9s %8s\n" "scenario ($N people)" "req/s" "p50 ms" "p99 ms" "non-2xx"
printf "  %-34s %10s %9s %9s %8s\n" "GET /fhir/Patient/{id}" "$read_rps" "$read_p50" "$read_p99" "$read_bad"
printf "  %-34s %10s %9s %9s %8s\n" "POST /fhir/Patient (sync always)" "$create_rps" "$create_p50" "$create_p99" "$create_bad"
printf "  %-34s %10s %9s %9s %8s\n" "POST /fhir/Patient/\$match" "$match_rps" "$match_p50" "$match_p99" "$match_bad"
printf "  %-34s %10s %9s %9s %8s\n" "\$match, $WRK_THREADS connections" "$match2_rps" "$match2_p50" "$match2_p99" "$match2_bad"
printf '{"bench":"http","size":%s,"cores":%s,"connections":%s,"read_rps":%s,"read_p99_ms":%s,"create_rps":%s,"create_p99_ms":%s,"match_rps":%s,"match_p99_ms":%s,"match_low_conc_p99_ms":%s}\n' \
  "$N" "$(nproc)" "$CONNS" "$read_rps" "$read_p99" "$create_rps" "$create_p99" "$match_rps" "$match_p99" "$match2_p99"
