//! The external tools tests run, each looked up in one place and through the skip rule
//! ([`super::skip`]) when missing.

use std::path::PathBuf;

/// Where a tool may be: PATH, then where Debian and `cargo install` put what a
/// non-login PATH may lack.
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    std::env::split_paths(&path)
        .chain(cargo)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `name`'s path, or `None` after the skip rule: `install` says how to get it.
pub fn require(name: &str, install: &str) -> Option<PathBuf> {
    let found = find(name);
    if found.is_none() {
        super::skip(&format!(
            "{name} is not installed ({install}; scripts/setup.sh installs it)"
        ));
    }
    found
}

pub fn ffmpeg() -> Option<PathBuf> {
    require("ffmpeg", "apt-get install ffmpeg")
}

pub fn ffprobe() -> Option<PathBuf> {
    require("ffprobe", "apt-get install ffmpeg")
}

/// Both ffmpeg and ffprobe (what `veza import` runs).
pub fn ffmpeg_and_ffprobe() -> Option<(PathBuf, PathBuf)> {
    Some((ffmpeg()?, ffprobe()?))
}

pub fn promtool() -> Option<PathBuf> {
    require("promtool", "apt-get install prometheus")
}

pub fn prometheus() -> Option<PathBuf> {
    require("prometheus", "apt-get install prometheus")
}

pub fn nginx() -> Option<PathBuf> {
    require("nginx", "apt-get install nginx")
}

/// moto's server (PyPI `moto[server]`): the CloudFront API, emulated.
pub fn moto_server() -> Option<PathBuf> {
    require("moto_server", "pip install 'moto[server]'")
}

pub fn s3s_fs() -> Option<PathBuf> {
    require(
        "s3s-fs",
        "cargo install s3s-fs@0.14.1 --locked --features binary",
    )
}

/// util-linux's `setpriv`, to run one command as another user.
pub fn setpriv() -> Option<PathBuf> {
    require("setpriv", "apt-get install util-linux")
}

/// `node` from PATH, quietly: [`super::chromium::available`] applies the skip rule.
pub fn node() -> Option<PathBuf> {
    find("node")
}

/// The directory holding PostgreSQL's server programs (`initdb`, `pg_ctl`, `postgres`):
/// Debian's `/usr/lib/postgresql/<newest>/bin` (its PATH has only wrappers, if
/// anything), else PATH.
pub fn postgres_server_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    let found = versions.pop().map(|(_, bin)| bin).or_else(|| {
        let initdb = find("initdb")?.canonicalize().ok()?;
        let bin = initdb.parent()?.to_path_buf();
        bin.join("pg_ctl").is_file().then_some(bin)
    });
    if found.is_none() {
        super::skip(
            "PostgreSQL's server programs (initdb, pg_ctl) are not installed (apt-get install postgresql; scripts/setup.sh installs it)",
        );
    }
    found
}
