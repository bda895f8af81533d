//! A minimal MPEG-TS muxer (ISO/IEC 13818-1) for one AAC (ADTS) audio stream — the HLS
//! segment format every player decodes (RFC 8216 §3.2). Each segment starts with a PAT
//! and a PMT so it can be decoded on its own; PES packets carry a few ADTS frames with a
//! PTS, and the first TS packet of each PES carries a PCR. Continuity counters run on
//! across the segments of one stream, as a demuxer reading them back to back expects.

use super::{AAC_FRAME, SAMPLE_RATE};

pub const PACKET: usize = 188;
pub const PMT_PID: u16 = 0x1000;
pub const AUDIO_PID: u16 = 0x0100;
/// ADTS AAC (ISO/IEC 13818-7).
const STREAM_TYPE_ADTS: u8 = 0x0F;
/// PES stream id of the first MPEG audio stream.
const AUDIO_STREAM_ID: u8 = 0xC0;
/// Where the timeline starts, in 90 kHz ticks (ffmpeg's default 1.4 s).
pub const PTS_START: u64 = 126_000;
/// How far the PCR runs ahead of the PTS it announces.
const PCR_LEAD: u64 = 9_000;
/// ADTS frames per PES packet (~186 ms at 44.1 kHz).
const FRAMES_PER_PES: usize = 8;

/// CRC-32/MPEG-2 (poly 0x04C11DB7, no reflection), as PSI sections carry it.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The 90 kHz presentation time of PCM sample `sample`.
pub fn pts_of_sample(sample: u64) -> u64 {
    PTS_START + sample * 90_000 / u64::from(SAMPLE_RATE)
}

/// Muxes one audio stream into consecutive segments.
#[derive(Debug, Default)]
pub struct TsMuxer {
    cc_pat: u8,
    cc_pmt: u8,
    cc_audio: u8,
}

impl TsMuxer {
    pub fn new() -> TsMuxer {
        TsMuxer::default()
    }

    /// One self-contained segment holding `frames`, the first of which starts at PCM
    /// sample `first_sample` of the stream.
    pub fn segment(&mut self, frames: &[Vec<u8>], first_sample: u64) -> Vec<u8> {
        let payload: usize = frames.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity((payload / 170 + 4 + frames.len() / 4) * PACKET);
        self.psi(&mut out);
        for (i, group) in frames.chunks(FRAMES_PER_PES).enumerate() {
            let sample = first_sample + (i * FRAMES_PER_PES * AAC_FRAME) as u64;
            self.pes(&mut out, group, pts_of_sample(sample));
        }
        out
    }

    fn psi(&mut self, out: &mut Vec<u8>) {
        // PAT: program 1 → PMT_PID.
        let mut pat = vec![0x00, 0xB0, 0x00, 0x00, 0x01, 0xC1, 0x00, 0x00];
        pat.extend_from_slice(&[0x00, 0x01, 0xE0 | (PMT_PID >> 8) as u8, PMT_PID as u8]);
        section(out, 0x0000, &mut self.cc_pat, pat);
        // PMT: one ADTS stream, which also carries the PCR.
        let mut pmt = vec![0x02, 0xB0, 0x00, 0x00, 0x01, 0xC1, 0x00, 0x00];
        pmt.extend_from_slice(&[0xE0 | (AUDIO_PID >> 8) as u8, AUDIO_PID as u8, 0xF0, 0x00]);
        pmt.extend_from_slice(&[
            STREAM_TYPE_ADTS,
            0xE0 | (AUDIO_PID >> 8) as u8,
            AUDIO_PID as u8,
            0xF0,
            0x00,
        ]);
        section(out, PMT_PID, &mut self.cc_pmt, pmt);
    }

    fn pes(&mut self, out: &mut Vec<u8>, frames: &[Vec<u8>], pts: u64) {
        let data: usize = frames.iter().map(Vec::len).sum();
        let mut pes = Vec::with_capacity(14 + data);
        pes.extend_from_slice(&[0x00, 0x00, 0x01, AUDIO_STREAM_ID]);
        let len = (3 + 5 + data).min(usize::from(u16::MAX)) as u16;
        pes.extend_from_slice(&len.to_be_bytes());
        pes.extend_from_slice(&[0x80, 0x80, 0x05]);
        pes.extend_from_slice(&[
            0x21 | ((pts >> 29) & 0x0E) as u8,
            (pts >> 22) as u8,
            ((pts >> 14) & 0xFE) as u8 | 1,
            (pts >> 7) as u8,
            ((pts << 1) & 0xFE) as u8 | 1,
        ]);
        for f in frames {
            pes.extend_from_slice(f);
        }

        let pcr = pts.saturating_sub(PCR_LEAD);
        // Adaptation field body: random access + PCR flags, then the 6-byte PCR.
        let first_af = [
            0x50,
            (pcr >> 25) as u8,
            (pcr >> 17) as u8,
            (pcr >> 9) as u8,
            (pcr >> 1) as u8,
            (((pcr & 1) as u8) << 7) | 0x7E,
            0x00,
        ];
        let mut rest: &[u8] = &pes;
        let mut first = true;
        while !rest.is_empty() {
            let af: &[u8] = if first { &first_af } else { &[] };
            let room = 184 - if af.is_empty() { 0 } else { 1 + af.len() };
            let take = rest.len().min(room);
            packet(out, AUDIO_PID, first, &mut self.cc_audio, af, &rest[..take]);
            rest = &rest[take..];
            first = false;
        }
    }
}

/// A PSI section in one packet: pointer field, section (length and CRC filled in),
/// 0xFF padding.
fn section(out: &mut Vec<u8>, pid: u16, cc: &mut u8, mut s: Vec<u8>) {
    let section_length = s.len() - 3 + 4;
    s[1] = 0xB0 | (section_length >> 8) as u8;
    s[2] = section_length as u8;
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    let mut payload = Vec::with_capacity(184);
    payload.push(0x00);
    payload.extend_from_slice(&s);
    payload.resize(184, 0xFF);
    packet(out, pid, true, cc, &[], &payload);
}

/// One 188-byte packet. A payload shorter than the room left is completed with
/// adaptation-field stuffing, as the standard requires for PES data.
fn packet(out: &mut Vec<u8>, pid: u16, start: bool, cc: &mut u8, af: &[u8], payload: &[u8]) {
    let with_af = !af.is_empty() || payload.len() < 184;
    out.push(0x47);
    out.push(if start { 0x40 } else { 0x00 } | ((pid >> 8) as u8 & 0x1F));
    out.push(pid as u8);
    out.push(if with_af { 0x30 } else { 0x10 } | (*cc & 0x0F));
    *cc = (*cc + 1) & 0x0F;
    if with_af {
        let af_len = 183 - payload.len();
        out.push(af_len as u8);
        if af_len > 0 {
            let body = if af.is_empty() { &[0x00][..] } else { af };
            out.extend_from_slice(body);
            out.resize(out.len() + af_len - body.len(), 0xFF);
        }
    }
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_catalogue_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn segments_are_whole_packets_with_psi_first_and_running_counters() {
        let frames: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; 200 + i * 13]).collect();
        let mut mux = TsMuxer::new();
        let a = mux.segment(&frames, 0);
        let b = mux.segment(&frames, 20 * 1024);
        for seg in [&a, &b] {
            assert_eq!(seg.len() % PACKET, 0);
            assert!(seg.chunks(PACKET).all(|p| p[0] == 0x47));
        }
        let pid = |p: &[u8]| (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        assert_eq!(pid(&a[..]), 0);
        assert_eq!(pid(&a[PACKET..]), PMT_PID);
        // A PSI section verifies against its own CRC (CRC over section incl. CRC = 0).
        let sec_len = (usize::from(a[6] & 0x0F) << 8) | usize::from(a[7]);
        assert_eq!(crc32_mpeg2(&a[5..8 + sec_len]), 0);
        // Audio continuity counters carry on into the next segment.
        let audio: Vec<u8> = [&a, &b]
            .iter()
            .flat_map(|s| s.chunks(PACKET))
            .filter(|p| pid(p) == AUDIO_PID)
            .map(|p| p[3] & 0x0F)
            .collect();
        assert!(audio.windows(2).all(|w| w[1] == (w[0] + 1) & 0x0F));
        // The payload bytes all made it through, in order.
        let mut total = 0;
        for p in a.chunks(PACKET).filter(|p| pid(p) == AUDIO_PID) {
            let start = if p[3] & 0x20 != 0 {
                5 + usize::from(p[4])
            } else {
                4
            };
            total += PACKET - start;
        }
        let pes_headers = frames.chunks(FRAMES_PER_PES).count() * 14;
        assert_eq!(
            total,
            frames.iter().map(Vec::len).sum::<usize>() + pes_headers
        );
    }

    #[test]
    fn pts_is_encoded_with_its_markers() {
        let mut mux = TsMuxer::new();
        let seg = mux.segment(&[vec![0xAB; 10]], 44_100);
        let p = &seg[2 * PACKET..];
        let pes = &p[5 + usize::from(p[4])..];
        assert_eq!(&pes[..4], &[0, 0, 1, 0xC0]);
        let b = &pes[9..14];
        let pts = (u64::from(b[0] >> 1 & 0x07) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1);
        assert_eq!(pts, PTS_START + 90_000);
        assert_eq!(b[0] & 0xF1, 0x21);
    }
}
