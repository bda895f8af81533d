//! AWS CloudFront signed URLs (reference: botocore `CloudFrontSigner`).
//!
//! * Canned policy (default): sign
//!   `{"Statement":[{"Resource":"<URL>","Condition":{"DateLessThan":{"AWS:EpochTime":<exp>}}}]}`
//!   and append `Expires`, `Signature`, `Key-Pair-Id`.
//! * Custom policy, used when `directory` (Resource `https://host/dir/*`), `user_ip`
//!   (`"IpAddress":{"AWS:SourceIp":"ip/32"}` or `/128`) or `cloudfront_start_time`
//!   (`"DateGreaterThan"` = `issued_at`) is asked; condition order follows botocore
//!   (`DateLessThan`, `IpAddress`, `DateGreaterThan`). Appends `Policy`, `Signature`,
//!   `Key-Pair-Id`.
//! * RSA PKCS#1 v1.5 over SHA-1 (default) or SHA-256 (adds `Hash-Algorithm=SHA256`), encoded
//!   with CloudFront base64 (`+`→`-`, `=`→`_`, `/`→`~`).
//!
//! The `Resource` is the URL exactly as given (it must already be percent-encoded; the query
//! is part of the canned resource). RSA runs in AWS-LC (constant-time, blinded): SHA-256 via
//! the safe `aws-lc-rs` API; SHA-1 via `aws-lc-sys` `RSA_sign`, because `aws-lc-rs` only
//! exposes PKCS#1 v1.5 signing with SHA-256/384/512. The RustCrypto `rsa` crate is not used
//! (RUSTSEC-2023-0071). Geo restriction is a distribution setting, not a URL condition, so
//! countries, speed limits, `token_path` and `ignore_params` are unsupported.

// The only unsafe code in the crate: AWS-LC FFI for RSA PKCS#1 v1.5 SHA-1 (see above).
#![allow(unsafe_code)]

use std::fmt;
use std::ptr::NonNull;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

use super::{
    CloudFrontHash, Expressible, Provider, ProviderConfig, SignError, SignRequest, SplitUrl, reject,
};
use crate::cdn::Scope;

const P: Provider = Provider::CloudFront;

/// Owned AWS-LC `RSA*` used for PKCS#1 v1.5 SHA-1 signatures.
struct Sha1RsaKey(NonNull<aws_lc_sys::RSA>);

// SAFETY: AWS-LC `RSA` objects are safe to use for concurrent signing from several threads
// (internal caches are lock-protected); we never mutate the key after construction.
unsafe impl Send for Sha1RsaKey {}
// SAFETY: see above.
unsafe impl Sync for Sha1RsaKey {}

impl Sha1RsaKey {
    fn from_der(der: &[u8]) -> Result<Self, SignError> {
        let len = std::os::raw::c_long::try_from(der.len())
            .map_err(|_| SignError::InvalidKey("cloudfront: key too large".into()))?;
        // SAFETY: `p` points into `der`, valid for `len` bytes; AWS-LC only reads it. On
        // success we own the returned EVP_PKEY and free it after taking our own RSA reference.
        unsafe {
            let mut p = der.as_ptr();
            let pkey = aws_lc_sys::d2i_AutoPrivateKey(std::ptr::null_mut(), &mut p, len);
            if pkey.is_null() {
                aws_lc_sys::ERR_clear_error();
                return Err(SignError::InvalidKey(
                    "cloudfront: unparseable RSA private key".into(),
                ));
            }
            let rsa = aws_lc_sys::EVP_PKEY_get1_RSA(pkey);
            aws_lc_sys::EVP_PKEY_free(pkey);
            match NonNull::new(rsa) {
                Some(r) => Ok(Sha1RsaKey(r)),
                None => {
                    aws_lc_sys::ERR_clear_error();
                    Err(SignError::InvalidKey("cloudfront: not an RSA key".into()))
                }
            }
        }
    }

    /// The modulus size in bits.
    fn bits(&self) -> u32 {
        // SAFETY: `self.0` is a valid RSA* we own; RSA_bits only reads it.
        unsafe { aws_lc_sys::RSA_bits(self.0.as_ptr()) }
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        let digest = Sha1::digest(msg);
        // SAFETY: `self.0` is a valid RSA* we own; `out` has RSA_size bytes as RSA_sign
        // requires; `digest` is 20 bytes matching NID_sha1.
        unsafe {
            let size = aws_lc_sys::RSA_size(self.0.as_ptr()) as usize;
            let mut out = vec![0u8; size];
            let mut out_len: std::os::raw::c_uint = 0;
            let rc = aws_lc_sys::RSA_sign(
                aws_lc_sys::NID_sha1,
                digest.as_ptr(),
                digest.len(),
                out.as_mut_ptr(),
                &mut out_len,
                self.0.as_ptr(),
            );
            if rc != 1 {
                aws_lc_sys::ERR_clear_error();
                return Err(SignError::Crypto(
                    "cloudfront: RSA SHA-1 signing failed".into(),
                ));
            }
            out.truncate(out_len as usize);
            Ok(out)
        }
    }
}

impl Drop for Sha1RsaKey {
    fn drop(&mut self) {
        // SAFETY: we hold exactly one reference (from EVP_PKEY_get1_RSA).
        unsafe { aws_lc_sys::RSA_free(self.0.as_ptr()) }
    }
}

enum RsaKey {
    Sha1(Sha1RsaKey),
    Sha256(RsaKeyPair),
}

/// The smallest RSA modulus accepted, for both hashes (aws-lc-rs enforces it for SHA-256).
pub const MIN_RSA_BITS: u32 = 2048;

/// CloudFront signer holding the parsed RSA key.
pub struct CloudFrontSigner {
    key_pair_id: String,
    key: RsaKey,
    start_time: bool,
}

impl fmt::Debug for CloudFrontSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hash = match self.key {
            RsaKey::Sha1(_) => "SHA-1",
            RsaKey::Sha256(_) => "SHA-256",
        };
        f.debug_struct("CloudFrontSigner")
            .field("key_pair_id", &self.key_pair_id)
            .field("hash", &hash)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

/// PEM → (label, DER). Minimal RFC 7468 parser; rejects encrypted keys.
pub(crate) fn parse_pem(pem: &[u8]) -> Result<(String, Vec<u8>), SignError> {
    let text = std::str::from_utf8(pem)
        .map_err(|_| SignError::InvalidKey("cloudfront: PEM is not text".into()))?;
    let begin = text
        .find("-----BEGIN ")
        .ok_or_else(|| SignError::InvalidKey("cloudfront: no PEM BEGIN line".into()))?;
    let after = &text[begin + "-----BEGIN ".len()..];
    let label_end = after
        .find("-----")
        .ok_or_else(|| SignError::InvalidKey("cloudfront: bad PEM BEGIN line".into()))?;
    let label = after[..label_end].to_owned();
    let body_start = &after[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let body_end = body_start
        .find(&end_marker)
        .ok_or_else(|| SignError::InvalidKey("cloudfront: no matching PEM END line".into()))?;
    let body = &body_start[..body_end];
    if body.contains("Proc-Type") || body.contains("DEK-Info") || label.contains("ENCRYPTED") {
        return Err(SignError::InvalidKey(
            "cloudfront: encrypted private keys are not supported".into(),
        ));
    }
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| SignError::InvalidKey("cloudfront: PEM body is not base64".into()))?;
    Ok((label, der))
}

/// CloudFront base64: standard base64 with `+`→`-`, `=`→`_`, `/`→`~`.
pub fn cf_b64(data: &[u8]) -> String {
    STANDARD
        .encode(data)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

impl CloudFrontSigner {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, SignError> {
        let id = &cfg.cloudfront_key_pair_id;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SignError::InvalidConfig(
                "cloudfront: key pair id must be non-empty alphanumeric".into(),
            ));
        }
        let (label, der) = parse_pem(cfg.cloudfront_private_key_pem.expose())?;
        let der = super::KeyMaterial::new(der);
        let key = match label.as_str() {
            "RSA PRIVATE KEY" | "PRIVATE KEY" => match cfg.cloudfront_hash {
                CloudFrontHash::Sha1 => {
                    let key = Sha1RsaKey::from_der(der.expose())?;
                    let bits = key.bits();
                    if bits < MIN_RSA_BITS {
                        return Err(SignError::InvalidKey(format!(
                            "cloudfront: RSA key of {bits} bits; at least {MIN_RSA_BITS} required"
                        )));
                    }
                    RsaKey::Sha1(key)
                }
                CloudFrontHash::Sha256 => {
                    let kp = if label == "PRIVATE KEY" {
                        RsaKeyPair::from_pkcs8(der.expose())
                    } else {
                        RsaKeyPair::from_der(der.expose())
                    }
                    .map_err(|e| SignError::InvalidKey(format!("cloudfront: {e}")))?;
                    RsaKey::Sha256(kp)
                }
            },
            other => {
                return Err(SignError::InvalidKey(format!(
                    "cloudfront: unsupported PEM label {other:?}"
                )));
            }
        };
        Ok(CloudFrontSigner {
            key_pair_id: id.clone(),
            key,
            start_time: cfg.cloudfront_start_time,
        })
    }

    fn rsa_sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.key {
            RsaKey::Sha1(k) => k.sign(msg),
            RsaKey::Sha256(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
                    .map_err(|_| {
                        SignError::Crypto("cloudfront: RSA SHA-256 signing failed".into())
                    })?;
                Ok(sig)
            }
        }
    }

    /// The compact policy JSON (exposed for tests and cookies).
    pub fn policy(&self, resource: &str, req: &SignRequest) -> Result<String, SignError> {
        if resource
            .bytes()
            .any(|b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
        {
            return Err(SignError::InvalidUrl(
                "cloudfront: resource must be percent-encoded ASCII".into(),
            ));
        }
        let mut p = String::with_capacity(resource.len() + 160);
        p.push_str(r#"{"Statement":[{"Resource":""#);
        p.push_str(resource);
        p.push_str(r#"","Condition":{"DateLessThan":{"AWS:EpochTime":"#);
        p.push_str(&req.expires_at.to_string());
        p.push('}');
        if let Some(ip) = &req.user_ip {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            p.push_str(&format!(r#","IpAddress":{{"AWS:SourceIp":"{ip}/{bits}"}}"#));
        }
        if self.start_time {
            if req.issued_at == 0 {
                return Err(SignError::InvalidRequest(
                    "cloudfront_start_time needs issued_at".into(),
                ));
            }
            p.push_str(&format!(
                r#","DateGreaterThan":{{"AWS:EpochTime":{}}}"#,
                req.issued_at
            ));
        }
        p.push_str("}}]}");
        Ok(p)
    }

    pub fn sign(&self, req: &SignRequest) -> Result<String, SignError> {
        reject(P, req, Expressible::DIRECTORY_AND_IP)?;
        let u = SplitUrl::parse(&req.url)?;
        for reserved in [
            "Expires",
            "Policy",
            "Signature",
            "Key-Pair-Id",
            "Hash-Algorithm",
        ] {
            if super::query_param(u.query, reserved).is_some() {
                return Err(SignError::InvalidUrl(format!(
                    "url already carries {reserved}"
                )));
            }
        }
        let custom = req.scope == Scope::Directory || req.user_ip.is_some() || self.start_time;
        let mut out = String::with_capacity(req.url.len() + 800);
        out.push_str(&req.url);
        out.push(if u.query.is_some() { '&' } else { '?' });
        let signature = if custom {
            let resource = if req.scope == Scope::Directory {
                format!("{}{}*", u.origin, super::directory_prefix(u.path))
            } else {
                req.url.clone()
            };
            let policy = self.policy(&resource, req)?;
            out.push_str("Policy=");
            out.push_str(&cf_b64(policy.as_bytes()));
            self.rsa_sign(policy.as_bytes())?
        } else {
            let policy = self.policy(&req.url, req)?;
            out.push_str("Expires=");
            out.push_str(&req.expires_at.to_string());
            self.rsa_sign(policy.as_bytes())?
        };
        out.push_str("&Signature=");
        out.push_str(&cf_b64(&signature));
        out.push_str("&Key-Pair-Id=");
        out.push_str(&self.key_pair_id);
        if matches!(self.key, RsaKey::Sha256(_)) {
            out.push_str("&Hash-Algorithm=SHA256");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cf_base64_alphabet() {
        assert_eq!(cf_b64(&[0xfb, 0xff]), "-~8_");
    }

    #[test]
    fn keys_under_2048_bits_are_refused_for_both_hashes() {
        let small = include_str!("../../tests/data/cloudfront_test_key_1024.pem");
        let good = include_str!("../../tests/data/cloudfront_test_key.pem");
        for hash in [CloudFrontHash::Sha1, CloudFrontHash::Sha256] {
            let mut cfg = ProviderConfig::cloudfront("K1", small);
            cfg.cloudfront_hash = hash;
            let e = CloudFrontSigner::new(&cfg).unwrap_err();
            assert!(matches!(e, SignError::InvalidKey(_)), "{hash:?}: {e}");
            let mut cfg = ProviderConfig::cloudfront("K1", good);
            cfg.cloudfront_hash = hash;
            assert!(CloudFrontSigner::new(&cfg).is_ok(), "{hash:?}");
        }
    }

    #[test]
    fn pem_errors_do_not_leak() {
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nU0VDUkVUU0VDUkVU\n-----END RSA PRIVATE KEY-----\n";
        let cfg = ProviderConfig::cloudfront("K1", pem);
        let e = CloudFrontSigner::new(&cfg).unwrap_err();
        assert!(matches!(e, SignError::InvalidKey(_)));
        assert!(!e.to_string().contains("U0VDUkVU"));
        let cfg = ProviderConfig::cloudfront("K1", "garbage");
        assert!(CloudFrontSigner::new(&cfg).is_err());
    }
}
