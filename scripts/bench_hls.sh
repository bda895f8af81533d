#!/usr/bin/env bash
# HLS origin segment throughput: veza (release, local storage) vs nginx serving the
# same files from the same disk, same concurrency, measured back to back with wrk.
# Prints requests/s for both and the ratio veza/nginx. Loopback only; bounded in time.
#   usage: scripts/bench_hls.sh [DURATION_S=10] [CONNECTIONS=32] [SEGMENT_KB=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}; CONNS=${2:-32}; SEG_KB=${3:-1024}
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --quiet
WORK=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
export DATABASE_URL="sqlite://$WORK/veza.db?mode=rwc" VEZA_STORAGE_DIR="$WORK/media" RUST_LOG=warn
./target/release/veza seed-demo >/dev/null
head -c $((SEG_KB * 1024)) /dev/urandom > "$WORK/media/hls/1/seg-bench.ts"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
VP=$(free_port); NP=$(free_port)
VEZA_BIND=127.0.0.1:$VP VEZA_WORKERS=2 ./target/release/veza serve >"$WORK/veza.log" 2>&1 &
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 2;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi; uwsgi_temp_path $WORK/nginx/uwsgi; scgi_temp_path $WORK/nginx/scgi;
  server {
    listen 127.0.0.1:$NP;
    location /hls/ { alias $WORK/media/hls/; add_header Cache-Control "public, max-age=86400, immutable"; }
  }
}
CONF
"$NGINX" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
for p in $VP $NP; do
  ok=""
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$p/hls/1/seg-bench.ts" -o /dev/null && ok=1 && break; sleep 0.1; done
  [ -n "$ok" ] || { echo "server on port $p does not serve the segment" >&2; exit 1; }
done
rps() {
  local out; out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" "$1")
  # Errors would make a server look fast: refuse to report them.
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers from $1:" >&2; echo "$out" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}
V=$(rps "http://127.0.0.1:$VP/hls/1/seg-bench.ts")
N=$(rps "http://127.0.0.1:$NP/hls/1/seg-bench.ts")
python3 - "$V" "$N" "$SEG_KB" "$CONNS" <<'PY'
import sys
v, n, kb, c = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"segment {kb} KiB, {c} connections: veza {v:.0f} req/s, nginx {n:.0f} req/s, ratio veza/nginx = {v/n:.2f}")
PY
