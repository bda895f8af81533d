//! Turning a signed URL into what each HLS delivery mode hands out (pure):
//! - **edge**: nginx's directory token moved from the query into the path
//!   (`/_sl/{md5}/{expires}/hls/42/master.m3u8`), so relative playlist URIs inherit it;
//! - **rewrite**: the query of a directory-scoped (wildcard) token, reusable for every
//!   segment of the directory (CloudFront custom policy, Akamai ACL `/dir/*`);
//! - **cookies**: the same token as the CDN's signed cookies.

use super::{Provider, SignError, SplitUrl};

/// Path prefix of nginx's path-form token; the nginx location captures
/// `^/_sl/(?<md5>[^/]+)/(?<expires>[0-9]+)(?<dir>/.*/)(?<file>[^/]+)$`.
pub const NGINX_PATH_TOKEN_PREFIX: &str = "/_sl";

fn query_params(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
}

/// `https://edge/hls/42/master.m3u8?md5=M&expires=E` (a directory-scoped nginx token) →
/// `https://edge/_sl/M/E/hls/42/master.m3u8`.
pub fn nginx_path_form(signed: &str) -> Result<String, SignError> {
    let u = SplitUrl::parse(signed)?;
    let query = u
        .query
        .ok_or_else(|| SignError::InvalidUrl("no secure_link token".into()))?;
    let (mut md5, mut expires) = (None, None);
    for (k, v) in query_params(query) {
        match k {
            "md5" => md5 = Some(v),
            "expires" => expires = Some(v),
            _ => {
                return Err(SignError::InvalidRequest(
                    "a path-form token cannot carry other query parameters".into(),
                ));
            }
        }
    }
    match (md5, expires) {
        (Some(m), Some(e)) => Ok(format!(
            "{}{NGINX_PATH_TOKEN_PREFIX}/{m}/{e}{}",
            u.origin, u.path
        )),
        _ => Err(SignError::InvalidUrl("no secure_link token".into())),
    }
}

/// The query string of a signed URL (the token, for directory-scoped schemes).
pub fn token_query(signed: &str) -> Result<&str, SignError> {
    SplitUrl::parse(signed)?
        .query
        .ok_or_else(|| SignError::InvalidUrl("signed url has no query".into()))
}

/// Whether one directory-scoped token covers every file of the directory, so a
/// rewritten playlist signs once and reuses the query for each segment.
pub fn directory_token_reusable(provider: Provider) -> bool {
    matches!(provider, Provider::CloudFront | Provider::Akamai)
}

/// The signed cookies equivalent to a directory-signed URL: CloudFront's
/// `CloudFront-Policy`/`-Signature`/`-Key-Pair-Id`, or Akamai's token under its name.
pub fn cookies(
    provider: Provider,
    signed: &str,
    akamai_token_name: &str,
) -> Result<Vec<(String, String)>, SignError> {
    let query = token_query(signed)?;
    let mut out = Vec::new();
    for (k, v) in query_params(query) {
        let name = match (provider, k) {
            (Provider::CloudFront, "Policy") => "CloudFront-Policy",
            (Provider::CloudFront, "Signature") => "CloudFront-Signature",
            (Provider::CloudFront, "Key-Pair-Id") => "CloudFront-Key-Pair-Id",
            (Provider::Akamai, n) if n == akamai_token_name => akamai_token_name,
            _ => continue,
        };
        out.push((name.to_string(), v.to_string()));
    }
    let want = match provider {
        Provider::CloudFront => 3,
        Provider::Akamai => 1,
        other => {
            return Err(SignError::Unsupported {
                provider: other,
                option: "signed cookies",
            });
        }
    };
    if out.len() != want {
        return Err(SignError::InvalidRequest(
            "the signed url does not carry a cookie-able token (CloudFront needs a custom policy)"
                .into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_token_moves_into_the_path() {
        assert_eq!(
            nginx_path_form("http://edge:8080/hls/42/master.m3u8?md5=abc-_&expires=1700000000")
                .unwrap(),
            "http://edge:8080/_sl/abc-_/1700000000/hls/42/master.m3u8"
        );
        assert!(nginx_path_form("http://edge/hls/42/master.m3u8").is_err());
        assert!(nginx_path_form("http://edge/x.m3u8?md5=a&expires=1&x=2").is_err());
    }

    #[test]
    fn cloudfront_and_akamai_tokens_become_cookies() {
        let cf = "https://d.cloudfront.net/hls/3/master.m3u8?Policy=P~&Signature=S_&Key-Pair-Id=K1";
        assert_eq!(
            cookies(Provider::CloudFront, cf, "__token__").unwrap(),
            [
                ("CloudFront-Policy".to_string(), "P~".to_string()),
                ("CloudFront-Signature".to_string(), "S_".to_string()),
                ("CloudFront-Key-Pair-Id".to_string(), "K1".to_string()),
            ]
        );
        // A canned-policy URL (Expires=) is not cookie-able with a wildcard.
        let canned = "https://d.cloudfront.net/a.m3u8?Expires=1&Signature=S&Key-Pair-Id=K";
        assert!(cookies(Provider::CloudFront, canned, "__token__").is_err());
        let ak = "https://a.example/hls/3/master.m3u8?hdnts=exp=1~acl=/hls/3/*~hmac=ab";
        assert_eq!(
            cookies(Provider::Akamai, ak, "hdnts").unwrap(),
            [(
                "hdnts".to_string(),
                "exp=1~acl=/hls/3/*~hmac=ab".to_string()
            )]
        );
        assert!(cookies(Provider::Bunny, ak, "hdnts").is_err());
    }
}
