#!/usr/bin/env node
// Real-browser HLS playback harness (issue 11), driven by tests/api/browser.rs.
//
// Serves a test page and hls.js from its own HTTP server on 127.0.0.1 (a port other than
// the API's, so the page is a different origin and CORS is exercised), opens it in
// headless Debian Chromium through playwright-core, and lets the page fetch
// `{api}/api/v1/tracks/{id}/stream`, play the returned URL with hls.js into a muted
// <audio> element and record what happened. Polls (against a deadline) until
// `currentTime` passes --min-seconds, a fatal hls.js error or a media error, then prints
// ONE JSON line on stdout and exits 0: the caller decides pass or fail. A harness failure
// (Chromium does not start, …) prints `{"harnessError": "..."}` and exits 2.
//
//   node tests/browser/play.mjs --api http://127.0.0.1:PORT --track 1 [--timeout-ms 30000]
//        [--hls-config '{"maxBufferLength":3}'] [--url SIGNED_STREAM_URL] [--min-seconds 5]
//        [--page-port N] [--range-probe]
//
// Every option may also come from the environment: PLAY_API, PLAY_TRACK, PLAY_TIMEOUT_MS,
// PLAY_HLS_CONFIG, PLAY_URL, PLAY_MIN_SECONDS, PLAY_PAGE_PORT; CHROMIUM (default
// /usr/bin/chromium). With --url the page skips the /stream request and plays that URL (an
// expired listener). --page-port fixes the page's port (default: a free one), for a test
// that must name the page's origin in the API's CORS list beforehand. --range-probe: after
// playing, fetch the first 100 bytes of the first fragment with a Range header and report
// the status and the response headers the page could read.

import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

function options() {
  const { values } = parseArgs({
    options: {
      api: { type: 'string' },
      track: { type: 'string' },
      'timeout-ms': { type: 'string' },
      'hls-config': { type: 'string' },
      url: { type: 'string' },
      'min-seconds': { type: 'string' },
      'page-port': { type: 'string' },
      'range-probe': { type: 'boolean' },
    },
  });
  const env = process.env;
  const api = (values.api ?? env.PLAY_API ?? '').replace(/\/+$/, '');
  const track = values.track ?? env.PLAY_TRACK;
  if (!api || !track) {
    throw new Error('usage: play.mjs --api URL --track ID [--timeout-ms N] [--hls-config JSON] [--url URL]');
  }
  const hlsConfig = JSON.parse(values['hls-config'] ?? env.PLAY_HLS_CONFIG ?? '{}');
  if (hlsConfig === null || typeof hlsConfig !== 'object' || Array.isArray(hlsConfig)) {
    throw new Error('--hls-config must be a JSON object');
  }
  return {
    api,
    track: String(track),
    timeoutMs: Number(values['timeout-ms'] ?? env.PLAY_TIMEOUT_MS ?? 30000),
    hlsConfig,
    url: values.url ?? env.PLAY_URL ?? null,
    minSeconds: Number(values['min-seconds'] ?? env.PLAY_MIN_SECONDS ?? 5),
    pagePort: Number(values['page-port'] ?? env.PLAY_PAGE_PORT ?? 0),
    rangeProbe: values['range-probe'] ?? env.PLAY_RANGE_PROBE === '1',
    chromium: env.CHROMIUM ?? '/usr/bin/chromium',
  };
}

// The page: everything it learns goes into window.__rec, which the harness polls.
function page(config) {
  // JSON inside a <script> element: escape '<' so no value can close the element.
  const json = JSON.stringify(config).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>veza playback test</title>
<script src="/hls.min.js"></script></head>
<body><audio id="player" muted playsinline></audio>
<script id="config" type="application/json">${json}</script>
<script>
(async () => {
  const cfg = JSON.parse(document.getElementById('config').textContent);
  const rec = (window.__rec = {
    stage: 'start', stream: null, fatal: null, mediaError: null,
    fragments: [], errors: [], playError: null,
  });
  const audio = document.getElementById('player');
  audio.muted = true;
  audio.addEventListener('error', () => {
    const e = audio.error;
    rec.mediaError = e ? { code: e.code, message: e.message } : { code: null, message: 'error event' };
  });
  let url = cfg.url;
  if (!url) {
    rec.stage = 'stream';
    const endpoint = cfg.api + '/api/v1/tracks/' + encodeURIComponent(cfg.track) + '/stream';
    try {
      const r = await fetch(endpoint);
      const text = await r.text();
      let body = null;
      try { body = JSON.parse(text); } catch (_) {}
      rec.stream = { status: r.status, url: body && body.url, via: body && body.via,
                     expiresAt: body && body.expires_at };
      if (!r.ok || !body || !body.url) {
        rec.fatal = { type: 'streamError', details: 'stream request answered ' + r.status,
                      fatal: true, code: r.status, url: endpoint, message: text.slice(0, 300) };
        return;
      }
      url = body.url;
    } catch (e) {
      // A CORS refusal surfaces here as a TypeError ("Failed to fetch").
      rec.fatal = { type: 'streamError', details: 'fetch failed', fatal: true, code: null,
                    url: endpoint, message: String(e) };
      return;
    }
  }
  rec.stage = 'hls';
  rec.url = url;
  if (!Hls.isSupported()) {
    rec.fatal = { type: 'unsupported', details: 'Hls.isSupported() is false', fatal: true };
    return;
  }
  const hls = new Hls(Object.assign({ debug: false }, cfg.hlsConfig));
  window.__hls = hls;
  hls.on(Hls.Events.ERROR, (_event, data) => {
    const e = {
      type: data.type,
      details: data.details,
      fatal: !!data.fatal,
      code: data.response && data.response.code !== undefined ? data.response.code : null,
      url: (data.frag && data.frag.url) || (data.context && data.context.url) || data.url || null,
      message: data.error ? String(data.error.message || data.error) : (data.reason || null),
    };
    rec.errors.push(e);
    if (data.fatal && !rec.fatal) rec.fatal = e;
  });
  hls.on(Hls.Events.FRAG_LOADED, (_event, data) => {
    if (data.frag && data.frag.url) rec.fragments.push(data.frag.url);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    rec.stage = 'playing';
    audio.play().catch((e) => { rec.playError = String(e); });
  });
  hls.loadSource(url);
  hls.attachMedia(audio);
})();
</script></body></html>`;
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server.address().port));
  });
}

async function main() {
  const opts = options();
  const hlsJs = readFileSync(join(root, 'node_modules', 'hls.js', 'dist', 'hls.min.js'));
  const html = page({ api: opts.api, track: opts.track, url: opts.url, hlsConfig: opts.hlsConfig });
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://localhost').pathname;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } else if (path === '/hls.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-store' });
      res.end(hlsJs);
    } else if (path === '/favicon.ico') {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  const pagePort = await listen(server, opts.pagePort);
  const pageOrigin = `http://127.0.0.1:${pagePort}`;
  if (pageOrigin === new URL(opts.api).origin) throw new Error('the page must not share the API origin');

  const userDataDir = mkdtempSync(join(tmpdir(), 'veza-chromium-'));
  let context;
  const consoleErrors = [];
  const requests = [];
  let recording = true;
  try {
    // headless: false so that playwright adds no --headless of its own: ours is in the args.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: opts.chromium,
      headless: false,
      args: CHROMIUM_ARGS,
      timeout: 60000,
    });
    const tab = context.pages()[0] ?? (await context.newPage());
    tab.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    tab.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    tab.on('requestfinished', async (r) => {
      const resp = await r.response().catch(() => null);
      if (recording) requests.push({ method: r.method(), url: r.url(), status: resp ? resp.status() : null });
    });
    tab.on('requestfailed', (r) => {
      if (recording) {
        requests.push({ method: r.method(), url: r.url(), status: null, failure: r.failure()?.errorText ?? 'failed' });
      }
    });

    const started = Date.now();
    const deadline = started + opts.timeoutMs;
    await tab.goto(`${pageOrigin}/`, { timeout: opts.timeoutMs });
    let state;
    for (;;) {
      state = await tab.evaluate(() => {
        const audio = document.getElementById('player');
        const rec = window.__rec || {};
        return {
          currentTime: audio ? audio.currentTime : 0,
          fatal: rec.fatal ?? null,
          mediaError: rec.mediaError ?? null,
          stage: rec.stage ?? 'loading',
          stream: rec.stream ?? null,
          url: rec.url ?? null,
          fragments: rec.fragments ?? [],
          errors: rec.errors ?? [],
          playError: rec.playError ?? null,
          paused: audio ? audio.paused : null,
          readyState: audio ? audio.readyState : null,
        };
      });
      if (state.currentTime > opts.minSeconds || state.fatal || state.mediaError || Date.now() >= deadline) break;
      await tab.waitForTimeout(100);
    }
    const played = state.currentTime > opts.minSeconds && !state.fatal && !state.mediaError;
    // --range-probe: after playing, the page asks for the first 100 bytes of the first
    // fragment with a Range header from the network (not the HTTP cache), as a seeking
    // player would, and reports the response headers the page can read (only the exposed
    // ones). Not counted in `requests`.
    let rangeProbe = null;
    if (opts.rangeProbe && state.fragments.length > 0) {
      recording = false;
      rangeProbe = await tab.evaluate(async (url) => {
        try {
          const r = await fetch(url, { headers: { Range: 'bytes=0-99' }, cache: 'no-store' });
          const body = await r.arrayBuffer();
          const h = (name) => r.headers.get(name);
          return {
            url, status: r.status, bytes: body.byteLength, error: null,
            contentRange: h('content-range'), contentLength: h('content-length'),
            acceptRanges: h('accept-ranges'), etag: h('etag'),
          };
        } catch (e) {
          return { url, status: null, bytes: 0, error: String(e) };
        }
      }, state.fragments[0]);
    }
    const result = {
      played,
      currentTime: state.currentTime,
      fatal: state.fatal,
      mediaError: state.mediaError,
      fragments: state.fragments,
      consoleErrors,
      timedOut: !played && !state.fatal && !state.mediaError,
      rangeProbe,
      elapsedMs: Date.now() - started,
      stage: state.stage,
      stream: state.stream,
      url: state.url,
      errors: state.errors,
      playError: state.playError,
      paused: state.paused,
      readyState: state.readyState,
      pageOrigin,
      requests,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    if (context) await context.close().catch(() => {});
    server.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stdout.write(`${JSON.stringify({ harnessError: String(e && e.stack ? e.stack : e) })}\n`);
    process.exit(2);
  },
);
