//! The real `veza` binary: run once to completion ([`veza`]), or serving on port 0
//! ([`serve`]) with its stderr collected line by line, signalled and waited for as an
//! operator would.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Run the `veza` binary with exactly `env` (plus PATH), in an empty directory.
pub fn veza(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_veza"));
    cmd.args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The real binary, serving; killed on drop.
pub struct Served {
    child: Child,
    /// Where it listens: `http://127.0.0.1:{port}`.
    pub base: String,
    pub port: u16,
    /// Its working directory, with (unless `env` said otherwise) its SQLite database
    /// `veza.db` and its storage directory `media`.
    pub dir: tempfile::TempDir,
    /// Every stderr line so far.
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a start may take: the first `--demo` start renders 20 tracks of audio
/// (slower in a debug build).
const START_TIMEOUT: Duration = Duration::from_secs(240);

/// Run `veza ARGS` in `dir` with exactly: PATH, a SQLite database and storage directory
/// in `dir`, port 0, two workers, `RUST_LOG=info`, then `env` over those; wait until it
/// says where it listens (a panic with its stderr if it exits or takes over 240 s).
pub fn serve(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Served {
    let mut vars = BTreeMap::from([
        ("PATH".to_string(), std::env::var("PATH").unwrap()),
        (
            "DATABASE_URL".to_string(),
            format!("sqlite://{}/veza.db?mode=rwc", dir.path().display()),
        ),
        (
            "VEZA_STORAGE_DIR".to_string(),
            dir.path().join("media").display().to_string(),
        ),
        ("VEZA_BIND".to_string(), "127.0.0.1:0".to_string()),
        ("VEZA_WORKERS".to_string(), "2".to_string()),
        ("RUST_LOG".to_string(), "info".to_string()),
        (
            "VEZA_ORIGIN_SECRET".to_string(),
            super::ORIGIN_SECRET.to_string(),
        ),
    ]);
    for (k, v) in env {
        vars.insert((*k).to_string(), (*v).to_string());
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_veza"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .envs(vars)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let end = Instant::now() + START_TIMEOUT;
    let base = loop {
        let found = lines.lock().unwrap().iter().find_map(|l| {
            l.split("veza listening on ")
                .nth(1)
                .map(|rest| rest.trim().to_string())
        });
        if let Some(base) = found {
            break base;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "veza {args:?} exited ({status}) before listening: {:?}",
                lines.lock().unwrap()
            );
        }
        assert!(
            Instant::now() < end,
            "veza {args:?} did not report its address within {START_TIMEOUT:?}: {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let port = url::Url::parse(&base).unwrap().port().unwrap();
    Served {
        child,
        base,
        port,
        dir,
        lines,
    }
}

impl Served {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `sig` (TERM, HUP, …).
    pub fn signal(&self, sig: &str) {
        assert!(super::signal(self.pid(), sig), "kill -s {sig}");
    }

    /// How many stderr lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Wait for the exit: its code and when it happened; `None` past `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<(Option<i32>, Instant)> {
        let end = Instant::now() + deadline;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some((s.code(), Instant::now()));
            }
            if Instant::now() > end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then (blocking) the exit code; a panic if it has not exited 20 s later.
    pub fn terminate(&mut self) -> Option<i32> {
        self.signal("TERM");
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("no exit 20 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
