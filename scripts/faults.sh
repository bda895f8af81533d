#!/usr/bin/env bash
# The full-length load and fault scenarios (docs/RELIABILITY.md, "Load and faults"): the
# tests of tests/api/faults/ with VEZA_FAULTS_FULL=1 — a 60 s soak at 256 connections
# (in-process load generator, real binary on PostgreSQL), SIGTERM under load, PostgreSQL
# backends terminated, PostgreSQL restarted (a server of the test's own) and a partition to PostgreSQL, S3 stalled and killed, CDN key file
# faults and a CloudFront signing flood, slow clients and the connection cap — one at a
# time, release build. The test suite runs the same scenarios shortened.
#   usage: scripts/faults.sh [REPORT=target/faults-report.txt]
# Every scenario's figures (one `FIGURES <name> <json>` line each) go to REPORT; the whole
# output to REPORT.log. Needs what scripts/setup.sh installs (PostgreSQL, s3s-fs).
set -euo pipefail
cd "$(dirname "$0")/.."
REPORT=${1:-target/faults-report.txt}
mkdir -p "$(dirname "$REPORT")"
: >"$REPORT"
export PATH="$HOME/.cargo/bin:$PATH"
export VEZA_FAULTS_FULL=1 VEZA_FAULTS_REPORT="$(realpath "$REPORT")"
cargo test --release --test api faults:: -- --test-threads 1 --nocapture >"$REPORT.log" 2>&1 && status=0 || status=$?
grep -E '^(test |FIGURES)|panicked|test result' "$REPORT.log" || true
exit "$status"
