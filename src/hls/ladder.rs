//! The AAC-LC ladder: what every imported track is transcoded to, and the constants a
//! master playlist states about it.

/// Output sample rate of every rendition.
pub const SAMPLE_RATE: u32 = 44_100;
/// Target segment length (`-hls_time`, and the demo's cut); Apple recommends 6 s.
pub const SEGMENT_SECONDS: u32 = 6;
/// RFC 6381 codec string of AAC-LC, the `CODECS` of every variant.
pub const AAC_LC_CODECS: &str = "mp4a.40.2";

/// One rung of the bitrate ladder: its media playlist is `{name}.m3u8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendition {
    pub name: &'static str,
    pub kbps: u32,
}

impl Rendition {
    /// The rendition's media playlist, next to the master: `{name}.m3u8`.
    pub fn playlist_name(&self) -> String {
        format!("{}.m3u8", self.name)
    }
}

/// The AAC-LC ladder, lowest first (the master lists them in this order).
pub const RENDITIONS: [Rendition; 2] = [
    Rendition {
        name: "a64",
        kbps: 64,
    },
    Rendition {
        name: "a160",
        kbps: 160,
    },
];
