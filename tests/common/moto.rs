//! moto's server (PyPI `moto[server]`) as a local CloudFront API: started on a free
//! port, killed on drop. `create_distribution` makes the distribution the purge tests
//! invalidate; `invalidation_paths` reads back what was invalidated.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_cloudfront::types::{
    CustomOriginConfig, DefaultCacheBehavior, DistributionConfig, Origin, OriginProtocolPolicy,
    Origins, ViewerProtocolPolicy,
};

pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    client: aws_sdk_cloudfront::Client,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// `None` after the skip rule when `moto_server` is not installed.
    pub async fn start() -> Option<Moto> {
        let bin = super::tools::moto_server()?;
        let port = super::free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            super::listening(port, Duration::from_secs(30)).await,
            "moto_server did not listen within 30 s"
        );
        let base = format!("http://127.0.0.1:{port}");
        let conf = aws_sdk_cloudfront::Config::builder()
            .behavior_version(aws_sdk_cloudfront::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudfront::config::Region::new("us-east-1"))
            .endpoint_url(&base)
            .credentials_provider(aws_sdk_cloudfront::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build();
        Some(Moto {
            child,
            base,
            client: aws_sdk_cloudfront::Client::from_conf(conf),
        })
    }

    /// A distribution with one custom origin; its id.
    pub async fn create_distribution(&self) -> String {
        let origin = Origin::builder()
            .id("veza-origin")
            .domain_name("origin.example.com")
            .custom_origin_config(
                CustomOriginConfig::builder()
                    .http_port(80)
                    .https_port(443)
                    .origin_protocol_policy(OriginProtocolPolicy::HttpsOnly)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let config = DistributionConfig::builder()
            .caller_reference(format!("veza-test-{}", std::process::id()))
            .comment("veza purge test")
            .enabled(true)
            .origins(
                Origins::builder()
                    .quantity(1)
                    .items(origin)
                    .build()
                    .unwrap(),
            )
            .default_cache_behavior(
                DefaultCacheBehavior::builder()
                    .target_origin_id("veza-origin")
                    .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let out = self
            .client
            .create_distribution()
            .distribution_config(config)
            .send()
            .await
            .unwrap();
        out.distribution().unwrap().id().to_string()
    }

    /// Every path of every invalidation of `distribution`.
    pub async fn invalidation_paths(&self, distribution: &str) -> Vec<String> {
        let list = self
            .client
            .list_invalidations()
            .distribution_id(distribution)
            .send()
            .await
            .unwrap();
        let mut paths = Vec::new();
        let items = list
            .invalidation_list()
            .map(|l| l.items().to_vec())
            .unwrap_or_default();
        for summary in items {
            let inv = self
                .client
                .get_invalidation()
                .distribution_id(distribution)
                .id(summary.id())
                .send()
                .await
                .unwrap();
            let batch = inv.invalidation().and_then(|i| i.invalidation_batch());
            if let Some(p) = batch.and_then(|b| b.paths()) {
                paths.extend(p.items().iter().cloned());
            }
        }
        paths
    }

    /// The CallerReference of every invalidation of `distribution`.
    pub async fn caller_references(&self, distribution: &str) -> Vec<String> {
        let list = self
            .client
            .list_invalidations()
            .distribution_id(distribution)
            .send()
            .await
            .unwrap();
        let items = list
            .invalidation_list()
            .map(|l| l.items().to_vec())
            .unwrap_or_default();
        let mut refs = Vec::new();
        for summary in items {
            let inv = self
                .client
                .get_invalidation()
                .distribution_id(distribution)
                .id(summary.id())
                .send()
                .await
                .unwrap();
            if let Some(b) = inv.invalidation().and_then(|i| i.invalidation_batch()) {
                refs.push(b.caller_reference().to_string());
            }
        }
        refs
    }
}
