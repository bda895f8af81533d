//! Where ffmpeg and ffprobe are (found in `PATH` once), and the input options every
//! run of them gets.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// ffmpeg or ffprobe is not installed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{tool} not found in PATH: veza import needs ffmpeg and ffprobe \
     (install them with `apt-get install ffmpeg` or `brew install ffmpeg`)"
)]
pub struct MissingTool {
    pub tool: &'static str,
}

/// Absolute paths of ffmpeg and ffprobe.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

impl Tools {
    pub fn from_env() -> Result<Tools, MissingTool> {
        Tools::find_in(&std::env::var_os("PATH").unwrap_or_default())
    }

    pub fn find_in(path: &OsStr) -> Result<Tools, MissingTool> {
        let find = |tool: &'static str| {
            std::env::split_paths(path)
                .map(|d| d.join(tool))
                .find(|p| is_executable(p))
                .ok_or(MissingTool { tool })
        };
        Ok(Tools {
            ffmpeg: find("ffmpeg")?,
            ffprobe: find("ffprobe")?,
        })
    }
}

fn is_executable(p: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(p) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// The demuxers an import may use: audio containers that read only the file they are
/// given. Playlist and reference formats (`hls`, `concat`, …) are refused: an HLS
/// playlist renamed `.mp3` would otherwise make ffmpeg read another local file (the
/// protocol whitelist allows `file`) and import it as a new track.
pub const INPUT_FORMATS: &str = "mp3,flac,wav,ogg,mov,matroska,aac,aiff,w64,wv,ape,asf,caf";

/// `file:` keeps ffmpeg from reading a name with a colon as a protocol; the protocol
/// whitelist keeps a file from making it fetch anything over the network, and the
/// format whitelist ([`INPUT_FORMATS`]) from opening any other file.
pub fn input_args(path: &Path) -> Vec<OsString> {
    let mut input = OsString::from("file:");
    input.push(path);
    vec![
        "-protocol_whitelist".into(),
        "file".into(),
        "-format_whitelist".into(),
        INPUT_FORMATS.into(),
        "-i".into(),
        input,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_in_path_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Tools::find_in(dir.path().as_os_str()).unwrap_err(),
            MissingTool { tool: "ffmpeg" }
        );
        let msg = MissingTool { tool: "ffprobe" }.to_string();
        assert!(msg.starts_with("ffprobe not found in PATH"), "{msg}");
        assert!(msg.contains("apt-get install ffmpeg") && msg.contains("brew install ffmpeg"));
    }
}
