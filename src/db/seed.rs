//! Demo data for `veza seed-demo` and `veza serve --demo`: a few artists, 20 tracks,
//! 3 playlists, and for every track generated media under the storage directory —
//! a short WAV original (a real sine tone) and an HLS set (master playlist, media
//! playlist, content-addressed MPEG-TS segments). Nothing is downloaded. Idempotent:
//! rows are inserted only into an empty catalogue; files are rewritten identically.

use std::path::Path;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, Set};
use sha2::{Digest, Sha256};

use super::entities::{artist, playlist, playlist_track, track};

const ARTISTS: [&str; 4] = [
    "The Modular Echoes",
    "Nadia Okafor",
    "Lumen Quartet",
    "Björk Sørensen",
];
const TITLES: [&str; 20] = [
    "Morning Static",
    "Glass Harbour",
    "Slow Orbit",
    "Paper Lanterns",
    "Northbound",
    "Velvet Engine",
    "Salt and Copper",
    "Quiet Machines",
    "Sundial",
    "Low Tide Radio",
    "Halcyon",
    "Tangent Lines",
    "Café Noir",
    "Winter Relay",
    "Open Circuit",
    "Marigold",
    "Signal Fires",
    "Ninety Degrees",
    "Été Indien",
    "Last Light",
];
pub const SEGMENTS_PER_TRACK: usize = 3;
const SEGMENT_SECONDS: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("writing demo media under {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Outcome of a seed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub inserted: bool,
    pub tracks: u64,
}

/// Insert demo rows if the catalogue is empty, then (re)write every track's media.
pub async fn seed_demo(
    conn: &DatabaseConnection,
    storage_dir: &Path,
) -> Result<SeedReport, SeedError> {
    let inserted = if artist::Entity::find().count(conn).await? == 0 {
        insert_rows(conn).await?;
        true
    } else {
        false
    };
    let tracks = track::Entity::find().all(conn).await?;
    for t in &tracks {
        write_media(storage_dir, t).map_err(|source| SeedError::Io {
            path: storage_dir.display().to_string(),
            source,
        })?;
    }
    Ok(SeedReport {
        inserted,
        tracks: tracks.len() as u64,
    })
}

async fn insert_rows(conn: &DatabaseConnection) -> Result<(), DbErr> {
    let now = Utc::now();
    let mut artist_ids = Vec::new();
    for name in ARTISTS {
        let a = artist::ActiveModel {
            name: Set(name.to_string()),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(conn)
        .await?;
        artist_ids.push(a.id);
    }
    let mut track_ids = Vec::new();
    for (i, title) in TITLES.iter().enumerate() {
        let n = i as i64 + 1;
        let t = track::ActiveModel {
            title: Set(title.to_string()),
            artist_id: Set(artist_ids[i % artist_ids.len()]),
            duration_ms: Set(i64::from(SEGMENT_SECONDS) * SEGMENTS_PER_TRACK as i64 * 1000),
            storage_key: Set(format!("tracks/{n}/original.wav")),
            hls_prefix: Set(format!("hls/{n}")),
            content_type: Set("audio/wav".to_string()),
            byte_size: Set(wav_tone(n as u32).len() as i64),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(conn)
        .await?;
        track_ids.push(t.id);
    }
    for (p, (name, range)) in [
        ("Focus", 0..8),
        ("Late Night", 6..16),
        ("Everything", 0..20),
    ]
    .into_iter()
    .enumerate()
    {
        let pl = playlist::ActiveModel {
            name: Set(name.to_string()),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(conn)
        .await?;
        for (pos, idx) in range.enumerate() {
            // Vary the order between playlists so position, not id, drives the listing.
            let track_idx = if p == 1 { 21 - idx - 1 - 4 } else { idx };
            playlist_track::ActiveModel {
                playlist_id: Set(pl.id),
                track_id: Set(track_ids[track_idx]),
                position: Set(pos as i32),
                ..Default::default()
            }
            .insert(conn)
            .await?;
        }
    }
    Ok(())
}

/// One second of 8 kHz mono 16-bit PCM: a sine tone whose pitch depends on the track.
pub fn wav_tone(n: u32) -> Vec<u8> {
    let rate = 8000u32;
    let freq = 220.0 + 20.0 * f64::from(n);
    let samples: Vec<i16> = (0..rate)
        .map(|i| {
            let t = f64::from(i) / f64::from(rate);
            ((t * freq * std::f64::consts::TAU).sin() * 12000.0) as i16
        })
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A synthetic MPEG-TS segment: 188-byte packets with sync byte and PID, payload
/// derived from the track and segment number (deterministic, so content-addressed).
pub fn ts_segment(track: i64, segment: usize) -> Vec<u8> {
    let packets = 40;
    let mut out = Vec::with_capacity(188 * packets);
    for p in 0..packets {
        out.push(0x47);
        out.push(0x41);
        out.push(0x00);
        out.push(0x10 | (p as u8 & 0x0f));
        for b in 0..184usize {
            out.push(((track as usize * 31 + segment * 7 + p * 3 + b) % 251) as u8);
        }
    }
    out
}

fn segment_name(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("seg-{}.ts", hex::encode(&digest[..8]))
}

fn write_media(storage_dir: &Path, t: &track::Model) -> std::io::Result<()> {
    let original = storage_dir.join(&t.storage_key);
    if let Some(dir) = original.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&original, wav_tone(t.id as u32))?;

    let hls = storage_dir.join(&t.hls_prefix);
    std::fs::create_dir_all(&hls)?;
    let mut media = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"
    );
    for s in 0..SEGMENTS_PER_TRACK {
        let bytes = ts_segment(t.id, s);
        let name = segment_name(&bytes);
        std::fs::write(hls.join(&name), &bytes)?;
        media.push_str(&format!("#EXTINF:{SEGMENT_SECONDS}.0,\n{name}\n"));
    }
    media.push_str("#EXT-X-ENDLIST\n");
    std::fs::write(hls.join("media.m3u8"), media)?;
    let master = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS=\"mp4a.40.2\"\nmedia.m3u8\n";
    std::fs::write(hls.join("master.m3u8"), master)?;
    Ok(())
}
