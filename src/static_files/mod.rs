//! `http.static`: files answered from disk by the server itself, before PHP, with RoadRunner's
//! static middleware semantics: only GET and HEAD, only names with an extension that is
//! allowed and not forbidden, only regular files inside the directory. Everything else that
//! is not a traversal attempt goes on to PHP as usual.
//!
//! # Layout
//! - `path`   URL path → relative file path and extension (decoding, normalization, `..`).
//! - `etag`   strong ETags: a content hash, kept while the file is unchanged.
//!
//! This file holds the rules and the one blocking look-up; `stream::respond` builds the answer
//! (Range, HEAD, 304, Content-Type).
mod etag;
mod path;

use crate::body::Body;
use crate::config::StaticConfig;
use crate::stream::{self, OpenFile, StreamError, Validators};
use http::header::{CACHE_CONTROL, ETAG};
use http::{HeaderMap, Method, Response, StatusCode, Uri};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

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
    rules: Arc<Rules>,
}

/// Everything the blocking look-up needs.
struct Rules {
    /// Canonical (symlinks resolved), so "inside" is a prefix test on canonical paths.
    root: PathBuf,
    config: StaticConfig,
    strong: Option<etag::StrongTags>,
}

/// What the look-up on disk found.
enum Found {
    File(Box<(OpenFile, HeaderMap)>),
    Pass,
    Outside,
}

impl StaticFiles {
    /// Resolves the directory now, so a directory removed since the config was read fails the
    /// start instead of every request.
    pub fn new(config: &StaticConfig) -> std::io::Result<StaticFiles> {
        let root = std::fs::canonicalize(&config.dir)?;
        let strong = (config.calculate_etag && !config.weak).then(etag::StrongTags::default);
        Ok(StaticFiles {
            rules: Arc::new(Rules {
                root,
                config: config.clone(),
                strong,
            }),
        })
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
        let rules = &self.rules;
        if !rules.servable(&extension) || !rules.under_a_prefix(&decoded) {
            return Outcome::Pass;
        }
        let found = tokio::task::spawn_blocking({
            let rules = self.rules.clone();
            move || rules.find(relative, &extension)
        })
        .await;
        match found {
            Ok(Found::File(found)) => {
                let (file, headers) = *found;
                let validators = Validators {
                    etag: rules.config.calculate_etag && rules.config.weak,
                    conditional: true,
                };
                Outcome::Served(stream::respond(
                    file,
                    StatusCode::OK,
                    headers,
                    method,
                    request_headers,
                    validators,
                ))
            }
            Ok(Found::Outside) => Outcome::Refused("the file links outside the static directory"),
            Ok(Found::Pass) | Err(_) => Outcome::Pass,
        }
    }
}

impl Rules {
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

    /// The blocking part: resolve, check, open, and the headers of the answer.
    fn find(&self, relative: PathBuf, extension: &str) -> Found {
        let wanted = self.root.join(relative);
        let real = match stream::check_allowed(&wanted, std::slice::from_ref(&self.root)) {
            Ok(real) => real,
            Err(StreamError::Forbidden { .. }) => return Found::Outside,
            // Missing, a directory, unreadable: RoadRunner hands those to the worker.
            Err(e) => {
                tracing::debug!("static: {e}");
                return Found::Pass;
            }
        };
        // A link inside the directory is followed, but what it names obeys the same rules
        // (`style.css` -> `config.php` must not send PHP source).
        let real_extension = real
            .file_name()
            .and_then(|name| path::extension(name.as_bytes()));
        if real_extension.as_deref() != Some(extension)
            && !real_extension.is_some_and(|ext| self.servable(&ext))
        {
            return Found::Pass;
        }
        let file = match OpenFile::open(&real) {
            Ok(file) => file,
            Err(e) => {
                tracing::debug!("static: {e}");
                return Found::Pass;
            }
        };
        let mut headers = self.config.response.clone();
        if let Some((_, value)) = self
            .config
            .cache_control
            .iter()
            .find(|(ext, _)| ext == extension)
        {
            headers.insert(CACHE_CONTROL, value.clone());
        }
        if let Some(strong) = &self.strong {
            match strong.tag(&real, &file) {
                Ok(tag) => {
                    headers.insert(ETAG, tag);
                }
                Err(e) => {
                    tracing::warn!("static: hashing {}: {e}", real.display());
                    return Found::Pass;
                }
            }
        }
        Found::File(Box::new((file, headers)))
    }
}

#[cfg(test)]
mod tests;
