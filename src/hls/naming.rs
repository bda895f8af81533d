//! File names inside an HLS directory: content-addressed segments, the master
//! playlist, the one rule for a plain name (what a playlist may name, what the origin
//! serves, what every segment of a storage key must be), and which names the origin and
//! `/media` serve as what ([`HlsKind`]). A name is accepted only if it is one plain
//! segment of `[A-Za-z0-9._-]`, not starting with `.`, without `..`, at most
//! [`MAX_NAME_LEN`] bytes, so `..`, `/`, `\`, NUL, percent-encoding (single or double)
//! and look-alike Unicode dots are all rejected before any storage access.

use std::fmt;

use sha2::{Digest, Sha256};

/// The master playlist's name in every HLS directory.
pub const MASTER_PLAYLIST: &str = "master.m3u8";

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

/// The longest plain name.
pub const MAX_NAME_LEN: usize = 128;

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

/// Whether a playlist URI is a plain file name in the playlist's own directory.
pub fn is_plain_name(uri: &str) -> bool {
    validate_segment(uri).is_ok()
}

/// What an HLS file is, which decides its content type and caching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsKind {
    Playlist,
    TransportStream,
    Fmp4Segment,
    Aac,
    Mp4Init,
}

impl HlsKind {
    pub fn content_type(self) -> &'static str {
        match self {
            HlsKind::Playlist => "application/vnd.apple.mpegurl",
            HlsKind::TransportStream => "video/mp2t",
            HlsKind::Fmp4Segment => "video/iso.segment",
            HlsKind::Aac => "audio/aac",
            HlsKind::Mp4Init => "video/mp4",
        }
    }

    /// Playlists may change (live, re-encodes): short cache. Segments have
    /// content-addressed names, so they never change: cache for a day, immutable.
    pub fn cache_control(self) -> &'static str {
        match self {
            HlsKind::Playlist => "public, max-age=60",
            _ => "public, max-age=86400, immutable",
        }
    }
}

/// Validate an HLS file name and classify it.
pub fn validate_hls_name(raw: &str) -> Result<HlsKind, NameError> {
    let name = validate_segment(raw)?;
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or_default();
    match ext.to_ascii_lowercase().as_str() {
        "m3u8" => Ok(HlsKind::Playlist),
        "ts" => Ok(HlsKind::TransportStream),
        "m4s" => Ok(HlsKind::Fmp4Segment),
        "aac" => Ok(HlsKind::Aac),
        "mp4" => Ok(HlsKind::Mp4Init),
        _ => Err(NameError::Extension),
    }
}

/// Content type of an original (download) by extension.
pub fn content_type_for(key: &str) -> &'static str {
    match key
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("flac") => "audio/flac",
        Some("ogg") | Some("oga") => "audio/ogg",
        Some("opus") => "audio/opus",
        Some("m4a") => "audio/mp4",
        Some("aac") => "audio/aac",
        Some("m3u8") => HlsKind::Playlist.content_type(),
        Some("ts") => HlsKind::TransportStream.content_type(),
        Some("m4s") => HlsKind::Fmp4Segment.content_type(),
        Some("mp4") => HlsKind::Mp4Init.content_type(),
        _ => "application/octet-stream",
    }
}

/// Names an attacker might send; every one must be refused.
pub const TRAVERSAL_CORPUS: &[&str] = &[
    "..",
    "../master.m3u8",
    "..%2fmaster.m3u8",
    "..%2Fetc%2Fpasswd",
    "%2e%2e",
    "%2e%2e%2fmaster.m3u8",
    "%252e%252e%252fmaster.m3u8",
    "..%252f..%252fetc%252fpasswd",
    "..\\master.m3u8",
    "..%5cmaster.m3u8",
    "\\etc\\passwd",
    "/etc/passwd",
    "a/../../b.ts",
    "seg.ts%00.m3u8",
    "seg.ts\0",
    "\u{2024}\u{2024}/master.m3u8",
    "\u{ff0e}\u{ff0e}\u{ff0f}master.m3u8",
    "%c0%ae%c0%ae%2fmaster.m3u8",
    "%uff0e%uff0e%u2215master.m3u8",
    ".htaccess",
    ".master.m3u8",
    "master.m3u8.",
    "master.M3U8.exe",
    "master.php",
    "master",
    "seg ts.ts",
    "seg\nts.ts",
    "seg;rm.ts",
    "....//master.m3u8",
    "..;/master.m3u8",
    "",
];

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

    #[test]
    fn traversal_corpus_is_rejected() {
        for name in TRAVERSAL_CORPUS {
            assert!(validate_hls_name(name).is_err(), "accepted {name:?}");
        }
        let long = format!("{}.ts", "a".repeat(200));
        assert_eq!(validate_hls_name(&long), Err(NameError::TooLong));
    }

    #[test]
    fn plain_names_are_classified() {
        assert_eq!(validate_hls_name("master.m3u8"), Ok(HlsKind::Playlist));
        assert_eq!(
            validate_hls_name("seg-16d5caa557d9df3b.ts"),
            Ok(HlsKind::TransportStream)
        );
        assert_eq!(validate_hls_name("init.mp4"), Ok(HlsKind::Mp4Init));
        assert_eq!(validate_hls_name("chunk_1.m4s"), Ok(HlsKind::Fmp4Segment));
        assert_eq!(validate_hls_name("a.aac"), Ok(HlsKind::Aac));
        assert_eq!(HlsKind::Playlist.cache_control(), "public, max-age=60");
        assert!(
            HlsKind::TransportStream
                .cache_control()
                .contains("immutable")
        );
    }
}
