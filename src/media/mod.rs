//! Real, decodable audio made in-process: the demo catalogue's music (a deterministic
//! melody per track), its AAC-LC encoding, MPEG-TS packaging and HLS playlists, and the
//! WAV original. Pure code apart from the encoder's FFI (inside the `fdk-aac` crate);
//! nothing here touches storage or the database.

// Bitstream packing (`(pts >> 22) as u8`) and sample synthesis (`(x * gain) as i16`)
// truncate on purpose: the lints that catch accidental truncation elsewhere are off here.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

pub mod aac;
pub mod demo;
pub mod mpegts;
pub mod packaging;
pub mod synth;
pub mod wav;

/// The sample rate of everything this module makes.
pub const SAMPLE_RATE: u32 = 44_100;
/// PCM samples (per channel) in one AAC-LC access unit.
pub const AAC_FRAME: usize = 1024;
