//! Where media lives: the local directory (the embedded default) or an S3-compatible
//! bucket (AWS, MinIO, R2…). The HLS origin streams from either without holding a
//! whole object in memory; S3 presigned URLs are computed locally (no network call).
//! Writes (`put_file`, `delete`, `exists`) serve `veza import`; the service never writes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;

use crate::config::{S3Config, StorageBackend};
use crate::delivery::paths::validate_key;

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

/// Distinguishes concurrent temporary files of one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The configured storage backend.
#[derive(Clone, Debug)]
pub enum Storage {
    Local { root: PathBuf },
    S3(S3Storage),
}

#[derive(Clone, Debug)]
pub struct S3Storage {
    client: aws_sdk_s3::Client,
    pub bucket: String,
    /// Half of `S3_OPERATION_TIMEOUT`: one attempt's bound.
    attempt_timeout: Duration,
}

/// Metadata of an object read from S3, as HTTP headers want it.
#[derive(Debug, Default)]
pub struct ObjectMeta {
    pub etag: Option<String>,
    /// HTTP date.
    pub last_modified: Option<String>,
    pub content_length: u64,
    /// `Some` when a range was served (206).
    pub content_range: Option<String>,
}

/// A stream of an object's bytes.
pub type ObjectBody =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>>>>;

/// The answer to a conditional, possibly ranged, S3 read: S3 itself evaluates `Range`
/// and `If-None-Match`.
pub enum Fetched {
    /// HEAD: the metadata only.
    Head(ObjectMeta),
    Object(ObjectMeta, ObjectBody),
    /// `If-None-Match` matched; the ETag when known.
    NotModified(Option<String>),
    NotFound,
    RangeNotSatisfiable,
}

impl Storage {
    /// Build the backend. S3 credentials are S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY when
    /// set, else the standard AWS chain; nothing is
    /// contacted here, so a misconfigured S3 shows up in `/health/deep`, not as a crash.
    pub async fn from_config(backend: &StorageBackend, root: &Path) -> Storage {
        match backend {
            StorageBackend::Local => {
                // Best effort: a failure here is reported by /health/deep.
                if let Err(e) = tokio::fs::create_dir_all(root).await {
                    log::warn!("cannot create storage directory {}: {e}", root.display());
                }
                Storage::Local {
                    root: root.to_path_buf(),
                }
            }
            StorageBackend::S3(s3) => Storage::S3(S3Storage::new(s3).await),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Storage::Local { .. } => "local",
            Storage::S3(_) => "s3",
        }
    }

    /// Probe the backend for `/health/deep`.
    pub async fn check(&self) -> Result<(), StorageError> {
        match self {
            Storage::Local { root } => match tokio::fs::metadata(root).await {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(StorageError::Backend(format!(
                    "{} is not a directory",
                    root.display()
                ))),
                Err(e) => Err(StorageError::Backend(format!("{}: {e}", root.display()))),
            },
            Storage::S3(s3) => s3.check().await,
        }
    }

    /// Store the file at `path` under `key` (replacing any object there). Local: the
    /// parent directories are created and the file is written to a hidden temporary
    /// name, synced, then renamed, so a reader never sees a partial object. S3: one
    /// `PutObject` streamed from the file, with `content_type`.
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let key = checked_key(key)?;
        match self {
            Storage::Local { root } => put_local(root, key, path).await,
            Storage::S3(s3) => s3.put_file(key, path, content_type).await,
        }
    }

    /// Remove the object under `key`; a missing object is not an error. Local: parent
    /// directories left empty are removed too, up to (not including) the root.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let key = checked_key(key)?;
        match self {
            Storage::Local { root } => delete_local(root, key).await,
            Storage::S3(s3) => s3.delete(key).await,
        }
    }

    /// Read a small object (a playlist) whole, refusing anything over `limit` bytes.
    pub async fn read_small(&self, key: &str, limit: usize) -> Result<Vec<u8>, StorageError> {
        let too_big = || StorageError::TooLarge {
            key: key.to_string(),
            limit,
        };
        match self {
            Storage::Local { root } => {
                let path = root.join(key);
                let meta = match tokio::fs::metadata(&path).await {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(StorageError::NotFound);
                    }
                    Err(e) => return Err(StorageError::io(&path, e)),
                };
                if meta.len() > limit as u64 {
                    return Err(too_big());
                }
                tokio::fs::read(&path)
                    .await
                    .map_err(|e| StorageError::io(&path, e))
            }
            Storage::S3(s3) => {
                let o = match s3
                    .client
                    .get_object()
                    .bucket(&s3.bucket)
                    .key(key)
                    .send()
                    .await
                {
                    Ok(o) => o,
                    Err(e) if status_of(&e) == Some(404) => return Err(StorageError::NotFound),
                    Err(e) => return Err(sdk_error(key, &e)),
                };
                if o.content_length().unwrap_or(0) > i64::try_from(limit).unwrap_or(i64::MAX) {
                    return Err(too_big());
                }
                let mut body = o.body;
                let mut buf = Vec::new();
                while let Some(chunk) = body
                    .try_next()
                    .await
                    .map_err(|e| StorageError::Backend(format!("{key}: {e}")))?
                {
                    buf.extend_from_slice(&chunk);
                    if buf.len() > limit {
                        return Err(too_big());
                    }
                }
                Ok(buf)
            }
        }
    }

    /// Whether an object exists under `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        let key = checked_key(key)?;
        match self {
            Storage::Local { root } => {
                let path = root.join(key);
                match tokio::fs::metadata(&path).await {
                    Ok(m) => Ok(m.is_file()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(StorageError::io(&path, e)),
                }
            }
            Storage::S3(s3) => s3.exists(key).await,
        }
    }
}

/// Keys are relative, `/`-separated, every segment a plain name: nothing written can
/// escape the storage root (or land where the HLS origin would refuse to serve it).
/// Weak comparison (RFC 9110 §13.1.2) of an `If-None-Match` list against an ETag.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let etag = bare(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == etag)
}

/// The HTTP status of the raw response behind an SDK error.
fn status_of<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn sdk_error<E: std::error::Error + 'static>(
    key: &str,
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StorageError {
    StorageError::Backend(format!("{key}: {}", DisplayErrorContext(e)))
}

fn checked_key(key: &str) -> Result<&str, StorageError> {
    validate_key(key).map_err(|e| StorageError::InvalidKey {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

async fn put_local(root: &Path, key: &str, source: &Path) -> Result<(), StorageError> {
    use tokio::io::AsyncWriteExt;
    let dest = root.join(key);
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Err(StorageError::InvalidKey {
            key: key.to_string(),
            reason: "no file name".into(),
        });
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| StorageError::io(dir, e))?;
    // Hidden (leading '.'), so never served even if a crash leaves it behind.
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = async {
        let mut input = tokio::fs::File::open(source)
            .await
            .map_err(|e| StorageError::io(source, e))?;
        let mut output = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| StorageError::io(&tmp, e))?;
        tokio::io::copy(&mut input, &mut output)
            .await
            .map_err(|e| StorageError::io(&tmp, e))?;
        output
            .flush()
            .await
            .map_err(|e| StorageError::io(&tmp, e))?;
        output
            .sync_all()
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

async fn delete_local(root: &Path, key: &str) -> Result<(), StorageError> {
    let path = root.join(key);
    match tokio::fs::remove_file(&path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StorageError::io(&path, e)),
    }
    // Prune directories this left empty; remove_dir refuses non-empty ones, which ends
    // the walk (another object still lives there).
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || tokio::fs::remove_dir(d).await.is_err() {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// Explicit S3 timeouts, so a dead or stalled endpoint costs a bounded time instead of
/// the SDK's defaults (no operation timeout at all): the whole operation, retries
/// included, within `operation` (until the response head); each attempt within half of
/// it; connecting within 2 s (or the attempt bound, if shorter); and, for the response
/// head, no more than an attempt's bound between two reads.
pub fn timeouts(operation: Duration) -> aws_sdk_s3::config::timeout::TimeoutConfig {
    let attempt = operation / 2;
    aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .operation_timeout(operation)
        .operation_attempt_timeout(attempt)
        .connect_timeout(attempt.min(Duration::from_secs(2)))
        .read_timeout(attempt)
        .build()
}

impl S3Storage {
    pub async fn new(cfg: &S3Config) -> S3Storage {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(cfg.region.clone()));
        if let Some(endpoint) = &cfg.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        if let Some(c) = &cfg.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.expose().clone(),
                None,
                None,
                "veza-config",
            ));
        }
        let shared = loader.load().await;
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(cfg.force_path_style)
            .timeout_config(timeouts(cfg.operation_timeout))
            // The timeouts end when a response's head arrives; a body that stops
            // arriving (the server stalls mid-object) is ended by the SDK's stalled-stream
            // protection, after an attempt's bound without a byte (a slow *reader* does
            // not count: the SDK tells an unpolled body from a stalled one).
            .stalled_stream_protection(
                aws_sdk_s3::config::StalledStreamProtectionConfig::enabled()
                    .grace_period(cfg.operation_timeout / 2)
                    .build(),
            )
            .build();
        S3Storage {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: cfg.bucket.clone(),
            attempt_timeout: cfg.operation_timeout / 2,
        }
    }

    /// `HeadObject` (`head`) or `GetObject` of `key`, passing the client's `Range` and
    /// `If-None-Match` through. The body is streamed, never buffered whole.
    pub async fn fetch(
        &self,
        key: &str,
        head: bool,
        range: Option<String>,
        if_none_match: Option<String>,
    ) -> Result<Fetched, StorageError> {
        let answer = |status: Option<u16>, detail: String| match status {
            Some(304) => Ok(Fetched::NotModified(None)),
            Some(404) => Ok(Fetched::NotFound),
            Some(416) => Ok(Fetched::RangeNotSatisfiable),
            _ => Err(StorageError::Backend(format!("{key}: {detail}"))),
        };
        let date = |d: Option<&aws_sdk_s3::primitives::DateTime>| {
            d.and_then(|d| d.fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate).ok())
        };
        let length = |l: Option<i64>| l.unwrap_or(0).max(0).unsigned_abs();
        if head {
            let out = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .set_if_none_match(if_none_match)
                .send()
                .await;
            return match out {
                Ok(o) => Ok(Fetched::Head(ObjectMeta {
                    etag: o.e_tag().map(str::to_string),
                    last_modified: date(o.last_modified()),
                    content_length: length(o.content_length()),
                    content_range: None,
                })),
                Err(e) => answer(status_of(&e), DisplayErrorContext(&e).to_string()),
            };
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .set_if_none_match(if_none_match.clone())
            .send()
            .await;
        match out {
            Ok(o) => {
                // Not every S3-compatible server honours If-None-Match: check it here too.
                if let (Some(inm), Some(etag)) = (&if_none_match, o.e_tag())
                    && etag_matches(inm, etag)
                {
                    return Ok(Fetched::NotModified(Some(etag.to_string())));
                }
                let meta = ObjectMeta {
                    etag: o.e_tag().map(str::to_string),
                    last_modified: date(o.last_modified()),
                    content_length: length(o.content_length()),
                    content_range: o.content_range().map(str::to_string),
                };
                let body = futures_util::stream::unfold(o.body, |mut body| async move {
                    match body.next().await {
                        Some(Ok(bytes)) => Some((Ok(bytes), body)),
                        Some(Err(e)) => Some((Err(std::io::Error::other(e)), body)),
                        None => None,
                    }
                });
                Ok(Fetched::Object(meta, Box::pin(body)))
            }
            Err(e) => answer(status_of(&e), DisplayErrorContext(&e).to_string()),
        }
    }

    async fn check(&self) -> Result<(), StorageError> {
        let probe = self.client.head_bucket().bucket(&self.bucket).send();
        match tokio::time::timeout(Duration::from_secs(3), probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StorageError::Backend(format!(
                "bucket {}: {}",
                self.bucket,
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ))),
            Err(_) => Err(StorageError::Backend("S3 probe timed out".into())),
        }
    }

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
            .await
            .map_err(|e| StorageError::Backend(format!("reading {}: {e}", path.display())))?;
        // An upload's length has no bound (`veza import` bounds each file itself): only
        // connecting and stalls are bounded here, not the whole operation.
        let unbounded = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .disable_operation_timeout()
            .disable_operation_attempt_timeout()
            .connect_timeout(self.attempt_timeout.min(Duration::from_secs(2)))
            .read_timeout(self.attempt_timeout)
            .build();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .customize()
            .config_override(aws_sdk_s3::config::Builder::default().timeout_config(unbounded))
            .send()
            .await
            .map_err(|e| {
                StorageError::Backend(format!(
                    "put {key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
            })?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        // S3 answers 204 for a missing key too.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                StorageError::Backend(format!(
                    "delete {key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
            })?;
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(StorageError::Backend(format!(
                "head {key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ))),
        }
    }

    /// A presigned GET URL for `key`, valid for `ttl`; with `filename`, the response
    /// carries `Content-Disposition: attachment` (response-content-disposition).
    pub async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        content_disposition: Option<&str>,
    ) -> Result<String, StorageError> {
        let cfg =
            PresigningConfig::expires_in(ttl).map_err(|e| StorageError::Backend(e.to_string()))?;
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(cd) = content_disposition {
            req = req.response_content_disposition(cd);
        }
        let presigned = req.presigned(cfg).await.map_err(|e| {
            StorageError::Backend(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
        })?;
        Ok(presigned.uri().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_put_exists_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("media");
        std::fs::create_dir(&root).unwrap();
        let storage = Storage::Local { root: root.clone() };
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"hello").unwrap();

        assert!(!storage.exists("hls/i-ab/seg-1.ts").await.unwrap());
        storage
            .put_file("hls/i-ab/seg-1.ts", &src, "video/mp2t")
            .await
            .unwrap();
        storage
            .put_file("hls/i-ab/seg-2.ts", &src, "video/mp2t")
            .await
            .unwrap();
        assert!(storage.exists("hls/i-ab/seg-1.ts").await.unwrap());
        assert_eq!(
            std::fs::read(root.join("hls/i-ab/seg-1.ts")).unwrap(),
            b"hello"
        );
        // No temporary file is left next to the objects.
        let names: Vec<_> = std::fs::read_dir(root.join("hls/i-ab"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");

        storage.delete("hls/i-ab/seg-1.ts").await.unwrap();
        assert!(root.join("hls/i-ab").is_dir(), "still holds seg-2");
        storage.delete("hls/i-ab/seg-2.ts").await.unwrap();
        // Emptied directories are pruned, the root stays.
        assert!(!root.join("hls").exists());
        assert!(root.is_dir());
        // Deleting a missing object is fine.
        storage.delete("hls/i-ab/seg-2.ts").await.unwrap();
    }

    #[tokio::test]
    async fn keys_that_escape_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::Local {
            root: dir.path().to_path_buf(),
        };
        for key in ["../x.ts", "/etc/passwd", "hls//x.ts", "hls/.hidden"] {
            assert!(
                matches!(
                    storage.put_file(key, dir.path(), "x").await,
                    Err(StorageError::InvalidKey { .. })
                ),
                "{key}"
            );
            assert!(storage.delete(key).await.is_err(), "{key}");
        }
    }
}
