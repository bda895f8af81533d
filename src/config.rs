//! Typed configuration: every environment variable the service reads, parsed once at
//! startup into validated structs. Bad values are collected (not just the first) so
//! `veza check-config` can print one line per problem; secrets live in [`Secret`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A value that must never be printed. `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    /// The only way to read the value; grep for it when auditing secret handling.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which subcommands read a variable; drives each subcommand's `--help` listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Database,
    Server,
    Storage,
    QueryStats,
    Cdn,
}

/// One documented environment variable. [`ENV_VARS`] is the single list that
/// `--help`, `check-config` and the docs-sync test are built from.
#[derive(Debug)]
pub struct EnvVar {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub secret: bool,
    pub scope: Scope,
    pub help: &'static str,
}

const fn var(
    name: &'static str,
    default: Option<&'static str>,
    scope: Scope,
    help: &'static str,
) -> EnvVar {
    EnvVar {
        name,
        default,
        secret: false,
        scope,
        help,
    }
}

const fn secret(name: &'static str, scope: Scope, help: &'static str) -> EnvVar {
    EnvVar {
        name,
        default: None,
        secret: true,
        scope,
        help,
    }
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/veza.db?mode=rwc";

pub const ENV_VARS: &[EnvVar] = &[
    var(
        "DATABASE_URL",
        Some(DEFAULT_DATABASE_URL),
        Scope::Database,
        "sqlite://… (embedded default) or postgres://user:password@host/db; the password is secret",
    ),
    var(
        "VEZA_DB_MAX_CONNECTIONS",
        Some("10"),
        Scope::Database,
        "pool size upper bound (≥ 1)",
    ),
    var(
        "VEZA_DB_MIN_CONNECTIONS",
        Some("0"),
        Scope::Database,
        "connections kept open when idle (≤ max)",
    ),
    var(
        "VEZA_DB_ACQUIRE_TIMEOUT_MS",
        Some("3000"),
        Scope::Database,
        "how long a request waits for a pooled connection before 503 db_unavailable",
    ),
    var(
        "VEZA_BIND",
        Some("127.0.0.1:8080"),
        Scope::Server,
        "HTTP listen address (host:port; port 0 picks a free port)",
    ),
    var(
        "VEZA_WORKERS",
        Some("number of cores"),
        Scope::Server,
        "actix-web worker threads (≥ 1)",
    ),
    var(
        "VEZA_AUTO_MIGRATE",
        Some("true"),
        Scope::Server,
        "apply pending migrations when `serve` starts",
    ),
    var(
        "VEZA_POOL_STATS_INTERVAL",
        Some("15s"),
        Scope::Server,
        "how often the DbPool actor samples the pool (e.g. 250ms, 15s, 1m)",
    ),
    var(
        "VEZA_STORAGE_DIR",
        Some("./data/media"),
        Scope::Storage,
        "local media directory (demo HLS assets and originals)",
    ),
    var(
        "VEZA_QUERY_STATS",
        Some("true"),
        Scope::QueryStats,
        "count statements per request; false turns the wrapper into a pass-through",
    ),
    var(
        "VEZA_N1_THRESHOLD",
        Some("50"),
        Scope::QueryStats,
        "statements in one request that flag kind=\"total\"",
    ),
    var(
        "VEZA_N1_REPEAT_THRESHOLD",
        Some("5"),
        Scope::QueryStats,
        "repeats of one query shape that flag kind=\"repeat\" / \"redundant\"",
    ),
    var(
        "VEZA_N1_ALLOW",
        Some(""),
        Scope::QueryStats,
        "comma-separated route patterns (/api/…) and fingerprint ids never flagged",
    ),
    var(
        "VEZA_SLOW_QUERY_MS",
        Some("200"),
        Scope::QueryStats,
        "statements slower than this count in veza_db_slow_queries_total",
    ),
];

/// Look a variable up in [`ENV_VARS`].
pub fn env_var(name: &str) -> Option<&'static EnvVar> {
    ENV_VARS.iter().find(|v| v.name == name)
}

/// Text for a subcommand's `--help`: every variable it reads, with its default.
pub fn env_help(scopes: &[Scope]) -> String {
    let mut out = String::from("Environment variables (also read from ./.env):\n");
    for v in ENV_VARS.iter().filter(|v| scopes.contains(&v.scope)) {
        let default = match v.default {
            Some("") => "(empty)".to_string(),
            Some(d) => d.to_string(),
            None => "(unset)".to_string(),
        };
        out.push_str(&format!(
            "  {:<28} default: {}\n      {}\n",
            v.name, default, v.help
        ));
    }
    out
}

/// One invalid variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub var: &'static str,
    /// `None` when the variable is secret (its value must not be echoed).
    pub value: Option<String>,
    pub expected: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(
                f,
                "{}: invalid value {:?}: expected {}",
                self.var, v, self.expected
            ),
            None => write!(f, "{}: invalid value: expected {}", self.var, self.expected),
        }
    }
}

/// Every problem found in the environment; `Display` prints one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "configuration error: {p}")?;
        }
        Ok(())
    }
}

/// Database URL kept secret, with a printable form whose password is masked.
#[derive(Clone)]
pub struct DatabaseUrl {
    url: Secret<String>,
    redacted: String,
    backend: Backend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let expected =
            "a sqlite://PATH[?mode=rwc] or postgres://[user[:password]@]host[:port]/database URL";
        let backend = if raw.starts_with("sqlite:") {
            Backend::Sqlite
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(expected.to_string());
        };
        let redacted = match (backend, url::Url::parse(raw)) {
            (Backend::Sqlite, _) => raw.to_string(),
            (Backend::Postgres, Ok(mut u)) => {
                if u.host_str().is_none_or(str::is_empty) {
                    return Err(expected.to_string());
                }
                if u.password().is_some() && u.set_password(Some("***")).is_err() {
                    return Err(expected.to_string());
                }
                u.to_string()
            }
            (Backend::Postgres, Err(_)) => return Err(expected.to_string()),
        };
        Ok(DatabaseUrl {
            url: Secret::new(raw.to_string()),
            redacted,
            backend,
        })
    }

    pub fn expose(&self) -> &str {
        self.url.expose()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// For a file-backed SQLite URL, the database file's path.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let rest = self
            .expose()
            .trim_start_matches("sqlite:")
            .trim_start_matches("//");
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            None
        } else {
            Some(PathBuf::from(path))
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub workers: usize,
    pub auto_migrate: bool,
    pub pool_stats_interval: Duration,
}

#[derive(Clone, Debug)]
pub struct QueryStatsConfig {
    pub enabled: bool,
    pub n1_threshold: u32,
    pub repeat_threshold: u32,
    /// Raw allowlist text, parsed by the N+1 detector.
    pub allow: Vec<String>,
    pub slow_query: Duration,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    pub server: ServerConfig,
    pub storage_dir: PathBuf,
    pub query_stats: QueryStatsConfig,
}

/// Reads variables from a lookup function (the process environment in production,
/// a map in tests) and accumulates problems.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<ConfigProblem>,
    seen: HashSet<&'static str>,
}

impl Reader<'_> {
    fn raw(&mut self, name: &'static str) -> Option<String> {
        self.seen.insert(name);
        (self.lookup)(name)
    }

    fn problem(&mut self, name: &'static str, value: &str, expected: impl Into<String>) {
        let secret = env_var(name).is_some_and(|v| v.secret);
        self.problems.push(ConfigProblem {
            var: name,
            value: (!secret).then(|| value.to_string()),
            expected: expected.into(),
        });
    }

    fn parsed<T>(
        &mut self,
        name: &'static str,
        default: T,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        match self.raw(name) {
            None => default,
            Some(raw) => match parse(raw.trim()) {
                Some(v) => v,
                None => {
                    self.problem(name, &raw, expected);
                    default
                }
            },
        }
    }

    fn positive_u32(&mut self, name: &'static str, default: u32) -> u32 {
        self.parsed(name, default, "an integer ≥ 1", |s| {
            s.parse::<u32>().ok().filter(|v| *v >= 1)
        })
    }

    fn bool(&mut self, name: &'static str, default: bool) -> bool {
        self.parsed(name, default, "true or false", parse_bool)
    }

    fn duration(&mut self, name: &'static str, default: Duration) -> Duration {
        self.parsed(
            name,
            default,
            "a positive duration such as 250ms, 15s or 1m",
            parse_duration,
        )
    }
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `250ms`, `15s`, `1m`, `1h`; zero is rejected.
pub fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s).ok().filter(|d| !d.is_zero())
}

impl Config {
    /// Parse from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Parse from a map (tests and embedding).
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        Config::from_lookup(&|name| map.get(name).cloned())
    }

    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
            seen: HashSet::new(),
        };
        let fallback_url = DatabaseUrl::parse(DEFAULT_DATABASE_URL).map_err(|e| ConfigError {
            problems: vec![ConfigProblem {
                var: "DATABASE_URL",
                value: None,
                expected: e,
            }],
        })?;
        let url = match r.raw("DATABASE_URL") {
            None => fallback_url.clone(),
            Some(raw) => match DatabaseUrl::parse(raw.trim()) {
                Ok(u) => u,
                Err(expected) => {
                    // The URL may carry a password: never echo it.
                    r.problems.push(ConfigProblem {
                        var: "DATABASE_URL",
                        value: None,
                        expected,
                    });
                    fallback_url
                }
            },
        };
        let max_connections = r.positive_u32("VEZA_DB_MAX_CONNECTIONS", 10);
        let min_connections = r.parsed(
            "VEZA_DB_MIN_CONNECTIONS",
            0,
            "an integer ≥ 0 and ≤ VEZA_DB_MAX_CONNECTIONS",
            |s| s.parse::<u32>().ok(),
        );
        if min_connections > max_connections {
            r.problem(
                "VEZA_DB_MIN_CONNECTIONS",
                &min_connections.to_string(),
                format!("at most VEZA_DB_MAX_CONNECTIONS ({max_connections})"),
            );
        }
        let acquire_ms = r.positive_u32("VEZA_DB_ACQUIRE_TIMEOUT_MS", 3000);

        let bind = r.parsed(
            "VEZA_BIND",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "a socket address such as 127.0.0.1:8080 or [::]:8080",
            |s| s.parse().ok(),
        );
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = r.parsed(
            "VEZA_WORKERS",
            cores,
            "an integer between 1 and 1024",
            |s| s.parse::<usize>().ok().filter(|v| (1..=1024).contains(v)),
        );
        let auto_migrate = r.bool("VEZA_AUTO_MIGRATE", true);
        let pool_stats_interval = r.duration("VEZA_POOL_STATS_INTERVAL", Duration::from_secs(15));

        let storage_dir = r.parsed(
            "VEZA_STORAGE_DIR",
            PathBuf::from("./data/media"),
            "a non-empty directory path",
            |s| (!s.is_empty()).then(|| PathBuf::from(s)),
        );

        let query_stats = QueryStatsConfig {
            enabled: r.bool("VEZA_QUERY_STATS", true),
            n1_threshold: r.positive_u32("VEZA_N1_THRESHOLD", 50),
            repeat_threshold: r.parsed("VEZA_N1_REPEAT_THRESHOLD", 5, "an integer ≥ 2", |s| {
                s.parse::<u32>().ok().filter(|v| *v >= 2)
            }),
            allow: r
                .raw("VEZA_N1_ALLOW")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            slow_query: Duration::from_millis(u64::from(r.positive_u32("VEZA_SLOW_QUERY_MS", 200))),
        };

        debug_assert!(r.seen.iter().all(|name| env_var(name).is_some()));
        if !r.problems.is_empty() {
            return Err(ConfigError {
                problems: r.problems,
            });
        }
        Ok(Config {
            database: DatabaseConfig {
                url,
                max_connections,
                min_connections,
                acquire_timeout: Duration::from_millis(u64::from(acquire_ms)),
            },
            server: ServerConfig {
                bind,
                workers,
                auto_migrate,
                pool_stats_interval,
            },
            storage_dir,
            query_stats,
        })
    }

    /// The effective configuration as `NAME=value` lines, secrets redacted.
    pub fn effective(&self) -> Vec<(&'static str, String)> {
        let q = &self.query_stats;
        vec![
            ("DATABASE_URL", self.database.url.to_string()),
            (
                "VEZA_DB_MAX_CONNECTIONS",
                self.database.max_connections.to_string(),
            ),
            (
                "VEZA_DB_MIN_CONNECTIONS",
                self.database.min_connections.to_string(),
            ),
            (
                "VEZA_DB_ACQUIRE_TIMEOUT_MS",
                self.database.acquire_timeout.as_millis().to_string(),
            ),
            ("VEZA_BIND", self.server.bind.to_string()),
            ("VEZA_WORKERS", self.server.workers.to_string()),
            ("VEZA_AUTO_MIGRATE", self.server.auto_migrate.to_string()),
            (
                "VEZA_POOL_STATS_INTERVAL",
                humantime::format_duration(self.server.pool_stats_interval).to_string(),
            ),
            ("VEZA_STORAGE_DIR", self.storage_dir.display().to_string()),
            ("VEZA_QUERY_STATS", q.enabled.to_string()),
            ("VEZA_N1_THRESHOLD", q.n1_threshold.to_string()),
            ("VEZA_N1_REPEAT_THRESHOLD", q.repeat_threshold.to_string()),
            ("VEZA_N1_ALLOW", q.allow.join(",")),
            ("VEZA_SLOW_QUERY_MS", q.slow_query.as_millis().to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map)
    }

    #[test]
    fn defaults_are_valid_and_match_the_table() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.database.url.backend(), Backend::Sqlite);
        assert_eq!(c.database.max_connections, 10);
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
        // every effective value that has a concrete default equals the documented one
        for (name, value) in c.effective() {
            let documented = env_var(name).unwrap().default.unwrap();
            if documented == "number of cores" {
                continue;
            }
            assert_eq!(value, documented, "{name}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_variable() {
        let err = parse(&[
            ("VEZA_WORKERS", "abc"),
            ("VEZA_BIND", "nonsense"),
            ("VEZA_DB_MAX_CONNECTIONS", "0"),
            ("VEZA_POOL_STATS_INTERVAL", "soon"),
        ])
        .unwrap_err();
        let vars: Vec<_> = err.problems.iter().map(|p| p.var).collect();
        assert_eq!(
            vars,
            [
                "VEZA_DB_MAX_CONNECTIONS",
                "VEZA_BIND",
                "VEZA_WORKERS",
                "VEZA_POOL_STATS_INTERVAL"
            ]
        );
        assert!(
            err.to_string()
                .contains("VEZA_WORKERS: invalid value \"abc\"")
        );
    }

    #[test]
    fn workers_zero_and_min_above_max_are_rejected() {
        assert!(parse(&[("VEZA_WORKERS", "0")]).is_err());
        let e = parse(&[("VEZA_DB_MIN_CONNECTIONS", "20")]).unwrap_err();
        assert_eq!(e.problems[0].var, "VEZA_DB_MIN_CONNECTIONS");
    }

    #[test]
    fn database_password_is_never_printed() {
        let c = parse(&[(
            "DATABASE_URL",
            "postgres://app:hunter2@db.internal:5432/veza",
        )])
        .unwrap();
        let shown = format!("{:?} {} {:?}", c, c.database.url, c.effective());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.internal:5432/veza"));
        assert_eq!(
            c.database.url.expose(),
            "postgres://app:hunter2@db.internal:5432/veza"
        );
    }

    #[test]
    fn bad_database_url_is_reported_without_echoing_it() {
        let e = parse(&[("DATABASE_URL", "ftp://user:hunter2@x")]).unwrap_err();
        assert_eq!(e.problems[0].var, "DATABASE_URL");
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn durations_accept_documented_forms() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn sqlite_path_is_extracted() {
        let u = DatabaseUrl::parse(DEFAULT_DATABASE_URL).unwrap();
        assert_eq!(u.sqlite_path(), Some(PathBuf::from("./data/veza.db")));
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap().sqlite_path(),
            None
        );
    }
}
