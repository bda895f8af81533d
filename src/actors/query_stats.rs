//! The `QueryStats` actor receives one summary per HTTP request (statement count, query
//! shapes, DB time) and turns it into metrics and N+1 findings. Detection itself is the
//! pure [`crate::n1::detector`]; this actor owns the thresholds, the log rate limiter
//! and the metric updates.

use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::config::QueryStatsConfig;
use crate::metrics::Metrics;
use crate::n1::detector::{DetectorConfig, LogRateLimiter, RequestSummary, detect};

/// Bounded mailbox: summaries beyond this are dropped (and counted) by the sender.
/// There is one QueryStats actor per HTTP worker, on the worker's own thread; each
/// has its own log rate limiter (so a warning may appear once per worker per window).
pub const MAILBOX_CAPACITY: usize = 4096;

pub struct QueryStats {
    detector: DetectorConfig,
    metrics: Metrics,
    limiter: LogRateLimiter,
}

/// The detector's configuration, from the validated (already parsed) service
/// configuration.
pub fn detector_config(cfg: &QueryStatsConfig) -> DetectorConfig {
    DetectorConfig {
        total_threshold: cfg.n1_threshold,
        repeat_threshold: cfg.repeat_threshold,
        allow_routes: cfg.allow.routes.clone(),
        allow_fingerprints: cfg.allow.fingerprints.clone(),
    }
}

impl QueryStats {
    pub fn new(cfg: &QueryStatsConfig, metrics: Metrics) -> Self {
        QueryStats {
            detector: detector_config(cfg),
            metrics,
            limiter: LogRateLimiter::new(Duration::from_secs(60), 1024),
        }
    }

    /// A fresh actor with the same thresholds (and its own log rate limiter), for
    /// another worker.
    pub fn for_worker(&self) -> QueryStats {
        QueryStats {
            detector: self.detector.clone(),
            metrics: self.metrics.clone(),
            limiter: LogRateLimiter::new(Duration::from_secs(60), 1024),
        }
    }
}

impl Actor for QueryStats {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

/// One finished request's query summary.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestFinished(pub RequestSummary);

impl Handler<RequestFinished> for QueryStats {
    type Result = ();

    fn handle(&mut self, RequestFinished(summary): RequestFinished, _: &mut Self::Context) {
        self.metrics
            .db_request_query_count
            .with_label_values(&[summary.route.as_str()])
            .observe(f64::from(summary.statement_count));
        let now = Instant::now();
        let findings = detect(&summary, &self.detector);
        if !findings.is_empty() {
            self.metrics
                .db_n1_flagged_requests_total
                .with_label_values(&[summary.route.as_str()])
                .inc();
        }
        for f in findings {
            self.metrics
                .db_n1_suspicions_total
                .with_label_values(&[f.route.as_str(), f.kind.as_str()])
                .inc();
            let decision = self.limiter.check_finding(&f, now);
            if decision.log {
                log::warn!(
                    "N+1 suspicion: route={} kind={} count={} fingerprint={} concurrent={} request_db_time_ms={:.3} sql={:?} suppressed_since_last={}",
                    f.route,
                    f.kind.as_str(),
                    f.count,
                    f.fingerprint
                        .map_or_else(|| "-".to_string(), |fp| fp.to_string()),
                    f.concurrent,
                    summary.db_time.as_secs_f64() * 1000.0,
                    f.sql.as_deref().unwrap_or("-"),
                    decision.suppressed,
                );
            }
        }
    }
}

/// Barrier for tests: answers after every summary queued before it was handled.
#[cfg(feature = "test-hooks")]
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

#[cfg(feature = "test-hooks")]
impl Handler<Flush> for QueryStats {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Self::Context) {}
}
