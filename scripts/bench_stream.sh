#!/usr/bin/env bash
# /api/v1/tracks/{id}/stream requests/s on PostgreSQL vs `pgbench -S` transactions/s at
# the same concurrency: how close the endpoint gets to the database's own limit.
# Needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres). Loopback only.
#   usage: scripts/bench_stream.sh [DURATION_S=10] [CONNECTIONS=16]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}; CONNS=${2:-16}
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 2; }
cargo build --release --quiet
DB=veza_bench_$$; PGB=veza_pgbench_$$
WORK=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres >/dev/null
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $PGB WITH (FORCE)" postgres >/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB" postgres
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $PGB" postgres
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" VEZA_STORAGE_DIR="$WORK/media" RUST_LOG=warn
export VEZA_DB_MAX_CONNECTIONS=$CONNS VEZA_MEDIA_SIGNING_KEY=bench-media-signing-key-0123456789abcdef
./target/release/veza seed-demo >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
VEZA_BIND=127.0.0.1:$PORT VEZA_WORKERS=2 ./target/release/veza serve >"$WORK/veza.log" 2>&1 &
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/api/v1/tracks/1/stream" -o /dev/null && break; sleep 0.1; done
OUT=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PORT/api/v1/tracks/1/stream")
if grep -q "Non-2xx" <<<"$OUT"; then echo "non-2xx answers:" >&2; echo "$OUT" >&2; exit 1; fi
V=$(awk '/Requests\/sec/ {print $2}' <<<"$OUT")
kill %1; wait 2>/dev/null || true
pgbench -h 127.0.0.1 -U postgres -i -s 1 -q "$PGB" >/dev/null 2>&1
P=$(pgbench -h 127.0.0.1 -U postgres -S -c "$CONNS" -j 2 -T "$DURATION" "$PGB" 2>/dev/null | awk '/^tps/ {print $3; exit}')
python3 - "$V" "$P" "$CONNS" <<'PY'
import sys
v, p, c = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
print(f"{c} connections: /stream {v:.0f} req/s, pgbench -S {p:.0f} tps, ratio stream/pgbench = {v/p:.2f}")
PY
