//! `Content-Type` from a file name, for when PHP did not set one.
//!
//! A short table of the types a PHP app commonly hands to sendFile, rather than a crate with
//! the full IANA list: an unknown extension still gets the safe `application/octet-stream`.
use std::path::Path;

pub(crate) const FALLBACK: &str = "application/octet-stream";

pub(crate) fn guess(path: &Path) -> &'static str {
    let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
        return FALLBACK;
    };
    // Extensions are short; a stack copy avoids allocating to lowercase them.
    let mut buf = [0u8; 11];
    if ext.len() > buf.len() {
        return FALLBACK;
    }
    let lower = &mut buf[..ext.len()];
    lower.copy_from_slice(ext.as_bytes());
    lower.make_ascii_lowercase();
    by_extension(lower).unwrap_or(FALLBACK)
}

fn by_extension(ext: &[u8]) -> Option<&'static str> {
    // Text types carry a charset so browsers don't fall back to windows-1252 (Go's table does
    // the same).
    Some(match ext {
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"css" => "text/css; charset=utf-8",
        b"js" | b"mjs" => "text/javascript; charset=utf-8",
        b"txt" | b"log" => "text/plain; charset=utf-8",
        b"csv" => "text/csv; charset=utf-8",
        b"md" => "text/markdown; charset=utf-8",
        b"xml" => "application/xml",
        b"json" | b"map" => "application/json",
        b"webmanifest" => "application/manifest+json",
        b"yaml" | b"yml" => "application/yaml",
        b"wasm" => "application/wasm",
        b"pdf" => "application/pdf",
        b"rtf" => "application/rtf",
        b"zip" => "application/zip",
        b"gz" | b"tgz" => "application/gzip",
        b"tar" => "application/x-tar",
        b"bz2" => "application/x-bzip2",
        b"xz" => "application/x-xz",
        b"zst" => "application/zstd",
        b"7z" => "application/x-7z-compressed",
        b"rar" => "application/vnd.rar",
        b"jar" => "application/java-archive",
        b"epub" => "application/epub+zip",
        b"doc" => "application/msword",
        b"docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        b"xls" => "application/vnd.ms-excel",
        b"xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        b"ppt" => "application/vnd.ms-powerpoint",
        b"pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        b"odt" => "application/vnd.oasis.opendocument.text",
        b"ods" => "application/vnd.oasis.opendocument.spreadsheet",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"webp" => "image/webp",
        b"avif" => "image/avif",
        b"svg" => "image/svg+xml",
        // nginx and Apache say image/x-icon, which every browser knows.
        b"ico" => "image/x-icon",
        b"bmp" => "image/bmp",
        b"tif" | b"tiff" => "image/tiff",
        b"woff" => "font/woff",
        b"woff2" => "font/woff2",
        b"ttf" => "font/ttf",
        b"otf" => "font/otf",
        b"mp3" => "audio/mpeg",
        b"wav" => "audio/wav",
        b"ogg" | b"oga" | b"opus" => "audio/ogg",
        b"flac" => "audio/flac",
        b"m4a" => "audio/mp4",
        b"aac" => "audio/aac",
        b"mp4" | b"m4v" => "video/mp4",
        b"webm" => "video/webm",
        b"ogv" => "video/ogg",
        b"mov" => "video/quicktime",
        b"mkv" => "video/x-matroska",
        b"avi" => "video/x-msvideo",
        b"mpeg" | b"mpg" => "video/mpeg",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses() {
        assert_eq!(guess(Path::new("/a/b.PNG")), "image/png");
        assert_eq!(guess(Path::new("x.tar.gz")), "application/gzip");
        assert_eq!(guess(Path::new("index.html")), "text/html; charset=utf-8");
        assert_eq!(guess(Path::new("/tmp/5f1c/rr")), FALLBACK);
        assert_eq!(guess(Path::new("rr.exe")), FALLBACK);
        assert_eq!(guess(Path::new("a.verylongextension")), FALLBACK);
        assert_eq!(guess(Path::new(".hidden")), FALLBACK);
    }

    #[test]
    fn web_assets_have_their_types() {
        for (name, expected) in [
            ("a.css", "text/css; charset=utf-8"),
            ("a.js", "text/javascript; charset=utf-8"),
            ("a.mjs", "text/javascript; charset=utf-8"),
            ("a.svg", "image/svg+xml"),
            ("a.woff", "font/woff"),
            ("a.woff2", "font/woff2"),
            ("a.wasm", "application/wasm"),
            ("a.json", "application/json"),
            ("a.js.map", "application/json"),
            ("favicon.ico", "image/x-icon"),
            ("a.png", "image/png"),
            ("a.webp", "image/webp"),
            ("a.txt", "text/plain; charset=utf-8"),
            ("a.html", "text/html; charset=utf-8"),
            ("manifest.webmanifest", "application/manifest+json"),
        ] {
            assert_eq!(guess(Path::new(name)), expected, "{name}");
        }
    }
}
