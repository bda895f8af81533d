//! Playlist rewriting for the `rewrite` delivery mode: a media playlist served to one
//! listener gets an absolute, signed URL for every segment, because a player resolves
//! relative URIs against the playlist URL and drops its query (RFC 3986 §5.2), so a
//! query-string token never reaches the segments. Only plain names in the playlist's
//! directory ([`is_plain_name`]) are segments here.

use super::naming::is_plain_name;

/// Whether `text` is a media playlist (segments), as opposed to a master playlist
/// (variants, which stay relative so they come back through the signed `/media` route).
pub fn is_media_playlist(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("#EXTINF"))
}

/// The segment names of a media playlist, in order: every URI line that is a plain
/// file name in the playlist's directory.
pub fn segment_names(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && is_plain_name(l))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("playlist URI {0:?} is not a plain segment name")]
    UnexpectedUri(String),
    #[error("no signed URL for segment {0:?}")]
    Missing(String),
}

/// Replace every segment URI of a media playlist with `urls[name]`. A URI that is not a
/// plain name (absolute, nested, `..`) or has no URL is an error: a playlist is never
/// served half-signed.
pub fn rewrite_segments(
    text: &str,
    url_for: impl Fn(&str) -> Option<String>,
) -> Result<String, RewriteError> {
    let mut out = String::with_capacity(text.len() * 3);
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            out.push_str(line);
        } else {
            if !is_plain_name(t) {
                return Err(RewriteError::UnexpectedUri(t.to_string()));
            }
            let url = url_for(t).ok_or_else(|| RewriteError::Missing(t.to_string()))?;
            out.push_str(&url);
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEDIA: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:5.99075,\nseg-aa.ts\n#EXTINF:3.0,\nseg-bb.ts\n#EXT-X-ENDLIST\n";

    #[test]
    fn every_segment_gets_its_absolute_url_and_tags_stay() {
        assert!(is_media_playlist(MEDIA));
        assert!(!is_media_playlist(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nmedia.m3u8\n"
        ));
        assert_eq!(segment_names(MEDIA), ["seg-aa.ts", "seg-bb.ts"]);
        let out = rewrite_segments(MEDIA, |n| {
            Some(format!("https://cdn.example/hls/3/{n}?t=x"))
        })
        .unwrap();
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:5.99075,\nhttps://cdn.example/hls/3/seg-aa.ts?t=x\n#EXTINF:3.0,\nhttps://cdn.example/hls/3/seg-bb.ts?t=x\n#EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn foreign_uris_and_unsigned_segments_are_refused() {
        let evil = "#EXTM3U\n#EXTINF:1,\nhttps://elsewhere/x.ts\n";
        assert!(matches!(
            rewrite_segments(evil, |_| Some(String::new())),
            Err(RewriteError::UnexpectedUri(_))
        ));
        assert!(matches!(
            rewrite_segments(MEDIA, |n| (n == "seg-aa.ts").then(String::new)),
            Err(RewriteError::Missing(_))
        ));
    }
}
