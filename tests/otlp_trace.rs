#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `veza n1 analyze` on OTLP JSON traces written by a real OpenTelemetry SDK: the
//! Python SDK with its sqlite3 instrumentation (tests/otel/make_trace.py, packages
//! pinned in tests/otel/requirements.txt, installed by scripts/setup.sh into
//! target/otel-venv) runs an N+1 request and a clean one. Skipped with a reason when
//! that Python environment is missing, except under CI=true, where it fails
//! (`tests/common`'s skip rule).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use veza::n1::{FingerprintId, normalize};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The venv's Python (or `VEZA_OTEL_PYTHON`), if it imports the SDK packages.
fn otel_python() -> Result<PathBuf, String> {
    let python = std::env::var_os("VEZA_OTEL_PYTHON").map_or_else(
        || Path::new(ROOT).join("target/otel-venv/bin/python"),
        PathBuf::from,
    );
    let probe = Command::new(&python)
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.instrumentation.sqlite3, \
             opentelemetry.exporter.otlp.proto.common.trace_encoder",
        ])
        .output()
        .map_err(|e| format!("{}: {e} (run scripts/setup.sh)", python.display()))?;
    if !probe.status.success() {
        return Err(format!(
            "{} cannot import the OpenTelemetry SDK packages (run scripts/setup.sh): {}",
            python.display(),
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    Ok(python)
}

fn make_trace(python: &Path, out: &Path, args: &[&str], semconv: Option<&str>) -> String {
    let mut cmd = Command::new(python);
    cmd.arg(Path::new(ROOT).join("tests/otel/make_trace.py"))
        .arg(out)
        .args(args)
        .env_remove("OTEL_SEMCONV_STABILITY_OPT_IN");
    if let Some(opt_in) = semconv {
        cmd.env("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in);
    }
    let run = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "make_trace.py {args:?}: {stderr}");
    stderr
}

/// `veza n1 analyze ARGS` with an empty environment, outside the repository.
fn analyze(args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["n1", "analyze"];
    all.extend_from_slice(args);
    let out = common::binary::veza(&all, &[]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn n1_analyze_finds_the_loop_in_a_real_opentelemetry_sdk_trace() {
    let python = match otel_python() {
        Ok(p) => p,
        Err(reason) => {
            common::skip(&format!("the OpenTelemetry SDK is missing: {reason}"));
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let author_query =
        FingerprintId::of_normalized(&normalize("SELECT name FROM authors WHERE id = ?"))
            .to_string();
    // The file exporters' layout (a line per export batch, hex ids) with the older
    // `db.statement`; and one pretty-printed document with protobuf's base64 ids and
    // the current `db.query.text`.
    let variants: [(&str, &[&str], Option<&str>, &str); 2] = [
        ("lines.jsonl", &[], None, "\"db.statement\""),
        (
            "document.json",
            &["--layout", "document", "--ids", "base64"],
            Some("database"),
            "\"db.query.text\"",
        ),
    ];
    for (name, args, semconv, attribute) in variants {
        let file = dir.path().join(name);
        let made = make_trace(&python, &file, args, semconv);
        assert!(made.contains("12 spans (8 posts)"), "{made}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(attribute), "{name}: no {attribute}");
        assert!(
            text.contains("\"telemetry.sdk.name\"") && text.contains("\"opentelemetry\""),
            "{name}: not written by the SDK"
        );
        if args.is_empty() {
            // The spans of the N+1 trace are spread over several export batches,
            // and its parent SERVER span comes after the first of its database spans.
            let lines: Vec<&str> = text.lines().collect();
            assert!(lines.len() >= 3, "{name}: {} lines", lines.len());
            let first: Value = serde_json::from_str(lines[0]).unwrap();
            assert!(first["resourceSpans"].is_array());
            assert!(!lines[0].contains("\"/posts\""), "{name}: parent on line 1");
        }

        let path = file.to_str().unwrap();
        let (code, stdout, stderr) = analyze(&["--json", path]);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        let findings: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(findings.len(), 1, "{name}: {stdout}");
        let f = &findings[0];
        assert_eq!(f["route"], "/posts", "{name}: {f}");
        assert_eq!(f["kind"], "repeat", "{name}: {f}");
        assert_eq!(f["count"], 8, "{name}: {f}");
        assert_eq!(f["fingerprint"], author_query.as_str(), "{name}: {f}");
        assert!(f["db_time_us"].as_u64().unwrap() > 0, "{name}: {f}");
        assert!(
            !stdout.contains("/posts/joined"),
            "{name}: the clean route was flagged: {stdout}"
        );
        assert!(
            stderr.contains("otlp: ") && stderr.contains("12 spans, 10 database spans"),
            "{name}: {stderr}"
        );

        // Text report: both requests analysed, one finding; forced format agrees.
        for extra in [&[][..], &["--format", "otlp"][..]] {
            let mut argv = extra.to_vec();
            argv.push(path);
            let (code, stdout, stderr) = analyze(&argv);
            assert_eq!(code, Some(0), "{name} {extra:?}: {stderr}");
            assert!(
                stdout.ends_with(
                    "analyzed 2 requests, 10 statements: 1 findings (repeat 1, redundant 0, total 0, sequence 0)\n"
                ),
                "{name} {extra:?}: {stdout}"
            );
            assert!(stdout.starts_with("/posts repeat count=8 "), "{stdout}");
        }
    }

    // Read as NDJSON on purpose: a clear error naming line 1, exit 2.
    let (code, _, stderr) = analyze(&[
        "--format",
        "ndjson",
        dir.path().join("lines.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("line 1: missing field `route`"),
        "{stderr}"
    );
    let (code, _, stderr) = analyze(&["--format", "xml", "-"]);
    assert_eq!(code, Some(2), "{stderr}");
}
