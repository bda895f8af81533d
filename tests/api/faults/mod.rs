//! Load and faults (docs/RELIABILITY.md, "Load and faults"): the service under sustained
//! load and while what it depends on fails, one concern a file:
//! - [`soak`]: sustained load on PostgreSQL, memory and descriptors flat;
//! - [`shutdown`]: SIGTERM under load, and the shutdown timeout;
//! - [`database_outage`]: PostgreSQL backends terminated, a network partition;
//! - [`database_restart`]: a PostgreSQL server of the test's own restarted under load;
//! - [`storage_outage`]: the S3 server stalled and killed;
//! - [`cdn_signer`]: the CDN key file deleted and corrupted, a CloudFront signing flood;
//! - [`client_limits`]: slow clients, oversized headers, the connection cap.
//!
//! [`load`] is the load generator they share.
//!
//! These are the short versions (the README's test command). `scripts/faults.sh` runs the
//! same scenarios at full length (`VEZA_FAULTS_FULL=1`: longer phases, more
//! connections) and `scripts/soak.sh` the 60 s soak with wrk. Every scenario prints one
//! `FIGURES <name> <json>` line (appended to `$VEZA_FAULTS_REPORT` when set).

mod cdn_signer;
mod client_limits;
mod database_outage;
mod database_restart;
mod load;
mod shutdown;
mod soak;
mod storage_outage;

use std::time::Duration;

use crate::common::binary::{Served, serve};
use crate::helpers::link_demo_media;

// ---------------------------------------------------------------------------------------
// Scale and figures

/// Durations and concurrency: short in the test suite, full length under
/// `VEZA_FAULTS_FULL=1` (scripts/faults.sh).
struct Scale {
    soak: Duration,
    soak_conns: usize,
    /// Length of one fault phase (before / during / after).
    phase: Duration,
    conns: usize,
    /// Slow-client attackers of each kind.
    slow_clients: usize,
}

/// The seeded app of the database fault scenarios: a 1 s bound on acquiring a
/// connection and on a statement, and a pool sample every 250 ms.
fn database_fault_options() -> crate::helpers::Options {
    crate::helpers::Options::default()
        .seeded()
        .env("VEZA_DB_ACQUIRE_TIMEOUT_MS", "1000")
        .env("VEZA_DB_STATEMENT_TIMEOUT", "1s")
        .env("VEZA_POOL_STATS_INTERVAL", "250ms")
}

fn scale() -> Scale {
    if std::env::var("VEZA_FAULTS_FULL").is_ok_and(|v| v == "1") {
        Scale {
            soak: Duration::from_secs(60),
            soak_conns: 256,
            phase: Duration::from_secs(10),
            conns: 128,
            slow_clients: 400,
        }
    } else {
        Scale {
            soak: Duration::from_secs(15),
            soak_conns: 64,
            phase: Duration::from_secs(2),
            conns: 32,
            slow_clients: 64,
        }
    }
}

/// Print (and append to `$VEZA_FAULTS_REPORT`) what a scenario measured.
fn figures(name: &str, value: &serde_json::Value) {
    let line = format!("FIGURES {name} {value}");
    eprintln!("{line}");
    if let Ok(path) = std::env::var("VEZA_FAULTS_REPORT") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

const MEDIA_KEY: &str = "faults-media-signing-key-0123456789abcdef";

/// `veza serve --demo` (the real binary) in `dir`, over `database_url`, the demo media
/// linked into its storage directory `dir/media`; logs quiet but for start and stop.
fn start_veza(dir: tempfile::TempDir, database_url: &str, env: &[(&str, &str)]) -> Served {
    link_demo_media(&dir.path().join("media"));
    let mut all = vec![
        ("DATABASE_URL", database_url),
        ("VEZA_MEDIA_SIGNING_KEY", MEDIA_KEY),
        (
            "RUST_LOG",
            "warn,veza::cli=info,veza::startup=info,actix_server=info",
        ),
    ];
    all.extend_from_slice(env);
    serve(dir, &["serve", "--demo"], &all)
}
