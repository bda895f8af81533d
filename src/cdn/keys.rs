//! Loading CDN key material: the inline key or key file, the CloudFront PEM, and the
//! provider-specific options, into a ready [`PreparedSigner`]. Failures are a typed
//! [`KeyError`] naming the [`KeySetting`] at fault (the configuration maps it to its
//! variable) and never contain key bytes.

use std::path::Path;

use super::{CdnConfig, KeyMaterial, KeySource, PreparedSigner, Provider, ProviderConfig};

/// The setting a [`KeyError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySetting {
    Provider,
    SharedKey,
    SharedKeyFile,
    CloudFrontKeyPairId,
    CloudFrontPrivateKeyFile,
    NginxExpression,
}

/// Why key material cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}")]
pub struct KeyError {
    pub setting: KeySetting,
    /// What a usable value looks like, and what was wrong (never key bytes).
    pub expected: String,
}

fn error(setting: KeySetting, expected: impl Into<String>) -> KeyError {
    KeyError {
        setting,
        expected: expected.into(),
    }
}

fn read_key_file(setting: KeySetting, path: &Path) -> Result<KeyMaterial, KeyError> {
    let mut bytes = std::fs::read(path).map_err(|e| {
        error(
            setting,
            format!("a readable key file; cannot read {}: {e}", path.display()),
        )
    })?;
    // Trailing newlines from `echo key > file` are not part of the key.
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(error(
            setting,
            format!("a non-empty key file; {} is empty", path.display()),
        ));
    }
    Ok(KeyMaterial::new(bytes))
}

/// The shared key from `CDN_SECURITY_KEY` or `CDN_SECURITY_KEY_FILE`.
pub fn shared_key(cfg: &CdnConfig) -> Result<KeyMaterial, KeyError> {
    match &cfg.key {
        Some(KeySource::Inline(k)) if !k.expose().is_empty() => {
            Ok(KeyMaterial::from(k.expose().as_str()))
        }
        Some(KeySource::File(path)) => read_key_file(KeySetting::SharedKeyFile, path),
        _ => Err(error(
            KeySetting::SharedKey,
            "a non-empty signing key (or CDN_SECURITY_KEY_FILE)",
        )),
    }
}

/// Build the provider configuration (reading key files) for `provider` (default:
/// `CDN_PROVIDER`).
pub fn provider_config(
    cfg: &CdnConfig,
    provider: Option<Provider>,
) -> Result<ProviderConfig, KeyError> {
    let provider = provider.or(cfg.provider).ok_or_else(|| {
        error(
            KeySetting::Provider,
            "one of bunny, cloudfront, cloudflare, akamai, nginx",
        )
    })?;
    let mut pc = if provider == Provider::CloudFront {
        let id = cfg.cloudfront_key_pair_id.clone().ok_or_else(|| {
            error(
                KeySetting::CloudFrontKeyPairId,
                "the CloudFront public key id",
            )
        })?;
        let path = cfg.cloudfront_private_key_file.as_ref().ok_or_else(|| {
            error(
                KeySetting::CloudFrontPrivateKeyFile,
                "a PEM RSA private key file",
            )
        })?;
        let pem = read_key_file(KeySetting::CloudFrontPrivateKeyFile, path)?;
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
pub fn load(cfg: &CdnConfig, provider: Option<Provider>) -> Result<PreparedSigner, KeyError> {
    let pc = provider_config(cfg, provider)?;
    PreparedSigner::new(&pc).map_err(|e| {
        let setting = match pc.provider {
            Provider::CloudFront => KeySetting::CloudFrontPrivateKeyFile,
            Provider::Nginx => KeySetting::NginxExpression,
            _ if matches!(cfg.key, Some(KeySource::File(_))) => KeySetting::SharedKeyFile,
            _ => KeySetting::SharedKey,
        };
        error(
            setting,
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
