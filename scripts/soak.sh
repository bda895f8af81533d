#!/usr/bin/env bash
# The full-length soak (docs/RELIABILITY.md, "Load and faults"): `veza serve` (release
# build) on PostgreSQL under wrk for DURATION seconds at CONNECTIONS connections, with the
# request mix of tests/api/faults/load.rs — catalogue, playlists, /stream and /download
# answers, /media playlists and 64 KiB ranges of the originals, one HLS segment per track
# from the origin — while the server's RSS and open descriptors are sampled every second.
# Fails on any answer other than 2xx/3xx, any socket error or timeout, a request slower
# than the acquire timeout (3 s) + 2 s, RSS growth of 10 % or more between the 10th second
# and the end, or descriptors growing (median of the middle third vs the last third).
#   usage: scripts/soak.sh [DURATION_S=60] [CONNECTIONS=256]
# Needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres), wrk (apt-get install wrk),
# python3 and curl. Loopback only; the database is created and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-60}; CONNS=${2:-256}
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 2; }
cargo build --release --quiet --bin veza
DB=veza_soak_$$
WORK=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  kill $(jobs -p) 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres >/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $DB" postgres
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" VEZA_STORAGE_DIR="$WORK/media" RUST_LOG=warn
export VEZA_MEDIA_SIGNING_KEY=soak-media-signing-key-0123456789abcdef
# The demo media the tests rendered, if any (hard links; seeding reuses them), else rendered now.
TEMPLATE=$(ls -d target/tmp/demo-media-v* 2>/dev/null | tail -1 || true)
[ -n "$TEMPLATE" ] && cp -al "$TEMPLATE" "$WORK/media"
./target/release/veza seed-demo >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
VEZA_BIND=127.0.0.1:$PORT VEZA_WORKERS=2 ./target/release/veza serve >"$WORK/veza.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fs "$BASE/health" -o /dev/null && break; sleep 0.1; done

# The request mix as a wrk script.
python3 - "$BASE" >"$WORK/mix.lua" <<'PY'
import json, sys, urllib.request, urllib.parse
base = sys.argv[1]
def get(path):
    with urllib.request.urlopen(base + path) as r:
        return r.read()
def path_of(url):
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")
paths = []
for i in range(1, 21):
    paths += [(f"/api/v1/tracks/{i}", None), ("/api/v1/tracks?limit=20", None),
              (f"/api/v1/playlists/{1 + i % 3}", None),
              (f"/api/v1/tracks/{i}/stream", None), (f"/api/v1/tracks/{i}/download", None)]
    master = path_of(json.loads(get(f"/api/v1/tracks/{i}/stream"))["url"])
    original = path_of(json.loads(get(f"/api/v1/tracks/{i}/download"))["url"])
    segment = next(l for l in get(f"/hls/{i}/media.m3u8").decode().splitlines() if l.endswith(".ts"))
    paths += [(master, None), (master.replace("master.m3u8", "media.m3u8"), None),
              (original, "bytes=0-65535"), (f"/hls/{i}/{segment}", None)]
def lua(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
print("local paths = {")
for p, r in paths:
    print("  {" + lua(p) + ", " + (lua(r) if r else "nil") + "},")
print("}")
print(r'''
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  counter = id * 7
  statuses = {}
end
function request()
  counter = counter + 1
  local p = paths[(counter % #paths) + 1]
  if p[2] then
    return wrk.format("GET", p[1], {["Range"] = p[2]})
  end
  return wrk.format("GET", p[1])
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
  end
  io.write("STATUSES")
  for k, v in pairs(total) do io.write(string.format(" %d=%d", k, v)) end
  io.write("\n")
  io.write(string.format("LATENCY_MS p50=%.1f p99=%.1f max=%.1f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  local e = summary.errors
  io.write(string.format("TOTAL requests=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
end
''')
PY

# Resources every second while wrk runs.
(
  start=$EPOCHREALTIME
  while kill -0 "$PID" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$PID/fd" 2>/dev/null | wc -l)
    echo "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}') $rss $fds"
    sleep 1
  done
) >"$WORK/resources.txt" &
SAMPLER=$!
wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$WORK/mix.lua" "$BASE" >"$WORK/wrk.txt" 2>&1
kill "$SAMPLER" 2>/dev/null || true
THREADS=$(awk '/^Threads:/ {print $2}' "/proc/$PID/status")
kill -TERM "$PID"
wait "$PID" && EXIT=0 || EXIT=$?
PID=

python3 - "$WORK/wrk.txt" "$WORK/resources.txt" "$DURATION" "$CONNS" "$EXIT" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$THREADS" <<'PY'
import json, re, statistics, sys
wrk, res, duration, conns, exit_code, cores, load, threads = sys.argv[1:9]
duration, conns = int(duration), int(conns)
text = open(wrk).read()
statuses = dict((int(k), int(v)) for k, v in re.findall(r"(\d+)=(\d+)", re.search(r"STATUSES(.*)", text).group(1)))
lat = dict((k, float(v)) for k, v in re.findall(r"(p50|p99|max)=([\d.]+)", re.search(r"LATENCY_MS(.*)", text).group(1)))
tot = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", re.search(r"TOTAL(.*)", text).group(1)))
rows = [tuple(float(x) for x in l.split()) for l in open(res) if len(l.split()) == 3]
rows = [r for r in rows if r[1] > 0]
early = next(r for r in rows if r[0] >= 10)
late = rows[-1]
growth = (late[1] - early[1]) / early[1] * 100
third = duration / 3
mid = statistics.median(r[2] for r in rows if third <= r[0] < 2 * third)
last = statistics.median(r[2] for r in rows if r[0] >= 2 * third)
bad = sum(v for k, v in statuses.items() if not 200 <= k < 400)
errors = tot["connect"] + tot["read"] + tot["write"] + tot["timeout"]
report = {
    "seconds": duration, "connections": conns, "workers": 2, "db_max_connections": 10,
    "machine_cores": int(cores), "load_average_at_end": load,
    "requests": tot["requests"], "requests_per_second": round(tot["requests"] / duration, 1),
    "bytes": tot["bytes"], "statuses": statuses, "socket_errors": errors, "latency_ms": lat,
    "rss_kb": {"at_10s": int(early[1]), "at_end": int(late[1]), "growth_percent": round(growth, 1),
               "max": int(max(r[1] for r in rows)),
               "every_10s": [int(min(rows, key=lambda r: abs(r[0] - t))[1])
                             for t in range(0, int(rows[-1][0]) + 1, 10)]},
    "threads_at_end": threads,
    "fds": {"at_10s": int(early[2]), "at_end": int(late[2]), "median_middle_third": mid,
            "median_last_third": last, "max": int(max(r[2] for r in rows))},
    "exit_code_after_sigterm": int(exit_code),
}
print("FIGURES soak_wrk " + json.dumps(report))
problems = []
if bad: problems.append(f"{bad} answers outside 2xx/3xx")
if errors: problems.append(f"{errors} socket errors or timeouts")
if lat["max"] >= 5000: problems.append(f"slowest request {lat['max']} ms")
if growth >= 10: problems.append(f"RSS grew {growth:.1f} %")
if last > mid + 4: problems.append(f"descriptors grew: median {mid} -> {last}")
if int(exit_code) != 0: problems.append(f"exit code {exit_code} after SIGTERM")
for p in problems: print("FAIL: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
