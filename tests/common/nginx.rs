//! nginx for the tests: a temporary prefix, a given port, `daemon off`, one worker, an
//! access log the test can read; killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx; killed on drop.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:{port}`.
    pub base: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The access-log format of every test nginx: status, method, request URI (with its
/// query), cache status.
const LOG_FORMAT: &str =
    r#"log_format veza '$status $request_method $request_uri $upstream_cache_status';"#;

impl Nginx {
    /// Start `nginx` (see [`super::tools::nginx`]) with `servers` (server blocks inside
    /// `http`; `{tmp}` stands for the prefix directory) and wait until it listens on
    /// `port`, which one of them must listen on.
    pub async fn start(nginx: &Path, port: u16, servers: &str) -> Nginx {
        Nginx::start_with_main(nginx, port, "", servers).await
    }

    /// [`Nginx::start`] with directives of the main context first (`load_module …;`).
    pub async fn start_with_main(nginx: &Path, port: u16, main: &str, servers: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().display().to_string();
        let conf = format!(
            "{main}
daemon off;
master_process off;
worker_processes 1;
pid {t}/nginx.pid;
error_log {t}/error.log info;
events {{ worker_connections 256; }}
http {{
    {LOG_FORMAT}
    access_log {t}/access.log veza;
    client_body_temp_path {t}/client_body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
{servers}
}}
",
            servers = servers.replace("{tmp}", &t)
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut n = Nginx {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Some(status) = n.child.try_wait().unwrap() {
                panic!(
                    "nginx exited early ({status}): {} {}",
                    std::fs::read_to_string(n.dir.path().join("stderr.log")).unwrap_or_default(),
                    std::fs::read_to_string(n.dir.path().join("error.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < end, "nginx did not listen within 15 s");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        n
    }

    /// The access log: (status, method, request URI, cache status) per line.
    pub fn access_log(&self) -> Vec<(u16, String, String, String)> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                Some((
                    f.next()?.parse().ok()?,
                    f.next()?.to_string(),
                    f.next()?.to_string(),
                    f.next().unwrap_or("-").to_string(),
                ))
            })
            .collect()
    }
}
