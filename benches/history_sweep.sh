#!/usr/bin/env bash
# What keeping roll-ups past raw_days costs the ClickHouse sweep, for
# docs/scale-out.md: EVENTS events over the last 90 days written by
# gen-data into an embedded store, copied into the test cluster of
# tests/common/clickhouse.rs (ZooKeeper, two shards, shard 1 replicated
# twice, Debian's ClickHouse 18.16) with `sparsam migrate --to clickhouse`;
# then a collector with retention.raw_days = RAW_DAYS sweeps it once. Per
# UTC day the sweep logs the time it took to replay and write the day's
# roll-ups (and count them back) and the time it took to drop the day's
# raw partition (and check it gone on every server); the figure is their
# ratio over the days of that one sweep, the drop being the baseline.
#
# Usage: benches/history_sweep.sh                   (300,000 events, raw_days 30)
#        EVENTS=1000000 RAW_DAYS=10 benches/history_sweep.sh
#        SPARSAM_BENCH_BIN_DIR=/some/release benches/history_sweep.sh
set -euo pipefail

DURATION=0
EVENTS=${EVENTS:-300000}
RAW_DAYS=${RAW_DAYS:-30}
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"

CLUSTER_FILE=$WORK/cluster-urls
HOST_PID=
COLLECTOR_PID=
history_cleanup() {
    [ -n "$COLLECTOR_PID" ] && kill -TERM "$COLLECTOR_PID" 2>/dev/null || true
    rm -f "$CLUSTER_FILE"
    [ -n "$HOST_PID" ] && wait "$HOST_PID" 2>/dev/null || true
    cleanup
}
trap history_cleanup EXIT

build_release sparsam gen-data

start_test_cluster
ch() { # sql: runs sql on the first server
    curl -sf --data-binary "$1" "${CH_URLS[0]}"
}

cluster_config() { # data_dir raw_days
    write_config "$1" "$(printf '[retention]\nvacuum_after_sweep = false\nraw_days = %s\nsweep_schedule = "0 0 0 1 1 *"\n' "$2")"
    python3 - "$WORK/sparsam.toml" "$(printf '"%s", ' "${CH_URLS[@]}")" <<'PY'
import sys
path, urls = sys.argv[1:]
text = open(path).read()
text = text.replace("[store]\n", "[store]\nbackend = \"clickhouse\"\n", 1)
head, sites = text.split("[[sites]]", 1)
head += f'[clickhouse]\nurls = [{urls.rstrip(", ")}]\ndatabase = "sparsam_history"\ncluster = "sparsam"\n\n'
open(path, "w").write(head + "[[sites]]" + sites)
PY
}

echo "== gen-data: $EVENTS events over the last 90 days (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$BIN_DIR/gen-data" --data-dir "$WORK/gen" --site load --events "$EVENTS" >"$WORK/gen.log" 2>&1 ||
    { tail -5 "$WORK/gen.log" >&2; exit 1; }
cluster_config "$WORK/gen" 90
"$BIN_DIR/sparsam" --config "$WORK/sparsam.toml" migrate --to clickhouse >"$WORK/migrate.log" 2>&1 ||
    { tail -5 "$WORK/migrate.log" >&2; exit 1; }
echo "copied: $(ch "SELECT count() FROM sparsam_history.events") events, $(ch "SELECT uniqExact(day) FROM sparsam_history.events") days"

# the collector sweeps at start (no sweep ran on this database yet)
mkdir -p "$WORK/c"
cluster_config "$WORK/c" "$RAW_DAYS"
echo "== sweep with raw_days = $RAW_DAYS (load $(cut -d' ' -f1-3 /proc/loadavg))"
SPARSAM_LOG=warn,sparsam=info "$BIN_DIR/sparsam" --config "$WORK/sparsam.toml" serve 2>"$WORK/c.log" &
COLLECTOR_PID=$!
for _ in $(seq 1 3000); do
    grep -q "retention sweep finished\|retention sweep failed" "$WORK/c.log" && break
    sleep 0.2
done
grep -q "retention sweep finished" "$WORK/c.log" || { tail -20 "$WORK/c.log" >&2; exit 1; }
kill -TERM "$COLLECTOR_PID"; wait "$COLLECTOR_PID" 2>/dev/null || true; COLLECTOR_PID=

# per day: elapsed_ms of the roll-up write and of the drop
sed 's/\x1b\[[0-9;]*m//g' "$WORK/c.log" | python3 -c '
import re, sys
keep, drop = {}, {}
for line in sys.stdin:
    day = re.search(r"\bday=(\d{4}-\d\d-\d\d)", line)
    ms = re.search(r"\belapsed_ms=(\d+)", line)
    if not (day and ms):
        continue
    if "roll-ups of the day kept" in line:
        keep[day.group(1)] = int(ms.group(1))
    elif "sweep: day partition dropped" in line:
        drop[day.group(1)] = int(ms.group(1))
days = sorted(set(keep) & set(drop))
if not days:
    sys.exit("no day both kept and dropped in the log")
k = sum(keep[d] for d in days)
d = sum(drop[d] for d in days)
print(f"days swept: {len(days)} (and the boundary day kept: {len(keep) - len(days)})")
print(f"roll-ups replayed, written, counted back: {k / len(days):.0f} ms per day")
print(f"raw partition dropped, checked gone:     {d / len(days):.0f} ms per day")
print(f"extra time for the roll-ups / drop alone: {k / d:.2f}")
'
echo "roll-up rows stored: $(ch "SELECT count() FROM sparsam_history.rollups")"
