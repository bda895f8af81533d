//! One demo track's media, made from nothing: the tune ([`super::synth`]), its WAV
//! original, and an AAC-LC HLS rendition of the same samples.

use crate::hls::playlist::master_playlist;

use super::aac::{AacError, encode_adts};
use super::packaging::{PackagedRendition, package};
use super::synth::{Tune, render as compose};
use super::{SAMPLE_RATE, wav};

/// AAC-LC bit rate of the demo's (mono) rendition.
pub const DEMO_BITRATE: u32 = 96_000;
/// The media playlist's name next to `master.m3u8`.
pub const MEDIA_PLAYLIST: &str = "media.m3u8";

#[derive(Debug, Clone)]
pub struct DemoMedia {
    pub tune: Tune,
    /// The original: mono 16-bit WAV.
    pub wav: Vec<u8>,
    pub rendition: PackagedRendition,
    pub master: String,
}

/// Render demo track `n` (deterministic: same `n`, same bytes).
pub fn render(n: u32) -> Result<DemoMedia, AacError> {
    let (tune, pcm) = compose(n);
    let frames = encode_adts(&pcm, 1, DEMO_BITRATE)?;
    let rendition = package(&frames);
    let master = master_playlist(&[(MEDIA_PLAYLIST, rendition.bandwidth)]);
    Ok(DemoMedia {
        tune,
        wav: wav::encode(&pcm, 1, SAMPLE_RATE),
        rendition,
        master,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_demo_track_is_a_whole_hls_set() {
        let m = super::render(4).unwrap();
        let secs: f64 = m.rendition.segments.iter().map(|s| s.seconds).sum();
        assert!((secs * 1000.0 - m.tune.duration_ms() as f64).abs() < 1.0);
        assert_eq!(m.wav.len(), 44 + 2 * m.tune.samples);
        assert!(m.master.contains("CODECS=\"mp4a.40.2\""));
        assert!(m.master.contains("\nmedia.m3u8\n"));
        let avg = m.rendition.average_bps();
        assert!((96_000..=110_000).contains(&avg), "{avg}");
    }
}
