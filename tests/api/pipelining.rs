//! HTTP/1.1 pipelining (RFC 9112, section 9.3): requests a client writes back to back on
//! one connection are answered in order, each response framed as it is when the request
//! comes alone: a HEAD response without a body, a GET response with exactly its
//! `Content-Length` bytes, `Connection: close` only on the answer to the request that
//! asked for it. actix-http 3.20 framed each response by the last request it had
//! decoded, not by the one answered (`docs/RELIABILITY.md`, "HTTP/1.1 pipelining").

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::postgres::Backend;
use crate::delivery::media_root;
use crate::helpers::{Options, spawn_app};

/// Bounds each read; a correctly framed exchange never waits on it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const ROUNDS: usize = 30;

#[derive(Debug, Clone)]
struct Request {
    method: &'static str,
    target: String,
    range: Option<&'static str>,
}

impl Request {
    fn new(method: &'static str, target: &str) -> Request {
        Request {
            method,
            target: target.to_string(),
            range: None,
        }
    }

    fn bytes(&self, host: &str, close: bool) -> String {
        let mut s = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\n{}: {}\r\n",
            self.method,
            self.target,
            crate::common::ORIGIN_SECRET_HEADER,
            crate::common::ORIGIN_SECRET
        );
        if let Some(range) = self.range {
            s.push_str(&format!("Range: {range}\r\n"));
        }
        if close {
            s.push_str("Connection: close\r\n");
        }
        s.push_str("\r\n");
        s
    }

    fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.target)?;
        match self.range {
            Some(r) => write!(f, " ({r})"),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    /// Names lower-cased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The headers that describe the representation or the framing; `Date` and the like may
/// differ between two answers to the same request.
const COMPARED: [&str; 6] = [
    "content-length",
    "content-type",
    "content-range",
    "etag",
    "last-modified",
    "transfer-encoding",
];

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A difference from `alone`, the answer to the same request on its own connection.
    fn differs_from(&self, alone: &Response) -> Option<String> {
        if self.status != alone.status {
            return Some(format!("status {} (alone {})", self.status, alone.status));
        }
        for name in COMPARED {
            if self.header(name) != alone.header(name) {
                return Some(format!(
                    "{name}: {:?} (alone {:?})",
                    self.header(name),
                    alone.header(name)
                ));
            }
        }
        (self.body != alone.body).then(|| {
            format!(
                "body of {} bytes (alone {})",
                self.body.len(),
                alone.body.len()
            )
        })
    }
}

/// The first bytes of `bytes`, for a message.
fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned()
}

/// A strict HTTP/1.1 response reader over one connection.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Reader {
    /// Read more bytes; `false` at end of stream.
    async fn fill(&mut self) -> Result<bool, String> {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut chunk))
            .await
            .map_err(|_| format!("nothing read in {READ_TIMEOUT:?}"))?
            .map_err(|e| format!("read: {e}"))?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Everything up to (and without) `delim`, which is consumed too.
    async fn until(&mut self, delim: &[u8]) -> Result<Vec<u8>, String> {
        loop {
            if let Some(at) = self.buf.windows(delim.len()).position(|w| w == delim) {
                let out = self.buf[..at].to_vec();
                self.buf.drain(..at + delim.len());
                return Ok(out);
            }
            if !self.fill().await? {
                return Err(format!(
                    "end of stream before {:?}; buffered {:?}",
                    String::from_utf8_lossy(delim),
                    excerpt(&self.buf)
                ));
            }
        }
    }

    async fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(format!(
                    "end of stream {} bytes into a body of {n}",
                    self.buf.len()
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// One response; a response to HEAD has no body, whatever its headers say.
    async fn response(&mut self, to_head: bool) -> Result<Response, String> {
        let head = self.until(b"\r\n\r\n").await?;
        let head = String::from_utf8(head)
            .map_err(|e| format!("not a response head: {:?}", excerpt(e.as_bytes())))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("not a status line: {:?}", excerpt(status_line.as_bytes())))?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("not a header line: {line:?}"))?;
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if to_head || status == 304 || status == 204 {
            return Ok(response);
        }
        if response.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = String::from_utf8_lossy(&self.until(b"\r\n").await?).into_owned();
                let size = usize::from_str_radix(size.trim(), 16)
                    .map_err(|_| format!("not a chunk size: {size:?}"))?;
                response.body.extend(self.take(size).await?);
                if self.take(2).await? != b"\r\n" {
                    return Err("a chunk not followed by CRLF".into());
                }
                if size == 0 {
                    return Ok(response);
                }
            }
        }
        let length = response
            .header("content-length")
            .ok_or("a response without Content-Length or chunked encoding")?
            .parse()
            .map_err(|_| "a Content-Length that is not a number")?;
        response.body = self.take(length).await?;
        Ok(response)
    }

    /// What follows the last response: nothing, then the end of the stream.
    async fn end(&mut self) -> Result<(), String> {
        while self.fill().await? {}
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} bytes after the last response: {:?}",
                self.buf.len(),
                excerpt(&self.buf)
            ))
        }
    }
}

/// Write `requests` in one go on a fresh connection (the last one asking to close it) and
/// read their responses strictly: the responses and the ones whose `Connection: close`
/// is wrong, or the first framing error.
async fn exchange(
    host: &str,
    requests: &[Request],
) -> Result<(Vec<Response>, Vec<String>), String> {
    let mut stream = TcpStream::connect(host).await.map_err(|e| e.to_string())?;
    let last = requests.len() - 1;
    let wire: String = requests
        .iter()
        .enumerate()
        .map(|(i, r)| r.bytes(host, i == last))
        .collect();
    stream
        .write_all(wire.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut reader = Reader {
        stream,
        buf: Vec::new(),
    };
    let mut responses = Vec::new();
    let mut wrong_connection = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let response =
            reader
                .response(request.is_head())
                .await
                .map_err(|e| match i.checked_sub(1) {
                    Some(p) => {
                        format!("response {i} ({request}), after {p} ({}): {e}", requests[p])
                    }
                    None => format!("response 0 ({request}): {e}"),
                })?;
        let close = response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if close != (i == last) {
            wrong_connection.push(format!(
                "response {i} ({request}): Connection: close is {close}, the request asked {}",
                i == last
            ));
        }
        responses.push(response);
    }
    reader.end().await?;
    Ok((responses, wrong_connection))
}

/// GET/HEAD pairs over the HLS origin (segments and playlists) and `/health`, the order
/// within each pair and the targets rotated by `round`, one ranged GET among them, and a
/// last `GET /health` that closes the connection: 14 requests, within actix-http's 16
/// pipelined messages.
fn batch(targets: &[String], round: usize) -> Vec<Request> {
    let mut requests = Vec::new();
    for k in 0..6 {
        let target = &targets[(round + k) % targets.len()];
        let (first, second) = if (round + k).is_multiple_of(2) {
            ("GET", "HEAD")
        } else {
            ("HEAD", "GET")
        };
        requests.push(Request::new(first, target));
        requests.push(Request::new(second, target));
    }
    let mut ranged = Request::new("GET", &targets[0]);
    ranged.range = Some("bytes=0-99");
    requests.insert(round % requests.len(), ranged);
    requests.push(Request::new("GET", "/health"));
    requests
}

/// Every pipelined response is framed right and is what the same request gets alone, in
/// each of `ROUNDS` rounds. The framing is independent of the database: SQLite only.
#[actix_web::test]
async fn pipelined_head_and_get_are_each_framed_as_alone() {
    let app = spawn_app(Backend::Sqlite, Options::default().seeded()).await;
    let host = app.address.trim_start_matches("http://").to_string();
    let mut segments: Vec<String> = std::fs::read_dir(media_root(&app).join("hls/1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".ts"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    let mut targets: Vec<String> = segments[..3]
        .iter()
        .map(|s| format!("/hls/1/{s}"))
        .collect();
    targets.extend(["/hls/1/master.m3u8", "/hls/1/media.m3u8", "/health"].map(String::from));

    // The answer to each request on its own connection.
    let mut alone = std::collections::HashMap::new();
    // Rounds with a framing error, with a wrong `Connection`, with another difference.
    let (mut misframed, mut connection, mut differs) = (0, 0, 0);
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let requests = batch(&targets, round);
        let (responses, wrong_connection) = match exchange(&host, &requests).await {
            Ok(exchanged) => exchanged,
            Err(e) => {
                misframed += 1;
                failures.push(format!("round {round}: {e}"));
                continue;
            }
        };
        if !wrong_connection.is_empty() {
            connection += 1;
            failures.push(format!("round {round}: {}", wrong_connection[0]));
        }
        for (i, (request, response)) in requests.iter().zip(&responses).enumerate() {
            let key = request.to_string();
            if !alone.contains_key(&key) {
                let (mut r, _) = exchange(&host, std::slice::from_ref(request))
                    .await
                    .unwrap_or_else(|e| panic!("{request} alone: {e}"));
                let r = r.remove(0);
                assert!(
                    r.status < 400 || request.target == "/health",
                    "{request} alone: {}",
                    r.status
                );
                alone.insert(key.clone(), r);
            }
            if let Some(diff) = response.differs_from(&alone[&key]) {
                differs += 1;
                failures.push(format!("round {round}: response {i} ({request}): {diff}"));
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "of {ROUNDS} pipelined rounds, {misframed} mis-framed, {connection} with a wrong \
         Connection: close, {differs} with a response unlike the same request alone; \
         first failures:\n{}",
        failures[..failures.len().min(6)].join("\n")
    );
}
