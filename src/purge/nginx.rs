//! nginx with `ngx_cache_purge` (Debian's `libnginx-mod-http-cache-purge`, 2.3): a
//! location `proxy_cache_purge ZONE KEY` restricted to the service; each exact cache
//! key is purged by a request to `{CDN_PURGE_API_URL}{path}` (method `PURGE`). 200:
//! purged; 404: not cached (nothing to do). No wildcards: the row must list the files.

use std::time::Duration;

use super::akamai::uncovered_note;
use super::plan::{PurgeError, plan, retry_after, status_error, transport_error};

#[derive(Debug)]
pub struct Nginx {
    pub(super) http: reqwest::Client,
    pub(super) purge_base: String,
    pub(super) _max_wait: Duration,
}

impl Nginx {
    pub async fn purge(&self, paths: &[String]) -> Result<Option<String>, PurgeError> {
        let p = plan(paths, false);
        let method = reqwest::Method::from_bytes(b"PURGE")
            .map_err(|e| PurgeError::Permanent(e.to_string()))?;
        for file in &p.files {
            let url = format!("{}{file}", self.purge_base);
            let resp = self
                .http
                .request(method.clone(), &url)
                .send()
                .await
                .map_err(|e| transport_error("nginx", &e))?;
            let status = resp.status().as_u16();
            if resp.status().is_success() || status == 404 {
                continue;
            }
            let after = retry_after(resp.headers());
            let text = resp.text().await.unwrap_or_default();
            return Err(status_error(
                &format!("nginx purge {file}"),
                status,
                after,
                &text,
            ));
        }
        Ok(uncovered_note("nginx", &p.uncovered))
    }
}
