//! The `veza` command line: subcommands, and what each does with the configuration.
//! Exit codes: 0 success, 2 bad configuration or usage, 1 runtime failure.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, Scope, env_help};
use crate::startup::Application;

const ALL: &[Scope] = &[
    Scope::Database,
    Scope::Server,
    Scope::Storage,
    Scope::QueryStats,
    Scope::Cdn,
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
    #[command(after_help = env_help(&[Scope::Database]))]
    Migrate,
    /// Insert demo artists, tracks, playlists and generated HLS media (idempotent).
    #[command(after_help = env_help(&[Scope::Database, Scope::Storage]))]
    SeedDemo,
    /// Validate the whole configuration and print the effective values (secrets redacted).
    #[command(after_help = env_help(ALL))]
    CheckConfig,
    /// N+1 query tools.
    #[command(subcommand, after_help = env_help(&[Scope::QueryStats]))]
    N1(N1Command),
}

#[derive(Debug, Subcommand)]
pub enum N1Command {
    /// Analyze newline-delimited JSON request traces with the live detector's rules.
    #[command(after_help = env_help(&[Scope::QueryStats]))]
    Analyze {
        /// Trace file; standard input when absent.
        file: Option<PathBuf>,
        /// One JSON object per finding instead of text lines.
        #[arg(long)]
        json: bool,
    },
}

fn load_config() -> Result<Config, ExitCode> {
    Config::from_env().map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CheckConfig => check_config(),
        Command::N1(N1Command::Analyze { file, json }) => n1_analyze(file, json),
        command => {
            let config = match load_config() {
                Ok(c) => c,
                Err(code) => return code,
            };
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                match command {
                    Command::Serve { demo } => serve(config, demo).await,
                    Command::Migrate => migrate(config).await,
                    Command::SeedDemo => seed(config).await,
                    Command::CheckConfig | Command::N1(_) => ExitCode::SUCCESS,
                }
            })
        }
    }
}

fn check_config() -> ExitCode {
    match Config::from_env() {
        Ok(config) => {
            if let Err(e) = crate::actors::query_stats::detector_config(&config.query_stats) {
                eprintln!("configuration error: VEZA_N1_ALLOW: {e}");
                return ExitCode::from(2);
            }
            let mut out = std::io::stdout().lock();
            for (name, value) in config.effective() {
                let _ = writeln!(out, "{name}={value}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn open_db(config: &Config) -> Result<sea_orm::DatabaseConnection, ExitCode> {
    let registry = prometheus::Registry::new();
    let metrics =
        crate::metrics::Metrics::register(&registry, config.database.acquire_timeout.as_secs_f64())
            .map_err(|e| {
                eprintln!("metrics: {e}");
                ExitCode::FAILURE
            })?;
    crate::db::connect(&config.database, &metrics, config.query_stats.slow_query)
        .await
        .map_err(|e| {
            eprintln!("{e}");
            ExitCode::FAILURE
        })
}

async fn migrate(config: Config) -> ExitCode {
    let conn = match open_db(&config).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match crate::db::migrate(&conn).await {
        Ok(()) => {
            log::info!("migrations applied to {}", config.database.url);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migration failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn seed(config: Config) -> ExitCode {
    let conn = match open_db(&config).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = crate::db::migrate(&conn).await {
        eprintln!("migration failed: {e}");
        return ExitCode::FAILURE;
    }
    match crate::db::seed::seed_demo(&conn, &config.storage_dir).await {
        Ok(report) => {
            log::info!(
                "demo data: {} tracks ({}), media under {}",
                report.tracks,
                if report.inserted {
                    "inserted"
                } else {
                    "already present"
                },
                config.storage_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("seeding failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config, demo: bool) -> ExitCode {
    if demo {
        let code = seed(config.clone()).await;
        if code != ExitCode::SUCCESS {
            return code;
        }
    }
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("startup failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::info!("veza listening on http://{}", app.address());
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn n1_analyze(file: Option<PathBuf>, json: bool) -> ExitCode {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let detector = match crate::actors::query_stats::detector_config(&config.query_stats) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("configuration error: VEZA_N1_ALLOW: {e}");
            return ExitCode::from(2);
        }
    };
    let input: Box<dyn BufRead> = match &file {
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => Box::new(BufReader::new(f)),
            Err(e) => {
                eprintln!("cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => Box::new(BufReader::new(std::io::stdin().lock())),
    };
    let report = match crate::n1::trace::analyze(input, &detector) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let out = std::io::stdout().lock();
    let written = if json {
        report.write_json(out)
    } else {
        report.write_text(out)
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("writing the report: {e}");
            ExitCode::FAILURE
        }
    }
}
