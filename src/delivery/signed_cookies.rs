//! The `Set-Cookie` header values of cookies mode, derived once per signature and kept
//! beside it. A reused signature (one per track and reuse bucket, see
//! [`crate::actors::cdn_signer::SignatureCache`]) is turned into cookies once: the signed
//! URL is parsed, each cookie formatted up to its `Max-Age=`, and the header values built
//! at most once per second (only `Max-Age`, the seconds left until the signature expires,
//! changes between answers). An answer then costs one map lookup and the clone of an
//! `Arc`; no parse, no formatting, no header validation.
//!
//! `Max-Age` rather than a fixed `Expires`: `Expires` is read against the browser's
//! clock, so a client whose clock is off would drop the cookies early (playback fails
//! until it asks again) or keep them after the CDN refuses them; `Max-Age` counts from
//! receipt (RFC 6265 §5.2.2, and it wins over `Expires`), so the cookies live exactly as
//! long as the signature whatever the client's clock says.
//!
//! Every cookie is `HttpOnly`, `SameSite=None` and `Secure`, with the directory's `Path`
//! and the configured `Domain`; the text is byte for byte what `actix_web::cookie`
//! formats for the same cookie (see the tests).

use std::fmt::Write;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::HeaderValue;

use crate::actors::cdn_signer::SignedUrl;
use crate::cdn::SignError;

/// The `Set-Cookie` values of one answer, shared by every answer of the same second.
pub type SetCookies = Arc<[HeaderValue]>;

/// Entries: one per track directory signed in the current bucket (as the reuse map).
const CAPACITY: u64 = 16_384;

/// One signature's cookies.
struct CookieSet {
    /// The signed URL they were derived from: a new signature (next bucket, new key)
    /// replaces the set.
    signed_url: String,
    expires_at: u64,
    /// Each cookie's text up to and including `Max-Age=`.
    prefixes: Vec<String>,
    /// The header values for the second they were built in.
    current: RwLock<Option<(u64, SetCookies)>>,
}

impl CookieSet {
    fn new(
        signed: &SignedUrl,
        pairs: Vec<(String, String)>,
        domain: Option<&str>,
        path: &str,
    ) -> CookieSet {
        let prefixes = pairs
            .into_iter()
            .map(|(name, value)| {
                let mut cookie = Cookie::new(name, value);
                if let Some(d) = domain {
                    cookie.set_domain(d.to_string());
                }
                cookie.set_path(path.to_string());
                cookie.set_secure(true);
                cookie.set_http_only(true);
                cookie.set_same_site(SameSite::None);
                format!("{cookie}; Max-Age=")
            })
            .collect();
        CookieSet {
            signed_url: signed.url.clone(),
            expires_at: signed.expires_at,
            prefixes,
            current: RwLock::new(None),
        }
    }

    /// The header values at `now` (unix seconds): built once per second.
    fn at(&self, now: u64) -> Result<SetCookies, SignError> {
        if let Some((second, values)) = read(&self.current)
            && second == now
        {
            return Ok(values);
        }
        let max_age = self.expires_at.saturating_sub(now);
        let values = self
            .prefixes
            .iter()
            .map(|p| {
                let mut text = String::with_capacity(p.len() + 20);
                text.push_str(p);
                let _ = write!(text, "{}", max_age.min(i64::MAX as u64));
                HeaderValue::try_from(text)
                    .map_err(|e| SignError::InvalidRequest(format!("cookie header: {e}")))
            })
            .collect::<Result<SetCookies, _>>()?;
        match self.current.write() {
            Ok(mut c) => *c = Some((now, values.clone())),
            Err(poisoned) => *poisoned.into_inner() = Some((now, values.clone())),
        }
        Ok(values)
    }
}

fn read(current: &RwLock<Option<(u64, SetCookies)>>) -> Option<(u64, SetCookies)> {
    match current.read() {
        Ok(c) => c.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// The cookie sets of the signatures in use, by track directory.
pub struct CookieCache {
    sets: moka::sync::Cache<String, Arc<CookieSet>>,
}

impl CookieCache {
    /// Entries live `keep` (twice the reuse bucket: after that their signature is no
    /// longer the one handed out).
    pub fn new(keep: Duration) -> CookieCache {
        CookieCache {
            sets: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(keep)
                .build(),
        }
    }

    /// The `Set-Cookie` values for `signed`, the signature of the directory `dir`
    /// (`hls/3/`; the cookies' `Path` is `/hls/3/`), at `now`. `derive` turns the signed
    /// URL into (name, value) pairs; it runs only when this signature has no cookies yet.
    pub fn headers(
        &self,
        signed: &SignedUrl,
        domain: Option<&str>,
        dir: &str,
        now: u64,
        derive: impl FnOnce(&str) -> Result<Vec<(String, String)>, SignError>,
    ) -> Result<SetCookies, SignError> {
        if let Some(set) = self.sets.get(dir)
            && set.expires_at == signed.expires_at
            && set.signed_url == signed.url
        {
            return set.at(now);
        }
        let path = format!("/{dir}");
        let set = Arc::new(CookieSet::new(signed, derive(&signed.url)?, domain, &path));
        let values = set.at(now)?;
        self.sets.insert(dir.to_string(), set);
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(url: &str, expires_at: u64) -> SignedUrl {
        SignedUrl {
            url: url.to_string(),
            expires_at,
        }
    }

    fn pairs(url: &str) -> Result<Vec<(String, String)>, SignError> {
        crate::cdn::token_forms::cookies(crate::cdn::Provider::CloudFront, url, "__token__")
    }

    /// What `HttpResponseBuilder::cookie` sends for the same cookie.
    fn actix_formats(name: &str, value: &str, max_age: i64) -> String {
        let mut cookie = Cookie::new(name.to_string(), value.to_string());
        cookie.set_domain("example.com");
        cookie.set_path("/hls/3/");
        cookie.set_secure(true);
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::None);
        cookie.set_max_age(actix_web::cookie::time::Duration::seconds(max_age));
        cookie.to_string()
    }

    const URL: &str =
        "https://d.cloudfront.net/hls/3/master.m3u8?Policy=P~&Signature=S_&Key-Pair-Id=K1";

    #[test]
    fn headers_are_what_actix_formats() {
        let cache = CookieCache::new(Duration::from_secs(60));
        let got = cache
            .headers(
                &signed(URL, 1_000),
                Some("example.com"),
                "hls/3/",
                400,
                pairs,
            )
            .unwrap();
        let got: Vec<&str> = got.iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(
            got,
            [
                actix_formats("CloudFront-Policy", "P~", 600),
                actix_formats("CloudFront-Signature", "S_", 600),
                actix_formats("CloudFront-Key-Pair-Id", "K1", 600),
            ]
        );
    }

    #[test]
    fn a_reused_signature_is_parsed_once_and_only_max_age_moves() {
        let cache = CookieCache::new(Duration::from_secs(60));
        let parses = std::cell::Cell::new(0);
        let derive = |u: &str| {
            parses.set(parses.get() + 1);
            pairs(u)
        };
        let s = signed(URL, 1_000);
        let a = cache.headers(&s, None, "hls/3/", 400, derive).unwrap();
        let b = cache.headers(&s, None, "hls/3/", 400, derive).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same second: the same values");
        let c = cache.headers(&s, None, "hls/3/", 401, derive).unwrap();
        assert_eq!(parses.get(), 1);
        assert!(c[0].to_str().unwrap().ends_with("; Max-Age=599"), "{c:?}");
        // Past the expiry: zero, not a wrap-around.
        let d = cache.headers(&s, None, "hls/3/", 2_000, derive).unwrap();
        assert!(d[2].to_str().unwrap().ends_with("; Max-Age=0"), "{d:?}");
        // A new signature (next bucket, or a reloaded key) gets new cookies.
        let next = URL.replace("S_", "T_");
        let e = cache
            .headers(&signed(&next, 1_000), None, "hls/3/", 401, derive)
            .unwrap();
        assert_eq!(parses.get(), 2);
        assert!(
            e[1].to_str()
                .unwrap()
                .starts_with("CloudFront-Signature=T_;")
        );
    }

    #[test]
    fn a_url_without_cookies_is_an_error() {
        let cache = CookieCache::new(Duration::from_secs(60));
        let canned = "https://d.cloudfront.net/a.m3u8?Expires=1&Signature=S&Key-Pair-Id=K";
        assert!(
            cache
                .headers(&signed(canned, 1), None, "", 0, pairs)
                .is_err()
        );
    }
}
