//! Fuzz harnesses for veza's parsers and verifiers, shared by the libFuzzer targets
//! (`fuzz/fuzz_targets/*.rs`, one line each) and by the corpus replay test
//! (`tests/fuzz_corpus.rs`, which includes this file as a module), so a committed corpus
//! input runs through exactly the code the fuzzer ran.
//!
//! Every harness takes raw bytes and panics (`assert!`) when an invariant breaks:
//! besides "never panics", each checks a property of its own (idempotent
//! normalisation, sign → verify round trips, validated names staying under their
//! root, consistent `Range` answers, secrets absent from printed configuration).
//! Only crates that are also dependencies of `veza` itself are used here (plus std),
//! so the main package's tests can compile this file unchanged.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use veza::cdn::Scope;
use veza::cdn::{
    BunnyTokenVersion, CloudFrontHash, KeyMaterial, PreparedSigner, Provider, ProviderConfig,
    SignRequest, VerifyContext, token_forms,
};
use veza::delivery::local_token::{CLOCK_SKEW, LocalSigner, parse_expiry};
use veza::hls::naming as paths;
use veza::hls::segment_urls::{RewriteError, is_media_playlist, rewrite_segments, segment_names};
use veza::n1::{
    DetectorConfig, FingerprintId, Format, Report, analyze, analyze_input, classify, normalize,
};

/// A harness: panics when an invariant breaks.
pub type Harness = fn(&[u8]);

/// Every harness by target name (the `fuzz/fuzz_targets/<name>.rs` binaries and the
/// `fuzz/corpus/<name>/` directories).
pub const TARGETS: &[(&str, Harness)] = &[
    ("sql_normalize", sql_normalize),
    ("n1_trace", n1_trace),
    ("otlp_trace", otlp_trace),
    ("cdn_sign", cdn_sign),
    ("cdn_url", cdn_url),
    ("media_token", media_token),
    ("paths", paths),
    ("playlist", playlist),
    ("http_range", http_range),
    ("config", config),
];

/// A tiny byte reader: fixed-size fields first, the rest as text. Running out of
/// input yields zeros, so every input decodes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// Big-endian unsigned integer of `n` bytes (n ≤ 8).
    fn uint(&mut self, n: usize) -> u64 {
        (0..n).fold(0u64, |v, _| (v << 8) | u64::from(self.byte()))
    }

    fn rest(&self) -> &'a [u8] {
        self.0
    }
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

// ---------------------------------------------------------------------------
// SQL lexer / normalize / classify
// ---------------------------------------------------------------------------

/// `normalize` (the SQL lexer behind it), `classify` and fingerprint ids on arbitrary
/// text: never panics, normalising is idempotent, the classified table is a slice of
/// the input.
pub fn sql_normalize(data: &[u8]) {
    let sql = text(data);
    let n = normalize(&sql);
    let nn = normalize(&n);
    assert_eq!(nn, n, "normalize is not idempotent for {sql:?}");
    assert_eq!(
        FingerprintId::of_sql(&sql),
        FingerprintId::of_normalized(&n)
    );
    let id = FingerprintId::of_normalized(&n);
    assert_eq!(id.to_string().parse::<FingerprintId>().ok(), Some(id));
    let (op, table) = classify(&sql);
    let _ = op.as_str();
    if let Some(t) = table {
        assert!(!t.is_empty(), "empty table name from {sql:?}");
        assert!(sql.contains(t), "table {t:?} is not part of {sql:?}");
    }
    // The normalised text classifies the same way (only case and literals differ).
    let (op2, _) = classify(&n);
    assert_eq!(op2, op, "classify changed after normalize for {sql:?}");
}

// ---------------------------------------------------------------------------
// N+1 trace parser
// ---------------------------------------------------------------------------

/// The detector's default thresholds, and a strict one that flags almost anything.
fn detector_configs() -> [DetectorConfig; 2] {
    let strict = DetectorConfig {
        total_threshold: 2,
        repeat_threshold: 2,
        ..DetectorConfig::default()
    };
    [DetectorConfig::default(), strict]
}

/// `veza n1 analyze` on an arbitrary NDJSON trace, with the default and with a
/// trigger-happy detector; the reports must print, as text and as JSON lines.
pub fn n1_trace(data: &[u8]) {
    for cfg in detector_configs() {
        let Ok(report) = analyze(data, &cfg) else {
            continue;
        };
        let lines = data.split(|b| *b == b'\n').count() as u64;
        assert!(report.requests <= lines, "more requests than lines");
        check_report(&report);
    }
}

/// `veza n1 analyze` on OpenTelemetry OTLP JSON: never panics, forced or sniffed; its
/// counts are consistent (a request is a group of database spans) and its report
/// obeys the NDJSON path's invariants.
pub fn otlp_trace(data: &[u8]) {
    for cfg in detector_configs() {
        let _ = analyze_input(data, Format::Auto, &cfg);
        let Ok(analysis) = analyze_input(data, Format::Otlp, &cfg) else {
            continue;
        };
        let Some(stats) = analysis.otlp else {
            panic!("OTLP input without OTLP figures");
        };
        assert!(stats.db_spans <= stats.spans, "{stats:?}");
        assert!(analysis.report.requests <= stats.db_spans, "{stats:?}");
        check_report(&analysis.report);
    }
}

/// What every report must satisfy, whatever its input format.
fn check_report(report: &Report) {
    for f in &report.findings {
        match (&f.sql, f.fingerprint) {
            (Some(sql), Some(fp)) => {
                assert_eq!(
                    fp,
                    FingerprintId::of_normalized(sql),
                    "fingerprint of {sql:?}"
                );
            }
            (None, None) => {}
            _ => panic!("finding with only one of sql and fingerprint: {f:?}"),
        }
    }
    let mut out = Vec::new();
    assert!(report.write_text(&mut out).is_ok());
    let out = String::from_utf8(out).unwrap_or_default();
    assert_eq!(
        out.lines().count(),
        report.findings.len() + 1,
        "one text line per finding plus the summary: {out:?}"
    );
    let mut json = Vec::new();
    assert!(report.write_json(&mut json).is_ok());
    let json = String::from_utf8(json).unwrap_or_default();
    assert_eq!(json.lines().count(), report.findings.len());
    for line in json.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// CDN signing
// ---------------------------------------------------------------------------

const CF_PEM_PKCS1: &str = include_str!("../../tests/data/cloudfront_test_key.pem");
const CF_PEM_PKCS8: &str = include_str!("../../tests/data/cloudfront_test_key_pkcs8.pem");

/// The verify context matching a request: at its issue time (or just before expiry),
/// from its client, in its scope.
fn context_for(req: &SignRequest) -> VerifyContext {
    VerifyContext {
        now: if req.issued_at != 0 {
            req.issued_at
        } else {
            req.expires_at - 1
        },
        client_ip: req.user_ip,
        scope: req.scope,
    }
}

/// `s` with every ASCII letter and digit replaced by another of the same kind (hex
/// digits stay hex digits, case is kept): a key of the same shape and validity.
fn rotate(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '9' => '0',
            'f' => 'a',
            'F' => 'A',
            'z' => 'g',
            'Z' => 'G',
            '0'..='8' | 'a'..='y' | 'A'..='Y' => char::from(c as u8 + 1),
            c => c,
        })
        .collect()
}

/// Any provider, any options, any key material: building the signer and signing never
/// panic, errors never show the key, and whatever is signed verifies (the edge mirror
/// accepts it at its issue time, from its client, in its scope).
// One harness: input decoding, then every invariant checked on the same request.
#[allow(clippy::too_many_lines)]
pub fn cdn_sign(data: &[u8]) {
    let mut r = Reader(data);
    let provider = Provider::ALL[usize::from(r.byte()) % Provider::ALL.len()];
    let flags = r.byte();
    let ip_kind = r.byte();
    let ip = if ip_kind & 1 == 0 {
        IpAddr::V4(Ipv4Addr::from(r.uint(4) as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(
            (u128::from(r.uint(8)) << 64) | u128::from(r.uint(8)),
        ))
    };
    // 5 bytes: up to 2^40, past the 10^11 "looks like milliseconds" bound.
    let expires_at = r.uint(5);
    let issued_at = r.uint(5);
    let speed = r.uint(2);
    let rest = text(r.rest());
    let mut fields = rest.split('\n');
    let mut field = || fields.next().unwrap_or("");
    let url = field().to_string();
    let key = field().to_string();
    let token_path = field().to_string();
    let countries = field().to_string();
    let blocked = field().to_string();
    let expression = field().to_string();
    let token_name = field().to_string();

    let make_cfg = |key: &str| {
        let mut cfg = match provider {
            Provider::CloudFront => {
                let pem = if flags & 0x80 != 0 {
                    CF_PEM_PKCS8
                } else {
                    CF_PEM_PKCS1
                };
                // A key field starting with '-' is used as the PEM itself.
                let pem = if key.starts_with('-') { key } else { pem };
                let id = if key.is_empty() || key.starts_with('-') {
                    "K2JCJMDEHXQW5F"
                } else {
                    key
                };
                ProviderConfig::cloudfront(id, pem)
            }
            Provider::Akamai if key.is_empty() => ProviderConfig::new(provider, "0a1b2c3d4e5f6789"),
            _ if key.is_empty() => ProviderConfig::new(provider, "fuzz-secret-key"),
            _ => ProviderConfig::new(provider, KeyMaterial::from(key)),
        };
        if flags & 0x20 != 0 {
            cfg.bunny_token_version = BunnyTokenVersion::V1Legacy;
        }
        if flags & 0x40 != 0 {
            cfg.cloudfront_hash = CloudFrontHash::Sha256;
        }
        cfg.cloudflare_url_safe = flags & 0x08 != 0;
        cfg.cloudfront_start_time = flags & 0x10 != 0;
        if !expression.is_empty() {
            cfg.nginx_expression = expression.clone();
        }
        if !token_name.is_empty() {
            cfg.akamai_token_name = token_name.clone();
        }
        cfg
    };
    let cfg = make_cfg(&key);
    // The same configuration with another key of the same shape: what is printed
    // (Debug, errors) must not change, or it shows the key. (CloudFront: the key field
    // is the public key-pair id, or a PEM whose label errors name.)
    let twin = (provider != Provider::CloudFront && rotate(&key) != key)
        .then(|| PreparedSigner::new(&make_cfg(&rotate(&key))));

    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let req = SignRequest {
        url,
        expires_at,
        issued_at,
        scope: if flags & 0x01 != 0 {
            Scope::Directory
        } else {
            Scope::File
        },
        user_ip: (flags & 0x02 != 0).then_some(ip),
        bunny: veza::cdn::BunnyOptions {
            token_path: (!token_path.is_empty()).then_some(token_path),
            countries: list(&countries),
            countries_blocked: list(&blocked),
            speed_limit_kbps: (flags & 0x04 != 0).then_some(speed),
            ignore_params: ip_kind & 0x02 != 0,
        },
    };
    let signer = PreparedSigner::new(&cfg);
    if let Some(twin) = &twin {
        let shown = |s: &Result<PreparedSigner, _>| match s {
            Ok(s) => format!("{s:?}"),
            Err(e) => format!("{e}"),
        };
        assert_eq!(shown(&signer), shown(twin), "the key shows");
        if let (Ok(a), Ok(b)) = (&signer, twin) {
            let (ea, eb) = (a.sign(&req).err(), b.sign(&req).err());
            assert_eq!(ea, eb, "sign errors depend on the key");
        }
    }
    let Ok(signer) = signer else { return };
    assert_eq!(signer.provider(), provider);
    let Ok(signed) = signer.sign(&req) else {
        return;
    };
    assert!(signed.is_ascii(), "signed url is not ASCII: {signed:?}");
    let _ = token_forms::token_query(&signed);
    let _ = token_forms::nginx_path_form(&signed);
    let _ = token_forms::cookies(provider, &signed, &cfg.akamai_token_name);
    if provider == Provider::CloudFront {
        return; // asymmetric: the edge holds the public key, there is no verify
    }
    let ctx = context_for(&req);
    assert_eq!(
        signer.verify(&signed, &ctx),
        Ok(()),
        "{provider} does not verify its own URL {signed:?} for {req:?}"
    );
}

/// Edge mirrors with fixed keys, for [`cdn_url`].
fn url_signers() -> &'static [(PreparedSigner, Option<IpAddr>)] {
    static SIGNERS: OnceLock<Vec<(PreparedSigner, Option<IpAddr>)>> = OnceLock::new();
    SIGNERS.get_or_init(|| {
        let ip = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
        let mut v1 = ProviderConfig::new(Provider::Bunny, "fuzz-secret-key");
        v1.bunny_token_version = BunnyTokenVersion::V1Legacy;
        let mut url_safe = ProviderConfig::new(Provider::Cloudflare, "fuzz-secret-key");
        url_safe.cloudflare_url_safe = true;
        let mut akamai = ProviderConfig::new(Provider::Akamai, "0a1b2c3d4e5f6789");
        akamai.akamai_token_name = "hdnts".into();
        let mut nginx_ip = ProviderConfig::new(Provider::Nginx, "fuzz-secret-key");
        nginx_ip.nginx_expression = "$secure_link_expires$uri$remote_addr $secret".into();
        let configs = [
            (
                ProviderConfig::new(Provider::Bunny, "fuzz-secret-key"),
                None,
            ),
            (v1, None),
            (
                ProviderConfig::new(Provider::Cloudflare, "fuzz-secret-key"),
                None,
            ),
            (url_safe, None),
            (akamai, None),
            (
                ProviderConfig::new(Provider::Nginx, "fuzz-secret-key"),
                None,
            ),
            (nginx_ip, ip),
            (
                ProviderConfig::cloudfront("K2JCJMDEHXQW5F", CF_PEM_PKCS1),
                None,
            ),
        ];
        configs
            .into_iter()
            .filter_map(|(c, ip)| PreparedSigner::new(&c).ok().map(|s| (s, ip)))
            .collect()
    })
}

/// URL splitting, every provider's `verify` on an arbitrary (hostile) URL, the HLS
/// token helpers, and sign → verify of the arbitrary URL as a resource.
pub fn cdn_url(data: &[u8]) {
    let url = text(data);
    assert_eq!(
        url_signers().len(),
        8,
        "a fixed test signer failed to build"
    );
    let _ = token_forms::token_query(&url);
    let _ = token_forms::nginx_path_form(&url);
    for p in [Provider::CloudFront, Provider::Akamai, Provider::Bunny] {
        let _ = token_forms::cookies(p, &url, "hdnts");
    }
    for (signer, ip) in url_signers() {
        for scope in [Scope::File, Scope::Directory] {
            let ctx = VerifyContext {
                now: 1_700_000_000,
                client_ip: *ip,
                scope,
            };
            let _ = signer.verify(&url, &ctx);
            if signer.provider() == Provider::CloudFront {
                continue; // RSA per input is slow; cdn_sign covers it
            }
            let mut req = SignRequest::new(url.clone(), 1_700_003_600, 1_700_000_000);
            req.user_ip = *ip;
            // Cloudflare cannot sign a directory.
            req.scope = if signer.provider() == Provider::Cloudflare {
                Scope::File
            } else {
                scope
            };
            if let Ok(signed) = signer.sign(&req) {
                let _ = token_forms::nginx_path_form(&signed);
                let ctx = context_for(&req);
                assert_eq!(
                    signer.verify(&signed, &ctx),
                    Ok(()),
                    "{} does not verify its own URL {signed:?}",
                    signer.provider()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// /media tokens
// ---------------------------------------------------------------------------

/// The TTL of the fuzzed signer: tokens living longer (plus the clock skew) are refused.
const MEDIA_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

fn media_signer() -> &'static LocalSigner {
    static SIGNER: OnceLock<Option<LocalSigner>> = OnceLock::new();
    let s = SIGNER.get_or_init(|| {
        LocalSigner::new(b"fuzz-media-signing-key-0123456789abcdef", MEDIA_TTL).ok()
    });
    match s {
        Some(s) => s,
        None => panic!("LocalSigner::new failed"),
    }
}

/// The token of a URL produced by `LocalSigner::sign`.
fn token_of(url: &str) -> Option<&str> {
    url.split('/').nth(4)
}

/// The `/media` verifier on arbitrary fields, parsed the way the service parses them
/// (scope, canonical decimal expiry, validated key), plus sign → parse → verify round
/// trips: only the genuine token, unexpired, within the TTL and the clock skew, in the
/// one canonical form of its expiry, verifies.
///
/// Input: `scope \n expires \n token \n key [\n filename [\n now]]`.
pub fn media_token(data: &[u8]) {
    let s = text(data);
    let mut f = s.split('\n');
    let scope_raw = f.next().unwrap_or("");
    let expires_raw = f.next().unwrap_or("");
    let token = f.next().unwrap_or("");
    let key_raw = f.next().unwrap_or("");
    let filename = f.next();
    let now: u64 = f
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_700_000_000);
    let signer = media_signer();

    let scope = Scope::parse(scope_raw);
    let expires = parse_expiry(expires_raw).ok();
    if let Some(e) = expires {
        assert_eq!(e.to_string(), expires_raw, "a non-canonical expiry parsed");
    }
    let key = veza::store::layout::validate_key(key_raw).ok();
    if let (Some(scope), Some(expires), Some(key)) = (scope, expires, key)
        && signer
            .verify(scope, key, expires, token, filename, now)
            .is_ok()
    {
        // Only the genuine token passes.
        let url = signer.sign(scope, key, expires, filename);
        assert_eq!(token_of(&url), Some(token), "foreign token accepted");
        assert!(now <= expires, "expired token accepted");
        assert!(
            expires - now <= (MEDIA_TTL + CLOCK_SKEW).as_secs(),
            "a token living longer than the TTL accepted"
        );
    }

    // Round trip through the URL the service hands out.
    let Some(key) = key else {
        return;
    };
    let expires = expires.unwrap_or(now);
    for scope in [Scope::Directory, Scope::File] {
        let url = signer.sign(scope, key, expires, filename);
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let mut parts = path.splitn(6, '/');
        assert_eq!(parts.next(), Some(""));
        assert_eq!(parts.next(), Some("media"));
        let got_scope = parts.next().and_then(Scope::parse);
        let got_expires = parts.next().and_then(|e| parse_expiry(e).ok());
        let got_token = parts.next().unwrap_or("");
        let got_key = parts.next().unwrap_or("");
        assert_eq!(got_scope, Some(scope), "{url}");
        assert_eq!(got_expires, Some(expires), "{url}");
        assert_eq!(got_key, key, "{url}");
        // The handler reads `filename` through serde_urlencoded (`+` is a space).
        let got_filename = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "filename")
            .map(|(_, v)| v.into_owned());
        assert_eq!(got_filename.as_deref(), filename, "{url}");
        // Verified while valid: not after the expiry, not before its lifetime starts.
        let longest = (MEDIA_TTL + CLOCK_SKEW).as_secs();
        let at = now.min(expires).max(expires.saturating_sub(longest));
        assert_eq!(
            signer.verify(
                scope,
                got_key,
                expires,
                got_token,
                got_filename.as_deref(),
                at
            ),
            Ok(()),
            "{url}"
        );
        if expires < u64::MAX {
            assert!(
                signer
                    .verify(scope, got_key, expires, got_token, filename, expires + 1)
                    .is_err(),
                "token valid after expiry: {url}"
            );
        }
        if let Some(early) = expires.checked_sub(longest + 1) {
            assert!(
                signer
                    .verify(scope, got_key, expires, got_token, filename, early)
                    .is_err(),
                "token valid longer than the TTL: {url}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Path and file-name validation
// ---------------------------------------------------------------------------

/// Whether `p` (relative) only has plain components.
fn plain_components(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Name validation, storage keys, content types and download names: what is accepted
/// never leaves the track directory; derived header values are always valid.
///
/// Input: `name [\n title]`.
pub fn paths(data: &[u8]) {
    let s = text(data);
    let (name, title) = s.split_once('\n').unwrap_or((s.as_str(), ""));
    let root = Path::new("/srv/veza/media/hls/7");

    if let Ok(seg) = veza::hls::naming::validate_segment(name) {
        assert_eq!(seg, name);
        assert!(!seg.is_empty() && seg.len() <= veza::hls::naming::MAX_NAME_LEN);
        assert!(!seg.starts_with('.') && !seg.contains(".."), "{seg:?}");
        let joined = root.join(seg);
        assert_eq!(joined.parent(), Some(root), "{seg:?} escapes its directory");
        assert!(plain_components(Path::new(seg)), "{seg:?}");
    }
    if let Ok(kind) = paths::validate_hls_name(name) {
        assert!(veza::hls::naming::validate_segment(name).is_ok());
        assert_eq!(paths::content_type_for(name), kind.content_type());
        let _ = kind.cache_control();
    }
    if let Ok(key) = veza::store::layout::validate_key(name) {
        let joined = root.join(key);
        assert!(joined.starts_with(root), "{key:?} escapes the root");
        assert!(plain_components(Path::new(key)), "{key:?} is not plain");
        assert!(
            !key.contains(['\\', '\0', '%']) && !key.contains(".."),
            "{key:?}"
        );
        let dir = veza::store::layout::directory_of(key);
        assert!(key.starts_with(dir));
    }
    let ct = paths::content_type_for(name);
    assert!(ct.parse::<mime::Mime>().is_ok(), "{ct}");

    let download = veza::delivery::disposition::download_filename(title, name);
    assert!(!download.is_empty());
    assert!(
        !download.contains(['/', '\\']) && !download.chars().any(char::is_control),
        "unsafe download name {download:?}"
    );
    let disposition = veza::delivery::disposition::attachment_disposition(&download);
    assert!(
        actix_web::http::header::HeaderValue::from_str(&disposition).is_ok(),
        "invalid Content-Disposition {disposition:?}"
    );
    let disposition = veza::delivery::disposition::attachment_disposition(title);
    assert!(
        actix_web::http::header::HeaderValue::from_str(&disposition).is_ok(),
        "invalid Content-Disposition {disposition:?}"
    );
}

// ---------------------------------------------------------------------------
// HLS playlist rewriting
// ---------------------------------------------------------------------------

/// The playlist rewriter on arbitrary text: a playlist is either rewritten line for line
/// (tags kept, every URI replaced by its signed URL) or refused with the first foreign URI.
pub fn playlist(data: &[u8]) {
    let text = text(data);
    let _ = is_media_playlist(&text);
    for n in segment_names(&text) {
        assert!(veza::hls::naming::validate_segment(n).is_ok(), "{n:?}");
    }
    let url_for = |n: &str| Some(format!("https://cdn.example/hls/7/{n}?sig=x"));
    let first_foreign = text.lines().map(str::trim).find(|t| {
        !t.is_empty() && !t.starts_with('#') && veza::hls::naming::validate_segment(t).is_err()
    });
    match (rewrite_segments(&text, url_for), first_foreign) {
        (Err(RewriteError::UnexpectedUri(u)), Some(f)) => assert_eq!(u, f),
        (Ok(out), None) => {
            assert_eq!(
                out.lines().count(),
                text.lines().count(),
                "{text:?} → {out:?}"
            );
            for (a, b) in text.lines().zip(out.lines()) {
                let t = a.trim();
                if t.is_empty() || t.starts_with('#') {
                    // `lines()` drops the `\r` of a `\r\n` the rewrite creates.
                    assert_eq!(b, a.strip_suffix('\r').unwrap_or(a));
                } else {
                    assert_eq!(Some(b.to_string()), url_for(t));
                }
            }
        }
        (r, f) => panic!("rewrite of {text:?}: {r:?}, first foreign URI {f:?}"),
    }
    // A segment without a URL makes the whole rewrite fail: never half-signed.
    if first_foreign.is_none() && !segment_names(&text).is_empty() {
        let r = rewrite_segments(&text, |_| None);
        assert!(matches!(r, Err(RewriteError::Missing(_))), "{r:?}");
    }
}

// ---------------------------------------------------------------------------
// HTTP Range and conditionals (the service's `serve`)
// ---------------------------------------------------------------------------

struct RangeFixture {
    runtime: tokio::runtime::Runtime,
    root: PathBuf,
    /// (storage key, content)
    files: Vec<(String, Vec<u8>)>,
}

fn range_fixture() -> &'static RangeFixture {
    static FIXTURE: OnceLock<RangeFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("veza-fuzz-range-{}", std::process::id()));
        let files: Vec<(String, Vec<u8>)> = [0usize, 1, 1000]
            .into_iter()
            .map(|len| {
                let content: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                (format!("hls/7/seg-{len}.ts"), content)
            })
            .collect();
        let written = std::fs::create_dir_all(root.join("hls/7")).is_ok()
            && files
                .iter()
                .all(|(k, c)| std::fs::write(root.join(k), c).is_ok());
        assert!(
            written,
            "cannot write the range fixture under {}",
            root.display()
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => RangeFixture {
                runtime,
                root,
                files,
            },
            Err(e) => panic!("tokio runtime: {e}"),
        }
    })
}

/// `Range` (and the conditional headers next to it) through the service's own file
/// serving (`web::handlers::files::serve`, deciding with `web::rfc9110`) on files of 0, 1
/// and 1000 bytes: the answer is 200 with the whole file (no `Content-Range`; no bytes
/// for HEAD), 206 (GET only) with exactly the announced slice, 416 (GET only) with
/// `bytes */len` and `no-store`, 304 for `If-None-Match`/`If-Modified-Since`, 412 for
/// `If-Match`; a request without conditions or a byte range is always a 200.
///
/// Input: one selector byte (file, method), then `range \n if-none-match \n if-match \n
/// if-modified-since`; an absent or invalid header value is not sent.
// One harness: request building, serving, then the RFC 9110 answer checked per status.
#[allow(clippy::too_many_lines)]
pub fn http_range(data: &[u8]) {
    use actix_web::body::{BodySize, MessageBody};
    use actix_web::http::header::{self, HeaderName, HeaderValue};
    use actix_web::http::{Method, StatusCode};
    use veza::delivery::{MediaAnswer, Presentation};
    use veza::store::Store;
    use veza::web::handlers::files::serve;

    let fx = range_fixture();
    let mut r = Reader(data);
    let sel = r.byte();
    let (key, content) = &fx.files[usize::from(sel & 0x03) % fx.files.len()];
    let head = sel & 0x80 != 0;
    let method = if head { Method::HEAD } else { Method::GET };
    let mut req = actix_web::test::TestRequest::default()
        .method(method)
        .uri("/media/f/1/t/x");
    let names: [HeaderName; 4] = [
        header::RANGE,
        header::IF_NONE_MATCH,
        header::IF_MATCH,
        header::IF_MODIFIED_SINCE,
    ];
    let mut sent: Vec<(HeaderName, HeaderValue)> = Vec::new();
    for (name, value) in names.iter().zip(r.rest().split(|b| *b == b'\n')) {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            sent.push((name.clone(), v.clone()));
            req = req.insert_header((name.clone(), v));
        }
    }
    let req = req.to_http_request();
    let storage = Store::local(fx.root.clone());
    let (status, headers, size, body) = fx.runtime.block_on(async {
        let opened = match storage.open(key).await {
            Ok(o) => o,
            Err(e) => panic!("cannot open an existing file: {e}"),
        };
        let presentation = Presentation {
            content_type: "video/mp2t",
            cache_control: "public, max-age=60".to_string(),
            disposition: None,
        };
        let res = match serve(&req, MediaAnswer::Object(opened, presentation)).await {
            Ok(res) => res,
            Err(e) => panic!("serve failed on an existing file: {e}"),
        };
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body();
        let size = body.size();
        let body = actix_web::body::to_bytes(body).await;
        (status, headers, size, body.map_err(|e| e.to_string()))
    });
    let body = match body {
        Ok(b) => b,
        Err(e) => panic!("body of {status}: {e}"),
    };
    let has = |n: &HeaderName| sent.iter().any(|(k, _)| k == n);
    let header_of = |n: HeaderName| {
        headers
            .get(n)
            .map(|v| v.to_str().unwrap_or("<non-ascii>").to_string())
    };
    let content_range = header_of(header::CONTENT_RANGE);
    let len = content.len();
    let conditional =
        has(&header::IF_NONE_MATCH) || has(&header::IF_MATCH) || has(&header::IF_MODIFIED_SINCE);
    // Only a `bytes=` range (the unit is case-insensitive) can select bytes.
    let byte_range = !head
        && sent.iter().any(|(k, v)| {
            k == header::RANGE
                && v.as_bytes().len() >= 6
                && v.as_bytes()[..6].eq_ignore_ascii_case(b"bytes=")
        });
    if !conditional && !byte_range {
        assert_eq!(status, StatusCode::OK, "{sent:?}");
    }
    match status {
        StatusCode::OK => {
            assert_eq!(content_range, None, "200 with Content-Range for {sent:?}");
            assert_eq!(size, BodySize::Sized(len as u64), "200 size for {sent:?}");
            let expected: &[u8] = if head { &[] } else { content };
            assert_eq!(&body[..], expected, "200 body for {sent:?}");
        }
        StatusCode::PARTIAL_CONTENT => {
            assert!(byte_range, "206 without a byte range: {sent:?}");
            let cr = content_range.unwrap_or_default();
            let spec = cr
                .strip_prefix("bytes ")
                .and_then(|s| s.split_once('/'))
                .and_then(|(range, total)| {
                    let (a, b) = range.split_once('-')?;
                    Some((
                        a.parse::<usize>().ok()?,
                        b.parse::<usize>().ok()?,
                        total.parse::<usize>().ok()?,
                    ))
                });
            let Some((a, b, total)) = spec else {
                panic!("206 with Content-Range {cr:?} for {sent:?}");
            };
            assert!(
                a <= b && b < len && total == len,
                "{cr:?} for a {len}-byte file"
            );
            assert_eq!(&body[..], &content[a..=b], "206 body for {cr:?}");
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            assert!(byte_range, "416 without a byte range: {sent:?}");
            assert_eq!(content_range, Some(format!("bytes */{len}")));
            assert_eq!(
                header_of(header::CACHE_CONTROL).as_deref(),
                Some("no-store")
            );
            assert!(body.is_empty());
        }
        StatusCode::NOT_MODIFIED => {
            assert!(has(&header::IF_NONE_MATCH) || has(&header::IF_MODIFIED_SINCE));
            assert!(body.is_empty());
        }
        StatusCode::PRECONDITION_FAILED => {
            assert!(has(&header::IF_MATCH), "412 without If-Match");
            assert_eq!(
                header_of(header::CACHE_CONTROL).as_deref(),
                Some("no-store")
            );
            assert!(body.is_empty());
        }
        other => panic!("unexpected {other} for {sent:?}"),
    }
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// A file `VEZA_ORIGIN_SECRET_FILE` may name (the fuzzer never picks paths: reading
/// `/dev/zero` would hang, not find a bug).
fn origin_secret_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("veza-fuzz-origin-{}", std::process::id()));
        let _ = std::fs::write(&p, "fuzz-origin-secret-0123456789\n");
        p
    })
}

/// The configuration's printed forms (`Debug`, `effective`, `warnings`, or the error),
/// and the configuration itself when valid.
fn render(map: &BTreeMap<String, String>) -> (String, Option<veza::config::Config>) {
    match veza::config::Config::from_map(map) {
        Err(e) => (e.to_string(), None),
        Ok(cfg) => {
            let mut printed = format!("{cfg:?}\n");
            for (name, value) in cfg.effective() {
                printed.push_str(&format!("{name}={value}\n"));
            }
            for w in cfg.warnings() {
                printed.push_str(&w);
                printed.push('\n');
            }
            (printed, Some(cfg))
        }
    }
}

/// Variables whose values must never be printed.
const SECRET_VARS: &[&str] = &[
    "VEZA_ORIGIN_SECRET",
    "S3_SECRET_ACCESS_KEY",
    "VEZA_MEDIA_SIGNING_KEY",
    "CDN_SECURITY_KEY",
];

/// `Config::from_map` on arbitrary variables, then everything that prints or uses a
/// valid configuration (`effective`, `warnings`, `Debug`, the error's `Display`, loading
/// the CDN signer and signing). An inline secret never shows in what is printed: if its
/// value appears there, it must appear just the same when the secret is replaced by a
/// filler of the same length (so it came from another variable or fixed text).
///
/// Input: lines `NAME=value`; `NAME` is a documented variable or a number (index into
/// `ENV_VARS`); other lines are ignored.
pub fn config(data: &[u8]) {
    use veza::cdn::KeySource;
    use veza::config::ENV_VARS;

    let s = text(data);
    let mut map = BTreeMap::new();
    for line in s.split('\n') {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let var = ENV_VARS.iter().find(|v| v.name() == name).or_else(|| {
            name.parse::<usize>()
                .ok()
                .map(|i| &ENV_VARS[i % ENV_VARS.len()])
        });
        let Some(var) = var else { continue };
        let value = if var.name() == "VEZA_ORIGIN_SECRET_FILE" {
            if value.is_empty() {
                String::new()
            } else if value.len() % 2 == 0 {
                origin_secret_file().display().to_string()
            } else {
                "/nonexistent/veza-fuzz-origin".to_string()
            }
        } else {
            value.to_string()
        };
        map.insert(var.name().to_string(), value);
    }
    let (printed, cfg) = render(&map);
    assert!(!printed.is_empty());
    for &name in SECRET_VARS {
        let Some(secret) = map.get(name) else {
            continue;
        };
        if secret.len() < 8 || !printed.contains(secret.as_str()) {
            continue;
        }
        let mut other = map.clone();
        other.insert(name.to_string(), "Z".repeat(secret.len()));
        let (baseline, _) = render(&other);
        assert!(
            baseline.contains(secret.as_str()),
            "{name}={secret:?} is printed:\n{printed}"
        );
    }

    // A valid CDN configuration with an inline key loads and signs without I/O.
    let Some(cfg) = cfg else { return };
    let inline = matches!(cfg.cdn.key, Some(KeySource::Inline(_)));
    if cfg.cdn.enabled
        && inline
        && cfg.cdn.provider.is_some_and(|p| p != Provider::CloudFront)
        && let Ok(signer) = veza::cdn::keys::load(&cfg.cdn, None)
    {
        let base = cfg.cdn.base_url.as_deref().unwrap_or("https://cdn.example");
        let mut req = SignRequest::new(
            format!("{base}/hls/7/master.m3u8"),
            1_700_003_600,
            1_700_000_000,
        );
        req.scope = if signer.provider() != Provider::Cloudflare {
            Scope::Directory
        } else {
            Scope::File
        };
        let _ = signer.sign(&req);
    }
}
