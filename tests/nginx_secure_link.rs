#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end check of the nginx signer against a real nginx `secure_link` module.
//!
//! Skipped (with a message) when nginx is not installed, except with `CI=true`, where a
//! missing nginx is a failure (`tests/common`'s skip rule).

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::nginx::Nginx;
use veza::cdn::{PreparedSigner, Provider, ProviderConfig, SignRequest};

const SECRET: &str = "s3cr3t-for-tests";

fn write(root: &Path, rel: &str, body: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

#[cfg(unix)]
fn make_world_readable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            make_world_readable(&p);
        } else {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(not(unix))]
fn make_world_readable(_: &Path) {}

/// The server block: `/files/` signed per file, `/hls/{id}/` signed for the directory.
fn server(root: &Path, port: u16) -> String {
    format!(
        r#"
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /health {{ return 204; }}
        location /files/ {{
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri {SECRET}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
        }}
        # HLS: the token signs the stream directory, so every segment is authorised.
        location ~ ^(?<hlsdir>/hls/[^/]+/) {{
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$hlsdir {SECRET}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
        }}
    }}
"#,
        root = root.display()
    )
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Vec<u8>) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
// One scenario against one real nginx: each provider option checked in turn.
#[allow(clippy::too_many_lines)]
async fn nginx_secure_link_accepts_signed_urls() {
    let Some(bin) = common::tools::nginx() else {
        return;
    };

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("www");
    write(&root, "files/hello.txt", b"hello from nginx\n");
    write(&root, "files/a b.txt", b"spaced\n");
    write(&root, "hls/42/index.m3u8", b"#EXTM3U\nseg1.ts\n");
    write(&root, "hls/42/seg1.ts", b"SEGMENT-1");
    write(&root, "hls/43/seg1.ts", b"OTHER-STREAM");
    make_world_readable(tmp.path());

    let port = common::free_port();
    let nginx = Nginx::start(&bin, port, &server(&root, port)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let base = nginx.base.clone();
    let up = common::poll(Duration::from_secs(15), || async {
        let r = client.get(format!("{base}/health")).send().await.ok()?;
        (r.status().as_u16() == 204).then_some(())
    })
    .await;
    assert!(up.is_some(), "nginx did not come up in time");

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signer = PreparedSigner::new(&ProviderConfig::new(Provider::Nginx, SECRET)).unwrap();

    // Signed → 200 with the file bytes.
    let url = signer
        .sign(&SignRequest::new(
            format!("{base}/files/hello.txt"),
            now + 300,
            now,
        ))
        .unwrap();
    assert_eq!(
        get(&client, &url).await,
        (200, b"hello from nginx\n".to_vec())
    );

    // Percent-encoded path: nginx hashes the decoded $uri.
    let spaced = signer
        .sign(&SignRequest::new(
            format!("{base}/files/a%20b.txt"),
            now + 300,
            now,
        ))
        .unwrap();
    assert_eq!(get(&client, &spaced).await, (200, b"spaced\n".to_vec()));

    // Tampered: other file, changed expiry, changed md5 → 403; unsigned → 403.
    let other_file = url.replace("hello.txt", "a%20b.txt");
    assert_eq!(get(&client, &other_file).await.0, 403);
    let pushed = url.replace(
        &format!("expires={}", now + 300),
        &format!("expires={}", now + 3000),
    );
    assert_eq!(get(&client, &pushed).await.0, 403);
    let md5_at = url.find("md5=").unwrap() + 4;
    let mut bad = url.clone().into_bytes();
    bad[md5_at] = if bad[md5_at] == b'A' { b'B' } else { b'A' };
    assert_eq!(get(&client, &String::from_utf8(bad).unwrap()).await.0, 403);
    assert_eq!(
        get(&client, &format!("{base}/files/hello.txt")).await.0,
        403
    );

    // Expired (valid signature, expiry in the past) → 410.
    let expired = signer
        .sign(&SignRequest::new(
            format!("{base}/files/hello.txt"),
            now - 10,
            0,
        ))
        .unwrap();
    assert_eq!(get(&client, &expired).await.0, 410);

    // HLS directory-prefix signature: playlist and segments of /hls/42/ pass, /hls/43/ not.
    let mut req = SignRequest::new(format!("{base}/hls/42/index.m3u8"), now + 300, now);
    req.scope = veza::cdn::Scope::Directory;
    let playlist = signer.sign(&req).unwrap();
    assert_eq!(
        get(&client, &playlist).await,
        (200, b"#EXTM3U\nseg1.ts\n".to_vec())
    );
    let query = &playlist[playlist.find('?').unwrap()..];
    assert_eq!(
        get(&client, &format!("{base}/hls/42/seg1.ts{query}")).await,
        (200, b"SEGMENT-1".to_vec())
    );
    assert_eq!(
        get(&client, &format!("{base}/hls/43/seg1.ts{query}"))
            .await
            .0,
        403
    );

    drop(nginx);
}
