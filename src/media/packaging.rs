//! The demo's HLS packaging: AAC frames cut into MPEG-TS segments of about
//! [`SEGMENT_SECONDS`], each named by its content, with the VOD media playlist and the
//! bandwidth measured from the segments' bytes. Names, playlists and bandwidth are
//! [`crate::hls`]'s; the MPEG-TS muxing is [`super::mpegts`].

use crate::hls::bandwidth::{Bandwidth, measure_bandwidth_at};
use crate::hls::ladder::SEGMENT_SECONDS;
use crate::hls::naming::segment_name;
use crate::hls::playlist::{self, media_playlist};

use super::mpegts::TsMuxer;
use super::{AAC_FRAME, SAMPLE_RATE};

/// One MPEG-TS segment of a packaged rendition.
#[derive(Debug, Clone)]
pub struct TsSegment {
    pub name: String,
    pub bytes: Vec<u8>,
    pub seconds: f64,
    /// Its length in samples at [`SAMPLE_RATE`] (whole AAC frames).
    pub samples: u64,
}

/// One rendition: its segments, media playlist and measured bandwidth.
#[derive(Debug, Clone)]
pub struct PackagedRendition {
    pub segments: Vec<TsSegment>,
    pub playlist: String,
    pub bandwidth: Bandwidth,
}

impl PackagedRendition {
    /// Peak segment bit rate (what `BANDWIDTH` must not be exceeded by, §4.3.4.2).
    pub fn peak_bps(&self) -> u64 {
        self.bandwidth.peak
    }

    /// Average bit rate over the whole rendition (`AVERAGE-BANDWIDTH`).
    pub fn average_bps(&self) -> u64 {
        self.bandwidth.average
    }
}

/// Cut ADTS `frames` (one per [`AAC_FRAME`] samples) into MPEG-TS segments.
pub fn package(frames: &[Vec<u8>]) -> PackagedRendition {
    let per_segment = (SEGMENT_SECONDS as usize * SAMPLE_RATE as usize / AAC_FRAME).max(1);
    let mut mux = TsMuxer::new();
    let segments: Vec<TsSegment> = frames
        .chunks(per_segment)
        .enumerate()
        .map(|(i, chunk)| {
            let bytes = mux.segment(chunk, (i * per_segment * AAC_FRAME) as u64);
            TsSegment {
                name: segment_name(&bytes),
                seconds: (chunk.len() * AAC_FRAME) as f64 / f64::from(SAMPLE_RATE),
                samples: (chunk.len() * AAC_FRAME) as u64,
                bytes,
            }
        })
        .collect();
    let listed: Vec<playlist::Segment> = segments
        .iter()
        .map(|s| playlist::Segment {
            duration_us: s.samples * 1_000_000 / u64::from(SAMPLE_RATE),
            uri: s.name.clone(),
        })
        .collect();
    let sizes: Vec<(u64, u64)> = segments
        .iter()
        .map(|s| (s.samples, s.bytes.len() as u64))
        .collect();
    PackagedRendition {
        playlist: media_playlist(&listed),
        bandwidth: measure_bandwidth_at(SAMPLE_RATE, &sizes).unwrap_or(Bandwidth {
            peak: 0,
            average: 0,
        }),
        segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::playlist::master_playlist;

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
        let m = master_playlist(&[("media.m3u8", r.bandwidth)]);
        assert!(m.contains(&format!(
            "BANDWIDTH={},AVERAGE-BANDWIDTH={avg},CODECS=\"mp4a.40.2\"\nmedia.m3u8\n",
            r.peak_bps()
        )));
    }

    /// Every segment length the demo can make (1 to 258 frames) gets the `#EXTINF`
    /// and `#EXT-X-TARGETDURATION` that its exact length in seconds rounds to.
    #[test]
    fn playlist_durations_match_the_exact_lengths() {
        for frames in 1..=258usize {
            let seconds = (frames * AAC_FRAME) as f64 / f64::from(SAMPLE_RATE);
            let r = package(&vec![vec![0xFFu8; 10]; frames]);
            assert!(
                r.playlist.contains(&format!("#EXTINF:{seconds:.5},\n")),
                "{frames}: {}",
                r.playlist
            );
            let target = seconds.ceil() as u64;
            assert!(
                r.playlist
                    .contains(&format!("#EXT-X-TARGETDURATION:{target}\n")),
                "{frames}"
            );
        }
    }
}
