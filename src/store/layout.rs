//! The shape of every storage key, in one place: which keys are valid (relative,
//! `/`-separated, every segment a plain name, so nothing can escape the storage root or
//! land where the HLS origin would refuse to serve it), and where each kind of object
//! lives (originals, HLS directories, their playlists). Pure code.

use std::fmt;

/// The longest plain name a key segment may have.
pub const MAX_NAME_LEN: usize = 128;
/// The longest key.
pub const MAX_KEY_LEN: usize = 512;
/// The master playlist's name inside a track's HLS directory.
pub const MASTER_PLAYLIST: &str = "master.m3u8";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    ForbiddenCharacter,
    HiddenOrRelative,
    Extension,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Empty => "empty file name",
            NameError::TooLong => "file name longer than 128 bytes",
            NameError::ForbiddenCharacter => {
                "file name may contain only letters, digits, '.', '_' and '-'"
            }
            NameError::HiddenOrRelative => "file name may not start with '.' or contain '..'",
            NameError::Extension => "file extension not allowed",
        })
    }
}

impl std::error::Error for NameError {}

/// Validate one plain file-name segment (no directories): `[A-Za-z0-9._-]`, not starting
/// with `.`, no `..`, at most [`MAX_NAME_LEN`] bytes. `/`, `\`, NUL, percent-encoding and
/// look-alike Unicode dots are all refused before any storage access.
pub fn validate_segment(raw: &str) -> Result<&str, NameError> {
    if raw.is_empty() {
        return Err(NameError::Empty);
    }
    if raw.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(NameError::ForbiddenCharacter);
    }
    if raw.starts_with('.') || raw.contains("..") {
        return Err(NameError::HiddenOrRelative);
    }
    Ok(raw)
}

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

/// What a token or signature covers: one file, or every file of its directory (HLS,
/// so relative segment URLs inherit it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Scope {
    Directory,
    #[default]
    File,
}

impl Scope {
    /// The letter of `/media/{scope}/…` URLs and cache keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Directory => "d",
            Scope::File => "f",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "d" => Some(Scope::Directory),
            "f" => Some(Scope::File),
            _ => None,
        }
    }

    /// The part of `key` this scope covers: the key itself, or its directory.
    pub fn covered(self, key: &str) -> &str {
        match self {
            Scope::Directory => directory_of(key),
            Scope::File => key,
        }
    }
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
