//! The files of one import on local disk before they are uploaded: a private
//! [`Workspace`], the [`snapshot`] of the original (hashed on the way: its content id),
//! and the HLS tree ffmpeg left, laid out under content-addressed names with the media
//! playlists rewritten and the master written ([`lay_out_hls`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ImportError;
use super::keys::{content_id, original_ext};
use crate::hls::bandwidth::{Bandwidth, measure_bandwidth};
use crate::hls::ladder::{RENDITIONS, Rendition};
use crate::hls::naming::HlsKind;
use crate::hls::naming::{MASTER_PLAYLIST, segment_name};
use crate::hls::playlist::{master_playlist, parse_media_playlist, rewrite_media_playlist};
use crate::store::layout::hls_file;

/// A private directory under the system temporary directory (`TMPDIR`), removed with
/// everything in it when dropped — on success, error, timeout or interruption.
#[derive(Debug)]
pub struct Workspace {
    path: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl Workspace {
    pub fn new() -> Result<Workspace, ImportError> {
        let base = std::path::absolute(std::env::temp_dir()).map_err(ImportError::Temp)?;
        let dir = tempfile::Builder::new()
            .prefix("veza-import-")
            .tempdir_in(base)
            .map_err(ImportError::Temp)?;
        Ok(Workspace {
            path: dir.path().to_path_buf(),
            dir: Some(dir),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Some(Err(e)) = self.dir.take().map(tempfile::TempDir::close) {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// The original, copied into the workspace: the bytes probed, transcoded and stored
/// are the bytes the content id names.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub path: PathBuf,
    pub id: String,
    pub ext: String,
    pub size: u64,
}

/// A local file ready to upload under `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    pub key: String,
    pub path: PathBuf,
    pub content_type: &'static str,
}

/// Copy the file into `dir` as `original.{ext}` while hashing it.
pub async fn snapshot(path: &Path, dir: &Path) -> Result<Snapshot, ImportError> {
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

/// Rename the segments ffmpeg wrote in `dir` to their content address, rewrite the
/// media playlists and write the master: every file with its key under `prefix`,
/// segments first and the master last, so a reader that finds the master finds
/// everything it names.
pub async fn lay_out_hls(dir: &Path, prefix: &str) -> Result<Vec<StagedFile>, ImportError> {
    let mut files = Vec::new();
    let mut playlists = Vec::new();
    let mut variants = Vec::new();
    for r in RENDITIONS {
        let laid = lay_out_rendition(dir, prefix, r, &mut files).await?;
        playlists.push(laid.playlist);
        variants.push((r.playlist_name(), laid.bandwidth));
    }
    let master_file = dir.join(MASTER_PLAYLIST);
    let refs: Vec<(&str, Bandwidth)> = variants.iter().map(|(u, b)| (u.as_str(), *b)).collect();
    tokio::fs::write(&master_file, master_playlist(&refs))
        .await
        .map_err(ImportError::Temp)?;
    files.extend(playlists);
    files.push(StagedFile {
        key: hls_file(prefix, MASTER_PLAYLIST),
        path: master_file,
        content_type: HlsKind::Playlist.content_type(),
    });
    Ok(files)
}

/// One rendition laid out: its rewritten media playlist and measured bandwidth.
struct LaidOut {
    playlist: StagedFile,
    bandwidth: Bandwidth,
}

/// Rename one rendition's segments (adding those not yet in `segments`, which
/// renditions may share) and rewrite its media playlist in place.
async fn lay_out_rendition(
    dir: &Path,
    prefix: &str,
    r: Rendition,
    segments: &mut Vec<StagedFile>,
) -> Result<LaidOut, ImportError> {
    let unexpected = |what: &str, e: std::io::Error| ImportError::ToolOutput {
        tool: "ffmpeg",
        detail: format!("{what}: {e}"),
    };
    let file = dir.join(r.playlist_name());
    let text = tokio::fs::read_to_string(&file)
        .await
        .map_err(|e| unexpected(&r.playlist_name(), e))?;
    let mut names = HashMap::new();
    let mut sizes = Vec::new();
    for seg in parse_media_playlist(&text)? {
        let from = dir.join(&seg.uri);
        let bytes = tokio::fs::read(&from)
            .await
            .map_err(|e| unexpected(&seg.uri, e))?;
        let name = segment_name(&bytes);
        let to = dir.join(&name);
        tokio::fs::rename(&from, &to)
            .await
            .map_err(ImportError::Temp)?;
        sizes.push((seg.duration_us, bytes.len() as u64));
        let key = hls_file(prefix, &name);
        if !segments.iter().any(|s| s.key == key) {
            segments.push(StagedFile {
                key,
                path: to,
                content_type: HlsKind::TransportStream.content_type(),
            });
        }
        names.insert(seg.uri, name);
    }
    let rewritten = rewrite_media_playlist(&text, &names)?;
    tokio::fs::write(&file, rewritten)
        .await
        .map_err(ImportError::Temp)?;
    Ok(LaidOut {
        playlist: StagedFile {
            key: hls_file(prefix, &r.playlist_name()),
            path: file,
            content_type: HlsKind::Playlist.content_type(),
        },
        bandwidth: measure_bandwidth(&sizes)?,
    })
}
