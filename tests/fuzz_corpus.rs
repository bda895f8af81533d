#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Replays every committed fuzz input (`fuzz/corpus/<target>/`, the minimised corpora,
//! and `fuzz/regressions/<target>/`, inputs of crashes found and fixed) through the very
//! harnesses the libFuzzer targets call: `fuzz/src/lib.rs` is compiled here as a module.
//! No fuzzing engine or nightly flag is needed. See docs/RELIABILITY.md, "Fuzzing".

use std::path::{Path, PathBuf};

#[path = "../fuzz/src/lib.rs"]
mod harness;

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn replay(target: &str) {
    let run = harness::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no harness named {target}"));
    let files = inputs(target);
    assert!(!files.is_empty(), "no committed corpus for {target}");
    let failed: Vec<String> = files
        .iter()
        .filter(|p| {
            let data = std::fs::read(p).unwrap();
            std::panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail (panic messages above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        #[test]
        fn every_fuzz_target_is_replayed() {
            let tested = [$(stringify!($target)),*];
            let targets: Vec<&str> = harness::TARGETS.iter().map(|(n, _)| *n).collect();
            assert_eq!(targets, tested);
            let bins = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
            for t in tested {
                assert!(bins.join(format!("{t}.rs")).is_file(), "no fuzz target {t}");
            }
        }
    };
}

replay_tests!(
    sql_normalize,
    n1_trace,
    cdn_sign,
    cdn_url,
    media_token,
    paths,
    playlist,
    http_range,
    config,
);
