//! The headless browser of the playback tests: Debian's Chromium, driven by node with
//! the npm packages of package-lock.json (playwright-core, hls.js), which
//! `scripts/setup.sh` installs. The page and its driver are `tests/browser/play.mjs`.

use std::path::{Path, PathBuf};

/// The repository (where `node_modules` and `tests/browser/play.mjs` are).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `CHROMIUM`, or Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What the harness lacks here, if anything.
fn missing() -> Option<String> {
    if super::tools::node().is_none() {
        Some("node is not on PATH".to_string())
    } else if !chromium().is_file() {
        Some(format!("{} is missing", chromium().display()))
    } else if !repo()
        .join("node_modules/playwright-core/package.json")
        .is_file()
        || !repo().join("node_modules/hls.js/dist/hls.min.js").is_file()
    {
        Some("node_modules lacks playwright-core or hls.js (npm ci)".to_string())
    } else {
        None
    }
}

/// Whether the browser harness can run: node on PATH, Chromium, and the npm packages.
/// Missing → false after the skip rule.
pub fn available() -> bool {
    match missing() {
        None => true,
        Some(why) => {
            super::skip(&format!("the browser harness cannot run: {why}"));
            false
        }
    }
}
