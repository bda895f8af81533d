//! File names inside an HLS directory: content-addressed segments, the master
//! playlist, and which URIs a playlist may name.

use sha2::{Digest, Sha256};

/// The master playlist's name in every HLS directory.
pub const MASTER_PLAYLIST: &str = "master.m3u8";

/// Longest file name a served playlist may name.
const MAX_NAME_LEN: usize = 128;

/// A segment's content-addressed name: `seg-{first 16 hex digits of sha256(bytes)}.ts`.
/// Same bytes, same name, so a segment never changes once published.
pub fn segment_name(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("seg-{}.ts", hex::encode(&digest[..8]))
}

/// Whether `name` has the shape [`segment_name`] gives (`seg-….ts`).
pub fn is_segment_name(name: &str) -> bool {
    name.starts_with("seg-") && name.ends_with(".ts")
}

/// Whether a playlist URI is a plain file name in the playlist's own directory: 1 to
/// 128 bytes of `[A-Za-z0-9._-]`, not starting with `.` and without `..`. This is the
/// rule the origin applies to requested names (`delivery::paths::validate_segment`;
/// `tests/properties.rs` checks that the two agree). It is stated here because `hls`
/// sits below `delivery` (`db` → `media` → `hls`, and `delivery` → `db`).
pub fn is_plain_name(uri: &str) -> bool {
    !uri.is_empty()
        && uri.len() <= MAX_NAME_LEN
        && uri
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !uri.starts_with('.')
        && !uri.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_are_content_addresses() {
        assert_eq!(segment_name(b"abc"), "seg-ba7816bf8f01cfea.ts");
        assert!(is_segment_name(&segment_name(b"")));
        assert!(is_plain_name(&segment_name(b"")));
        assert!(!is_segment_name(MASTER_PLAYLIST));
        for bad in ["", "../a.ts", ".a.ts", "a/b.ts", "a b.ts", "a..ts"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        assert!(!is_plain_name(&format!("{}.ts", "a".repeat(126))));
        assert!(is_plain_name(&format!("{}.ts", "a".repeat(125))));
    }
}
