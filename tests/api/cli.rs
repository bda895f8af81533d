//! The `veza` binary: configuration errors exit 2 naming the variable, secrets never
//! printed, the offline N+1 analyzer, and docs kept in sync with the code.

use crate::common::binary::veza;
use std::collections::BTreeSet;

#[test]
fn each_bad_value_exits_2_naming_its_variable() {
    for (var, value) in [
        ("VEZA_WORKERS", "abc"),
        ("VEZA_WORKERS", "0"),
        ("VEZA_BIND", "nonsense"),
        ("DATABASE_URL", "ftp://x"),
        ("VEZA_DB_MAX_CONNECTIONS", "0"),
        ("VEZA_DB_ACQUIRE_TIMEOUT_MS", "-1"),
        ("VEZA_POOL_STATS_INTERVAL", "often"),
        ("VEZA_AUTO_MIGRATE", "maybe"),
        ("VEZA_N1_THRESHOLD", "0"),
        ("VEZA_N1_REPEAT_THRESHOLD", "1"),
        ("VEZA_SLOW_QUERY_MS", "fast"),
        ("VEZA_QUERY_STATS", "perhaps"),
        ("VEZA_MAX_CONNECTIONS", "0"),
        ("VEZA_CLIENT_REQUEST_TIMEOUT", "never"),
        ("VEZA_SHUTDOWN_TIMEOUT", "1500ms"),
        ("VEZA_DB_STATEMENT_TIMEOUT", "0s"),
        ("S3_OPERATION_TIMEOUT", "forever"),
        ("VEZA_LOGIN_RATE_LIMIT", "15"),
        ("VEZA_SIGNUP_RATE_LIMIT", "0/5m"),
        ("VEZA_WRITE_RATE_LIMIT", "60/0s"),
        ("VEZA_TRUSTED_PROXIES", "10.0.0.0/33"),
    ] {
        for cmd in [&["check-config"][..], &["serve"][..], &["migrate"][..]] {
            let out = veza(cmd, &[(var, value)]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{cmd:?} {var}={value}: {stderr}"
            );
            assert!(stderr.contains(var), "{cmd:?} {var}={value}: {stderr}");
        }
    }
}

#[test]
fn check_config_reports_every_problem_on_its_own_line() {
    let out = veza(
        &["check-config"],
        &[
            ("VEZA_WORKERS", "abc"),
            ("VEZA_BIND", "nonsense"),
            ("VEZA_N1_ALLOW", "not-a-route"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    let out = veza(&["check-config"], &[("VEZA_N1_ALLOW", "not-a-route")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VEZA_N1_ALLOW"));
}

#[test]
fn check_config_prints_effective_values_with_secrets_redacted() {
    let out = veza(
        &["check-config"],
        &[
            (
                "DATABASE_URL",
                "postgres://app:hunter2-secret@127.0.0.1:1/veza",
            ),
            ("VEZA_WORKERS", "3"),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("VEZA_WORKERS=3"), "{stdout}");
    assert!(
        stdout.contains("DATABASE_URL=postgres://app:***@127.0.0.1:1/veza"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");

    // A bad URL with a password is reported without the password.
    let out = veza(
        &["check-config"],
        &[("DATABASE_URL", "mysql://app:hunter2-secret@db/x")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
}

#[test]
fn failing_database_logs_never_contain_the_password() {
    // Port 1 is closed: migrate fails, and its errors must not echo the URL's password.
    let out = veza(
        &["migrate"],
        &[
            (
                "DATABASE_URL",
                "postgres://app:hunter2-secret@127.0.0.1:1/veza",
            ),
            ("VEZA_DB_ACQUIRE_TIMEOUT_MS", "500"),
            ("RUST_LOG", "trace"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("hunter2"), "{all}");
    assert!(all.contains("migration failed"), "{all}");
}

#[test]
fn help_lists_each_variable_with_its_default() {
    for (sub, vars) in [
        (
            "serve",
            &[
                "VEZA_BIND",
                "VEZA_WORKERS",
                "DATABASE_URL",
                "VEZA_POOL_STATS_INTERVAL",
            ][..],
        ),
        ("migrate", &["DATABASE_URL", "VEZA_DB_MAX_CONNECTIONS"][..]),
        ("seed-demo", &["VEZA_STORAGE_DIR"][..]),
        ("check-config", &["VEZA_N1_THRESHOLD"][..]),
    ] {
        let out = veza(&[sub, "--help"], &[]);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        for v in vars {
            let def = veza::config::env_var(v).unwrap().default_text();
            assert!(
                text.lines().any(|l| l.contains(v) && l.contains(&def)),
                "{sub} --help lacks {v} with default {def}:\n{text}"
            );
        }
    }
}

#[test]
fn seed_demo_twice_does_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/v.db?mode=rwc", dir.path().display());
    let media = dir.path().join("media");
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("VEZA_STORAGE_DIR", media.to_str().unwrap()),
    ];
    assert_eq!(veza(&["seed-demo"], &env).status.code(), Some(0));
    assert_eq!(veza(&["seed-demo"], &env).status.code(), Some(0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n = rt.block_on(async {
        use sea_orm::{EntityTrait, PaginatorTrait};
        let c = sea_orm::Database::connect(db.as_str()).await.unwrap();
        veza::db::entities::track::Entity::find()
            .count(&c)
            .await
            .unwrap()
    });
    assert_eq!(n, 20);
    let hls = media.join("hls/1");
    let names: BTreeSet<String> = std::fs::read_dir(&hls)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.contains("master.m3u8") && names.contains("media.m3u8"));
    let listed = std::fs::read_to_string(hls.join("media.m3u8")).unwrap();
    let listed: BTreeSet<String> = listed
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let on_disk: BTreeSet<String> = names.into_iter().filter(|n| n.ends_with(".ts")).collect();
    assert!(listed.len() >= 4, "{listed:?}");
    assert_eq!(listed, on_disk);
}

#[test]
fn n1_analyze_reports_findings_and_rejects_malformed_input_with_line_number() {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/n1/n_plus_one.ndjson"
    );
    let out = veza(&["n1", "analyze", data], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("repeat"), "{text}");
    assert!(
        text.lines().last().unwrap().starts_with("analyzed "),
        "{text}"
    );

    let out = veza(&["n1", "analyze", "--json", data], &[]);
    assert_eq!(out.status.code(), Some(0));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["kind"].is_string());
    }

    // A threshold from the environment changes the verdict: nothing at 1000 repeats.
    let out = veza(
        &["n1", "analyze", data],
        &[
            ("VEZA_N1_REPEAT_THRESHOLD", "1000"),
            ("VEZA_N1_THRESHOLD", "1000"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(": 0 findings"), "{text}");

    let malformed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/n1/malformed.ndjson"
    );
    let out = veza(&["n1", "analyze", malformed], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every variable name the code reads is documented, with the code's default.
#[test]
fn env_variables_doc_matches_the_code() {
    let root = env!("CARGO_MANIFEST_DIR");
    let doc = std::fs::read_to_string(format!("{root}/docs/ENV_VARIABLES.md")).unwrap();
    let mut names = BTreeSet::new();
    let mut stack = vec![std::path::PathBuf::from(format!("{root}/src"))];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    let is_var = ["VEZA_", "CDN_", "S3_", "AWS_"]
                        .iter()
                        .any(|p| piece.starts_with(p))
                        || piece == "DATABASE_URL"
                        || piece == "STORAGE_BACKEND";
                    // a bare prefix such as "CDN_" is not a variable
                    if is_var
                        && !piece.ends_with('_')
                        && piece
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    {
                        names.insert(piece.to_string());
                    }
                }
            }
        }
    }
    assert!(
        names.contains("VEZA_WORKERS") && names.len() > 10,
        "{names:?}"
    );
    for name in &names {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/ENV_VARIABLES.md does not document {name}"
        );
        let documented = veza::config::env_var(name);
        assert!(
            documented.is_some(),
            "{name} is read but missing from config::ENV_VARS"
        );
    }
    for v in veza::config::ENV_VARS {
        let default = v.default_text();
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}`", v.name())))
            .unwrap_or_else(|| panic!("no table row for {}", v.name()));
        assert!(
            row.contains(&format!("`{default}`")),
            "{}: documented default differs from {default:?}: {row}",
            v.name()
        );
    }
}

/// The example env file names every variable, and what it shows uncommented-out would
/// be accepted.
#[test]
fn example_env_file_covers_every_variable_and_parses() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/veza.env.example"
    ))
    .unwrap();
    for v in veza::config::ENV_VARS {
        assert!(
            text.contains(&format!("#{}=", v.name())),
            "conf/veza.env.example lacks {}",
            v.name()
        );
    }
    // The default-valued lines, uncommented, form a valid configuration.
    let env: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !k.is_empty())
        .filter(|(k, _)| !k.starts_with("CDN_") && !k.starts_with("S3_") && *k != "STORAGE_BACKEND")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = veza(&["check-config"], &pairs);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
