//! Media and master playlists: parsing a VOD media playlist, renaming its segments,
//! writing one, and writing the master that lists the renditions. Durations are whole
//! microseconds throughout.

use std::collections::HashMap;

use super::bandwidth::Bandwidth;
use super::ladder::AAC_LC_CODECS;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlaylistError {
    #[error("not an M3U8 playlist")]
    NotM3u8,
    #[error("bad #EXTINF line {0:?}")]
    BadExtinf(String),
    #[error("segment {0:?} has no #EXTINF")]
    MissingExtinf(String),
    #[error("segment {0:?} is not a plain file name")]
    BadUri(String),
    #[error("no new name for segment {0:?}")]
    Unmapped(String),
    #[error("playlist has no segments")]
    Empty,
    #[error("playlist has no #EXT-X-ENDLIST (incomplete)")]
    Incomplete,
    #[error("a segment has zero duration")]
    ZeroDuration,
}

/// One media segment of a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub duration_us: u64,
    pub uri: String,
}

/// A decimal number of seconds (`"5.023711"`, `"6"`, as in `#EXTINF` and ffprobe's
/// output) as microseconds; digits beyond the sixth decimal are dropped.
pub fn parse_seconds_us(s: &str) -> Option<u64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut micros = 0u64;
    for (i, b) in (0u32..6).zip(frac.bytes()) {
        micros += u64::from(b - b'0') * 10u64.pow(5 - i);
    }
    whole.checked_mul(1_000_000)?.checked_add(micros)
}

/// Microseconds as `S.SSSSSS` seconds (for ffmpeg's `-t`).
pub fn format_seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// The segments of a VOD media playlist, with their `#EXTINF` durations.
pub fn parse_media_playlist(text: &str) -> Result<Vec<Segment>, PlaylistError> {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    if lines.next().map(str::trim) != Some("#EXTM3U") {
        return Err(PlaylistError::NotM3u8);
    }
    let mut segments = Vec::new();
    let mut pending: Option<u64> = None;
    let mut ended = false;
    for line in lines {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            let value = rest.split(',').next().unwrap_or_default();
            pending =
                Some(parse_seconds_us(value).ok_or_else(|| PlaylistError::BadExtinf(line.into()))?);
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            let duration_us = pending
                .take()
                .ok_or_else(|| PlaylistError::MissingExtinf(line.into()))?;
            if line.contains('/') || line.contains('\\') || line.starts_with('.') {
                return Err(PlaylistError::BadUri(line.into()));
            }
            segments.push(Segment {
                duration_us,
                uri: line.to_string(),
            });
        }
    }
    if segments.is_empty() {
        return Err(PlaylistError::Empty);
    }
    if !ended {
        return Err(PlaylistError::Incomplete);
    }
    Ok(segments)
}

/// `#EXT-X-TARGETDURATION`: the longest `#EXTINF`, rounded up (RFC 8216 §4.3.3.1).
pub fn target_duration(segments: &[Segment]) -> u64 {
    segments
        .iter()
        .map(|s| s.duration_us.div_ceil(1_000_000))
        .max()
        .unwrap_or(0)
}

/// The media playlist with every segment URI renamed through `names` and
/// `#EXT-X-TARGETDURATION` set to [`target_duration`]; other lines are kept.
pub fn rewrite_media_playlist(
    text: &str,
    names: &HashMap<String, String>,
) -> Result<String, PlaylistError> {
    let segments = parse_media_playlist(text)?;
    let target = target_duration(&segments);
    let mut out = String::with_capacity(text.len());
    for line in text.lines().map(|l| l.trim_end_matches('\r').trim()) {
        if line.starts_with("#EXT-X-TARGETDURATION:") {
            out.push_str(&format!("#EXT-X-TARGETDURATION:{target}"));
        } else if !line.is_empty() && !line.starts_with('#') {
            let new = names
                .get(line)
                .ok_or_else(|| PlaylistError::Unmapped(line.into()))?;
            out.push_str(new);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Ok(out)
}

/// A VOD media playlist naming `segments` in order: `#EXTINF` to five decimals
/// (rounded half up from the microseconds), `#EXT-X-TARGETDURATION` their
/// [`target_duration`] (at least 1).
pub fn media_playlist(segments: &[Segment]) -> String {
    let target = target_duration(segments).max(1);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );
    for s in segments {
        let hundred_thousandths = (s.duration_us + 5) / 10;
        out.push_str(&format!(
            "#EXTINF:{}.{:05},\n{}\n",
            hundred_thousandths / 100_000,
            hundred_thousandths % 100_000,
            s.uri
        ));
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// The master playlist: one `#EXT-X-STREAM-INF` per rendition (its media playlist's
/// URI and measured bandwidth), in the given order, all AAC-LC.
pub fn master_playlist(renditions: &[(&str, Bandwidth)]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (uri, bw) in renditions {
        out.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{AAC_LC_CODECS}\"\n{uri}\n",
            bw.peak, bw.average
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_exactly() {
        assert_eq!(parse_seconds_us("5.023711"), Some(5_023_711));
        assert_eq!(parse_seconds_us("6"), Some(6_000_000));
        assert_eq!(parse_seconds_us("6.5"), Some(6_500_000));
        assert_eq!(parse_seconds_us(".25"), Some(250_000));
        assert_eq!(parse_seconds_us("1.23456789"), Some(1_234_567));
        for bad in ["", ".", "-1", "1e3", "N/A", "1.2.3"] {
            assert_eq!(parse_seconds_us(bad), None, "{bad}");
        }
        assert_eq!(format_seconds(5_000_000), "5.000000");
        assert_eq!(format_seconds(2_020_136), "2.020136");
    }

    const FFMPEG_PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n\
#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:6.013968,\na64-00000.ts\n\
#EXTINF:5.990748,\na64-00001.ts\n#EXTINF:1.018594,\na64-00002.ts\n#EXT-X-ENDLIST\n";

    #[test]
    fn media_playlists_are_parsed_and_rewritten() {
        let segs = parse_media_playlist(FFMPEG_PLAYLIST).unwrap();
        assert_eq!(
            segs.iter().map(|s| s.duration_us).collect::<Vec<_>>(),
            [6_013_968, 5_990_748, 1_018_594]
        );
        // 6.013968 s rounds up to 7 (ffmpeg wrote 6).
        assert_eq!(target_duration(&segs), 7);
        let names: HashMap<String, String> = segs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.uri.clone(), format!("seg-{i:016x}.ts")))
            .collect();
        let out = rewrite_media_playlist(FFMPEG_PLAYLIST, &names).unwrap();
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:7\n#EXT-X-MEDIA-SEQUENCE:0\n\
#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:6.013968,\nseg-0000000000000000.ts\n#EXTINF:5.990748,\n\
seg-0000000000000001.ts\n#EXTINF:1.018594,\nseg-0000000000000002.ts\n#EXT-X-ENDLIST\n"
        );
        // Exactly 6 s stays 6.
        let six = "#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:6.000000,\na.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(target_duration(&parse_media_playlist(six).unwrap()), 6);

        let mut partial = names;
        partial.remove("a64-00001.ts");
        assert_eq!(
            rewrite_media_playlist(FFMPEG_PLAYLIST, &partial),
            Err(PlaylistError::Unmapped("a64-00001.ts".into()))
        );
    }

    #[test]
    fn bad_playlists_are_refused() {
        for (text, err) in [
            ("#EXTINF:1,\na.ts\n", PlaylistError::NotM3u8),
            ("#EXTM3U\n#EXT-X-ENDLIST\n", PlaylistError::Empty),
            ("#EXTM3U\n#EXTINF:1,\na.ts\n", PlaylistError::Incomplete),
            (
                "#EXTM3U\na.ts\n#EXT-X-ENDLIST\n",
                PlaylistError::MissingExtinf("a.ts".into()),
            ),
            (
                "#EXTM3U\n#EXTINF:x,\na.ts\n#EXT-X-ENDLIST\n",
                PlaylistError::BadExtinf("#EXTINF:x,".into()),
            ),
            (
                "#EXTM3U\n#EXTINF:1,\n../a.ts\n#EXT-X-ENDLIST\n",
                PlaylistError::BadUri("../a.ts".into()),
            ),
        ] {
            assert_eq!(parse_media_playlist(text), Err(err), "{text}");
        }
    }

    #[test]
    fn written_media_playlists_parse_back() {
        let segs = [
            Segment {
                duration_us: 5_990_748,
                uri: "seg-a.ts".into(),
            },
            Segment {
                duration_us: 1_950_476,
                uri: "seg-b.ts".into(),
            },
        ];
        let text = media_playlist(&segs);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n\
#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXTINF:5.99075,\nseg-a.ts\n\
#EXTINF:1.95048,\nseg-b.ts\n#EXT-X-ENDLIST\n"
        );
        let back = parse_media_playlist(&text).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].duration_us, 5_990_750);
    }

    #[test]
    fn master_lists_every_rendition() {
        let m = master_playlist(&[
            (
                "a64.m3u8",
                Bandwidth {
                    peak: 75_200,
                    average: 70_000,
                },
            ),
            (
                "a160.m3u8",
                Bandwidth {
                    peak: 180_000,
                    average: 170_000,
                },
            ),
        ]);
        assert_eq!(
            m,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-STREAM-INF:BANDWIDTH=75200,AVERAGE-BANDWIDTH=70000,CODECS=\"mp4a.40.2\"\na64.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=180000,AVERAGE-BANDWIDTH=170000,CODECS=\"mp4a.40.2\"\na160.m3u8\n"
        );
    }
}
