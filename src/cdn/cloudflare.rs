//! Cloudflare WAF `is_timed_hmac_valid_v0` tokens.
//!
//! `verify=<issued_at>-<mac>` is appended as the **last** query parameter (`?` or `&`), where
//! `mac = base64(HMAC-SHA256(key, message ‖ issued_at))`, percent-encoded (all but unreserved).
//! With `cloudflare_url_safe` (the rule's `s` flag) the mac is base64url without padding.
//!
//! `message` is what the rule's `http.request.uri` holds before the `?verify=` / `&verify=`
//! separator: the raw path, plus `?query` if the URL already had one. Without a query this is
//! exactly the documented `path ‖ timestamp`.
//!
//! The timestamp is the **issue** time (`issued_at`); the TTL lives in the firewall rule, so
//! `expires_at` is not embedded (keep it equal to `issued_at + rule TTL`). A prefix /
//! directory token is impossible (the whole URI is MACed): `directory` is unsupported, as are
//! IP lock, geo, speed limits, `token_path` and `ignore_params`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::Mac;

use super::{
    Expressible, HmacSha256, Provider, ProviderConfig, SignError, SignRequest, SplitUrl,
    VerifyContext, VerifyError, encode_value, hmac_key, reject,
};

const P: Provider = Provider::Cloudflare;

/// Pre-keyed Cloudflare signer.
pub struct CloudflareSigner {
    mac: HmacSha256,
    url_safe: bool,
    ttl: u64,
}

impl fmt::Debug for CloudflareSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareSigner")
            .field("key", &"[redacted]")
            .field("url_safe", &self.url_safe)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl CloudflareSigner {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, SignError> {
        Ok(CloudflareSigner {
            mac: hmac_key(P, cfg.security_key.expose())?,
            url_safe: cfg.cloudflare_url_safe,
            ttl: cfg.cloudflare_ttl_secs,
        })
    }

    fn tag(&self, message: &str, ts: &str) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(message.as_bytes());
        m.update(ts.as_bytes());
        m.finalize().into_bytes().into()
    }

    pub fn sign(&self, req: &SignRequest) -> Result<String, SignError> {
        reject(
            P,
            req,
            Expressible {
                directory: false,
                user_ip: false,
            },
        )?;
        if req.issued_at == 0 {
            return Err(SignError::InvalidRequest(
                "cloudflare: issued_at (the token timestamp) must be set".into(),
            ));
        }
        let u = SplitUrl::parse(&req.url)?;
        // The edge cuts the URI at a `?verify=` / `&verify=`: one inside the query text
        // (`?a=b?verify=…`) would be taken for ours (found by fuzzing).
        let pq = u.path_and_query(&req.url);
        if super::query_param(u.query, "verify").is_some()
            || pq.contains("?verify=")
            || pq.contains("&verify=")
        {
            return Err(SignError::InvalidUrl(
                "url already carries a verify parameter".into(),
            ));
        }
        let ts = req.issued_at.to_string();
        // The WAF function only reads 10-digit timestamps (found by fuzzing).
        if ts.len() != 10 {
            return Err(SignError::InvalidRequest(
                "cloudflare: issued_at must be a 10-digit Unix time".into(),
            ));
        }
        let tag = self.tag(u.path_and_query(&req.url), &ts);
        let mut out = String::with_capacity(req.url.len() + 80);
        out.push_str(&req.url);
        out.push_str(if u.query.is_some() { "&" } else { "?" });
        out.push_str("verify=");
        out.push_str(&ts);
        out.push('-');
        if self.url_safe {
            URL_SAFE_NO_PAD.encode_string(tag, &mut out);
        } else {
            out.extend(encode_value(&STANDARD.encode(tag)));
        }
        Ok(out)
    }

    /// Mirror of `is_timed_hmac_valid_v0(key, http.request.uri, ttl, now, 8)`.
    pub fn verify(&self, signed_url: &str, ctx: &VerifyContext) -> Result<(), VerifyError> {
        let u = SplitUrl::parse(signed_url).map_err(|_| VerifyError::Malformed("url"))?;
        let uri = u.path_and_query(signed_url);
        let sep = uri
            .rfind("?verify=")
            .or_else(|| uri.rfind("&verify="))
            .ok_or(VerifyError::MissingToken)?;
        let message = &uri[..sep];
        let value = &uri[sep + "?verify=".len()..];
        let (ts, mac) = value
            .split_once('-')
            .ok_or(VerifyError::Malformed("verify value"))?;
        if ts.len() != 10 {
            return Err(VerifyError::Malformed("timestamp"));
        }
        let ts_n: u64 = ts
            .parse()
            .map_err(|_| VerifyError::Malformed("timestamp"))?;
        let mac = super::percent_decode(mac).map_err(|_| VerifyError::Malformed("mac"))?;
        let given = if self.url_safe {
            URL_SAFE_NO_PAD.decode(mac.as_bytes())
        } else {
            STANDARD.decode(mac.as_bytes())
        }
        .map_err(|_| VerifyError::BadSignature)?;
        let mut m = self.mac.clone();
        m.update(message.as_bytes());
        m.update(ts.as_bytes());
        m.verify_slice(&given)
            .map_err(|_| VerifyError::BadSignature)?;
        if ts_n > ctx.now {
            return Err(VerifyError::NotYetValid);
        }
        if ctx.now - ts_n > self.ttl {
            return Err(VerifyError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdn::Scope;

    fn signer(url_safe: bool) -> CloudflareSigner {
        let mut c = ProviderConfig::new(Provider::Cloudflare, "mysecrettoken");
        c.cloudflare_url_safe = url_safe;
        CloudflareSigner::new(&c).unwrap()
    }

    #[test]
    fn appends_last_param() {
        let mut req = SignRequest::new("https://dl.example.com/f.zip?a=1", 1700003600, 1700000000);
        let url = signer(false).sign(&req).unwrap();
        assert!(url.starts_with("https://dl.example.com/f.zip?a=1&verify=1700000000-"));
        req.url = "https://dl.example.com/f.zip".into();
        let url = signer(true).sign(&req).unwrap();
        assert!(url.starts_with("https://dl.example.com/f.zip?verify=1700000000-"));
        let mac = url.rsplit('-').next().unwrap();
        assert_eq!(mac.len(), 43);
        assert!(!mac.contains('%'));
    }

    #[test]
    fn directory_unsupported() {
        let mut req = SignRequest::new(
            "https://dl.example.com/hls/1/a.m3u8",
            1700003600,
            1700000000,
        );
        req.scope = Scope::Directory;
        assert_eq!(
            signer(false).sign(&req),
            Err(SignError::Unsupported {
                provider: Provider::Cloudflare,
                option: "directory"
            })
        );
    }
}
