//! Bearer tokens: 256 random bits from the OS's CSPRNG, shown once, stored only as
//! their SHA-256.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Every token starts with this: recognisable in a leaked-secret scan, and a cheap
/// first check before any hashing.
pub const PREFIX: &str = "vz_";
/// `vz_` and 32 bytes in unpadded base64url.
pub const LENGTH: usize = 3 + 43;

/// A new token and the hash to store. `None` only if the OS has no randomness.
pub fn generate() -> Option<(Secret<String>, String)> {
    let bytes = random::<32>()?;
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash(&token);
    Some((Secret::new(token), hash))
}

/// Random bytes from the OS (aws-lc's `SystemRandom`).
pub fn random<const N: usize>() -> Option<[u8; N]> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).ok()?;
    Some(out)
}

/// A share token for an unlisted track or playlist: 128 random bits, URL-safe.
pub fn share_token() -> Option<String> {
    random::<16>().map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// SHA-256 of a token, lower-case hex: what the database keeps.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `s` has a token's shape (checked before touching the cache or database).
pub fn well_formed(s: &str) -> bool {
    s.len() == LENGTH
        && s.starts_with(PREFIX)
        && s[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_well_formed_distinct_and_stored_hashed() {
        let (a, ha) = generate().unwrap();
        let (b, hb) = generate().unwrap();
        assert!(well_formed(a.expose()) && well_formed(b.expose()));
        assert_ne!(a.expose(), b.expose());
        assert_eq!(ha, hash(a.expose()));
        assert_eq!(ha.len(), 64);
        assert_ne!(ha, hb);
        assert!(!ha.contains(&a.expose()[3..]));
        assert!(!well_formed("vz_short"));
        assert!(!well_formed(&format!("xx_{}", &a.expose()[3..])));
        assert_eq!(share_token().unwrap().len(), 22);
    }
}
