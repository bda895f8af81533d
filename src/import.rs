//! `veza import`: bring the operator's own audio files into the catalogue.
//!
//! For each file: snapshot it into a private temporary directory (hashing it on the
//! way: the content id is the first 16 hex digits of its SHA-256), skip it if a track
//! with that content id exists, probe it with ffprobe (tags, declared duration, and a
//! full decode that counts samples and catches corrupt or truncated files), transcode
//! it with one ffmpeg run to an AAC-LC HLS ladder ([`RENDITIONS`], 44.1 kHz stereo,
//! MPEG-TS segments of [`SEGMENT_SECONDS`]), rename the segments to their content
//! address, rewrite the media playlists, write the master playlist with bandwidths
//! measured from the files, upload everything (segments, media playlists, master,
//! then the original), and finally insert the rows in one transaction. A failure at
//! any step deletes whatever was uploaded; the temporary directory is removed on drop.
//!
//! ffmpeg and ffprobe are child processes of this command only (the service never
//! needs them), bounded by a per-file timeout and killed when dropped.
//!
//! The playlist, bandwidth, tag, duration and naming logic is pure and unit-tested
//! below; the rest is plumbing around it.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

use crate::db::entities::{artist, playlist, playlist_track, track};
use crate::delivery::paths::content_type_for;
use crate::store::{StorageError, Store};

/// Output sample rate of every rendition.
pub const SAMPLE_RATE: u32 = 44_100;
/// Target segment length (`-hls_time`); Apple recommends 6 s.
pub const SEGMENT_SECONDS: u32 = 6;
/// RFC 6381 codec string of AAC-LC.
pub const AAC_LC_CODECS: &str = "mp4a.40.2";
/// Artist of a file with no `artist` tag and no `--artist`.
pub const UNKNOWN_ARTIST: &str = "Unknown Artist";
/// Default bound on probing and transcoding one file.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// One rung of the bitrate ladder: its media playlist is `{name}.m3u8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendition {
    pub name: &'static str,
    pub kbps: u32,
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

/// Files whose decoded length falls short of the container's declared duration by
/// more than this (or [`TRUNCATION_FRACTION`] of it, whichever is larger) are
/// reported as truncated.
const TRUNCATION_TOLERANCE_US: u64 = 500_000;
const TRUNCATION_FRACTION: u64 = 50; // 2 %
/// Decoders may emit encoder padding that the container trims (MP4 edit lists);
/// a decoded length at most this much longer than the declared one is padding.
const PADDING_TOLERANCE_US: u64 = 300_000;
/// Progress appears only once a transcode has run this long.
const PROGRESS_AFTER: Duration = Duration::from_secs(1);
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------
// Errors

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the file: {0}")]
    Read(#[source] std::io::Error),
    #[error("not a regular file")]
    NotAFile,
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("not an audio file ffmpeg can read ({0})")]
    NotAudio(String),
    #[error("no audio stream in the file")]
    NoAudio,
    #[error("the audio does not decode: {0}")]
    Decode(String),
    #[error("truncated: the audio decodes to {decoded}, the file declares {declared}")]
    Truncated { decoded: String, declared: String },
    #[error("transcoding failed: {0}")]
    Transcode(String),
    #[error("probing and transcoding did not finish within {limit} (see --timeout)")]
    Timeout { limit: String },
    #[error("cannot run {tool}: {source}")]
    Spawn {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected {tool} output: {detail}")]
    ToolOutput { tool: &'static str, detail: String },
    #[error("HLS output: {0}")]
    Playlist(#[from] PlaylistError),
    #[error("temporary files: {0}")]
    Temp(#[source] std::io::Error),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("interrupted")]
    Interrupted,
    #[error("{error}; and cleaning up failed, left in storage: {left}")]
    CleanupFailed {
        error: Box<ImportError>,
        left: String,
    },
}

/// ffmpeg or ffprobe is not installed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{tool} not found in PATH: veza import needs ffmpeg and ffprobe \
     (install them with `apt-get install ffmpeg` or `brew install ffmpeg`)"
)]
pub struct MissingTool {
    pub tool: &'static str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlaylistError {
    #[error("not an M3U8 playlist")]
    NotM3u8,
    #[error("bad #EXTINF line {0:?}")]
    BadExtinf(String),
    #[error("segment {0:?} has no #EXTINF")]
    MissingExtinf(String),
    #[error("segment {0:?} is not a plain file name")]
    BadUri(String),
    #[error("no new name for segment {0:?}")]
    Unmapped(String),
    #[error("playlist has no segments")]
    Empty,
    #[error("playlist has no #EXT-X-ENDLIST (incomplete)")]
    Incomplete,
    #[error("a segment has zero duration")]
    ZeroDuration,
}

// ---------------------------------------------------------------------------------
// Pure parts

/// The content id of a file: the first 16 hex digits of its SHA-256.
pub fn content_id(digest: &[u8]) -> String {
    let mut id = hex::encode(digest);
    id.truncate(16);
    id
}

/// A segment's content-addressed name: `seg-{first 16 hex of sha256(bytes)}.ts`.
pub fn segment_name(bytes: &[u8]) -> String {
    format!("seg-{}.ts", content_id(&Sha256::digest(bytes)))
}

pub fn original_key(id: &str, ext: &str) -> String {
    format!("tracks/i-{id}/original.{ext}")
}

pub fn hls_prefix(id: &str) -> String {
    format!("hls/i-{id}")
}

/// The original's extension, lower-cased; `bin` when it has none usable as a key.
pub fn original_ext(path: &Path) -> String {
    path.extension()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase)
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "bin".to_string())
}

/// The original's content type, from its extension (`audio/mpeg`, `audio/flac`, …).
pub fn original_content_type(ext: &str) -> &'static str {
    content_type_for(&format!("original.{ext}"))
}

/// A tag's value by case-insensitive name, trimmed; empty values count as absent.
pub fn tag<'a>(tags: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    tags.iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .find(|v| !v.is_empty())
}

/// Title and artist: the flags, else the format's tags, else the audio stream's tags
/// (Ogg and Opus keep their comments there), else the file stem / [`UNKNOWN_ARTIST`].
pub fn title_and_artist(
    flags: (Option<&str>, Option<&str>),
    format_tags: &BTreeMap<String, String>,
    stream_tags: &BTreeMap<String, String>,
    path: &Path,
) -> (String, String) {
    let pick = |flag: Option<&str>, name: &str| {
        flag.map(str::trim)
            .filter(|v| !v.is_empty())
            .or_else(|| tag(format_tags, name))
            .or_else(|| tag(stream_tags, name))
            .map(str::to_string)
    };
    let title = pick(flags.0, "title").unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "Untitled".to_string())
    });
    let artist = pick(flags.1, "artist").unwrap_or_else(|| UNKNOWN_ARTIST.to_string());
    (title, artist)
}

/// A decimal number of seconds (`"5.023711"`, `"6"`) as microseconds; digits beyond
/// the sixth decimal are dropped.
pub fn parse_seconds_us(s: &str) -> Option<u64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut micros = 0u64;
    for (i, b) in (0u32..6).zip(frac.bytes()) {
        micros += u64::from(b - b'0') * 10u64.pow(5 - i);
    }
    whole.checked_mul(1_000_000)?.checked_add(micros)
}

/// Microseconds as `S.SSSSSS` seconds (for ffmpeg's `-t`).
pub fn format_seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// The catalogue duration from the decoded length and the container's declared
/// duration (`None` when absent or only estimated from the bitrate).
///
/// A decode shorter than declared by more than max(0.5 s, 2 %) means the file was cut
/// (an MP3 whose Xing header promises more frames than it has decodes without any
/// error). Otherwise the shorter of the two is the real length: MP3 and Opus declare
/// their encoder delay and padding, which the decoder drops; an MP4's edit list trims
/// padding that ffmpeg's decoder still outputs.
pub fn catalogue_duration_us(decoded_us: u64, declared_us: Option<u64>) -> Result<u64, Truncation> {
    let Some(declared) = declared_us else {
        return Ok(decoded_us);
    };
    let tolerance = TRUNCATION_TOLERANCE_US.max(declared / TRUNCATION_FRACTION);
    if decoded_us + tolerance < declared {
        return Err(Truncation {
            decoded_us,
            declared_us: declared,
        });
    }
    if decoded_us > declared && decoded_us - declared <= PADDING_TOLERANCE_US {
        return Ok(declared);
    }
    Ok(decoded_us)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub decoded_us: u64,
    pub declared_us: u64,
}

/// One media segment of a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub duration_us: u64,
    pub uri: String,
}

/// The segments of a VOD media playlist, with their `#EXTINF` durations.
pub fn parse_media_playlist(text: &str) -> Result<Vec<Segment>, PlaylistError> {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    if lines.next().map(str::trim) != Some("#EXTM3U") {
        return Err(PlaylistError::NotM3u8);
    }
    let mut segments = Vec::new();
    let mut pending: Option<u64> = None;
    let mut ended = false;
    for line in lines {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            let value = rest.split(',').next().unwrap_or_default();
            pending =
                Some(parse_seconds_us(value).ok_or_else(|| PlaylistError::BadExtinf(line.into()))?);
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            let duration_us = pending
                .take()
                .ok_or_else(|| PlaylistError::MissingExtinf(line.into()))?;
            if line.contains('/') || line.contains('\\') || line.starts_with('.') {
                return Err(PlaylistError::BadUri(line.into()));
            }
            segments.push(Segment {
                duration_us,
                uri: line.to_string(),
            });
        }
    }
    if segments.is_empty() {
        return Err(PlaylistError::Empty);
    }
    if !ended {
        return Err(PlaylistError::Incomplete);
    }
    Ok(segments)
}

/// `#EXT-X-TARGETDURATION`: the longest `#EXTINF`, rounded up (RFC 8216 §4.3.3.1).
pub fn target_duration(segments: &[Segment]) -> u64 {
    segments
        .iter()
        .map(|s| s.duration_us.div_ceil(1_000_000))
        .max()
        .unwrap_or(0)
}

/// The media playlist with every segment URI renamed through `names` and
/// `#EXT-X-TARGETDURATION` set to [`target_duration`]; other lines are kept.
pub fn rewrite_media_playlist(
    text: &str,
    names: &HashMap<String, String>,
) -> Result<String, PlaylistError> {
    let segments = parse_media_playlist(text)?;
    let target = target_duration(&segments);
    let mut out = String::with_capacity(text.len());
    for line in text.lines().map(|l| l.trim_end_matches('\r').trim()) {
        if line.starts_with("#EXT-X-TARGETDURATION:") {
            out.push_str(&format!("#EXT-X-TARGETDURATION:{target}"));
        } else if !line.is_empty() && !line.starts_with('#') {
            let new = names
                .get(line)
                .ok_or_else(|| PlaylistError::Unmapped(line.into()))?;
            out.push_str(new);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Ok(out)
}

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
    if segments.is_empty() {
        return Err(PlaylistError::Empty);
    }
    let rate = |us: u64, bytes: u64| -> Result<u64, PlaylistError> {
        if us == 0 {
            return Err(PlaylistError::ZeroDuration);
        }
        let bits = u128::from(bytes) * 8 * 1_000_000;
        Ok(u64::try_from(bits.div_ceil(u128::from(us))).unwrap_or(u64::MAX))
    };
    let mut peak = 0;
    for &(us, bytes) in segments {
        peak = peak.max(rate(us, bytes)?);
    }
    let total_us = segments.iter().map(|s| s.0).sum();
    let total_bytes = segments.iter().map(|s| s.1).sum();
    Ok(Bandwidth {
        peak,
        average: rate(total_us, total_bytes)?,
    })
}

/// The master playlist: one `#EXT-X-STREAM-INF` per rendition, in the given order.
pub fn master_playlist(renditions: &[(&str, Bandwidth)]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (uri, bw) in renditions {
        out.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{AAC_LC_CODECS}\"\n{uri}\n",
            bw.peak, bw.average
        ));
    }
    out
}

/// The microseconds in one `-progress` line (`out_time_us=…`), if it is one.
pub fn progress_us(line: &str) -> Option<u64> {
    line.trim().strip_prefix("out_time_us=")?.parse().ok()
}

/// `m:ss` (or `h:mm:ss`), rounded to the nearest second.
pub fn display_duration(ms: i64) -> String {
    let s = (ms.max(0) + 500) / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn seconds(us: u64) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}

// ---------------------------------------------------------------------------------
// Tools

/// Absolute paths of ffmpeg and ffprobe, found in PATH once per command.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

impl Tools {
    pub fn from_env() -> Result<Tools, MissingTool> {
        Tools::find_in(&std::env::var_os("PATH").unwrap_or_default())
    }

    pub fn find_in(path: &OsStr) -> Result<Tools, MissingTool> {
        let find = |tool: &'static str| {
            std::env::split_paths(path)
                .map(|d| d.join(tool))
                .find(|p| is_executable(p))
                .ok_or(MissingTool { tool })
        };
        Ok(Tools {
            ffmpeg: find("ffmpeg")?,
            ffprobe: find("ffprobe")?,
        })
    }
}

fn is_executable(p: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(p) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

// ---------------------------------------------------------------------------------
// Temporary directory

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A private directory under the system temporary directory (`TMPDIR`), removed with
/// everything in it when dropped — on success, error, timeout or interruption.
struct TempDir(PathBuf);

impl TempDir {
    async fn new() -> Result<TempDir, ImportError> {
        let base = std::path::absolute(std::env::temp_dir()).map_err(ImportError::Temp)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = base.join(format!(
            "veza-import-{}-{}-{nanos}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        tokio::fs::create_dir(&dir)
            .await
            .map_err(ImportError::Temp)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            log::warn!("cannot remove {}: {e}", self.0.display());
        }
    }
}

// ---------------------------------------------------------------------------------
// The import

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub playlist: Option<String>,
    /// Bound on probing plus transcoding one file.
    pub timeout: Duration,
    /// Show transcoding progress on stderr (when it is a terminal).
    pub progress: bool,
}

impl ImportOptions {
    pub fn new() -> ImportOptions {
        ImportOptions {
            title: None,
            artist: None,
            playlist: None,
            timeout: DEFAULT_TIMEOUT,
            progress: std::io::stderr().is_terminal(),
        }
    }
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions::new()
    }
}

/// Where a track went in `--playlist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistAdd {
    pub playlist_id: i64,
    pub name: String,
    pub created: bool,
    /// The new position, or `None` when the track was already in the playlist.
    pub position: Option<i32>,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Imported {
        track: track::Model,
        artist: String,
        playlist: Option<PlaylistAdd>,
    },
    AlreadyImported {
        track: track::Model,
        playlist: Option<PlaylistAdd>,
    },
}

/// Imports files one at a time into one catalogue and storage.
pub struct Importer {
    pub conn: DatabaseConnection,
    pub storage: Store,
    pub tools: Tools,
    pub options: ImportOptions,
    /// Becomes `true` on Ctrl-C: probing and transcoding stop (the children are
    /// killed), while uploads and the insert, which must not be cut short, finish.
    pub interrupt: watch::Receiver<bool>,
}

/// What probing and transcoding produced, ready to publish.
struct Prepared {
    title: String,
    artist: String,
    duration_us: u64,
    /// (storage key, local file, content type), in upload order.
    files: Vec<(String, PathBuf, &'static str)>,
}

struct Snapshot {
    path: PathBuf,
    id: String,
    ext: String,
    size: u64,
}

impl Importer {
    pub async fn import_file(&self, path: &Path) -> Result<Outcome, ImportError> {
        let temp = TempDir::new().await?;
        let snap = snapshot(path, &temp.0).await?;
        let storage_key = original_key(&snap.id, &snap.ext);
        let prefix = hls_prefix(&snap.id);
        if let Some(existing) = find_existing(&self.conn, &storage_key, &prefix).await? {
            let playlist = match &self.options.playlist {
                Some(name) => {
                    let txn = self.conn.begin().await?;
                    let add = add_to_playlist(&txn, name, existing.id).await?;
                    txn.commit().await?;
                    Some(add)
                }
                None => None,
            };
            return Ok(Outcome::AlreadyImported {
                track: existing,
                playlist,
            });
        }

        let mut interrupt = self.interrupt.clone();
        let prepare = self.prepare(path, &snap, &temp.0, &storage_key, &prefix);
        let prepared = tokio::select! {
            r = tokio::time::timeout(self.options.timeout, prepare) => match r {
                Ok(r) => r?,
                Err(_) => return Err(ImportError::Timeout {
                    limit: humantime::format_duration(self.options.timeout).to_string(),
                }),
            },
            () = interrupted(&mut interrupt) => return Err(ImportError::Interrupted),
        };

        let mut written = Vec::new();
        let result = self
            .publish(&prepared, &snap, &storage_key, &prefix, &mut written)
            .await;
        match result {
            Ok((track, playlist)) => Ok(Outcome::Imported {
                track,
                artist: prepared.artist,
                playlist,
            }),
            Err(error) => Err(self.roll_back(error, &written).await),
        }
    }

    /// Probe, transcode and lay out the HLS files in `dir`.
    async fn prepare(
        &self,
        label: &Path,
        snap: &Snapshot,
        dir: &Path,
        storage_key: &str,
        prefix: &str,
    ) -> Result<Prepared, ImportError> {
        let probe = probe(&self.tools, &snap.path).await?;
        let decoded_us = count_decoded_us(&self.tools, &snap.path, probe.sample_rate).await?;
        if decoded_us == 0 {
            return Err(ImportError::Decode("no audio samples".into()));
        }
        let duration_us = catalogue_duration_us(decoded_us, probe.declared_us).map_err(|t| {
            ImportError::Truncated {
                decoded: seconds(t.decoded_us),
                declared: seconds(t.declared_us),
            }
        })?;
        let (title, artist) = title_and_artist(
            (
                self.options.title.as_deref(),
                self.options.artist.as_deref(),
            ),
            &probe.format_tags,
            &probe.stream_tags,
            label,
        );
        let hls = dir.join("hls");
        tokio::fs::create_dir(&hls)
            .await
            .map_err(ImportError::Temp)?;
        let mut progress = Progress::new(self.options.progress, label, duration_us);
        let transcoded = transcode(&self.tools, &snap.path, &hls, duration_us, &mut progress).await;
        progress.finish();
        transcoded?;
        let mut files = lay_out_hls(&hls, prefix).await?;
        files.push((
            storage_key.to_string(),
            snap.path.clone(),
            original_content_type(&snap.ext),
        ));
        Ok(Prepared {
            title,
            artist,
            duration_us,
            files,
        })
    }

    /// Upload every file, then insert the rows in one transaction. `written` collects
    /// the keys as they are attempted, for the rollback.
    async fn publish(
        &self,
        prepared: &Prepared,
        snap: &Snapshot,
        storage_key: &str,
        prefix: &str,
        written: &mut Vec<String>,
    ) -> Result<(track::Model, Option<PlaylistAdd>), ImportError> {
        for (key, path, content_type) in &prepared.files {
            written.push(key.clone());
            self.storage.put_file(key, path, content_type).await?;
        }
        let txn = self.conn.begin().await?;
        let artist_id = find_or_create_artist(&txn, &prepared.artist).await?;
        let track =
            track::ActiveModel {
                title: Set(prepared.title.clone()),
                artist_id: Set(artist_id),
                duration_ms: Set(
                    i64::try_from((prepared.duration_us + 500) / 1000).unwrap_or(i64::MAX)
                ),
                storage_key: Set(storage_key.to_string()),
                hls_prefix: Set(prefix.to_string()),
                content_type: Set(original_content_type(&snap.ext).to_string()),
                byte_size: Set(i64::try_from(snap.size).unwrap_or(i64::MAX)),
                created_at: Set(Utc::now()),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
        let playlist = match &self.options.playlist {
            Some(name) => Some(add_to_playlist(&txn, name, track.id).await?),
            None => None,
        };
        txn.commit().await?;
        Ok((track, playlist))
    }

    /// Delete what was uploaded; the error says if anything could not be.
    async fn roll_back(&self, error: ImportError, written: &[String]) -> ImportError {
        let mut left = Vec::new();
        for key in written.iter().rev() {
            if let Err(e) = self.storage.remove(key).await {
                log::warn!("cannot delete {key} after a failed import: {e}");
                left.push(key.as_str());
            }
        }
        if left.is_empty() {
            error
        } else {
            ImportError::CleanupFailed {
                error: Box::new(error),
                left: left.join(", "),
            }
        }
    }
}

/// Resolves once the interrupt flag is set; never if its sender is gone (no Ctrl-C
/// handler could be installed), so imports then run to completion.
async fn interrupted(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Copy the file into `dir` as `original.{ext}` while hashing it, so that the bytes
/// probed, transcoded and stored are the bytes the content id names.
async fn snapshot(path: &Path, dir: &Path) -> Result<Snapshot, ImportError> {
    let meta = tokio::fs::metadata(path).await.map_err(ImportError::Read)?;
    if !meta.is_file() {
        return Err(ImportError::NotAFile);
    }
    let ext = original_ext(path);
    let copy = dir.join(format!("original.{ext}"));
    let mut input = tokio::fs::File::open(path)
        .await
        .map_err(ImportError::Read)?;
    let mut output = tokio::fs::File::create(&copy)
        .await
        .map_err(ImportError::Temp)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = input.read(&mut buf).await.map_err(ImportError::Read)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .await
            .map_err(ImportError::Temp)?;
        size += n as u64;
    }
    output.flush().await.map_err(ImportError::Temp)?;
    if size == 0 {
        return Err(ImportError::Empty);
    }
    Ok(Snapshot {
        path: copy,
        id: content_id(&hasher.finalize()),
        ext,
        size,
    })
}

async fn find_existing(
    conn: &DatabaseConnection,
    storage_key: &str,
    prefix: &str,
) -> Result<Option<track::Model>, DbErr> {
    // The same bytes under another extension share the content id, hence the HLS
    // directory: match either, so a re-import never writes over another track's media.
    track::Entity::find()
        .filter(
            Condition::any()
                .add(track::Column::StorageKey.eq(storage_key))
                .add(track::Column::HlsPrefix.eq(prefix)),
        )
        .order_by_asc(track::Column::Id)
        .one(conn)
        .await
}

async fn find_or_create_artist<C: ConnectionTrait>(conn: &C, name: &str) -> Result<i64, DbErr> {
    if let Some(a) = artist::Entity::find()
        .filter(artist::Column::Name.eq(name))
        .order_by_asc(artist::Column::Id)
        .one(conn)
        .await?
    {
        return Ok(a.id);
    }
    let a = artist::ActiveModel {
        name: Set(name.to_string()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(a.id)
}

/// Find (lowest id) or create the playlist named `name`, and append the track at
/// max(position)+1 unless it is already in it.
async fn add_to_playlist<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    track_id: i64,
) -> Result<PlaylistAdd, DbErr> {
    let (pl, created) = match playlist::Entity::find()
        .filter(playlist::Column::Name.eq(name))
        .order_by_asc(playlist::Column::Id)
        .one(conn)
        .await?
    {
        Some(p) => (p, false),
        None => {
            let p = playlist::ActiveModel {
                name: Set(name.to_string()),
                created_at: Set(Utc::now()),
                ..Default::default()
            }
            .insert(conn)
            .await?;
            (p, true)
        }
    };
    let mut add = PlaylistAdd {
        playlist_id: pl.id,
        name: pl.name,
        created,
        position: None,
    };
    let already = playlist_track::Entity::find()
        .filter(playlist_track::Column::PlaylistId.eq(add.playlist_id))
        .filter(playlist_track::Column::TrackId.eq(track_id))
        .one(conn)
        .await?;
    if already.is_some() {
        return Ok(add);
    }
    let last = playlist_track::Entity::find()
        .filter(playlist_track::Column::PlaylistId.eq(add.playlist_id))
        .order_by_desc(playlist_track::Column::Position)
        .one(conn)
        .await?;
    let position = last.map_or(1, |l| l.position + 1);
    playlist_track::ActiveModel {
        playlist_id: Set(add.playlist_id),
        track_id: Set(track_id),
        position: Set(position),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    add.position = Some(position);
    Ok(add)
}

// ---------------------------------------------------------------------------------
// ffprobe and ffmpeg

#[derive(Debug, Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Debug, Deserialize)]
struct ProbeStream {
    sample_rate: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

struct Probe {
    format_tags: BTreeMap<String, String>,
    stream_tags: BTreeMap<String, String>,
    sample_rate: u32,
    /// `None` when absent or estimated from the bitrate (ffmpeg warns then).
    declared_us: Option<u64>,
}

/// `file:` keeps ffmpeg from reading a name with a colon as a protocol; the whitelist
/// keeps a playlist disguised as audio from making it fetch anything over the network.
fn input_args(path: &Path) -> Vec<std::ffi::OsString> {
    let mut input = std::ffi::OsString::from("file:");
    input.push(path);
    vec![
        "-protocol_whitelist".into(),
        "file".into(),
        "-i".into(),
        input,
    ]
}

/// Run a tool to completion, capturing stdout and stderr.
async fn run(
    tool: &'static str,
    program: &Path,
    args: &[std::ffi::OsString],
) -> Result<std::process::Output, ImportError> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| ImportError::Spawn { tool, source })
}

/// A tool's stderr condensed for a one-line report: its last three lines, with the
/// temporary path shown as `input` and `[mp3 @ 0x55…] ` context prefixes as `mp3: `.
pub fn stderr_summary(stderr: &[u8], input: &Path) -> String {
    let text = String::from_utf8_lossy(stderr);
    let input = input.display().to_string();
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l = l
                .replace(&format!("file:{input}"), "input")
                .replace(&input, "input");
            match l.strip_prefix('[').and_then(|r| r.split_once("] ")) {
                Some((context, rest)) => {
                    let name = context.split(" @ ").next().unwrap_or(context);
                    format!("{name}: {rest}")
                }
                None => l,
            }
        })
        .collect();
    lines[lines.len().saturating_sub(3)..].join("; ")
}

async fn probe(tools: &Tools, path: &Path) -> Result<Probe, ImportError> {
    let mut args: Vec<std::ffi::OsString> =
        ["-v", "warning", "-hide_banner"].map(Into::into).to_vec();
    args.extend(input_args(path));
    args.extend(
        [
            "-select_streams",
            "a:0",
            "-show_entries",
            "format=duration:format_tags:stream=sample_rate:stream_tags",
            "-of",
            "json",
        ]
        .map(Into::into),
    );
    let out = run("ffprobe", &tools.ffprobe, &args).await?;
    if !out.status.success() {
        let why = stderr_summary(&out.stderr, path);
        return Err(ImportError::NotAudio(if why.is_empty() {
            format!("ffprobe {}", out.status)
        } else {
            why
        }));
    }
    let json: ProbeJson =
        serde_json::from_slice(&out.stdout).map_err(|e| ImportError::ToolOutput {
            tool: "ffprobe",
            detail: e.to_string(),
        })?;
    let Some(stream) = json.streams.into_iter().next() else {
        return Err(ImportError::NoAudio);
    };
    let sample_rate = stream
        .sample_rate
        .as_deref()
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|r| *r > 0)
        .ok_or(ImportError::NoAudio)?;
    let format = json.format.unwrap_or(ProbeFormat {
        duration: None,
        tags: BTreeMap::new(),
    });
    let estimated =
        String::from_utf8_lossy(&out.stderr).contains("Estimating duration from bitrate");
    Ok(Probe {
        format_tags: format.tags,
        stream_tags: stream.tags,
        sample_rate,
        declared_us: format
            .duration
            .as_deref()
            .and_then(parse_seconds_us)
            .filter(|_| !estimated),
    })
}

/// Decode the whole first audio stream and count its samples: the real length, and a
/// check that every frame decodes (any error fails the file).
async fn count_decoded_us(
    tools: &Tools,
    path: &Path,
    sample_rate: u32,
) -> Result<u64, ImportError> {
    let mut args: Vec<std::ffi::OsString> =
        ["-v", "error", "-hide_banner"].map(Into::into).to_vec();
    args.extend(input_args(path));
    args.extend(
        [
            "-select_streams",
            "a:0",
            "-show_entries",
            "frame=nb_samples",
            "-of",
            "csv=p=0",
        ]
        .map(Into::into),
    );
    let mut child = Command::new(&tools.ffprobe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ImportError::Spawn {
            tool: "ffprobe",
            source,
        })?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ImportError::ToolOutput {
            tool: "ffprobe",
            detail: "no pipes".into(),
        });
    };
    let count = async {
        let mut samples: u64 = 0;
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| ImportError::ToolOutput {
                tool: "ffprobe",
                detail: e.to_string(),
            })?
        {
            let field = line.trim().trim_end_matches(',');
            if field.is_empty() {
                continue;
            }
            samples += field.parse::<u64>().map_err(|_| ImportError::ToolOutput {
                tool: "ffprobe",
                detail: format!("frame line {line:?}"),
            })?;
        }
        Ok::<u64, ImportError>(samples)
    };
    let mut err = Vec::new();
    let (samples, read_err) = tokio::join!(count, stderr.read_to_end(&mut err));
    let status = child.wait().await.map_err(|source| ImportError::Spawn {
        tool: "ffprobe",
        source,
    })?;
    let samples = samples?;
    read_err.map_err(|e| ImportError::ToolOutput {
        tool: "ffprobe",
        detail: e.to_string(),
    })?;
    let why = stderr_summary(&err, path);
    if !status.success() || !why.is_empty() {
        return Err(ImportError::Decode(if why.is_empty() {
            format!("ffprobe {status}")
        } else {
            why
        }));
    }
    let us = u128::from(samples) * 1_000_000 / u128::from(sample_rate);
    Ok(u64::try_from(us).unwrap_or(u64::MAX))
}

/// One ffmpeg run: both renditions into `out` as `{name}.m3u8` + `{name}-NNNNN.ts`,
/// cut at `duration_us` (see [`catalogue_duration_us`]).
async fn transcode(
    tools: &Tools,
    input: &Path,
    out: &Path,
    duration_us: u64,
    progress: &mut Progress,
) -> Result<(), ImportError> {
    let mut args: Vec<std::ffi::OsString> = ["-nostdin", "-hide_banner", "-v", "error", "-nostats"]
        .map(Into::into)
        .to_vec();
    args.extend(input_args(input));
    for _ in RENDITIONS {
        args.extend(["-map", "0:a:0"].map(Into::into));
    }
    args.extend(
        [
            "-vn",
            "-sn",
            "-dn",
            "-map_metadata",
            "-1",
            "-c:a",
            "aac",
            "-profile:a",
            "aac_low",
            "-ar",
            &SAMPLE_RATE.to_string(),
            "-ac",
            "2",
        ]
        .map(Into::into),
    );
    let mut stream_map = Vec::new();
    for (i, r) in RENDITIONS.iter().enumerate() {
        args.push(format!("-b:a:{i}").into());
        args.push(format!("{}k", r.kbps).into());
        stream_map.push(format!("a:{i},name:{}", r.name));
    }
    args.extend(
        [
            "-t".to_string(),
            format_seconds(duration_us),
            "-f".into(),
            "hls".into(),
            "-hls_time".into(),
            SEGMENT_SECONDS.to_string(),
            "-hls_playlist_type".into(),
            "vod".into(),
            "-hls_segment_type".into(),
            "mpegts".into(),
            "-hls_segment_filename".into(),
        ]
        .map(Into::into),
    );
    args.push(out.join("%v-%05d.ts").into());
    args.extend(
        [
            "-var_stream_map".to_string(),
            stream_map.join(" "),
            "-progress".into(),
            "pipe:1".into(),
        ]
        .map(Into::into),
    );
    args.push(out.join("%v.m3u8").into());

    let mut child = Command::new(&tools.ffmpeg)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ImportError::Spawn {
            tool: "ffmpeg",
            source,
        })?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ImportError::ToolOutput {
            tool: "ffmpeg",
            detail: "no pipes".into(),
        });
    };
    let follow = async {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(us) = progress_us(&line) {
                progress.update(us);
            }
        }
    };
    let mut err = Vec::new();
    let (_, _) = tokio::join!(follow, stderr.read_to_end(&mut err));
    let status = child.wait().await.map_err(|source| ImportError::Spawn {
        tool: "ffmpeg",
        source,
    })?;
    if !status.success() {
        let why = stderr_summary(&err, input);
        return Err(ImportError::Transcode(if why.is_empty() {
            format!("ffmpeg {status}")
        } else {
            why
        }));
    }
    Ok(())
}

/// Rename the segments in `dir` to their content address, rewrite the media playlists
/// and write the master: returns (key under `prefix`, file, content type) for every
/// file, segments first and the master last, so a reader that finds the master finds
/// everything it names.
async fn lay_out_hls(
    dir: &Path,
    prefix: &str,
) -> Result<Vec<(String, PathBuf, &'static str)>, ImportError> {
    let mut segments: Vec<(String, PathBuf, &'static str)> = Vec::new();
    let mut playlists = Vec::new();
    let mut master = Vec::new();
    for r in RENDITIONS {
        let file = dir.join(format!("{}.m3u8", r.name));
        let text = tokio::fs::read_to_string(&file)
            .await
            .map_err(|e| ImportError::ToolOutput {
                tool: "ffmpeg",
                detail: format!("{}.m3u8: {e}", r.name),
            })?;
        let parsed = parse_media_playlist(&text)?;
        let mut names = HashMap::new();
        let mut sizes = Vec::new();
        for seg in &parsed {
            let from = dir.join(&seg.uri);
            let bytes = tokio::fs::read(&from)
                .await
                .map_err(|e| ImportError::ToolOutput {
                    tool: "ffmpeg",
                    detail: format!("{}: {e}", seg.uri),
                })?;
            let name = segment_name(&bytes);
            let to = dir.join(&name);
            tokio::fs::rename(&from, &to)
                .await
                .map_err(ImportError::Temp)?;
            sizes.push((seg.duration_us, bytes.len() as u64));
            let key = format!("{prefix}/{name}");
            if !segments.iter().any(|(k, _, _)| *k == key) {
                segments.push((key, to, "video/mp2t"));
            }
            names.insert(seg.uri.clone(), name);
        }
        let rewritten = rewrite_media_playlist(&text, &names)?;
        tokio::fs::write(&file, rewritten)
            .await
            .map_err(ImportError::Temp)?;
        playlists.push((
            format!("{prefix}/{}.m3u8", r.name),
            file,
            "application/vnd.apple.mpegurl",
        ));
        master.push((format!("{}.m3u8", r.name), measure_bandwidth(&sizes)?));
    }
    let master_file = dir.join("master.m3u8");
    let refs: Vec<(&str, Bandwidth)> = master.iter().map(|(u, b)| (u.as_str(), *b)).collect();
    tokio::fs::write(&master_file, master_playlist(&refs))
        .await
        .map_err(ImportError::Temp)?;
    segments.extend(playlists);
    segments.push((
        format!("{prefix}/master.m3u8"),
        master_file,
        "application/vnd.apple.mpegurl",
    ));
    Ok(segments)
}

/// Transcoding progress on stderr: only on a terminal, only after
/// [`PROGRESS_AFTER`], at most every [`PROGRESS_EVERY`]; the line is cleared at the end.
struct Progress {
    enabled: bool,
    label: String,
    total_us: u64,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    fn new(enabled: bool, label: &Path, total_us: u64) -> Progress {
        Progress {
            enabled: enabled && total_us > 0,
            label: label.display().to_string(),
            total_us,
            started: Instant::now(),
            last: None,
        }
    }

    fn update(&mut self, out_us: u64) {
        if !self.enabled || self.started.elapsed() < PROGRESS_AFTER {
            return;
        }
        if self.last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let pct = (out_us.min(self.total_us) * 100) / self.total_us;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{}: transcoding {pct:>3}%", self.label);
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.last.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn content_addresses() {
        let digest = Sha256::digest(b"abc");
        assert_eq!(content_id(&digest), "ba7816bf8f01cfea");
        assert_eq!(segment_name(b"abc"), "seg-ba7816bf8f01cfea.ts");
        assert_eq!(
            original_key("ba7816bf8f01cfea", "mp3"),
            "tracks/i-ba7816bf8f01cfea/original.mp3"
        );
        assert_eq!(hls_prefix("ba7816bf8f01cfea"), "hls/i-ba7816bf8f01cfea");
        assert!(crate::store::layout::validate_key(&original_key("ab", "flac")).is_ok());
        assert!(
            crate::delivery::paths::validate_hls_name(&segment_name(b"")).is_ok(),
            "the origin serves segment names"
        );
    }

    #[test]
    fn extensions_and_content_types() {
        for (file, ext, ct) in [
            ("a/Song.MP3", "mp3", "audio/mpeg"),
            ("x.flac", "flac", "audio/flac"),
            ("x.Wav", "wav", "audio/wav"),
            ("x.m4a", "m4a", "audio/mp4"),
            ("x.ogg", "ogg", "audio/ogg"),
            ("x.opus", "opus", "audio/opus"),
            ("noext", "bin", "application/octet-stream"),
            ("x.we ird", "bin", "application/octet-stream"),
            ("x.verylongext", "bin", "application/octet-stream"),
        ] {
            let got = original_ext(Path::new(file));
            assert_eq!(got, ext, "{file}");
            assert_eq!(original_content_type(&got), ct, "{file}");
        }
    }

    #[test]
    fn tags_are_case_insensitive_and_flags_win() {
        let format = tags(&[("TITLE", "  Song  "), ("Artist", "")]);
        let stream = tags(&[("artist", "From Stream"), ("title", "Stream Title")]);
        let path = Path::new("/music/file name.mp3");
        assert_eq!(
            title_and_artist((None, None), &format, &stream, path),
            ("Song".to_string(), "From Stream".to_string())
        );
        assert_eq!(
            title_and_artist((Some("Flag"), Some("Band")), &format, &stream, path),
            ("Flag".to_string(), "Band".to_string())
        );
        let none = BTreeMap::new();
        assert_eq!(
            title_and_artist((None, None), &none, &none, path),
            ("file name".to_string(), UNKNOWN_ARTIST.to_string())
        );
        // A blank flag falls back like a missing one.
        assert_eq!(
            title_and_artist((Some(" "), None), &format, &none, path).0,
            "Song"
        );
        assert_eq!(tag(&tags(&[("ArTiSt", "X")]), "artist"), Some("X"));
    }

    #[test]
    fn seconds_parse_exactly() {
        assert_eq!(parse_seconds_us("5.023711"), Some(5_023_711));
        assert_eq!(parse_seconds_us("6"), Some(6_000_000));
        assert_eq!(parse_seconds_us("6.5"), Some(6_500_000));
        assert_eq!(parse_seconds_us(".25"), Some(250_000));
        assert_eq!(parse_seconds_us("1.23456789"), Some(1_234_567));
        for bad in ["", ".", "-1", "1e3", "N/A", "1.2.3"] {
            assert_eq!(parse_seconds_us(bad), None, "{bad}");
        }
        assert_eq!(format_seconds(5_000_000), "5.000000");
        assert_eq!(format_seconds(2_020_136), "2.020136");
    }

    #[test]
    fn durations_from_decode_and_container() {
        // MP3: the Xing header counts encoder delay and padding; the decode is exact.
        assert_eq!(
            catalogue_duration_us(5_000_000, Some(5_041_633)),
            Ok(5_000_000)
        );
        // MP4: the decoder outputs padding the edit list trims.
        assert_eq!(
            catalogue_duration_us(2_020_136, Some(2_000_000)),
            Ok(2_000_000)
        );
        // No trustworthy declaration: the decode.
        assert_eq!(catalogue_duration_us(3_000_000, None), Ok(3_000_000));
        // Far longer than declared: the declaration is wrong, keep all the audio.
        assert_eq!(
            catalogue_duration_us(9_000_000, Some(2_000_000)),
            Ok(9_000_000)
        );
        // Cut: half of a declared 5 s.
        assert_eq!(
            catalogue_duration_us(2_456_000, Some(5_041_633)),
            Err(Truncation {
                decoded_us: 2_456_000,
                declared_us: 5_041_633
            })
        );
        // 2 % of a long file is the tolerance.
        assert!(catalogue_duration_us(590_000_000, Some(600_000_000)).is_ok());
        assert!(catalogue_duration_us(580_000_000, Some(600_000_000)).is_err());
    }

    const FFMPEG_PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n\
#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:6.013968,\na64-00000.ts\n\
#EXTINF:5.990748,\na64-00001.ts\n#EXTINF:1.018594,\na64-00002.ts\n#EXT-X-ENDLIST\n";

    #[test]
    fn media_playlists_are_parsed_and_rewritten() {
        let segs = parse_media_playlist(FFMPEG_PLAYLIST).unwrap();
        assert_eq!(
            segs.iter().map(|s| s.duration_us).collect::<Vec<_>>(),
            [6_013_968, 5_990_748, 1_018_594]
        );
        // 6.013968 s rounds up to 7 (ffmpeg wrote 6).
        assert_eq!(target_duration(&segs), 7);
        let names: HashMap<String, String> = segs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.uri.clone(), format!("seg-{i:016x}.ts")))
            .collect();
        let out = rewrite_media_playlist(FFMPEG_PLAYLIST, &names).unwrap();
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:7\n#EXT-X-MEDIA-SEQUENCE:0\n\
#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:6.013968,\nseg-0000000000000000.ts\n#EXTINF:5.990748,\n\
seg-0000000000000001.ts\n#EXTINF:1.018594,\nseg-0000000000000002.ts\n#EXT-X-ENDLIST\n"
        );
        // Exactly 6 s stays 6.
        let six = "#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:6.000000,\na.ts\n#EXT-X-ENDLIST\n";
        assert_eq!(target_duration(&parse_media_playlist(six).unwrap()), 6);

        let mut partial = names;
        partial.remove("a64-00001.ts");
        assert_eq!(
            rewrite_media_playlist(FFMPEG_PLAYLIST, &partial),
            Err(PlaylistError::Unmapped("a64-00001.ts".into()))
        );
    }

    #[test]
    fn bad_playlists_are_refused() {
        for (text, err) in [
            ("#EXTINF:1,\na.ts\n", PlaylistError::NotM3u8),
            ("#EXTM3U\n#EXT-X-ENDLIST\n", PlaylistError::Empty),
            ("#EXTM3U\n#EXTINF:1,\na.ts\n", PlaylistError::Incomplete),
            (
                "#EXTM3U\na.ts\n#EXT-X-ENDLIST\n",
                PlaylistError::MissingExtinf("a.ts".into()),
            ),
            (
                "#EXTM3U\n#EXTINF:x,\na.ts\n#EXT-X-ENDLIST\n",
                PlaylistError::BadExtinf("#EXTINF:x,".into()),
            ),
            (
                "#EXTM3U\n#EXTINF:1,\n../a.ts\n#EXT-X-ENDLIST\n",
                PlaylistError::BadUri("../a.ts".into()),
            ),
        ] {
            assert_eq!(parse_media_playlist(text), Err(err), "{text}");
        }
    }

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
    fn master_lists_every_rendition() {
        let m = master_playlist(&[
            (
                "a64.m3u8",
                Bandwidth {
                    peak: 75_200,
                    average: 70_000,
                },
            ),
            (
                "a160.m3u8",
                Bandwidth {
                    peak: 180_000,
                    average: 170_000,
                },
            ),
        ]);
        assert_eq!(
            m,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-STREAM-INF:BANDWIDTH=75200,AVERAGE-BANDWIDTH=70000,CODECS=\"mp4a.40.2\"\na64.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=180000,AVERAGE-BANDWIDTH=170000,CODECS=\"mp4a.40.2\"\na160.m3u8\n"
        );
    }

    #[test]
    fn tool_errors_are_condensed() {
        let input = Path::new("/tmp/veza-import-1/original.mp3");
        let stderr =
            b"[mp3 @ 0x556dd2663780] first\n\n[mp3 @ 0x556dd2663780] Failed to read frame size\n\
[flac @ 0x5] invalid residual\nfile:/tmp/veza-import-1/original.mp3: Invalid argument\n";
        assert_eq!(
            stderr_summary(stderr, input),
            "mp3: Failed to read frame size; flac: invalid residual; input: Invalid argument"
        );
        assert_eq!(stderr_summary(b"", input), "");
    }

    #[test]
    fn progress_lines_and_display() {
        assert_eq!(progress_us("out_time_us=1500000"), Some(1_500_000));
        assert_eq!(progress_us("out_time_us=N/A"), None);
        assert_eq!(progress_us("progress=end"), None);
        assert_eq!(display_duration(5_000), "0:05");
        assert_eq!(display_duration(187_499), "3:07");
        assert_eq!(display_duration(3_723_000), "1:02:03");
    }

    #[test]
    fn tools_are_found_in_path_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Tools::find_in(dir.path().as_os_str()).unwrap_err(),
            MissingTool { tool: "ffmpeg" }
        );
        let msg = MissingTool { tool: "ffprobe" }.to_string();
        assert!(msg.starts_with("ffprobe not found in PATH"), "{msg}");
        assert!(msg.contains("apt-get install ffmpeg") && msg.contains("brew install ffmpeg"));
    }
}
