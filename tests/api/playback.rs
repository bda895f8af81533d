//! Real players against the real binary: `veza serve --demo` started as a newcomer would
//! start it, every demo track's `/stream` URL decoded by ffmpeg from the first segment to
//! the last, the downloads decoded too, and a catalogue seeded by the old synthetic
//! generator upgraded in place.

use std::path::Path;
use std::process::Command;

use crate::common::binary::{Served, serve, veza};
use crate::common::tools;

/// One AAC frame at 44.1 kHz, in milliseconds: how far a decoded stream may be from the
/// catalogue's duration.
pub const AAC_FRAME_MS: f64 = 1024.0 * 1000.0 / 44_100.0;

/// `veza serve --demo` on a fresh SQLite database and storage directory.
fn serve_demo() -> Served {
    serve(tempfile::tempdir().unwrap(), &["serve", "--demo"], &[])
}

/// What ffmpeg made of a URL or file: exit success, its stderr at `-v error`, and the
/// decoded duration in milliseconds (mono 44.1 kHz PCM counted sample by sample).
pub struct Decoded {
    pub ok: bool,
    pub errors: String,
    pub ms: f64,
}

pub fn decode(ffmpeg: &Path, input: &str) -> Decoded {
    let out = Command::new(ffmpeg)
        .args(["-nostdin", "-v", "error", "-i", input])
        .args(["-f", "s16le", "-ac", "1", "-ar", "44100", "-"])
        .output()
        .unwrap();
    Decoded {
        ok: out.status.success(),
        errors: String::from_utf8_lossy(&out.stderr).into_owned(),
        ms: (out.stdout.len() / 2) as f64 * 1000.0 / 44_100.0,
    }
}

async fn json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

#[actix_web::test]
async fn every_demo_track_streams_and_downloads_as_decodable_audio() {
    let Some(ffmpeg) = tools::ffmpeg() else {
        return;
    };
    let served = serve_demo();
    let client = reqwest::Client::new();
    let tracks = json(&client, &format!("{}/api/v1/tracks?limit=100", served.base)).await;
    let items = tracks["items"].as_array().unwrap();
    assert_eq!(items.len(), 20, "{tracks}");
    let mut durations = std::collections::BTreeSet::new();
    for t in items {
        let id = t["id"].as_i64().unwrap();
        let duration_ms = t["duration_ms"].as_f64().unwrap();
        durations.insert(t["duration_ms"].as_i64().unwrap());
        assert!(
            (19_900.0..=36_000.0).contains(&duration_ms),
            "track {id}: {duration_ms} ms"
        );

        let stream = json(
            &client,
            &format!("{}/api/v1/tracks/{id}/stream", served.base),
        )
        .await;
        let url = stream["url"].as_str().unwrap();
        let d = decode(&ffmpeg, url);
        assert!(
            d.ok && d.errors.is_empty(),
            "track {id} stream: {}",
            d.errors
        );
        assert!(
            (d.ms - duration_ms).abs() <= AAC_FRAME_MS,
            "track {id}: decoded {} ms, catalogue {duration_ms} ms",
            d.ms
        );

        let download = json(
            &client,
            &format!("{}/api/v1/tracks/{id}/download", served.base),
        )
        .await;
        let url = download["url"].as_str().unwrap();
        let r = client.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let bytes = r.bytes().await.unwrap();
        assert_eq!(
            Some(bytes.len() as u64),
            t["byte_size"].as_u64(),
            "track {id}"
        );
        assert_eq!(t["content_type"], "audio/wav");
        let d = decode(&ffmpeg, url);
        assert!(
            d.ok && d.errors.is_empty(),
            "track {id} download: {}",
            d.errors
        );
        assert!(
            (d.ms - duration_ms).abs() < 1.0,
            "track {id}: original {} ms, catalogue {duration_ms} ms",
            d.ms
        );
    }
    // Every track is its own tune.
    assert!(durations.len() >= 10, "{durations:?}");
}

#[actix_web::test]
async fn the_master_playlist_describes_the_real_stream() {
    let Some(ffprobe) = tools::ffprobe() else {
        return;
    };
    let served = serve_demo();
    let client = reqwest::Client::new();
    let hls = served.dir.path().join("media/hls/5");
    let master = std::fs::read_to_string(hls.join("master.m3u8")).unwrap();
    let media = std::fs::read_to_string(hls.join("media.m3u8")).unwrap();

    // EXTINF: each segment's real duration, as ffprobe measures it.
    let mut longest = 0f64;
    let mut bytes = 0usize;
    let mut total = 0f64;
    let mut peak = 0f64;
    let lines: Vec<&str> = media.lines().collect();
    for pair in lines.windows(2) {
        let Some(extinf) = pair[0].strip_prefix("#EXTINF:") else {
            continue;
        };
        let claimed: f64 = extinf.trim_end_matches(',').parse().unwrap();
        let seg = hls.join(pair[1]);
        let out = Command::new(&ffprobe)
            .args(["-v", "error", "-count_packets", "-select_streams", "a:0"])
            .args(["-show_entries", "stream=nb_read_packets,codec_name,profile"])
            .args(["-of", "default=nw=1"])
            .arg(&seg)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("codec_name=aac") && text.contains("profile=LC"),
            "{text}"
        );
        let packets: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("nb_read_packets="))
            .unwrap()
            .parse()
            .unwrap();
        let real = packets * 1024.0 / 44_100.0;
        assert!(
            (real - claimed).abs() < 0.001,
            "{}: {real} vs {claimed}",
            pair[1]
        );
        let size = std::fs::metadata(&seg).unwrap().len() as usize;
        bytes += size;
        total += real;
        longest = longest.max(real);
        peak = peak.max(size as f64 * 8.0 / real);
    }
    let target: u64 = media
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(target, longest.ceil() as u64);

    let attr = |name: &str| -> f64 {
        master
            .split([',', ':', '\n'])
            .find_map(|a| a.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!((attr("BANDWIDTH") - peak).abs() <= 1.0, "{master}");
    assert!(
        (attr("AVERAGE-BANDWIDTH") - bytes as f64 * 8.0 / total).abs() <= 1.0,
        "{master}"
    );
    assert!(master.contains("CODECS=\"mp4a.40.2\""), "{master}");

    // And the catalogue agrees with the media it describes.
    let t = json(&client, &format!("{}/api/v1/tracks/5", served.base)).await;
    assert!((t["duration_ms"].as_f64().unwrap() - total * 1000.0).abs() < 1.0);
    let wav = served.dir.path().join("media/tracks/5/original.wav");
    assert_eq!(
        t["byte_size"].as_u64(),
        Some(std::fs::metadata(wav).unwrap().len())
    );
}

#[test]
fn a_catalogue_seeded_with_the_old_synthetic_media_is_upgraded() {
    use sea_orm::{ConnectionTrait, Database};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/v.db?mode=rwc", dir.path().display());
    let media = dir.path().join("media");
    let env = [
        ("DATABASE_URL", db.as_str()),
        ("VEZA_STORAGE_DIR", media.to_str().unwrap()),
    ];
    let seed = || {
        let out = veza(&["seed-demo"], &env);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        stderr
    };
    seed();

    // What the first generator left: 12 s claimed for a 1 s, 8 kHz tone, and a playlist of
    // synthetic segments no player can decode.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Database::connect(db.as_str()).await.unwrap();
        c.execute_unprepared("UPDATE tracks SET duration_ms = 12000, byte_size = 16044")
            .await
            .unwrap();
    });
    std::fs::remove_file(media.join(veza::db::seed::MANIFEST)).unwrap();
    let hls = media.join("hls/1");
    let stale = hls.join("seg-00112233445566aa.ts");
    std::fs::write(&stale, [0x47u8; 188 * 40]).unwrap();
    std::fs::write(
        hls.join("media.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg-00112233445566aa.ts\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    std::fs::write(media.join("tracks/1/original.wav"), vec![0u8; 16044]).unwrap();

    let stderr = seed();
    assert!(
        stderr.contains("20 demo rows upgraded") && stderr.contains("media rendered"),
        "{stderr}"
    );
    assert!(
        !stale.exists(),
        "the stale synthetic segment is still there"
    );
    let rows: Vec<(i64, i64, i64)> = rt.block_on(async {
        use sea_orm::{EntityTrait, QueryOrder};
        let c = Database::connect(db.as_str()).await.unwrap();
        veza::db::entities::track::Entity::find()
            .order_by_asc(veza::db::entities::track::Column::Id)
            .all(&c)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.id, t.duration_ms, t.byte_size))
            .collect()
    });
    assert_eq!(rows.len(), 20);
    for (id, duration_ms, byte_size) in rows {
        assert!(duration_ms >= 19_900, "track {id}: {duration_ms}");
        let wav = media.join(format!("tracks/{id}/original.wav"));
        assert_eq!(byte_size as u64, std::fs::metadata(wav).unwrap().len());
    }
    if let Some(ffmpeg) = tools::ffmpeg() {
        let d = decode(&ffmpeg, hls.join("master.m3u8").to_str().unwrap());
        assert!(d.ok && d.errors.is_empty(), "{}", d.errors);
        assert!(d.ms >= 19_900.0, "{}", d.ms);
    }

    // A third run finds everything current.
    let stderr = seed();
    assert!(
        stderr.contains("already in place") && !stderr.contains("upgraded"),
        "{stderr}"
    );
}
