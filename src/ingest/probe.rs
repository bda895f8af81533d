//! What a file is, asked of ffprobe: its tags, sample rate and declared duration
//! ([`probe`]), and how long its audio really is, by decoding all of it and counting
//! samples ([`count_decoded_us`]), which also catches corrupt and truncated files.
//! The catalogue's title, artist and duration are decided from these (pure).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tokio::time::Instant;

use super::ImportError;
use super::process::Process;
use super::tools::{Tools, input_args};
use crate::hls::playlist::parse_seconds_us;

/// Artist of a file with no `artist` tag and no `--artist`.
pub const UNKNOWN_ARTIST: &str = "Unknown Artist";

/// Files whose decoded length falls short of the container's declared duration by
/// more than this (or [`TRUNCATION_FRACTION`] of it, whichever is larger) are
/// reported as truncated.
const TRUNCATION_TOLERANCE_US: u64 = 500_000;
const TRUNCATION_FRACTION: u64 = 50; // 2 %
/// Decoders may emit encoder padding that the container trims (MP4 edit lists);
/// a decoded length at most this much longer than the declared one is padding.
const PADDING_TOLERANCE_US: u64 = 300_000;

#[derive(Debug, Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Debug, Deserialize)]
struct ProbeStream {
    sample_rate: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// What ffprobe says about a file's container and first audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub format_tags: BTreeMap<String, String>,
    pub stream_tags: BTreeMap<String, String>,
    pub sample_rate: u32,
    /// `None` when absent or estimated from the bitrate (ffmpeg warns then).
    pub declared_us: Option<u64>,
}

/// A track's title and artist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credits {
    pub title: String,
    pub artist: String,
}

/// The decoded audio is shorter than the container declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub decoded_us: u64,
    pub declared_us: u64,
}

/// Tags, sample rate and declared duration of the file's first audio stream.
pub async fn probe(
    tools: &Tools,
    path: &Path,
    deadline: Instant,
) -> Result<ProbeReport, ImportError> {
    let exit = Process::new("ffprobe", &tools.ffprobe)
        .args(["-v", "warning", "-hide_banner"])
        .args(input_args(path))
        .args([
            "-select_streams",
            "a:0",
            "-show_entries",
            "format=duration:format_tags:stream=sample_rate:stream_tags",
            "-of",
            "json",
        ])
        .input(path)
        .deadline(deadline)
        .output()
        .await
        .and_then(|exit| exit.success())
        .map_err(|e| ImportError::from_tool(e, ImportError::NotAudio))?;
    let json: ProbeJson =
        serde_json::from_slice(&exit.stdout).map_err(|e| ImportError::ToolOutput {
            tool: "ffprobe",
            detail: e.to_string(),
        })?;
    let Some(stream) = json.streams.into_iter().next() else {
        return Err(ImportError::NoAudio);
    };
    let sample_rate = stream
        .sample_rate
        .as_deref()
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|r| *r > 0)
        .ok_or(ImportError::NoAudio)?;
    let format = json.format.unwrap_or(ProbeFormat {
        duration: None,
        tags: BTreeMap::new(),
    });
    let estimated =
        String::from_utf8_lossy(&exit.stderr).contains("Estimating duration from bitrate");
    Ok(ProbeReport {
        format_tags: format.tags,
        stream_tags: stream.tags,
        sample_rate,
        declared_us: format
            .duration
            .as_deref()
            .and_then(parse_seconds_us)
            .filter(|_| !estimated),
    })
}

/// Decode the whole first audio stream and count its samples: the real length, and a
/// check that every frame decodes (any error fails the file).
pub async fn count_decoded_us(
    tools: &Tools,
    path: &Path,
    sample_rate: u32,
    deadline: Instant,
) -> Result<u64, ImportError> {
    let mut samples: u64 = 0;
    Process::new("ffprobe", &tools.ffprobe)
        .args(["-v", "error", "-hide_banner"])
        .args(input_args(path))
        .args([
            "-select_streams",
            "a:0",
            "-show_entries",
            "frame=nb_samples",
            "-of",
            "csv=p=0",
        ])
        .input(path)
        .deadline(deadline)
        .stream_lines(|line| {
            let field = line.trim().trim_end_matches(',');
            if !field.is_empty() {
                samples += field
                    .parse::<u64>()
                    .map_err(|_| format!("frame line {line:?}"))?;
            }
            Ok(())
        })
        .await
        .and_then(|exit| exit.clean())
        .map_err(|e| ImportError::from_tool(e, ImportError::Decode))?;
    let us = u128::from(samples) * 1_000_000 / u128::from(sample_rate);
    Ok(u64::try_from(us).unwrap_or(u64::MAX))
}

/// A tag's value by case-insensitive name, trimmed; empty values count as absent.
pub fn tag<'a>(tags: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    tags.iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .find(|v| !v.is_empty())
}

/// Title and artist: the flags, else the format's tags, else the audio stream's tags
/// (Ogg and Opus keep their comments there), else the file stem / [`UNKNOWN_ARTIST`].
pub fn title_and_artist(
    flags: (Option<&str>, Option<&str>),
    format_tags: &BTreeMap<String, String>,
    stream_tags: &BTreeMap<String, String>,
    path: &Path,
) -> Credits {
    // Tags and file names come from the file: cut to the catalogue's limits and
    // cleaned of control and bidi characters (flags were validated by the caller).
    let pick = |flag: Option<&str>, name: &str, max: usize| {
        flag.map(str::trim)
            .filter(|v| !v.is_empty())
            .or_else(|| tag(format_tags, name))
            .or_else(|| tag(stream_tags, name))
            .and_then(|v| crate::fields::sanitized(v, max))
    };
    let title = pick(flags.0, "title", crate::fields::TITLE_MAX).unwrap_or_else(|| {
        path.file_stem()
            .and_then(|s| crate::fields::sanitized(&s.to_string_lossy(), crate::fields::TITLE_MAX))
            .unwrap_or_else(|| "Untitled".to_string())
    });
    let artist = pick(flags.1, "artist", crate::fields::NAME_MAX)
        .unwrap_or_else(|| UNKNOWN_ARTIST.to_string());
    Credits { title, artist }
}

/// The catalogue duration from the decoded length and the container's declared
/// duration (`None` when absent or only estimated from the bitrate).
///
/// A decode shorter than declared by more than max(0.5 s, 2 %) means the file was cut
/// (an MP3 whose Xing header promises more frames than it has decodes without any
/// error). Otherwise the shorter of the two is the real length: MP3 and Opus declare
/// their encoder delay and padding, which the decoder drops; an MP4's edit list trims
/// padding that ffmpeg's decoder still outputs.
pub fn catalogue_duration_us(decoded_us: u64, declared_us: Option<u64>) -> Result<u64, Truncation> {
    let Some(declared) = declared_us else {
        return Ok(decoded_us);
    };
    let tolerance = TRUNCATION_TOLERANCE_US.max(declared / TRUNCATION_FRACTION);
    if decoded_us + tolerance < declared {
        return Err(Truncation {
            decoded_us,
            declared_us: declared,
        });
    }
    if decoded_us > declared && decoded_us - declared <= PADDING_TOLERANCE_US {
        return Ok(declared);
    }
    Ok(decoded_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn credits(title: &str, artist: &str) -> Credits {
        Credits {
            title: title.to_string(),
            artist: artist.to_string(),
        }
    }

    #[test]
    fn tags_are_case_insensitive_and_flags_win() {
        let format = tags(&[("TITLE", "  Song  "), ("Artist", "")]);
        let stream = tags(&[("artist", "From Stream"), ("title", "Stream Title")]);
        let path = Path::new("/music/file name.mp3");
        assert_eq!(
            title_and_artist((None, None), &format, &stream, path),
            credits("Song", "From Stream")
        );
        assert_eq!(
            title_and_artist((Some("Flag"), Some("Band")), &format, &stream, path),
            credits("Flag", "Band")
        );
        let none = BTreeMap::new();
        assert_eq!(
            title_and_artist((None, None), &none, &none, path),
            credits("file name", UNKNOWN_ARTIST)
        );
        // A blank flag falls back like a missing one.
        assert_eq!(
            title_and_artist((Some(" "), None), &format, &none, path).title,
            "Song"
        );
        assert_eq!(tag(&tags(&[("ArTiSt", "X")]), "artist"), Some("X"));
    }

    #[test]
    fn durations_from_decode_and_container() {
        // MP3: the Xing header counts encoder delay and padding; the decode is exact.
        assert_eq!(
            catalogue_duration_us(5_000_000, Some(5_041_633)),
            Ok(5_000_000)
        );
        // MP4: the decoder outputs padding the edit list trims.
        assert_eq!(
            catalogue_duration_us(2_020_136, Some(2_000_000)),
            Ok(2_000_000)
        );
        // No trustworthy declaration: the decode.
        assert_eq!(catalogue_duration_us(3_000_000, None), Ok(3_000_000));
        // Far longer than declared: the declaration is wrong, keep all the audio.
        assert_eq!(
            catalogue_duration_us(9_000_000, Some(2_000_000)),
            Ok(9_000_000)
        );
        // Cut: half of a declared 5 s.
        assert_eq!(
            catalogue_duration_us(2_456_000, Some(5_041_633)),
            Err(Truncation {
                decoded_us: 2_456_000,
                declared_us: 5_041_633
            })
        );
        // 2 % of a long file is the tolerance.
        assert!(catalogue_duration_us(590_000_000, Some(600_000_000)).is_ok());
        assert!(catalogue_duration_us(580_000_000, Some(600_000_000)).is_err());
    }
}
