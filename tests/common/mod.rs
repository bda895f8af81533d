//! Fixtures shared by every test crate (`tests/api` and the top-level test files): the
//! one skip rule, the tools tests run, and the processes they run beside the
//! application: a PostgreSQL database per test (and a PostgreSQL server of a test's
//! own, to restart), s3s-fs, moto (CloudFront), nginx, the headless Chromium
//! of the playback harness, and the real `veza` binary. The in-process application
//! (spawned on port 0 over a fresh database, driven over HTTP) is
//! `tests/api/helpers.rs`.
//!
//! A test that cannot run here (a tool or server missing) goes through [`skip`] and
//! nothing else: under `CI=true` that fails the test, naming what is missing; otherwise
//! it prints `SKIPPED <test>: <why>` and the test returns. No test returns early
//! without it, so a green run in CI means every test ran.
// Each test crate uses a subset of these, from a private module.
#![allow(dead_code, unreachable_pub)]

pub mod binary;
pub mod chromium;
pub mod moto;
pub mod nginx;
pub mod pg_server;
pub mod postgres;
pub mod s3s_fs;
pub mod smtp;
pub mod tools;

use std::time::{Duration, Instant};

/// Whether this run is CI's (`CI=true`), where no test may skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The one skip rule: a test that cannot run here fails under `CI=true`, naming why;
/// elsewhere it prints `SKIPPED <test>: <why>` to stderr (uncaptured) and the caller
/// returns.
pub fn skip(why: &str) {
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    assert!(
        !in_ci(),
        "{test} cannot run: {why}; CI=true, where no test may skip (scripts/setup.sh installs what the tests need)"
    );
    // Straight to the process's stderr: the test harness captures `eprintln!` of a
    // passing test, and a skip must show in the run's output.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A TCP port free on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `check` until it returns Some or the deadline passes.
pub async fn poll<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` within `deadline`.
pub async fn listening(port: u16, deadline: Duration) -> bool {
    poll(deadline, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await
    .is_some()
}

/// Send `sig` (a name: TERM, HUP, STOP, CONT…) to process `pid`; whether it was sent.
pub fn signal(pid: u32, sig: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// The HLS origin's secret every test app and served binary gets unless a test removes
/// it (the origin is off without one); test clients send it as the CDN would.
pub const ORIGIN_SECRET: &str = "test-origin-secret-4d1f";
/// `VEZA_ORIGIN_SECRET_HEADER`'s default.
pub const ORIGIN_SECRET_HEADER: &str = "X-Origin-Secret";
