//! File streaming to clients: PHP's sendFile, X-Sendfile answers and Velox artifacts.
//!
//! # Layout
//! - `error`          `StreamError`: why a file could not be served.
//! - `guard`          `check_allowed` / `open_allowed`: files someone else named, checked.
//! - `beneath`        opening a path under a directory in one kernel-checked step (`openat2`).
//! - `range`          `Range` / `If-Range` → which bytes to send.
//! - `conditional`    `If-None-Match` / `If-Modified-Since` → 304.
//! - `content_type`   `Content-Type` from the extension.
//! - `file_body`      the body: bounded buffers, reads on the blocking pool, the byte counter.
//! - `sendfile`       `X-Sendfile` / `X-Accel-Redirect` from PHP: the header → a checked path.
//!
//! This file assembles the response: open, stat, headers, status, body.
pub(crate) mod beneath;
mod conditional;
mod content_type;
mod error;
mod file_body;
mod guard;
mod range;
pub mod sendfile;
#[cfg(test)]
mod tests;

pub(crate) use content_type::guess as content_type_of;
pub use error::StreamError;
pub use file_body::bytes_streamed;
pub use guard::{check_allowed, open_allowed};

use crate::body::{self, Body};
use bytes::Bytes;
use file_body::FileBody;
use http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED,
    TRANSFER_ENCODING,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use range::Selection;
use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A PHP answer that says "send this file".
pub struct FileReply {
    pub path: PathBuf,
    pub status: StatusCode,
    /// Set by PHP and forwarded, except the framing headers computed here.
    pub headers: HeaderMap,
}

/// Which validators a file answer adds and honours.
#[derive(Debug, Clone, Copy)]
pub struct Validators {
    /// Add a weak `ETag` (size and modification time) when the headers carry none.
    pub etag: bool,
    /// Answer a GET or HEAD whose `If-None-Match` / `If-Modified-Since` holds with `304`, and one
    /// whose `If-Match` / `If-Unmodified-Since` fails with `412`.
    pub conditional: bool,
}

impl Validators {
    /// What `sendFile` does: a weak ETag, and no 304 (PHP chose to send the file).
    pub const SEND_FILE: Validators = Validators {
        etag: true,
        conditional: false,
    };
}

/// Build the response for a file: opens and stats the file, then streams it.
///
/// Ranges are honored only for a `200` answer to a GET; HEAD gets the same headers and an
/// empty body without the file being read.
pub async fn serve_file(
    reply: FileReply,
    method: &Method,
    request_headers: &HeaderMap,
) -> Result<Response<Body>, StreamError> {
    let FileReply {
        path,
        status,
        headers,
    } = reply;
    let opened = tokio::task::spawn_blocking({
        let path = path.clone();
        move || OpenFile::open(&path)
    })
    .await
    .map_err(|join| StreamError::Io {
        path: path.clone(),
        source: std::io::Error::other(join),
    })?;
    Ok(respond(
        opened?,
        status,
        headers,
        method,
        request_headers,
        Validators::SEND_FILE,
    ))
}

/// A regular file, open for reading, and what `fstat` said about it.
pub struct OpenFile {
    file: File,
    meta: Metadata,
    path: PathBuf,
    /// The whole content, when [`OpenFile::preload`] read it.
    content: Option<Bytes>,
}

impl OpenFile {
    /// Opens `path` if it is a regular file (symlinks followed). Blocks: call it from the
    /// blocking pool.
    pub fn open(path: &Path) -> Result<OpenFile, StreamError> {
        let (file, meta) = open_regular(path)?;
        Ok(OpenFile {
            file,
            meta,
            path: path.to_path_buf(),
            content: None,
        })
    }

    /// Takes a file someone else opened (`O_NONBLOCK`, see `open_regular`) if `fstat` says it
    /// is a regular file. Blocks, like `open`.
    pub fn from_file(file: File, path: PathBuf) -> Result<OpenFile, StreamError> {
        let meta = file
            .metadata()
            .map_err(|e| StreamError::from_io(&path, e))?;
        if !meta.is_file() {
            return Err(StreamError::NotAFile(path));
        }
        Ok(OpenFile {
            file,
            meta,
            path,
            content: None,
        })
    }

    /// Reads the whole file now if it has at most `limit` bytes, so the answer needs no
    /// further trip to the blocking pool (small assets). Blocks, like `open`.
    pub fn preload(&mut self, limit: u64) -> std::io::Result<()> {
        let len = self.meta.len();
        if len > limit {
            return Ok(());
        }
        let mut content = vec![0u8; len as usize];
        let mut filled = 0;
        while filled < content.len() {
            match self.file.read_at(&mut content[filled..], filled as u64)? {
                // Shrunk since the stat: what is left is the file.
                0 => break,
                n => filled += n,
            }
        }
        content.truncate(filled);
        // Sizes must agree with Content-Length; a file that changed under us is read later.
        if filled as u64 == len {
            self.content = Some(Bytes::from(content));
        }
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.len() == 0
    }

    /// The path it was opened by (after any link resolution the caller did).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn modified(&self) -> Option<SystemTime> {
        self.meta.modified().ok()
    }

    /// What `fstat` said when the file was opened.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// For reads before the answer (a content hash); positional reads leave the body intact.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// The response for an open file: `status` and `headers` as given, plus the framing headers,
/// `Content-Type` (from the name, when absent), `Last-Modified`, the validators asked for,
/// then Range/206/416 or 304.
pub fn respond(
    opened: OpenFile,
    status: StatusCode,
    mut headers: HeaderMap,
    method: &Method,
    request_headers: &HeaderMap,
    validators: Validators,
) -> Response<Body> {
    let OpenFile {
        file,
        meta,
        path,
        content,
    } = opened;
    let len = meta.len();

    for computed in [CONTENT_LENGTH, CONTENT_RANGE, TRANSFER_ENCODING] {
        headers.remove(computed);
    }
    if !headers.contains_key(CONTENT_TYPE) {
        let guessed = content_type::guess(&path);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(guessed));
    }
    if let Ok(modified) = meta.modified() {
        if !headers.contains_key(LAST_MODIFIED) {
            if let Some(date) = http_date(modified) {
                headers.insert(LAST_MODIFIED, date);
            }
        }
        if validators.etag && !headers.contains_key(ETAG) {
            headers.insert(ETAG, etag(len, modified));
        }
    }

    // PHP's 206 or 416 (it read the Range itself, then named the file) describes a part it does
    // not send: the part is picked here from the request, as nginx picks it for
    // X-Accel-Redirect, so a 206 never carries the whole file under a dropped Content-Range.
    let status = match status {
        StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE => StatusCode::OK,
        other => other,
    };
    // Another status is PHP's own answer (an error page from a file, say): sent as is.
    let rangeable = status == StatusCode::OK;
    let reading = method == Method::GET || method == Method::HEAD;
    let conditional = rangeable && reading && validators.conditional;
    if conditional && conditional::precondition_failed(request_headers, &headers) {
        // Nothing of this version is sent: a resume must not append it to an older one.
        headers.remove(ACCEPT_RANGES);
        return refusal(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "the file does not match If-Match or If-Unmodified-Since",
            method,
            headers,
        );
    }
    if conditional && conditional::not_modified(request_headers, &headers) {
        // The validators and caching headers stay; the representation's metadata goes.
        for metadata in [CONTENT_TYPE, ACCEPT_RANGES] {
            headers.remove(metadata);
        }
        return build(StatusCode::NOT_MODIFIED, headers, body::empty());
    }
    if rangeable {
        headers
            .entry(ACCEPT_RANGES)
            .or_insert(HeaderValue::from_static("bytes"));
    }
    let selection = if rangeable && method == Method::GET {
        range::select(request_headers, &headers, len)
    } else {
        Selection::Full
    };
    let (status, start, count) = match selection {
        Selection::Full => (status, 0, len),
        Selection::Part { start, end } => {
            headers.insert(CONTENT_RANGE, ascii(format!("bytes {start}-{end}/{len}")));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Selection::Unsatisfiable => {
            headers.insert(CONTENT_RANGE, ascii(format!("bytes */{len}")));
            return refusal(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                &format!("no byte of the requested range is in the file ({len} bytes)"),
                method,
                headers,
            );
        }
    };
    // PHP's 204 or 304 carries no content (RFC 9110 §15.3.5, §15.4.5): the file is not read,
    // and a 204 declares no length at all (§8.6); a 304 may declare the one it omits.
    let bodiless = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    if status != StatusCode::NO_CONTENT {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(count));
    }

    let body = match content {
        _ if method == Method::HEAD || count == 0 || bodiless => body::empty(),
        Some(content) => body::full(content.slice(start as usize..(start + count) as usize)),
        None => FileBody::new(file, path, start, count).boxed(),
    };
    build(status, headers, body)
}

/// What rr answers on its own when the file cannot be sent as asked: the status with rr's JSON
/// error body; the file's validators stay in the headers, its content type goes.
fn refusal(
    status: StatusCode,
    code: &str,
    error: &str,
    method: &Method,
    mut headers: HeaderMap,
) -> Response<Body> {
    let json = body::error_json(code, error);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(json.len()));
    let body = match *method == Method::HEAD {
        true => body::empty(),
        false => body::full(json),
    };
    build(status, headers, body)
}

fn build(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Opens `path` for reading if it is a regular file (symlinks followed).
fn open_regular(path: &Path) -> Result<(File, Metadata), StreamError> {
    let not_a_file = || StreamError::NotAFile(path.to_path_buf());
    // Stat before opening: opening a fifo blocks until a writer comes, opening a device can
    // have side effects.
    let meta = std::fs::metadata(path).map_err(|e| StreamError::from_io(path, e))?;
    if !meta.is_file() {
        return Err(not_a_file());
    }
    // O_NONBLOCK so a path swapped for a fifo since the stat cannot hang us; it does nothing
    // to reads of a regular file. The fstat below is the check that counts.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| StreamError::from_io(path, e))?;
    let meta = file.metadata().map_err(|e| StreamError::from_io(path, e))?;
    if !meta.is_file() {
        return Err(not_a_file());
    }
    Ok((file, meta))
}

/// `modified` as an HTTP date, when it is one the date writer can write: it panics before 1970
/// and from the year 10000 on, which an archive, a backup or a WebDAV client may give a file.
/// Such a file gets no `Last-Modified` (nginx sends 1970, a date the file never had).
fn http_date(modified: SystemTime) -> Option<HeaderValue> {
    /// 10000-01-01T00:00:00Z.
    const YEAR_10000: u64 = 253_402_300_800;
    let since = modified.duration_since(UNIX_EPOCH).ok()?;
    (since.as_secs() < YEAR_10000).then(|| ascii(httpdate::fmt_http_date(modified)))
}

/// Weak: size and mtime identify a version well, but not byte-for-byte (RFC 9110 §8.8.1).
/// A time before 1970 is written with a minus, so two such versions keep two tags.
fn etag(len: u64, modified: SystemTime) -> HeaderValue {
    let time = match modified.duration_since(UNIX_EPOCH) {
        Ok(after) => format!("{:x}", after.as_nanos()),
        Err(before) => format!("-{:x}", before.duration().as_nanos()),
    };
    ascii(format!("W/\"{len:x}-{time}\""))
}

/// For values built here from digits, hex and ASCII punctuation only.
fn ascii(value: String) -> HeaderValue {
    HeaderValue::try_from(value).expect("header value built from ASCII")
}
