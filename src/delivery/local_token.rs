//! Expiring HMAC tokens for the service's own `/media/...` route — how the embedded
//! default (local storage, no CDN) delivers signed URLs with nothing else running.
//!
//! URL shape: `/media/{scope}/{expires}/{token}/{key}` where `scope` is `d` (the token
//! covers every file under the key's directory — HLS, so relative segment URLs inherit
//! it, the way Bunny's path form does) or `f` (exactly this file, plus the download
//! file name when one is given). The token is base64url(HMAC-SHA256(key,
//! `scope \n expires \n signed-path \n filename`)). Verification is constant-time.
//!
//! `expires` is accepted only in the canonical decimal form the signer writes (no sign,
//! no leading zero: [`parse_expiry`]), so one signature has one URL; and a token whose
//! lifetime exceeds the longest TTL the service issues (`CDN_URL_TTL`) plus
//! [`CLOCK_SKEW`] is refused even with a genuine signature, so a leaked key or a
//! signing bug cannot mint a URL that stays valid for years.

use std::time::Duration;

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
    /// Expires later than any token the service issues could.
    TooLongLived,
}

/// How far ahead of this instance's clock the clock of the instance that issued a token
/// may be (instances behind a balancer share the key, not the clock).
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The expiry of a `/media` URL: decimal digits exactly as the signer writes them (no
/// `+`, no leading `0`, no spaces), so `+E`, `0E` and `E` are not three URLs of one
/// signature.
pub fn parse_expiry(raw: &str) -> Result<u64, TokenError> {
    let canonical = !raw.is_empty()
        && raw.bytes().all(|b| b.is_ascii_digit())
        && (raw == "0" || !raw.starts_with('0'));
    if !canonical {
        return Err(TokenError::Malformed);
    }
    raw.parse().map_err(|_| TokenError::Malformed)
}

impl TokenError {
    /// What the 403 says.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::Expired => "expired",
            TokenError::BadSignature => "badsignature",
            TokenError::TooLongLived => "lifetime beyond the longest issued",
        }
    }
}

/// Pre-keyed signer; cloning the HMAC state per token avoids re-hashing the key.
#[derive(Clone)]
pub struct LocalSigner {
    mac: HmacSha256,
    /// The longest lifetime a valid token can have left: the TTL plus [`CLOCK_SKEW`].
    max_lifetime: u64,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalSigner([redacted])")
    }
}

impl LocalSigner {
    /// A signer whose tokens live at most `longest_ttl` (the service's `CDN_URL_TTL`).
    /// HMAC accepts keys of any length; the error exists only in the trait's signature.
    pub fn new(key: &[u8], longest_ttl: Duration) -> Result<Self, hmac::digest::InvalidLength> {
        Ok(LocalSigner {
            mac: HmacSha256::new_from_slice(key)?,
            max_lifetime: longest_ttl.saturating_add(CLOCK_SKEW).as_secs(),
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

    /// Check a token for `key` at time `now`: its signature, then that it has not
    /// expired and does not live longer than the service's tokens can.
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
        if expires - now > self.max_lifetime {
            return Err(TokenError::TooLongLived);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(3600);

    #[test]
    fn a_token_signs_its_directory_or_file_and_nothing_else() {
        let s = LocalSigner::new(b"k", TTL).unwrap();
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
        let other = LocalSigner::new(b"other", TTL).unwrap();
        assert!(
            other
                .verify(Scope::Directory, "hls/3/x.ts", 100, token, None, 50)
                .is_err()
        );
    }

    #[test]
    fn the_download_name_is_signed() {
        let s = LocalSigner::new(b"k", TTL).unwrap();
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

    #[test]
    fn tokens_issued_before_still_verify() {
        // A URL as the service signed them before the lifetime and form checks (key `k`;
        // HMAC-SHA256 of "d\n1700003600\nhls/3/\n", computed independently).
        let s = LocalSigner::new(b"k", TTL).unwrap();
        let url = s.sign(Scope::Directory, "hls/3/master.m3u8", 1_700_003_600, None);
        assert_eq!(
            url,
            "/media/d/1700003600/xxiaAPJ9EgwTsXiXpbET1umXa54YT3eH4lQ63lPpCic/hls/3/master.m3u8"
        );
        let token = url.split('/').nth(4).unwrap();
        assert!(
            s.verify(
                Scope::Directory,
                "hls/3/seg-a.ts",
                1_700_003_600,
                token,
                None,
                1_700_000_000
            )
            .is_ok()
        );
    }

    #[test]
    fn lifetimes_beyond_the_ttl_and_skew_are_refused() {
        let s = LocalSigner::new(b"k", TTL).unwrap();
        let now = 1_700_000_000;
        let verify = |expires: u64| {
            let url = s.sign(Scope::File, "tracks/1/original.wav", expires, None);
            let token = url.split('/').nth(4).unwrap().to_string();
            s.verify(
                Scope::File,
                "tracks/1/original.wav",
                expires,
                &token,
                None,
                now,
            )
        };
        assert!(verify(now + 3600).is_ok());
        assert!(verify(now + 3600 + CLOCK_SKEW.as_secs()).is_ok());
        for far in [
            now + 3600 + CLOCK_SKEW.as_secs() + 1,
            now + 86_400 * 365,
            u64::MAX,
        ] {
            assert_eq!(verify(far), Err(TokenError::TooLongLived), "{far}");
        }
    }

    #[test]
    fn only_the_canonical_expiry_parses() {
        assert_eq!(parse_expiry("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_expiry("0"), Ok(0));
        assert_eq!(parse_expiry("18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "",
            "+1700000000",
            "01700000000",
            "00",
            " 1",
            "1 ",
            "-1",
            "1e9",
            "18446744073709551616",
        ] {
            assert_eq!(parse_expiry(bad), Err(TokenError::Malformed), "{bad:?}");
        }
    }
}
