//! Akamai EdgeAuth token 2.0 (reference: the `akamai-edgeauth` package).
//!
//! Token: `[ip=<ip>~][st=<issued_at>~]exp=<expires>~acl=<acl>~hmac=<hex>`, where `hmac` is
//! lowercase hex HMAC-SHA256, keyed with the **hex-decoded** key, over the fields before
//! `~hmac=` joined with `~`. `st=` is emitted when `issued_at != 0`.
//!
//! This implementation always uses **ACL mode** (never URL mode): `acl` is the raw
//! (percent-encoded, as sent) URL path, or `<directory>/*` when `directory` is set, which is
//! what HLS/DASH needs (`/hls/42/*` covers the playlist and every segment). ACL mode keeps
//! the token re-usable for all URLs it covers; URL mode would bind one exact URL.
//!
//! The token is appended as `?__token__=<token>` (or `&…`), unencoded, like the reference
//! examples (`~ = / * ! :` are valid in a query). Geo, speed limits, `token_path` and
//! `ignore_params` are unsupported (Akamai does geo in property rules).

use std::fmt;

use hmac::Mac;

use super::{
    Expressible, HmacSha256, Provider, ProviderConfig, SignError, SignRequest, SplitUrl,
    VerifyContext, VerifyError, reject,
};
use crate::cdn::Scope;

const P: Provider = Provider::Akamai;

/// Akamai signer with the hex-decoded key pre-loaded into HMAC state.
pub struct AkamaiSigner {
    mac: HmacSha256,
    token_name: String,
}

impl fmt::Debug for AkamaiSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AkamaiSigner")
            .field("key", &"[redacted]")
            .field("token_name", &self.token_name)
            .finish()
    }
}

/// `*` glob (as in Akamai ACLs): `*` matches any run of characters.
fn acl_matches(acl: &str, path: &str) -> bool {
    let mut parts = acl.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = path.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    if parts.is_empty() {
        return rest.is_empty();
    }
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

impl AkamaiSigner {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, SignError> {
        let key_text = std::str::from_utf8(cfg.security_key.expose())
            .map_err(|_| SignError::InvalidKey("akamai: key must be hex text".into()))?;
        let key = hex::decode(key_text.trim())
            .map_err(|_| SignError::InvalidKey("akamai: key is not valid hex".into()))?;
        let mac = super::hmac_key(P, &key)?;
        let token_name = cfg.akamai_token_name.clone();
        if token_name.is_empty()
            || !token_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(SignError::InvalidConfig(
                "akamai: token name must be [A-Za-z0-9_-]+".into(),
            ));
        }
        Ok(AkamaiSigner { mac, token_name })
    }

    fn hmac_hex(&self, fields: &str) -> String {
        let mut m = self.mac.clone();
        m.update(fields.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// The bare token for an ACL (exposed for cookies / headers).
    pub fn token(&self, acl: &str, req: &SignRequest) -> String {
        let mut fields = String::with_capacity(acl.len() + 64);
        if let Some(ip) = &req.user_ip {
            fields.push_str("ip=");
            fields.push_str(&ip.to_string());
            fields.push('~');
        }
        if req.issued_at != 0 {
            fields.push_str("st=");
            fields.push_str(&req.issued_at.to_string());
            fields.push('~');
        }
        fields.push_str("exp=");
        fields.push_str(&req.expires_at.to_string());
        fields.push_str("~acl=");
        fields.push_str(acl);
        let mac = self.hmac_hex(&fields);
        fields.push_str("~hmac=");
        fields.push_str(&mac);
        fields
    }

    pub fn sign(&self, req: &SignRequest) -> Result<String, SignError> {
        reject(P, req, Expressible::DIRECTORY_AND_IP)?;
        let u = SplitUrl::parse(&req.url)?;
        // `&` too: the token goes unencoded into the query, where `&` would cut it short.
        if u.path.contains(['~', '!', '&']) {
            return Err(SignError::InvalidUrl(
                "akamai: '~', '!' and '&' are token delimiters; percent-encode them".into(),
            ));
        }
        if super::query_param(u.query, &self.token_name).is_some() {
            return Err(SignError::InvalidUrl("url already carries a token".into()));
        }
        let token = if req.scope == Scope::Directory {
            let mut acl = super::directory_prefix(u.path).to_owned();
            acl.push('*');
            self.token(&acl, req)
        } else {
            self.token(u.path, req)
        };
        let mut out = String::with_capacity(req.url.len() + token.len() + 16);
        out.push_str(&req.url);
        out.push_str(if u.query.is_some() { "&" } else { "?" });
        out.push_str(&self.token_name);
        out.push('=');
        out.push_str(&token);
        Ok(out)
    }

    /// Mirror of the edge check: hmac, `st`/`exp` window, `ip`, and that one `!`-separated
    /// ACL covers the request path.
    pub fn verify(&self, signed_url: &str, ctx: &VerifyContext) -> Result<(), VerifyError> {
        let u = SplitUrl::parse(signed_url).map_err(|_| VerifyError::Malformed("url"))?;
        let token =
            super::query_param(u.query, &self.token_name).ok_or(VerifyError::MissingToken)?;
        let at = token
            .rfind("~hmac=")
            .ok_or(VerifyError::Malformed("missing hmac"))?;
        let (fields, mac) = (&token[..at], &token[at + "~hmac=".len()..]);
        let given = hex::decode(mac).map_err(|_| VerifyError::BadSignature)?;
        let mut m = self.mac.clone();
        m.update(fields.as_bytes());
        m.verify_slice(&given)
            .map_err(|_| VerifyError::BadSignature)?;
        let (mut exp, mut st, mut ip, mut acl) = (None, None, None, None);
        for f in fields.split('~') {
            match f.split_once('=') {
                Some(("exp", v)) => exp = v.parse::<u64>().ok(),
                Some(("st", v)) => {
                    st = Some(v.parse::<u64>().map_err(|_| VerifyError::Malformed("st"))?)
                }
                Some(("ip", v)) => ip = Some(v),
                Some(("acl", v)) => acl = Some(v),
                _ => {}
            }
        }
        let exp = exp.ok_or(VerifyError::Malformed("exp"))?;
        if ctx.now >= exp {
            return Err(VerifyError::Expired);
        }
        if st.is_some_and(|st| ctx.now < st) {
            return Err(VerifyError::NotYetValid);
        }
        if let Some(ip) = ip
            && ctx.client_ip.map(|c| c.to_string()).as_deref() != Some(ip)
        {
            return Err(VerifyError::IpMismatch);
        }
        let acl = acl.ok_or(VerifyError::Unsupported("url-mode tokens"))?;
        if !acl.split('!').any(|a| acl_matches(a, u.path)) {
            return Err(VerifyError::PathMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(acl_matches("/hls/42/*", "/hls/42/seg1.ts"));
        assert!(acl_matches("/hls/42/*", "/hls/42/"));
        assert!(!acl_matches("/hls/42/*", "/hls/420/seg1.ts"));
        assert!(acl_matches("/a/b.mp4", "/a/b.mp4"));
        assert!(!acl_matches("/a/b.mp4", "/a/b.mp4x"));
        assert!(acl_matches("/v/*/x.ts", "/v/1/2/x.ts"));
        assert!(!acl_matches("/v/*/x.ts", "/v/1/y.ts"));
    }

    #[test]
    fn invalid_hex_key() {
        let c = ProviderConfig::new(Provider::Akamai, "not-hex-SECRET");
        let e = AkamaiSigner::new(&c).unwrap_err();
        assert!(matches!(e, SignError::InvalidKey(_)));
        assert!(!e.to_string().contains("SECRET"));
    }
}
