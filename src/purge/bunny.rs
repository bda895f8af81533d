//! Bunny: `POST {api}/purge?url=<url>&async=false` with the account's `AccessKey`, one
//! URL per request; a URL ending in `*` purges a prefix. Limits (Bunny's documentation):
//! exact purges burst 120, refill 5/s; prefix purges burst 20, refill 0.5/s.

use std::time::Duration;

use super::plan::{PurgeError, TokenBucket, plan, retry_after, status_error, transport_error};
use crate::secret::Secret;

pub const DEFAULT_API: &str = "https://api.bunny.net";

#[derive(Debug)]
pub struct Bunny {
    pub(super) http: reqwest::Client,
    pub(super) api: String,
    /// `CDN_BASE_URL`: edge paths become URLs under it.
    pub(super) cdn_base: String,
    pub(super) access_key: Secret<String>,
    pub(super) exact: TokenBucket,
    pub(super) prefix: TokenBucket,
    pub(super) max_wait: Duration,
}

impl Bunny {
    pub fn buckets(rate: Option<crate::ratelimit::Rate>) -> (TokenBucket, TokenBucket) {
        match rate {
            Some(r) => (TokenBucket::from_rate(r), TokenBucket::from_rate(r)),
            None => (TokenBucket::new(120, 5.0), TokenBucket::new(20, 0.5)),
        }
    }

    pub async fn purge(&self, paths: &[String]) -> Result<Option<String>, PurgeError> {
        let p = plan(paths, true);
        for prefix in &p.prefixes {
            self.prefix.acquire("bunny", self.max_wait).await?;
            self.one(&format!("{}{prefix}*", self.cdn_base)).await?;
        }
        for file in &p.files {
            self.exact.acquire("bunny", self.max_wait).await?;
            self.one(&format!("{}{file}", self.cdn_base)).await?;
        }
        Ok(None)
    }

    async fn one(&self, url: &str) -> Result<(), PurgeError> {
        let resp = self
            .http
            .post(format!("{}/purge", self.api))
            .query(&[("url", url), ("async", "false")])
            .header("AccessKey", self.access_key.expose())
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .send()
            .await
            .map_err(|e| transport_error("bunny", &e))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(());
        }
        let after = retry_after(resp.headers());
        let body = resp.text().await.unwrap_or_default();
        Err(status_error(
            &format!("bunny purge {url}"),
            status,
            after,
            &body,
        ))
    }
}
