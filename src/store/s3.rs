//! The S3-compatible backend (AWS, MinIO, R2…): objects stream from `GetObject` with
//! the range and conditions the HTTP layer chose (see `web::handlers::files`), nothing
//! is buffered whole, and presigned URLs are computed locally (no network call).

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;

use super::{Fetched, ObjectMeta, RemoteGet, StorageError};
use crate::config::S3Config;

#[derive(Clone, Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Half of `S3_OPERATION_TIMEOUT`: one attempt's bound.
    attempt_timeout: Duration,
}

/// `bytes first-last/total` (what S3 answers a range with).
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, total) = (
        first.parse::<u64>().ok()?,
        last.parse::<u64>().ok()?,
        total.parse::<u64>().ok()?,
    );
    (first <= last && last < total).then_some((first, last, total))
}

fn length(l: Option<i64>) -> u64 {
    l.unwrap_or(0).max(0).unsigned_abs()
}

fn system_time(d: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<std::time::SystemTime> {
    d.and_then(|d| std::time::SystemTime::try_from(*d).ok())
}

/// The HTTP status of the raw response behind an SDK error.
fn status_of<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// A failed S3 call as a storage error naming what was attempted (`put hls/3/x.ts`).
fn sdk_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: impl std::fmt::Display,
    e: &aws_sdk_s3::error::SdkError<E, R>,
) -> StorageError {
    StorageError::Backend(format!("{what}: {}", DisplayErrorContext(e)))
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

impl S3Store {
    pub(super) async fn new(cfg: &S3Config) -> S3Store {
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
        S3Store {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: cfg.bucket.clone(),
            attempt_timeout: cfg.operation_timeout / 2,
        }
    }

    /// `HeadObject` of `key`: its metadata.
    pub(super) async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(ObjectMeta {
                etag: o.e_tag().map(str::to_string),
                last_modified: system_time(o.last_modified()),
                length: length(o.content_length()),
                range: None,
            }),
            Err(e) if status_of(&e) == Some(404) => Err(StorageError::NotFound),
            Err(e) => Err(sdk_error(format_args!("head {key}"), &e)),
        }
    }

    /// `GetObject` of `key` with the range and conditions of `get`. The body is streamed,
    /// never buffered whole.
    pub(super) async fn get(&self, key: &str, get: &RemoteGet) -> Result<Fetched, StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(get.range.clone())
            .set_if_match(get.if_match.clone())
            .set_if_none_match(get.if_none_match.clone())
            .send()
            .await;
        let o = match out {
            Ok(o) => o,
            Err(e) => {
                return match status_of(&e) {
                    // A 304 must repeat the ETag: S3 sends it in the error's headers.
                    Some(304) => Ok(Fetched::NotModified(
                        e.raw_response()
                            .and_then(|r| r.headers().get("etag"))
                            .map(str::to_string),
                    )),
                    Some(404) => Err(StorageError::NotFound),
                    Some(412) => Ok(Fetched::PreconditionFailed),
                    Some(416) => Ok(Fetched::RangeNotSatisfiable),
                    _ => Err(sdk_error(format_args!("get {key}"), &e)),
                };
            }
        };
        let sent = length(o.content_length());
        let (length, range) = match o.content_range() {
            None => (sent, None),
            Some(cr) => match parse_content_range(cr) {
                Some((first, last, total)) if last - first + 1 == sent => {
                    (total, Some((first, last)))
                }
                _ => {
                    return Err(StorageError::Backend(format!(
                        "{key}: Content-Range {cr:?} for {sent} bytes"
                    )));
                }
            },
        };
        let meta = ObjectMeta {
            etag: o.e_tag().map(str::to_string),
            last_modified: system_time(o.last_modified()),
            length,
            range,
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

    pub(super) async fn check(&self) -> Result<(), StorageError> {
        let probe = self.client.head_bucket().bucket(&self.bucket).send();
        match tokio::time::timeout(Duration::from_secs(3), probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(sdk_error(format_args!("bucket {}", self.bucket), &e)),
            Err(_) => Err(StorageError::Backend("S3 probe timed out".into())),
        }
    }

    pub(super) async fn put_file(
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
            .map_err(|e| sdk_error(format_args!("put {key}"), &e))?;
        Ok(())
    }

    pub(super) async fn remove(&self, key: &str) -> Result<(), StorageError> {
        // S3 answers 204 for a missing key too.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(format_args!("delete {key}"), &e))?;
        Ok(())
    }

    pub(super) async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self.head(key).await {
            Ok(meta) => Ok(Some(meta.length)),
            Err(StorageError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn read_small(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Vec<u8>, StorageError> {
        let too_big = || StorageError::TooLarge {
            key: key.to_string(),
            limit,
        };
        let o = match self
            .client
            .get_object()
            .bucket(&self.bucket)
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

    pub(super) async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_error(format_args!("put {key}"), &e))?;
        Ok(())
    }

    /// The names directly under `dir/` (one page of up to 1 000 keys per request).
    pub(super) async fn list(&self, dir: &str) -> Result<Vec<String>, StorageError> {
        let prefix = format!("{dir}/");
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(format_args!("list {prefix}"), &e))?;
            for o in page.contents() {
                if let Some(name) = o.key().and_then(|k| k.strip_prefix(&prefix)) {
                    names.push(name.to_string());
                }
            }
        }
        Ok(names)
    }

    /// A presigned GET URL for `key`, valid for `ttl`; with `filename`, the response
    /// carries `Content-Disposition: attachment` (response-content-disposition).
    pub(super) async fn presign_get(
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
        let presigned = req
            .presigned(cfg)
            .await
            .map_err(|e| StorageError::Backend(DisplayErrorContext(&e).to_string()))?;
        Ok(presigned.uri().to_string())
    }
}
