//! nginx `secure_link` / `secure_link_md5`.
//!
//! `md5 = base64url-no-pad(MD5(expression))`, with `expression` the configured
//! `secure_link_md5` template (default `$secure_link_expires$uri $secret`). Supported
//! variables: `$secure_link_expires`, `$uri`, `$secret` (the configured key) and
//! `$remote_addr` (`user_ip`). `$secure_link_expires` and `$secret` are required: the key
//! is never written into the expression, which is configuration that gets printed. The
//! URL gets `?md5=<md5>&expires=<expires>` (or `&…`), which matches
//! `secure_link $arg_md5,$arg_expires;`.
//!
//! nginx's `$uri` is the **decoded, normalised** path, so the path is percent-decoded before
//! hashing (`/a%20b.txt` hashes as `/a b.txt`); paths nginx would rewrite (`//`, `/./`,
//! `/../`) are refused. With `directory`, `$uri` is replaced by the directory prefix
//! (`/hls/42/`); the nginx location must then hash a captured prefix instead of `$uri`, e.g.
//! `location ~ ^(?<dir>/hls/[^/]+/)` + `secure_link_md5 "$secure_link_expires$dir secret";`.
//! MD5 is weak; this scheme is only as good as the secret length. Geo, speed limit,
//! `token_path` and `ignore_params` are unsupported; `user_ip` needs `$remote_addr` in the
//! expression.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use md5::{Digest, Md5};

use super::{
    Expressible, KeyMaterial, Provider, ProviderConfig, SignError, SignRequest, SplitUrl,
    VerifyContext, VerifyError, reject,
};
use crate::cdn::Scope;

const P: Provider = Provider::Nginx;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Expires,
    Uri,
    Secret,
    RemoteAddr,
}

/// nginx signer with the expression template pre-parsed.
pub struct NginxSigner {
    parts: Vec<Part>,
    secret: KeyMaterial,
    uses_ip: bool,
}

impl fmt::Debug for NginxSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NginxSigner")
            .field("parts", &self.parts)
            .field("secret", &"[redacted]")
            .finish()
    }
}

fn parse_template(t: &str) -> Result<Vec<Part>, SignError> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = t;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(b) = after.strip_prefix('{') {
            let end = b
                .find('}')
                .ok_or_else(|| SignError::InvalidConfig("nginx_expression: unclosed ${".into()))?;
            (&b[..end], &b[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let part = match name {
            "secure_link_expires" => Part::Expires,
            "uri" => Part::Uri,
            "secret" => Part::Secret,
            "remote_addr" => Part::RemoteAddr,
            other => {
                return Err(SignError::InvalidConfig(format!(
                    "nginx_expression: unsupported variable ${other}"
                )));
            }
        };
        if !lit.is_empty() {
            parts.push(Part::Lit(std::mem::take(&mut lit)));
        }
        parts.push(part);
        rest = tail;
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    if !parts.contains(&Part::Expires) {
        return Err(SignError::InvalidConfig(
            "nginx_expression must contain $secure_link_expires".into(),
        ));
    }
    Ok(parts)
}

/// Parse an expression and require `$secret` in it (see [`check_expression`]).
fn parse_expression(t: &str) -> Result<Vec<Part>, SignError> {
    let parts = parse_template(t)?;
    if !parts.contains(&Part::Secret) {
        return Err(SignError::InvalidConfig(
            "nginx_expression must contain $secret (the key belongs in the security key, not in the expression)"
                .into(),
        ));
    }
    Ok(parts)
}

/// The rules every `secure_link_md5` expression must meet, shared with the configuration
/// (`CDN_NGINX_SECURE_LINK_EXPRESSION`): only supported variables, `$secure_link_expires`,
/// and `$secret`.
pub fn check_expression(expression: &str) -> Result<(), SignError> {
    parse_expression(expression).map(|_| ())
}

fn nginx_uri(raw_path: &str, scope: Scope) -> Result<String, SignError> {
    let decoded = super::percent_decode(raw_path)?;
    if decoded.contains("//")
        || decoded.contains("/./")
        || decoded.contains("/../")
        || decoded.ends_with("/.")
        || decoded.ends_with("/..")
    {
        return Err(SignError::InvalidUrl(
            "path is not normalised (nginx would rewrite $uri)".into(),
        ));
    }
    Ok(if scope == Scope::Directory {
        super::directory_prefix(&decoded).to_owned()
    } else {
        decoded
    })
}

impl NginxSigner {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, SignError> {
        let parts = parse_expression(&cfg.nginx_expression)?;
        if cfg.security_key.is_empty() {
            return Err(SignError::InvalidKey(
                "nginx: secret must not be empty".into(),
            ));
        }
        Ok(NginxSigner {
            uses_ip: parts.contains(&Part::RemoteAddr),
            parts,
            secret: cfg.security_key.clone(),
        })
    }

    fn md5(&self, expires: &str, uri: &str, ip: Option<&str>) -> [u8; 16] {
        let mut h = Md5::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => h.update(s.as_bytes()),
                Part::Expires => h.update(expires.as_bytes()),
                Part::Uri => h.update(uri.as_bytes()),
                Part::Secret => h.update(self.secret.expose()),
                Part::RemoteAddr => h.update(ip.unwrap_or("").as_bytes()),
            }
        }
        h.finalize().into()
    }

    pub fn sign(&self, req: &SignRequest) -> Result<String, SignError> {
        reject(P, req, Expressible::DIRECTORY_AND_IP)?;
        if self.uses_ip != req.user_ip.is_some() {
            return if self.uses_ip {
                Err(SignError::InvalidRequest(
                    "nginx_expression uses $remote_addr: user_ip is required".into(),
                ))
            } else {
                Err(SignError::Unsupported {
                    provider: P,
                    option: "user_ip (nginx_expression has no $remote_addr)",
                })
            };
        }
        let u = SplitUrl::parse(&req.url)?;
        if super::query_param(u.query, "md5").is_some()
            || super::query_param(u.query, "expires").is_some()
        {
            return Err(SignError::InvalidUrl(
                "url already carries md5/expires".into(),
            ));
        }
        let uri = nginx_uri(u.path, req.scope)?;
        let expires = req.expires_at.to_string();
        let ip = req.user_ip.map(|i| i.to_string());
        let digest = self.md5(&expires, &uri, ip.as_deref());
        let mut out = String::with_capacity(req.url.len() + 48);
        out.push_str(&req.url);
        out.push_str(if u.query.is_some() { "&md5=" } else { "?md5=" });
        URL_SAFE_NO_PAD.encode_string(digest, &mut out);
        out.push_str("&expires=");
        out.push_str(&expires);
        Ok(out)
    }

    /// Mirror of `ngx_http_secure_link_variable`: signature first (mismatch → `""`, 403),
    /// then expiry (`expires < now` → `"0"`, 410).
    pub fn verify(&self, signed_url: &str, ctx: &VerifyContext) -> Result<(), VerifyError> {
        let u = SplitUrl::parse(signed_url).map_err(|_| VerifyError::Malformed("url"))?;
        let md5 = super::query_param(u.query, "md5").ok_or(VerifyError::MissingToken)?;
        let expires = super::query_param(u.query, "expires").ok_or(VerifyError::MissingToken)?;
        let exp_n: u64 = expires
            .parse()
            .map_err(|_| VerifyError::Malformed("expires"))?;
        let given = URL_SAFE_NO_PAD
            .decode(md5.trim_end_matches('='))
            .map_err(|_| VerifyError::BadSignature)?;
        let uri = nginx_uri(u.path, ctx.scope).map_err(|_| VerifyError::Malformed("path"))?;
        let ip = ctx.client_ip.map(|i| i.to_string());
        let expected = self.md5(expires, &uri, ip.as_deref());
        if !super::ct_eq(&expected, &given) {
            return Err(VerifyError::BadSignature);
        }
        if exp_n < ctx.now {
            return Err(VerifyError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_example() {
        // nginx docs (ngx_http_secure_link_module): MD5 of
        // "2147483647/s/link127.0.0.1 secret" is "_e4Nc3iduzkWRm01TBBNYw".
        let mut c = ProviderConfig::new(Provider::Nginx, "secret");
        c.nginx_expression = "$secure_link_expires$uri$remote_addr $secret".into();
        let s = NginxSigner::new(&c).unwrap();
        let mut req = SignRequest::new("http://example.com/s/link", 2147483647, 0);
        req.user_ip = Some("127.0.0.1".parse().unwrap());
        assert_eq!(
            s.sign(&req).unwrap(),
            "http://example.com/s/link?md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647"
        );
    }

    #[test]
    fn template_parsing() {
        assert_eq!(
            parse_template("$secure_link_expires$uri $secret").unwrap(),
            vec![
                Part::Expires,
                Part::Uri,
                Part::Lit(" ".into()),
                Part::Secret
            ]
        );
        assert_eq!(
            parse_template("${secure_link_expires}x").unwrap(),
            vec![Part::Expires, Part::Lit("x".into())]
        );
        assert!(parse_template("$uri $secret").is_err());
        assert!(parse_template("$secure_link_expires$host").is_err());
    }

    #[test]
    fn expressions_without_secret_are_refused() {
        // A key written into the expression as a literal would be printed with it.
        for e in [
            "$secure_link_expires$uri my-literal-key",
            "$secure_link_expires$uri",
            "$secure_link_expires$uri $secret_x",
        ] {
            assert!(check_expression(e).is_err(), "{e}");
            let mut c = ProviderConfig::new(Provider::Nginx, "secret");
            c.nginx_expression = e.into();
            assert!(NginxSigner::new(&c).is_err(), "{e}");
        }
        for e in [
            "$secure_link_expires$uri $secret",
            "${secure_link_expires}$uri$remote_addr ${secret}",
        ] {
            assert!(check_expression(e).is_ok(), "{e}");
        }
    }

    #[test]
    fn decoded_uri_and_normalisation() {
        assert_eq!(nginx_uri("/a%20b.txt", Scope::File).unwrap(), "/a b.txt");
        assert_eq!(
            nginx_uri("/hls/42/i.m3u8", Scope::Directory).unwrap(),
            "/hls/42/"
        );
        assert!(nginx_uri("/a//b", Scope::File).is_err());
        assert!(nginx_uri("/a/%2E%2E/b", Scope::File).is_err());
    }
}
