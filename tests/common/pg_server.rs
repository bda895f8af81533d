//! A PostgreSQL server of the test's own, for what cannot be done to the shared one:
//! `initdb` in a temporary directory, listening on a free port of 127.0.0.1 only,
//! stopped and started again by the test (a restart as an operator or a failover
//! does it). PostgreSQL refuses to run as root: when the test runs as root, every
//! server program runs as the `postgres` user through `setpriv`.

use std::path::PathBuf;
use std::time::Duration;

/// A server stopped (immediately) on drop, its files removed with the directory.
pub struct PgServer {
    pub port: u16,
    bin: PathBuf,
    /// Set when running as root: `setpriv` and the user to run as.
    run_as: Option<(PathBuf, String)>,
    dir: tempfile::TempDir,
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-t", "10"])
            .output();
    }
}

/// The user and group ids of `user` from /etc/passwd.
fn ids_of(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.split(':').next() == Some(user))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl PgServer {
    /// initdb, configure and start; `None` after the skip rule when the server programs
    /// (or, as root, `setpriv` and a `postgres` user) are missing.
    pub async fn start() -> Option<PgServer> {
        let bin = super::tools::postgres_server_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let run_as = if running_as_root() {
            let setpriv = super::tools::setpriv()?;
            let Some((uid, gid)) = ids_of("postgres") else {
                super::skip("running as root and there is no `postgres` user to run PostgreSQL as");
                return None;
            };
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            Some((setpriv, "postgres".to_string()))
        } else {
            None
        };
        let server = PgServer {
            port: super::free_port(),
            bin,
            run_as,
            dir,
        };
        server.initdb();
        server.start_again().await;
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `program` (one of the server programs) as the server's user, on its data
    /// directory.
    fn command(&self, program: &str) -> std::process::Command {
        let exe = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some((setpriv, user)) => {
                let mut c = std::process::Command::new(setpriv);
                c.args(["--reuid", user, "--regid", user, "--init-groups"])
                    .arg(exe);
                c
            }
            None => std::process::Command::new(exe),
        };
        cmd.arg("-D").arg(self.data()).current_dir(self.dir.path());
        cmd
    }

    fn initdb(&self) {
        let out = self
            .command("initdb")
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {out:?}");
        let conf = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = 50\nshared_buffers = 16MB\nfsync = off\n\
             synchronous_commit = off\nfull_page_writes = off\n",
            self.port,
            self.dir.path().display()
        );
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data().join("postgresql.conf"))
            .unwrap();
        f.write_all(conf.as_bytes()).unwrap();
    }

    /// Run `pg_ctl ARGS` to completion without blocking the runtime.
    async fn pg_ctl(&self, args: &[&str]) {
        let mut cmd = tokio::process::Command::from(self.command("pg_ctl"));
        cmd.args(args);
        let out = cmd.output().await.unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {out:?}\n{}",
            self.log()
        );
    }

    /// Start (again): returns once the server accepts connections.
    pub async fn start_again(&self) {
        let log = self.dir.path().join("server.log");
        let log = log.to_str().unwrap();
        self.pg_ctl(&["start", "-w", "-t", "30", "-l", log]).await;
    }

    /// A clean, fast shutdown (`pg_ctl stop -m fast`, what a restart does): every
    /// session is terminated (SQLSTATE 57P01), then the server exits; returns once it
    /// has.
    pub async fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"]).await;
    }

    /// The URL of `database` as the superuser `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Whether a new connection to the server works (`SELECT 1` on it).
    pub async fn accepts(&self) -> bool {
        use sea_orm::sqlx::{Connection, Executor};
        let Ok(Ok(mut c)) = tokio::time::timeout(
            Duration::from_secs(2),
            sea_orm::sqlx::postgres::PgConnection::connect(&self.url("postgres")),
        )
        .await
        else {
            return false;
        };
        let ok = c.execute("SELECT 1").await.is_ok();
        let _ = c.close().await;
        ok
    }

    /// Create `name` (empty).
    pub async fn create_database(&self, name: &str) {
        use sea_orm::{ConnectionTrait, Database};
        let admin = Database::connect(self.url("postgres")).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let _ = admin.close().await;
    }
}
