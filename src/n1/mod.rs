//! N+1 and query-shape detection: normalise each SQL statement into a shape
//! ([`fingerprint`]), accumulate the shapes of one request cheaply on the hot
//! path ([`recorder`]), decide findings purely ([`detector`]), and analyse
//! recorded traces offline ([`trace`], `veza n1 analyze`), including
//! OpenTelemetry traces from any service ([`otlp`]).
//!
//! Typical live use (per request):
//!
//! ```
//! use std::time::Duration;
//! use veza::n1::{DetectorConfig, Kind, RequestRecorder, detect};
//!
//! let rec = RequestRecorder::new("/api/v1/playlists/{id}", "GET");
//! for id in 0..6u64 {
//!     rec.record(r#"SELECT * FROM "tracks" WHERE "id" = $1"#, Some(id), Duration::from_micros(80));
//! }
//! let findings = detect(&rec.finish(), &DetectorConfig::default());
//! assert_eq!(findings[0].kind, Kind::Repeat);
//! assert_eq!(findings[0].count, 6);
//! ```

pub mod detector;
pub mod fingerprint;
pub mod otlp;
pub mod recorder;
pub mod trace;

pub use detector::{
    DetectorConfig, Finding, Kind, LogDecision, LogRateLimiter, RequestSummary, ShapeStats, detect,
    parse_allowlist,
};
pub use fingerprint::{FingerprintId, Op, ParseFingerprintError, classify, fnv1a64, normalize};
pub use otlp::{Analysis, Format, OtlpStats, analyze_input};
pub use recorder::RequestRecorder;
pub use trace::{Report, TraceError, analyze};
