//! `X-Sendfile` and `X-Accel-Redirect` (`http.sendfile`): a PHP answer that names a file
//! instead of carrying it. [`Named::take`] takes the header out of the answer; [`SendfileConfig::resolve`]
//! checks the file against the configured directories; the server then streams it as it
//! streams `sendFile()`.
//!
//! `X-Sendfile` names an absolute path (Apache's mod_xsendfile, RoadRunner's sendfile
//! middleware); `X-Accel-Redirect` names a URI that `accel_map` maps to a directory (nginx's
//! `internal` locations with `alias`).
use super::{open_allowed, OpenFile, StreamError};
use http::header::{HeaderName, CONTENT_ENCODING};
use http::HeaderMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub const X_SENDFILE: HeaderName = HeaderName::from_static("x-sendfile");
pub const X_ACCEL_REDIRECT: HeaderName = HeaderName::from_static("x-accel-redirect");

/// `http.sendfile`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SendfileConfig {
    /// Directories `X-Sendfile` may name files in: existing at start, absolute; their links
    /// are resolved at each answer ([`open_allowed`]), so a deploy's swapped link is followed.
    pub allowed_dirs: Vec<PathBuf>,
    /// `X-Accel-Redirect`: URI prefixes and the directory each stands for (the longest
    /// matching prefix wins).
    pub accel_map: Vec<AccelMapping>,
}

/// One `internal` location: URIs starting with `prefix` are files under `dir`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccelMapping {
    /// Starts and ends with `/`.
    pub prefix: String,
    /// An existing directory at start, absolute; resolved at each answer like `allowed_dirs`.
    pub dir: PathBuf,
}

impl AccelMapping {
    /// `prefix` gets its trailing `/`, so `/files` never matches `/filesystem/x`.
    pub fn new(prefix: &str, dir: PathBuf) -> AccelMapping {
        let mut prefix = prefix.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        AccelMapping { prefix, dir }
    }
}

/// The file an answer named, not yet checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Named {
    /// `X-Sendfile`: a path, as PHP wrote it.
    Path(Vec<u8>),
    /// `X-Accel-Redirect`: a URI, as PHP wrote it.
    Uri(Vec<u8>),
    /// Both headers, or one of them twice.
    Ambiguous,
}

impl Named {
    /// Takes `X-Sendfile` and `X-Accel-Redirect` out of `headers`; `None` when neither is
    /// there. With one, the other `X-Accel-*` headers go too (nginx never forwards them), and
    /// so does a `Content-Encoding` that described PHP's own body (`php_body` not empty:
    /// `zlib.output_compression` encodes even an empty output), which the file replaces.
    pub fn take(headers: &mut HeaderMap, php_body: bool) -> Option<Named> {
        if !headers.contains_key(X_SENDFILE) && !headers.contains_key(X_ACCEL_REDIRECT) {
            return None;
        }
        let mut values = |name| {
            let mut all = match headers.entry(name) {
                http::header::Entry::Occupied(e) => e.remove_entry_mult().1.collect::<Vec<_>>(),
                http::header::Entry::Vacant(_) => Vec::new(),
            };
            let one = all.pop().map(|v| v.as_bytes().to_vec());
            (one, all.is_empty())
        };
        let named = match (values(X_SENDFILE), values(X_ACCEL_REDIRECT)) {
            ((Some(path), true), (None, _)) => Named::Path(path),
            ((None, _), (Some(uri), true)) => Named::Uri(uri),
            _ => Named::Ambiguous,
        };
        let accel: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("x-accel-"))
            .cloned()
            .collect();
        for name in accel {
            headers.remove(name);
        }
        if php_body {
            headers.remove(CONTENT_ENCODING);
        }
        Some(named)
    }

    /// The header's value, for the log.
    pub fn describe(&self) -> String {
        match self {
            Named::Path(path) => format!("X-Sendfile: {}", String::from_utf8_lossy(path)),
            Named::Uri(uri) => format!("X-Accel-Redirect: {}", String::from_utf8_lossy(uri)),
            Named::Ambiguous => "X-Sendfile / X-Accel-Redirect".to_owned(),
        }
    }
}

impl SendfileConfig {
    /// The file to stream, open: a regular file inside an allowed directory, reached without
    /// `..`, opened as it was checked (see [`open_allowed`]). Blocks: call it from the
    /// blocking pool.
    pub fn resolve(&self, named: &Named) -> Result<OpenFile, StreamError> {
        match named {
            Named::Path(bytes) => {
                let path = Path::new(OsStr::from_bytes(bytes));
                if self.allowed_dirs.is_empty() {
                    return Err(forbidden(path, "http.sendfile.allowed_dirs is empty"));
                }
                open_allowed(path, &self.allowed_dirs)
            }
            Named::Uri(bytes) => {
                let (dir, path) = self.map(bytes)?;
                open_allowed(&path, std::slice::from_ref(dir))
            }
            Named::Ambiguous => Err(forbidden(
                Path::new(""),
                "an answer may name one file, in one X-Sendfile or X-Accel-Redirect header",
            )),
        }
    }

    /// The directory and the path an `X-Accel-Redirect` URI stands for: its path (the query is
    /// ignored, as nginx passes it to the location), percent-decoded, under the longest prefix.
    fn map(&self, uri: &[u8]) -> Result<(&PathBuf, PathBuf), StreamError> {
        let raw = uri.split(|b| *b == b'?').next().unwrap_or_default();
        let shown = PathBuf::from(OsStr::from_bytes(raw));
        let decoded = percent_decode(raw)
            .ok_or_else(|| forbidden(&shown, "the URI holds a bad %-escape or a NUL"))?;
        let mapping = self
            .accel_map
            .iter()
            .filter(|m| decoded.starts_with(m.prefix.as_bytes()))
            .max_by_key(|m| m.prefix.len())
            .ok_or_else(|| forbidden(&shown, "no prefix of http.sendfile.accel_map matches"))?;
        let rest = &decoded[mapping.prefix.len()..];
        // `/files//etc/passwd`: joined as is, an absolute rest would replace the directory.
        let start = rest.iter().position(|b| *b != b'/').unwrap_or(rest.len());
        let path = mapping.dir.join(OsStr::from_bytes(&rest[start..]));
        Ok((&mapping.dir, path))
    }
}

fn forbidden(path: &Path, reason: &'static str) -> StreamError {
    StreamError::Forbidden {
        path: path.to_path_buf(),
        reason,
    }
}

/// `%XX` decoded; `None` for a `%` without two hex digits or a decoded NUL.
fn percent_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let byte = match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                i += 2;
                value
            }
            other => other,
        };
        if byte == 0 {
            return None;
        }
        out.push(byte);
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::os::unix::fs::symlink;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn take_removes_the_headers_and_reads_one_file() {
        let mut h = headers(&[
            ("x-sendfile", "/srv/a"),
            ("x-accel-buffering", "no"),
            ("content-type", "text/plain"),
            ("content-encoding", "gzip"),
        ]);
        assert_eq!(
            Named::take(&mut h, true),
            Some(Named::Path(b"/srv/a".to_vec()))
        );
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("content-type"));

        let mut h = headers(&[("x-accel-redirect", "/p/a"), ("content-encoding", "br")]);
        assert_eq!(
            Named::take(&mut h, false),
            Some(Named::Uri(b"/p/a".to_vec()))
        );
        assert!(
            h.contains_key("content-encoding"),
            "PHP sent no body: its encoding is the file's"
        );

        let mut h = headers(&[("x-sendfile", "/a"), ("x-sendfile", "/b")]);
        assert_eq!(Named::take(&mut h, false), Some(Named::Ambiguous));
        assert!(h.is_empty());
        let mut h = headers(&[("x-sendfile", "/a"), ("x-accel-redirect", "/b")]);
        assert_eq!(Named::take(&mut h, false), Some(Named::Ambiguous));
        assert!(h.is_empty());

        let mut h = headers(&[("x-accel-buffering", "no"), ("content-encoding", "gzip")]);
        assert_eq!(Named::take(&mut h, true), None);
        assert_eq!(h.len(), 2, "untouched without a file");
    }

    struct Tree {
        _dir: tempfile::TempDir,
        files: PathBuf,
        outside: PathBuf,
    }

    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("files");
        std::fs::create_dir_all(files.join("sub dir")).unwrap();
        std::fs::write(files.join("a.txt"), "a").unwrap();
        std::fs::write(files.join("sub dir/b.txt"), "b").unwrap();
        let outside = dir.path().join("secret.txt");
        std::fs::write(&outside, "s").unwrap();
        symlink(&outside, files.join("link.txt")).unwrap();
        let files = files.canonicalize().unwrap();
        let outside = outside.canonicalize().unwrap();
        Tree {
            _dir: dir,
            files,
            outside,
        }
    }

    fn reason(result: Result<OpenFile, StreamError>) -> String {
        match result {
            Err(StreamError::Forbidden { reason, .. }) => reason.to_owned(),
            Err(other) => format!("{other:?}"),
            Ok(file) => format!("opened {}", file.path().display()),
        }
    }

    #[test]
    fn x_sendfile_stays_in_the_allowed_directories() {
        let t = tree();
        let config = SendfileConfig {
            allowed_dirs: vec![t.files.clone()],
            accel_map: vec![],
        };
        let path = |p: &Path| Named::Path(p.as_os_str().as_bytes().to_vec());
        assert_eq!(
            config
                .resolve(&path(&t.files.join("a.txt")))
                .unwrap()
                .path(),
            t.files.join("a.txt")
        );
        assert!(reason(config.resolve(&path(&t.outside))).contains("outside"));
        assert!(reason(config.resolve(&path(&t.files.join("link.txt")))).contains("outside"));
        assert!(reason(config.resolve(&path(&t.files.join("sub dir/../a.txt")))).contains(".."));
        assert!(reason(config.resolve(&Named::Path(b"a.txt".to_vec()))).contains("absolute"));
        assert!(reason(config.resolve(&Named::Path(Vec::new()))).contains("absolute"));
        assert!(matches!(
            config.resolve(&path(&t.files.join("gone.txt"))),
            Err(StreamError::NotFound(_))
        ));
        assert!(matches!(
            config.resolve(&path(&t.files.join("sub dir"))),
            Err(StreamError::NotAFile(_))
        ));
        assert!(reason(config.resolve(&Named::Ambiguous)).contains("one file"));
        let none = SendfileConfig::default();
        assert!(reason(none.resolve(&path(&t.files.join("a.txt")))).contains("empty"));
    }

    #[test]
    fn x_accel_redirect_maps_the_longest_prefix_and_decodes() {
        let t = tree();
        let config = SendfileConfig {
            allowed_dirs: vec![],
            accel_map: vec![
                AccelMapping::new("/protected/sub", t.files.join("sub dir")),
                AccelMapping::new("/protected", t.files.clone()),
            ],
        };
        let uri = |u: &str| config.resolve(&Named::Uri(u.as_bytes().to_vec()));
        let opened = |u: &str| uri(u).unwrap().path().to_path_buf();
        assert_eq!(opened("/protected/a.txt?x=1"), t.files.join("a.txt"));
        assert_eq!(
            opened("/protected/sub%20dir/b.txt"),
            t.files.join("sub dir/b.txt")
        );
        assert_eq!(
            opened("/protected/sub/b.txt"),
            t.files.join("sub dir/b.txt")
        );
        assert_eq!(
            opened("/protected//a.txt"),
            t.files.join("a.txt"),
            "an absolute rest stays under the directory"
        );
        assert!(reason(uri("/protectedx/a.txt")).contains("no prefix"));
        assert!(reason(uri("/other/a.txt")).contains("no prefix"));
        assert!(reason(uri("/protected/../secret.txt")).contains(".."));
        assert!(reason(uri("/protected/%2e%2e/secret.txt")).contains(".."));
        assert!(reason(uri("/protected/link.txt")).contains("outside"));
        assert!(reason(uri("/protected/a%00.txt")).contains("NUL"));
        assert!(reason(uri("/protected/a%zz")).contains("escape"));
        assert!(matches!(
            uri("/protected/gone"),
            Err(StreamError::NotFound(_))
        ));
        assert!(matches!(uri("/protected/"), Err(StreamError::NotAFile(_))));
    }
}
