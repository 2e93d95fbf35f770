//! `http.static`: files answered from disk by the server itself, before PHP, with RoadRunner's
//! static middleware semantics: only GET and HEAD, only names with an extension that is
//! allowed and not forbidden, only regular files inside the directory. Everything else that
//! is not a traversal attempt goes on to PHP as usual.
//!
//! # Layout
//! - `path`     URL path → relative file path and extension (decoding, normalization, `..`).
//! - `etag`     strong ETags: a content hash, kept while the file is unchanged.
//!
//! With `precompressed`, a client that accepts br, zstd or gzip gets `app.css.br` (`.zst`,
//! `.gz`) when it lies beside `app.css` and is not older, with the original's type.
//!
//! This file holds the rules and the look-up; `stream::respond` builds the answer
//! (Range, HEAD, 304, Content-Type).
mod etag;
mod path;

use crate::body::Body;
use crate::compress::{self, Encoding};
use crate::config::StaticConfig;
use crate::stream::{self, beneath, OpenFile, StreamError, Validators};
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, RANGE,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Files up to this size are read with the look-up and sent from memory.
const PRELOAD: u64 = 64 * 1024;

/// What to do with a request.
pub enum Outcome {
    /// The file's answer (200, 206, 304, 416; HEAD without a body).
    Served(Response<Body>),
    /// Not a static file: hand the request to PHP.
    Pass,
    /// Refused outright (`403`): a `..` path or a symlink out of the directory.
    Refused(&'static str),
}

pub struct StaticFiles {
    /// Replaced when `dir` comes to name another directory (see [`StaticFiles::rules`]).
    rules: RwLock<Arc<Rules>>,
}

/// The directory and the rules, for the requests that came while `dir` named this directory.
struct Rules {
    /// Canonical (symlinks resolved), so "inside" is a prefix test on canonical paths.
    root: PathBuf,
    /// `root`, open, for `openat2`.
    root_dir: std::fs::File,
    /// The directory's device and inode, to see `dir` move to another one.
    root_id: (u64, u64),
    config: StaticConfig,
    strong: Option<etag::StrongTags>,
}

/// Why a path is not served from disk.
enum NotServed {
    Pass,
    Outside,
}

impl StaticFiles {
    /// See [`Rules::new`].
    pub fn new(config: &StaticConfig) -> std::io::Result<StaticFiles> {
        Ok(StaticFiles {
            rules: RwLock::new(Arc::new(Rules::new(config)?)),
        })
    }

    /// The rules for the directory `dir` names now. A deploy that points a `current` link at
    /// a new release is followed at the next request, as nginx's `root` is; it costs a `stat`
    /// of `dir` per request (cached metadata). A `dir` gone or unreadable keeps the last one.
    fn rules(&self) -> Arc<Rules> {
        let rules = self.rules.read().unwrap_or_else(|p| p.into_inner()).clone();
        match std::fs::metadata(&rules.config.dir) {
            Ok(meta) if (meta.dev(), meta.ino()) != rules.root_id => {}
            _ => return rules,
        }
        match Rules::new(&rules.config) {
            Ok(moved) => {
                tracing::info!(
                    "static: {} now names {}",
                    rules.config.dir.display(),
                    moved.root.display()
                );
                let moved = Arc::new(moved);
                *self.rules.write().unwrap_or_else(|p| p.into_inner()) = moved.clone();
                moved
            }
            Err(e) => {
                tracing::warn!("static: {}: {e}", rules.config.dir.display());
                rules
            }
        }
    }

    pub async fn serve(&self, method: &Method, uri: &Uri, request_headers: &HeaderMap) -> Outcome {
        if method != Method::GET && method != Method::HEAD {
            return Outcome::Pass;
        }
        let (decoded, relative, extension) = match path::target(uri.path()) {
            path::Target::File {
                decoded,
                relative,
                extension,
            } => (decoded, relative, extension),
            path::Target::NoExtension => return Outcome::Pass,
            path::Target::Traversal => return Outcome::Refused("the path climbs out with '..'"),
        };
        let rules = self.rules();
        if !rules.servable(&extension) || !rules.under_a_prefix(&decoded) {
            return Outcome::Pass;
        }
        // On the I/O thread, like nginx without aio: a look-up is two system calls on cached
        // metadata and a small file is one read from the page cache; a trip to the blocking
        // pool would cost more than all of it. Larger bodies stream from the blocking pool.
        let mut file = match rules.open(&relative, &extension) {
            Ok(file) => file,
            Err(NotServed::Outside) => {
                return Outcome::Refused("the file links outside the static directory")
            }
            Err(NotServed::Pass) => return Outcome::Pass,
        };
        // A Range counts the identity's bytes (as rr's own compression never answers one).
        let encoded = match request_headers.contains_key(RANGE) {
            false => rules.sibling(&relative, &file, request_headers),
            true => None,
        };
        let encoding = encoded.as_ref().map(|(encoding, _)| *encoding);
        let mut headers = rules.config.response.clone();
        if let Some((encoding, sibling)) = encoded {
            // The representation is the original's, in another coding.
            let original_type = stream::content_type_of(file.path());
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(original_type));
            headers.insert(
                CONTENT_ENCODING,
                HeaderValue::from_static(encoding.as_str()),
            );
            file = sibling;
        }
        if method == Method::GET {
            if let Err(e) = file.preload(PRELOAD) {
                tracing::debug!("static: {}: {e}", relative.display());
                return Outcome::Pass;
            }
        }
        if let Some((_, value)) = rules
            .config
            .cache_control
            .iter()
            .find(|(ext, _)| *ext == extension)
        {
            headers.insert(CACHE_CONTROL, value.clone());
        }
        if let Some(strong) = &rules.strong {
            // Hashing reads the whole file, on the blocking pool, once per version.
            match strong.tag(file).await {
                Ok((tag, tagged)) => {
                    headers.insert(ETAG, tag);
                    file = tagged;
                }
                Err(e) => {
                    tracing::warn!("static: hashing {}: {e}", relative.display());
                    return Outcome::Pass;
                }
            }
        }
        let validators = Validators {
            etag: rules.config.calculate_etag && rules.config.weak,
            conditional: true,
        };
        let mut response = stream::respond(
            file,
            StatusCode::OK,
            headers,
            method,
            request_headers,
            validators,
        );
        if encoding.is_some() {
            let headers = response.headers_mut();
            // Ranges are answered from the identity file, so none are offered on this one.
            headers.remove(ACCEPT_RANGES);
            crate::compress::add_vary(headers);
        }
        Outcome::Served(response)
    }
}

impl Rules {
    /// Resolves the directory now, so a directory removed since the config was read fails the
    /// start instead of every request.
    fn new(config: &StaticConfig) -> std::io::Result<Rules> {
        let root = std::fs::canonicalize(&config.dir)?;
        let root_dir = std::fs::File::open(&root)?;
        let meta = root_dir.metadata()?;
        let strong = (config.calculate_etag && !config.weak).then(etag::StrongTags::default);
        Ok(Rules {
            root,
            root_dir,
            root_id: (meta.dev(), meta.ino()),
            config: config.clone(),
            strong,
        })
    }

    /// RoadRunner's rule: never a forbidden extension; with an allow list, only those.
    fn servable(&self, extension: &str) -> bool {
        let c = &self.config;
        !c.forbid.iter().any(|e| e == extension)
            && (c.allow.is_empty() || c.allow.iter().any(|e| e == extension))
    }

    fn under_a_prefix(&self, decoded: &[u8]) -> bool {
        let prefixes = &self.config.prefixes;
        prefixes.is_empty() || prefixes.iter().any(|p| decoded.starts_with(p.as_bytes()))
    }

    /// Opens the file without leaving the directory; `Err` says why it is not served.
    fn open(&self, relative: &std::path::Path, extension: &str) -> Result<OpenFile, NotServed> {
        let opened = match beneath::open(&self.root_dir, relative) {
            beneath::Opened::File(file) => OpenFile::from_file(file, self.root.join(relative)),
            beneath::Opened::SlowWay | beneath::Opened::Unsupported => {
                self.open_resolved(self.resolve_links(relative, extension)?)?
            }
            // RoadRunner hands those to the worker.
            beneath::Opened::Missing => return Err(NotServed::Pass),
            beneath::Opened::Failed(e) => {
                tracing::debug!("static: {}: {e}", relative.display());
                return Err(NotServed::Pass);
            }
        };
        // A directory, a fifo or a device is PHP's too.
        opened.map_err(|e| {
            tracing::debug!("static: {e}");
            NotServed::Pass
        })
    }

    /// The precompressed sibling (`app.css.br` beside `app.css`) in the encoding the client
    /// weighs highest among those that exist; one older than the file is stale and skipped.
    fn sibling(
        &self,
        relative: &Path,
        original: &OpenFile,
        request_headers: &HeaderMap,
    ) -> Option<(Encoding, OpenFile)> {
        // At most three encodings: tried on the stack, the client's favourite first.
        let mut offered = [Encoding::Gzip; 3];
        let mut left = self.config.precompressed.len().min(offered.len());
        offered[..left].copy_from_slice(&self.config.precompressed[..left]);
        while left > 0 {
            let accept = request_headers.get_all(ACCEPT_ENCODING);
            let encoding = compress::negotiate(accept, &offered[..left])?;
            let at = offered[..left].iter().position(|e| *e == encoding)?;
            offered.copy_within(at + 1..left, at);
            left -= 1;
            let mut name = relative.as_os_str().to_owned();
            name.push(encoding.suffix());
            let name = PathBuf::from(name);
            let opened = match beneath::open(&self.root_dir, &name) {
                beneath::Opened::File(file) => OpenFile::from_file(file, self.root.join(&name)),
                // The original's rule: `app.css.gz -> config.php` must not send PHP source.
                beneath::Opened::SlowWay | beneath::Opened::Unsupported => {
                    match self
                        .resolve_links(&name, encoding.suffix())
                        .and_then(|real| self.open_resolved(real))
                    {
                        Ok(opened) => opened,
                        Err(_) => continue,
                    }
                }
                beneath::Opened::Missing | beneath::Opened::Failed(_) => continue,
            };
            let Ok(sibling) = opened else { continue };
            if sibling.modified() < original.modified() {
                tracing::debug!("static: {} is older than its original", name.display());
                continue;
            }
            return Some((encoding, sibling));
        }
        None
    }

    /// Opens what [`Rules::resolve_links`] checked, through the directory again and refusing
    /// any link on the way: a path component swapped for a link since the check (to lead out
    /// of the directory) fails the open instead of being followed.
    fn open_resolved(&self, real: PathBuf) -> Result<Result<OpenFile, StreamError>, NotServed> {
        let inside = real
            .strip_prefix(&self.root)
            .map_err(|_| NotServed::Outside)?;
        match beneath::open(&self.root_dir, inside) {
            beneath::Opened::File(file) => Ok(OpenFile::from_file(file, real)),
            // Without openat2 the check and the open cannot be one step.
            beneath::Opened::Unsupported => Ok(OpenFile::open(&real)),
            beneath::Opened::SlowWay => {
                tracing::warn!(
                    "static: {} became a link while it was opened",
                    real.display()
                );
                Err(NotServed::Pass)
            }
            beneath::Opened::Missing | beneath::Opened::Failed(_) => Err(NotServed::Pass),
        }
    }

    /// The slow way, for paths with a link in them: where the link leads must be inside the
    /// directory (as `stream::check_allowed` checks, minus what is known here: the root is
    /// canonical and the path has no `..`), and its own extension must be `extension` or
    /// servable, so `style.css -> config.php` (or a sibling `style.css.gz -> config.php`)
    /// never sends PHP source.
    fn resolve_links(
        &self,
        relative: &std::path::Path,
        extension: &str,
    ) -> Result<PathBuf, NotServed> {
        let real = std::fs::canonicalize(self.root.join(relative)).map_err(|_| NotServed::Pass)?;
        if !real.starts_with(&self.root) {
            return Err(NotServed::Outside);
        }
        let real_extension = real
            .file_name()
            .and_then(|name| path::extension(name.as_bytes()));
        if real_extension.as_deref() != Some(extension)
            && !real_extension.is_some_and(|ext| self.servable(&ext))
        {
            return Err(NotServed::Pass);
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests;
