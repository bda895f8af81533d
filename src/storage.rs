//! Where media lives: the local directory (the embedded default) or an S3-compatible
//! bucket (AWS, MinIO, R2…). The HLS origin streams from either without holding a
//! whole object in memory; S3 presigned URLs are computed locally (no network call).

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;

use crate::config::{S3Config, StorageBackend};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("storage error: {0}")]
    Backend(String),
}

/// The configured storage backend.
#[derive(Clone, Debug)]
pub enum Storage {
    Local { root: PathBuf },
    S3(S3Storage),
}

#[derive(Clone, Debug)]
pub struct S3Storage {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
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
            .build();
        S3Storage {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: cfg.bucket.clone(),
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
