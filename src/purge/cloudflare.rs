//! Cloudflare: `POST {api}/client/v4/zones/{zone}/purge_cache` with
//! `{"files":[url…]}` or `{"prefixes":[host/path…]}`, at most 100 per request,
//! `Authorization: Bearer <token>`. Request rates depend on the plan (Free: 5/min).

use std::time::Duration;

use super::plan::{PurgeError, TokenBucket, plan, retry_after, status_error, transport_error};
use crate::secret::Secret;

pub const DEFAULT_API: &str = "https://api.cloudflare.com";
/// Files or prefixes per request.
pub const MAX_PER_REQUEST: usize = 100;

#[derive(Debug)]
pub struct Cloudflare {
    pub(super) http: reqwest::Client,
    pub(super) api: String,
    pub(super) cdn_base: String,
    pub(super) zone: String,
    pub(super) token: Secret<String>,
    pub(super) bucket: TokenBucket,
    pub(super) max_wait: Duration,
}

impl Cloudflare {
    pub async fn purge(&self, paths: &[String]) -> Result<Option<String>, PurgeError> {
        let p = plan(paths, true);
        // Prefixes are host/path without the scheme.
        let host_base = self
            .cdn_base
            .split_once("://")
            .map_or(self.cdn_base.as_str(), |(_, rest)| rest);
        let prefixes: Vec<String> = p
            .prefixes
            .iter()
            .map(|x| format!("{host_base}{x}"))
            .collect();
        let files: Vec<String> = p
            .files
            .iter()
            .map(|x| format!("{}{x}", self.cdn_base))
            .collect();
        for chunk in prefixes.chunks(MAX_PER_REQUEST) {
            self.send(&serde_json::json!({ "prefixes": chunk })).await?;
        }
        for chunk in files.chunks(MAX_PER_REQUEST) {
            self.send(&serde_json::json!({ "files": chunk })).await?;
        }
        Ok(None)
    }

    async fn send(&self, body: &serde_json::Value) -> Result<(), PurgeError> {
        self.bucket.acquire("cloudflare", self.max_wait).await?;
        let resp = self
            .http
            .post(format!(
                "{}/client/v4/zones/{}/purge_cache",
                self.api, self.zone
            ))
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| transport_error("cloudflare", &e))?;
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let ok = resp.status().is_success();
        let text = resp.text().await.unwrap_or_default();
        if !ok {
            return Err(status_error("cloudflare purge_cache", status, after, &text));
        }
        let success = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("success").and_then(serde_json::Value::as_bool));
        match success {
            Some(true) => Ok(()),
            _ => Err(PurgeError::retryable(format!(
                "cloudflare purge_cache: HTTP {status} without success: {}",
                text.chars().take(200).collect::<String>()
            ))),
        }
    }
}
