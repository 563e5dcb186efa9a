#!/usr/bin/env bash
# Regenerates benches/data/user-agents.txt, the realistic user agents the
# load benchmarks send and the fuzz seeds start from: 400 browsers' user
# agents (bots left out: sparsam answers them but does not store them)
# taken from uap-core's test corpus (tests/test_ua.yaml, Apache-2.0).
# Usage: scripts/vendor-bench-uas.sh PATH/TO/uap-core/tests/test_ua.yaml
set -euo pipefail
src=${1:?usage: $0 PATH/TO/uap-core/tests/test_ua.yaml}
out=$(cd "$(dirname "$0")/.." && pwd)/benches/data/user-agents.txt
sed -n "s/^ *- user_agent_string: *['\"]\{0,1\}\(.*[^'\"]\)['\"]\{0,1\} *$/\1/p" "$src" |
    grep -viE 'bot|crawl|spider|slurp|fetch|http|curl|wget|python|java/' |
    grep -v '"' | LC_ALL=C sort -u | awk 'NR % 2 == 0' | head -n 400 >"$out"
echo "$out: $(wc -l <"$out") user agents"
