//! HLS packaging (RFC 8216): AAC frames cut into MPEG-TS segments of about
//! [`SEGMENT_SECONDS`], content-addressed segment names, a VOD media playlist whose
//! `#EXTINF` values are the segments' real durations, and a master playlist whose
//! `BANDWIDTH`/`AVERAGE-BANDWIDTH` are measured from the segments' bytes.

use sha2::{Digest, Sha256};

use super::mpegts::TsMuxer;
use super::{AAC_FRAME, SAMPLE_RATE};

/// Apple's recommended segment length.
pub const SEGMENT_SECONDS: f64 = 6.0;
/// RFC 6381 codec string of AAC-LC.
pub const AAC_LC: &str = "mp4a.40.2";

#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub bytes: Vec<u8>,
    pub seconds: f64,
}

/// One rendition: its segments and media playlist.
#[derive(Debug, Clone)]
pub struct Rendition {
    pub segments: Vec<Segment>,
    pub playlist: String,
}

impl Rendition {
    /// Peak segment bit rate (what `BANDWIDTH` must not be exceeded by, §4.3.4.2).
    pub fn peak_bps(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| (s.bytes.len() as f64 * 8.0 / s.seconds).ceil() as u64)
            .max()
            .unwrap_or(0)
    }

    /// Average bit rate over the whole rendition (`AVERAGE-BANDWIDTH`).
    pub fn average_bps(&self) -> u64 {
        let bytes: usize = self.segments.iter().map(|s| s.bytes.len()).sum();
        let secs: f64 = self.segments.iter().map(|s| s.seconds).sum();
        if secs > 0.0 {
            (bytes as f64 * 8.0 / secs).ceil() as u64
        } else {
            0
        }
    }
}

/// `seg-{first 16 hex digits of SHA-256}.ts`: a segment's name is its content.
pub fn segment_name(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("seg-{}.ts", hex::encode(&digest[..8]))
}

/// Cut ADTS `frames` (one per [`AAC_FRAME`] samples) into MPEG-TS segments.
pub fn package(frames: &[Vec<u8>]) -> Rendition {
    let per_segment = ((SEGMENT_SECONDS * f64::from(SAMPLE_RATE)) as usize / AAC_FRAME).max(1);
    let mut mux = TsMuxer::new();
    let segments: Vec<Segment> = frames
        .chunks(per_segment)
        .enumerate()
        .map(|(i, chunk)| {
            let bytes = mux.segment(chunk, (i * per_segment * AAC_FRAME) as u64);
            Segment {
                name: segment_name(&bytes),
                seconds: (chunk.len() * AAC_FRAME) as f64 / f64::from(SAMPLE_RATE),
                bytes,
            }
        })
        .collect();
    let target = segments
        .iter()
        .map(|s| s.seconds.ceil() as u64)
        .max()
        .unwrap_or(1);
    let mut playlist = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    );
    for s in &segments {
        playlist.push_str(&format!("#EXTINF:{:.5},\n{}\n", s.seconds, s.name));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    Rendition { segments, playlist }
}

/// A master playlist listing `(uri, rendition)` pairs, all AAC-LC.
pub fn master(renditions: &[(&str, &Rendition)]) -> String {
    let mut m = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (uri, r) in renditions {
        m.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{AAC_LC}\"\n{uri}\n",
            r.peak_bps(),
            r.average_bps()
        ));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_durations_and_bandwidth_are_measured() {
        // 600 frames of 300 bytes: 2 full segments of 258 frames and one of 84.
        let frames = vec![vec![0xFFu8; 300]; 600];
        let r = package(&frames);
        assert_eq!(r.segments.len(), 3);
        let secs: Vec<f64> = r.segments.iter().map(|s| s.seconds).collect();
        assert!((secs[0] - 258.0 * 1024.0 / 44_100.0).abs() < 1e-9);
        assert!((secs[2] - 84.0 * 1024.0 / 44_100.0).abs() < 1e-9);
        assert!(r.playlist.contains("#EXT-X-TARGETDURATION:6\n"));
        assert!(r.playlist.contains("#EXTINF:5.99075,\n"));
        assert!(r.playlist.ends_with("#EXT-X-ENDLIST\n"));
        for s in &r.segments {
            assert_eq!(s.name, segment_name(&s.bytes));
            assert!(r.playlist.contains(&s.name));
        }
        let avg = r.average_bps();
        assert!(r.peak_bps() >= avg);
        // 300 bytes per 1024 samples is 103 kbit/s of audio; TS adds a few percent.
        assert!((103_000..=115_000).contains(&avg), "{avg}");
        let m = master(&[("media.m3u8", &r)]);
        assert!(m.contains(&format!(
            "BANDWIDTH={},AVERAGE-BANDWIDTH={avg},CODECS=\"mp4a.40.2\"\nmedia.m3u8\n",
            r.peak_bps()
        )));
    }
}
