#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests (proptest) for the invariants of docs/RELIABILITY.md, "Fuzzing":
//!
//! * `normalize` never panics and is idempotent;
//! * `verify(sign(x))` accepts, and any single-byte change of the token, the signed
//!   path, the expiry or the scope is refused — the `/media` tokens (`LocalSigner`,
//!   checked the way the route parses its URL) and every HMAC CDN provider (Bunny V1/V2,
//!   Cloudflare, Akamai, nginx). A directory-scoped token covers every file name of its
//!   directory, so changing the file name keeps it valid (that is the point of it), and a
//!   change that only switches the case of a hex digit of a percent-escape (or of
//!   Akamai's hex hmac) denotes the same bytes and is accepted by the edges this mirrors;
//!   everything else is refused. CloudFront is asymmetric (no `verify` here);
//! * a validated name or key never resolves outside the track directory, and the
//!   segment names a served playlist may contain follow the same rule.

use std::path::{Component, Path};

use proptest::prelude::*;
use proptest::sample::select;
use veza::cdn::Scope;
use veza::cdn::{
    BunnyTokenVersion, PreparedSigner, Provider, ProviderConfig, SignRequest, VerifyContext,
};
use veza::delivery::local_token::{LocalSigner, parse_expiry};
use veza::hls::naming::validate_hls_name;
use veza::hls::naming::validate_segment;
use veza::n1::normalize;
use veza::store::layout::{directory_of, validate_key};

/// `n` cases, no regression files written next to the sources (a failure prints its
/// minimal input; add it as an explicit test).
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// normalize
// ---------------------------------------------------------------------------

/// One SQL-ish token: keywords, identifiers, literals of every kind the lexer knows,
/// comments, operators, or any character.
fn sql_token() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "SELECT",
            "select",
            "FROM",
            "WHERE",
            "IN",
            "in",
            "VALUES",
            "values",
            "AND",
            "OR",
            "NOT",
            "IS",
            "NULL",
            "LIMIT",
            "INSERT",
            "INTO",
            "UPDATE",
            "SET",
            "DELETE",
            "WITH",
            "AS",
            "ONLY",
            "RETURNING",
            "true",
            "FALSE",
            "*",
            "(",
            ")",
            ",",
            ".",
            ";",
            "::",
            ":",
            "=",
            "-",
            "+",
            "<>",
            "?",
            "?|",
            "$1",
            "$22",
            "$$",
            "$$x$$",
            "$t$ q $t$",
            "E'a\\'b'",
            "B'01'",
            "X'ff'",
            "N'x'",
            "''",
            "'it''s'",
            "\"Q\"",
            "\"a\"\"b\"",
            "`t`",
            "--c\n",
            "/* c */",
            "/* a /* b */ c */",
            "/*",
            "*/",
            "-5",
            "1.5e3",
            ".5",
            "0xFF",
            "0x",
            "1e",
            "[",
            "]",
            "\\",
            "'",
            "\"",
            "`",
        ])
        .prop_map(String::from),
        "[a-zA-Z_][a-zA-Z0-9_$]{0,8}",
        "[0-9]{1,5}(\\.[0-9]{0,3})?([eE][+-]?[0-9]{1,2})?",
        "'[^']{0,6}'",
        "\"[^\"]{0,6}\"",
        any::<char>().prop_map(String::from),
    ]
}

fn sql_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (sql_token(), select(vec!["", " ", "\n", "\t", "  "])),
        0..40,
    )
    .prop_map(|v| v.into_iter().map(|(t, s)| format!("{t}{s}")).collect())
}

proptest! {
    #![proptest_config(cases(3000))]

    #[test]
    fn normalize_is_idempotent_on_sql(sql in sql_text()) {
        let n = normalize(&sql);
        prop_assert_eq!(normalize(&n), n, "input {:?}", sql);
    }

    #[test]
    fn normalize_is_idempotent_on_any_text(sql in any::<String>()) {
        let n = normalize(&sql);
        prop_assert_eq!(normalize(&n), n, "input {:?}", sql);
    }

    #[test]
    fn normalize_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let sql = String::from_utf8_lossy(&bytes);
        let _ = normalize(&sql);
        let _ = veza::n1::classify(&sql);
    }
}

// ---------------------------------------------------------------------------
// Shared: storage keys, single-byte changes
// ---------------------------------------------------------------------------

fn dir_segment() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_-]{0,8}"
}

fn file_name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_-]{0,8}\\.(ts|m3u8|m4s|aac|mp4|wav|mp3)"
}

/// `hls/3/seg-a.ts`-like keys: 1 to 3 directories and a file name.
fn storage_key() -> impl Strategy<Value = String> {
    (prop::collection::vec(dir_segment(), 1..4), file_name())
        .prop_map(|(dirs, file)| format!("{}/{file}", dirs.join("/")))
}

/// `s` with the byte at `i` replaced by `b` (ASCII), or `None` if that is no change.
fn with_byte(s: &str, i: usize, b: u8) -> Option<String> {
    let mut v = s.as_bytes().to_vec();
    if v[i] == b {
        return None;
    }
    v[i] = b;
    String::from_utf8(v).ok()
}

/// Whether replacing `s[i]` by `b` only switches the case of a hex digit of a `%XX`
/// escape (the same encoded byte).
fn escape_case_flip(s: &str, i: usize, b: u8) -> bool {
    let v = s.as_bytes();
    let old = v[i];
    let in_escape = (i >= 1 && v[i - 1] == b'%') || (i >= 2 && v[i - 2] == b'%');
    in_escape && old.is_ascii_hexdigit() && old != b && old.eq_ignore_ascii_case(&b)
}

// ---------------------------------------------------------------------------
// /media tokens (LocalSigner), checked the way the route parses its URL
// ---------------------------------------------------------------------------

/// The longest token lifetime the signers below accept (`age` stays under it).
const MEDIA_TTL: std::time::Duration = std::time::Duration::from_secs(1_000_000);

/// What `GET /media/{scope}/{expires}/{token}/{key:.*}?filename=` does before serving:
/// parse the scope and expiry, validate the key, verify the token.
fn media_accepts(signer: &LocalSigner, path: &str, filename: Option<&str>, now: u64) -> bool {
    let Some(rest) = path.strip_prefix("/media/") else {
        return false;
    };
    let mut p = rest.splitn(4, '/');
    let (Some(scope), Some(expires), Some(token), Some(key)) =
        (p.next(), p.next(), p.next(), p.next())
    else {
        return false;
    };
    let (Some(scope), Ok(expires), Ok(key)) = (
        Scope::parse(scope),
        parse_expiry(expires),
        validate_key(key),
    ) else {
        return false;
    };
    signer
        .verify(scope, key, expires, token, filename, now)
        .is_ok()
}

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn media_token_round_trips_and_refuses_every_single_byte_change(
        secret in prop::collection::vec(any::<u8>(), 32..64),
        key in storage_key(),
        directory in any::<bool>(),
        expires in 1u64..=99_999_999_999,
        age in 0u64..1_000_000,
        filename in proptest::option::of("[ -~]{1,24}"),
        b in 0x21u8..0x7f,
    ) {
        let signer = LocalSigner::new(&secret, MEDIA_TTL).unwrap();
        let scope = if directory { Scope::Directory } else { Scope::File };
        let now = expires.saturating_sub(age);
        let url = signer.sign(scope, &key, expires, filename.as_deref());
        let path = url.split_once('?').map_or(url.as_str(), |(p, _)| p);
        prop_assert!(media_accepts(&signer, path, filename.as_deref(), now), "{}", url);
        prop_assert!(media_accepts(&signer, path, filename.as_deref(), expires));
        prop_assert!(!media_accepts(&signer, path, filename.as_deref(), expires + 1), "expired");

        // Where the key and its file name start in the URL path.
        let key_at = path.len() - key.len();
        let file_at = key_at + directory_of(&key).len();
        for i in "/media/".len()..path.len() {
            let Some(changed) = with_byte(path, i, b) else { continue };
            let accepted = media_accepts(&signer, &changed, filename.as_deref(), now);
            // A directory token covers the other plain files of its directory.
            let same_dir_file = scope == Scope::Directory
                && i >= file_at
                && b != b'/'
                && validate_key(&changed[key_at..]).is_ok();
            prop_assert_eq!(
                accepted,
                same_dir_file,
                "change at {} of {} → {}",
                i,
                path,
                changed
            );
        }
        // The scope letter itself: d ↔ f.
        let other = path.replacen(
            &format!("/media/{}/", scope.as_str()),
            if directory { "/media/f/" } else { "/media/d/" },
            1,
        );
        prop_assert!(!media_accepts(&signer, &other, filename.as_deref(), now));
        // The download name is signed too.
        if let Some(f) = &filename {
            for i in 0..f.len() {
                if let Some(g) = with_byte(f, i, b) {
                    prop_assert!(!media_accepts(&signer, path, Some(&g), now), "{:?}", g);
                }
            }
        }
        // Another key never verifies.
        let mut other_secret = secret;
        other_secret[0] ^= 1;
        let other_signer = LocalSigner::new(&other_secret, MEDIA_TTL).unwrap();
        prop_assert!(!media_accepts(&other_signer, path, filename.as_deref(), now));
    }
}

// ---------------------------------------------------------------------------
// HMAC CDN providers
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    BunnyV2,
    BunnyV1,
    Cloudflare,
    CloudflareUrlSafe,
    Akamai,
    Nginx,
}

fn signer_for(f: Flavour, key: &str) -> PreparedSigner {
    let cfg = match f {
        Flavour::BunnyV2 => ProviderConfig::new(Provider::Bunny, key),
        Flavour::BunnyV1 => {
            let mut c = ProviderConfig::new(Provider::Bunny, key);
            c.bunny_token_version = BunnyTokenVersion::V1Legacy;
            c
        }
        Flavour::Cloudflare => ProviderConfig::new(Provider::Cloudflare, key),
        Flavour::CloudflareUrlSafe => {
            let mut c = ProviderConfig::new(Provider::Cloudflare, key);
            c.cloudflare_url_safe = true;
            c
        }
        Flavour::Akamai => {
            let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
            ProviderConfig::new(Provider::Akamai, hex)
        }
        Flavour::Nginx => ProviderConfig::new(Provider::Nginx, key),
    };
    PreparedSigner::new(&cfg).unwrap()
}

/// Byte ranges of a signed URL, by what they carry.
#[derive(Debug, Default)]
struct Parts {
    /// The part of the path the token covers (a directory token: up to the last `/`).
    path: Vec<std::ops::Range<usize>>,
    /// The signature itself.
    token: Vec<std::ops::Range<usize>>,
    /// Expiry (Cloudflare: the issue timestamp the rule adds its TTL to).
    expiry: Vec<std::ops::Range<usize>>,
    /// Scope carried in the URL: Bunny's `token_path`, Akamai's ACL.
    scope: Vec<std::ops::Range<usize>>,
    /// Other signed fields (Cloudflare: the query; Bunny: the query parameters;
    /// Akamai: `st`).
    other: Vec<std::ops::Range<usize>>,
}

/// The value after `start` (an index) up to the first of `ends` or the end.
fn until(s: &str, start: usize, ends: &[char]) -> std::ops::Range<usize> {
    let end = s[start..].find(ends).map_or(s.len(), |e| start + e);
    start..end
}

fn after(s: &str, marker: &str, ends: &[char]) -> Option<std::ops::Range<usize>> {
    s.rfind(marker).map(|i| until(s, i + marker.len(), ends))
}

fn parts_of(f: Flavour, signed: &str, origin_len: usize, path: &str, directory: bool) -> Parts {
    let covered = |at: usize| {
        let len = if directory {
            path.rfind('/').map_or(path.len(), |i| i + 1)
        } else {
            path.len()
        };
        at..at + len
    };
    let mut p = Parts::default();
    match f {
        Flavour::BunnyV2 | Flavour::BunnyV1 => {
            let path_at = if signed[origin_len..].starts_with("/bcdn_token=") {
                signed.len() - path.len()
            } else {
                origin_len
            };
            p.path.push(covered(path_at));
            let params_end = if path_at == origin_len {
                signed.len()
            } else {
                path_at
            };
            let params = &signed[..params_end];
            p.token.extend(after(params, "token=", &['&']));
            p.expiry.extend(after(params, "&expires=", &['&', '/']));
            p.scope.extend(after(params, "&token_path=", &['&']));
            // The user's query parameters, re-encoded between the token and `expires`.
            if let (Some(t), Some(e)) = (p.token.first(), p.expiry.first()) {
                let between = t.end..e.start - "&expires=".len();
                if let Some(s) = p.scope.first() {
                    p.other.push(between.start..s.start - "&token_path=".len());
                    p.other.push(s.end..between.end);
                } else {
                    p.other.push(between);
                }
            }
        }
        Flavour::Cloudflare | Flavour::CloudflareUrlSafe => {
            p.path.push(covered(origin_len));
            let v = signed.rfind("verify=").unwrap();
            let ts = until(signed, v + "verify=".len(), &['-']);
            p.token.push(ts.end + 1..signed.len());
            p.expiry.push(ts);
            p.other.push(origin_len + path.len()..v - 1);
        }
        Flavour::Akamai => {
            p.path.push(covered(origin_len));
            p.token.extend(after(signed, "~hmac=", &['&']));
            p.expiry.extend(after(signed, "exp=", &['~']));
            p.scope.extend(after(signed, "~acl=", &['~']));
            p.other.extend(after(signed, "st=", &['~']));
        }
        Flavour::Nginx => {
            p.path.push(covered(origin_len));
            p.token.extend(after(signed, "md5=", &['&']));
            p.expiry.extend(after(signed, "&expires=", &['&']));
        }
    }
    p
}

fn flavour() -> impl Strategy<Value = Flavour> {
    select(vec![
        Flavour::BunnyV2,
        Flavour::BunnyV1,
        Flavour::Cloudflare,
        Flavour::CloudflareUrlSafe,
        Flavour::Akamai,
        Flavour::Nginx,
    ])
}

proptest! {
    #![proptest_config(cases(1500))]

    #[test]
    fn cdn_verify_accepts_signed_urls_and_refuses_single_byte_changes(
        f in flavour(),
        key in "[ -~]{8,40}",
        key_path in storage_key(),
        query in proptest::option::of(prop::collection::vec("[a-z]{1,3}=[a-zA-Z0-9]{1,4}", 1..3)),
        directory in any::<bool>(),
        issued_at in 1_600_000_000u64..1_900_000_000,
        ttl in 1u64..86_400,
        b in 0x21u8..0x7f,
    ) {
        let signer = signer_for(f, &key);
        let cloudflare = matches!(f, Flavour::Cloudflare | Flavour::CloudflareUrlSafe);
        let directory = directory && !cloudflare;
        let origin = "https://cdn.example";
        let path = format!("/{key_path}");
        // Distinct parameter names: Bunny refuses duplicates.
        let query = query.map(|q| {
            let mut seen = std::collections::HashSet::new();
            q.into_iter()
                .filter(|kv| seen.insert(kv.split('=').next().unwrap_or("").to_string()))
                .collect::<Vec<_>>()
                .join("&")
        });
        let url = match &query {
            Some(q) => format!("{origin}{path}?{q}"),
            None => format!("{origin}{path}"),
        };
        let scope = if directory { Scope::Directory } else { Scope::File };
        let mut req = SignRequest::new(url, issued_at + ttl, issued_at);
        req.scope = scope;
        let signed = signer.sign(&req).unwrap();
        let ctx = VerifyContext { now: issued_at, client_ip: None, scope };
        prop_assert_eq!(signer.verify(&signed, &ctx), Ok(()), "{}", signed);
        // Still valid at the last second, expired after (Cloudflare: the rule's TTL).
        let last = match f {
            Flavour::Cloudflare | Flavour::CloudflareUrlSafe => issued_at + 3600,
            Flavour::Nginx => issued_at + ttl, // nginx: `expires < now` is expired
            _ => issued_at + ttl - 1,
        };
        let late = VerifyContext { now: last, ..ctx };
        prop_assert_eq!(signer.verify(&signed, &late), Ok(()));
        let expired = VerifyContext { now: last + 1, ..ctx };
        prop_assert!(signer.verify(&signed, &expired).is_err(), "valid after expiry");
        // nginx's scope lives in the edge's location: the other scope refuses the token.
        if f == Flavour::Nginx {
            let other = VerifyContext { scope: if directory { Scope::File } else { Scope::Directory }, ..ctx };
            prop_assert!(signer.verify(&signed, &other).is_err());
        }
        // A directory token covers a sibling file.
        if directory {
            let sibling = signed.replacen(&path, &format!("{}other.ts", directory_of(&path)), 1);
            prop_assert_eq!(signer.verify(&sibling, &ctx), Ok(()), "{}", sibling);
        }

        let parts = parts_of(f, &signed, origin.len(), &path, directory);
        prop_assert!(!parts.token.is_empty() && !parts.expiry.is_empty(), "{:?} {}", parts, signed);
        let groups = [
            ("path", &parts.path),
            ("token", &parts.token),
            ("expiry", &parts.expiry),
            ("scope", &parts.scope),
            ("signed field", &parts.other),
        ];
        for (what, ranges) in groups {
            for i in ranges.iter().flat_map(|r| r.clone()) {
                let Some(changed) = with_byte(&signed, i, b) else { continue };
                let hex_case = f == Flavour::Akamai
                    && what == "token"
                    && signed.as_bytes()[i].eq_ignore_ascii_case(&b);
                if hex_case || escape_case_flip(&signed, i, b) {
                    continue; // the same bytes, differently spelt
                }
                prop_assert!(
                    signer.verify(&changed, &ctx).is_err(),
                    "{:?}: changing the {} at {} of {} to {:?} is accepted: {}",
                    f,
                    what,
                    i,
                    signed,
                    b as char,
                    changed
                );
            }
        }
        // Another key never verifies.
        let other = signer_for(f, &format!("{key}x"));
        prop_assert!(other.verify(&signed, &ctx).is_err());
    }
}

// ---------------------------------------------------------------------------
// Validated names stay in the track directory
// ---------------------------------------------------------------------------

/// Names built from the pieces of traversal attacks (and plain name characters).
fn hostile_name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        select(vec![
            "a", "Z", "0", "-", "_", ".", "..", "/", "\\", "%", "%2e", "%2E", "%2f", "%5c", "%00",
            "%252e", "\0", "\n", " ", ":", "~", "\u{2024}", "\u{ff0e}", "\u{2215}", "\u{ff0f}",
            "ts", "m3u8", ".ts", ".m3u8", "seg", "C:", "//", "./", "../",
        ]),
        0..12,
    )
    .prop_map(|v| v.concat())
}

fn name_input() -> impl Strategy<Value = String> {
    prop_oneof![hostile_name(), any::<String>(), "[ -~]{0,16}"]
}

fn only_normal(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::Normal(_)))
}

proptest! {
    #![proptest_config(cases(5000))]

    #[test]
    fn validated_names_stay_in_the_track_directory(name in name_input()) {
        let track_dir = Path::new("/srv/veza/media/hls/7");
        if validate_segment(&name).is_ok() {
            let joined = track_dir.join(&name);
            prop_assert_eq!(joined.parent(), Some(track_dir), "{:?}", name);
            prop_assert!(only_normal(Path::new(&name)), "{:?}", name);
            prop_assert_eq!(Path::new(&name).components().count(), 1);
        }
        if validate_hls_name(&name).is_ok() {
            prop_assert!(validate_segment(&name).is_ok());
            // As the HLS origin composes it: `{hls_prefix}/{file}`.
            let key = format!("hls/7/{name}");
            prop_assert!(validate_key(&key).is_ok());
            let joined = Path::new("/srv/veza/media").join(&key);
            prop_assert_eq!(joined.parent(), Some(track_dir));
        }
        if validate_key(&name).is_ok() {
            let joined = track_dir.join(&name);
            prop_assert!(joined.starts_with(track_dir), "{:?}", name);
            prop_assert!(only_normal(Path::new(&name)), "{:?}", name);
            prop_assert!(!name.contains(['\\', '%', '\0']) && !name.contains(".."), "{:?}", name);
        }
    }
}

/// The fixed attack list stays refused (also checked in the unit tests; here through
/// the same helper as the properties).
#[test]
fn traversal_corpus_never_validates() {
    for name in veza::hls::naming::TRAVERSAL_CORPUS {
        assert!(validate_hls_name(name).is_err(), "{name:?}");
    }
}
