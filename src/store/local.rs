//! The local-directory backend: objects are files under a root directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Opened, StorageError};

/// Distinguishes concurrent temporary files of one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub(super) fn new(root: PathBuf) -> LocalStore {
        LocalStore { root }
    }

    /// Best effort: a directory that cannot be created is reported by `/health/deep`.
    pub(super) async fn create(root: &Path) -> LocalStore {
        if let Err(e) = tokio::fs::create_dir_all(root).await {
            log::warn!("cannot create storage directory {}: {e}", root.display());
        }
        LocalStore::new(root.to_path_buf())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(super) async fn check(&self) -> Result<(), StorageError> {
        match tokio::fs::metadata(&self.root).await {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(StorageError::Backend(format!(
                "{} is not a directory",
                self.root.display()
            ))),
            Err(e) => Err(StorageError::Backend(format!(
                "{}: {e}",
                self.root.display()
            ))),
        }
    }

    /// Only a regular file is an object: a directory (even one named like a segment) is
    /// not found. The metadata is the open file's own (`fstat`), so it describes the
    /// bytes that will be read even if the path is replaced meanwhile.
    ///
    /// Opened and `fstat`ed on the calling thread, as actix-files did: segments are hot
    /// in the page cache, where an open costs microseconds and a hop to the blocking
    /// pool and back costs more. Measured with `scripts/bench.sh hls`: 64 KiB segments
    /// at 0.57 of nginx's rate with the hop, 0.68 and 0.77 without (docs/PERFORMANCE.md).
    pub(super) async fn open(&self, key: &str) -> Result<Opened, StorageError> {
        let path = self.root.join(key);
        let opened = std::fs::File::open(&path).and_then(|file| {
            let metadata = file.metadata()?;
            Ok((file, metadata))
        });
        match opened {
            Ok((file, metadata)) if metadata.is_file() => Ok(Opened::File {
                file,
                path,
                metadata,
            }),
            Ok(_) => Err(StorageError::NotFound),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound),
            Err(e) => Err(StorageError::io(&path, e)),
        }
    }

    pub(super) async fn read_small(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Vec<u8>, StorageError> {
        let path = self.root.join(key);
        let meta = match tokio::fs::metadata(&path).await {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound);
            }
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        if meta.len() > limit as u64 {
            return Err(StorageError::TooLarge {
                key: key.to_string(),
                limit,
            });
        }
        tokio::fs::read(&path)
            .await
            .map_err(|e| StorageError::io(&path, e))
    }

    pub(super) async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let path = self.root.join(key);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.is_file().then_some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(&path, e)),
        }
    }

    pub(super) async fn list(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        let path = self.root.join(dir);
        let mut entries = match tokio::fs::read_dir(&path).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::io(&path, e)),
        };
        let mut names = Vec::new();
        while let Some(e) = entries
            .next_entry()
            .await
            .map_err(|e| StorageError::io(&path, e))?
        {
            let name = e.file_name().to_string_lossy().into_owned();
            // Temporary files of a write in progress are hidden, and never objects.
            if !name.starts_with('.') && e.file_type().await.is_ok_and(|t| t.is_file()) {
                names.push(name);
            }
        }
        Ok(names)
    }

    pub(super) async fn put_file(&self, key: &str, source: &Path) -> Result<(), StorageError> {
        self.put_with(key, |tmp| async move {
            tokio::fs::copy(source, &tmp)
                .await
                .map(|_| ())
                .map_err(|e| StorageError::io(source, e))
        })
        .await
    }

    pub(super) async fn put_bytes(&self, key: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.put_with(key, |tmp| async move {
            tokio::fs::write(&tmp, bytes)
                .await
                .map_err(|e| StorageError::io(&tmp, e))
        })
        .await
    }

    /// The parent directories are created, `write` fills a hidden temporary file (never
    /// served, even if a crash leaves it behind), which is synced, then renamed over
    /// the key: a reader never sees a partial object.
    async fn put_with<F, Fut>(&self, key: &str, write: F) -> Result<(), StorageError>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<(), StorageError>>,
    {
        let dest = self.root.join(key);
        let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
            return Err(StorageError::InvalidKey {
                key: key.to_string(),
                reason: "no file name".into(),
            });
        };
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| StorageError::io(dir, e))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = async {
            write(tmp.clone()).await?;
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .open(&tmp)
                .await
                .map_err(|e| StorageError::io(&tmp, e))?;
            file.sync_all()
                .await
                .map_err(|e| StorageError::io(&tmp, e))?;
            tokio::fs::rename(&tmp, &dest)
                .await
                .map_err(|e| StorageError::io(&dest, e))
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        written
    }

    /// Parent directories left empty are removed too, up to (not including) the root.
    pub(super) async fn remove(&self, key: &str) -> Result<(), StorageError> {
        let path = self.root.join(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(&path, e)),
        }
        // remove_dir refuses non-empty directories, which ends the walk (another object
        // still lives there).
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root
                || !d.starts_with(&self.root)
                || tokio::fs::remove_dir(d).await.is_err()
            {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }
}
