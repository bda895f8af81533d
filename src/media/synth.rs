//! A small deterministic composer for the demo catalogue: every track number gets its
//! own key, mode, tempo and length, a plucked pentatonic melody over a soft chord pad,
//! 20–36 s long, mono 16-bit at [`SAMPLE_RATE`]. Same number → same samples.

use std::f32::consts::TAU;

use super::{AAC_FRAME, SAMPLE_RATE};

/// What one demo track sounds like, derived from its number.
#[derive(Debug, Clone, PartialEq)]
pub struct Tune {
    /// MIDI note of the key's root (C3..B3).
    pub root: u8,
    pub minor: bool,
    pub bpm: u32,
    /// Length in samples: a whole number of AAC frames, so the encoded stream and the
    /// original have exactly the same duration.
    pub samples: usize,
}

impl Tune {
    pub fn for_track(n: u32) -> Tune {
        let seconds = 20 + (n.wrapping_mul(7) % 17) as usize;
        let frames = seconds * SAMPLE_RATE as usize / AAC_FRAME;
        Tune {
            root: 48 + (n.wrapping_mul(5) % 12) as u8,
            minor: n.is_multiple_of(2),
            bpm: 84 + n.wrapping_mul(13) % 48,
            samples: frames * AAC_FRAME,
        }
    }

    pub fn duration_ms(&self) -> i64 {
        (self.samples as i64 * 1000 + i64::from(SAMPLE_RATE) / 2) / i64::from(SAMPLE_RATE)
    }
}

const MAJOR_PENTATONIC: [u8; 5] = [0, 2, 4, 7, 9];
const MINOR_PENTATONIC: [u8; 5] = [0, 3, 5, 7, 10];
/// I–vi–IV–V (major) or i–VI–iv–v (minor) as semitone offsets of each chord's root.
const PROGRESSION_MAJOR: [u8; 4] = [0, 9, 5, 7];
const PROGRESSION_MINOR: [u8; 4] = [0, 8, 5, 7];

fn hz(midi: f32) -> f32 {
    440.0 * ((midi - 69.0) / 12.0).exp2()
}

/// A plucked note (three harmonics, exponential decay), rendered once per pitch.
fn pluck(midi: u8, len: usize) -> Vec<f32> {
    let f = hz(f32::from(midi));
    let rate = SAMPLE_RATE as f32;
    let attack = (0.01 * rate) as usize;
    (0..len)
        .map(|i| {
            let t = i as f32 / rate;
            let env = (-3.2 * t).exp() * (i.min(attack) as f32 / attack as f32);
            let tail = ((len - i) as f32 / (0.05 * rate)).min(1.0);
            let x = (TAU * f * t).sin()
                + 0.45 * (TAU * 2.0 * f * t).sin() * (-2.0 * t).exp()
                + 0.2 * (TAU * 3.0 * f * t).sin() * (-4.0 * t).exp();
            x * env * tail
        })
        .collect()
}

/// Tiny deterministic PRNG (xorshift32): the melody must not depend on the platform.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// Render track `n`'s tune as mono 16-bit PCM.
pub fn render(n: u32) -> (Tune, Vec<i16>) {
    let tune = Tune::for_track(n);
    let rate = SAMPLE_RATE as f32;
    let len = tune.samples;
    let mut mix = vec![0f32; len];
    let scale = if tune.minor {
        MINOR_PENTATONIC
    } else {
        MAJOR_PENTATONIC
    };
    let progression = if tune.minor {
        PROGRESSION_MINOR
    } else {
        PROGRESSION_MAJOR
    };
    let beat = (60.0 / tune.bpm as f32 * rate) as usize;
    let bar = beat * 4;

    // Pad: each bar one chord (root, third-ish, fifth) an octave below the key, with a
    // slow swell so the bar changes are soft.
    for (b, start) in (0..len).step_by(bar).enumerate() {
        let chord_root = f32::from(tune.root) - 12.0 + f32::from(progression[b % 4]);
        let third = if tune.minor { 3.0 } else { 4.0 };
        let freqs = [hz(chord_root), hz(chord_root + third), hz(chord_root + 7.0)];
        let end = (start + bar).min(len);
        for (i, sample) in mix[start..end].iter_mut().enumerate() {
            let t = (start + i) as f32 / rate;
            let pos = i as f32 / bar as f32;
            let swell = (pos * std::f32::consts::PI).sin().powf(0.6);
            let v: f32 = freqs.iter().map(|f| (TAU * f * t).sin()).sum();
            *sample += 0.07 * swell * v;
        }
    }

    // Melody: a random walk over two octaves of the pentatonic scale, on eighths with
    // rests, accents on the beat.
    let mut rng = Rng(0x9E37_79B9 ^ n.wrapping_mul(0x85EB_CA6B) | 1);
    let note_len = (1.4 * rate) as usize;
    let mut notes: std::collections::HashMap<u8, Vec<f32>> = std::collections::HashMap::new();
    let mut degree: i32 = 5;
    let eighth = beat / 2;
    let last_start = len.saturating_sub(2 * beat);
    for (k, start) in (0..last_start).step_by(eighth).enumerate() {
        if rng.next().is_multiple_of(4) {
            continue; // rest
        }
        degree = (degree + (rng.next() % 5) as i32 - 2).clamp(0, 9);
        let midi = tune.root + 12 * (degree / 5) as u8 + scale[(degree % 5) as usize] + 12;
        let accent = if k % 2 == 0 { 0.32 } else { 0.22 };
        let buf = notes.entry(midi).or_insert_with(|| pluck(midi, note_len));
        let end = (start + note_len).min(len);
        for (m, x) in mix[start..end].iter_mut().zip(buf.iter()) {
            *m += accent * x;
        }
    }

    // Fade in and out, then scale to 16 bits with headroom.
    let fade_in = (0.02 * rate) as usize;
    let fade_out = (1.5 * rate) as usize;
    let peak = mix.iter().fold(0f32, |p, x| p.max(x.abs())).max(1e-6);
    let gain = 0.7 * f32::from(i16::MAX) / peak;
    let pcm = mix
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let fin = (i as f32 / fade_in as f32).min(1.0);
            let fout = ((len - i) as f32 / fade_out as f32).min(1.0);
            (x * gain * fin * fout).round() as i16
        })
        .collect();
    (tune, pcm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_whole_aac_frames_between_20_and_36_seconds() {
        for n in 1..=40 {
            let t = Tune::for_track(n);
            assert_eq!(t.samples % AAC_FRAME, 0);
            let secs = t.samples as f64 / f64::from(SAMPLE_RATE);
            assert!((19.9..=36.0).contains(&secs), "track {n}: {secs}");
        }
    }

    #[test]
    fn tracks_differ_and_rendering_is_deterministic() {
        let (_, a) = render(1);
        let (_, b) = render(2);
        assert_ne!(a[..44_100], b[..44_100]);
        assert_eq!(render(1).1, a);
    }

    #[test]
    fn audio_is_audible_and_not_clipped() {
        let (tune, pcm) = render(3);
        assert_eq!(pcm.len(), tune.samples);
        let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((20_000..=23_000).contains(&peak), "peak {peak}");
        let rms =
            (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt();
        assert!(rms > 1500.0, "rms {rms}");
        assert!(pcm[0].abs() < 100 && pcm[pcm.len() - 1].abs() < 100);
    }
}
