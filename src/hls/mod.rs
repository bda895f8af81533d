//! HLS (RFC 8216), the one place that knows it: the ladder every import is transcoded
//! to ([`ladder`]), how segments and playlists are named ([`naming`]), parsing and
//! writing media and master playlists ([`playlist`]), the measured `BANDWIDTH` and
//! `AVERAGE-BANDWIDTH` ([`bandwidth`]), and the per-listener rewrite that gives every
//! segment its own signed URL ([`segment_urls`]). Pure code: no I/O, no runtime.
//!
//! Used by `media` (the demo's in-process packaging), `ingest` (ffmpeg's output laid
//! out and rewritten) and the web layer's `rewrite` delivery mode.

pub mod bandwidth;
pub mod ladder;
pub mod naming;
pub mod playlist;
pub mod segment_urls;
