//! Serving what the delivery service answers for `/media` and the HLS origin, with the
//! HTTP semantics of RFC 9110 decided in one place ([`crate::web::rfc9110`]) for both
//! storage backends:
//!
//! - **Local files** are described by their own metadata (`fstat` of the open file):
//!   the ETag is `"{mtime seconds:x}.{mtime nanoseconds:x}-{length:x}"` (the same on
//!   every instance serving the same storage, or copies that keep modification times,
//!   and nothing about the host: no inode), `Last-Modified` the modification time. The
//!   decision is taken before a byte is read; the chosen bytes are streamed in 64 KiB
//!   chunks, never buffered whole.
//! - **S3 objects** keep S3's ETag. A plain GET, a `Range` (`a-b` or `a-`) and
//!   `If-None-Match` (a CDN's revalidation) cost one `GetObject` carrying them; the
//!   answer's metadata is then checked against the same decision (a server that
//!   ignored `If-None-Match` or the range is corrected). `If-Match`,
//!   `If-Unmodified-Since`, `If-Modified-Since` alone, `If-Range` and a suffix range
//!   (`-n`) need the validators before the bytes are chosen: `HeadObject`, decide,
//!   then `GetObject` of exactly the chosen bytes with `If-Match` on the ETag just
//!   read, so a replaced object is never spliced (it is read again, at most twice).
//!   HEAD is one `HeadObject`.
//!
//! 412 and 416 carry `Cache-Control: no-store` (an error must not be cached for the
//! object's lifetime); 304 carries the object's `Cache-Control` and ETag.

use std::io::{Read, Seek, SeekFrom};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::body::SizedStream;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;

use crate::delivery::{MediaAnswer, Presentation};
use crate::store::{Fetched, ObjectBody, ObjectMeta, Opened, RemoteGet, RemoteObject};
use crate::web::error::ApiError;
use crate::web::rfc9110::{
    ByteRange, Conditions, Decision, Fields, Method, RangeSpec, Validators, unsatisfied_range,
};

/// The HTTP response for a delivery answer.
pub async fn serve(req: &HttpRequest, answer: MediaAnswer) -> Result<HttpResponse, ApiError> {
    match answer {
        MediaAnswer::Object(
            Opened::File {
                file,
                path: _,
                metadata,
            },
            how,
        ) => Ok(serve_local(req, file, &metadata, &how)),
        MediaAnswer::Object(Opened::Remote(object), how) => serve_remote(req, &object, &how).await,
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

/// The request's conditions and method (the routes serving objects take GET and HEAD).
fn conditions(req: &HttpRequest) -> (Conditions, Method) {
    let h = req.headers();
    let lines = |name: header::HeaderName| h.get_all(name).map(|v| v.as_bytes()).collect();
    let fields = Fields {
        if_match: lines(header::IF_MATCH),
        if_none_match: lines(header::IF_NONE_MATCH),
        if_modified_since: lines(header::IF_MODIFIED_SINCE),
        if_unmodified_since: lines(header::IF_UNMODIFIED_SINCE),
        if_range: lines(header::IF_RANGE),
        range: lines(header::RANGE),
    };
    let method = if req.method() == actix_web::http::Method::HEAD {
        Method::Head
    } else {
        Method::Get
    };
    (Conditions::parse(&fields), method)
}

/// Status and headers of the answer `decision` for the object `v`; the caller adds the
/// body (the selected bytes for 200 and 206, nothing otherwise).
fn response_head(
    decision: Decision,
    v: &Validators<'_>,
    how: &Presentation,
) -> HttpResponseBuilder {
    let no_store = |status| {
        let mut b = HttpResponse::build(status);
        b.insert_header((header::CACHE_CONTROL, "no-store"));
        b
    };
    match decision {
        Decision::Full => representation(HttpResponse::Ok(), v, how),
        Decision::Partial(bytes) => {
            let mut b = representation(HttpResponse::PartialContent(), v, how);
            b.insert_header((header::CONTENT_RANGE, bytes.content_range(v.length)));
            b
        }
        Decision::NotModified => {
            let mut b = HttpResponse::NotModified();
            b.insert_header((header::CACHE_CONTROL, how.cache_control.as_str()));
            match (v.etag, v.last_modified) {
                (Some(etag), _) => b.insert_header((header::ETAG, etag)),
                (None, Some(t)) => b.insert_header((header::LAST_MODIFIED, http_date(t))),
                (None, None) => &mut b,
            };
            b
        }
        Decision::PreconditionFailed => no_store(StatusCode::PRECONDITION_FAILED),
        Decision::Unsatisfiable => {
            let mut b = no_store(StatusCode::RANGE_NOT_SATISFIABLE);
            b.insert_header((header::CONTENT_RANGE, unsatisfied_range(v.length)));
            b
        }
    }
}

/// The headers of a 200 or 206: what the object is and how it may be cached.
fn representation(
    mut b: HttpResponseBuilder,
    v: &Validators<'_>,
    how: &Presentation,
) -> HttpResponseBuilder {
    b.insert_header((header::CONTENT_TYPE, how.content_type))
        .insert_header((header::CACHE_CONTROL, how.cache_control.as_str()))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    if let Some(etag) = v.etag {
        b.insert_header((header::ETAG, etag));
    }
    if let Some(t) = v.last_modified {
        b.insert_header((header::LAST_MODIFIED, http_date(t)));
    }
    if let Some(d) = &how.disposition {
        b.insert_header((header::CONTENT_DISPOSITION, d.as_str()));
    }
    b
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// How many bytes a 200 or 206 sends, and from where; `None` for the other answers.
fn selected(decision: Decision, length: u64) -> Option<ByteRange> {
    match decision {
        Decision::Full if length > 0 => Some(ByteRange {
            first: 0,
            last: length - 1,
        }),
        Decision::Partial(bytes) => Some(bytes),
        _ => None,
    }
}

/// The body of a HEAD answer: the length the GET would send, no bytes (actix writes
/// the length as `Content-Length` and sends nothing for HEAD).
fn no_bytes(length: u64) -> SizedStream<ObjectBody> {
    SizedStream::new(length, Box::pin(futures_util::stream::empty()))
}

/// A local file's strong ETag: modification time (seconds and nanoseconds) and length,
/// in hex. Host-independent (no inode, no device): instances sharing the storage, or
/// holding copies that keep modification times (`cp -a`, `rsync -a`), agree.
fn local_etag(metadata: &std::fs::Metadata) -> Option<String> {
    let since = metadata.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some(format!(
        "\"{:x}.{:x}-{:x}\"",
        since.as_secs(),
        since.subsec_nanos(),
        metadata.len()
    ))
}

fn serve_local(
    req: &HttpRequest,
    file: std::fs::File,
    metadata: &std::fs::Metadata,
    how: &Presentation,
) -> HttpResponse {
    let (conditions, method) = conditions(req);
    let etag = local_etag(metadata);
    let v = Validators {
        etag: etag.as_deref(),
        last_modified: metadata.modified().ok(),
        length: metadata.len(),
    };
    let decision = conditions.decide(&v, method);
    let mut head = response_head(decision, &v, how);
    match (decision, selected(decision, v.length)) {
        (Decision::Full | Decision::Partial(_), None) => head.body(no_bytes(0)),
        (_, None) => head.finish(),
        (_, Some(bytes)) if method == Method::Head => head.body(no_bytes(bytes.count())),
        (_, Some(bytes)) => head.body(SizedStream::new(bytes.count(), file_chunks(file, bytes))),
    }
}

/// Files whose served part is below this size are read synchronously on the worker
/// thread instead of through the blocking-thread pool: HLS segments (60 KiB to 1 MiB)
/// are hot in the page cache, where a read costs less than the thread hops of an async
/// read; nginx reads them synchronously too. Measured with `scripts/bench.sh hls`
/// (through actix-files' `read_mode_threshold`, the same split): 64 KiB segments
/// 0.34–0.41 of nginx's rate with async reads, 0.69–0.72 with sync; 1 MiB segments
/// 0.35–0.41 → 0.52–0.63 (docs/PERFORMANCE.md). Larger files (originals, downloads)
/// stay async, so a cold disk cannot stall a worker for long.
const SYNC_READ_MAX: u64 = 2 * 1024 * 1024;

/// Bytes read per chunk (actix-files' chunk size).
const CHUNK: u64 = 64 * 1024;

/// `bytes` of `file`, streamed chunk by chunk.
fn file_chunks(
    file: std::fs::File,
    bytes: ByteRange,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + 'static {
    let sync = bytes.count() < SYNC_READ_MAX;
    futures_util::stream::try_unfold(
        (file, bytes.first, bytes.count()),
        move |(file, offset, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let n = left.min(CHUNK);
            let (file, chunk) = if sync {
                let chunk = read_chunk(&file, offset, n)?;
                (file, chunk)
            } else {
                actix_web::web::block(move || read_chunk(&file, offset, n).map(|c| (file, c)))
                    .await
                    .map_err(std::io::Error::other)??
            };
            Ok(Some((chunk, (file, offset + n, left - n))))
        },
    )
}

fn read_chunk(file: &std::fs::File, offset: u64, n: u64) -> std::io::Result<Bytes> {
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    f.take(n).read_to_end(&mut buf)?;
    if (buf.len() as u64) < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file shrank while it was being sent",
        ));
    }
    Ok(Bytes::from(buf))
}

fn meta_validators(meta: &ObjectMeta) -> Validators<'_> {
    Validators {
        etag: meta.etag.as_deref(),
        last_modified: meta.last_modified,
        length: meta.length,
    }
}

async fn serve_remote(
    req: &HttpRequest,
    object: &RemoteObject,
    how: &Presentation,
) -> Result<HttpResponse, ApiError> {
    let (conditions, method) = conditions(req);
    if method == Method::Head {
        let meta = object.head().await?;
        let v = meta_validators(&meta);
        let decision = conditions.decide(&v, method);
        let mut head = response_head(decision, &v, how);
        return Ok(match selected(decision, v.length) {
            Some(bytes) => head.body(no_bytes(bytes.count())),
            None if decision == Decision::Full => head.body(no_bytes(0)),
            None => head.finish(),
        });
    }
    // A suffix range goes the validated way too, as the exact bytes: some S3-compatible
    // servers fail on a suffix longer than the object (s3s-fs answers 500).
    let suffix = matches!(conditions.range(), Some(RangeSpec::Suffix(_)));
    if !conditions.needs_validators_first() && !suffix {
        let get = RemoteGet {
            range: conditions.range().map(RangeSpec::header_value),
            if_match: None,
            if_none_match: conditions.if_none_match(),
        };
        if let Some(res) = as_fetched(&conditions, object.get(&get).await?, how) {
            return Ok(res);
        }
    }
    // Twice at most: a second failure means the object keeps changing under the reads.
    for _ in 0..2 {
        if let Some(res) = validated_read(&conditions, object, how).await? {
            return Ok(res);
        }
    }
    Err(ApiError::Storage(format!(
        "{}: the object changed during every read",
        object.key()
    )))
}

/// The answer to a `GetObject` sent with the request's own range and `If-None-Match`,
/// when its metadata agrees with the decision; `None` when the validators must be read
/// first (a 412 or 416 from the backend, or bytes other than the ones decided).
fn as_fetched(c: &Conditions, fetched: Fetched, how: &Presentation) -> Option<HttpResponse> {
    let (meta, body) = match fetched {
        Fetched::Object(meta, body) => (meta, body),
        Fetched::NotModified(etag) => {
            let v = Validators {
                etag: etag.as_deref(),
                last_modified: None,
                length: 0,
            };
            return Some(response_head(Decision::NotModified, &v, how).finish());
        }
        Fetched::PreconditionFailed | Fetched::RangeNotSatisfiable => return None,
    };
    let v = meta_validators(&meta);
    let decision = c.decide(&v, Method::Get);
    match (decision, meta.range) {
        // A backend may ignore a range: the whole object is a correct answer too.
        (Decision::Full | Decision::Partial(_), None) => {
            Some(response_head(Decision::Full, &v, how).body(SizedStream::new(v.length, body)))
        }
        (Decision::Partial(bytes), Some(got)) if got == (bytes.first, bytes.last) => {
            Some(response_head(decision, &v, how).body(SizedStream::new(bytes.count(), body)))
        }
        (Decision::NotModified | Decision::PreconditionFailed, _) => {
            Some(response_head(decision, &v, how).finish())
        }
        _ => None,
    }
}

/// `HeadObject`, the decision on its validators, then `GetObject` of exactly the chosen
/// bytes of that version (`If-Match` on its ETag, checked on the answer too: not every
/// S3-compatible server evaluates it). `None` when the object changed in between.
async fn validated_read(
    c: &Conditions,
    object: &RemoteObject,
    how: &Presentation,
) -> Result<Option<HttpResponse>, ApiError> {
    let meta = object.head().await?;
    let v = meta_validators(&meta);
    let decision = c.decide(&v, Method::Get);
    let wanted = match decision {
        Decision::Full => None,
        Decision::Partial(bytes) => Some(bytes),
        _ => return Ok(Some(response_head(decision, &v, how).finish())),
    };
    let get = RemoteGet {
        range: wanted.map(|b| RangeSpec::FromTo(b.first, b.last).header_value()),
        if_match: meta.etag.clone(),
        if_none_match: None,
    };
    let Fetched::Object(got, body) = object.get(&get).await? else {
        return Ok(None);
    };
    if got.etag != meta.etag || got.length != meta.length {
        return Ok(None);
    }
    Ok(match (wanted, got.range) {
        (Some(bytes), Some(range)) if range == (bytes.first, bytes.last) => {
            Some(response_head(decision, &v, how).body(SizedStream::new(bytes.count(), body)))
        }
        (_, None) => {
            Some(response_head(Decision::Full, &v, how).body(SizedStream::new(v.length, body)))
        }
        _ => None,
    })
}
