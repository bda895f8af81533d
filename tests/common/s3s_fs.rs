//! An S3 server on loopback: s3s-fs serving a temporary directory with one bucket
//! ([`BUCKET`]), which a test can stall (SIGSTOP), kill and restart on the same port and
//! root; plus a test-side S3 client to fill and read the bucket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ACCESS_KEY: &str = "veza-test-access";
pub const SECRET_KEY: &str = "veza-test-secret-Kq93jd0";
pub const BUCKET: &str = "veza-media";

/// A running s3s-fs; killed on drop.
pub struct S3Server {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    /// `http://127.0.0.1:{port}`.
    pub endpoint: String,
    /// The served directory: one subdirectory per bucket, and `s3s-fs.log`.
    pub root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

impl S3Server {
    /// Start s3s-fs on a free port with an empty bucket [`BUCKET`]; `None` after the skip
    /// rule when it is not installed.
    pub async fn start() -> Option<S3Server> {
        let bin = super::tools::s3s_fs()?;
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let port = super::free_port();
        let mut server = S3Server {
            bin,
            port,
            child: None,
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
        };
        server.restart().await;
        Some(server)
    }

    /// Start (again, after [`S3Server::kill`]) on the same port and root, and wait until
    /// it accepts connections.
    pub async fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("s3s-fs.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        if !super::listening(self.port, Duration::from_secs(15)).await {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().unwrap());
            let log = std::fs::read_to_string(self.root.path().join("s3s-fs.log")).unwrap();
            panic!(
                "s3s-fs did not accept connections on {} within 15s ({exited:?}): {log}",
                self.port
            );
        }
    }

    /// Send `sig` (STOP to stall it: connections accepted, nothing answered; CONT).
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            super::signal(c.id(), sig);
        }
    }

    /// Kill it (resumed first, in case it was stalled).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            super::signal(c.id(), "CONT");
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A test-side S3 client for the server (not the application's).
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Builder, Credentials, Region};
    let conf = Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Every file under `root`, as (key with `/` separators, path).
pub fn files_under(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap();
                let key = rel
                    .components()
                    .map(|c| c.as_os_str().to_str().unwrap())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((key, p));
            }
        }
    }
    out.sort();
    out
}

/// Upload everything under `root` to the bucket with the same relative keys.
pub async fn upload_dir(endpoint: &str, root: &Path) -> usize {
    let client = s3_client(endpoint);
    let files = files_under(root);
    for (key, path) in &files {
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(
                std::fs::read(path).unwrap(),
            ))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("put {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
            });
    }
    files.len()
}
