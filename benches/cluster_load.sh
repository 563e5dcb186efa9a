#!/usr/bin/env bash
# Scale-out figures for docs/scale-out.md and docs/performance.md, all
# measured in one run:
#   1. baseline  ingest into one collector on the embedded store (wrk with
#                benches/load.lua's mix for DURATION s): events stored per s
#   2. cluster   the same mix through two collectors at once (half the
#                connections each) into the test cluster of
#                tests/common/clickhouse.rs (ZooKeeper, two shards, shard 1
#                replicated twice, Debian's ClickHouse 18.16), started as
#                the tests start it; events confirmed by ClickHouse per s,
#                bytes on disk per event (system.parts of every server), and
#                where the time went: CPU of each collector (its batcher and
#                sender threads apart), of each ClickHouse server and of the
#                rest of the machine, spool writes and inserts (count, rows,
#                time each, from the collectors' metrics)
#   3. queries   QUERY_EVENTS events over the last 90 days written by
#                gen-data into an embedded store, copied into the cluster
#                with `sparsam migrate --to clickhouse` (timed), so both
#                backends hold the same events; the 90-day summary, a
#                filtered summary and the 90-day page breakdown timed on a
#                collector of each (the ClickHouse collector's first summary
#                after its start apart: nothing cached yet; then median of 5)
# Ratios are against the embedded store in the same run; absolute figures
# depend on the machine and what else runs on it (the load average is
# printed).
#
# A collector on ClickHouse acknowledges an event once its batch is in the
# fsynced spool, at the latest after clickhouse.flush_ms: a closed-loop
# load generator then gets at most connections / flush_ms requests per
# second through, so the cluster phase uses more connections and a shorter
# flush (CLUSTER_CONNECTIONS per collector, CLUSTER_FLUSH_MS).
#
# Usage: benches/cluster_load.sh          (20 s of load per phase, 1 M events queried)
#        DURATION=10 CONNECTIONS=32 CLUSTER_CONNECTIONS=256 CLUSTER_FLUSH_MS=100 QUERY_EVENTS=1000000 benches/cluster_load.sh
#        SPARSAM_BENCH_BIN_DIR=/some/release benches/cluster_load.sh   (another build's binaries, unbuilt)
#        QUERY_EVENTS=0 benches/cluster_load.sh                        (ingest phases only)
#        QUERY_EVENTS=10000000 REPORT_CACHE_MB=512 benches/cluster_load.sh  (10 M events, a cache that holds them)
set -euo pipefail

DURATION=${DURATION:-20}
CLUSTER_CONNECTIONS=${CLUSTER_CONNECTIONS:-256}
CLUSTER_FLUSH_MS=${CLUSTER_FLUSH_MS:-100}
QUERY_EVENTS=${QUERY_EVENTS:-1000000}
# the ClickHouse collectors' report cache (clickhouse.report_cache_mb):
# about 40 MiB per million events over 90 days holds every closed day
REPORT_CACHE_MB=${REPORT_CACHE_MB:-128}
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"

CLUSTER_FILE=$WORK/cluster-urls
HOST_PID=
COLLECTOR_PIDS=()
cluster_cleanup() {
    for p in "${COLLECTOR_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    rm -f "$CLUSTER_FILE"
    [ -n "$HOST_PID" ] && wait "$HOST_PID" 2>/dev/null || true
    cleanup
}
trap cluster_cleanup EXIT

install_wrk
build_release sparsam gen-data
pick_user_agents

ch() { # server-index sql: runs sql on one ClickHouse server
    curl -sf --data-binary "$2" "${CH_URLS[$1]}"
}

start_test_cluster

metric() { # url name
    curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "$1/metrics" | awk -v k="$2" '$1 == k { n = $2 } END { printf "%d\n", n }'
}

# ---- 1. baseline: one collector, embedded store
mkdir -p "$WORK/redb"
write_config "$WORK/redb"
start_server
echo "== phases of ${DURATION}s, wrk -t$THREADS -c$CONNECTIONS (machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
before=$(metric "$URL" sparsam_store_events_total)
run_phase baseline ingest "$CONNECTIONS" 0
after=$(metric "$URL" sparsam_store_events_total)
redb_events=$((after - before))
redb_eps=$(echo "$redb_events * 1000000 / $baseline_dur" | bc -l)
printf 'embedded store: %d events stored, %.0f events/s\n' "$redb_events" "$redb_eps"
stop_server
cp "$WORK/sparsam.toml" "$WORK/redb.toml"

# ---- 2. two collectors into the cluster
urls_toml() { # first-index
    local n=${#CH_URLS[@]} out="" i
    for ((i = 0; i < n; i++)); do out+="\"${CH_URLS[$(((i + $1) % n))]}\", "; done
    echo "[${out%, }]"
}
cluster_config() { # data_dir database first-url-index [flush_ms]
    write_config "$1" "$(printf '[retention]\nvacuum_after_sweep = false\n')"
    # [store] and [clickhouse] go before [[sites]]: rewrite the file
    python3 - "$WORK/sparsam.toml" "$2" "$(urls_toml "$3")" "${4:-1000}" "$REPORT_CACHE_MB" <<'PY'
import sys
path, db, urls, flush_ms, cache_mb = sys.argv[1:]
text = open(path).read()
text = text.replace("[store]\n", "[store]\nbackend = \"clickhouse\"\n", 1)
head, sites = text.split("[[sites]]", 1)
head += f'[clickhouse]\nurls = {urls}\ndatabase = "{db}"\ncluster = "sparsam"\nflush_ms = {flush_ms}\nreport_cache_mb = {cache_mb}\n\n'
open(path, "w").write(head + "[[sites]]" + sites)
PY
}
start_collector() { # config log -> sets C_URL, C_PID
    SPARSAM_LOG=warn,sparsam=info "$BIN_DIR/sparsam" --config "$1" serve 2>>"$2" &
    C_PID=$!
    COLLECTOR_PIDS+=("$C_PID")
    C_URL=
    for _ in $(seq 1 600); do
        C_URL=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$2" | head -n1)
        [ -n "$C_URL" ] && break
        sleep 0.1
    done
    [ -n "$C_URL" ] || { cat "$2" >&2; exit 1; }
    C_URL=http://$C_URL
}
for k in 1 2; do
    mkdir -p "$WORK/c$k"
    cluster_config "$WORK/c$k" sparsam_bench $((k - 1)) "$CLUSTER_FLUSH_MS"
    cp "$WORK/sparsam.toml" "$WORK/c$k.toml"
done
start_collector "$WORK/c1.toml" "$WORK/c1.log"; C1=$C_URL
start_collector "$WORK/c2.toml" "$WORK/c2.log"; C2=$C_URL
echo "collectors: $C1 $C2, wrk -t1 -c$CLUSTER_CONNECTIONS each, flush_ms $CLUSTER_FLUSH_MS (load $(cut -d' ' -f1-3 /proc/loadavg))"
half=$CLUSTER_CONNECTIONS
run_wrk() { # url name
    LOAD_MODE=ingest LOAD_UA_FILE=$UA_FILE LOAD_DELAY_MS=0 LOAD_RESULT=$WORK/$2.result \
        wrk -t1 -c"$half" -d"${DURATION}s" --timeout 5s -s "$HERE/load.lua" "$1" >"$WORK/$2.wrk" 2>&1
}
# where the time goes: CPU ticks of processes and threads, collector metrics
ticks() { awk '{ print $14 + $15 }' "$1" 2>/dev/null || echo 0; }
port_pid() { ss -ltnpH "sport = :$1" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1; }
CH_PIDS=()
for u in "${CH_URLS[@]}"; do
    port=${u##*:}
    CH_PIDS+=("$(port_pid "${port%/}")")
done
CPIDS=("${COLLECTOR_PIDS[@]}")
CURLS=("$C1" "$C2")
cluster_counters() {
    local i t batcher sender
    for i in 0 1; do
        batcher=0 sender=0
        for t in /proc/"${CPIDS[$i]}"/task/*; do
            case $(cat "$t/comm") in
            clickhouse-batc) batcher=$(ticks "$t/stat") ;;
            clickhouse-send) sender=$(ticks "$t/stat") ;;
            esac
        done
        printf 'c%d_ticks %s c%d_batcher %s c%d_sender %s ' "$i" "$(ticks "/proc/${CPIDS[$i]}/stat")" "$i" "$batcher" "$i" "$sender"
        curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "${CURLS[$i]}/metrics" | awk -v c="c$i" '
            /^sparsam_clickhouse_spool_seconds_sum / { printf "%s_spool_s %s ", c, $2 }
            /^sparsam_clickhouse_spool_seconds_count / { printf "%s_spools %s ", c, $2 }
            /^sparsam_clickhouse_spooled_events_total / { printf "%s_spooled %s ", c, $2 }
            /^sparsam_clickhouse_insert_seconds_sum / { printf "%s_insert_s %s ", c, $2 }
            /^sparsam_clickhouse_insert_seconds_count / { printf "%s_inserts %s ", c, $2 }
            /^sparsam_clickhouse_rows_inserted_total / { printf "%s_rows %s ", c, $2 }'
    done
    for i in "${!CH_PIDS[@]}"; do printf 'ch%d_ticks %s ' "$i" "$(ticks "/proc/${CH_PIDS[$i]}/stat")"; done
    awk '/^cpu / { printf "busy_ticks %d total_ticks %d\n", $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat
}
explain_cluster() { # before after seconds servers
    python3 - "$1" "$2" "$3" "$4" "$(getconf CLK_TCK)" <<'PY'
import sys
def parse(line):
    it = line.split()
    return {k: float(v) for k, v in zip(it[::2], it[1::2])}
a, b = parse(sys.argv[1]), parse(sys.argv[2])
d = {k: b.get(k, 0) - a.get(k, 0) for k in b}
secs, servers, hz = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
core = lambda ticks: 100 * ticks / hz / secs
known = 0
for c in ("c0", "c1"):
    spools, inserts = max(d.get(c + "_spools", 0), 1), max(d.get(c + "_inserts", 0), 1)
    print(f"  collector {c[1]}: CPU {core(d[c + '_ticks']):.0f} % of a core (batcher {core(d[c + '_batcher']):.0f} %, "
          f"sender {core(d[c + '_sender']):.0f} %); {d.get(c + '_spools', 0):.0f} spool writes of "
          f"{d.get(c + '_spooled', 0) / spools:.0f} events, {1000 * d.get(c + '_spool_s', 0) / spools:.1f} ms each; "
          f"{d.get(c + '_inserts', 0):.0f} inserts of {d.get(c + '_rows', 0) / inserts:.0f} rows, "
          f"{1000 * d.get(c + '_insert_s', 0) / inserts:.0f} ms each, sender inserting "
          f"{100 * d.get(c + '_insert_s', 0) / secs:.0f} % of the time")
    known += d[c + "_ticks"]
ch = 0
for i in range(servers):
    ch += d.get(f"ch{i}_ticks", 0)
print(f"  ClickHouse servers: CPU " + ", ".join(f"{core(d.get(f'ch{i}_ticks', 0)):.0f} %" for i in range(servers)) +
      f" of a core (together {core(ch):.0f} %)")
busy = d["busy_ticks"] / max(d["total_ticks"], 1)
cores = d["total_ticks"] / hz / secs
print(f"  machine: {100 * busy:.0f} % busy ({cores:.1f} cores); the rest (wrk, ZooKeeper, others): "
      f"{100 * d['busy_ticks'] / hz / secs - core(known + ch):.0f} % of a core")
PY
}
cluster_before=$(cluster_counters)
started=$(date +%s.%N)
run_wrk "$C1" c1 &
w1=$!
run_wrk "$C2" c2 &
w2=$!
wait "$w1" "$w2"
load_end=$(date +%s.%N)
# every acknowledged event is spooled; wait until ClickHouse confirmed all
for _ in $(seq 1 1200); do
    waiting=$(($(metric "$C1" sparsam_clickhouse_spool_batches) + $(metric "$C2" sparsam_clickhouse_spool_batches)))
    [ "$waiting" = 0 ] && break
    sleep 0.25
done
drained=$(date +%s.%N)
cluster_after=$(cluster_counters)
ch_events=$(ch 0 "SELECT count() FROM sparsam_bench.events")
reqs=$(($(val requests "$WORK/c1.result") + $(val requests "$WORK/c2.result")))
errs=$(($(val errors_status "$WORK/c1.result") + $(val errors_status "$WORK/c2.result")))
ch_eps=$(echo "$ch_events / ($drained - $started)" | bc -l)
printf 'cluster, two collectors: %d requests (%d non-2xx), %d events in ClickHouse, %.0f events/s until all confirmed (spool drained %.1f s after the load); ratio to the embedded store %.2f\n' \
    "$reqs" "$errs" "$ch_events" "$ch_eps" "$(echo "$drained - $load_end" | bc -l)" "$(echo "$ch_eps / $redb_eps" | bc -l)"
for k in 1 2; do
    printf '  wrk on collector %d: latency p50 %.0f ms, p99 %.0f ms\n' "$k" \
        "$(echo "$(val p50_us "$WORK/c$k.result") / 1000" | bc -l)" "$(echo "$(val p99_us "$WORK/c$k.result") / 1000" | bc -l)"
done
explain_cluster "$cluster_before" "$cluster_after" "$(echo "$drained - $started" | bc -l)" "${#CH_PIDS[@]}"
# bytes on disk per event: active parts of every server (replicas included)
disk_per_event() { # database events
    local total=0 i line rows bytes raw
    for i in "${!CH_URLS[@]}"; do
        ch "$i" "OPTIMIZE TABLE $1.events_local FINAL" >/dev/null 2>&1 || true
    done
    sleep 2
    for i in "${!CH_URLS[@]}"; do
        line=$(ch "$i" "SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts WHERE database = '$1' AND table = 'events_local' AND active FORMAT TabSeparated")
        read -r rows bytes raw <<<"$line"
        printf '  server %d: %d rows, %d bytes on disk (%.1f bytes/row; uncompressed %.1f)\n' "$i" "$rows" "$bytes" \
            "$(echo "$bytes / ($rows + ($rows == 0))" | bc -l)" "$(echo "$raw / ($rows + ($rows == 0))" | bc -l)"
        total=$((total + bytes))
    done
    printf '  %s: %.1f bytes on disk per event stored (all replicas)\n' "$1" "$(echo "$total / $2" | bc -l)"
}
disk_per_event sparsam_bench "$ch_events"
redb_file_bytes=$(du -sb "$WORK/redb" | cut -f1)
printf 'embedded store directory: %d bytes, %.1f bytes per event\n' "$redb_file_bytes" "$(echo "$redb_file_bytes / $redb_events" | bc -l)"
for p in "${COLLECTOR_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
COLLECTOR_PIDS=()

# ---- 3. the same events on both backends: queries (QUERY_EVENTS=0: none)
if [ "$QUERY_EVENTS" = 0 ]; then
    echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    exit 0
fi
echo "== gen-data: $QUERY_EVENTS events over the last 90 days (load $(cut -d' ' -f1-3 /proc/loadavg))"
gen_start=$(date +%s.%N)
"$BIN_DIR/gen-data" --data-dir "$WORK/gen" --site load --events "$QUERY_EVENTS" >"$WORK/gen.log" 2>&1 ||
    { tail -5 "$WORK/gen.log" >&2; exit 1; }
printf 'gen-data: %d events in %.1f s\n' "$QUERY_EVENTS" "$(echo "$(date +%s.%N) - $gen_start" | bc -l)"
write_config "$WORK/gen"
cp "$WORK/sparsam.toml" "$WORK/gen.toml"
cluster_config "$WORK/gen" sparsam_copy 0
cp "$WORK/sparsam.toml" "$WORK/copy.toml"
migrate_start=$(date +%s.%N)
"$BIN_DIR/sparsam" --config "$WORK/copy.toml" migrate --to clickhouse >"$WORK/migrate.log" 2>&1 ||
    { tail -5 "$WORK/migrate.log" >&2; exit 1; }
copied=$(ch 0 "SELECT count() FROM sparsam_copy.events")
migrate_s=$(echo "$(date +%s.%N) - $migrate_start" | bc -l)
printf 'migrate --to clickhouse: %d events in %.1f s (%.0f events/s)\n' "$copied" "$migrate_s" "$(echo "$copied / $migrate_s" | bc -l)"
disk_per_event sparsam_copy "$copied"
start_collector "$WORK/gen.toml" "$WORK/q-redb.log"; QR=$C_URL
# the ClickHouse collector gets a data directory of its own (spool, salt)
mkdir -p "$WORK/qch"
cluster_config "$WORK/qch" sparsam_copy 0
cp "$WORK/sparsam.toml" "$WORK/qch.toml"
start_collector "$WORK/qch.toml" "$WORK/q-ch.log"; QC=$C_URL
once() { # url path: seconds of one request
    curl -sf -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $TOKEN" "$1$2"
}
timed() { # url path: median seconds of 5 (after one warm-up)
    local t=()
    curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "$1$2"
    for _ in 1 2 3 4 5; do
        t+=("$(once "$1" "$2")")
    done
    printf '%s\n' "${t[@]}" | sort -n | sed -n 3p
}
answer() { # url path: the JSON answer without its time
    curl -sf -H "Authorization: Bearer $TOKEN" "$1$2" | python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("as_of",None); print(json.dumps(d,sort_keys=True))'
}
echo "queries on $copied events (load $(cut -d' ' -f1-3 /proc/loadavg)):"
first=/api/v1/sites/load/summary?period=90d
tc_first=$(once "$QC" "$first")
tr_first=$(once "$QR" "$first")
printf '  %-55s embedded %.4f s  ClickHouse %.4f s  ratio %.0f\n' "first summary?period=90d after start" "$tr_first" "$tc_first" "$(echo "$tc_first / $tr_first" | bc -l)"
for q in "summary?period=90d" "summary?period=90d&filter=device_type%3D%3Dsmartphone" "breakdown/page?period=90d&limit=10"; do
    path="/api/v1/sites/load/$q"
    a=$(answer "$QR" "$path")
    b=$(answer "$QC" "$path")
    same=$([ "$a" = "$b" ] && echo "same answer" || echo "ANSWERS DIFFER")
    tr=$(timed "$QR" "$path")
    tc=$(timed "$QC" "$path")
    printf '  %-55s embedded %.4f s  ClickHouse %.4f s  ratio %.0f  (%s)\n' "$q" "$tr" "$tc" "$(echo "$tc / $tr" | bc -l)" "$same"
done
curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "$QC/metrics" | awk '
    /^sparsam_clickhouse_report_cache_(days|bytes|hits_total|misses_total) / { printf "  %s %s\n", $1, $2 }'
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
