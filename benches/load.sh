#!/usr/bin/env bash
# Load test: builds the release binary, starts it on loopback with a fresh
# store, and drives it with wrk (benches/load.lua) in four phases:
#   1. baseline  GET /healthz at max rate (same binary, no store work)
#   2. ingest    pixel + beacon + Matomo bulk mix at max rate (every 2xx is committed)
#   3. half      the same mix paced to about half of phase 2's rate
#   4. ceiling   phase 2 again on a fresh server whose writer discards the
#                events (SPARSAM_BENCH_DISCARD_EVENTS=1): the pipeline's ceiling
# Prints requests/s, accepted (committed) events/s, p50/p99/p999 latency,
# errors, the ingest/baseline and ingest/ceiling ratios, the server's peak
# resident memory and, for the ingest phase, what the store writer did
# (batches, time in them, bytes written per batch and per event stored, from
# /proc/PID/io write_bytes) and how busy the CPUs were.
#
# Usage: benches/load.sh            (20 s per phase)
#        DURATION=10 CONNECTIONS=64 THREADS=2 benches/load.sh
# Absolute figures depend on the machine and its other load; compare the
# ratio, which is measured in one run against the same binary.
set -euo pipefail

DURATION=${DURATION:-20}
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"

install_wrk
build_release sparsam
pick_user_agents
mkdir -p "$WORK/data"
write_config "$WORK/data"
start_server

echo "== phases of ${DURATION}s, wrk -t$THREADS -c$CONNECTIONS (machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
run_phase baseline health "$CONNECTIONS" 0
before=$(stored_events)
counters_before=$(server_counters)
run_phase ingest ingest "$CONNECTIONS" 0
counters_after=$(server_counters)
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
stop_server

# Phase 4: the same mix at the maximum rate through the same binary with a
# writer that answers every batch at once and discards its events (bench
# only, honoured on loopback only): the ceiling of the pipeline itself.
mkdir -p "$WORK/ceiling"
write_config "$WORK/ceiling"
export SPARSAM_BENCH_DISCARD_EVENTS=1
start_server
unset SPARSAM_BENCH_DISCARD_EVENTS
discarded_before=$(discarded_events)
run_phase ceiling ingest "$CONNECTIONS" 0
ceiling_events=$(($(discarded_events) - discarded_before))
ingest_eps=$(echo "$ingest_events * 1000000 / $ingest_dur" | bc -l)
ceiling_eps=$(echo "$ceiling_events * 1000000 / $ceiling_dur" | bc -l)

echo
printf 'ingest events committed: %d in %.1f s = %.0f events/s (summary API, every 2xx committed)\n' \
    "$ingest_events" "$(echo "$ingest_dur / 1000000" | bc -l)" "$(echo "$ingest_events * 1000000 / $ingest_dur" | bc -l)"
printf 'ratio ingest/baseline: requests %.2f, events %.2f\n' \
    "$(echo "$ingest_rps / $baseline_rps" | bc -l)" "$(echo "$ingest_events * 1000000 / $ingest_dur / $baseline_rps" | bc -l)"
printf 'half-rate phase: target %.0f req/s (delay %d ms per connection), got %.0f req/s\n' \
    "$(echo "$ingest_rps / 2" | bc -l)" "$delay_ms" "$half_rps"
printf 'ceiling (events discarded after the pipeline): %.0f req/s = %.0f events/s\n' "$ceiling_rps" "$ceiling_eps"
printf 'ratio durable ingest/ceiling: requests %.2f, events %.2f\n' \
    "$(echo "$ingest_rps / $ceiling_rps" | bc -l)" "$(echo "$ingest_eps / $ceiling_eps" | bc -l)"
echo "events stored in total: $final"
echo "server peak RSS (VmHWM): $hwm"
explain_phase "$counters_before" "$counters_after" "$ingest_dur"
