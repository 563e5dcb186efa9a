# Shared by benches/load.sh and benches/sweep_load.sh (sourced, not run):
# a scratch directory removed on exit (with the server stopped), wrk
# installed if missing, release builds, realistic user agents, sparsam on
# loopback, and one wrk phase with benches/load.lua.
# The sourcing script sets DURATION; CONNECTIONS and THREADS default here.

CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TOKEN=load-test-token-0000000000
ADMIN_TOKEN=load-admin-token-000000000
SERVER_PID=

WORK=$(mktemp -d)
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

install_wrk() {
    command -v wrk >/dev/null && return
    echo "installing wrk" >&2
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -qq wrk >/dev/null 2>&1 ||
        { $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null; }
}

build_release() { # binaries...
    # SPARSAM_BENCH_BIN_DIR: use the binaries there as they are (another
    # build's, for a before/after comparison in one session)
    if [ -n "${SPARSAM_BENCH_BIN_DIR:-}" ]; then
        BIN_DIR=$SPARSAM_BENCH_BIN_DIR
        echo "using the binaries in $BIN_DIR: $*" >&2
        return
    fi
    echo "building release binaries: $*" >&2
    local bins=()
    for b in "$@"; do bins+=(--bin "$b"); done
    (cd "$ROOT" && cargo build --release "${bins[@]}" >&2)
    BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
}

# A few hundred real user agents, vendored in benches/data (see its
# README for the source and licence).
pick_user_agents() {
    UA_FILE=$ROOT/benches/data/user-agents.txt
    echo "user agents: $(wc -l <"$UA_FILE")" >&2
}

write_config() { # data_dir [extra toml appended]
    cat >"$WORK/sparsam.toml" <<CONF
[server]
listen = "127.0.0.1:0"
data_dir = "$1"
trusted_proxies = ["127.0.0.1/32"]
log_format = "text"
# One load generator on one address: measure throughput, not the limiters.
rate_limit_per_minute = 0
rate_limit_events_per_minute = 0
rate_limit_bytes_per_minute = 0

[store]
cache_mb = 64
max_new_strings_per_site_day = 100000000
max_events_per_site_day = 10000000000

[auth]
admin_token = "$ADMIN_TOKEN"

[[sites]]
id = "load"
matomo_id = 1
hostnames = ["example.org", "*.example.org"]
timezone = "UTC"
tokens = ["$TOKEN"]
${2:-}
CONF
}

start_server() {
    : >"$WORK/server.log"
    SPARSAM_LOG=${SPARSAM_LOG:-warn,sparsam=info} "$BIN_DIR/sparsam" --config "$WORK/sparsam.toml" serve 2>>"$WORK/server.log" &
    SERVER_PID=$!
    ADDR=
    for _ in $(seq 1 300); do
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
}

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}

val() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }

run_phase() { # name mode connections delay_ms
    local name=$1 mode=$2 conns=$3 delay=$4 out=$WORK/$1.result
    LOAD_MODE=$mode LOAD_UA_FILE=$UA_FILE LOAD_DELAY_MS=$delay LOAD_RESULT=$out \
        wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --timeout 5s -s "$HERE/load.lua" "$URL" >"$WORK/$name.wrk" 2>&1
    local req dur errs
    req=$(val requests "$out")
    dur=$(val duration_us "$out")
    errs=$(($(val errors_connect "$out") + $(val errors_read "$out") + $(val errors_write "$out") + $(val errors_status "$out") + $(val errors_timeout "$out")))
    printf '%-9s %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  p999 %7.2f ms  max %7.2f ms  errors %d (status %d, timeout %d)\n' \
        "$name" "$(echo "$req * 1000000 / $dur" | bc -l)" \
        "$(echo "$(val p50_us "$out") / 1000" | bc -l)" "$(echo "$(val p99_us "$out") / 1000" | bc -l)" \
        "$(echo "$(val p999_us "$out") / 1000" | bc -l)" "$(echo "$(val max_us "$out") / 1000" | bc -l)" \
        "$errs" "$(val errors_status "$out")" "$(val errors_timeout "$out")"
    eval "${name}_rps=$(echo "$req * 1000000 / $dur" | bc -l)"
    eval "${name}_dur=$dur"
}

# Counters for explaining a phase: store batches, events and time in
# batches (from /metrics), bytes the server wrote (/proc/PID/io), CPU ticks
# of the store writer thread and of the whole server, busy and total ticks
# of the machine. One line of `key value` pairs.
server_counters() {
    local writer=0 t
    for t in /proc/"$SERVER_PID"/task/*; do
        [ "$(cat "$t/comm")" = sparsam-store-w ] && writer=$(awk '{ print $14 + $15 }' "$t/stat")
    done
    curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/metrics" | awk '
        /^sparsam_store_batches_total / { printf "batches %s ", $2 }
        /^sparsam_store_events_total / { printf "events %s ", $2 }
        /^sparsam_store_commit_seconds_sum / { printf "batch_s %s ", $2 }'
    printf 'write_bytes %s writer_ticks %s server_ticks %s ' \
        "$(awk '/^write_bytes/ { print $2 }' "/proc/$SERVER_PID/io")" "$writer" \
        "$(awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat")"
    awk '/^cpu / { printf "busy_ticks %d total_ticks %d\n", $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat
}

# Prints what the store writer did between two server_counters lines.
explain_phase() { # before after duration_us
    python3 - "$1" "$2" "$3" "$(getconf CLK_TCK)" <<'PY'
import sys
def parse(line):
    it = line.split()
    return {k: float(v) for k, v in zip(it[::2], it[1::2])}
a, b = parse(sys.argv[1]), parse(sys.argv[2])
d = {k: b.get(k, 0) - a.get(k, 0) for k in b}
secs, hz = float(sys.argv[3]) / 1e6, float(sys.argv[4])
n = max(d["batches"], 1)
print(f"store writer: {d['batches']:.0f} batches of {d['events'] / n:.1f} events, "
      f"{d['batch_s'] * 1000 / n:.2f} ms each, in batches {100 * d['batch_s'] / secs:.0f} % of the time, "
      f"on CPU {100 * d['writer_ticks'] / hz / secs:.0f} %; "
      f"{d['write_bytes'] / n / 1024:.0f} KiB written per batch, "
      f"{d['write_bytes'] / max(d['events'], 1):.0f} bytes written per event stored")
print(f"CPU: server {100 * d['server_ticks'] / hz / secs:.0f} % of one core; "
      f"machine {100 * d['busy_ticks'] / max(d['total_ticks'], 1):.0f} % busy (all processes)")
PY
}

stored_events() {
    curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/v1/sites/load/summary?period=7d" |
        python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["pageviews"]+s["downloads"]+s["outbound"]+s["searches"])'
}

# Events the writer discarded in the bench-only discarding mode (/metrics).
discarded_events() {
    curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/metrics" |
        awk '/^sparsam_store_discarded_events_total / { n = $2 } END { printf "%d\n", n }'
}

# Starts the ClickHouse + ZooKeeper test cluster of tests/clickhouse.rs
# (bench_cluster_host) in the background; it runs until $CLUSTER_FILE is
# removed. Sets HOST_PID and CH_URLS (the servers' HTTP addresses).
start_test_cluster() {
    echo "== starting the test cluster (tests/clickhouse.rs bench_cluster_host)" >&2
    (cd "$ROOT" && SPARSAM_BENCH_CLUSTER_FILE=$CLUSTER_FILE \
        cargo test -q --test clickhouse -- --ignored --exact bench_cluster_host >"$WORK/cluster.log" 2>&1) &
    HOST_PID=$!
    for _ in $(seq 1 600); do [ -f "$CLUSTER_FILE" ] && break; sleep 0.5; done
    [ -f "$CLUSTER_FILE" ] || { cat "$WORK/cluster.log" >&2; exit 1; }
    mapfile -t CH_URLS <"$CLUSTER_FILE"
    echo "cluster: ${CH_URLS[*]}" >&2
}
