#!/usr/bin/env bash
# Every performance ratio of docs/PERFORMANCE.md in one run, each against a baseline
# measured in the same run (these machines are noisy: ratios hold, absolute times move).
#
#   scripts/bench.sh [--quick] [SECTION...]
#     full run: release build, criterion, 8 s wrk runs (~10 min)
#     --quick: smoke: debug build, tiny criterion and 1 s wrk runs; checks that every
#              figure is produced and every answer was 2xx, enforces no target (part of
#              the README's test command)
#     SECTION: only these of micro, stream, takedown, hls, accounts (default: all)
#
# Prints one table: name, measured value, baseline, ratio, target, verdict. Also writes
# it as TSV to $BENCH_OUT (default target/bench/results.tsv).
#
# Needs: PostgreSQL on 127.0.0.1:5432 (trust, user postgres; override with BENCH_PG),
# wrk, pgbench, nginx, curl, python3. Environment: BENCH_SECONDS (wrk duration, full
# mode, default 8), BENCH_CONNECTIONS (default 32), BENCH_TAKEDOWNS (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

QUICK=0
SECTIONS=()
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        micro|stream|takedown|hls|accounts) SECTIONS+=("$arg") ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "usage: scripts/bench.sh [--quick] [micro|stream|takedown|hls|accounts]..." >&2; exit 2 ;;
    esac
done
[ ${#SECTIONS[@]} -gt 0 ] || SECTIONS=(micro stream takedown hls accounts)
want() { [[ " ${SECTIONS[*]} " == *" $1 "* ]]; }

PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
CONNS="${BENCH_CONNECTIONS:-32}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="${BENCH_OUT:-$TARGET_DIR/bench/results.tsv}"
if [ "$QUICK" = 1 ]; then
    PROFILE=dev; BIN="$TARGET_DIR/debug/veza"; DUR=1; TAKEDOWNS=5
    CRIT=(--warm-up-time 0.05 --measurement-time 0.1 --sample-size 10)
else
    PROFILE=bench; BIN="$TARGET_DIR/release/veza"; DUR="${BENCH_SECONDS:-8}"
    TAKEDOWNS="${BENCH_TAKEDOWNS:-100}"
    CRIT=(--warm-up-time 1 --measurement-time 3)
fi

need() { command -v "$1" >/dev/null || { echo "bench.sh: $1 is required ($2)" >&2; exit 2; }; }
need wrk "apt-get install wrk"
need curl "apt-get install curl"
need python3 "apt-get install python3"
need psql "apt-get install postgresql-client"
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1 || true)
[ -n "$PGBENCH" ] || { echo "bench.sh: pgbench is required (apt-get install postgresql-contrib or postgresql)" >&2; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "bench.sh: nginx is required (apt-get install nginx-light)" >&2; exit 2; }
psql "$PG/postgres" -qAtc 'SELECT 1' >/dev/null || { echo "bench.sh: PostgreSQL at $PG does not answer" >&2; exit 2; }

WORK=$(mktemp -d)
DBS=()
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for d in "${DBS[@]}"; do psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$(dirname "$OUT")"
: >"$WORK/results.tsv"
# record NAME VALUE BASELINE_NAME BASELINE TARGET_RATIO(or -) UNIT
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$WORK/results.tsv"; }

echo "== building ($PROFILE)" >&2
if [ "$PROFILE" = dev ]; then cargo build --quiet --bin veza; else cargo build --quiet --release --bin veza; fi

# ---------------------------------------------------------------- micro-benchmarks
if want micro; then
echo "== criterion benches" >&2
crit_dir="$TARGET_DIR/criterion"
rm -rf "$crit_dir"
bench() { cargo bench --quiet --profile "$PROFILE" --bench "$1" -- "${CRIT[@]}" "$2" >"$WORK/bench-$1.log" 2>&1 \
    || { cat "$WORK/bench-$1.log" >&2; exit 1; }; }
bench db_observability '^(pool_sample|statement)/'
bench n1_record '^record/wrapper_path'
bench cdn_signing '^cdn_sign/'
bench hot_path '.'
ns() { # mean time in ns of criterion benchmark GROUP/NAME
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mean"]["point_estimate"])' \
        "$crit_dir/$1/new/estimates.json"
}
record pool_sample_ns "$(ns pool_sample/sample_and_publish)" 8_atomic_stores "$(ns pool_sample/baseline_8_atomic_stores)" - ns
record statement_counting_on_ns "$(ns statement/wrapper_counting_on)" raw_connection "$(ns statement/raw_connection)" - ns
record statement_record_path_ns "$(ns record/wrapper_path_shape_of_then_record_shape)" raw_connection "$(ns statement/raw_connection)" - ns
floor=$(ns cdn_sign/hmac_sha256_floor)
for p in bunny_v2 cloudflare akamai nginx cloudfront_sha1 cloudfront_sha256; do
    record "sign_${p}_ns" "$(ns "cdn_sign/$p")" hmac_floor "$floor" - ns
done
record cloudfront_reused_ns "$(ns signature_reuse/cloudfront_reused)" cloudfront_fresh_rsa "$(ns signature_reuse/cloudfront_fresh_rsa)" - ns
record metrics_render_200_routes_ns "$(ns metrics_render/routes_200)" routes_1 "$(ns metrics_render/routes_1)" - ns
record query_stats_intake_ns "$(ns query_stats_intake/query_stats)" noop_actor "$(ns query_stats_intake/noop_actor)" - ns
record catalogue_hit_ns "$(ns catalogue_cache/hit_with_metrics)" raw_moka_get "$(ns catalogue_cache/raw_moka_get)" - ns
record catalogue_hit_access_ns "$(ns catalogue_cache/hit_and_access_decision)" catalogue_hit "$(ns catalogue_cache/hit_with_metrics)" - ns
fi

# ---------------------------------------------------------------- load: /stream
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
newdb() { local d="veza_bench_$$_$1"; PGOPTIONS="-c client_min_messages=warning" psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null; psql "$PG/postgres" -qc "CREATE DATABASE $d" >/dev/null; DBS+=("$d"); echo "$d"; }
MEDIA="$WORK/media"
export VEZA_STORAGE_DIR="$MEDIA" RUST_LOG=warn VEZA_MEDIA_SIGNING_KEY=bench-media-signing-key-0123456789abcdef
export VEZA_DB_MAX_CONNECTIONS=16 VEZA_WORKERS=2
DB=$(newdb main)
DATABASE_URL="$PG/$DB" "$BIN" seed-demo >/dev/null
openssl genrsa -out "$WORK/cf.pem" 2048 2>/dev/null

# start NAME [VAR=value...]: a `veza serve` on a free port over $DB; sets PORT_<NAME>.
start() {
    local name=$1; shift
    local port; port=$(free_port)
    env DATABASE_URL="$PG/$DB" VEZA_BIND="127.0.0.1:$port" "$@" "$BIN" serve >"$WORK/veza-$name.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$port/health" -o /dev/null && break; sleep 0.05; done
    curl -fs "http://127.0.0.1:$port/health" -o /dev/null || { cat "$WORK/veza-$name.log" >&2; exit 1; }
    # Until the catalogue listener is connected the cache is bypassed: wait for it.
    for _ in $(seq 1 200); do
        curl -fs "http://127.0.0.1:$port/metrics" | grep -q '^veza_catalogue_listen_connected 1' && break; sleep 0.05
    done
    eval "PORT_$name=$port"
}
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
rps() { # wrk requests/s of URL [wrk options]; refuses to report non-2xx answers or socket errors
    local url=$1; shift
    local out; out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" "$@" "$url")
    if grep -qE "Non-2xx|Socket errors" <<<"$out"; then echo "bench.sh: errors from $url:" >&2; echo "$out" >&2; exit 1; fi
    awk '/Requests\/sec/ {print $2}' <<<"$out"
}

if want stream; then
echo "== /stream and /health (local storage, warm and cold catalogue cache)" >&2
start warm
start cold VEZA_CATALOGUE_CACHE_SIZE=0
W="http://127.0.0.1:$PORT_warm"; C="http://127.0.0.1:$PORT_cold"
curl -fs "$W/api/v1/tracks/1/stream" -o /dev/null
health=$(rps "$W/health")
stream_warm=$(rps "$W/api/v1/tracks/1/stream")
stream_cold=$(rps "$C/api/v1/tracks/1/stream")
stop_all

echo "== pgbench -S at the same concurrency" >&2
PGB=$(newdb pgbench)
"$PGBENCH" -i -s 1 -q "$PG/$PGB" >/dev/null 2>&1
pgb=$("$PGBENCH" -S -c "$CONNS" -j 2 -T "$DUR" "$PG/$PGB" 2>/dev/null | awk '/^tps/ {print $3; exit}')

echo "== /stream through CDN signing (bunny edge, cloudfront cookies)" >&2
start bunny CDN_ENABLED=true CDN_PROVIDER=bunny CDN_BASE_URL=https://cdn.example.com CDN_SECURITY_KEY=bench-bunny-key
start cloudfront CDN_ENABLED=true CDN_PROVIDER=cloudfront CDN_BASE_URL=https://d111111abcdef8.cloudfront.net \
    CDN_CLOUDFRONT_KEY_PAIR_ID=K2JCJMDEHXQW5F CDN_CLOUDFRONT_PRIVATE_KEY_FILE="$WORK/cf.pem" \
    CDN_HLS_DELIVERY=cookies CDN_COOKIE_DOMAIN=example.com
health_b=$(rps "http://127.0.0.1:$PORT_bunny/health")
stream_bunny=$(rps "http://127.0.0.1:$PORT_bunny/api/v1/tracks/1/stream")
stream_cf=$(rps "http://127.0.0.1:$PORT_cloudfront/api/v1/tracks/1/stream")
cf_fallbacks=$(curl -fs "http://127.0.0.1:$PORT_cloudfront/metrics" | awk '/^veza_cdn_fallback_total/ {s+=$2} END {print s+0}')
stop_all
record stream_warm_rps "$stream_warm" health "$health" 0.7 req/s
record stream_bunny_rps "$stream_bunny" health "$health_b" 0.7 req/s
record stream_cloudfront_rps "$stream_cf" health "$health_b" 0.7 req/s
record stream_cloudfront_vs_bunny "$stream_cf" stream_bunny "$stream_bunny" 0.5 req/s
record stream_cold_rps "$stream_cold" pgbench_S "$pgb" 0.5 req/s
record cloudfront_fallbacks "$cf_fallbacks" - - - count
fi

# ---------------------------------------------------------------- takedown latency
if want takedown; then
echo "== takedowns seen by two instances ($TAKEDOWNS)" >&2
psql "$PG/$DB" -qc "INSERT INTO tracks (id, title, artist_id, duration_ms, storage_key, hls_prefix, content_type, byte_size, created_at)
    SELECT 100000 + g, 'Takedown ' || g, artist_id, duration_ms, storage_key, hls_prefix, content_type, byte_size, created_at
    FROM tracks, generate_series(1, $TAKEDOWNS) g WHERE id = 1" >/dev/null
start one
start two
python3 - "$PG/$DB" "$PORT_one" "$PORT_two" "$TAKEDOWNS" >"$WORK/takedown.txt" <<'PY'
import http.client, subprocess, sys, time
url, ports, n = sys.argv[1], sys.argv[2:4], int(sys.argv[4])
conns = [http.client.HTTPConnection("127.0.0.1", int(p), timeout=5) for p in ports]
def status(c, path):
    c.request("GET", path); r = c.getresponse(); r.read(); return r.status
lat = []
for i in range(1, n + 1):
    path = f"/api/v1/tracks/{100000 + i}/stream"
    for c in conns:
        assert status(c, path) == 200 and status(c, path) == 200, path   # cached on both
    t0 = time.monotonic()
    subprocess.run(["psql", url, "-qc", f"DELETE FROM tracks WHERE id = {100000 + i}"], check=True)
    pending = list(conns)
    while pending:
        pending = [c for c in pending if status(c, path) != 404]
        if time.monotonic() - t0 > 10:
            sys.exit(f"track {100000 + i} still delivered after 10 s")
    lat.append(time.monotonic() - t0)
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"{p(0.5) * 1000:.1f} {p(0.99) * 1000:.1f} {lat[-1] * 1000:.1f}")
PY
read -r td_p50 td_p99 td_max <"$WORK/takedown.txt"
stop_all
record takedown_p50_ms "$td_p50" bound_ms 1000 - ms
record takedown_p99_ms "$td_p99" bound_ms 1000 - ms
fi

# ---------------------------------------------------------------- HLS origin vs nginx
if want hls; then
echo "== HLS origin vs nginx" >&2
# The origin answers the CDN only (the secret); off without one.
ORIGIN_SECRET_VALUE=bench-origin-secret-0123456789
start origin VEZA_ORIGIN_SECRET="$ORIGIN_SECRET_VALUE"
NP=$(free_port)
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
    location /hls/ { alias $MEDIA/hls/; add_header Cache-Control "public, max-age=86400, immutable"; }
  }
}
CONF
"$NGINX" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
prefix=$(psql "$PG/$DB" -qAtc "SELECT hls_prefix FROM tracks WHERE id = 1")
dir=${prefix#hls/}
for kb in 1024 64; do
    head -c $((kb * 1024)) /dev/urandom >"$MEDIA/$prefix/seg-bench$kb.ts"
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$NP/hls/$dir/seg-bench$kb.ts" -o /dev/null && break; sleep 0.05; done
    v=$(rps "http://127.0.0.1:$PORT_origin/hls/$dir/seg-bench$kb.ts" -H "X-Origin-Secret: $ORIGIN_SECRET_VALUE")
    n=$(rps "http://127.0.0.1:$NP/hls/$dir/seg-bench$kb.ts")
    target=$([ "$kb" = 1024 ] && echo 0.8 || echo 0.7)
    record "hls_origin_${kb}KiB_rps" "$v" nginx "$n" "$target" req/s
done
stop_all
fi

# ---------------------------------------------------------------- accounts
if want accounts; then
echo "== accounts: authenticated vs anonymous /stream, /health p99 during 32 concurrent logins" >&2
start acc VEZA_LOGIN_RATE_LIMIT=1000000/1s
A="http://127.0.0.1:$PORT_acc"
ACC_EMAIL="bench-$$@bench.invalid"; ACC_PW="bench-password-$$"
DATABASE_URL="$PG/$DB" "$BIN" user add "$ACC_EMAIL" --role listener --password-stdin <<<"$ACC_PW" >/dev/null
LOGIN_BODY="{\"email\":\"$ACC_EMAIL\",\"password\":\"$ACC_PW\"}"
TOKEN=$(curl -fs -H 'Content-Type: application/json' -d "$LOGIN_BODY" "$A/api/v1/auth/login" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -fs "$A/api/v1/tracks/1/stream" -o /dev/null
stream_anon=$(rps "$A/api/v1/tracks/1/stream")
stream_authed=$(rps "$A/api/v1/tracks/1/stream" -H "Authorization: Bearer $TOKEN")
p99_ms() { # /health p99 in ms over DUR seconds, 4 connections
    wrk -t1 -c4 -d"${DUR}s" --latency "$A/health" | awk '$1 == "99%" {print $2}' \
        | python3 -c 'import sys; v=sys.stdin.read().strip(); u={"us":1e-3,"ms":1,"s":1e3}; n=v.rstrip("mus"); print(float(n)*u[v[len(n):]])'
}
health_quiet=$(p99_ms)
cat >"$WORK/login.lua" <<LUA
wrk.method = "POST"
wrk.body = '$LOGIN_BODY'
wrk.headers["Content-Type"] = "application/json"
LUA
wrk -t2 -c32 -d"$((DUR + 2))s" --timeout 30s -s "$WORK/login.lua" "$A/api/v1/auth/login" >"$WORK/logins.txt" &
LOGINS=$!
sleep 1
health_logins=$(p99_ms)
wait "$LOGINS"
grep -qE "Non-2xx|Socket errors" "$WORK/logins.txt" && { echo "bench.sh: login errors:" >&2; cat "$WORK/logins.txt" >&2; exit 1; }
logins_rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/logins.txt")
stop_all
record stream_authenticated_rps "$stream_authed" stream_anonymous "$stream_anon" 0.9 req/s
# quiet / during: >= 0.5 means the p99 under 32 concurrent logins stays within 2x.
record health_p99_quiet_vs_logins_ms "$health_quiet" during_logins "$health_logins" 0.5 ms
record logins_rps "$logins_rps" - - - req/s
fi

# ---------------------------------------------------------------- the table
cp "$WORK/results.tsv" "$OUT"
python3 - "$OUT" "$QUICK" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
quick = sys.argv[2] == "1"
bad = []
print(f"{'figure':34} {'value':>12} {'baseline':>22} {'':>10} {'ratio':>8} {'target':>8}  verdict")
for name, value, bname, base, target, unit in rows:
    try:
        v = float(value)
    except ValueError:
        bad.append(f"{name}: no value ({value!r})"); continue
    if unit in ("req/s", "ns") and v <= 0:
        bad.append(f"{name}: {v}")
    ratio = ""
    if base not in ("-", ""):
        b = float(base)
        if b <= 0:
            bad.append(f"{name}: baseline {bname} = {b}")
        ratio = f"{v / b:.3g}" if b else "?"
    verdict = ""
    if target != "-":
        verdict = "(quick: not judged)" if quick else ("met" if ratio and float(ratio) >= float(target) else "MISSED")
    if name.startswith("takedown") and not quick:
        verdict = "met" if v < 1000 else "MISSED"
    shown = f"{float(base):.4g}" if base not in ("-", "") else ""
    print(f"{name:34} {v:12.4g} {bname:>22} {shown:>10} {ratio:>8} {target if target != '-' else '':>8}  {verdict}")
if bad:
    sys.exit("bench.sh: figures missing or zero: " + "; ".join(bad))
PY
echo "== results: $OUT" >&2
