//! The `veza` command line: subcommands, and what each does with the configuration.
//! Exit codes: 0 success, 2 bad configuration or usage, 1 runtime failure.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod users;

use crate::config::{Config, Section, env_help};
use crate::startup::Application;

const ALL: &[Section] = &[
    Section::Database,
    Section::Server,
    Section::Storage,
    Section::QueryStats,
    Section::Cdn,
    Section::Mail,
];

#[derive(Debug, Parser)]
#[command(name = "veza", version, about = "veza music-streaming backend", after_help = env_help(ALL))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    #[command(after_help = env_help(ALL))]
    Serve {
        /// Migrate, insert demo data if the catalogue is empty, then serve.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations and exit.
    #[command(after_help = env_help(&[Section::Database]))]
    Migrate,
    /// Insert demo artists, tracks, playlists and generated HLS media (idempotent).
    #[command(after_help = env_help(&[Section::Database, Section::Storage]))]
    SeedDemo,
    /// Validate the whole configuration and print the effective values (secrets redacted).
    #[command(after_help = env_help(ALL))]
    CheckConfig,
    /// Print one signed CDN URL for a path (joined to CDN_BASE_URL) or a full URL.
    #[command(after_help = env_help(&[Section::Cdn]))]
    Sign(SignArgs),
    /// N+1 query tools.
    #[command(subcommand, after_help = env_help(&[Section::QueryStats]))]
    N1(N1Command),
    /// Import audio files: transcode to HLS (AAC-LC, 64 and 160 kbit/s) with ffmpeg,
    /// store the original and the HLS files, and add the tracks to the catalogue.
    #[command(after_help = env_help(&[Section::Database, Section::Storage]))]
    Import(ImportArgs),
    /// Manage user accounts.
    #[command(subcommand, after_help = env_help(&[Section::Database]))]
    User(UserCommand),
    /// The audit log (docs/AUDIT.md).
    #[command(subcommand, after_help = env_help(&[Section::Database]))]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit log's hash chain from its first event: exit 0 and print the
    /// number of events and the head hash (export it, docs/AUDIT.md), or exit 1
    /// naming the first event that was altered, removed or relinked.
    #[command(after_help = env_help(&[Section::Database]))]
    Verify,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Audio files: anything ffmpeg reads (MP3, FLAC, WAV, AAC/M4A, Ogg/Opus…).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Track title (a single FILE only); default: the file's title tag, else its name.
    #[arg(long)]
    pub title: Option<String>,
    /// Artist; default: the file's artist tag, else "Unknown Artist".
    #[arg(long)]
    pub artist: Option<String>,
    /// Append the tracks to this playlist (created if there is none by that name).
    #[arg(long, value_name = "NAME")]
    pub playlist: Option<String>,
    /// Give the tracks' artist to the user with this e-mail (they may then edit them).
    #[arg(long, value_name = "EMAIL")]
    pub owner: Option<String>,
    /// Who sees the tracks: public, unlisted (playable through a share link) or private.
    #[arg(long, default_value = "public", value_parser = parse_visibility)]
    pub visibility: crate::access::Visibility,
    /// Bound on probing and transcoding each file, e.g. 90s, 10m.
    #[arg(long, default_value = "10m", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
}

fn parse_visibility(s: &str) -> Result<crate::access::Visibility, String> {
    crate::access::Visibility::parse(s)
        .ok_or_else(|| format!("expected public, unlisted or private, got {s:?}"))
}

fn parse_role(s: &str) -> Result<crate::access::Role, String> {
    crate::access::Role::parse(s)
        .ok_or_else(|| format!("expected listener, artist, moderator or admin, got {s:?}"))
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-stdin a password is generated and printed once.
    Add {
        email: String,
        #[arg(long, default_value = "listener", value_parser = parse_role)]
        role: crate::access::Role,
        /// Display name; default: the e-mail's local part.
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Disable a user: their sessions end and their tokens stop working.
    Disable { email: String },
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(s)
        .ok_or_else(|| format!("expected a positive duration such as 90s or 10m, got {s:?}"))
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// A path (joined to CDN_BASE_URL) or a full https:// URL, already percent-encoded.
    pub path_or_url: String,
    /// Provider, overriding CDN_PROVIDER: bunny, cloudfront, cloudflare, akamai, nginx.
    #[arg(long)]
    pub provider: Option<String>,
    /// Expiry as Unix seconds. A past one is signed with a warning (to test an edge's
    /// answer to expired URLs); without --issued-at, the issue time is then the expiry
    /// minus CDN_URL_TTL.
    #[arg(long, conflicts_with = "ttl")]
    pub expires_at: Option<u64>,
    /// Lifetime from --issued-at (default: CDN_URL_TTL), e.g. 15m, 1h.
    #[arg(long, allow_hyphen_values = true)]
    pub ttl: Option<String>,
    /// "Now" as Unix seconds (Cloudflare timestamp, Akamai st), for reproducible output.
    #[arg(long)]
    pub issued_at: Option<u64>,
    /// Sign the path's directory (HLS): Bunny token_path, CloudFront wildcard, Akamai dir/*, nginx prefix.
    #[arg(long)]
    pub directory: bool,
    /// Bunny: explicit token_path.
    #[arg(long)]
    pub token_path: Option<String>,
    /// Lock the URL to this client address.
    #[arg(long)]
    pub user_ip: Option<std::net::IpAddr>,
    /// Bunny: allowed country codes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub countries: Vec<String>,
    /// Bunny: blocked country codes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub countries_blocked: Vec<String>,
    /// Bunny: speed limit in kB/s.
    #[arg(long)]
    pub speed_limit: Option<u64>,
    /// Bunny: ignore query parameters when validating.
    #[arg(long)]
    pub ignore_params: bool,
}

#[derive(Debug, Subcommand)]
pub enum N1Command {
    /// Analyze request traces with the live detector's rules: veza's NDJSON, or
    /// OpenTelemetry OTLP JSON from any service (database spans grouped per trace and
    /// parent span).
    #[command(after_help = env_help(&[Section::QueryStats]))]
    Analyze {
        /// Trace file; standard input when absent.
        file: Option<PathBuf>,
        /// One JSON object per finding instead of text lines.
        #[arg(long)]
        json: bool,
        /// Input format: auto (OTLP when the first line holds `resourceSpans` or starts
        /// a multi-line JSON document), ndjson, or otlp.
        #[arg(long, default_value = "auto", value_name = "auto|ndjson|otlp")]
        format: crate::n1::Format,
    },
}

/// Why a command failed, which decides its exit code: 2 when nothing was done (bad
/// usage, configuration or input), 1 when the work itself failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad argument or option: printed as `error: …`, exit 2.
    #[error("error: {0}")]
    Usage(String),
    /// Bad configuration or input, printed as it is, exit 2.
    #[error("{0}")]
    Invalid(String),
    /// The work failed, printed as it is, exit 1.
    #[error("{0}")]
    Failed(String),
    /// The work failed and each failure was already reported, exit 1.
    #[error("failed")]
    Reported,
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) | CliError::Invalid(_) => ExitCode::from(2),
            CliError::Failed(_) | CliError::Reported => ExitCode::FAILURE,
        }
    }
}

fn usage(msg: impl std::fmt::Display) -> CliError {
    CliError::Usage(msg.to_string())
}

pub(crate) fn failed(msg: impl std::fmt::Display) -> CliError {
    CliError::Failed(msg.to_string())
}

pub(crate) type CliResult = Result<(), CliError>;

/// The configuration, with the files it names read and checked (exit 2 otherwise).
fn load_config() -> Result<Config, CliError> {
    let checked = Config::from_env().and_then(|c| c.check_files().map(|()| c));
    checked.map_err(|e| CliError::Invalid(e.to_string()))
}

/// Run the command; its error, if any, is printed once here and becomes the exit code.
pub fn run(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !matches!(e, CliError::Reported) {
                eprintln!("{e}");
            }
            e.exit_code()
        }
    }
}

fn dispatch(cli: Cli) -> CliResult {
    match cli.command {
        Command::CheckConfig => check_config(),
        Command::N1(N1Command::Analyze { file, json, format }) => {
            n1_analyze(file.as_deref(), json, format)
        }
        Command::Sign(args) => sign(&args),
        Command::Import(args) => import(args),
        command => {
            let config = load_config()?;
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                match command {
                    Command::Serve { demo } => serve(config, demo).await,
                    Command::Migrate => migrate(config).await,
                    Command::SeedDemo => seed(config).await,
                    Command::User(cmd) => users::run(&config, cmd).await,
                    Command::Audit(AuditCommand::Verify) => audit_verify(config).await,
                    Command::CheckConfig
                    | Command::N1(_)
                    | Command::Sign(_)
                    | Command::Import(_) => Ok(()),
                }
            })
        }
    }
}

fn check_config() -> CliResult {
    let config = load_config()?;
    for w in config.warnings() {
        eprintln!("warning: {w}");
    }
    let mut out = std::io::stdout().lock();
    for (name, value) in config.effective() {
        let _ = writeln!(out, "{name}={value}");
    }
    Ok(())
}

pub(crate) async fn open_db(config: &Config) -> Result<sea_orm::DatabaseConnection, CliError> {
    let registry = prometheus::Registry::new();
    let metrics =
        crate::metrics::Metrics::register(&registry, config.database.acquire_timeout.as_secs_f64())
            .map_err(|e| failed(format!("metrics: {e}")))?;
    crate::db::connect(&config.database, &metrics, config.query_stats.slow_query)
        .await
        .map_err(failed)
}

async fn migrate(config: Config) -> CliResult {
    let conn = open_db(&config).await?;
    match crate::db::migrate(&conn).await {
        Ok(()) => {
            log::info!("migrations applied to {}", config.database.url);
            Ok(())
        }
        Err(e) => Err(failed(format!(
            "migration failed: {}",
            explain(&config, e).await
        ))),
    }
}

/// A database error as a user should read it: for connection failures, where the
/// database was looked for and why it did not answer.
async fn explain(config: &Config, e: sea_orm::DbErr) -> String {
    match e {
        sea_orm::DbErr::ConnectionAcquire(_) | sea_orm::DbErr::Conn(_) => {
            match crate::db::explain_unreachable(&config.database).await {
                Some(why) => why,
                None => e.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// The database with every migration applied, for the commands that write to it.
pub(crate) async fn open_migrated_db(
    config: &Config,
) -> Result<sea_orm::DatabaseConnection, CliError> {
    let conn = open_db(config).await?;
    if let Err(e) = crate::db::migrate(&conn).await {
        return Err(failed(format!(
            "migration failed: {}",
            explain(config, e).await
        )));
    }
    Ok(conn)
}

/// `veza audit verify`: reads only (no migration: a database without the table is an
/// error, not something to create).
async fn audit_verify(config: Config) -> CliResult {
    let conn = open_db(&config).await?;
    let report = match crate::audit::verify(&conn).await {
        Ok(report) => report,
        Err(e) => {
            let why = explain(&config, e).await;
            let hint = if why.contains("audit_events") {
                " (has `veza migrate` been run on this database?)"
            } else {
                ""
            };
            return Err(failed(format!("cannot read the audit log: {why}{hint}")));
        }
    };
    match (&report.broken, &report.head) {
        (None, Some(head)) => {
            println!(
                "audit chain intact: {} events, head event {} hash {}",
                report.checked, head.id, head.hash
            );
            Ok(())
        }
        (None, None) => {
            println!("audit chain intact: 0 events");
            Ok(())
        }
        (Some(broken), _) => Err(failed(format!(
            "audit chain broken at {broken}; the {} events before it verify",
            report.checked
        ))),
    }
}

async fn seed(config: Config) -> CliResult {
    let conn = open_migrated_db(&config).await?;
    let store = crate::store::Store::from_config(&config.storage, &config.storage_dir).await;
    match crate::db::seed::seed_demo(&conn, &store).await {
        Ok(report) => {
            log::info!(
                "demo data: {} tracks ({}{}), media {} under {}",
                report.tracks,
                if report.inserted {
                    "inserted"
                } else {
                    "already present"
                },
                if report.upgraded > 0 {
                    format!(", {} demo rows upgraded", report.upgraded)
                } else {
                    String::new()
                },
                if report.rendered {
                    "rendered"
                } else {
                    "already in place"
                },
                config.storage_dir.display()
            );
            Ok(())
        }
        Err(e) => Err(failed(format!("seeding failed: {e}"))),
    }
}

/// `veza import`: usage and tools are checked before anything else (exit 2), then
/// each file is imported on its own; any failed file makes the exit code 1.
fn import(args: ImportArgs) -> CliResult {
    if args.title.is_some() && args.files.len() > 1 {
        return Err(usage(format!(
            "--title applies to a single FILE, but {} were given (tag the files, or import them one at a time)",
            args.files.len()
        )));
    }
    for (flag, value, max) in [
        ("--title", &args.title, crate::fields::TITLE_MAX),
        ("--artist", &args.artist, crate::fields::NAME_MAX),
        ("--playlist", &args.playlist, crate::fields::NAME_MAX),
    ] {
        if let Some(v) = value
            && let Err(e) = crate::fields::text("value", v, max)
        {
            return Err(usage(format!("{flag}: {}", e.problem)));
        }
    }
    let tools = crate::ingest::tools::Tools::from_env().map_err(usage)?;
    let config = load_config()?;
    actix_web::rt::System::new().block_on(import_files(config, args, tools))
}

async fn import_files(
    config: Config,
    args: ImportArgs,
    tools: crate::ingest::tools::Tools,
) -> CliResult {
    use crate::ingest::progress::TerminalProgress;
    use crate::ingest::{ImportOptions, Importer};
    let conn = open_migrated_db(&config).await?;
    let owner = match &args.owner {
        Some(email) => Some(users::user_id_of(&conn, email).await?),
        None => None,
    };
    let storage = crate::store::Store::from_config(&config.storage, &config.storage_dir).await;
    // Ctrl-C stops the current file's ffmpeg (its uploads are then never started) and
    // the files after it; an upload or insert under way finishes or rolls back first.
    let (stop, interrupt) = tokio::sync::watch::channel(false);
    actix_web::rt::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop.send(true);
        }
    });
    let importer = Importer {
        conn,
        storage,
        tools,
        options: ImportOptions {
            title: args.title,
            artist: args.artist,
            playlist: args.playlist,
            owner,
            visibility: args.visibility,
            timeout: args.timeout,
            progress: TerminalProgress::if_stderr_is_a_terminal(),
        },
        interrupt: interrupt.clone(),
    };
    let mut failures = 0;
    for (i, path) in args.files.iter().enumerate() {
        let shown = path.display();
        let playlist = match importer.import_file(path).await {
            Ok(outcome) => print_outcome(&shown, outcome),
            Err(e) => {
                eprintln!("import failed: {shown}: {e}");
                failures += 1;
                if matches!(e, crate::ingest::ImportError::Interrupted) {
                    let rest = args.files.len() - i - 1;
                    if rest > 0 {
                        eprintln!("interrupted: {rest} more file(s) not imported");
                    }
                    break;
                }
                None
            }
        };
        if let Some((track_id, p)) = playlist {
            print_playlist_add(track_id, &p);
        }
        if *interrupt.borrow() && i + 1 < args.files.len() {
            eprintln!(
                "interrupted: {} more file(s) not imported",
                args.files.len() - i - 1
            );
            failures += 1;
            break;
        }
    }
    if failures > 0 {
        Err(CliError::Reported)
    } else {
        Ok(())
    }
}

/// One imported file, as the user reads it; the playlist it was added to, if any.
fn print_outcome(
    shown: &std::path::Display<'_>,
    outcome: crate::ingest::Outcome,
) -> Option<(i64, crate::ingest::catalogue::PlaylistAdd)> {
    use crate::ingest::Outcome;
    use crate::ingest::progress::display_duration;
    match outcome {
        Outcome::Imported {
            track,
            artist,
            playlist,
        } => {
            println!(
                "imported {shown} as track {}: \"{}\" by {artist}, {}",
                track.id,
                track.title,
                display_duration(track.duration_ms)
            );
            playlist.map(|p| (track.id, p))
        }
        Outcome::AlreadyImported { track, playlist } => {
            println!(
                "{shown}: already imported as track {} (\"{}\")",
                track.id, track.title
            );
            playlist.map(|p| (track.id, p))
        }
    }
}

fn print_playlist_add(track_id: i64, p: &crate::ingest::catalogue::PlaylistAdd) {
    let created = if p.created { " (new playlist)" } else { "" };
    match p.position {
        Some(pos) => println!(
            "added track {track_id} to playlist {} \"{}\"{created} at position {pos}",
            p.playlist_id, p.name
        ),
        None => println!(
            "track {track_id} is already in playlist {} \"{}\"",
            p.playlist_id, p.name
        ),
    }
}

async fn serve(config: Config, demo: bool) -> CliResult {
    if demo {
        seed(config.clone()).await?;
        users::ensure_demo_accounts(&config).await?;
    }
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e @ crate::startup::StartupError::Config(_)) => {
            return Err(CliError::Invalid(format!("configuration error: {e}")));
        }
        Err(e) => {
            let hint = match &e {
                crate::startup::StartupError::Bind { source, .. } => match source.kind() {
                    std::io::ErrorKind::AddrInUse => {
                        "; another process listens there: set VEZA_BIND to a free address (port 0 picks one)"
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        "; ports below 1024 need privileges: use a higher port in VEZA_BIND"
                    }
                    _ => "",
                },
                _ => "",
            };
            return Err(failed(format!("startup failed: {e}{hint}")));
        }
    };
    log::info!("veza listening on http://{}", app.address());
    app.run_until_stopped()
        .await
        .map_err(|e| failed(format!("server error: {e}")))
}

fn n1_analyze(file: Option<&std::path::Path>, json: bool, format: crate::n1::Format) -> CliResult {
    let config = load_config()?;
    let detector = crate::actors::query_stats::detector_config(&config.query_stats);
    let input: Box<dyn BufRead> = match file {
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => Box::new(BufReader::new(f)),
            Err(e) => {
                return Err(CliError::Invalid(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        },
        None => Box::new(BufReader::new(std::io::stdin().lock())),
    };
    let report = match crate::n1::analyze_input(input, format, &detector) {
        Ok(analysis) => {
            if let Some(stats) = &analysis.otlp {
                eprintln!("{stats}");
            }
            analysis.report
        }
        Err(e) => return Err(CliError::Invalid(e.to_string())),
    };
    let out = std::io::stdout().lock();
    let written = if json {
        report.write_json(out)
    } else {
        report.write_text(out)
    };
    written.map_err(|e| failed(format!("writing the report: {e}")))
}

fn sign(args: &SignArgs) -> CliResult {
    use crate::actors::cdn_signer::join_base;
    use crate::cdn::{Provider, SignRequest};
    use crate::clock::unix_now;
    let config = load_config()?;
    let provider = match args
        .provider
        .as_deref()
        .map(str::parse::<Provider>)
        .transpose()
    {
        Ok(p) => p,
        Err(e) => return Err(usage(format!("--provider: {e}"))),
    };
    if provider.is_none() && config.cdn.provider.is_none() {
        return Err(CliError::Invalid(
            "configuration error: CDN_PROVIDER: not set: `veza sign` reads the CDN_* variables (CDN_PROVIDER, CDN_BASE_URL and the provider's key); set CDN_PROVIDER to one of bunny, cloudfront, cloudflare, akamai, nginx, or pass --provider".into(),
        ));
    }
    let signer = crate::cdn::keys::load(&config.cdn, provider).map_err(|e| {
        CliError::Invalid(format!(
            "configuration error: {}",
            crate::config::ConfigProblem::from(e)
        ))
    })?;
    let now = unix_now();
    let mut issued_at = args.issued_at.unwrap_or(now);
    let expires_at = match (args.expires_at, args.ttl.as_deref()) {
        (Some(e), _) => e,
        (None, Some(ttl)) => match crate::config::parse_duration(ttl) {
            Some(d) if d <= crate::config::MAX_URL_TTL => issued_at + d.as_secs(),
            _ => {
                return Err(usage(format!(
                    "--ttl: invalid value {ttl:?}: expected a positive duration of at most 7 days"
                )));
            }
        },
        (None, None) => issued_at + config.cdn.ttl.as_secs(),
    };
    // An expiry in the past is what an operator needs to test an edge's answer to an
    // expired URL (nginx 410, …): sign it, and say so on stderr.
    if expires_at <= now {
        if args.issued_at.is_none() {
            // As if issued CDN_URL_TTL before it expired (Cloudflare and Akamai embed
            // the issue time), so the expiry is consistent for every provider.
            issued_at = expires_at.saturating_sub(config.cdn.ttl.as_secs());
        }
        eprintln!(
            "warning: the URL expires at {expires_at}, {} s ago: it is signed, but an edge answers it as expired (e.g. nginx 410)",
            now - expires_at
        );
    }
    let url = join_base(config.cdn.base_url.as_deref(), &args.path_or_url).map_err(usage)?;
    let mut req = SignRequest::new(url, expires_at, issued_at);
    req.scope = if args.directory {
        crate::cdn::Scope::Directory
    } else {
        crate::cdn::Scope::File
    };
    req.user_ip = args.user_ip;
    req.bunny = crate::cdn::BunnyOptions {
        token_path: args.token_path.clone(),
        countries: args.countries.clone(),
        countries_blocked: args.countries_blocked.clone(),
        speed_limit_kbps: args.speed_limit,
        ignore_params: args.ignore_params,
    };
    let signed = signer.sign(&req).map_err(usage)?;
    println!("{signed}");
    Ok(())
}
