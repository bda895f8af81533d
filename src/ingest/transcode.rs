//! One ffmpeg run transcodes a file to the whole AAC-LC ladder ([`RENDITIONS`] at
//! [`SAMPLE_RATE`] stereo, MPEG-TS segments of [`SEGMENT_SECONDS`]), cut at the
//! catalogue duration, reporting its progress as it goes.

use std::ffi::OsString;
use std::path::Path;

use tokio::time::Instant;

use super::ImportError;
use super::process::Process;
use super::progress::progress_us;
use super::tools::{Tools, input_args};
use crate::hls::ladder::{RENDITIONS, SAMPLE_RATE, SEGMENT_SECONDS};
use crate::hls::playlist::format_seconds;

/// Transcode `input` into `out` as `{name}.m3u8` + `{name}-NNNNN.ts` per rendition,
/// cut at `duration_us` (see `probe::catalogue_duration_us`); `on_progress` gets the
/// microseconds written so far.
pub async fn transcode(
    tools: &Tools,
    input: &Path,
    out: &Path,
    duration_us: u64,
    deadline: Instant,
    mut on_progress: impl FnMut(u64) + Send,
) -> Result<(), ImportError> {
    Process::new("ffmpeg", &tools.ffmpeg)
        .args(ladder_args(input, out, duration_us))
        .input(input)
        .deadline(deadline)
        .stream_lines(|line| {
            if let Some(us) = progress_us(line) {
                on_progress(us);
            }
            Ok(())
        })
        .await
        .and_then(|exit| exit.success())
        .map_err(|e| ImportError::from_tool(e, ImportError::Transcode))?;
    Ok(())
}

/// ffmpeg's arguments: one `-map` per rendition, AAC-LC at each rung's bit rate, the
/// HLS muxer writing VOD playlists, and `-progress` on stdout.
fn ladder_args(input: &Path, out: &Path, duration_us: u64) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-nostdin", "-hide_banner", "-v", "error", "-nostats"]
        .map(Into::into)
        .to_vec();
    args.extend(input_args(input));
    for _ in RENDITIONS {
        args.extend(["-map", "0:a:0"].map(Into::into));
    }
    args.extend(
        [
            "-vn",
            "-sn",
            "-dn",
            "-map_metadata",
            "-1",
            "-c:a",
            "aac",
            "-profile:a",
            "aac_low",
            "-ar",
            &SAMPLE_RATE.to_string(),
            "-ac",
            "2",
        ]
        .map(Into::into),
    );
    let mut stream_map = Vec::new();
    for (i, r) in RENDITIONS.iter().enumerate() {
        args.push(format!("-b:a:{i}").into());
        args.push(format!("{}k", r.kbps).into());
        stream_map.push(format!("a:{i},name:{}", r.name));
    }
    args.extend(
        [
            "-t".to_string(),
            format_seconds(duration_us),
            "-f".into(),
            "hls".into(),
            "-hls_time".into(),
            SEGMENT_SECONDS.to_string(),
            "-hls_playlist_type".into(),
            "vod".into(),
            "-hls_segment_type".into(),
            "mpegts".into(),
            "-hls_segment_filename".into(),
        ]
        .map(Into::into),
    );
    args.push(out.join("%v-%05d.ts").into());
    args.extend(
        [
            "-var_stream_map".to_string(),
            stream_map.join(" "),
            "-progress".into(),
            "pipe:1".into(),
        ]
        .map(Into::into),
    );
    args.push(out.join("%v.m3u8").into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_writes_the_whole_ladder() {
        let args = ladder_args(Path::new("/t/original.mp3"), Path::new("/t/hls"), 2_020_136);
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].as_str()
        };
        assert_eq!(after("-i"), "file:/t/original.mp3");
        assert_eq!(after("-protocol_whitelist"), "file");
        assert_eq!(args.iter().filter(|a| *a == "0:a:0").count(), 2);
        assert_eq!((after("-b:a:0"), after("-b:a:1")), ("64k", "160k"));
        assert_eq!(after("-ar"), "44100");
        assert_eq!(after("-t"), "2.020136");
        assert_eq!(after("-hls_time"), "6");
        assert_eq!(after("-var_stream_map"), "a:0,name:a64 a:1,name:a160");
        assert_eq!(after("-hls_segment_filename"), "/t/hls/%v-%05d.ts");
        assert_eq!(args.last().unwrap(), "/t/hls/%v.m3u8");
    }
}
