//! First-run failures a newcomer hits, on the real binary: each ends with one line naming
//! what failed and the documented exit code, never a panic or a backtrace.

use std::net::TcpListener;

use crate::common::binary::veza;
use crate::common::postgres;

/// Run the binary; return (exit code, stderr lines that are not log lines).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Vec<String>) {
    let mut env = env.to_vec();
    env.push(("RUST_BACKTRACE", "1"));
    let out = veza(args, &env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "{args:?} panicked:\n{stderr}"
    );
    let lines = stderr
        .lines()
        .filter(|l| !l.starts_with('['))
        .map(String::from)
        .collect();
    (out.status.code(), lines)
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/v.db?mode=rwc", dir.path().display())
}

#[test]
fn a_taken_port_is_one_line_and_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(&dir);
    let media = dir.path().join("media");
    let (code, lines) = run(
        &["serve"],
        &[
            ("VEZA_BIND", &addr),
            ("DATABASE_URL", &db),
            ("VEZA_STORAGE_DIR", media.to_str().unwrap()),
        ],
    );
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("startup failed: cannot bind {addr}"))
            && lines[0].contains("VEZA_BIND"),
        "{lines:?}"
    );
    // The same with the metrics listener on a taken port.
    let (code, lines) = run(
        &["serve"],
        &[
            ("VEZA_BIND", "127.0.0.1:0"),
            ("VEZA_METRICS_BIND", &addr),
            ("DATABASE_URL", &db),
            ("VEZA_STORAGE_DIR", media.to_str().unwrap()),
        ],
    );
    assert_eq!(code, Some(1), "{lines:?}");
    assert!(
        lines[0].contains(&format!("cannot bind {addr}")),
        "{lines:?}"
    );
}

#[test]
fn a_privileged_port_without_privileges_is_one_line_and_exit_1() {
    // Tests run as root here: drop to nobody for this one run.
    let Some(setpriv) = crate::common::tools::setpriv() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let out = std::process::Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_veza"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("VEZA_BIND", "127.0.0.1:81")
        .env("DATABASE_URL", sqlite(&dir))
        .env("VEZA_STORAGE_DIR", dir.path().join("media"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    if stderr.contains("setpriv:") {
        crate::common::skip(&format!("cannot drop privileges here: {stderr}"));
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr.lines().rfind(|l| !l.starts_with('[')).unwrap();
    assert!(
        line.contains("cannot bind 127.0.0.1:81") && line.contains("Permission denied"),
        "{stderr}"
    );
}

#[test]
fn an_unwritable_data_directory_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    // The database's directory would have to be created under a regular file.
    let db = format!("sqlite://{}/data/v.db?mode=rwc", file.display());
    let (code, lines) = run(
        &["serve"],
        &[("VEZA_BIND", "127.0.0.1:0"), ("DATABASE_URL", &db)],
    );
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("cannot create the SQLite directory") && lines[0].contains("a-file"),
        "{lines:?}"
    );
    // Demo media under a regular file: seeding names the directory.
    let ok_db = sqlite(&dir);
    let media = file.join("media");
    let (code, lines) = run(
        &["serve", "--demo"],
        &[
            ("VEZA_BIND", "127.0.0.1:0"),
            ("DATABASE_URL", &ok_db),
            ("VEZA_STORAGE_DIR", media.to_str().unwrap()),
        ],
    );
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("seeding failed") && lines[0].contains("a-file"),
        "{lines:?}"
    );
}

#[test]
fn an_unreachable_database_names_host_port_and_cause() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("postgres://postgres@127.0.0.1:{port}/veza");
    let (code, lines) = run(
        &["migrate"],
        &[
            ("DATABASE_URL", &url),
            ("VEZA_DB_ACQUIRE_TIMEOUT_MS", "2000"),
        ],
    );
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!("PostgreSQL at 127.0.0.1:{port}"))
            && lines[0].contains("connection refused"),
        "{lines:?}"
    );
    let (code, lines) = run(
        &["migrate"],
        &[
            (
                "DATABASE_URL",
                "postgres://postgres@no-such-host.invalid/veza",
            ),
            ("VEZA_DB_ACQUIRE_TIMEOUT_MS", "2000"),
        ],
    );
    assert_eq!(code, Some(1), "{lines:?}");
    assert!(
        lines[0].contains("cannot resolve host \"no-such-host.invalid\""),
        "{lines:?}"
    );
}

#[actix_web::test]
async fn a_rejected_login_or_missing_database_quotes_the_server() {
    if !postgres::available().await {
        return;
    }
    let admin = url::Url::parse(&postgres::admin_url()).unwrap();
    let mut missing = admin.clone();
    missing.set_path("veza_no_such_database_x");
    let mut stranger = admin;
    stranger.set_username("veza_no_such_role").unwrap();
    for (url, expect) in [
        (
            missing.to_string(),
            "database \"veza_no_such_database_x\" does not exist",
        ),
        (
            stranger.to_string(),
            "role \"veza_no_such_role\" does not exist",
        ),
    ] {
        let (code, lines) = run(&["migrate"], &[("DATABASE_URL", &url)]);
        assert_eq!(code, Some(1), "{lines:?}");
        assert!(lines[0].contains(expect), "{lines:?}");
    }
}

#[test]
fn sign_without_a_provider_says_it_is_missing() {
    let (code, lines) = run(&["sign", "/x.ts"], &[]);
    assert_eq!(code, Some(2), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("CDN_PROVIDER: not set")
            && lines[0].contains("veza sign` reads the CDN_* variables")
            && !lines[0].contains("invalid value"),
        "{lines:?}"
    );
}
