#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Replays every committed fuzz input (`fuzz/corpus/<target>/`, the minimised corpora,
//! and `fuzz/regressions/<target>/`, inputs of crashes found and fixed) through the very
//! harnesses the libFuzzer targets call: `fuzz/src/lib.rs` is compiled here as a module.
//! No fuzzing engine or nightly flag is needed. See docs/RELIABILITY.md, "Fuzzing".

use std::path::{Path, PathBuf};

// The harnesses are the fuzz crate's public API there, module-private here; their casts
// derive fuzz parameters from input bytes.
#[path = "../fuzz/src/lib.rs"]
#[allow(unreachable_pub, clippy::cast_possible_truncation)]
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
    otlp_trace,
    cdn_sign,
    cdn_url,
    media_token,
    paths,
    playlist,
    http_range,
    config,
);

/// The findings of the fuzzing campaign, spelt out (their inputs are also under
/// `fuzz/regressions/`). See docs/RELIABILITY.md, "Fuzzing".
mod findings {
    use veza::cdn::{PreparedSigner, Provider, ProviderConfig, SignRequest, VerifyContext};
    use veza::n1::normalize;

    fn signer(p: Provider, key: &str) -> PreparedSigner {
        PreparedSigner::new(&ProviderConfig::new(p, key)).unwrap()
    }

    #[test]
    fn normalize_is_idempotent_on_the_found_inputs() {
        for sql in [
            "SELECT : ::",
            "INSERT INTO t VALUES ((SELECT 1 FROM u VALUES (1), (2)), 3), (4)",
            "INSERT INTG t (a, b) VALUES ( INTG t (a, b) VALUES (1, 'x'), ( 'z') RE1, 'x'), ( 'z') RENI6G id",
        ] {
            let n = normalize(sql);
            assert_eq!(normalize(&n), n, "{sql}");
        }
        assert_eq!(normalize("select : ::int"), "select : ::int");
    }

    #[test]
    fn signers_refuse_urls_they_could_not_sign_verifiably() {
        let at = |url: &str, issued: u64| SignRequest::new(url, 2_000_000_000, issued);
        let bunny = signer(Provider::Bunny, "k");
        for url in [
            "https://z.example/bcdn_token=x&expires=1/a.ts",
            "https://z.example/a.ts?token_path=/b/",
            "https://z.example/a.ts?token_ignore_params=true",
        ] {
            assert!(bunny.sign(&at(url, 0)).is_err(), "{url}");
        }
        let akamai = signer(Provider::Akamai, "0a1b");
        assert!(akamai.sign(&at("https://a.example/x&y.ts", 0)).is_err());
        let cloudflare = signer(Provider::Cloudflare, "k");
        assert!(
            cloudflare
                .sign(&at("https://c.example/a", 5_501_184))
                .is_err()
        );
        assert!(
            cloudflare
                .sign(&at("https://c.example/a?x=y?verify=1", 1_700_000_000))
                .is_err()
        );
        let nginx = signer(Provider::Nginx, "k");
        assert!(nginx.sign(&at("https://n.example/a?", 0)).is_err());
    }

    /// A plain Bunny V2 token whose base64 starts with `1-` (1 in 4096) was taken for
    /// an IP-locked one (`HS256-1-`) and refused.
    #[test]
    fn bunny_plain_tokens_starting_with_1_dash_verify() {
        let bunny = signer(Provider::Bunny, "k");
        let ctx = VerifyContext {
            now: 1_700_000_000,
            ..VerifyContext::default()
        };
        let found = (2_000_000_000u64..2_000_200_000)
            .map(|e| {
                bunny
                    .sign(&SignRequest::new("https://z.example/a.ts", e, 0))
                    .unwrap()
            })
            .find(|u| u.contains("token=HS256-1-"))
            .expect("a token starting with 1- within 200 000 expiries");
        assert_eq!(bunny.verify(&found, &ctx), Ok(()), "{found}");
    }
}
