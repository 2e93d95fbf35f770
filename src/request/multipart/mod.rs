//! multipart/form-data bodies, parsed like php-src `rfc1867_post_handler`: fields into a form
//! tree, files streamed to temporary files that are deleted when their `Upload` is dropped.
use super::fields::{FieldSpool, SpooledFields};
use super::form::{is_c_space, FormLimits, Tree};
use super::spool::TempSink;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use multer::{Constraints, Field, Multipart, SizeLimit};
use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use tempfile::TempPath;

mod bounded;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One `$_FILES` entry.
#[derive(Debug)]
pub struct Upload {
    /// The client's file name without directories, bytes as sent (PHP keeps a Latin-1 name).
    pub name: Vec<u8>,
    /// The client's file name as sent (PHP 8.1+ `full_path`, for directory uploads).
    pub full_path: Vec<u8>,
    /// The part's Content-Type up to any ';', bytes as sent; empty if absent or on error (as PHP).
    pub mime: Vec<u8>,
    /// Bytes written; 0 on error.
    pub size: u64,
    /// One of the `UPLOAD_ERR_*` constants below.
    pub error: i32,
    /// The file on disk, removed on drop; None when `error` is not `UPLOAD_ERR_OK`.
    pub tmp_name: Option<TempPath>,
}

impl Upload {
    pub const UPLOAD_ERR_OK: i32 = 0;
    pub const UPLOAD_ERR_INI_SIZE: i32 = 1;
    pub const UPLOAD_ERR_FORM_SIZE: i32 = 2;
    pub const UPLOAD_ERR_NO_FILE: i32 = 4;
    pub const UPLOAD_ERR_NO_TMP_DIR: i32 = 6;
    pub const UPLOAD_ERR_CANT_WRITE: i32 = 7;
    pub const UPLOAD_ERR_EXTENSION: i32 = 8;

    /// A path to the same file that does not delete it on drop: the pool's workers name the
    /// master's upload files, which the master deletes.
    pub fn unowned(path: impl Into<std::path::PathBuf>) -> Option<TempPath> {
        let mut path = TempPath::try_from_path(path).ok()?;
        path.disable_cleanup(true);
        Some(path)
    }

    fn failed(full_path: Vec<u8>, error: i32) -> Upload {
        Upload {
            name: basename(&full_path).to_vec(),
            full_path,
            mime: Vec::new(),
            size: 0,
            error,
            tmp_name: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MultipartLimits {
    /// The whole body, in bytes.
    pub max_body: u64,
    /// Per file (PHP `upload_max_filesize`); 0 means no limit, as in PHP.
    pub max_file_size: u64,
    pub upload_dir: PathBuf,
    /// File name endings refused with `UPLOAD_ERR_EXTENSION`, dot included (".php"),
    /// compared case-insensitively.
    pub forbid: Vec<String>,
    /// Files beyond this are skipped (PHP `max_file_uploads`).
    pub max_file_uploads: usize,
    pub form: FormLimits,
    /// Bytes of text fields (names and values) held in memory; the fields past them go to a
    /// temp file in `upload_dir` (`http.body_buffer_size`).
    pub fields_in_memory: usize,
}

/// A multipart body, parsed.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The text fields that fit in `fields_in_memory`, the first ones.
    pub fields: Tree<Bytes>,
    /// The text fields after them, waiting on disk to be added to `fields` (`load_into`).
    pub spooled_fields: Option<SpooledFields>,
    pub uploads: Tree<Upload>,
}

#[derive(Debug)]
pub enum MultipartError {
    /// The body is larger than `max_body`.
    TooLarge,
    /// Not valid multipart/form-data.
    Malformed(String),
    /// Reading the request body failed.
    Io(std::io::Error),
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipartError::TooLarge => f.write_str("multipart body too large"),
            MultipartError::Malformed(why) => write!(f, "malformed multipart body: {why}"),
            MultipartError::Io(err) => write!(f, "reading multipart body: {err}"),
        }
    }
}

impl std::error::Error for MultipartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MultipartError::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<multer::Error> for MultipartError {
    fn from(err: multer::Error) -> Self {
        match err {
            multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
                MultipartError::TooLarge
            }
            multer::Error::StreamReadFailed(err) => match err.downcast::<bounded::Exceeded>() {
                Ok(exceeded) => MultipartError::Malformed(exceeded.to_string()),
                Err(err) => MultipartError::Io(std::io::Error::other(err)),
            },
            multer::Error::ReadHeaderFailed(httparse::Error::TooManyHeaders) => {
                MultipartError::Malformed(format!(
                    "a multipart part has more than {MAX_PART_HEADERS} header lines"
                ))
            }
            multer::Error::ReadHeaderFailed(err) => {
                MultipartError::Malformed(format!("a multipart part's head is malformed: {err}"))
            }
            err => MultipartError::Malformed(err.to_string()),
        }
    }
}

/// The most header lines multer reads in a part's head.
const MAX_PART_HEADERS: usize = 32;

/// The boundary of a multipart/form-data content type; None for any other type.
pub fn boundary(content_type: &str) -> Option<String> {
    multer::parse_boundary(content_type).ok()
}

/// Parses a multipart/form-data body into `$_POST` and `$_FILES`. Files go to disk in large
/// writes as they arrive, and so do the text fields past `fields_in_memory`: memory stays
/// bounded whatever the body holds. On error every temp file written so far is deleted.
pub async fn parse<S, E>(
    body: S,
    boundary: String,
    limits: &MultipartLimits,
) -> Result<Parsed, MultipartError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Into<BoxError>,
{
    let constraints = Constraints::new().size_limit(SizeLimit::new().whole_stream(limits.max_body));
    let body = Paced::new(bounded::Bounded::new(body, &boundary));
    let mut multipart = Multipart::with_constraints(body, boundary, constraints);
    let mut fields = TextFields {
        memory: Tree::new(),
        held: 0,
        spool: None,
    };
    let mut uploads = Tree::new();
    let depth = limits.form.max_depth;
    // PHP's max_multipart_body_parts default, max_input_vars + max_file_uploads.
    let mut parts_left = limits.form.max_vars + limits.max_file_uploads;
    let mut field_count = 0;
    let mut uploads_left = limits.max_file_uploads;
    let mut anonymous = 0;
    // Set by a form field named MAX_FILE_SIZE, PHP's UPLOAD_ERR_FORM_SIZE mechanism.
    let mut form_max_file_size = 0;

    while let Some(mut field) = multipart.next_field().await? {
        let Some(disposition) = field.headers().get(CONTENT_DISPOSITION) else {
            // PHP ignores a part without Content-Disposition.
            drain(&mut field).await?;
            continue;
        };
        if parts_left == 0 {
            break;
        }
        parts_left -= 1;
        let (name, file_name) = disposition_names(disposition.as_bytes());
        match (name, file_name) {
            (Some(name), None) => {
                field_count += 1;
                let keep = field_count <= limits.form.max_vars;
                let head = fields.receive(&name, &mut field, keep, limits).await?;
                if name.eq_ignore_ascii_case(b"MAX_FILE_SIZE") {
                    form_max_file_size = strtoll(&head);
                }
            }
            // PHP stops at a part that is neither a field nor a file ("Mime headers garbled").
            (None, None) => break,
            (name, Some(file_name)) => {
                let name = name.unwrap_or_else(|| {
                    anonymous += 1;
                    (anonymous - 1).to_string().into_bytes()
                });
                // Unlike PHP, a badly bracketed name skips only its own part, not every later one.
                if uploads_left == 0 || !brackets_balanced(&name) {
                    drain(&mut field).await?;
                    continue;
                }
                let file = FilePart {
                    full_path: file_name,
                    form_max_size: form_max_file_size,
                };
                let upload = file.receive(&mut field, limits, &mut uploads_left).await?;
                uploads.insert(&name, upload, depth);
            }
        }
    }
    let spooled_fields = match fields.spool {
        Some(spool) => Some(spool.finish().await.map_err(MultipartError::Io)?),
        None => None,
    };
    Ok(Parsed {
        fields: fields.memory,
        spooled_fields,
        uploads,
    })
}

/// A body's text fields as they arrive: in memory up to `fields_in_memory` bytes, then, from the
/// field that crosses it on, in a temp file, so the order they came in is kept.
struct TextFields {
    memory: Tree<Bytes>,
    /// Bytes of names and values in `memory`.
    held: usize,
    spool: Option<FieldSpool>,
}

impl TextFields {
    /// The leading bytes of a value, enough for `strtoll` (a `MAX_FILE_SIZE` field).
    const HEAD: usize = 256;

    /// Reads one field and keeps it unless `keep` is false (past `max_input_vars`: read and
    /// dropped). Returns the first `HEAD` bytes of its value.
    async fn receive(
        &mut self,
        name: &[u8],
        field: &mut Field<'_>,
        keep: bool,
        limits: &MultipartLimits,
    ) -> Result<Vec<u8>, MultipartError> {
        let mut head = Vec::new();
        let mut value = BytesMut::new();
        let mut spooling = false;
        if keep {
            if let Some(spool) = self.spool.as_mut() {
                spool.start(name).await.map_err(MultipartError::Io)?;
                spooling = true;
            }
        }
        while let Some(chunk) = field.chunk().await? {
            if head.len() < Self::HEAD {
                let take = chunk.len().min(Self::HEAD - head.len());
                head.extend_from_slice(&chunk[..take]);
            }
            if !keep {
                continue;
            }
            if !spooling {
                if self.held + name.len() + value.len() + chunk.len() <= limits.fields_in_memory {
                    value.extend_from_slice(&chunk);
                    continue;
                }
                let spool = match self.spool.as_mut() {
                    Some(spool) => spool,
                    None => self.spool.insert(
                        FieldSpool::create(&limits.upload_dir)
                            .await
                            .map_err(MultipartError::Io)?,
                    ),
                };
                spool.start(name).await.map_err(MultipartError::Io)?;
                spool
                    .chunk(std::mem::take(&mut value).freeze())
                    .await
                    .map_err(MultipartError::Io)?;
                spooling = true;
            }
            if let Some(spool) = self.spool.as_mut() {
                spool.chunk(chunk).await.map_err(MultipartError::Io)?;
            }
        }
        if spooling {
            if let Some(spool) = self.spool.as_mut() {
                spool.end().await.map_err(MultipartError::Io)?;
            }
        } else if keep {
            self.held += name.len() + value.len();
            self.memory
                .insert(name, value.freeze(), limits.form.max_depth);
        }
        Ok(head)
    }
}

struct FilePart {
    full_path: Vec<u8>,
    form_max_size: i64,
}

impl FilePart {
    async fn receive(
        self,
        field: &mut Field<'_>,
        limits: &MultipartLimits,
        uploads_left: &mut usize,
    ) -> Result<Upload, MultipartError> {
        if self.full_path.is_empty() {
            drain(field).await?;
            return Ok(Upload::failed(self.full_path, Upload::UPLOAD_ERR_NO_FILE));
        }
        *uploads_left -= 1;
        let name = basename(&self.full_path);
        let forbidden = limits.forbid.iter().any(|ext| {
            name.len() >= ext.len()
                && name[name.len() - ext.len()..].eq_ignore_ascii_case(ext.as_bytes())
        });
        if forbidden {
            drain(field).await?;
            return Ok(Upload::failed(self.full_path, Upload::UPLOAD_ERR_EXTENSION));
        }
        let mime = field
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| {
                let v = v.as_bytes();
                let end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
                v[..end].to_vec()
            })
            .unwrap_or_default();

        let mut sink = match TempSink::create(&limits.upload_dir, "rr-upload-").await {
            Ok(sink) => sink,
            Err(err) => {
                tracing::warn!(dir = %limits.upload_dir.display(), %err, "cannot create upload file");
                drain(field).await?;
                return Ok(Upload::failed(
                    self.full_path,
                    Upload::UPLOAD_ERR_NO_TMP_DIR,
                ));
            }
        };
        let mut size = 0u64;
        let mut error = Upload::UPLOAD_ERR_OK;
        while let Some(chunk) = field.chunk().await? {
            if error != Upload::UPLOAD_ERR_OK {
                continue; // PHP reads the rest of a failed file and discards it.
            }
            let total = size + chunk.len() as u64;
            if limits.max_file_size > 0 && total > limits.max_file_size {
                error = Upload::UPLOAD_ERR_INI_SIZE;
            } else if self.form_max_size != 0
                && i64::try_from(total).unwrap_or(i64::MAX) > self.form_max_size
            {
                error = Upload::UPLOAD_ERR_FORM_SIZE;
            } else if let Err(err) = sink.write(chunk).await {
                tracing::warn!(%err, "cannot write upload file");
                error = Upload::UPLOAD_ERR_CANT_WRITE;
            } else {
                size = total;
            }
        }
        let path = match error {
            Upload::UPLOAD_ERR_OK => sink.finish().await.map_err(|err| {
                tracing::warn!(%err, "cannot write upload file");
                Upload::UPLOAD_ERR_CANT_WRITE
            }),
            error => Err(error),
        };
        match path {
            Ok(path) => Ok(Upload {
                name: name.to_vec(),
                full_path: self.full_path,
                mime,
                size,
                error,
                tmp_name: Some(path),
            }),
            Err(error) => Ok(Upload::failed(self.full_path, error)),
        }
    }
}

/// Hands multer at most about `BUDGET` bytes per poll. multer pulls from the body until it
/// sees `Pending`, so a body that is always ready (a fast client, a test) would otherwise be
/// buffered whole before a single byte reaches the disk.
struct Paced<S> {
    body: S,
    budget: usize,
}

impl<S> Paced<S> {
    const BUDGET: usize = 64 * 1024;

    fn new(body: S) -> Self {
        Paced {
            body,
            budget: Self::BUDGET,
        }
    }
}

impl<S, E> Stream for Paced<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.budget == 0 {
            self.budget = Self::BUDGET;
            // Ask to be polled again at once: this Pending only yields to multer.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match Pin::new(&mut self.body).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.budget = self.budget.saturating_sub(chunk.len());
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                self.budget = Self::BUDGET;
                Poll::Pending
            }
        }
    }
}

async fn drain(field: &mut Field<'_>) -> Result<(), MultipartError> {
    while field.chunk().await?.is_some() {}
    Ok(())
}

/// `name` and `filename` of a Content-Disposition value, read like PHP (`php_ap_getword`,
/// `php_ap_getword_conf`): parameter names case-insensitive, the last one wins, values
/// quoted with '"' or '\'' or bare; bytes as sent. multer's own reading differs and returns
/// nothing for non-UTF-8 names, which would turn a file into a field.
fn disposition_names(value: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let (mut name, mut file_name) = (None, None);
    let mut rest = trim_c_space(value);
    while !rest.is_empty() {
        let pair = getword(&mut rest, b';');
        rest = trim_c_space(rest);
        if !pair.contains(&b'=') {
            continue;
        }
        let mut pair = pair;
        let key = getword(&mut pair, b'=');
        if key.eq_ignore_ascii_case(b"name") {
            name = Some(getword_conf(pair));
        } else if key.eq_ignore_ascii_case(b"filename") {
            file_name = Some(getword_conf(pair));
        }
    }
    (name, file_name)
}

/// Splits off everything up to `stop` outside quotes; skips the run of `stop` after it.
fn getword<'a>(line: &mut &'a [u8], stop: u8) -> &'a [u8] {
    let s = *line;
    let mut pos = 0;
    while pos < s.len() && s[pos] != stop {
        let quote = s[pos];
        pos += 1;
        if quote == b'"' || quote == b'\'' {
            while pos < s.len() && s[pos] != quote {
                pos += if s[pos] == b'\\' && s.get(pos + 1) == Some(&quote) {
                    2
                } else {
                    1
                };
            }
            pos = (pos + 1).min(s.len());
        }
    }
    let word = &s[..pos];
    while pos < s.len() && s[pos] == stop {
        pos += 1;
    }
    *line = &s[pos..];
    word
}

/// A parameter value: quoted up to the closing quote, or bare up to whitespace; a backslash
/// escapes a backslash or the quote.
fn getword_conf(value: &[u8]) -> Vec<u8> {
    let value = trim_c_space(value);
    let (quote, body) = match value.first() {
        Some(&q @ (b'"' | b'\'')) => (Some(q), &value[1..]),
        _ => {
            let end = value
                .iter()
                .position(|&b| is_c_space(b))
                .unwrap_or(value.len());
            (None, &value[..end])
        }
    };
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() && Some(body[i]) != quote {
        let escaped = body.get(i + 1).filter(|&&n| n == b'\\' || Some(n) == quote);
        match (body[i], escaped) {
            (b'\\', Some(&n)) => {
                out.push(n);
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn trim_c_space(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_c_space(b)).unwrap_or(s.len());
    &s[start..]
}

/// PHP's `php_ap_basename`: the part after the last '/' or '\'.
fn basename(path: &[u8]) -> &[u8] {
    path.iter()
        .rposition(|&b| b == b'/' || b == b'\\')
        .map_or(path, |i| &path[i + 1..])
}

/// PHP refuses upload names with unbalanced brackets or text after a ']' ("never repair
/// potential malicious user input").
fn brackets_balanced(bytes: &[u8]) -> bool {
    let mut depth = 0i64;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'[' {
            depth += 1;
        } else if b == b']' {
            depth -= 1;
            if bytes.get(i + 1).is_some_and(|&n| n != b'[') {
                return false;
            }
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// C's `strtoll(s, NULL, 10)`, saturating, as PHP reads MAX_FILE_SIZE.
fn strtoll(s: &[u8]) -> i64 {
    let s = trim_c_space(s);
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for &d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        let d = i64::from(d - b'0');
        n = if negative {
            n.saturating_mul(10).saturating_sub(d)
        } else {
            n.saturating_mul(10).saturating_add(d)
        };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::super::form::{php_json, Key, Node};
    use super::*;
    use futures_util::stream::{self, StreamExt};
    use std::convert::Infallible;
    use std::io::Read;
    use std::path::Path;

    const BOUNDARY: &str = "----rrTestBoundary7MA4YWxkTrZu0gW";

    fn limits(dir: &Path) -> MultipartLimits {
        MultipartLimits {
            max_body: 1 << 30,
            max_file_size: 0,
            upload_dir: dir.to_owned(),
            forbid: vec![".php".into(), ".phar".into()],
            max_file_uploads: 20,
            form: FormLimits::default(),
            fields_in_memory: 1 << 20,
        }
    }

    /// One part; `disposition` None leaves out the Content-Disposition header.
    fn part(disposition: Option<&str>, content_type: Option<&str>, data: &[u8]) -> Vec<u8> {
        let mut out = format!("--{BOUNDARY}\r\n").into_bytes();
        if let Some(d) = disposition {
            out.extend_from_slice(format!("Content-Disposition: {d}\r\n").as_bytes());
        }
        if let Some(t) = content_type {
            out.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn field(name: &str, value: &str) -> Vec<u8> {
        part(
            Some(&format!("form-data; name=\"{name}\"")),
            None,
            value.as_bytes(),
        )
    }

    fn file(name: &str, file_name: &str, data: &[u8]) -> Vec<u8> {
        part(
            Some(&format!(
                "form-data; name=\"{name}\"; filename=\"{file_name}\""
            )),
            Some("application/octet-stream"),
            data,
        )
    }

    fn body(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = parts.concat();
        out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        out
    }

    fn chunked(
        data: &[u8],
        size: usize,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + Unpin + 'static {
        let chunks: Vec<_> = data
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        stream::iter(chunks)
    }

    async fn run(
        data: &[u8],
        limits: &MultipartLimits,
    ) -> Result<(Tree<Bytes>, Tree<Upload>), MultipartError> {
        let parsed = parse(chunked(data, 1000), BOUNDARY.to_owned(), limits).await?;
        Ok(whole(parsed, limits))
    }

    /// The fields (those spooled added, as when PHP takes the request) and the files.
    fn whole(mut parsed: Parsed, limits: &MultipartLimits) -> (Tree<Bytes>, Tree<Upload>) {
        if let Some(spooled) = parsed.spooled_fields.take() {
            spooled
                .load_into(&mut parsed.fields, limits.form.max_depth)
                .unwrap();
        }
        (parsed.fields, parsed.uploads)
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    fn upload<'a>(tree: &'a Tree<Upload>, path: &[Key]) -> &'a Upload {
        let (last, parents) = path.split_last().unwrap();
        let mut tree = tree;
        for key in parents {
            match tree.get(key) {
                Some(Node::Map(t)) => tree = t,
                other => panic!("{key:?}: {other:?}"),
            }
        }
        match tree.get(last) {
            Some(Node::Leaf(u)) => u,
            other => panic!("{last:?}: {other:?}"),
        }
    }

    fn name(s: &str) -> Key {
        Key::Name(s.into())
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    fn contents(upload: &Upload) -> Vec<u8> {
        std::fs::read(upload.tmp_name.as_ref().expect("a temp file")).unwrap()
    }

    #[tokio::test]
    async fn fields_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[
            field("a", "1"),
            field("b[x][]", "2"),
            field("b[x][]", "3"),
            part(
                Some(r#"form-data; name="f"; filename="C:\\dir\\x.txt""#),
                Some("text/plain; charset=utf-8"),
                b"hello",
            ),
            field("a.b", "4"),
        ]);
        let (fields, uploads) = run(&data, &limits(dir.path())).await.unwrap();
        assert_eq!(
            php_json(&fields),
            r#"{"a":"1","b":{"x":["2","3"]},"a_b":"4"}"#
        );
        let f = upload(&uploads, &[name("f")]);
        assert_eq!(
            (text(&f.name), text(&f.full_path), text(&f.mime)),
            ("x.txt", r"C:\dir\x.txt", "text/plain")
        );
        assert_eq!((f.size, f.error), (5, Upload::UPLOAD_ERR_OK));
        assert_eq!(contents(f), b"hello");
        let tmp = f.tmp_name.as_ref().unwrap();
        assert_eq!(tmp.parent(), Some(dir.path()));
        assert!(tmp
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("rr-upload-"));
    }

    #[tokio::test]
    async fn nested_upload_names() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[
            file("f[]", "a.txt", b"A"),
            file("f[]", "b.txt", b"B"),
            file("d[x][y]", "c/d/e.txt", b"C"),
            part(Some(r#"form-data; filename="anon.txt""#), None, b"N"),
        ]);
        let (_, uploads) = run(&data, &limits(dir.path())).await.unwrap();
        assert_eq!(
            contents(upload(&uploads, &[name("f"), Key::Index(0)])),
            b"A"
        );
        assert_eq!(
            contents(upload(&uploads, &[name("f"), Key::Index(1)])),
            b"B"
        );
        let e = upload(&uploads, &[name("d"), name("x"), name("y")]);
        assert_eq!((text(&e.name), text(&e.full_path)), ("e.txt", "c/d/e.txt"));
        assert_eq!(e.mime, b"application/octet-stream");
        // PHP names a file part without a name by its position among nameless files.
        assert_eq!(contents(upload(&uploads, &[Key::Index(0)])), b"N");
        assert_eq!(files_in(dir.path()), 4);
    }

    #[tokio::test]
    async fn empty_file_input_is_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[file("f", "", b"")]);
        let (_, uploads) = run(&data, &limits(dir.path())).await.unwrap();
        let f = upload(&uploads, &[name("f")]);
        assert_eq!((f.error, f.size), (Upload::UPLOAD_ERR_NO_FILE, 0));
        assert_eq!((text(&f.name), text(&f.mime)), ("", ""));
        assert!(f.tmp_name.is_none());
        assert_eq!(files_in(dir.path()), 0);
    }

    #[tokio::test]
    async fn zero_length_file_is_an_upload() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[file("f", "empty.txt", b"")]);
        let (_, uploads) = run(&data, &limits(dir.path())).await.unwrap();
        let f = upload(&uploads, &[name("f")]);
        assert_eq!((f.error, f.size), (Upload::UPLOAD_ERR_OK, 0));
        assert_eq!(contents(f), b"");
    }

    #[tokio::test]
    async fn forbidden_extension_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[
            file("evil", "shell.PhP", b"<?php system($_GET['c']);"),
            file("ok", "shell.php.txt", b"fine"),
        ]);
        let (_, uploads) = run(&data, &limits(dir.path())).await.unwrap();
        let evil = upload(&uploads, &[name("evil")]);
        assert_eq!(evil.error, Upload::UPLOAD_ERR_EXTENSION);
        assert_eq!((text(&evil.name), evil.size), ("shell.PhP", 0));
        assert!(evil.tmp_name.is_none());
        assert_eq!(contents(upload(&uploads, &[name("ok")])), b"fine");
        assert_eq!(files_in(dir.path()), 1);
    }

    #[tokio::test]
    async fn too_large_leaves_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[
            file("a", "a.bin", &[7; 5000]),
            file("b", "b.bin", &[8; 400_000]),
        ]);
        let limits = MultipartLimits {
            max_body: 300_000,
            ..limits(dir.path())
        };
        let err = run(&data, &limits).await.unwrap_err();
        assert!(matches!(err, MultipartError::TooLarge), "{err:?}");
        assert_eq!(files_in(dir.path()), 0);
    }

    #[tokio::test]
    async fn body_of_exactly_max_body_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[field("a", "1")]);
        let limits = MultipartLimits {
            max_body: data.len() as u64,
            ..limits(dir.path())
        };
        assert!(run(&data, &limits).await.is_ok());
    }

    #[tokio::test]
    async fn malformed_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let limits = limits(dir.path());
        let full = body(&[field("a", "1"), file("f", "f.bin", &[1; 300_000])]);
        let truncated = &full[..full.len() - 1000];
        let no_headers_end =
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"\r\n");
        let bad_cases: [&[u8]; 4] = [
            truncated,
            b"no boundary anywhere",
            b"",
            no_headers_end.as_bytes(),
        ];
        for data in bad_cases {
            let err = run(data, &limits).await.unwrap_err();
            assert!(matches!(err, MultipartError::Malformed(_)), "{err:?}");
            assert_eq!(files_in(dir.path()), 0);
        }
    }

    #[tokio::test]
    async fn body_read_error_is_io() {
        let dir = tempfile::tempdir().unwrap();
        let head = body(&[file("f", "f.bin", &[1; 10])]);
        let chunks = vec![
            Ok(Bytes::from(head[..60].to_vec())),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            )),
        ];
        let err = parse(
            stream::iter(chunks),
            BOUNDARY.to_owned(),
            &limits(dir.path()),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, MultipartError::Io(_)), "{err:?}");
        assert_eq!(files_in(dir.path()), 0);
    }

    fn every_byte() -> Vec<u8> {
        // All byte values, CRLFs, and near-misses of the delimiter.
        let mut data: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let near = format!("\r\n--{}", &BOUNDARY[..BOUNDARY.len() - 1]);
        data.extend_from_slice(near.as_bytes());
        data.extend_from_slice(b"\r\n\r\n--\r\r\n-");
        data.extend_from_slice(format!("--{BOUNDARY}").as_bytes()); // no CRLF before: content
        data.extend_from_slice(b"\r");
        data
    }

    #[tokio::test]
    async fn binary_content_is_kept_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let content = every_byte();
        let data = body(&[file("f", "bin", &content), {
            let mut p = field("v", "");
            let at = p.len() - 2;
            p.splice(at..at, content.iter().copied());
            p
        }]);
        let (fields, uploads) = run(&data, &limits(dir.path())).await.unwrap();
        assert_eq!(contents(upload(&uploads, &[name("f")])), content);
        let Some(Node::Leaf(v)) = fields.get(&name("v")) else {
            panic!("{fields:?}");
        };
        assert_eq!(v[..], content[..]);
    }

    #[tokio::test]
    async fn any_chunking_gives_the_same_result() {
        let dir = tempfile::tempdir().unwrap();
        let limits = MultipartLimits {
            fields_in_memory: 0,
            ..limits(dir.path())
        };
        let data = body(&[
            field("a", "x\r\ny"),
            file("f", "f.bin", b"\r\n-- data --\r\n"),
        ]);
        let mut splits: Vec<Vec<Bytes>> = (1..data.len())
            .map(|at| {
                vec![
                    Bytes::copy_from_slice(&data[..at]),
                    Bytes::copy_from_slice(&data[at..]),
                ]
            })
            .collect();
        for size in [1, 2, 3, 7, 64] {
            splits.push(data.chunks(size).map(Bytes::copy_from_slice).collect());
        }
        for chunks in splits {
            let pieces = chunks.len();
            let body = stream::iter(chunks.into_iter().map(Ok::<_, Infallible>));
            let parsed = parse(body, BOUNDARY.to_owned(), &limits)
                .await
                .unwrap_or_else(|e| panic!("{pieces} pieces: {e}"));
            assert!(parsed.spooled_fields.is_some(), "{pieces} pieces");
            let (fields, uploads) = whole(parsed, &limits);
            assert_eq!(php_json(&fields), r#"{"a":"x\r\ny"}"#);
            assert_eq!(
                contents(upload(&uploads, &[name("f")])),
                b"\r\n-- data --\r\n"
            );
        }
        assert_eq!(files_in(dir.path()), 0);
    }

    /// Chunk `i` of a generated file; never contains the boundary.
    fn generated(i: usize, size: usize) -> Bytes {
        (0..size)
            .map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8)
            .collect()
    }

    fn generated_upload(
        chunks: usize,
        size: usize,
        on_chunk: impl FnMut(usize) + Send + Unpin + 'static,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + Unpin + 'static {
        let head = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"big\"; filename=\"big.bin\"\r\n\r\n"
        );
        let tail = format!("\r\n--{BOUNDARY}--\r\n");
        let mut on_chunk = on_chunk;
        stream::iter([Bytes::from(head)])
            .chain(stream::iter(0..chunks).map(move |i| {
                on_chunk(i);
                generated(i, size)
            }))
            .chain(stream::iter([Bytes::from(tail)]))
            .map(Ok)
    }

    fn assert_generated(upload: &Upload, chunks: usize, size: usize) {
        assert_eq!(upload.size, (chunks * size) as u64);
        let mut file = std::fs::File::open(upload.tmp_name.as_ref().unwrap()).unwrap();
        let mut buf = vec![0; size];
        for i in 0..chunks {
            file.read_exact(&mut buf).unwrap();
            assert!(buf[..] == generated(i, size)[..], "chunk {i} differs");
        }
        assert_eq!(file.read(&mut buf).unwrap(), 0, "file is longer");
    }

    #[tokio::test]
    async fn twenty_megabytes_in_small_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (chunks, size) = (20 * 1024 * 1024 / 1500, 1500);
        let body = generated_upload(chunks, size, |_| {});
        let parsed = parse(body, BOUNDARY.to_owned(), &limits(dir.path()))
            .await
            .unwrap();
        assert_generated(upload(&parsed.uploads, &[name("big")]), chunks, size);
    }

    #[tokio::test]
    async fn dropping_an_upload_deletes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[file("f", "f.txt", b"data")]);
        let (_, uploads) = run(&data, &limits(dir.path())).await.unwrap();
        let path = upload(&uploads, &[name("f")])
            .tmp_name
            .as_ref()
            .unwrap()
            .to_path_buf();
        assert!(path.exists());
        drop(uploads);
        assert!(!path.exists());
        assert_eq!(files_in(dir.path()), 0);
    }

    #[tokio::test]
    async fn a_repeated_name_replaces_and_deletes_the_first_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[file("f", "1.txt", b"1"), file("f", "2.txt", b"2")]);
        let (_, uploads) = run(&data, &limits(dir.path())).await.unwrap();
        assert_eq!(contents(upload(&uploads, &[name("f")])), b"2");
        assert_eq!(files_in(dir.path()), 1);
    }

    #[tokio::test]
    async fn size_limits_give_php_errors() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[
            file("big", "big.bin", &[1; 5]),
            file("fits", "fits.bin", &[1; 4]),
            field("MAX_FILE_SIZE", "3"),
            file("form", "form.bin", &[1; 4]),
            file("small", "small.bin", &[1; 3]),
        ]);
        let limits = MultipartLimits {
            max_file_size: 4,
            ..limits(dir.path())
        };
        let (fields, uploads) = run(&data, &limits).await.unwrap();
        assert_eq!(php_json(&fields), r#"{"MAX_FILE_SIZE":"3"}"#);
        let errors: Vec<_> = ["big", "fits", "form", "small"]
            .iter()
            .map(|n| {
                let u = upload(&uploads, &[name(n)]);
                (u.error, u.size, u.tmp_name.is_some())
            })
            .collect();
        assert_eq!(
            errors,
            [
                (Upload::UPLOAD_ERR_INI_SIZE, 0, false),
                (Upload::UPLOAD_ERR_OK, 4, true),
                (Upload::UPLOAD_ERR_FORM_SIZE, 0, false),
                (Upload::UPLOAD_ERR_OK, 3, true),
            ]
        );
        assert_eq!(files_in(dir.path()), 2);
    }

    /// PHP 8.2 with max_file_uploads=2, max_input_vars=3: the same parts kept and skipped.
    #[tokio::test]
    async fn count_limits_match_php() {
        let dir = tempfile::tempdir().unwrap();
        let limits = MultipartLimits {
            max_file_uploads: 2,
            form: FormLimits {
                max_vars: 3,
                max_depth: 64,
            },
            ..limits(dir.path())
        };
        let data = body(&[
            file("e1", "", b""),
            file("a", "a.txt", b"1"),
            file("e2", "", b""),
            file("b", "b.txt", b"2"),
            file("c", "c.txt", b"3"),
            file("e3", "", b""),
        ]);
        let (_, uploads) = run(&data, &limits).await.unwrap();
        let kept: Vec<_> = uploads.entries().map(|(k, _)| k.clone()).collect();
        assert_eq!(kept, [name("e1"), name("a"), name("e2"), name("b")]);
        drop(uploads);

        let data = body(&[
            field("a", "1"),
            field("b", "2"),
            field("c", "3"),
            field("d", "4"),
            field("e", "5"),
            file("x", "x.txt", b"x"),
        ]);
        let (fields, uploads) = run(&data, &limits).await.unwrap();
        assert_eq!(php_json(&fields), r#"{"a":"1","b":"2","c":"3"}"#);
        // Part 6 exceeds max_input_vars + max_file_uploads: PHP stops there.
        assert!(uploads.is_empty());
        assert_eq!(files_in(dir.path()), 0);
    }

    #[tokio::test]
    async fn odd_parts_are_handled_like_php() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[
            part(None, Some("text/plain"), b"no disposition"),
            field("a", "1"),
            file("a[b", "x.txt", b"x"),
            file("a]b", "y.txt", b"y"),
            file("a[b]c", "z.txt", b"z"),
            file("ok[b][c]", "w.txt", b"w"),
            part(Some("form-data"), None, b"garbled: PHP stops here"),
            field("b", "2"),
        ]);
        let (fields, uploads) = run(&data, &limits(dir.path())).await.unwrap();
        assert_eq!(php_json(&fields), r#"{"a":"1"}"#);
        let kept: Vec<_> = uploads.entries().map(|(k, _)| k.clone()).collect();
        assert_eq!(kept, [name("ok")]);
        assert_eq!(files_in(dir.path()), 1);
    }

    #[test]
    fn disposition_is_read_like_php() {
        let cases: [(&str, Option<&str>, Option<&str>); 8] = [
            (
                r#"form-data; name="a"; filename="b.txt""#,
                Some("a"),
                Some("b.txt"),
            ),
            (r#"form-data; NAME=a; FileName=b"#, Some("a"), Some("b")),
            (
                r#"form-data; name="x;y"; filename='q"r'"#,
                Some("x;y"),
                Some("q\"r"),
            ),
            (
                r#"form-data; name="a\"b"; filename="c\\d""#,
                Some("a\"b"),
                Some("c\\d"),
            ),
            (
                r#"form-data; name="a"; name="z"; filename="""#,
                Some("z"),
                Some(""),
            ),
            (r#"form-data; filename="f""#, None, Some("f")),
            (r#"form-data; name = "a""#, None, None),
            ("form-data;;name=a b", Some("a"), None),
        ];
        for (value, name, file_name) in cases {
            let (n, f) = disposition_names(value.as_bytes());
            let (n, f) = (n.as_deref().map(text), f.as_deref().map(text));
            assert_eq!((n, f), (name, file_name), "{value}");
        }
    }

    #[tokio::test]
    async fn names_in_other_charsets_keep_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = Vec::new();
        for (disposition, value) in [
            (&b"form-data; name=\"k\xe9\""[..], &b"v\xe9"[..]),
            (
                b"form-data; name=\"f\xe9[]\"; filename=\"d\xff/\xe9t\xe9.txt\"",
                b"x",
            ),
        ] {
            data.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: ").as_bytes());
            data.extend_from_slice(disposition);
            data.extend_from_slice(b"\r\nContent-Type: text/\xe9; charset=x\r\n\r\n");
            data.extend_from_slice(value);
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let (fields, uploads) = run(&data, &limits(dir.path())).await.unwrap();
        let Some(Node::Leaf(value)) = fields.get(&Key::Name(b"k\xe9".to_vec())) else {
            panic!("no k\\xe9 in {fields:?}");
        };
        assert_eq!(&value[..], b"v\xe9");
        let f = upload(&uploads, &[Key::Name(b"f\xe9".to_vec()), Key::Index(0)]);
        assert_eq!(f.name, b"\xe9t\xe9.txt");
        assert_eq!(f.full_path, b"d\xff/\xe9t\xe9.txt");
        assert_eq!(f.mime, b"text/\xe9");
        assert_eq!(contents(f), b"x");
    }

    /// The fields of a body past any memory budget are those of one held whole in memory.
    #[tokio::test]
    async fn every_memory_budget_gives_the_same_fields() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[
            field("a", "1"),
            field("MAX_FILE_SIZE", "3"),
            field("n[x][]", "two"),
            file("big", "big.bin", &[1; 4]),
            field("n[x][]", "three\r\n"),
            field("empty", ""),
            field("a", "last wins"),
            field("past_max_vars", "dropped"),
        ]);
        let base = MultipartLimits {
            form: FormLimits {
                max_vars: 6,
                ..FormLimits::default()
            },
            ..limits(dir.path())
        };
        let (whole_fields, whole_uploads) = run(&data, &base).await.unwrap();
        let expected = php_json(&whole_fields);
        assert_eq!(
            expected,
            r#"{"a":"last wins","MAX_FILE_SIZE":"3","n":{"x":["two","three\r\n"]},"empty":""}"#
        );
        assert_eq!(
            upload(&whole_uploads, &[name("big")]).error,
            Upload::UPLOAD_ERR_FORM_SIZE
        );
        drop(whole_uploads);
        for budget in 0..=60 {
            let limits = MultipartLimits {
                fields_in_memory: budget,
                ..base.clone()
            };
            let parsed = parse(chunked(&data, 3), BOUNDARY.to_owned(), &limits)
                .await
                .unwrap();
            assert_eq!(parsed.spooled_fields.is_some(), budget < 53, "{budget}");
            let (fields, uploads) = whole(parsed, &limits);
            assert_eq!(php_json(&fields), expected, "budget {budget}");
            let big = upload(&uploads, &[name("big")]);
            assert_eq!(big.error, Upload::UPLOAD_ERR_FORM_SIZE, "budget {budget}");
        }
        assert_eq!(files_in(dir.path()), 0);
    }

    #[tokio::test]
    async fn text_fields_past_the_budget_wait_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let large = "v".repeat(300_000);
        let data = body(&[field("a", "1"), field("large", &large), field("c", "3")]);
        let limits = MultipartLimits {
            fields_in_memory: 1000,
            ..limits(dir.path())
        };
        let parsed = parse(chunked(&data, 1000), BOUNDARY.to_owned(), &limits)
            .await
            .unwrap();
        assert_eq!(php_json(&parsed.fields), r#"{"a":"1"}"#);
        let spooled = parsed.spooled_fields.as_ref().unwrap();
        assert!(std::fs::metadata(spooled.path()).unwrap().len() > 300_000);
        assert_eq!(files_in(dir.path()), 1);
        let (fields, _) = whole(parsed, &limits);
        let names: Vec<_> = fields.entries().map(|(k, _)| k.clone()).collect();
        assert_eq!(names, [name("a"), name("large"), name("c")]);
        let Some(Node::Leaf(value)) = fields.get(&name("large")) else {
            panic!("{fields:?}");
        };
        assert_eq!(value[..], *large.as_bytes());
        assert_eq!(files_in(dir.path()), 0);
    }

    #[tokio::test]
    async fn a_body_that_fails_leaves_no_spooled_fields() {
        let dir = tempfile::tempdir().unwrap();
        let data = body(&[field("large", &"v".repeat(300_000)), field("c", "3")]);
        let limits = MultipartLimits {
            fields_in_memory: 1000,
            ..limits(dir.path())
        };
        let err = run(&data[..200_000], &limits).await.unwrap_err();
        assert!(matches!(err, MultipartError::Malformed(_)), "{err:?}");
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn boundary_comes_from_form_data_types_only() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary(r#"multipart/form-data; boundary="a b""#).as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("multipart/mixed; boundary=abc"), None);
        assert_eq!(boundary("application/x-www-form-urlencoded"), None);
    }

    #[test]
    fn helpers_match_php() {
        assert_eq!(basename(br"C:\a/b\c.txt"), b"c.txt");
        assert_eq!(basename(b"a/b/"), b"");
        assert_eq!(basename(b"plain"), b"plain");
        assert!(brackets_balanced(b"a[b][]"));
        assert!(!brackets_balanced(b"a[b[c]]"));
        assert!(!brackets_balanced(b"a]["));
        assert_eq!(strtoll(b" 42abc"), 42);
        assert_eq!(strtoll(b"-7"), -7);
        assert_eq!(strtoll(b"x"), 0);
        assert_eq!(strtoll(b"99999999999999999999"), i64::MAX);
    }
}
