#!/usr/bin/env bash
# Runs one fuzz target (one process, one core) for a time budget and prints the
# coverage at start and end, the executions and the corpus size:
#   bash scripts/fuzz-run.sh TARGET [SECONDS]   (default 600)
# Needs the nightly toolchain and cargo-fuzz (docs/fuzzing.md). New corpus
# inputs go to fuzz/corpus/TARGET; crashes to fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
target=$1
secs=${2:-600}
log=${FUZZ_LOG_DIR:-/tmp}/fuzz-$target.log
mkdir -p "fuzz/corpus/$target"
set +e
cargo +nightly fuzz run "$target" -- -max_total_time="$secs" \
  -timeout=10 -rss_limit_mb=4096 -max_len=4096 -print_final_stats=1 >"$log" 2>&1
rc=$?
set -e
start=$(grep -m1 'INITED' "$log" | grep -o 'cov: [0-9]*' || true)
end=$(grep -E '^#[0-9]+' "$log" | tail -1)
runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" || grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" || true)
files=$(find "fuzz/corpus/$target" -type f | wc -l)
echo "$target rc=$rc start[$start] end[$end] $runs corpus_files=$files log=$log"
