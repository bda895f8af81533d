#!/usr/bin/env bash
# The test command: set up what the tests need, then run every test (unit,
# integration against real PostgreSQL/SQLite/nginx/S3/Prometheus, promtool rule tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# Benchmarks first, in criterion's test mode (each runs once: they must still work),
# then every test target.
cargo test --locked --benches
cargo test --locked --doc
cargo test --locked --lib --bins --tests
# The benchmark script end to end, in its smoke mode (debug build, short runs, every
# figure must be produced; no target is judged: timing is not a test).
scripts/bench.sh --quick
