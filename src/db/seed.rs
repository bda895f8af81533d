//! Demo data for `veza seed-demo` and `veza serve --demo`: 4 artists, 20 tracks and 3
//! playlists, and for every track real media generated in-process (see
//! [`crate::media`]): a WAV original and an AAC-LC HLS set (master and media playlists,
//! content-addressed MPEG-TS segments). Nothing is downloaded or installed.
//!
//! Idempotent: rows are inserted only into an empty catalogue, and the media are
//! rendered only when the store does not already hold this version of them
//! (`demo-media.json` lists every file with its size). A catalogue or directory seeded by
//! an older generator is upgraded: media re-rendered, stale segments removed, and the
//! demo rows' `duration_ms`, `byte_size` and `content_type` set to the media's values.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, Set,
};
use serde::{Deserialize, Serialize};

use super::entities::{artist, playlist, playlist_track, track};
use crate::hls::naming::HlsKind;
use crate::hls::naming::is_segment_name;
use crate::media::demo::{DemoMedia, MEDIA_PLAYLIST, render};
use crate::store::{Store, layout};

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
/// Bump when the generated media change, so existing storage is re-rendered.
pub const MEDIA_VERSION: u32 = 2;
/// The manifest of the generated media, at the storage root.
pub const MANIFEST: &str = "demo-media.json";
#[allow(clippy::cast_possible_truncation)] // a const of 20 titles
pub const DEMO_TRACKS: u32 = TITLES.len() as u32;
pub const CONTENT_TYPE: &str = "audio/wav";

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("writing demo media: {0}")]
    Storage(#[from] crate::store::StorageError),
    #[error("encoding demo track {track}: {source}")]
    Encode {
        track: u32,
        source: crate::media::aac::AacError,
    },
    #[error("demo media rendering stopped: {0}")]
    Render(String),
}

/// Outcome of a seed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub inserted: bool,
    pub tracks: u64,
    /// Demo rows whose metadata were corrected to match the media.
    pub upgraded: u64,
    /// Whether the media were (re)rendered rather than found in place.
    pub rendered: bool,
}

/// What the catalogue needs to know of one demo track's media.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoTrackMedia {
    pub n: u32,
    pub duration_ms: i64,
    pub byte_size: i64,
    /// Every file of the track, relative to the storage root, with its size.
    pub files: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub tracks: Vec<DemoTrackMedia>,
}

/// Insert demo rows if the catalogue is empty (or correct existing demo rows), after
/// making sure the store holds the current demo media.
pub async fn seed_demo(conn: &DatabaseConnection, store: &Store) -> Result<SeedReport, SeedError> {
    let (manifest, rendered) = ensure_demo_media(store).await?;
    let inserted = if artist::Entity::find().count(conn).await? == 0 {
        insert_rows(conn, &manifest).await?;
        true
    } else {
        false
    };
    let upgraded = if inserted {
        0
    } else {
        upgrade_rows(conn, &manifest).await?
    };
    let tracks = track::Entity::find().count(conn).await?;
    Ok(SeedReport {
        inserted,
        tracks,
        upgraded,
        rendered,
    })
}

/// The current demo media in `store`: read from its manifest when every file is in
/// place, otherwise rendered (on all cores) and written through the store. Returns
/// whether it rendered.
pub async fn ensure_demo_media(store: &Store) -> Result<(Manifest, bool), SeedError> {
    if let Some(m) = read_manifest(store).await {
        return Ok((m, false));
    }
    let rendered = tokio::task::spawn_blocking(render_all)
        .await
        .map_err(|e| SeedError::Render(e.to_string()))??;
    let mut tracks = Vec::with_capacity(rendered.len());
    for (n, media) in rendered {
        tracks.push(write_track(store, n, &media).await?);
    }
    let manifest = Manifest {
        version: MEDIA_VERSION,
        tracks,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| SeedError::Render(format!("manifest: {e}")))?;
    store.put_bytes(MANIFEST, json, "application/json").await?;
    Ok((manifest, true))
}

/// Render every demo track, on up to 8 threads, in track order.
fn render_all() -> Result<Vec<(u32, DemoMedia)>, SeedError> {
    let next = AtomicU32::new(1);
    let done: Mutex<Vec<Result<(u32, DemoMedia), SeedError>>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n > DEMO_TRACKS {
                        break;
                    }
                    let result = render(n)
                        .map(|media| (n, media))
                        .map_err(|source| SeedError::Encode { track: n, source });
                    if let Ok(mut d) = done.lock() {
                        d.push(result);
                    }
                }
            });
        }
    });
    let done = done
        .into_inner()
        .map_err(|_| SeedError::Render("a render thread panicked".into()))?;
    let mut tracks = done.into_iter().collect::<Result<Vec<_>, _>>()?;
    if tracks.len() != DEMO_TRACKS as usize {
        return Err(SeedError::Render(
            "not every demo track was rendered".into(),
        ));
    }
    tracks.sort_by_key(|(n, _)| *n);
    Ok(tracks)
}

async fn read_manifest(store: &Store) -> Option<Manifest> {
    let bytes = store.read_small(MANIFEST, 1024 * 1024).await.ok()?;
    let m: Manifest = serde_json::from_slice(&bytes).ok()?;
    if m.version != MEDIA_VERSION || m.tracks.len() != DEMO_TRACKS as usize {
        return None;
    }
    for (key, size) in m.tracks.iter().flat_map(|t| &t.files) {
        if store.size(key).await.ok().flatten() != Some(*size) {
            return None;
        }
    }
    Some(m)
}

/// Write one track's files; segments of an older rendering that the new playlist does
/// not list are removed.
async fn write_track(
    store: &Store,
    n: u32,
    media: &DemoMedia,
) -> Result<DemoTrackMedia, SeedError> {
    let prefix = layout::demo_hls_prefix(n);
    let mut files = Vec::new();
    let mut put = async |key: String, bytes: &[u8], content_type: &str| {
        store.put_bytes(&key, bytes.to_vec(), content_type).await?;
        files.push((key, bytes.len() as u64));
        Ok::<_, SeedError>(())
    };
    put(layout::demo_original(n), &media.wav, CONTENT_TYPE).await?;
    for s in &media.rendition.segments {
        let segment = HlsKind::TransportStream.content_type();
        put(layout::hls_file(&prefix, &s.name), &s.bytes, segment).await?;
    }
    // Playlists last: a reader never sees a playlist naming a segment not yet written.
    let playlist = HlsKind::Playlist.content_type();
    put(
        layout::hls_file(&prefix, MEDIA_PLAYLIST),
        media.rendition.playlist.as_bytes(),
        playlist,
    )
    .await?;
    put(
        layout::master_playlist(&prefix),
        media.master.as_bytes(),
        playlist,
    )
    .await?;

    for name in store.list(&prefix).await? {
        let listed = media.rendition.segments.iter().any(|s| s.name == name);
        if is_segment_name(&name) && !listed {
            store.remove(&layout::hls_file(&prefix, &name)).await?;
        }
    }
    Ok(DemoTrackMedia {
        n,
        duration_ms: media.tune.duration_ms(),
        byte_size: i64::try_from(media.wav.len()).unwrap_or(i64::MAX),
        files,
    })
}

/// Set the demo rows' metadata to the media's (rows seeded by an older generator said
/// 12 s for a 1 s tone). Imported or otherwise changed tracks are left alone: only rows
/// still pointing at a demo original are touched.
async fn upgrade_rows(conn: &DatabaseConnection, manifest: &Manifest) -> Result<u64, DbErr> {
    let mut upgraded = 0;
    for m in &manifest.tracks {
        let rows = track::Entity::find()
            .filter(track::Column::StorageKey.eq(layout::demo_original(m.n)))
            .all(conn)
            .await?;
        for row in rows {
            if row.duration_ms == m.duration_ms
                && row.byte_size == m.byte_size
                && row.content_type == CONTENT_TYPE
            {
                continue;
            }
            let mut active: track::ActiveModel = row.into();
            active.duration_ms = Set(m.duration_ms);
            active.byte_size = Set(m.byte_size);
            active.content_type = Set(CONTENT_TYPE.to_string());
            active.update(conn).await?;
            upgraded += 1;
        }
    }
    Ok(upgraded)
}

async fn insert_rows(conn: &DatabaseConnection, manifest: &Manifest) -> Result<(), DbErr> {
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
        let media = &manifest.tracks[i];
        let t = track::ActiveModel {
            title: Set(title.to_string()),
            artist_id: Set(artist_ids[i % artist_ids.len()]),
            duration_ms: Set(media.duration_ms),
            storage_key: Set(layout::demo_original(media.n)),
            hls_prefix: Set(layout::demo_hls_prefix(media.n)),
            content_type: Set(CONTENT_TYPE.to_string()),
            byte_size: Set(media.byte_size),
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
                position: Set(i32::try_from(pos).unwrap_or(i32::MAX)),
                ..Default::default()
            }
            .insert(conn)
            .await?;
        }
    }
    Ok(())
}
