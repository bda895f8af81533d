//! The shape of every storage key, in one place: which keys are valid (relative,
//! `/`-separated, every segment a plain name, so nothing can escape the storage root or
//! land where the HLS origin would refuse to serve it), and where each kind of object
//! lives (originals, HLS directories, their playlists). Pure code.

use crate::hls::naming::{MASTER_PLAYLIST, NameError, validate_segment};

/// The longest key.
pub const MAX_KEY_LEN: usize = 512;

/// Validate a relative storage key such as `hls/3/seg-ab.ts` or
/// `tracks/3/original.wav`: every segment must pass [`validate_segment`].
pub fn validate_key(raw: &str) -> Result<&str, NameError> {
    if raw.is_empty() {
        return Err(NameError::Empty);
    }
    if raw.len() > MAX_KEY_LEN {
        return Err(NameError::TooLong);
    }
    for seg in raw.split('/') {
        validate_segment(seg)?;
    }
    Ok(raw)
}

/// The directory a key lives in, with its trailing slash (`hls/3/`).
pub fn directory_of(key: &str) -> &str {
    key.rfind('/').map_or("", |i| &key[..=i])
}

/// A file of a track's HLS directory: `{prefix}/{name}`.
pub fn hls_file(prefix: &str, name: &str) -> String {
    format!("{}/{name}", prefix.trim_end_matches('/'))
}

/// The master playlist of a track's HLS directory.
pub fn master_playlist(prefix: &str) -> String {
    hls_file(prefix, MASTER_PLAYLIST)
}

/// The original of an imported track, by content id: `tracks/i-{id}/original.{ext}`.
pub fn imported_original(id: &str, ext: &str) -> String {
    format!("tracks/i-{id}/original.{ext}")
}

/// The HLS directory of an imported track, by content id: `hls/i-{id}`.
pub fn imported_hls_prefix(id: &str) -> String {
    format!("hls/i-{id}")
}

/// The original of demo track `n`.
pub fn demo_original(n: u32) -> String {
    format!("tracks/{n}/original.wav")
}

/// The HLS directory of demo track `n`.
pub fn demo_hls_prefix(n: u32) -> String {
    format!("hls/{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated_per_segment() {
        assert!(validate_key("hls/3/seg-a.ts").is_ok());
        assert!(validate_key("tracks/3/original.wav").is_ok());
        for bad in [
            "hls/../x",
            "/abs",
            "hls//x",
            "hls/3/",
            "a\\b",
            "hls/%2e%2e/x",
        ] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hls_keys_join_one_slash() {
        assert_eq!(master_playlist("hls/3"), "hls/3/master.m3u8");
        assert_eq!(hls_file("hls/3/", "seg-a.ts"), "hls/3/seg-a.ts");
        assert_eq!(directory_of("hls/3/master.m3u8"), "hls/3/");
        assert_eq!(directory_of("x"), "");
    }
}
