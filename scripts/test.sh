#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the
# tests need (Chromium + ChromeDriver, Node packages for the protocol and
# browser tests, ClickHouse and ZooKeeper for the ClickHouse backend),
# checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v prlimit >/dev/null || need_apt+=(util-linux)   # disk-full test (tests/crash.rs)
command -v cc >/dev/null || need_apt+=(gcc)             # PCRE2 for the device rules with lookaround (pcre2-sys)
# ClickHouse backend tests (tests/clickhouse.rs): a cluster started by hand
command -v clickhouse-server >/dev/null || need_apt+=(clickhouse-server)
command -v clickhouse-client >/dev/null || need_apt+=(clickhouse-client)
[ -f /usr/share/java/zookeeper.jar ] || need_apt+=(zookeeper)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ -f tests/node/package.json ]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
cargo test --doc
