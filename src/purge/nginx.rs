//! nginx, stock: each cached file is **refreshed** from the origin by a GET to
//! `{CDN_PURGE_API_URL}{path}` carrying `X-Veza-Purge: CDN_PURGE_API_TOKEN`, which the
//! edge maps to `proxy_cache_bypass` (docs/CDN_PURGE.md has the configuration). The
//! edge then stores what the origin answers now: a 451 or 404 after a takedown (the
//! edge must cache those codes), the bytes again after a restore. No wildcards: the
//! row must list the files.
//!
//! Not `ngx_cache_purge`: Debian's `libnginx-mod-http-cache-purge` 2.3 crashes the
//! worker on every purge with nginx 1.22 (a known incompatibility, fixed upstream but
//! not in Debian's package), found by the real-edge test.

use std::time::Duration;

use super::akamai::uncovered_note;
use super::plan::{PurgeError, plan, retry_after, status_error, transport_error};

#[derive(Debug)]
pub struct Nginx {
    pub(super) http: reqwest::Client,
    pub(super) purge_base: String,
    /// `CDN_PURGE_API_TOKEN`: proves the refresh comes from the service.
    pub(super) token: String,
    pub(super) _max_wait: Duration,
}

/// The header the edge maps to `proxy_cache_bypass`.
pub const REFRESH_HEADER: &str = "X-Veza-Purge";

impl Nginx {
    pub async fn purge(&self, paths: &[String]) -> Result<Option<String>, PurgeError> {
        let p = plan(paths, false);
        for file in &p.files {
            let url = format!("{}{file}", self.purge_base);
            let resp = self
                .http
                .get(&url)
                .header(REFRESH_HEADER, self.token.as_str())
                .send()
                .await
                .map_err(|e| transport_error("nginx", &e))?;
            let status = resp.status().as_u16();
            // The edge fetched the origin's answer and stored it: whatever the origin
            // says now (the bytes, 404, 451) replaced the cached copy. A 5xx or an
            // edge refusal (403: wrong token) did not.
            if resp.status().is_success() || matches!(status, 404 | 410 | 451) {
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
