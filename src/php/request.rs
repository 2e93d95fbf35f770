//! `RR\Request`: one request, read-only. Arrays are built on first access and kept, so a
//! worker that never reads the cookies never pays for them.
use super::convert::{self, PhpArray};
use super::exception::misuse;
use crate::request::form::{self, FormLimits};
use crate::request::{cookie, RequestData};
use ext_php_rs::prelude::*;
use ext_php_rs::types::Zval;
use std::cell::RefCell;

#[derive(Default)]
struct Cache {
    headers: Option<Zval>,
    cookies: Option<Zval>,
    query: Option<Zval>,
    parsed: Option<Zval>,
    body: Option<Zval>,
}

/// An HTTP request received by `RR\Worker::waitRequest()`.
#[php_class]
#[php(name = "RR\\Request")]
#[php(flags = ext_php_rs::flags::ClassFlags::Final)]
pub struct Request {
    data: Box<RequestData>,
    uploads: Zval,
    cache: RefCell<Cache>,
    /// `http.request_id.header`, when request ids are on.
    request_id: Option<http::HeaderName>,
}

/// Calls a PHP function by name; a failure to call it becomes an `RR\\Exception`.
fn call(name: &str, args: &[&dyn ext_php_rs::convert::IntoZvalDyn]) -> PhpResult<Zval> {
    let function = ext_php_rs::types::ZendCallable::try_from_name(name)
        .map_err(|e| misuse(format!("calling {name}(): {e}")))?;
    function
        .try_call(args.to_vec())
        .map_err(|e| misuse(format!("calling {name}(): {e}")))
}

impl Request {
    pub fn new(
        data: Box<RequestData>,
        uploads: Zval,
        request_id: Option<http::HeaderName>,
    ) -> Request {
        Request {
            data,
            uploads,
            cache: RefCell::default(),
            request_id,
        }
    }

    fn cached(
        &self,
        pick: fn(&mut Cache) -> &mut Option<Zval>,
        build: impl FnOnce(&RequestData) -> Zval,
    ) -> Zval {
        let mut cache = self.cache.borrow_mut();
        pick(&mut cache)
            .get_or_insert_with(|| build(&self.data))
            .shallow_clone()
    }
}

#[php_impl]
impl Request {
    /// The client's IP address.
    #[php(getter)]
    pub fn get_remote_addr(&self) -> String {
        self.data.remote_addr.ip().to_string()
    }

    /// The request id (`http.request_id`: the one the request brought or a generated one, as
    /// in the access log); null when request ids are off.
    #[php(getter)]
    pub fn get_request_id(&self) -> Option<String> {
        let value = self.data.headers.get(self.request_id.as_ref()?)?;
        Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
    }

    /// The client's TCP port.
    #[php(getter)]
    pub fn get_remote_port(&self) -> i64 {
        i64::from(self.data.remote_addr.port())
    }

    /// "HTTP/1.0", "HTTP/1.1" or "HTTP/2.0".
    #[php(getter)]
    pub fn get_protocol(&self) -> &'static str {
        self.data.protocol
    }

    #[php(getter)]
    pub fn get_method(&self) -> String {
        self.data.method.as_str().to_string()
    }

    /// The full URL: scheme://authority/path?query (authority `localhost` when the request named
    /// none: HTTP/1.0 without Host).
    #[php(getter)]
    pub fn get_uri(&self) -> String {
        self.data.target.uri()
    }

    /// The path and query as sent in the request line, e.g. "/a/b?c=1".
    #[php(getter)]
    pub fn get_request_uri(&self) -> String {
        self.data.target.request_uri().into_owned()
    }

    /// "http" or "https".
    #[php(getter)]
    pub fn get_scheme(&self) -> &'static str {
        self.data.target.scheme()
    }

    /// The host the request named (Host, `:authority` or an absolute-form target), IPv6
    /// literals in brackets; '' when it named none (HTTP/1.0 without Host).
    #[php(getter)]
    pub fn get_host(&self) -> String {
        self.data.target.host().to_string()
    }

    /// The port the request named; null when it named none (the scheme's default applies).
    #[php(getter)]
    pub fn get_port(&self) -> Option<i64> {
        self.data.target.port().map(i64::from)
    }

    /// The path as sent (percent-encoding kept), e.g. "/a%20b".
    #[php(getter)]
    pub fn get_path(&self) -> String {
        self.data.target.path().to_string()
    }

    /// The raw query string after the first '?' ('' when there is none).
    #[php(getter)]
    pub fn get_query_string(&self) -> String {
        self.data.target.query().to_string()
    }

    /// True when the request came over TLS.
    #[php(getter)]
    pub fn get_https(&self) -> bool {
        self.data.target.https()
    }

    /// Headers as `array<string, string[]>`, names canonical ("Content-Type").
    #[php(getter)]
    pub fn get_headers(&self) -> PhpArray {
        PhpArray(self.cached(
            |c| &mut c.headers,
            |d| convert::array_zval(convert::headers(&d.headers)),
        ))
    }

    /// Cookies as PHP would put them in `$_COOKIE`.
    #[php(getter)]
    pub fn get_cookies(&self) -> PhpArray {
        PhpArray(self.cached(
            |c| &mut c.cookies,
            |d| {
                convert::array_zval(convert::bytes_tree(&cookie::parse_cookies(
                    &d.headers,
                    &FormLimits::default(),
                )))
            },
        ))
    }

    /// The query string parsed as PHP would fill `$_GET` (nested keys like `a[b][]`).
    #[php(getter)]
    pub fn get_query(&self) -> PhpArray {
        PhpArray(self.cached(
            |c| &mut c.query,
            |d| {
                let (tree, _) =
                    form::parse_urlencoded(d.target.query().as_bytes(), &FormLimits::default());
                convert::array_zval(convert::bytes_tree(&tree))
            },
        ))
    }

    /// The raw body (binary-safe), loaded whole; empty for multipart bodies, whose parts are
    /// in `parsed` and `uploads`. A body larger than `http.body_buffer_size` waits in a temp
    /// file (`bodyFile`): read it with `bodyStream()` to keep memory small.
    #[php(getter)]
    pub fn get_body(&self) -> PhpResult<Zval> {
        if let Some(body) = &self.cache.borrow().body {
            return Ok(body.shallow_clone());
        }
        let bytes = self.data.body.load().map_err(|e| {
            misuse(format!(
                "RR\\Request::$body: the body file {} cannot be read: {e}",
                self.data
                    .body
                    .file()
                    .map_or("?".into(), |p| p.display().to_string())
            ))
        })?;
        let zval = convert::bytes_zval(&bytes);
        self.cache.borrow_mut().body = Some(zval.shallow_clone());
        Ok(zval)
    }

    /// The temp file holding the body when it was larger than `http.body_buffer_size`; null
    /// when the body is in memory. rr deletes it after the answer.
    #[php(getter)]
    pub fn get_body_file(&self) -> Option<String> {
        self.data
            .body
            .file()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// The body's size in bytes, without reading it.
    #[php(getter)]
    pub fn get_body_size(&self) -> u64 {
        self.data.body.len()
    }

    /// The body as a readable PHP stream positioned at its start, without loading a spooled
    /// body into memory: the temp file opened read-only, or a `php://memory` copy of a small
    /// body. Each call opens a new stream.
    pub fn body_stream(&self) -> PhpResult<Zval> {
        let stream = match self.data.body.file() {
            Some(path) => {
                let path = path.to_string_lossy().into_owned();
                let stream = call("fopen", &[&path, &"rb"])?;
                if stream.is_false() {
                    return Err(misuse(format!(
                        "RR\\Request::bodyStream(): the body file {path} cannot be opened"
                    )));
                }
                stream
            }
            None => {
                let stream = call("fopen", &[&"php://memory", &"w+b"])?;
                if let Some(bytes) = self.data.body.in_memory() {
                    call("fwrite", &[&stream, &convert::bytes_zval(bytes)])?;
                }
                call("rewind", &[&stream])?;
                stream
            }
        };
        Ok(stream)
    }

    /// Fields of an urlencoded or multipart body, as PHP would fill `$_POST`.
    #[php(getter)]
    pub fn get_parsed(&self) -> PhpArray {
        PhpArray(self.cached(
            |c| &mut c.parsed,
            |d| match &d.form {
                Some(tree) => convert::array_zval(convert::bytes_tree(tree)),
                None => convert::array_zval(ext_php_rs::types::ZendHashTable::new()),
            },
        ))
    }

    /// Uploaded files, nested like the field names; each is
    /// `['name' => string, 'mime' => string, 'size' => int, 'error' => int, 'tmpName' => string]`.
    /// The temp files are deleted after the response.
    #[php(getter)]
    pub fn get_uploads(&self) -> PhpArray {
        PhpArray(self.uploads.shallow_clone())
    }

    /// Free-form attributes (empty; kept for RoadRunner compatibility).
    #[php(getter)]
    pub fn get_attributes(&self) -> PhpArray {
        PhpArray(convert::array_zval(ext_php_rs::types::ZendHashTable::new()))
    }

    /// The first value of a header, looked up case-insensitively; null when absent.
    pub fn header(&self, name: &str) -> Option<String> {
        let value = self.data.headers.get(name)?;
        Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
    }

    /// Whether the header is present (case-insensitive).
    pub fn has_header(&self, name: &str) -> bool {
        self.data.headers.contains_key(name)
    }
}
