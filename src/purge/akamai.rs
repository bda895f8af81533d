//! Akamai Fast Purge (CCU v3): `POST {api}/ccu/v3/delete/url/production` with
//! `{"objects":[url…]}` (body at most 50 KB), EdgeGrid-signed. `delete`, not
//! `invalidate`: a legal removal must not be revalidated back. Fast Purge by URL has no
//! prefixes: the row must list the files (see docs/CDN_PURGE.md).

use std::time::Duration;

use super::edgegrid::{self, Credentials};
use super::plan::{PurgeError, TokenBucket, plan, retry_after, status_error, transport_error};

pub const PATH: &str = "/ccu/v3/delete/url/production";
/// Body bytes per request, below the API's 50 000.
pub const MAX_BODY: usize = 45_000;

#[derive(Debug)]
pub struct Akamai {
    pub(super) http: reqwest::Client,
    /// `https://host` (or `CDN_PURGE_API_URL`).
    pub(super) api: String,
    pub(super) cdn_base: String,
    pub(super) creds: Credentials,
    pub(super) bucket: TokenBucket,
    pub(super) max_wait: Duration,
}

/// Split URLs into request bodies of at most [`MAX_BODY`] bytes each.
pub fn bodies(urls: &[String]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Vec<&String> = Vec::new();
    let mut size = 16;
    for u in urls {
        if !current.is_empty() && size + u.len() + 3 > MAX_BODY {
            out.push(
                serde_json::json!({ "objects": current })
                    .to_string()
                    .into_bytes(),
            );
            current.clear();
            size = 16;
        }
        size += u.len() + 3;
        current.push(u);
    }
    if !current.is_empty() {
        out.push(
            serde_json::json!({ "objects": current })
                .to_string()
                .into_bytes(),
        );
    }
    out
}

impl Akamai {
    pub async fn purge(&self, paths: &[String]) -> Result<Option<String>, PurgeError> {
        let p = plan(paths, false);
        let urls: Vec<String> = p
            .files
            .iter()
            .map(|x| format!("{}{x}", self.cdn_base))
            .collect();
        for body in bodies(&urls) {
            self.send(body).await?;
        }
        Ok(uncovered_note("akamai", &p.uncovered))
    }

    async fn send(&self, body: Vec<u8>) -> Result<(), PurgeError> {
        self.bucket.acquire("akamai", self.max_wait).await?;
        let url = url::Url::parse(&format!("{}{PATH}", self.api))
            .map_err(|e| PurgeError::Permanent(format!("akamai: bad API URL: {e}")))?;
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let nonce = nonce();
        let ts = edgegrid::timestamp(chrono::Utc::now().timestamp());
        let req = edgegrid::Request {
            method: "POST",
            scheme: url.scheme(),
            host: &host,
            path_and_query: url.path(),
            headers: &[],
            body: &body,
        };
        let auth =
            edgegrid::authorization(&self.creds, &req, &ts, &nonce, edgegrid::DEFAULT_MAX_BODY);
        let resp = self
            .http
            .post(url.as_str())
            .header(reqwest::header::AUTHORIZATION, auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error("akamai", &e))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(());
        }
        let after = retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        Err(status_error("akamai fast purge", status, after, &text))
    }
}

/// A unique nonce: 16 random bytes as hex.
fn nonce() -> String {
    let mut b = [0u8; 16];
    // aws-lc-rs's system random; on failure fall back to the clock (still unique enough
    // for a nonce, which only needs to differ between requests).
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        b[..8].copy_from_slice(&crate::clock::unix_ms().to_le_bytes());
    }
    hex::encode(b)
}

/// The note recorded with a finished purge when some prefixes could not be purged by
/// an exact-key provider (no file listed under them).
pub fn uncovered_note(provider: &str, uncovered: &[String]) -> Option<String> {
    (!uncovered.is_empty()).then(|| {
        format!(
            "{provider} purges exact URLs only: no file listed under {}",
            uncovered.join(", ")
        )
    })
}
