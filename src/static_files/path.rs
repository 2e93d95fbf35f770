//! From a request's URL path to a path under the static directory, before any disk access:
//! percent-decoded, normalized, and refused when it climbs out with `..`.
use crate::request::form::url_decode;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What a URL path names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A file to look for: `relative` (no `.`, `..` or empty components) under the directory;
    /// `extension` lowercase with its dot, as RoadRunner takes it (see [`extension`]).
    File {
        decoded: Vec<u8>,
        relative: PathBuf,
        extension: String,
    },
    /// No file name with an extension (`/`, `/app/`, `/README`): PHP's.
    NoExtension,
    /// A `..` segment, written or percent-encoded.
    Traversal,
}

/// Decodes `%XX` (`+` stays a plus, as in a path) and splits on `/`. A decoded `%2F` splits
/// too: the result is a file path, and the file system reads it that way.
pub(crate) fn target(raw: &str) -> Target {
    let decoded = url_decode(raw.as_bytes(), false);
    let mut relative = PathBuf::new();
    for segment in decoded.split(|b| *b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return Target::Traversal,
            _ => relative.push(OsStr::from_bytes(segment)),
        }
    }
    // A NUL cannot be in a file name; a path with one names no file.
    if decoded.contains(&0) {
        return Target::NoExtension;
    }
    let last = decoded.rsplit(|b| *b == b'/').next().unwrap_or_default();
    match extension(last) {
        Some(extension) => Target::File {
            decoded,
            relative,
            extension,
        },
        None => Target::NoExtension,
    }
}

/// Go's `path.Ext`, which RoadRunner uses: from the last dot of the file name, so `.htaccess`
/// is the extension of `/.htaccess` and `.gz` that of `a.tar.gz`. Lowercase.
pub(crate) fn extension(file_name: &[u8]) -> Option<String> {
    let dot = file_name.iter().rposition(|b| *b == b'.')?;
    let ext = &file_name[dot..];
    (ext.len() > 1).then(|| String::from_utf8_lossy(ext).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(raw: &str) -> (String, String) {
        match target(raw) {
            Target::File {
                relative,
                extension,
                ..
            } => (relative.display().to_string(), extension),
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn decodes_and_normalizes() {
        assert_eq!(file("/css/app.css"), ("css/app.css".into(), ".css".into()));
        assert_eq!(
            file("//css/./app.CSS"),
            ("css/app.CSS".into(), ".css".into())
        );
        assert_eq!(file("/a%20b/c%2Bd.js"), ("a b/c+d.js".into(), ".js".into()));
        assert_eq!(file("/a+b.js"), ("a+b.js".into(), ".js".into()));
        assert_eq!(
            file("/dir%2Fapp.css"),
            ("dir/app.css".into(), ".css".into())
        );
        assert_eq!(file("/x.tar.gz"), ("x.tar.gz".into(), ".gz".into()));
        assert_eq!(file("/.htaccess"), (".htaccess".into(), ".htaccess".into()));
        // A bad escape stays as written.
        assert_eq!(file("/100%.txt"), ("100%.txt".into(), ".txt".into()));
    }

    #[test]
    fn parent_segments_are_traversal_in_any_spelling() {
        for raw in [
            "/../etc/passwd.txt",
            "/css/../../x.css",
            "/%2e%2e/x.css",
            "/%2E%2E/x.css",
            "/.%2e/x.css",
            "/css%2F..%2Fx.css",
            "/a/..",
        ] {
            assert_eq!(target(raw), Target::Traversal, "{raw}");
        }
        // Dots inside a name are not a parent segment.
        assert_eq!(file("/a..b.css"), ("a..b.css".into(), ".css".into()));
        assert_eq!(file("/...css"), ("...css".into(), ".css".into()));
    }

    #[test]
    fn names_without_an_extension_are_not_files() {
        for raw in [
            "/",
            "/css/",
            "/README",
            "/app.css/",
            "/a.",
            "/x%00.css",
            "/v1.2/run",
        ] {
            assert_eq!(target(raw), Target::NoExtension, "{raw}");
        }
    }
}
