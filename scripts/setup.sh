#!/usr/bin/env bash
# Installs and starts everything the tests need, idempotently, on a fresh machine:
# PostgreSQL answering on 127.0.0.1:5432, nginx (secure_link tests), Prometheus and
# promtool (alert-rule tests, end-to-end scrape test), s3s-fs (real S3 server), ffmpeg
# (playback tests, `veza import`), aiosmtpd (the mail tests' SMTP server), Chromium and the npm packages of package-lock.json
# (playwright-core, hls.js: the real-browser playback tests in tests/api/browser.rs), wrk
# and pgbench (scripts/bench.sh).
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v pg_isready >/dev/null 2>&1 || need_apt+=(postgresql-client)
# ffmpeg/ffprobe: the playback tests' player and `veza import`'s transcoder.
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
# Debian's Chromium: the browser the playback tests drive headless (/usr/bin/chromium;
# playwright never downloads one of its own). Node.js and npm come with the machine.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# wrk and pgbench: scripts/bench.sh (its --quick smoke run is part of the test command).
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v pgbench >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || need_apt+=(postgresql-contrib)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The Debian prometheus package starts a service on :9090 where systemd runs; tests
# start their own server on a free port, so nothing here depends on it.

S3S_VERSION=0.14.1
if ! command -v s3s-fs >/dev/null 2>&1; then
  log "installing s3s-fs ${S3S_VERSION} (cargo install)"
  cargo install --quiet --locked "s3s-fs@${S3S_VERSION}" --features binary
fi

# playwright-core and hls.js, exactly as package-lock.json pins them. Reinstalled when
# node_modules is missing or was installed from another lockfile (a stamp records which).
root="$(cd "$(dirname "$0")/.." && pwd)"
lock_sum="$(sha256sum "$root/package-lock.json" | cut -d' ' -f1)"
stamp="$root/node_modules/.veza-package-lock.sha256"
if [ ! -d "$root/node_modules" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
  log "installing the npm packages of package-lock.json (npm ci)"
  (cd "$root" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$lock_sum" > "$stamp"
fi

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
if ! pg_up; then
  log "PostgreSQL is down: starting it"
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for v in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
  fi
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
fi
if pg_up; then
  log "PostgreSQL answers on 127.0.0.1:5432"
else
  log "PostgreSQL is NOT reachable on 127.0.0.1:5432"
  [ "${CI:-}" = "true" ] && exit 1
fi

# A real OpenTelemetry SDK (Python, pinned in tests/otel/requirements.txt) in a venv under
# target/: tests/otlp_trace.rs runs tests/otel/make_trace.py with it to write the OTLP JSON
# trace that `veza n1 analyze` reads. Reinstalled when the requirements change (a stamp
# records which). Not fatal outside CI: that test then skips, saying why.
otel_venv="$root/target/otel-venv"
otel_sum="$(sha256sum "$root/tests/otel/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$otel_venv/.veza-requirements.sha256" 2>/dev/null)" != "$otel_sum" ]; then
  log "installing tests/otel/requirements.txt (OpenTelemetry Python SDK) into target/otel-venv"
  if rm -rf "$otel_venv" && python3 -m venv "$otel_venv" \
    && "$otel_venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tests/otel/requirements.txt"; then
    printf '%s\n' "$otel_sum" > "$otel_venv/.veza-requirements.sha256"
  else
    log "the OpenTelemetry Python SDK could NOT be installed"
    if [ "${CI:-}" = "true" ]; then exit 1; fi
  fi
fi

# aiosmtpd (Python, pinned in tests/smtp/requirements.txt) in a venv under target/: the
# SMTP server of tests/api/mail.rs (tests/common/smtp.rs runs tests/smtp/server.py with
# it). Reinstalled when the requirements change. Not fatal outside CI: those tests then
# skip, saying why.
smtp_venv="$root/target/smtp-venv"
smtp_sum="$(sha256sum "$root/tests/smtp/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$smtp_venv/.veza-requirements.sha256" 2>/dev/null)" != "$smtp_sum" ]; then
  log "installing tests/smtp/requirements.txt (aiosmtpd) into target/smtp-venv"
  if rm -rf "$smtp_venv" && python3 -m venv "$smtp_venv" \
    && "$smtp_venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tests/smtp/requirements.txt"; then
    printf '%s\n' "$smtp_sum" > "$smtp_venv/.veza-requirements.sha256"
  else
    log "aiosmtpd could NOT be installed"
    if [ "${CI:-}" = "true" ]; then exit 1; fi
  fi
fi
# moto's server (PyPI moto[server]): the CloudFront API of the purge tests
# (tests/common/moto.rs). Not fatal outside CI: that test then skips, saying why.
if ! command -v moto_server >/dev/null 2>&1; then
  log "installing moto[server] (pip)"
  if ! python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'; then
    log "moto[server] could NOT be installed"
    if [ "${CI:-}" = "true" ]; then exit 1; fi
  fi
fi
