//! Thin entry point: parse the command line, initialise logging, run the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // A missing .env is normal; a present one fills variables not already set.
    let _ = dotenvy::dotenv();
    let cli = veza::cli::Cli::parse();
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    logger
        // sea-orm's drivers log their ConnectOptions — the database URL with its
        // password — at trace level; cap them so no RUST_LOG setting can leak it.
        .filter_module("sea_orm::driver", log::LevelFilter::Info)
        // sqlx warns about a connect parameter it does not know (libpq's `sslpassword`…)
        // with its value: silence it, the value may be a credential.
        .filter_module("sqlx_postgres::options", log::LevelFilter::Error);
    // Malformed requests are counted and reported at WARN, rate-limited (veza::logging).
    if let Err(e) = veza::logging::install(logger) {
        eprintln!("cannot install the logger: {e}");
    }
    veza::cli::run(cli)
}
