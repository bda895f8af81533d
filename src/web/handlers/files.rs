//! Serving what the delivery service answers for `/media` and the HLS origin. Local
//! files go through actix-files (`ETag`, `Last-Modified`, `If-None-Match` → 304, `Range`
//! → 206/416, `HEAD`), streamed from disk. Remote objects were fetched with the client's
//! `Range` and `If-None-Match` passed through ([`ReadRequest`]), so the backend answered
//! 206/304/416 itself; nothing is buffered whole.

use actix_files::NamedFile;
use actix_web::body::SizedStream;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};

use crate::delivery::{MediaAnswer, Presentation};
use crate::store::{Fetched, ObjectMeta, Opened, ReadRequest};
use crate::web::error::ApiError;

/// What the client asks of the object: its method, `Range` and `If-None-Match`.
pub fn read_request(req: &HttpRequest) -> ReadRequest {
    ReadRequest {
        head: req.method() == Method::HEAD,
        range: header_str(req, header::RANGE),
        if_none_match: header_str(req, header::IF_NONE_MATCH),
    }
}

/// The HTTP response for a delivery answer.
pub fn serve(req: &HttpRequest, answer: MediaAnswer) -> Result<HttpResponse, ApiError> {
    match answer {
        MediaAnswer::Object(Opened::File { file, path }, how) => {
            serve_local(req, file, &path, &how)
        }
        MediaAnswer::Object(Opened::Remote(fetched), how) => serve_remote(fetched, &how),
        MediaAnswer::Playlist { body, presentation } => Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, presentation.content_type))
            .insert_header((header::CACHE_CONTROL, presentation.cache_control))
            .body(body)),
        MediaAnswer::Redirect(url) => Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, url))
            .insert_header((header::CACHE_CONTROL, "private, no-store"))
            .finish()),
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

fn serve_local(
    req: &HttpRequest,
    file: std::fs::File,
    path: &std::path::Path,
    how: &Presentation,
) -> Result<HttpResponse, ApiError> {
    let file = match NamedFile::from_file(file, path) {
        Ok(f) => f.read_mode_threshold(SYNC_READ_MAX),
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
    if let Ok(v) = header::HeaderValue::from_str(&how.cache_control) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    if let Some(d) = &how.disposition
        && let Ok(v) = header::HeaderValue::from_str(d)
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

fn serve_remote(fetched: Fetched, how: &Presentation) -> Result<HttpResponse, ApiError> {
    Ok(match fetched {
        // A sized empty body: actix writes its length as Content-Length and, for HEAD,
        // sends no bytes.
        Fetched::Head(meta) => {
            let empty = futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
            headers(HttpResponse::Ok(), how, &meta)
                .body(SizedStream::new(meta.content_length, Box::pin(empty)))
        }
        Fetched::Object(meta, body) => {
            let status = if meta.content_range.is_some() {
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            };
            headers(HttpResponse::build(status), how, &meta)
                .body(SizedStream::new(meta.content_length, body))
        }
        Fetched::NotModified(etag) => {
            let mut b = HttpResponse::NotModified();
            if let Some(etag) = etag {
                b.insert_header((header::ETAG, etag));
            }
            b.insert_header((header::CACHE_CONTROL, how.cache_control.as_str()))
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
    how: &Presentation,
    meta: &ObjectMeta,
) -> actix_web::HttpResponseBuilder {
    b.insert_header((header::CONTENT_TYPE, how.content_type))
        .insert_header((header::CACHE_CONTROL, how.cache_control.as_str()))
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
