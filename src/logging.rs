//! The process logger: the binary's `env_logger`, wrapped so that a malformed request is
//! counted and reported quietly instead of as an error.
//!
//! actix-http answers a request head it cannot parse (a header line without a colon,
//! an invalid method or version, a head over its size limit) with a bodiless 400 (431
//! for an oversized head) and closes the connection, before any middleware or
//! `on_connect` data can see it; its only report is one `ERROR` line per request from
//! its dispatcher (target `actix_http::h1::dispatcher`, message `stream error: request
//! parse error: …`; actix-http 3.x emits it through `tracing`, which forwards to `log`).
//! Scanners and broken clients turned that into one ERROR line each (200 malformed
//! requests, 200 ERROR lines), and nothing counted them.
//!
//! [`install`] wraps the configured logger: that one record is taken out of the stream,
//! counted in `veza_http_malformed_requests_total` (process-wide:
//! [`crate::metrics::http_malformed_requests`]) and reported at `WARN` at most once per
//! [`REPORT_INTERVAL`], with the number of reports suppressed since the last one. Every
//! other record, other dispatcher errors included (a response body failing, a write of
//! zero bytes), passes through unchanged. The wrapper keeps the `log` level at `ERROR` at
//! least, whatever `RUST_LOG` says, so the count never depends on the log filter.
//!
//! Matching a third-party message is the price of having no hook: the black-box test
//! `http_semantics::malformed_requests_are_counted_and_logged_quietly` fails if an
//! actix-http upgrade changes the target or the wording.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The module of actix-http that reports malformed request heads.
pub const DISPATCHER_TARGET: &str = "actix_http::h1::dispatcher";

/// The start of its report of a request head it could not parse.
const PARSE_ERROR: &str = "stream error: request parse error: ";

/// At most one `WARN` line about malformed requests per interval.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Install `builder`'s logger, wrapped (see the module documentation).
pub fn install(mut builder: env_logger::Builder) -> Result<(), log::SetLoggerError> {
    let inner = builder.build();
    let filter = inner.filter();
    log::set_boxed_logger(Box::new(QuietMalformed::new(inner)))?;
    log::set_max_level(filter.max(LevelFilter::Error));
    Ok(())
}

/// A logger that counts actix's malformed-request reports and rate-limits them at
/// `WARN`, passing everything else to `inner`.
pub struct QuietMalformed<L> {
    inner: L,
    reports: Mutex<Reports>,
}

#[derive(Default)]
struct Reports {
    last: Option<Instant>,
    suppressed: u64,
}

impl<L: Log> QuietMalformed<L> {
    pub fn new(inner: L) -> QuietMalformed<L> {
        QuietMalformed {
            inner,
            reports: Mutex::new(Reports::default()),
        }
    }

    /// Count one malformed request; the `WARN` line to write now, if any.
    fn malformed(&self, cause: &str, now: Instant) -> Option<String> {
        if let Some(counter) = crate::metrics::http_malformed_requests() {
            counter.inc();
        }
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        if reports
            .last
            .is_some_and(|last| now.duration_since(last) < REPORT_INTERVAL)
        {
            reports.suppressed += 1;
            return None;
        }
        let suppressed = std::mem::take(&mut reports.suppressed);
        reports.last = Some(now);
        Some(format!(
            "malformed request answered 400 by actix-http: {cause} ({suppressed} more since \
             the last report; at most one report per {}s, all counted in \
             veza_http_malformed_requests_total)",
            REPORT_INTERVAL.as_secs()
        ))
    }
}

impl<L: Log> Log for QuietMalformed<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        (metadata.target() == DISPATCHER_TARGET && metadata.level() == Level::Error)
            || self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if record.target() == DISPATCHER_TARGET && record.level() == Level::Error {
            let text = record.args().to_string();
            if let Some(cause) = text.strip_prefix(PARSE_ERROR) {
                if let Some(line) = self.malformed(cause, Instant::now()) {
                    self.inner.log(
                        &Record::builder()
                            .level(Level::Warn)
                            .target("veza::http")
                            .args(format_args!("{line}"))
                            .build(),
                    );
                }
                return;
            }
        }
        if self.inner.enabled(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps (level, target, message) of what it is given.
    #[derive(Default)]
    struct Capture(Mutex<Vec<(Level, String, String)>>);

    impl Log for &Capture {
        fn enabled(&self, m: &Metadata<'_>) -> bool {
            m.level() <= Level::Warn
        }
        fn log(&self, r: &Record<'_>) {
            self.0
                .lock()
                .unwrap()
                .push((r.level(), r.target().to_string(), r.args().to_string()));
        }
        fn flush(&self) {}
    }

    fn record<'a>(level: Level, target: &'a str, args: std::fmt::Arguments<'a>) -> Record<'a> {
        Record::builder()
            .level(level)
            .target(target)
            .args(args)
            .build()
    }

    #[test]
    fn parse_errors_are_counted_and_reported_once_per_interval() {
        let capture = Capture::default();
        let logger = QuietMalformed::new(&capture);
        let counter = crate::metrics::http_malformed_requests().unwrap();
        let before = counter.get();
        for _ in 0..200 {
            logger.log(&record(
                Level::Error,
                DISPATCHER_TARGET,
                format_args!("{PARSE_ERROR}invalid Header provided"),
            ));
        }
        assert!(counter.get() >= before + 200);
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].0, Level::Warn);
        assert!(lines[0].2.contains("invalid Header provided"), "{lines:?}");

        // The next report says how many were not.
        let later = Instant::now() + REPORT_INTERVAL;
        let line = logger.malformed("invalid method", later).unwrap();
        assert!(line.contains("invalid method (199 more"), "{line}");
        assert!(logger.malformed("x", later).is_none());
    }

    #[test]
    fn other_records_pass_through_as_they_are() {
        let capture = Capture::default();
        let logger = QuietMalformed::new(&capture);
        let io = format_args!("stream error: I/O error: Connection reset by peer");
        logger.log(&record(Level::Error, DISPATCHER_TARGET, io));
        logger.log(&record(
            Level::Warn,
            "veza::delivery",
            format_args!("fallback"),
        ));
        logger.log(&record(
            Level::Info,
            "veza::cli",
            format_args!("filtered out"),
        ));
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0].0, Level::Error);
        assert_eq!(lines[0].1, DISPATCHER_TARGET);
        assert_eq!(lines[1].2, "fallback");
        assert!(
            logger.enabled(
                &Metadata::builder()
                    .level(Level::Error)
                    .target(DISPATCHER_TARGET)
                    .build()
            )
        );
    }
}
