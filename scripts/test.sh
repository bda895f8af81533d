#!/usr/bin/env bash
# The test command: set up what the tests need, then run every test (unit,
# integration against real PostgreSQL/SQLite/nginx/S3/Prometheus, promtool rule tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo test --locked --all-targets
