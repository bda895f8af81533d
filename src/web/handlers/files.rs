//! Serving stored objects over HTTP — the shared part of the HLS origin and the
//! `/media` route. Local files go through actix-files (`ETag`, `Last-Modified`,
//! `If-None-Match` → 304, `Range` → 206/416, `HEAD`), streamed from disk. S3 objects are
//! streamed from `GetObject` with the client's `Range` and `If-None-Match` passed
//! through, so S3 answers 206/304/416 itself; nothing is buffered whole.

use actix_files::NamedFile;
use actix_web::body::SizedStream;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};

use crate::storage::{S3Storage, Storage};
use crate::web::error::ApiError;

/// How a stored object should be presented.
pub struct Presentation<'a> {
    pub content_type: &'a str,
    pub cache_control: &'a str,
    /// `Some` → `Content-Disposition: attachment; …`.
    pub disposition: Option<String>,
}

pub async fn serve(
    req: &HttpRequest,
    storage: &Storage,
    key: &str,
    how: Presentation<'_>,
) -> Result<HttpResponse, ApiError> {
    match storage {
        Storage::Local { root } => serve_local(req, &root.join(key), how).await,
        Storage::S3(s3) => serve_s3(req, s3, key, how).await,
    }
}

/// Files below this size are read synchronously on the worker thread (actix-files'
/// `read_mode_threshold`) instead of through the blocking-thread pool: HLS segments
/// (60 KiB to 1 MiB) are hot in the page cache, where a read costs less than the thread
/// hops of an async read; nginx reads them synchronously too. Measured with
/// `scripts/bench.sh hls`: 64 KiB segments 0.34–0.41 of nginx's rate with async reads,
/// 0.69–0.72 with sync; 1 MiB segments 0.35–0.41 → 0.52–0.63 (docs/PERFORMANCE.md).
/// Larger files (originals, downloads) stay async, so a cold disk cannot stall a
/// worker for long.
const SYNC_READ_MAX: u64 = 2 * 1024 * 1024;

async fn serve_local(
    req: &HttpRequest,
    path: &std::path::Path,
    how: Presentation<'_>,
) -> Result<HttpResponse, ApiError> {
    let file = match NamedFile::open_async(path).await {
        Ok(f) => f.read_mode_threshold(SYNC_READ_MAX),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound("no such file".into()));
        }
        Err(e) => return Err(ApiError::Storage(format!("{}: {e}", path.display()))),
    };
    // actix-files answers a suffix range (`bytes=-N`) of an empty file with
    // `offset + length - 1` = 0 + 0 - 1: a panic with overflow checks, a bogus
    // Content-Range otherwise (found by fuzzing). No range of an empty file is
    // satisfiable: 416, as actix-files answers `bytes=0-` there.
    if file.metadata().len() == 0 && req.headers().contains_key(header::RANGE) {
        return Ok(HttpResponse::RangeNotSatisfiable()
            .insert_header((header::CONTENT_RANGE, "bytes */0"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish());
    }
    let mime: mime::Mime = how
        .content_type
        .parse()
        .map_err(|_| ApiError::Internal(format!("bad content type {}", how.content_type)))?;
    let mut res = file
        .set_content_type(mime)
        .disable_content_disposition()
        .use_etag(true)
        .use_last_modified(true)
        .into_response(req);
    let headers = res.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(how.cache_control) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    if let Some(d) = how.disposition
        && let Ok(v) = header::HeaderValue::from_str(&d)
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

fn status_of<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> Option<u16>
where
    R: HasStatus,
{
    e.raw_response().map(HasStatus::status_code)
}

/// The HTTP status of the raw response behind an SDK error.
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn serve_s3(
    req: &HttpRequest,
    s3: &S3Storage,
    key: &str,
    how: Presentation<'_>,
) -> Result<HttpResponse, ApiError> {
    let if_none_match = header_str(req, header::IF_NONE_MATCH);
    if req.method() == Method::HEAD {
        let out = s3
            .client
            .head_object()
            .bucket(&s3.bucket)
            .key(key)
            .set_if_none_match(if_none_match)
            .send()
            .await;
        return match out {
            Ok(o) => {
                let mut b = HttpResponse::Ok();
                common_headers(&mut b, &how, o.e_tag(), o.last_modified());
                // A sized empty body: actix writes its length as Content-Length and,
                // for HEAD, sends no bytes.
                let len = o.content_length().unwrap_or(0).max(0) as u64;
                let empty = futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
                Ok(b.body(SizedStream::new(len, Box::pin(empty))))
            }
            Err(e) => s3_error(
                status_of(&e),
                &how,
                key,
                &aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            ),
        };
    }
    let out = s3
        .client
        .get_object()
        .bucket(&s3.bucket)
        .key(key)
        .set_range(header_str(req, header::RANGE))
        .set_if_none_match(if_none_match)
        .send()
        .await;
    match out {
        Ok(o) => {
            // Not every S3-compatible server honours If-None-Match: check it here too.
            if let (Some(inm), Some(etag)) = (header_str(req, header::IF_NONE_MATCH), o.e_tag())
                && etag_matches(&inm, etag)
            {
                return Ok(HttpResponse::NotModified()
                    .insert_header((header::ETAG, etag))
                    .insert_header((header::CACHE_CONTROL, how.cache_control))
                    .finish());
            }
            let status = if o.content_range().is_some() {
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            };
            let mut b = HttpResponse::build(status);
            common_headers(&mut b, &how, o.e_tag(), o.last_modified());
            if let Some(range) = o.content_range() {
                b.insert_header((header::CONTENT_RANGE, range.to_string()));
            }
            let len = o.content_length().unwrap_or(0).max(0) as u64;
            let body = futures_util::stream::unfold(o.body, |mut body| async move {
                match body.next().await {
                    Some(Ok(bytes)) => Some((Ok::<_, std::io::Error>(bytes), body)),
                    Some(Err(e)) => Some((Err(std::io::Error::other(e)), body)),
                    None => None,
                }
            });
            Ok(b.body(SizedStream::new(len, Box::pin(body))))
        }
        Err(e) => s3_error(
            status_of(&e),
            &how,
            key,
            &aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
        ),
    }
}

/// Weak comparison (RFC 9110 §13.1.2) of an `If-None-Match` list against an ETag.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let etag = bare(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == etag)
}

fn common_headers(
    b: &mut actix_web::HttpResponseBuilder,
    how: &Presentation<'_>,
    etag: Option<&str>,
    last_modified: Option<&aws_sdk_s3::primitives::DateTime>,
) {
    b.insert_header((header::CONTENT_TYPE, how.content_type))
        .insert_header((header::CACHE_CONTROL, how.cache_control))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    if let Some(etag) = etag {
        b.insert_header((header::ETAG, etag));
    }
    if let Some(lm) = last_modified
        && let Ok(s) = lm.fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate)
    {
        b.insert_header((header::LAST_MODIFIED, s));
    }
    if let Some(d) = &how.disposition {
        b.insert_header((header::CONTENT_DISPOSITION, d.as_str()));
    }
}

fn s3_error(
    status: Option<u16>,
    how: &Presentation<'_>,
    key: &str,
    detail: &str,
) -> Result<HttpResponse, ApiError> {
    match status {
        Some(304) => Ok(HttpResponse::NotModified()
            .insert_header((header::CACHE_CONTROL, how.cache_control))
            .finish()),
        Some(404) => Err(ApiError::NotFound("no such file".into())),
        Some(416) => Ok(HttpResponse::RangeNotSatisfiable()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()),
        _ => Err(ApiError::Storage(format!("{key}: {detail}"))),
    }
}

/// Read a small object (a playlist) whole, refusing anything over `limit` bytes.
pub async fn read_small(storage: &Storage, key: &str, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_big = || ApiError::Storage(format!("{key}: larger than {limit} bytes"));
    match storage {
        Storage::Local { root } => {
            let path = root.join(key);
            let meta = match tokio::fs::metadata(&path).await {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ApiError::NotFound("no such file".into()));
                }
                Err(e) => return Err(ApiError::Storage(format!("{}: {e}", path.display()))),
            };
            if meta.len() > limit as u64 {
                return Err(too_big());
            }
            tokio::fs::read(&path)
                .await
                .map_err(|e| ApiError::Storage(format!("{}: {e}", path.display())))
        }
        Storage::S3(s3) => {
            let out = s3
                .client
                .get_object()
                .bucket(&s3.bucket)
                .key(key)
                .send()
                .await;
            let o = match out {
                Ok(o) => o,
                Err(e) if status_of(&e) == Some(404) => {
                    return Err(ApiError::NotFound("no such file".into()));
                }
                Err(e) => {
                    return Err(ApiError::Storage(format!(
                        "{key}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    )));
                }
            };
            if o.content_length().unwrap_or(0) > limit as i64 {
                return Err(too_big());
            }
            let mut body = o.body;
            let mut buf = Vec::new();
            while let Some(chunk) = body
                .try_next()
                .await
                .map_err(|e| ApiError::Storage(format!("{key}: {e}")))?
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
