//! A real SMTP server for the mail tests: aiosmtpd (PyPI, pinned in
//! `tests/smtp/requirements.txt`, installed by scripts/setup.sh into
//! `target/smtp-venv`) running `tests/smtp/server.py`, which writes every message it
//! accepts to a directory the test reads. Killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A Python that imports aiosmtpd: `VEZA_SMTP_PYTHON`, the venv of scripts/setup.sh,
/// or `python3`; `None` after the skip rule.
pub fn python() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("VEZA_SMTP_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            Path::new(ROOT).join("target/smtp-venv/bin/python"),
            PathBuf::from("python3"),
        ])
        .collect();
    let found = candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import aiosmtpd.controller"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        super::skip(
            "aiosmtpd is not installed (pip install -r tests/smtp/requirements.txt; scripts/setup.sh installs it into target/smtp-venv)",
        );
    }
    found
}

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub envelope_to: String,
    /// Headers and body as received (CRLF line ends).
    pub raw: String,
}

impl Received {
    /// The first header `name` (unfolded), if any.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next()?;
        let mut out: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = out.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            if out.is_some() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                out = Some(v.trim().to_string());
            }
        }
        out
    }

    pub fn body(&self) -> String {
        self.raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.replace("\r\n", "\n"))
            .unwrap_or_default()
    }
}

/// A running aiosmtpd; killed on drop.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    /// Start the server on 127.0.0.1:`port` and wait until it listens; with `login`
    /// (`user:password`) it requires that AUTH.
    pub async fn start(python: &Path, port: u16, login: Option<&str>) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(python)
            .arg(Path::new(ROOT).join("tests/smtp/server.py"))
            .arg(port.to_string())
            .arg(dir.path())
            .args(login)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let server = SmtpServer { child, port, dir };
        assert!(
            super::listening(port, Duration::from_secs(20)).await,
            "aiosmtpd did not listen on {port}"
        );
        server
    }

    /// Every message received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                let (_, raw) = text.split_once("X-Envelope-To: ").unwrap();
                let (to, raw) = raw.split_once("\r\n").unwrap();
                Received {
                    envelope_to: to.to_string(),
                    raw: raw.to_string(),
                }
            })
            .collect()
    }

    /// Wait until at least `n` messages arrived (at most `deadline`); all of them.
    pub async fn wait_for(&self, n: usize, deadline: Duration) -> Vec<Received> {
        super::poll(deadline, || async {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
        .unwrap_or_else(|| self.received())
    }
}
