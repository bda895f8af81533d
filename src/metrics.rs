//! The catalogue of every metric the service exports — the single place where names,
//! help texts, label sets and buckets are declared. [`Metrics::register`] registers them
//! all on the one registry owned by the `Metrics` actor; other components get cheap
//! clones of the handles and update them directly (atomics, no actor round trip).

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Buckets for connection-acquire latency: 100 µs up to the acquire timeout.
pub fn acquire_buckets(timeout_secs: f64) -> Vec<f64> {
    let mut buckets = vec![
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0,
    ];
    buckets.retain(|b| *b < timeout_secs);
    buckets.push(timeout_secs);
    buckets
}

pub const QUERY_COUNT_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];
pub const QUERY_DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0,
];
/// Connection use: a fast statement (under 1 ms) up to a leak (a minute).
pub const USE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
pub const HTTP_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `veza_http_malformed_requests_total`: request heads actix-http could not parse
/// (answered 400, or 431 when oversized, before any middleware). Process-wide, because
/// the only report of one is actix's log record, which [`crate::logging`] counts; every
/// registry of the process exports this one counter. `None` only if the constant
/// descriptor were invalid, which [`Metrics::register`] then reports.
pub fn http_malformed_requests() -> Option<&'static IntCounter> {
    static COUNTER: std::sync::LazyLock<Option<IntCounter>> = std::sync::LazyLock::new(|| {
        IntCounter::new(
            "veza_http_malformed_requests_total",
            "Request heads actix-http could not parse (answered 400, or 431 when too large, before routing), counted from its log by the process logger.",
        )
        .ok()
    });
    COUNTER.as_ref()
}

/// Seconds, from a minute to a week: notices are decided by people, purges by CDNs.
const TAKEDOWN_BUCKETS: [f64; 10] = [
    1.0, 10.0, 60.0, 300.0, 1800.0, 3600.0, 14_400.0, 86_400.0, 259_200.0, 604_800.0,
];

/// Every metric handle of the service.
#[derive(Clone)]
pub struct Metrics {
    // Takedowns (issue 24)
    /// From a notice's receipt to its tracks' disabling.
    pub takedown_notice_to_disabled_seconds: Histogram,
    /// From a decision (or restore) to every edge purged: observed by the CDN purge
    /// worker when it sets `done_at` on the last purge of a notice.
    pub takedown_decision_to_purged_seconds: Histogram,
    // HTTP
    pub http_requests_total: IntCounterVec,
    pub http_request_duration_seconds: HistogramVec,
    /// Process-wide: [`http_malformed_requests`].
    pub http_malformed_requests_total: IntCounter,
    // Pool (DbPool actor)
    pub db_connections: IntGaugeVec,
    pub db_connections_pending: IntGauge,
    pub db_connection_acquire_seconds: Histogram,
    pub db_connection_acquire_timeouts_total: IntCounter,
    pub db_statement_timeouts_total: IntCounter,
    pub db_read_retries_total: IntCounterVec,
    pub db_connection_wait_seconds_total: prometheus::Counter,
    pub db_connection_use_seconds: HistogramVec,
    pub db_connection_leak_suspicions_total: IntCounterVec,
    pub db_pool_stats_last_sample_timestamp_seconds: prometheus::Gauge,
    pub db_pool_stats_samples_total: IntCounter,
    pub actor_restarts_total: IntCounterVec,
    // Statements (counting wrapper, QueryStats actor)
    pub db_statements_total: IntCounter,
    pub db_request_query_count: HistogramVec,
    pub db_n1_suspicions_total: IntCounterVec,
    pub query_stats_dropped_total: IntCounter,
    pub db_query_duration_seconds: HistogramVec,
    pub db_slow_queries_total: IntCounterVec,
    pub db_n1_flagged_requests_total: IntCounterVec,
    // Delivery (CdnSigner actor, stream/download handlers)
    pub cdn_signatures_total: IntCounterVec,
    pub cdn_fallback_total: IntCounterVec,
    pub cdn_key_reloads_total: IntCounterVec,
    pub cdn_signature_reuse_total: IntCounterVec,
    // Catalogue cache (delivery lookups) and its invalidation listener
    pub catalogue_cache_requests_total: IntCounterVec,
    pub catalogue_cache_evictions_total: IntCounterVec,
    pub catalogue_listen_connected: IntGauge,
    pub catalogue_listen_reconnects_total: IntCounter,
    pub catalogue_notifications_total: IntCounter,
    // Rate limits (crate::ratelimit)
    pub rate_limited_total: IntCounterVec,
    // Mail outbox (MailWorker actor)
    pub mail_pending: IntGauge,
    pub mail_oldest_pending_age_seconds: prometheus::Gauge,
    pub mail_sent_total: IntCounterVec,
    pub mail_failures_total: IntCounterVec,
    // CDN purges (crate::purge, PurgeWorker actor)
    pub cdn_purge_pending: IntGauge,
    pub cdn_purge_oldest_pending_seconds: prometheus::Gauge,
    pub cdn_purge_failures_total: IntCounterVec,
    pub cdn_purge_completed_total: IntCounterVec,
    pub cdn_purge_seconds: Histogram,
}

/// `provider` label values of the purge metrics: the providers, and `none` (no CDN).
pub const PURGE_PROVIDERS: &[&str] = &[
    "bunny",
    "cloudfront",
    "cloudflare",
    "akamai",
    "nginx",
    "none",
];
/// Enqueue → confirmed: a fast API call up to hours of backlog.
pub const PURGE_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0,
];

impl Metrics {
    /// Create every metric and register it on `registry` (plus process metrics).
    /// Fails — never panics — on a duplicate or invalid descriptor.
    // The catalogue itself: one declaration per family with its help text, read (and
    // reviewed) as one list.
    #[allow(clippy::too_many_lines)]
    pub fn register(
        registry: &Registry,
        acquire_timeout_secs: f64,
    ) -> Result<Metrics, prometheus::Error> {
        let m = Metrics {
            http_requests_total: IntCounterVec::new(
                Opts::new(
                    "veza_http_requests_total",
                    "HTTP requests answered, by matched route pattern (or \"unmatched\"), method and status code.",
                ),
                &["route", "method", "status"],
            )?,
            http_request_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "veza_http_request_duration_seconds",
                    "Time from request start to response head, by matched route pattern and method.",
                )
                .buckets(HTTP_DURATION_BUCKETS.to_vec()),
                &["route", "method"],
            )?,
            http_malformed_requests_total: http_malformed_requests().cloned().ok_or_else(
                || prometheus::Error::Msg("veza_http_malformed_requests_total".into()),
            )?,
            db_connections: IntGaugeVec::new(
                Opts::new(
                    "veza_db_connections",
                    "Database pool connections by state (open, in_use, idle, max, min), sampled by the DbPool actor.",
                ),
                &["state"],
            )?,
            db_connections_pending: IntGauge::new(
                "veza_db_connections_pending",
                "Database operations waiting for a pooled connection at the last sample (estimate, see docs/OBSERVABILITY.md).",
            )?,
            db_connection_acquire_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "veza_db_connection_acquire_seconds",
                    "Time spent waiting for a pooled connection (operation time minus sea-orm's statement time).",
                )
                .buckets(acquire_buckets(acquire_timeout_secs)),
            )?,
            db_connection_acquire_timeouts_total: IntCounter::new(
                "veza_db_connection_acquire_timeouts_total",
                "Database operations that gave up waiting for a pooled connection.",
            )?,
            db_statement_timeouts_total: IntCounter::new(
                "veza_db_statement_timeouts_total",
                "Database operations abandoned because the database did not answer within VEZA_DB_ACQUIRE_TIMEOUT_MS + VEZA_DB_STATEMENT_TIMEOUT (answered 503 db_unavailable).",
            )?,
            db_read_retries_total: IntCounterVec::new(
                Opts::new(
                    "veza_db_read_retries_total",
                    "Reads outside a transaction run a second time, on another connection, because theirs turned out dead, by outcome of the second run (succeeded, failed).",
                ),
                &["outcome"],
            )?,
            db_connection_wait_seconds_total: prometheus::Counter::new(
                "veza_db_connection_wait_seconds_total",
                "Total time database operations spent waiting for a pooled connection (rate() = seconds of waiting per second; adds up across instances).",
            )?,
            db_connection_use_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "veza_db_connection_use_seconds",
                    "How long an operation held a pooled connection, by route pattern: a statement outside a transaction, or a transaction from BEGIN to its end.",
                )
                .buckets(USE_BUCKETS.to_vec()),
                &["route"],
            )?,
            db_connection_leak_suspicions_total: IntCounterVec::new(
                Opts::new(
                    "veza_db_connection_leak_suspicions_total",
                    "Connections held longer than VEZA_DB_LEAK_THRESHOLD, by route pattern (counted once per hold).",
                ),
                &["route"],
            )?,
            db_pool_stats_last_sample_timestamp_seconds: prometheus::Gauge::new(
                "veza_db_pool_stats_last_sample_timestamp_seconds",
                "Unix time of the DbPool actor's last pool sample (heartbeat).",
            )?,
            db_pool_stats_samples_total: IntCounter::new(
                "veza_db_pool_stats_samples_total",
                "Pool samples taken by the DbPool actor.",
            )?,
            actor_restarts_total: IntCounterVec::new(
                Opts::new(
                    "veza_actor_restarts_total",
                    "Actors restarted after they stopped or died, by actor.",
                ),
                &["actor"],
            )?,
            db_statements_total: IntCounter::new(
                "veza_db_statements_total",
                "SQL statements executed through sea-orm (all callers).",
            )?,
            db_request_query_count: HistogramVec::new(
                HistogramOpts::new(
                    "veza_db_request_query_count",
                    "SQL statements executed per HTTP request, by matched route pattern.",
                )
                .buckets(QUERY_COUNT_BUCKETS.to_vec()),
                &["route"],
            )?,
            db_n1_suspicions_total: IntCounterVec::new(
                Opts::new(
                    "veza_db_n1_suspicions_total",
                    "Requests flagged by the N+1 detector, by route pattern and kind (total, repeat, redundant, sequence).",
                ),
                &["route", "kind"],
            )?,
            query_stats_dropped_total: IntCounter::new(
                "veza_query_stats_dropped_total",
                "Per-request query summaries dropped because the QueryStats mailbox was full or closed.",
            )?,
            db_query_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "veza_db_query_duration_seconds",
                    "SQL statement execution time (after a connection was acquired), by operation and first table.",
                )
                .buckets(QUERY_DURATION_BUCKETS.to_vec()),
                &["op", "table"],
            )?,
            db_slow_queries_total: IntCounterVec::new(
                Opts::new(
                    "veza_db_slow_queries_total",
                    "SQL statements slower than VEZA_SLOW_QUERY_MS, by operation and first table.",
                ),
                &["op", "table"],
            )?,
            db_n1_flagged_requests_total: IntCounterVec::new(
                Opts::new(
                    "veza_db_n1_flagged_requests_total",
                    "Requests with at least one N+1 finding (any kind), by route pattern: the numerator of N1QuerySpike.",
                ),
                &["route"],
            )?,
            cdn_signatures_total: IntCounterVec::new(
                Opts::new(
                    "veza_cdn_signatures_total",
                    "CDN URL signatures by provider and outcome (ok, error).",
                ),
                &["provider", "outcome"],
            )?,
            cdn_fallback_total: IntCounterVec::new(
                Opts::new(
                    "veza_cdn_fallback_total",
                    "Delivery URLs that fell back from the CDN to S3 or local delivery, by reason (sign_error, timeout, unavailable).",
                ),
                &["reason"],
            )?,
            cdn_key_reloads_total: IntCounterVec::new(
                Opts::new(
                    "veza_cdn_key_reloads_total",
                    "CDN key reloads (SIGHUP or key file change) by outcome (ok, error); a failed reload keeps the old key.",
                ),
                &["outcome"],
            )?,
            cdn_signature_reuse_total: IntCounterVec::new(
                Opts::new(
                    "veza_cdn_signature_reuse_total",
                    "CDN signatures answered from the reuse cache (hit) or signed anew (miss); see CDN_SIGNATURE_REUSE.",
                ),
                &["result"],
            )?,
            catalogue_cache_requests_total: IntCounterVec::new(
                Opts::new(
                    "veza_catalogue_cache_requests_total",
                    "Delivery lookups of a track by result: hit, miss (read from the database), bypass (cache not trusted: invalidation listener down).",
                ),
                &["result"],
            )?,
            catalogue_cache_evictions_total: IntCounterVec::new(
                Opts::new(
                    "veza_catalogue_cache_evictions_total",
                    "Catalogue cache entries evicted, by cause: notify (a track changed), reconnect (listener reconnected: all), expired (TTL), size (capacity).",
                ),
                &["cause"],
            )?,
            catalogue_listen_connected: IntGauge::new(
                "veza_catalogue_listen_connected",
                "1 while the catalogue invalidation listener (PostgreSQL LISTEN) is connected; 0 while it reconnects (the cache is bypassed meanwhile). Always 1 on SQLite.",
            )?,
            catalogue_listen_reconnects_total: IntCounter::new(
                "veza_catalogue_listen_reconnects_total",
                "Times the catalogue invalidation listener lost its connection and had to reconnect.",
            )?,
            catalogue_notifications_total: IntCounter::new(
                "veza_catalogue_notifications_total",
                "Track change notifications received by the invalidation listener.",
            )?,
            rate_limited_total: IntCounterVec::new(
                Opts::new(
                    "veza_rate_limited_total",
                    "Requests refused with 429 rate_limited, by the limit that refused them (login_ip, login_email, signup_ip, signup_email, write); a request over two limits counts in both.",
                ),
                &["limit"],
            )?,
            takedown_notice_to_disabled_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "veza_takedown_notice_to_disabled_seconds",
                    "Time from a takedown notice's receipt to the disabling of its tracks (observed when a moderator upholds it).",
                )
                .buckets(TAKEDOWN_BUCKETS.to_vec()),
            )?,
            takedown_decision_to_purged_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "veza_takedown_decision_to_purged_seconds",
                    "Time from a takedown decision or restore to every CDN edge confirming its purge (observed by the CDN purge worker).",
                )
                .buckets(TAKEDOWN_BUCKETS.to_vec()),
            )?,
            mail_pending: IntGauge::new(
                "veza_mail_pending",
                "E-mails in the outbox not sent yet (due or backing off), read from the database by the MailWorker each poll: every instance reports the same figure.",
            )?,
            mail_oldest_pending_age_seconds: prometheus::Gauge::new(
                "veza_mail_oldest_pending_age_seconds",
                "Age of the oldest e-mail not sent yet (0 when none), read by the MailWorker each poll.",
            )?,
            mail_sent_total: IntCounterVec::new(
                Opts::new(
                    "veza_mail_sent_total",
                    "E-mails taken off the outbox by this instance, by how: smtp (the server accepted it) or log (no VEZA_SMTP_URL: logged and marked sent).",
                ),
                &["via"],
            )?,
            mail_failures_total: IntCounterVec::new(
                Opts::new(
                    "veza_mail_failures_total",
                    "Failed sending attempts by this instance, by error: transient (server unreachable, timeout, 4xx: retried with backoff) or permanent (5xx, invalid address: still retried at the longest backoff, visible in the admin API).",
                ),
                &["error"],
            )?,
            cdn_purge_pending: IntGauge::new(
                "veza_cdn_purge_pending",
                "CDN purges in the outbox not yet confirmed by the provider (the whole outbox: every instance reports the same backlog).",
            )?,
            cdn_purge_oldest_pending_seconds: prometheus::Gauge::new(
                "veza_cdn_purge_oldest_pending_seconds",
                "Age of the oldest CDN purge not yet confirmed (0 when none is pending).",
            )?,
            cdn_purge_failures_total: IntCounterVec::new(
                Opts::new(
                    "veza_cdn_purge_failures_total",
                    "Failed CDN purge attempts (retried with backoff), by provider.",
                ),
                &["provider"],
            )?,
            cdn_purge_completed_total: IntCounterVec::new(
                Opts::new(
                    "veza_cdn_purge_completed_total",
                    "CDN purges confirmed by the provider (or done at once without a CDN: provider=\"none\"), by provider.",
                ),
                &["provider"],
            )?,
            cdn_purge_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "veza_cdn_purge_seconds",
                    "Time from a purge's enqueue (the decision's transaction) to the provider's confirmation.",
                )
                .buckets(PURGE_BUCKETS.to_vec()),
            )?,
        };
        for c in m.collectors() {
            registry.register(c)?;
        }
        // Known label values exist at zero from the start, so rate() and alerts work
        // before the first event.
        for result in ["hit", "miss"] {
            m.cdn_signature_reuse_total.with_label_values(&[result]);
        }
        for outcome in ["succeeded", "failed"] {
            m.db_read_retries_total.with_label_values(&[outcome]);
        }
        for result in ["hit", "miss", "bypass"] {
            m.catalogue_cache_requests_total
                .with_label_values(&[result]);
        }
        for via in ["smtp", "log"] {
            m.mail_sent_total.with_label_values(&[via]);
        }
        for error in ["transient", "permanent"] {
            m.mail_failures_total.with_label_values(&[error]);
        }
        for provider in PURGE_PROVIDERS {
            m.cdn_purge_failures_total.with_label_values(&[provider]);
            m.cdn_purge_completed_total.with_label_values(&[provider]);
        }
        for limit in crate::ratelimit::Limit::ALL {
            m.rate_limited_total.with_label_values(&[limit.label()]);
        }
        Ok(m)
    }

    /// Create the per-route series at zero, so `rate()` and alerts work before the first
    /// event (Prometheus' "avoid missing metrics"): N+1 findings for every route × kind,
    /// flagged requests and leak suspicions for every route. `routes` are the service's
    /// route patterns; `kinds` the N+1 finding kinds.
    pub fn init_route_series(&self, routes: &[&str], kinds: &[&str]) {
        for route in routes {
            for kind in kinds {
                self.db_n1_suspicions_total
                    .with_label_values(&[route, kind]);
            }
            self.db_n1_flagged_requests_total
                .with_label_values(&[route]);
            self.db_connection_leak_suspicions_total
                .with_label_values(&[route]);
        }
    }

    /// Every collector of the service, the process collector included: what
    /// [`Metrics::register`] registers and [`Metrics::descriptions`] lists.
    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        let mut v: Vec<Box<dyn Collector>> = vec![
            Box::new(self.takedown_notice_to_disabled_seconds.clone()),
            Box::new(self.takedown_decision_to_purged_seconds.clone()),
            Box::new(self.http_requests_total.clone()),
            Box::new(self.http_request_duration_seconds.clone()),
            Box::new(self.http_malformed_requests_total.clone()),
            Box::new(self.db_connections.clone()),
            Box::new(self.db_connections_pending.clone()),
            Box::new(self.db_connection_acquire_seconds.clone()),
            Box::new(self.db_connection_acquire_timeouts_total.clone()),
            Box::new(self.db_statement_timeouts_total.clone()),
            Box::new(self.db_read_retries_total.clone()),
            Box::new(self.db_connection_wait_seconds_total.clone()),
            Box::new(self.db_connection_use_seconds.clone()),
            Box::new(self.db_connection_leak_suspicions_total.clone()),
            Box::new(self.db_pool_stats_last_sample_timestamp_seconds.clone()),
            Box::new(self.db_pool_stats_samples_total.clone()),
            Box::new(self.actor_restarts_total.clone()),
            Box::new(self.db_statements_total.clone()),
            Box::new(self.db_request_query_count.clone()),
            Box::new(self.db_n1_suspicions_total.clone()),
            Box::new(self.db_n1_flagged_requests_total.clone()),
            Box::new(self.query_stats_dropped_total.clone()),
            Box::new(self.db_query_duration_seconds.clone()),
            Box::new(self.db_slow_queries_total.clone()),
            Box::new(self.cdn_signatures_total.clone()),
            Box::new(self.cdn_fallback_total.clone()),
            Box::new(self.cdn_key_reloads_total.clone()),
            Box::new(self.cdn_signature_reuse_total.clone()),
            Box::new(self.catalogue_cache_requests_total.clone()),
            Box::new(self.catalogue_cache_evictions_total.clone()),
            Box::new(self.catalogue_listen_connected.clone()),
            Box::new(self.catalogue_listen_reconnects_total.clone()),
            Box::new(self.catalogue_notifications_total.clone()),
            Box::new(self.rate_limited_total.clone()),
            Box::new(self.mail_pending.clone()),
            Box::new(self.mail_oldest_pending_age_seconds.clone()),
            Box::new(self.mail_sent_total.clone()),
            Box::new(self.mail_failures_total.clone()),
            Box::new(self.cdn_purge_pending.clone()),
            Box::new(self.cdn_purge_oldest_pending_seconds.clone()),
            Box::new(self.cdn_purge_failures_total.clone()),
            Box::new(self.cdn_purge_completed_total.clone()),
            Box::new(self.cdn_purge_seconds.clone()),
        ];
        #[cfg(target_os = "linux")]
        v.push(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        v
    }

    /// (family name, help text) of every metric the service can export — including
    /// label vectors that have no child yet and so are absent from a scrape.
    pub fn descriptions(&self) -> Vec<(String, String)> {
        self.collectors()
            .iter()
            .flat_map(|c| {
                c.desc()
                    .into_iter()
                    .map(|d| (d.fq_name.clone(), d.help.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
