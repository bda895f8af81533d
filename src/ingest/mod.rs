//! The import pipeline: one audio file in, one catalogue track with its original and
//! an HLS ladder in storage out. `veza import` runs it for the operator's files; it
//! knows nothing of the command line, so an upload job can run it too.
//!
//! For each file: snapshot it into a private temporary directory, hashing it on the
//! way ([`layout`]; the content id and every key's shape are in [`keys`]); skip it if
//! a track with that content id exists ([`catalogue`]); ask ffprobe what it is and how
//! long it really decodes to ([`probe`]); transcode it with one ffmpeg run to the
//! AAC-LC ladder of [`crate::hls::ladder`] ([`transcode`], progress in [`progress`]);
//! rename the segments to their content address, rewrite the media playlists and
//! write the master ([`layout`]); upload everything (segments, media playlists,
//! master, then the original) and insert the rows in one transaction. A failure at
//! any step deletes whatever was uploaded; the temporary directory goes on drop.
//!
//! ffmpeg and ffprobe run through [`process`] (deadline, killed when dropped); where
//! they are is [`tools`].

pub mod catalogue;
pub mod keys;
pub mod layout;
pub mod probe;
pub mod process;
pub mod progress;
pub mod tools;
pub mod transcode;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use crate::access::Visibility;
use tokio::sync::watch;
use tokio::time::Instant;

use self::catalogue::{NewTrack, PlaylistAdd};
use self::keys::original_content_type;
use self::layout::{Snapshot, StagedFile, Workspace};
use self::process::ProcessError;
use self::progress::ProgressSink;
use self::tools::Tools;
use crate::db::entities::track;
use crate::hls::playlist::PlaylistError;
use crate::store::layout::{imported_hls_prefix, imported_original};
use crate::store::{StorageError, Store};

/// Default bound on probing and transcoding one file.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

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
    /// ffprobe or ffmpeg could not be run, or wrote what cannot be read.
    #[error(transparent)]
    Tool(ProcessError),
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

impl ImportError {
    /// A tool's failure as the pipeline reports it: a failed run becomes
    /// `failed(reason)` (not audio, does not decode, transcoding failed).
    fn from_tool(e: ProcessError, failed: fn(String) -> ImportError) -> ImportError {
        match e {
            ProcessError::Failed { reason, .. } => failed(reason),
            other => ImportError::Tool(other),
        }
    }
}

#[derive(Clone)]
pub struct ImportOptions {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub playlist: Option<String>,
    /// The user the tracks' artist is given to (`--owner`).
    pub owner: Option<i64>,
    pub visibility: Visibility,
    /// Bound on probing plus transcoding one file.
    pub timeout: Duration,
    /// Where transcoding progress goes; none by default.
    pub progress: Option<Arc<dyn ProgressSink>>,
}

impl ImportOptions {
    pub fn new() -> ImportOptions {
        ImportOptions {
            title: None,
            artist: None,
            playlist: None,
            owner: None,
            visibility: Visibility::Public,
            timeout: DEFAULT_TIMEOUT,
            progress: None,
        }
    }
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions::new()
    }
}

impl fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportOptions")
            .field("title", &self.title)
            .field("artist", &self.artist)
            .field("playlist", &self.playlist)
            .field("owner", &self.owner)
            .field("visibility", &self.visibility)
            .field("timeout", &self.timeout)
            .field("progress", &self.progress.is_some())
            .finish()
    }
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
    /// Becomes `true` to stop (Ctrl-C): probing and transcoding stop (the children are
    /// killed), while uploads and the insert, which must not be cut short, finish.
    pub interrupt: watch::Receiver<bool>,
}

/// Where one file's media goes in storage.
struct Keys {
    original: String,
    hls_prefix: String,
}

/// What probing and transcoding produced, ready to publish.
struct Prepared {
    title: String,
    artist: String,
    duration_us: u64,
    /// In upload order.
    files: Vec<StagedFile>,
}

/// What publishing wrote to the catalogue.
struct Published {
    track: track::Model,
    playlist: Option<PlaylistAdd>,
}

impl Importer {
    pub async fn import_file(&self, path: &Path) -> Result<Outcome, ImportError> {
        let workspace = Workspace::new()?;
        let snap = layout::snapshot(path, workspace.path()).await?;
        let keys = Keys {
            original: imported_original(&snap.id, &snap.ext),
            hls_prefix: imported_hls_prefix(&snap.id),
        };
        let existing =
            catalogue::find_existing(&self.conn, &keys.original, &keys.hls_prefix).await?;
        if let Some(track) = existing {
            let playlist = self.add_existing_to_playlist(track.id).await?;
            return Ok(Outcome::AlreadyImported { track, playlist });
        }

        let mut interrupt = self.interrupt.clone();
        let deadline = Instant::now() + self.options.timeout;
        let prepare = self.prepare(path, &snap, workspace.path(), &keys, deadline);
        let prepared = tokio::select! {
            r = tokio::time::timeout_at(deadline, prepare) => match r {
                Ok(Ok(prepared)) => prepared,
                Ok(Err(ImportError::Tool(ProcessError::TimedOut { .. }))) | Err(_) => {
                    return Err(ImportError::Timeout {
                        limit: humantime::format_duration(self.options.timeout).to_string(),
                    });
                }
                Ok(Err(e)) => return Err(e),
            },
            () = interrupted(&mut interrupt) => return Err(ImportError::Interrupted),
        };

        let mut written = Vec::new();
        match self.publish(&prepared, &snap, &keys, &mut written).await {
            Ok(published) => Ok(Outcome::Imported {
                track: published.track,
                artist: prepared.artist,
                playlist: published.playlist,
            }),
            Err(error) => Err(self.roll_back(error, &written).await),
        }
    }

    async fn add_existing_to_playlist(
        &self,
        track_id: i64,
    ) -> Result<Option<PlaylistAdd>, ImportError> {
        let Some(name) = &self.options.playlist else {
            return Ok(None);
        };
        let txn = self.conn.begin().await?;
        let add = catalogue::add_to_playlist(&txn, name, track_id).await?;
        txn.commit().await?;
        Ok(Some(add))
    }

    /// Probe, transcode and lay out the HLS files in `dir`.
    async fn prepare(
        &self,
        label: &Path,
        snap: &Snapshot,
        dir: &Path,
        keys: &Keys,
        deadline: Instant,
    ) -> Result<Prepared, ImportError> {
        let report = probe::probe(&self.tools, &snap.path, deadline).await?;
        let decoded_us =
            probe::count_decoded_us(&self.tools, &snap.path, report.sample_rate, deadline).await?;
        if decoded_us == 0 {
            return Err(ImportError::Decode("no audio samples".into()));
        }
        let duration_us =
            probe::catalogue_duration_us(decoded_us, report.declared_us).map_err(|t| {
                ImportError::Truncated {
                    decoded: seconds(t.decoded_us),
                    declared: seconds(t.declared_us),
                }
            })?;
        let credits = probe::title_and_artist(
            (
                self.options.title.as_deref(),
                self.options.artist.as_deref(),
            ),
            &report.format_tags,
            &report.stream_tags,
            label,
        );
        let hls = dir.join("hls");
        tokio::fs::create_dir(&hls)
            .await
            .map_err(ImportError::Temp)?;
        let mut meter = self
            .options
            .progress
            .as_ref()
            .map(|sink| sink.start(label, duration_us));
        let on_progress = |us| {
            if let Some(m) = meter.as_mut() {
                m.update(us);
            }
        };
        let transcoded = transcode::transcode(
            &self.tools,
            &snap.path,
            &hls,
            duration_us,
            deadline,
            on_progress,
        )
        .await;
        drop(meter);
        transcoded?;
        let mut files = layout::lay_out_hls(&hls, &keys.hls_prefix).await?;
        files.push(StagedFile {
            key: keys.original.clone(),
            path: snap.path.clone(),
            content_type: original_content_type(&snap.ext),
        });
        Ok(Prepared {
            title: credits.title,
            artist: credits.artist,
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
        keys: &Keys,
        written: &mut Vec<String>,
    ) -> Result<Published, ImportError> {
        for file in &prepared.files {
            written.push(file.key.clone());
            self.storage
                .put_file(&file.key, &file.path, file.content_type)
                .await?;
        }
        let txn = self.conn.begin().await?;
        let artist_id = catalogue::find_or_create_artist(&txn, &prepared.artist).await?;
        if let Some(owner) = self.options.owner {
            catalogue::assign_artist(&txn, artist_id, owner).await?;
        }
        let new = NewTrack {
            title: &prepared.title,
            artist_id,
            duration_us: prepared.duration_us,
            storage_key: &keys.original,
            hls_prefix: &keys.hls_prefix,
            content_type: original_content_type(&snap.ext),
            byte_size: snap.size,
            visibility: self.options.visibility,
        };
        let track = catalogue::insert_track(&txn, new).await?;
        let playlist = match &self.options.playlist {
            Some(name) => Some(catalogue::add_to_playlist(&txn, name, track.id).await?),
            None => None,
        };
        txn.commit().await?;
        Ok(Published { track, playlist })
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

fn seconds(us: u64) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}
