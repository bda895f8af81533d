//! Where media lives: a local directory (the embedded default) or an S3-compatible
//! bucket (AWS, MinIO, R2…). [`Store`] owns every storage operation — open (with range
//! and conditions), read a small object, put (atomic), remove, exists, list a directory,
//! and a direct (presigned) URL where the backend has one — so no caller matches on the
//! backend. [`layout`] is the one place that knows the shape of every key.

pub mod layout;
mod local;
mod s3;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{StorageBackend, StorageKind};
pub use local::LocalStore;
pub use s3::{S3Store, timeouts};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("storage error: {0}")]
    Backend(String),
    #[error("{key}: larger than {limit} bytes")]
    TooLarge { key: String, limit: usize },
    #[error("invalid storage key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("storage error: {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    fn io(path: &Path, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// An opened object: a local file (with its metadata: the handler serves its ranges and
/// validators from the file itself), or a remote object the handler reads with
/// [`RemoteObject::head`] and [`RemoteObject::get`]. Opening a remote object contacts
/// nothing; a missing one is found by the first read.
pub enum Opened {
    File {
        file: std::fs::File,
        path: PathBuf,
        metadata: std::fs::Metadata,
    },
    Remote(RemoteObject),
}

/// An object of a remote backend (S3), not yet read.
#[derive(Clone, Debug)]
pub struct RemoteObject {
    store: S3Store,
    key: String,
}

impl RemoteObject {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The object's metadata (`HeadObject`); a missing object is
    /// [`StorageError::NotFound`].
    pub async fn head(&self) -> Result<ObjectMeta, StorageError> {
        self.store.head(&self.key).await
    }

    /// The object, or the part of it `get` asks for, streamed (`GetObject`).
    pub async fn get(&self, get: &RemoteGet) -> Result<Fetched, StorageError> {
        self.store.get(&self.key, get).await
    }
}

/// How to read a remote object: a byte range and conditions the backend evaluates (S3
/// `GetObject`'s `Range`, `If-Match`, `If-None-Match`), all optional.
#[derive(Debug, Clone, Default)]
pub struct RemoteGet {
    /// A `Range` value for one range (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
    pub range: Option<String>,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

/// Metadata of a remote object.
#[derive(Debug, Clone, Default)]
pub struct ObjectMeta {
    pub etag: Option<String>,
    pub last_modified: Option<std::time::SystemTime>,
    /// The length of the whole object.
    pub length: u64,
    /// The bytes sent, when the backend answered with a part of the object.
    pub range: Option<(u64, u64)>,
}

/// A stream of an object's bytes.
pub type ObjectBody =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>>>>;

/// A remote backend's answer to a [`RemoteGet`].
pub enum Fetched {
    /// The object, or the range [`ObjectMeta::range`] of it.
    Object(ObjectMeta, ObjectBody),
    /// `If-None-Match` matched; the ETag when known.
    NotModified(Option<String>),
    /// `If-Match` did not.
    PreconditionFailed,
    /// The range starts past the end.
    RangeNotSatisfiable,
}

/// The configured storage backend.
#[derive(Clone, Debug)]
pub enum Store {
    Local(LocalStore),
    S3(S3Store),
}

impl Store {
    /// Build the backend. Nothing is contacted here, so a misconfigured S3 shows up in
    /// `/health/deep`, not as a crash.
    pub async fn from_config(backend: &StorageBackend, root: &Path) -> Store {
        match backend {
            StorageBackend::Local => Store::Local(LocalStore::create(root).await),
            StorageBackend::S3(s3) => Store::S3(S3Store::new(s3).await),
        }
    }

    /// A local store rooted at `root` (tests, tools).
    pub fn local(root: impl Into<PathBuf>) -> Store {
        Store::Local(LocalStore::new(root.into()))
    }

    pub fn kind(&self) -> StorageKind {
        match self {
            Store::Local(_) => StorageKind::Local,
            Store::S3(_) => StorageKind::S3,
        }
    }

    /// Probe the backend for `/health/deep`.
    pub async fn check(&self) -> Result<(), StorageError> {
        match self {
            Store::Local(l) => l.check().await,
            Store::S3(s) => s.check().await,
        }
    }

    /// Open `key` for reading. A key that fails validation is an
    /// [`StorageError::InvalidKey`]; a local key that is missing or not a regular file (a
    /// directory) is [`StorageError::NotFound`].
    pub async fn open(&self, key: &str) -> Result<Opened, StorageError> {
        let key = checked_key(key)?;
        match self {
            Store::Local(l) => l.open(key).await,
            Store::S3(s) => Ok(Opened::Remote(RemoteObject {
                store: s.clone(),
                key: key.to_string(),
            })),
        }
    }

    /// Read a small object (a playlist, a manifest) whole, refusing anything over
    /// `limit` bytes.
    pub async fn read_small(&self, key: &str, limit: usize) -> Result<Vec<u8>, StorageError> {
        let key = checked_key(key)?;
        match self {
            Store::Local(l) => l.read_small(key, limit).await,
            Store::S3(s) => s.read_small(key, limit).await,
        }
    }

    /// Store the file at `path` under `key`, replacing any object there, atomically: a
    /// reader never sees a partial object.
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let key = checked_key(key)?;
        match self {
            Store::Local(l) => l.put_file(key, path).await,
            Store::S3(s) => s.put_file(key, path, content_type).await,
        }
    }

    /// Store `bytes` under `key`, atomically, like [`Store::put_file`].
    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let key = checked_key(key)?;
        match self {
            Store::Local(l) => l.put_bytes(key, &bytes).await,
            Store::S3(s) => s.put_bytes(key, bytes, content_type).await,
        }
    }

    /// Remove the object under `key`; a missing object is not an error.
    pub async fn remove(&self, key: &str) -> Result<(), StorageError> {
        let key = checked_key(key)?;
        match self {
            Store::Local(l) => l.remove(key).await,
            Store::S3(s) => s.remove(key).await,
        }
    }

    /// Whether an object exists under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.size(key).await?.is_some())
    }

    /// The size of the object under `key`, `None` when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let key = checked_key(key)?;
        match self {
            Store::Local(l) => l.size(key).await,
            Store::S3(s) => s.size(key).await,
        }
    }

    /// The names of the objects directly under the directory `dir` (no trailing slash).
    pub async fn list(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        let dir = checked_key(dir)?;
        match self {
            Store::Local(l) => l.list(dir).await,
            Store::S3(s) => s.list(dir).await,
        }
    }

    /// Whether [`Store::direct_url`] gives URLs (the backend serves clients itself).
    pub fn has_direct_urls(&self) -> bool {
        matches!(self, Store::S3(_))
    }

    /// A URL the client can fetch `key` from directly, valid for `ttl`, when the backend
    /// has one (a presigned S3 URL, computed locally); with `disposition`, the response
    /// carries that `Content-Disposition`. `None` for local storage: the service serves
    /// those bytes itself.
    pub async fn direct_url(
        &self,
        key: &str,
        ttl: Duration,
        disposition: Option<&str>,
    ) -> Result<Option<String>, StorageError> {
        match self {
            Store::Local(_) => Ok(None),
            Store::S3(s) => s.presign_get(key, ttl, disposition).await.map(Some),
        }
    }
}

fn checked_key(key: &str) -> Result<&str, StorageError> {
    layout::validate_key(key).map_err(|e| StorageError::InvalidKey {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_put_exists_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("media");
        std::fs::create_dir(&root).unwrap();
        let storage = Store::local(root.clone());
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"hello").unwrap();

        assert!(!storage.exists("hls/i-ab/seg-1.ts").await.unwrap());
        storage
            .put_file("hls/i-ab/seg-1.ts", &src, "video/mp2t")
            .await
            .unwrap();
        storage
            .put_bytes("hls/i-ab/seg-2.ts", b"hello".to_vec(), "video/mp2t")
            .await
            .unwrap();
        assert!(storage.exists("hls/i-ab/seg-1.ts").await.unwrap());
        assert_eq!(storage.size("hls/i-ab/seg-2.ts").await.unwrap(), Some(5));
        assert_eq!(
            std::fs::read(root.join("hls/i-ab/seg-1.ts")).unwrap(),
            b"hello"
        );
        // No temporary file is left next to the objects.
        let mut names = storage.list("hls/i-ab").await.unwrap();
        names.sort();
        assert_eq!(names, ["seg-1.ts", "seg-2.ts"]);
        assert_eq!(std::fs::read_dir(root.join("hls/i-ab")).unwrap().count(), 2);

        storage.remove("hls/i-ab/seg-1.ts").await.unwrap();
        assert!(root.join("hls/i-ab").is_dir(), "still holds seg-2");
        storage.remove("hls/i-ab/seg-2.ts").await.unwrap();
        // Emptied directories are pruned, the root stays.
        assert!(!root.join("hls").exists());
        assert!(root.is_dir());
        // Removing a missing object is fine.
        storage.remove("hls/i-ab/seg-2.ts").await.unwrap();
        assert!(storage.list("hls/i-ab").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn keys_that_escape_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Store::local(dir.path());
        for key in ["../x.ts", "/etc/passwd", "hls//x.ts", "hls/.hidden"] {
            assert!(
                matches!(
                    storage.put_file(key, dir.path(), "x").await,
                    Err(StorageError::InvalidKey { .. })
                ),
                "{key}"
            );
            assert!(storage.remove(key).await.is_err(), "{key}");
            assert!(storage.read_small(key, 10).await.is_err(), "{key}");
        }
    }
}
