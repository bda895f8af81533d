//! AAC-LC encoding into ADTS frames with the Fraunhofer FDK AAC encoder (`fdk-aac`).
//!
//! An AAC encoder emits `nDelay` samples of priming before the signal. MPEG-TS has no
//! edit list to tell players to skip it, so [`encode_adts`] drops the whole priming
//! frames and keeps exactly one frame per 1024 input samples: the decoded stream is then
//! as long as the input, which is what the catalogue's `duration_ms` promises.

use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

use super::{AAC_FRAME, SAMPLE_RATE};

#[derive(Debug, thiserror::Error)]
pub enum AacError {
    #[error("AAC encoder: {0}")]
    Encoder(String),
    #[error("input must be a whole number of {AAC_FRAME}-sample frames per channel")]
    PartialFrame,
    #[error("AAC encoder produced {got} frames, {want} expected")]
    ShortOutput { got: usize, want: usize },
    #[error("AAC encoder produced a malformed ADTS frame")]
    Malformed,
}

#[allow(clippy::needless_pass_by_value)] // the shape `map_err` calls
fn fdk(e: fdk_aac::enc::EncoderError) -> AacError {
    AacError::Encoder(e.to_string())
}

/// Encode interleaved 16-bit PCM (`channels` = 1 or 2) at [`SAMPLE_RATE`] into AAC-LC
/// ADTS frames at `bitrate` bit/s (CBR), one frame per [`AAC_FRAME`] input samples.
pub fn encode_adts(pcm: &[i16], channels: u16, bitrate: u32) -> Result<Vec<Vec<u8>>, AacError> {
    let ch = usize::from(channels.clamp(1, 2));
    if !pcm.len().is_multiple_of(AAC_FRAME * ch) {
        return Err(AacError::PartialFrame);
    }
    let want = pcm.len() / ch / AAC_FRAME;
    let encoder = Encoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(bitrate),
        sample_rate: SAMPLE_RATE,
        transport: Transport::Adts,
        channels: if ch == 1 {
            ChannelMode::Mono
        } else {
            ChannelMode::Stereo
        },
        audio_object_type: AudioObjectType::Mpeg4LowComplexity,
    })
    .map_err(fdk)?;
    let info = encoder.info().map_err(fdk)?;
    let delay = info.nDelay as usize;
    let priming_frames = (delay + AAC_FRAME / 2) / AAC_FRAME;
    // Silence after the signal pushes the last real samples out of the encoder.
    let mut input = pcm.to_vec();
    input.resize(pcm.len() + (delay + 2 * AAC_FRAME) * ch, 0);

    let mut out = vec![0u8; (info.maxOutBufBytes as usize).max(8192)];
    let mut frames = Vec::with_capacity(want + priming_frames + 2);
    let mut pos = 0;
    while pos < input.len() && frames.len() < want + priming_frames {
        let end = (pos + AAC_FRAME * ch).min(input.len());
        let step = encoder.encode(&input[pos..end], &mut out).map_err(fdk)?;
        if step.input_consumed == 0 && step.output_size == 0 {
            return Err(AacError::Encoder("encoder made no progress".into()));
        }
        pos += step.input_consumed;
        split_adts(&out[..step.output_size], &mut frames)?;
    }
    let got = frames.len().saturating_sub(priming_frames);
    if got < want {
        return Err(AacError::ShortOutput { got, want });
    }
    Ok(frames.into_iter().skip(priming_frames).take(want).collect())
}

/// The length field of an ADTS header (13 bits spanning bytes 3–5).
pub fn adts_frame_len(h: &[u8]) -> Option<usize> {
    if h.len() < 7 || h[0] != 0xFF || h[1] & 0xF0 != 0xF0 {
        return None;
    }
    Some((usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | (usize::from(h[5]) >> 5))
}

fn split_adts(mut buf: &[u8], frames: &mut Vec<Vec<u8>>) -> Result<(), AacError> {
    while !buf.is_empty() {
        let len = adts_frame_len(buf).ok_or(AacError::Malformed)?;
        if len < 7 || len > buf.len() {
            return Err(AacError::Malformed);
        }
        frames.push(buf[..len].to_vec());
        buf = &buf[len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_frame_per_1024_samples_and_every_frame_is_adts() {
        let pcm: Vec<i16> = (0..AAC_FRAME * 50)
            .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
            .collect();
        let frames = encode_adts(&pcm, 1, 96_000).unwrap();
        assert_eq!(frames.len(), 50);
        for f in &frames {
            assert_eq!(adts_frame_len(f), Some(f.len()));
            // MPEG-4, AAC-LC (profile 1 = object type 2), 44.1 kHz (index 4), 1 channel.
            assert_eq!(f[1] & 0x08, 0);
            assert_eq!(f[2] >> 6, 1);
            assert_eq!((f[2] >> 2) & 0x0F, 4);
            assert_eq!(((f[2] & 1) << 2) | (f[3] >> 6), 1);
        }
        let bytes: usize = frames.iter().map(Vec::len).sum();
        let kbps = bytes as f64 * 8.0 / (50.0 * AAC_FRAME as f64 / 44_100.0) / 1000.0;
        assert!((80.0..=110.0).contains(&kbps), "{kbps} kbit/s");
    }

    #[test]
    fn partial_frames_are_refused() {
        assert!(matches!(
            encode_adts(&[0; 1000], 1, 96_000),
            Err(AacError::PartialFrame)
        ));
    }
}
