//! What an import derives its keys from: the content id, the original's extension and
//! content type. Pure. The keys' shapes are `store::layout`'s.

use std::ffi::OsStr;
use std::path::Path;

use crate::hls::naming::content_type_for;

/// The content id of a file: the first 16 hex digits of its SHA-256.
pub fn content_id(digest: &[u8]) -> String {
    let mut id = hex::encode(digest);
    id.truncate(16);
    id
}

/// The original's extension, lower-cased; `bin` when it has none usable as a key.
pub fn original_ext(path: &Path) -> String {
    path.extension()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase)
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "bin".to_string())
}

/// The original's content type, from its extension (`audio/mpeg`, `audio/flac`, …).
pub fn original_content_type(ext: &str) -> &'static str {
    content_type_for(&format!("original.{ext}"))
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::hls::naming::segment_name;
    use crate::store::layout::{
        imported_hls_prefix as hls_prefix, imported_original as original_key,
    };

    #[test]
    fn content_addresses() {
        let digest = Sha256::digest(b"abc");
        assert_eq!(content_id(&digest), "ba7816bf8f01cfea");
        assert_eq!(segment_name(b"abc"), "seg-ba7816bf8f01cfea.ts");
        assert_eq!(
            original_key("ba7816bf8f01cfea", "mp3"),
            "tracks/i-ba7816bf8f01cfea/original.mp3"
        );
        assert_eq!(hls_prefix("ba7816bf8f01cfea"), "hls/i-ba7816bf8f01cfea");
        assert!(crate::store::layout::validate_key(&original_key("ab", "flac")).is_ok());
        assert!(
            crate::hls::naming::validate_hls_name(&segment_name(b"")).is_ok(),
            "the origin serves segment names"
        );
    }

    #[test]
    fn extensions_and_content_types() {
        for (file, ext, ct) in [
            ("a/Song.MP3", "mp3", "audio/mpeg"),
            ("x.flac", "flac", "audio/flac"),
            ("x.Wav", "wav", "audio/wav"),
            ("x.m4a", "m4a", "audio/mp4"),
            ("x.ogg", "ogg", "audio/ogg"),
            ("x.opus", "opus", "audio/opus"),
            ("noext", "bin", "application/octet-stream"),
            ("x.we ird", "bin", "application/octet-stream"),
            ("x.verylongext", "bin", "application/octet-stream"),
        ] {
            let got = original_ext(Path::new(file));
            assert_eq!(got, ext, "{file}");
            assert_eq!(original_content_type(&got), ct, "{file}");
        }
    }
}
