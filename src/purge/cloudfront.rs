//! CloudFront: `CreateInvalidation` through `aws-sdk-cloudfront`. Prefixes become
//! `/path/*` (one path each in CloudFront's count). The `CallerReference` is derived
//! from the outbox row (id, chunk, paths), so a retry after a lost answer returns the
//! invalidation already created instead of a second one. `TooManyInvalidationsInProgress`
//! (3 000 file paths or 15 wildcards in progress) backs off and retries.

use std::time::Duration;

use aws_sdk_cloudfront::error::ProvideErrorMetadata;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use sha2::{Digest, Sha256};

use super::plan::{PurgeError, TokenBucket, plan};

/// Paths per invalidation (CloudFront: 3 000 file paths; wildcards: 15 in progress).
pub const MAX_FILES: usize = 3000;
pub const MAX_WILDCARDS: usize = 15;

#[derive(Debug)]
pub struct CloudFront {
    pub(super) client: aws_sdk_cloudfront::Client,
    pub(super) distribution: String,
    pub(super) bucket: TokenBucket,
    pub(super) max_wait: Duration,
}

/// The invalidation batches for `paths`: wildcards first, 15 a batch, then files.
pub fn batches(paths: &[String]) -> Vec<Vec<String>> {
    let p = plan(paths, true);
    let wild: Vec<String> = p.prefixes.iter().map(|d| format!("{d}*")).collect();
    let mut out: Vec<Vec<String>> = wild.chunks(MAX_WILDCARDS).map(<[String]>::to_vec).collect();
    out.extend(p.files.chunks(MAX_FILES).map(<[String]>::to_vec));
    out
}

/// `veza-purge-{row}-{chunk}-{hash of the paths}`: the same for every retry of a row.
pub fn caller_reference(job_id: i64, chunk: usize, items: &[String]) -> String {
    let digest = Sha256::digest(items.join("\n").as_bytes());
    format!("veza-purge-{job_id}-{chunk}-{}", &hex::encode(digest)[..16])
}

impl CloudFront {
    pub async fn purge(&self, job_id: i64, paths: &[String]) -> Result<Option<String>, PurgeError> {
        let mut ids = Vec::new();
        for (i, items) in batches(paths).into_iter().enumerate() {
            self.bucket.acquire("cloudfront", self.max_wait).await?;
            ids.push(self.create(job_id, i, items).await?);
        }
        Ok((!ids.is_empty()).then(|| format!("cloudfront invalidations {}", ids.join(", "))))
    }

    async fn create(
        &self,
        job_id: i64,
        chunk: usize,
        items: Vec<String>,
    ) -> Result<String, PurgeError> {
        let reference = caller_reference(job_id, chunk, &items);
        let quantity = i32::try_from(items.len()).unwrap_or(i32::MAX);
        let bad = |e: aws_sdk_cloudfront::error::BuildError| PurgeError::Permanent(e.to_string());
        let batch = InvalidationBatch::builder()
            .caller_reference(reference)
            .paths(
                Paths::builder()
                    .quantity(quantity)
                    .set_items(Some(items))
                    .build()
                    .map_err(bad)?,
            )
            .build()
            .map_err(bad)?;
        let out = self
            .client
            .create_invalidation()
            .distribution_id(&self.distribution)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(out
            .invalidation()
            .map(|i| i.id().to_string())
            .unwrap_or_default())
    }
}

fn classify(
    e: &aws_sdk_cloudfront::error::SdkError<
        aws_sdk_cloudfront::operation::create_invalidation::CreateInvalidationError,
    >,
) -> PurgeError {
    use aws_sdk_cloudfront::error::SdkError;
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            let code = err.code().unwrap_or("unknown");
            let msg = format!(
                "cloudfront CreateInvalidation: {code}: {}",
                err.message().unwrap_or_default()
            );
            let status = s.raw().status().as_u16();
            if err.is_too_many_invalidations_in_progress() {
                PurgeError::Retryable {
                    message: msg,
                    retry_after: Some(Duration::from_secs(60)),
                }
            } else if code.contains("Throttl") || status == 429 || status >= 500 {
                PurgeError::retryable(msg)
            } else {
                PurgeError::Permanent(msg)
            }
        }
        SdkError::ConstructionFailure(_) => PurgeError::Permanent(format!(
            "cloudfront CreateInvalidation: {}",
            aws_sdk_cloudfront::error::DisplayErrorContext(e)
        )),
        _ => PurgeError::retryable(format!(
            "cloudfront CreateInvalidation: {}",
            aws_sdk_cloudfront::error::DisplayErrorContext(e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_and_references() {
        let paths: Vec<String> = ["/hls/1/", "/hls/1/a.ts", "/media/x"]
            .map(String::from)
            .to_vec();
        let b = batches(&paths);
        assert_eq!(
            b,
            vec![vec!["/hls/1/*".to_string()], vec!["/media/x".to_string()]]
        );
        assert_eq!(caller_reference(7, 0, &b[0]), caller_reference(7, 0, &b[0]));
        assert_ne!(caller_reference(7, 0, &b[0]), caller_reference(8, 0, &b[0]));
    }
}
