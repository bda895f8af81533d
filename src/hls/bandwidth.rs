//! `BANDWIDTH` and `AVERAGE-BANDWIDTH` (RFC 8216 §4.3.4.2), measured from the segments'
//! sizes and durations, in exact integer arithmetic.

use super::playlist::PlaylistError;

/// Peak and average segment bit rates of a rendition, bits per second, rounded up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bandwidth {
    pub peak: u64,
    pub average: u64,
}

/// RFC 8216 §4.3.4.2 `BANDWIDTH` (the largest segment bit rate, bytes·8 / `EXTINF`)
/// and `AVERAGE-BANDWIDTH` (all bytes·8 / total duration), from `(duration_us, bytes)`
/// per segment.
pub fn measure_bandwidth(segments: &[(u64, u64)]) -> Result<Bandwidth, PlaylistError> {
    measure_bandwidth_at(1_000_000, segments)
}

/// [`measure_bandwidth`] with durations counted in `1 / timescale` s: samples at the
/// sample rate, for audio whose segment lengths are whole frames, not whole
/// microseconds.
pub fn measure_bandwidth_at(
    timescale: u32,
    segments: &[(u64, u64)],
) -> Result<Bandwidth, PlaylistError> {
    if segments.is_empty() {
        return Err(PlaylistError::Empty);
    }
    let rate = |ticks: u64, bytes: u64| -> Result<u64, PlaylistError> {
        if ticks == 0 {
            return Err(PlaylistError::ZeroDuration);
        }
        let bits = u128::from(bytes) * 8 * u128::from(timescale);
        Ok(u64::try_from(bits.div_ceil(u128::from(ticks))).unwrap_or(u64::MAX))
    };
    let mut peak = 0;
    for &(ticks, bytes) in segments {
        peak = peak.max(rate(ticks, bytes)?);
    }
    let total_ticks = segments.iter().map(|s| s.0).sum();
    let total_bytes = segments.iter().map(|s| s.1).sum();
    Ok(Bandwidth {
        peak,
        average: rate(total_ticks, total_bytes)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidth_is_measured_per_rfc_8216() {
        // 48 000 bytes in 6 s = 64 000 bit/s; 9 400 bytes in 1 s = 75 200 bit/s (peak).
        let bw = measure_bandwidth(&[(6_000_000, 48_000), (1_000_000, 9_400)]).unwrap();
        assert_eq!(bw.peak, 75_200);
        // 57 400 bytes · 8 / 7 s = 65 600 bit/s.
        assert_eq!(bw.average, 65_600);
        // Rounded up, never down.
        let bw = measure_bandwidth(&[(3_000_000, 1)]).unwrap();
        assert_eq!((bw.peak, bw.average), (3, 3));
        assert_eq!(measure_bandwidth(&[]), Err(PlaylistError::Empty));
        assert_eq!(
            measure_bandwidth(&[(0, 10)]),
            Err(PlaylistError::ZeroDuration)
        );
    }

    #[test]
    fn other_timescales_are_exact() {
        // 1024 samples at 44.1 kHz holding 300 bytes: 300·8·44100/1024 = 103 359.375.
        let bw = measure_bandwidth_at(44_100, &[(1024, 300)]).unwrap();
        assert_eq!((bw.peak, bw.average), (103_360, 103_360));
    }
}
