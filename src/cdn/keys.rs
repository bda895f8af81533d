//! Loading CDN key material from the configuration: the inline key or key file, the
//! CloudFront PEM, and the provider-specific options, into a ready [`PreparedSigner`].
//! Every failure names the variable at fault and never contains key bytes.

use std::path::Path;

use super::{KeyMaterial, PreparedSigner, Provider, ProviderConfig};
use crate::config::{CdnConfig, ConfigProblem, KeySource};

fn problem(var: &'static str, expected: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        var,
        value: None,
        expected: expected.into(),
    }
}

fn read_key_file(var: &'static str, path: &Path) -> Result<KeyMaterial, ConfigProblem> {
    let bytes = std::fs::read(path).map_err(|e| {
        problem(
            var,
            format!("a readable key file; cannot read {}: {e}", path.display()),
        )
    })?;
    // Trailing newlines from `echo key > file` are not part of the key.
    let mut bytes = bytes;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(problem(
            var,
            format!("a non-empty key file; {} is empty", path.display()),
        ));
    }
    Ok(KeyMaterial::new(bytes))
}

/// The shared key from `CDN_SECURITY_KEY` or `CDN_SECURITY_KEY_FILE`.
pub fn shared_key(cfg: &CdnConfig) -> Result<KeyMaterial, ConfigProblem> {
    match &cfg.key {
        Some(KeySource::Inline(k)) if !k.expose().is_empty() => {
            Ok(KeyMaterial::from(k.expose().as_str()))
        }
        Some(KeySource::File(path)) => read_key_file("CDN_SECURITY_KEY_FILE", path),
        _ => Err(problem(
            "CDN_SECURITY_KEY",
            "a non-empty signing key (or CDN_SECURITY_KEY_FILE)",
        )),
    }
}

/// Build the provider configuration (reading key files) for `provider` (default:
/// `CDN_PROVIDER`).
pub fn provider_config(
    cfg: &CdnConfig,
    provider: Option<Provider>,
) -> Result<ProviderConfig, ConfigProblem> {
    let provider = provider.or(cfg.provider).ok_or_else(|| {
        problem(
            "CDN_PROVIDER",
            "one of bunny, cloudfront, cloudflare, akamai, nginx",
        )
    })?;
    let mut pc = if provider == Provider::CloudFront {
        let id = cfg
            .cloudfront_key_pair_id
            .clone()
            .ok_or_else(|| problem("CDN_CLOUDFRONT_KEY_PAIR_ID", "the CloudFront public key id"))?;
        let path = cfg.cloudfront_private_key_file.as_ref().ok_or_else(|| {
            problem(
                "CDN_CLOUDFRONT_PRIVATE_KEY_FILE",
                "a PEM RSA private key file",
            )
        })?;
        let pem = read_key_file("CDN_CLOUDFRONT_PRIVATE_KEY_FILE", path)?;
        ProviderConfig::cloudfront(id, pem)
    } else {
        ProviderConfig::new(provider, shared_key(cfg)?)
    };
    pc.bunny_token_version = cfg.bunny_token_version;
    pc.cloudfront_hash = cfg.cloudfront_hash;
    pc.cloudflare_url_safe = cfg.cloudflare_url_safe;
    pc.cloudflare_ttl_secs = cfg.ttl.as_secs();
    pc.akamai_token_name = cfg.akamai_token_name.clone();
    pc.nginx_expression = cfg.nginx_expression.clone();
    Ok(pc)
}

/// Load and parse everything: the result signs without further I/O.
pub fn load(cfg: &CdnConfig, provider: Option<Provider>) -> Result<PreparedSigner, ConfigProblem> {
    let pc = provider_config(cfg, provider)?;
    PreparedSigner::new(&pc).map_err(|e| {
        let var = match pc.provider {
            Provider::CloudFront => "CDN_CLOUDFRONT_PRIVATE_KEY_FILE",
            Provider::Nginx => "CDN_NGINX_SECURE_LINK_EXPRESSION",
            _ if cfg
                .key
                .as_ref()
                .is_some_and(|k| matches!(k, KeySource::File(_))) =>
            {
                "CDN_SECURITY_KEY_FILE"
            }
            _ => "CDN_SECURITY_KEY",
        };
        problem(
            var,
            format!("usable {} key material: {e}", pc.provider.as_str()),
        )
    })
}

/// The files whose changes should trigger a reload.
pub fn watched_files(cfg: &CdnConfig) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    if let Some(KeySource::File(p)) = &cfg.key {
        v.push(p.clone());
    }
    if let Some(p) = &cfg.cloudfront_private_key_file {
        v.push(p.clone());
    }
    v
}
