//! Signing for the CDN, bounded by [`SIGN_TIMEOUT`]: a failure is the fallback reason,
//! never an unsigned CDN URL. Streams get one directory-scoped signature for the track's
//! HLS directory, in the form the HLS mode hands out (nginx's token moved into the path
//! in `edge` mode; the CDN's signed cookies in `cookies` mode); downloads a file URL that
//! names the saved file.

use super::disposition::attachment_disposition;
use super::{CdnDelivery, DeliveryUrl, FallbackReason, SIGN_TIMEOUT, Via};
use crate::actors::cdn_signer::{SignSegments, SignedUrl};
use crate::cdn::Scope;
use crate::cdn::{HlsDelivery, Provider, token_forms};
use crate::clock::unix_now;
use crate::store::layout::directory_of;

/// Edge and cookies modes: the URL (and cookies) for the HLS directory of `key`.
pub(super) async fn sign_directory(
    cdn: &CdnDelivery,
    key: &str,
) -> Result<DeliveryUrl, FallbackReason> {
    let signed = sign(cdn, format!("/{key}"), Scope::Directory, key).await?;
    let provider = cdn.edge.provider;
    let fail = |e: crate::cdn::SignError| {
        log::warn!("CDN {provider} HLS token for {key} unusable, falling back: {e}");
        FallbackReason::SignError
    };
    if cdn.edge.mode == HlsDelivery::Cookies {
        let cookies = cdn
            .cookies
            .headers(
                &signed,
                cdn.edge.cookie_domain.as_deref(),
                directory_of(key),
                unix_now(),
                |url| token_forms::cookies(provider, url, &cdn.edge.akamai_token_name),
            )
            .map_err(fail)?;
        return Ok(DeliveryUrl {
            url: format!("{}/{key}", cdn.edge.base_url),
            expires_at: signed.expires_at,
            via: Via::Cdn,
            cookies: Some(cookies),
        });
    }
    let url = if provider == Provider::Nginx {
        token_forms::nginx_path_form(&signed.url).map_err(fail)?
    } else {
        signed.url
    };
    Ok(DeliveryUrl {
        url,
        expires_at: signed.expires_at,
        via: Via::Cdn,
        cookies: None,
    })
}

/// A download: the CDN-signed file URL, whose query names the saved file for an S3
/// origin.
pub(super) async fn sign_download(
    cdn: &CdnDelivery,
    key: &str,
    filename: &str,
) -> Result<DeliveryUrl, FallbackReason> {
    let path = format!(
        "/{key}?response-content-disposition={}",
        percent_encoding::utf8_percent_encode(
            &attachment_disposition(filename),
            percent_encoding::NON_ALPHANUMERIC,
        )
    );
    let signed = sign(cdn, path, Scope::File, key).await?;
    Ok(DeliveryUrl {
        url: signed.url,
        expires_at: signed.expires_at,
        via: Via::Cdn,
        cookies: None,
    })
}

/// Absolute CDN-signed URLs for the segments `names` of the directory `dir`, expiring
/// at `expires_at` (rewrite mode).
pub(super) async fn sign_segments(
    cdn: &CdnDelivery,
    dir: &str,
    names: Vec<String>,
    expires_at: u64,
    key: &str,
) -> Result<std::sync::Arc<Vec<String>>, FallbackReason> {
    let msg = SignSegments {
        directory: format!("/{dir}"),
        names,
        expires_at,
    };
    match tokio::time::timeout(SIGN_TIMEOUT, cdn.signers.sign_segments(msg)).await {
        Ok(Ok(Ok(urls))) => Ok(urls),
        Ok(Ok(Err(e))) => {
            log::warn!("CDN signing of {key}'s segments failed, falling back: {e}");
            Err(FallbackReason::SignError)
        }
        Ok(Err(_)) => Err(FallbackReason::Unavailable),
        Err(_) => Err(FallbackReason::Timeout),
    }
}

/// Ask the CdnSigner, bounded by [`SIGN_TIMEOUT`].
async fn sign(
    cdn: &CdnDelivery,
    path: String,
    scope: Scope,
    key: &str,
) -> Result<SignedUrl, FallbackReason> {
    match tokio::time::timeout(SIGN_TIMEOUT, cdn.signers.sign_url(path, scope)).await {
        Ok(Ok(Ok(signed))) => Ok(signed),
        Ok(Ok(Err(e))) => {
            log::warn!("CDN signing failed for {key}, falling back: {e}");
            Err(FallbackReason::SignError)
        }
        Ok(Err(e)) => {
            log::warn!("CdnSigner unavailable ({e}), falling back for {key}");
            Err(FallbackReason::Unavailable)
        }
        Err(_) => {
            log::warn!("CdnSigner timed out after {SIGN_TIMEOUT:?}, falling back for {key}");
            Err(FallbackReason::Timeout)
        }
    }
}
