//! Expiring HMAC tokens for the service's own `/media/...` route — how the embedded
//! default (local storage, no CDN) delivers signed URLs with nothing else running.
//!
//! URL shape: `/media/{scope}/{expires}/{token}/{key}` where `scope` is `d` (the token
//! covers every file under the key's directory — HLS, so relative segment URLs inherit
//! it, the way Bunny's path form does) or `f` (exactly this file, plus the download
//! file name when one is given). The token is base64url(HMAC-SHA256(key,
//! `scope \n expires \n signed-path \n filename`)). Verification is constant-time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;

use crate::cdn::HmacSha256;
use crate::cdn::Scope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    Expired,
    BadSignature,
}

impl TokenError {
    /// What the 403 says.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::Expired => "expired",
            TokenError::BadSignature => "badsignature",
        }
    }
}

/// Pre-keyed signer; cloning the HMAC state per token avoids re-hashing the key.
#[derive(Clone)]
pub struct LocalSigner {
    mac: HmacSha256,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalSigner([redacted])")
    }
}

impl LocalSigner {
    /// HMAC accepts keys of any length; the error exists only in the trait's signature.
    pub fn new(key: &[u8]) -> Result<Self, hmac::digest::InvalidLength> {
        Ok(LocalSigner {
            mac: HmacSha256::new_from_slice(key)?,
        })
    }

    fn mac(&self, scope: Scope, expires: u64, signed_path: &str, filename: &str) -> HmacSha256 {
        let mut m = self.mac.clone();
        m.update(scope.as_str().as_bytes());
        m.update(b"\n");
        m.update(expires.to_string().as_bytes());
        m.update(b"\n");
        m.update(signed_path.as_bytes());
        m.update(b"\n");
        m.update(filename.as_bytes());
        m
    }

    /// The path (and query) of a signed URL for `key`.
    pub fn sign(&self, scope: Scope, key: &str, expires: u64, filename: Option<&str>) -> String {
        let fname = filename.unwrap_or("");
        let token = URL_SAFE_NO_PAD.encode(
            self.mac(scope, expires, scope.covered(key), fname)
                .finalize()
                .into_bytes(),
        );
        let mut url = format!("/media/{}/{expires}/{token}/{key}", scope.as_str());
        if let Some(f) = filename {
            url.push_str("?filename=");
            url.push_str(
                &percent_encoding::utf8_percent_encode(f, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            );
        }
        url
    }

    /// Check a token for `key` at time `now`.
    pub fn verify(
        &self,
        scope: Scope,
        key: &str,
        expires: u64,
        token: &str,
        filename: Option<&str>,
        now: u64,
    ) -> Result<(), TokenError> {
        let tag = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(scope, expires, scope.covered(key), filename.unwrap_or(""))
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        if now > expires {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_signs_its_directory_or_file_and_nothing_else() {
        let s = LocalSigner::new(b"k").unwrap();
        let url = s.sign(Scope::Directory, "hls/3/master.m3u8", 100, None);
        let token = url.split('/').nth(4).unwrap();
        assert!(
            s.verify(Scope::Directory, "hls/3/seg-a.ts", 100, token, None, 50)
                .is_ok()
        );
        assert_eq!(
            s.verify(Scope::Directory, "hls/4/seg-a.ts", 100, token, None, 50),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            s.verify(Scope::Directory, "hls/3/seg-a.ts", 101, token, None, 50),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            s.verify(Scope::File, "hls/3/master.m3u8", 100, token, None, 50),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            s.verify(Scope::Directory, "hls/3/seg-a.ts", 100, token, None, 101),
            Err(TokenError::Expired)
        );
        assert_eq!(
            s.verify(Scope::Directory, "hls/3/x.ts", 100, "!!", None, 50),
            Err(TokenError::Malformed)
        );
        let other = LocalSigner::new(b"other").unwrap();
        assert!(
            other
                .verify(Scope::Directory, "hls/3/x.ts", 100, token, None, 50)
                .is_err()
        );
    }

    #[test]
    fn the_download_name_is_signed() {
        let s = LocalSigner::new(b"k").unwrap();
        let url = s.sign(
            Scope::File,
            "tracks/1/original.wav",
            100,
            Some("Café Noir.wav"),
        );
        assert!(url.ends_with("?filename=Caf%C3%A9%20Noir%2Ewav"), "{url}");
        let token = url.split('/').nth(4).unwrap();
        assert!(
            s.verify(
                Scope::File,
                "tracks/1/original.wav",
                100,
                token,
                Some("Café Noir.wav"),
                1
            )
            .is_ok()
        );
        assert!(
            s.verify(
                Scope::File,
                "tracks/1/original.wav",
                100,
                token,
                Some("evil.exe"),
                1
            )
            .is_err()
        );
        assert!(
            s.verify(Scope::File, "tracks/1/original.wav", 100, token, None, 1)
                .is_err()
        );
    }
}
