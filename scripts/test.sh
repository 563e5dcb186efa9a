#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what the
# tests need (Chromium + ChromeDriver, Node packages for the protocol and
# browser tests, ClickHouse and ZooKeeper for the ClickHouse backend, chDB
# for the same backend on a current ClickHouse engine),
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
# chDB (a current ClickHouse engine, below) goes into a virtual environment
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# A current ClickHouse engine for tests/clickhouse.rs: chDB from PyPI (about
# 900 MB, some 45 s to install), kept under the user's cache directory and
# reused when complete (tests/common/chdb.rs looks there too).
CHDB_VERSION=4.4.0   # keep in step with tests/common/chdb.rs
CHDB_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/sparsam-test/chdb-$CHDB_VERSION"
if [ ! -f "$CHDB_DIR/.complete" ]; then
  echo "installing chdb $CHDB_VERSION into $CHDB_DIR"
  rm -rf "$CHDB_DIR"
  python3 -m venv "$CHDB_DIR"
  "$CHDB_DIR/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check "chdb==$CHDB_VERSION"
  "$CHDB_DIR/bin/python" -c 'import chdb'
  touch "$CHDB_DIR/.complete"
fi
export SPARSAM_CHDB_PYTHON="$CHDB_DIR/bin/python"

if [ -f tests/node/package.json ]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
cargo test --doc
