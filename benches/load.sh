#!/usr/bin/env bash
# Load test: builds the release binary, starts it on loopback with a fresh
# store, and drives it with wrk (benches/load.lua) in three phases:
#   1. baseline  GET /healthz at max rate (same binary, no store work)
#   2. ingest    pixel + beacon mix at max rate (every 2xx is committed)
#   3. half      the same mix paced to about half of phase 2's rate
# Prints requests/s, accepted (committed) events/s, p50/p99/p999 latency,
# errors, the ingest/baseline ratio and the server's peak resident memory.
#
# Usage: benches/load.sh            (20 s per phase)
#        DURATION=10 CONNECTIONS=64 THREADS=2 benches/load.sh
# Absolute figures depend on the machine and its other load; compare the
# ratio, which is measured in one run against the same binary.
set -euo pipefail

DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CORPORA=${CORPORA:-$ROOT/../shared/corpora}
TOKEN=load-test-token-0000000000

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk; else sudo apt-get install -y wrk; fi
fi

echo "building release binary..." >&2
(cd "$ROOT" && cargo build --release --bin sparsam >&2)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release/sparsam

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A few hundred real user agents from the uap-core test corpus (bots left
# out: sparsam answers them but does not store them).
UA_FILE=$WORK/uas.txt
if [ -f "$CORPORA/uap-core/test_ua.yaml" ]; then
    sed -n "s/^ *- user_agent_string: *['\"]\{0,1\}\(.*[^'\"]\)['\"]\{0,1\} *$/\1/p" \
        "$CORPORA/uap-core/test_ua.yaml" |
        grep -viE 'bot|crawl|spider|slurp|fetch|http|curl|wget|python|java/' |
        grep -v '"' | sort -u | awk 'NR % 2 == 0' | head -n 400 >"$UA_FILE"
else
    echo "warning: $CORPORA/uap-core/test_ua.yaml not found; using one user agent" >&2
    : >"$UA_FILE"
fi
echo "user agents: $(wc -l <"$UA_FILE")" >&2

cat >"$WORK/sparsam.toml" <<EOF
[server]
listen = "127.0.0.1:0"
data_dir = "$WORK/data"
trusted_proxies = ["127.0.0.1/32"]
log_format = "text"
# One load generator on one address: measure throughput, not the limiter.
rate_limit_per_minute = 0

[store]
cache_mb = 64

[auth]
admin_token = "load-admin-token-000000000"

[[sites]]
id = "load"
hostnames = ["example.org", "*.example.org"]
timezone = "UTC"
tokens = ["$TOKEN"]
EOF
mkdir -p "$WORK/data"

SPARSAM_LOG=warn,sparsam=info "$BIN" --config "$WORK/sparsam.toml" serve 2>"$WORK/server.log" &
SERVER_PID=$!
ADDR=
for _ in $(seq 1 100); do
    ADDR=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$WORK/server.log" | head -n1)
    [ -n "$ADDR" ] && break
    sleep 0.1
done
if [ -z "$ADDR" ]; then
    echo "server did not start:" >&2
    cat "$WORK/server.log" >&2
    exit 1
fi
URL=http://$ADDR
echo "server pid $SERVER_PID on $URL" >&2

val() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }

run_phase() { # name mode connections delay_ms
    local name=$1 mode=$2 conns=$3 delay=$4 out=$WORK/$1.result
    LOAD_MODE=$mode LOAD_UA_FILE=$UA_FILE LOAD_DELAY_MS=$delay LOAD_RESULT=$out \
        wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --timeout 5s -s "$HERE/load.lua" "$URL" >"$WORK/$name.wrk" 2>&1
    local req dur errs
    req=$(val requests "$out")
    dur=$(val duration_us "$out")
    errs=$(($(val errors_connect "$out") + $(val errors_read "$out") + $(val errors_write "$out") + $(val errors_status "$out") + $(val errors_timeout "$out")))
    printf '%-9s %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  p999 %7.2f ms  errors %d (status %d, timeout %d)\n' \
        "$name" "$(echo "$req * 1000000 / $dur" | bc -l)" \
        "$(echo "$(val p50_us "$out") / 1000" | bc -l)" "$(echo "$(val p99_us "$out") / 1000" | bc -l)" \
        "$(echo "$(val p999_us "$out") / 1000" | bc -l)" "$errs" "$(val errors_status "$out")" "$(val errors_timeout "$out")"
    eval "${name}_rps=$(echo "$req * 1000000 / $dur" | bc -l)"
    eval "${name}_dur=$dur"
}

stored_events() {
    curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/v1/sites/load/summary?period=7d" |
        python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["pageviews"]+s["downloads"]+s["outbound"]+s["searches"])'
}

echo "== phases of ${DURATION}s, wrk -t$THREADS -c$CONNECTIONS (machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
run_phase baseline health "$CONNECTIONS" 0
before=$(stored_events)
run_phase ingest ingest "$CONNECTIONS" 0
after=$(stored_events)
ingest_events=$((after - before))
# Pace phase 3 to half of phase 2's rate: each connection waits
# delay = connections / (rate / 2) seconds between requests (closed loop,
# so a slow answer delays the next request of that connection).
half_conns=$CONNECTIONS
delay_ms=$(echo "scale=0; $half_conns * 1000 * 2 / $ingest_rps" | bc)
[ "$delay_ms" -lt 1 ] && delay_ms=1
run_phase half ingest "$half_conns" "$delay_ms"
final=$(stored_events)
hwm=$(awk '/VmHWM/ { print $2, $3 }' "/proc/$SERVER_PID/status")

echo
printf 'ingest events committed: %d in %.1f s = %.0f events/s (summary API, every 2xx committed)\n' \
    "$ingest_events" "$(echo "$ingest_dur / 1000000" | bc -l)" "$(echo "$ingest_events * 1000000 / $ingest_dur" | bc -l)"
printf 'ratio ingest/baseline: requests %.2f, events %.2f\n' \
    "$(echo "$ingest_rps / $baseline_rps" | bc -l)" "$(echo "$ingest_events * 1000000 / $ingest_dur / $baseline_rps" | bc -l)"
printf 'half-rate phase: target %.0f req/s (delay %d ms per connection), got %.0f req/s\n' \
    "$(echo "$ingest_rps / 2" | bc -l)" "$delay_ms" "$half_rps"
echo "events stored in total: $final"
echo "server peak RSS (VmHWM): $hwm"
