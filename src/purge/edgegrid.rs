//! Akamai EdgeGrid request signing (`EG1-HMAC-SHA256`), from the published algorithm:
//!
//! - `timestamp` is `yyyyMMddTHH:mm:ss+0000` (UTC), `nonce` a unique string per request;
//! - the unsigned header is `EG1-HMAC-SHA256 client_token=…;access_token=…;timestamp=…;nonce=…;`;
//! - the signing key is `base64(HMAC-SHA256(client_secret, timestamp))`;
//! - the data to sign is the tab-joined method, scheme, host, path with its query, the
//!   canonical signed headers, the content hash (`base64(SHA-256(body[..max_body]))` for a
//!   non-empty POST body, else empty) and the unsigned header;
//! - the signature is `base64(HMAC-SHA256(signing key, data to sign))`, appended as
//!   `signature=…`.
//!
//! Checked against Akamai's published test vectors (`tests/data/edgegrid/`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use sha2::{Digest, Sha256};

use crate::cdn::HmacSha256;
use crate::secret::Secret;

/// The largest body prefix covered by the content hash (EdgeGrid's default).
pub const DEFAULT_MAX_BODY: usize = 131_072;

/// EdgeGrid credentials (an API client's `.edgerc` section). Never printed.
#[derive(Clone)]
pub struct Credentials {
    pub client_token: String,
    pub access_token: Secret<String>,
    pub client_secret: Secret<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

/// The request parts the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    /// `host[:port]` as sent in the `Host` header.
    pub host: &'a str,
    /// Path with its query (`/ccu/v3/delete/url/production`).
    pub path_and_query: &'a str,
    /// (lower-case name, value) of the headers to sign, in the configured order.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// `yyyyMMddTHH:mm:ss+0000` for Unix seconds `secs`.
pub fn timestamp(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H:%M:%S+0000")
        .to_string()
}

fn hmac_b64(key: &[u8], msg: &[u8]) -> String {
    // HMAC accepts keys of any length: new_from_slice cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return String::new();
    };
    mac.update(msg);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `base64(HMAC-SHA256(client_secret, timestamp))`.
pub fn signing_key(client_secret: &str, timestamp: &str) -> String {
    hmac_b64(client_secret.as_bytes(), timestamp.as_bytes())
}

/// The content hash: POST bodies only, the first `max_body` bytes.
pub fn content_hash(method: &str, body: &[u8], max_body: usize) -> String {
    if method != "POST" || body.is_empty() {
        return String::new();
    }
    STANDARD.encode(Sha256::digest(&body[..body.len().min(max_body)]))
}

/// Signed headers as `name:value`, values trimmed with inner whitespace runs collapsed.
pub fn canonical_headers(headers: &[(&str, &str)]) -> String {
    headers
        .iter()
        .map(|(name, value)| {
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            format!("{}:{value}", name.to_ascii_lowercase())
        })
        .collect::<Vec<_>>()
        .join("\t")
}

/// The tab-joined data to sign, without the trailing unsigned header when
/// `auth_header` is empty (the form the published vectors show).
pub fn data_to_sign(req: &Request<'_>, max_body: usize, auth_header: &str) -> String {
    [
        req.method,
        req.scheme,
        req.host,
        req.path_and_query,
        &canonical_headers(req.headers),
        &content_hash(req.method, req.body, max_body),
        auth_header,
    ]
    .join("\t")
}

/// The `Authorization` header value for `req`.
pub fn authorization(
    creds: &Credentials,
    req: &Request<'_>,
    timestamp: &str,
    nonce: &str,
    max_body: usize,
) -> String {
    let unsigned = format!(
        "EG1-HMAC-SHA256 client_token={};access_token={};timestamp={timestamp};nonce={nonce};",
        creds.client_token,
        creds.access_token.expose()
    );
    let key = signing_key(creds.client_secret.expose(), timestamp);
    let data = data_to_sign(req, max_body, &unsigned);
    let signature = hmac_b64(key.as_bytes(), data.as_bytes());
    format!("{unsigned}signature={signature}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const DATA: &str = include_str!("../../tests/data/edgegrid/testdata.json");
    const CASES: &str = include_str!("../../tests/data/edgegrid/testcases.json");

    fn data() -> serde_json::Value {
        serde_json::from_str(DATA).unwrap()
    }

    fn creds(d: &serde_json::Value) -> Credentials {
        Credentials {
            client_token: d["client_token"].as_str().unwrap().to_string(),
            access_token: Secret::new(d["access_token"].as_str().unwrap().to_string()),
            client_secret: Secret::new(d["client_secret"].as_str().unwrap().to_string()),
        }
    }

    #[test]
    fn signing_key_vector() {
        let d = data();
        assert_eq!(
            signing_key(
                d["client_secret"].as_str().unwrap(),
                d["timestamp"].as_str().unwrap()
            ),
            d["sign_key_test"].as_str().unwrap()
        );
    }

    #[test]
    fn timestamp_format() {
        // 2014-03-21T19:34:21Z, the vectors' timestamp.
        assert_eq!(timestamp(1_395_430_461), "20140321T19:34:21+0000");
    }

    /// Every published test case that signs (the one refusing a header value with
    /// leading whitespace is about a client's input checks, not the algorithm).
    #[test]
    fn published_test_cases() {
        let d = data();
        let creds = creds(&d);
        let host = url::Url::parse(d["base_url"].as_str().unwrap()).unwrap();
        let host = host.host_str().unwrap().to_string();
        let max_body = usize::try_from(d["max_body"].as_u64().unwrap()).unwrap();
        let to_sign: Vec<String> = d["headers_to_sign"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_ascii_lowercase())
            .collect();
        let cases: Vec<serde_json::Value> = serde_json::from_str(CASES).unwrap();
        let mut checked = 0;
        for case in &cases {
            if case.get("failsWithMessage").is_some() {
                continue;
            }
            let r = &case["request"];
            let mut given: Vec<(String, String)> = Vec::new();
            for h in r["headers"].as_array().into_iter().flatten() {
                for (k, v) in h.as_object().unwrap() {
                    given.push((k.to_ascii_lowercase(), v.as_str().unwrap().to_string()));
                }
            }
            let headers: Vec<(&str, &str)> = to_sign
                .iter()
                .filter_map(|n| {
                    given
                        .iter()
                        .find(|(k, _)| k == n)
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                })
                .collect();
            let body = r["data"].as_str().unwrap_or_default();
            let req = Request {
                method: r["method"].as_str().unwrap(),
                scheme: "https",
                host: &host,
                path_and_query: r["path"].as_str().unwrap(),
                headers: &headers,
                body: body.as_bytes(),
            };
            let name = case["testName"].as_str().unwrap();
            assert_eq!(
                data_to_sign(&req, max_body, ""),
                case["expectedDataToSign"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(
                authorization(
                    &creds,
                    &req,
                    d["timestamp"].as_str().unwrap(),
                    d["nonce"].as_str().unwrap(),
                    max_body
                ),
                case["expectedAuthorization"].as_str().unwrap(),
                "{name}"
            );
            checked += 1;
        }
        assert!(checked >= 14, "{checked} cases");
    }

    #[test]
    fn credentials_are_not_printed() {
        let c = creds(&data());
        assert!(!format!("{c:?}").contains("xxx"));
    }
}
