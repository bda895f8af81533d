//! Bunny.net token authentication (BunnyWay `BunnyCDN.TokenAuthentication`).
//!
//! * V2 (default): `HS256-` [`1-` when IP-locked] + base64url-no-pad(HMAC-SHA256(key,
//!   signature_path ‖ expires ‖ ip_bytes ‖ signing_data)).
//! * V1 legacy: base64url-no-pad(SHA256(key ‖ signature_path ‖ expires ‖ signing_data ‖ ip)).
//!
//! `signature_path` is `token_path` when set, else the URL path, **percent-decoded** (an
//! encoded path in the hashed string gives 403 at the edge). `signing_data` is every query
//! parameter except `token`/`expires`, sorted by key, `k=v` joined by `&`, with decoded values;
//! in the URL the values are percent-encoded (all but unreserved).
//!
//! URL forms: query `{path}?token=T&{params}&expires=E` (`directory == false`) and path
//! `https://host/bcdn_token=T&{params}&expires=E{path}` (`directory == true`), which HLS/DASH
//! players need so relative segment URLs inherit the token. With `directory` and no explicit
//! `token_path`, a path that does not end in `/` gets `token_path` = its directory
//! (`/hls/42/index.m3u8` → `/hls/42/`); a path ending in `/` is signed as is (the official
//! vectors). `token_path` alone keeps the query form (official `path_only` vector).
//!
//! `ignore_params` reproduces the reference: only `token_ignore_params=true` (+ `token_path`)
//! is signed and the URL's other query parameters are dropped; combining it with countries or
//! a speed limit is refused because the reference would silently drop those restrictions.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use sha2::{Digest, Sha256};

use super::{
    BunnyTokenVersion, HmacSha256, KeyMaterial, Provider, ProviderConfig, SignError, SignRequest,
    SplitUrl, VerifyContext, VerifyError, encode_value, hmac_key, percent_decode, query_pairs,
};
use crate::cdn::Scope;

const P: Provider = Provider::Bunny;

pub(crate) enum BunnyKey {
    V2(HmacSha256),
    V1(KeyMaterial),
}

/// Pre-keyed Bunny signer.
pub struct BunnySigner {
    key: BunnyKey,
}

impl fmt::Debug for BunnySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = match self.key {
            BunnyKey::V2(_) => "V2",
            BunnyKey::V1(_) => "V1Legacy",
        };
        f.debug_struct("BunnySigner")
            .field("version", &v)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Packed IP: 4 bytes for IPv4; IPv6 masked to /64 (first 8 bytes + 8 zero bytes).
pub fn ip_bytes(ip: &IpAddr) -> ([u8; 16], usize) {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (out, 4)
        }
        IpAddr::V6(v6) => {
            out[..8].copy_from_slice(&v6.octets()[..8]);
            (out, 16)
        }
    }
}

fn join_countries(list: &[String], what: &str) -> Result<Option<String>, SignError> {
    let mut out = String::new();
    for c in list.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        if !c.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SignError::InvalidRequest(format!(
                "{what}: country codes must be alphanumeric"
            )));
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(c);
    }
    Ok((!out.is_empty()).then_some(out))
}

impl BunnySigner {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, SignError> {
        let key = match cfg.bunny_token_version {
            BunnyTokenVersion::V2 => BunnyKey::V2(hmac_key(P, cfg.security_key.expose())?),
            BunnyTokenVersion::V1Legacy => {
                if cfg.security_key.is_empty() {
                    return Err(SignError::InvalidKey(
                        "bunny: security key must not be empty".into(),
                    ));
                }
                BunnyKey::V1(cfg.security_key.clone())
            }
        };
        Ok(BunnySigner { key })
    }

    fn token(
        &self,
        signature_path: &str,
        expires: &str,
        ip: Option<&IpAddr>,
        signing_data: &str,
    ) -> String {
        match &self.key {
            BunnyKey::V2(base) => {
                let mut mac = base.clone();
                mac.update(signature_path.as_bytes());
                mac.update(expires.as_bytes());
                if let Some(ip) = ip {
                    let (b, n) = ip_bytes(ip);
                    mac.update(&b[..n]);
                }
                mac.update(signing_data.as_bytes());
                let tag = mac.finalize().into_bytes();
                let prefix = if ip.is_some() { "HS256-1-" } else { "HS256-" };
                let mut t = String::with_capacity(prefix.len() + 43);
                t.push_str(prefix);
                URL_SAFE_NO_PAD.encode_string(tag, &mut t);
                t
            }
            BunnyKey::V1(key) => {
                let mut h = Sha256::new();
                h.update(key.expose());
                h.update(signature_path.as_bytes());
                h.update(expires.as_bytes());
                h.update(signing_data.as_bytes());
                if let Some(ip) = ip {
                    h.update(ip.to_string().as_bytes());
                }
                URL_SAFE_NO_PAD.encode(h.finalize())
            }
        }
    }

    pub fn sign(&self, req: &SignRequest) -> Result<String, SignError> {
        let u = SplitUrl::parse(&req.url)?;
        // The edge reads such a path as a path-form token: what we sign would never verify.
        if u.path.starts_with("/bcdn_token=") {
            return Err(SignError::InvalidUrl(
                "url already carries a bcdn_token path token".into(),
            ));
        }
        let decoded_path = percent_decode(u.path)?;

        let mut params = url_params(u.query)?;
        apply_options(&mut params, &req.bunny)?;

        let token_path = match &req.bunny.token_path {
            Some(tp) => {
                if !tp.starts_with('/') {
                    return Err(SignError::InvalidRequest(
                        "token_path must start with '/'".into(),
                    ));
                }
                if !decoded_path.starts_with(tp.as_str()) {
                    return Err(SignError::InvalidRequest(
                        "token_path must be a prefix of the url path".into(),
                    ));
                }
                Some(tp.clone())
            }
            None if req.scope == Scope::Directory && !decoded_path.ends_with('/') => {
                Some(super::directory_prefix(&decoded_path).to_owned())
            }
            None => None,
        };
        if let Some(tp) = &token_path {
            params.insert("token_path".into(), tp.clone());
        }
        let signature_path = token_path.as_deref().unwrap_or(&decoded_path);

        let mut signing_data = String::new();
        let mut url_data = String::new();
        for (k, v) in &params {
            if !signing_data.is_empty() {
                signing_data.push('&');
            }
            signing_data.push_str(k);
            signing_data.push('=');
            signing_data.push_str(v);
            url_data.push('&');
            url_data.extend(encode_value(k));
            url_data.push('=');
            url_data.extend(encode_value(v));
        }

        let expires = req.expires_at.to_string();
        let token = self.token(
            signature_path,
            &expires,
            req.user_ip.as_ref(),
            &signing_data,
        );

        let mut out = String::with_capacity(req.url.len() + token.len() + url_data.len() + 40);
        out.push_str(u.origin);
        if req.scope == Scope::Directory {
            out.push_str("/bcdn_token=");
            out.push_str(&token);
            out.push_str(&url_data);
            out.push_str("&expires=");
            out.push_str(&expires);
            out.push_str(u.path);
        } else {
            out.push_str(u.path);
            out.push_str("?token=");
            out.push_str(&token);
            out.push_str(&url_data);
            out.push_str("&expires=");
            out.push_str(&expires);
        }
        Ok(out)
    }

    /// Mirror of Bunny's edge check for both URL forms.
    pub fn verify(&self, signed_url: &str, ctx: &VerifyContext) -> Result<(), VerifyError> {
        let u = SplitUrl::parse(signed_url).map_err(|_| VerifyError::Malformed("url"))?;
        let (param_str, req_path) = if let Some(rest) = u.path.strip_prefix("/bcdn_token=") {
            let slash = rest.find('/').ok_or(VerifyError::Malformed("path token"))?;
            (&u.path[1..slash + "/bcdn_token=".len()], &rest[slash..])
        } else {
            (u.query.ok_or(VerifyError::MissingToken)?, u.path)
        };
        let mut token = None;
        let mut expires = None;
        let mut params: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in query_pairs(param_str) {
            match k {
                "token" | "bcdn_token" => token = Some(v),
                "expires" => expires = Some(v),
                _ => {
                    let k = percent_decode(k).map_err(|_| VerifyError::Malformed("param"))?;
                    let v = percent_decode(v).map_err(|_| VerifyError::Malformed("param"))?;
                    params.insert(k, v);
                }
            }
        }
        let token = token.ok_or(VerifyError::MissingToken)?;
        let expires_str = expires.ok_or(VerifyError::Malformed("missing expires"))?;
        let expires: u64 = expires_str
            .parse()
            .map_err(|_| VerifyError::Malformed("expires"))?;
        if params.contains_key("token_ignore_params") {
            params.retain(|k, _| k == "token_ignore_params" || k == "token_path");
        }
        let decoded_path = percent_decode(req_path).map_err(|_| VerifyError::Malformed("path"))?;
        let signature_path = match params.get("token_path") {
            Some(tp) if decoded_path.starts_with(tp.as_str()) => tp.clone(),
            Some(_) => return Err(VerifyError::PathMismatch),
            None => decoded_path,
        };
        let signing_data = params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let ip_locked = match &self.key {
            // By length too: 1 plain token in 4096 has base64 starting with `1-` (found by fuzzing).
            BunnyKey::V2(_) => {
                token.starts_with("HS256-1-") && token.len() == "HS256-1-".len() + 43
            }
            BunnyKey::V1(_) => ctx.client_ip.is_some(),
        };
        let ip = if ip_locked {
            Some(ctx.client_ip.ok_or(VerifyError::IpMismatch)?)
        } else {
            None
        };
        let expected = self.token(&signature_path, expires_str, ip.as_ref(), &signing_data);
        if !super::ct_eq(expected.as_bytes(), token.as_bytes()) {
            return Err(VerifyError::BadSignature);
        }
        if ctx.now >= expires {
            return Err(VerifyError::Expired);
        }
        Ok(())
    }
}

/// The URL's own query parameters, decoded, which Bunny signs; parameters the edge
/// reads as its own are refused.
fn url_params(query: Option<&str>) -> Result<BTreeMap<String, String>, SignError> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    if let Some(q) = query {
        for (k, v) in query_pairs(q) {
            let k = percent_decode(k)?;
            // token_path / token_ignore_params are read by the edge, not signed as
            // plain parameters: a URL carrying them would not verify (found by fuzzing).
            if matches!(
                k.as_str(),
                "token" | "expires" | "bcdn_token" | "token_path" | "token_ignore_params"
            ) {
                return Err(SignError::InvalidUrl(format!(
                    "url already carries reserved parameter {k:?}"
                )));
            }
            let v = percent_decode(v)?;
            if params.insert(k.clone(), v).is_some() {
                return Err(SignError::InvalidUrl(format!(
                    "duplicate query parameter {k:?} is not supported"
                )));
            }
        }
    }
    Ok(params)
}

/// Bunny's own options as the signed parameters the edge checks.
fn apply_options(
    params: &mut BTreeMap<String, String>,
    opts: &super::BunnyOptions,
) -> Result<(), SignError> {
    let countries = join_countries(&opts.countries, "countries")?;
    let blocked = join_countries(&opts.countries_blocked, "countries_blocked")?;
    let limit = opts.speed_limit_kbps.filter(|l| *l > 0);

    if opts.ignore_params {
        if countries.is_some() || blocked.is_some() || limit.is_some() {
            return Err(SignError::Unsupported {
                provider: P,
                option: "ignore_params combined with countries or speed limit",
            });
        }
        params.clear();
        params.insert("token_ignore_params".into(), "true".into());
    } else {
        if let Some(c) = countries {
            params.insert("token_countries".into(), c);
        }
        if let Some(c) = blocked {
            params.insert("token_countries_blocked".into(), c);
        }
        if let Some(l) = limit {
            params.insert("limit".into(), l.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> BunnySigner {
        BunnySigner::new(&ProviderConfig::new(Provider::Bunny, "SecurityKey")).unwrap()
    }

    #[test]
    fn plain_vector() {
        // BunnyWay/BunnyCDN.TokenAuthentication e2e/vectors.json "plain".
        let req = SignRequest::new("https://token-tester.b-cdn.net/300kb.jpg", 1598024587, 0);
        assert_eq!(
            signer().sign(&req).unwrap(),
            "https://token-tester.b-cdn.net/300kb.jpg?token=HS256-o10JRWlsAItyAsdKS6jJKjabHN4FrFsplDHPV1idcX4&expires=1598024587"
        );
    }

    #[test]
    fn ipv6_masked_to_64() {
        let a: IpAddr = "2001:db8:85a3::8a2e:370:7334".parse().unwrap();
        let b: IpAddr = "2001:db8:85a3:0:ffff::1".parse().unwrap();
        assert_eq!(ip_bytes(&a), ip_bytes(&b));
    }

    #[test]
    fn hls_directory_derives_token_path() {
        let mut req = SignRequest::new("https://z.b-cdn.net/hls/42/index.m3u8", 2000000000, 0);
        req.scope = Scope::Directory;
        let s = signer();
        let url = s.sign(&req).unwrap();
        assert!(
            url.starts_with("https://z.b-cdn.net/bcdn_token=HS256-"),
            "{url}"
        );
        assert!(url.contains("&token_path=%2Fhls%2F42%2F&expires=2000000000/hls/42/index.m3u8"));
        let ctx = VerifyContext {
            now: 1_900_000_000,
            ..Default::default()
        };
        s.verify(&url, &ctx).unwrap();
        // A segment in the same directory, same token prefix, is authorised.
        let seg = url.replace("/hls/42/index.m3u8", "/hls/42/seg-00001.ts");
        s.verify(&seg, &ctx).unwrap();
        // ...but not another stream.
        let other = url.replace("/hls/42/index.m3u8", "/hls/43/seg-00001.ts");
        assert_eq!(s.verify(&other, &ctx), Err(VerifyError::PathMismatch));
    }

    #[test]
    fn ignore_params_with_geo_is_refused() {
        let mut req = SignRequest::new("https://z.b-cdn.net/a.mp4", 2000000000, 0);
        req.bunny.ignore_params = true;
        req.bunny.countries = vec!["US".into()];
        assert!(matches!(
            signer().sign(&req),
            Err(SignError::Unsupported { .. })
        ));
    }

    #[test]
    fn reserved_and_duplicate_params_rejected() {
        let s = signer();
        for u in [
            "https://z.b-cdn.net/a?token=x",
            "https://z.b-cdn.net/a?expires=1",
            "https://z.b-cdn.net/a?v=1&v=2",
        ] {
            assert!(matches!(
                s.sign(&SignRequest::new(u, 2000000000, 0)),
                Err(SignError::InvalidUrl(_))
            ));
        }
    }
}
