//! Serving stored objects over HTTP — the shared part of the HLS origin and the
//! `/media` route. Local files go through actix-files (`ETag`, `Last-Modified`,
//! `If-None-Match` → 304, `Range` → 206/416, `HEAD`), streamed from disk. S3 objects are
//! streamed from `GetObject` with the client's `Range` and `If-None-Match` passed
//! through, so S3 answers 206/304/416 itself; nothing is buffered whole.

use actix_files::NamedFile;
use actix_web::body::SizedStream;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};

use crate::storage::{Fetched, ObjectMeta, S3Storage, Storage};
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
    let fetched = s3
        .fetch(
            key,
            req.method() == Method::HEAD,
            header_str(req, header::RANGE),
            header_str(req, header::IF_NONE_MATCH),
        )
        .await?;
    Ok(match fetched {
        // A sized empty body: actix writes its length as Content-Length and, for HEAD,
        // sends no bytes.
        Fetched::Head(meta) => {
            let empty = futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
            headers(HttpResponse::Ok(), &how, &meta)
                .body(SizedStream::new(meta.content_length, Box::pin(empty)))
        }
        Fetched::Object(meta, body) => {
            let status = if meta.content_range.is_some() {
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            };
            headers(HttpResponse::build(status), &how, &meta)
                .body(SizedStream::new(meta.content_length, body))
        }
        Fetched::NotModified(etag) => {
            let mut b = HttpResponse::NotModified();
            if let Some(etag) = etag {
                b.insert_header((header::ETAG, etag));
            }
            b.insert_header((header::CACHE_CONTROL, how.cache_control))
                .finish()
        }
        Fetched::NotFound => return Err(ApiError::NotFound("no such file".into())),
        Fetched::RangeNotSatisfiable => HttpResponse::RangeNotSatisfiable()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
    })
}

fn headers(
    mut b: actix_web::HttpResponseBuilder,
    how: &Presentation<'_>,
    meta: &ObjectMeta,
) -> actix_web::HttpResponseBuilder {
    b.insert_header((header::CONTENT_TYPE, how.content_type))
        .insert_header((header::CACHE_CONTROL, how.cache_control))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    if let Some(etag) = &meta.etag {
        b.insert_header((header::ETAG, etag.as_str()));
    }
    if let Some(lm) = &meta.last_modified {
        b.insert_header((header::LAST_MODIFIED, lm.as_str()));
    }
    if let Some(range) = &meta.content_range {
        b.insert_header((header::CONTENT_RANGE, range.as_str()));
    }
    if let Some(d) = &how.disposition {
        b.insert_header((header::CONTENT_DISPOSITION, d.as_str()));
    }
    b
}
