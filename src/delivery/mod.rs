//! Track delivery: choosing and building the URL a player or browser is sent to
//! (CDN → S3 / local fallback), and the pure helpers it needs (name validation,
//! local tokens, Content-Disposition).

pub mod catalogue;
pub mod local_token;
pub mod paths;

/// `Content-Disposition: attachment` for `<title>.<ext>`, with an ASCII `filename`
/// fallback and an RFC 6266 / 5987 `filename*` when the title is not plain ASCII.
pub fn attachment_disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    if ascii == filename {
        format!("attachment; filename=\"{ascii}\"")
    } else {
        let encoded = percent_encoding::utf8_percent_encode(filename, RFC5987).to_string();
        format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
    }
}

/// RFC 5987 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~" stay; everything else is encoded.
const RFC5987: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The download file name: the title made safe for file systems, plus the original's
/// extension.
pub fn download_filename(title: &str, storage_key: &str) -> String {
    let ext = storage_key
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or("bin");
    let clean: String = title
        .chars()
        .map(|c| {
            if c.is_control() || "/\\:*?\"<>|".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim().trim_matches('.');
    let stem = if clean.is_empty() { "track" } else { clean };
    format!("{stem}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_titles_get_a_plain_filename() {
        assert_eq!(
            attachment_disposition("Slow Orbit.wav"),
            "attachment; filename=\"Slow Orbit.wav\""
        );
    }

    #[test]
    fn non_ascii_titles_get_filename_star() {
        assert_eq!(
            attachment_disposition("Été Indien.wav"),
            "attachment; filename=\"_t_ Indien.wav\"; filename*=UTF-8''%C3%89t%C3%A9%20Indien.wav"
        );
    }

    #[test]
    fn download_names_are_sanitised() {
        assert_eq!(
            download_filename("a/b: c?", "tracks/1/x.wav"),
            "a_b_ c_.wav"
        );
        assert_eq!(download_filename("...", "k.mp3"), "track.mp3");
        assert_eq!(download_filename("Song", "noext"), "Song.bin");
    }
}
