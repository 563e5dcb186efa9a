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
#   5. phase "sweep": the same load; after 2 s, POST /api/v1/sweep (admin)
#      deletes the old day while the load runs.
# Prints both phases (p50/p99/p999/max latency, errors), the sweep's own
# duration from the audit log and the events it deleted. The max latency
# of the sweep phase bounds the latency of every hit answered during the
# sweep, however short the sweep is against the phase.
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
for _ in $(seq 1 100); do
    admin "$URL/api/v1/audit" | python3 -c 'import json,sys; a=json.load(sys.stdin); sys.exit(0 if a["last_sweeps"] and a["last_sweeps"][0]["outcome"] != "running" else 1)' && break
    sleep 0.2
done
stop_server

write_config "$WORK/data" '[retention]
raw_days = 90
sweep_schedule = "0 0 0 1 1 *"'
start_server

echo "== phases of ${DURATION}s, wrk -t$THREADS -c$CONNECTIONS, ${SWEEP_DELAY_MS} ms between requests per connection (machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
run_phase quiet ingest "$CONNECTIONS" "$SWEEP_DELAY_MS"
(sleep 2 && admin -X POST -o "$WORK/sweep.json" -w '%{time_total}' "$URL/api/v1/sweep" >"$WORK/sweep.time") &
sweeper=$!
run_phase sweep ingest "$CONNECTIONS" "$SWEEP_DELAY_MS"
wait "$sweeper"

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
hwm=$(awk '/VmHWM/ { print $2, $3 }' "/proc/$SERVER_PID/status")
echo "server peak RSS (VmHWM): $hwm"
echo "server log of the sweep:"
grep -i "sweep" "$WORK/server.log" | sed 's/^/  /'
