#!/usr/bin/env bash
# Sweep under load: how long the retention sweep of one big day partition
# takes, and what it does to ingest latency while it runs.
#
#   1. gen-data writes SWEEP_EVENTS (default 1 M) events into one UTC day
#      100 days ago, in a fresh store (site "load");
#   2. sparsam starts once with a 10-year retention, so its start-up sweep
#      (no sweep on record yet) deletes nothing, and stops;
#   3. sparsam starts with the default 90-day retention and a yearly sweep
#      schedule (no sweep missed: nothing runs by itself);
#   4. phase "quiet": the load.lua ingest mix paced by SWEEP_DELAY_MS per
#      connection, DURATION seconds;
#   5. phase "sweep": the same load, plus benches/probe.py (PROBE_THREADS
#      connections, default 4, sending pixel hits back to back and logging
#      each hit's start and latency); after 2 s, POST /api/v1/sweep (admin)
#      deletes the old day while the load runs.
# Prints both phases (p50/p99/p999/max latency, errors), the sweep's own
# duration from the audit log and the events it deleted, and the probe's
# latency for the hits in flight between the sweep's start and end (from
# its audit record) against the probe's other hits.
#
# Usage: benches/sweep_load.sh
#        SWEEP_EVENTS=1000000 DURATION=10 SWEEP_DELAY_MS=20 benches/sweep_load.sh
set -euo pipefail

DURATION=${DURATION:-10}
SWEEP_EVENTS=${SWEEP_EVENTS:-1000000}
SWEEP_DELAY_MS=${SWEEP_DELAY_MS:-20}
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"

install_wrk
build_release sparsam gen-data
pick_user_agents

echo "generating $SWEEP_EVENTS events in one day, 100 days ago..." >&2
"$BIN_DIR/gen-data" --data-dir "$WORK/data" --site load --events "$SWEEP_EVENTS" --days 1 --days-ago 100 >&2
sync "$WORK/data/sparsam.redb"

admin() { curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "$@"; }

write_config "$WORK/data" '[retention]
raw_days = 3650'
start_server
swept=
for _ in $(seq 1 100); do
    if admin "$URL/api/v1/audit" | python3 -c 'import json,sys; a=json.load(sys.stdin); sys.exit(0 if a["last_sweeps"] and a["last_sweeps"][0]["outcome"] != "running" else 1)'; then
        swept=1
        break
    fi
    sleep 0.2
done
if [ -z "$swept" ]; then
    echo "the start-up sweep did not finish within 20 s" >&2
    exit 1
fi
stop_server

write_config "$WORK/data" '[retention]
raw_days = 90
sweep_schedule = "0 0 0 1 1 *"'
# the writer logs how long each maintenance step held it (debug level)
SPARSAM_LOG=warn,sparsam=info,sparsam::store::writer=debug start_server

echo "== phases of ${DURATION}s, wrk -t$THREADS -c$CONNECTIONS, ${SWEEP_DELAY_MS} ms between requests per connection (machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
run_phase quiet ingest "$CONNECTIONS" "$SWEEP_DELAY_MS"
(sleep 2 && admin -X POST -o "$WORK/sweep.json" -w '%{time_total}' "$URL/api/v1/sweep" >"$WORK/sweep.time") &
sweeper=$!
python3 "$HERE/probe.py" "$ADDR" "$DURATION" "${PROBE_THREADS:-4}" "$WORK/probe.txt" &
prober=$!
run_phase sweep ingest "$CONNECTIONS" "$SWEEP_DELAY_MS"
wait "$sweeper" "$prober"

echo
python3 - "$WORK/sweep.json" "$(cat "$WORK/sweep.time")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"sweep: deleted {r['events_deleted']} events in partitions {r['partitions_dropped']}"
      f" and {r['strings_deleted']} strings; POST /api/v1/sweep answered in {float(sys.argv[2]) * 1000:.0f} ms")
PY
admin "$URL/api/v1/audit" | python3 -c '
import json, sys
s = json.load(sys.stdin)["last_sweeps"][0]
print(f"audit record: outcome {s['"'"'outcome'"'"']}, duration {s['"'"'duration_ms'"'"']} ms, events {s['"'"'events_deleted'"'"']}")'
# Probe hits that were in flight while the sweep ran (its audit record's
# start and end) against the probe's other hits of the same phase.
admin "$URL/api/v1/audit" | python3 -c '
import json, sys
s = json.load(sys.stdin)["last_sweeps"][0]
lo, hi = s["started_ms"], s["finished_ms"]
inside, outside = [], []
for line in open(sys.argv[1]):
    start, ms, status = line.split()
    start, ms = float(start), float(ms)
    (inside if start < hi and start + ms > lo else outside).append((ms, status))
def show(name, hits):
    if not hits:
        print(f"probe {name}: no hits")
        return
    ms = sorted(m for m, _ in hits)
    q = lambda p: ms[min(len(ms) - 1, int(p * len(ms)))]
    bad = sum(1 for _, st in hits if st != "200")
    print(f"probe {name}: {len(ms)} hits, p50 {q(0.5):.2f} ms, p99 {q(0.99):.2f} ms, max {ms[-1]:.2f} ms, non-200 {bad}")
show("during the sweep", inside)
show("rest of the phase", outside)
' "$WORK/probe.txt"
hwm=$(awk '/VmHWM/ { print $2, $3 }' "/proc/$SERVER_PID/status")
echo "server peak RSS (VmHWM): $hwm"
echo "server log of the sweep:"
grep -iE "sweep|store file rewritten" "$WORK/server.log" | sed 's/^/  /'
echo "store writer held by maintenance steps, by kind:"
sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" | python3 -c '
import re, sys
held = {}
for line in sys.stdin:
    m = re.search(r"store maintenance step kind=(\S+) held_us=(\d+)", line)
    if m:
        held.setdefault(m.group(1), []).append(int(m.group(2)) / 1000)
for kind, ms in sorted(held.items()):
    ms.sort()
    print(f"  {kind}: {len(ms)} steps, total {sum(ms):.0f} ms, p50 {ms[len(ms) // 2]:.1f} ms, max {ms[-1]:.1f} ms")
'
