//! The framing of PHP's answers made consistent before they go out: a `Content-Length` that
//! contradicts the body is refused (a full body) or cuts the connection (a stream), never sent
//! as given, so a wrong length can never make the next answer on a keep-alive connection part
//! of this one. Hop-by-hop headers from PHP are dropped, as nginx drops them from php-fpm: the
//! connection's framing is rr's (hyper's) to choose. A head too large for clients to read is
//! refused too (nginx refuses one past its buffer from php-fpm, 502).
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};
use std::fmt;

/// Why an answer from PHP could not be framed as it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// `Content-Length` says one size and the full body has another.
    LengthMismatch { declared: u64, actual: u64 },
    /// `Content-Length` values that are not one number.
    BadLength(String),
    /// A 1xx status as the final answer (`http_response_code(103)` in `handle()` mode).
    Interim(u16),
    /// The headers take more than [`MAX_HEAD`] bytes.
    HeadTooLarge { size: usize },
    /// One header field takes more than [`MAX_FIELD`] bytes.
    FieldTooLarge { name: String, size: usize },
}

/// The largest response head rr sends, counted as HTTP/1 writes it: browsers refuse a larger
/// one (Chrome's `ERR_RESPONSE_HEADERS_TOO_BIG` past 256 KiB).
pub const MAX_HEAD: usize = 256 * 1024;
/// The largest header field (name and value): past 64 KiB nghttp2 (curl, nghttp, h2load) ends
/// the whole HTTP/2 connection with a COMPRESSION_ERROR, every other stream on it with it.
pub const MAX_FIELD: usize = 64 * 1024;

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::LengthMismatch { declared, actual } => write!(
                f,
                "the application answered Content-Length: {declared} with a body of {actual} bytes"
            ),
            FramingError::BadLength(v) => {
                write!(f, "the application answered Content-Length: {v:?}")
            }
            FramingError::Interim(s) => {
                write!(f, "the application answered with the interim status {s}")
            }
            FramingError::HeadTooLarge { size } => write!(
                f,
                "the application's headers take {size} bytes, more than the {MAX_HEAD} rr sends"
            ),
            FramingError::FieldTooLarge { name, size } => write!(
                f,
                "the application's header {name} takes {size} bytes, more than the {MAX_FIELD} \
                 rr sends"
            ),
        }
    }
}

impl std::error::Error for FramingError {}

/// The hop-by-hop headers of RFC 9110 7.6.1 (and the old `Proxy-Connection`).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// Drops the hop-by-hop headers and those a `Connection` header names.
pub fn drop_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for name in hop.iter().chain(&named) {
        headers.remove(name);
    }
}

/// The one length `Content-Length` declares, if it declares one.
pub fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, FramingError> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value.to_str().unwrap_or("");
        for part in text.split(',') {
            let n: u64 = part.trim().parse().map_err(|_| {
                FramingError::BadLength(String::from_utf8_lossy(value.as_bytes()).into())
            })?;
            if length.is_some_and(|l| l != n) {
                return Err(FramingError::BadLength(text.into()));
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Headers small enough for clients to read: no field over [`MAX_FIELD`], all of them within
/// [`MAX_HEAD`].
pub fn head_size(headers: &HeaderMap) -> Result<(), FramingError> {
    let mut size = 0;
    for (name, value) in headers {
        let field = name.as_str().len() + value.len();
        if field > MAX_FIELD {
            return Err(FramingError::FieldTooLarge {
                name: name.to_string(),
                size: field,
            });
        }
        // "name: value\r\n"
        size += field + 4;
    }
    match size > MAX_HEAD {
        true => Err(FramingError::HeadTooLarge { size }),
        false => Ok(()),
    }
}

/// A final answer's status: never 1xx (hyper cannot send an interim answer, and a 1xx cannot
/// end a request).
pub fn status(status: http::StatusCode) -> Result<(), FramingError> {
    match status.is_informational() {
        true => Err(FramingError::Interim(status.as_u16())),
        false => Ok(()),
    }
}

/// A full body's headers made consistent: hop-by-hop headers gone, one `Content-Length` that
/// matches the body (a HEAD answer and a 304 may declare the length of the body they omit; a
/// 1xx or 204 declares none).
pub fn full(
    headers: &mut HeaderMap,
    status: StatusCode,
    method: &Method,
    body: &Bytes,
) -> Result<(), FramingError> {
    self::status(status)?;
    drop_hop_by_hop(headers);
    if !headers.contains_key(header::CONTENT_LENGTH) {
        return Ok(());
    }
    let declared = declared_length(headers)?;
    if status == StatusCode::NO_CONTENT {
        headers.remove(header::CONTENT_LENGTH);
        return Ok(());
    }
    let Some(declared) = declared else {
        return Ok(());
    };
    let actual = body.len() as u64;
    let omitted = *method == Method::HEAD || status == StatusCode::NOT_MODIFIED;
    if declared != actual && !(omitted && actual == 0) {
        return Err(FramingError::LengthMismatch { declared, actual });
    }
    // "5, 5" or two equal headers: one value.
    headers.insert(header::CONTENT_LENGTH, declared.into());
    Ok(())
}

/// Counts a streamed body against the length PHP declared; the first chunk past it, or the end
/// of the stream short of it, is an error that cuts the connection off.
pub struct Counted {
    declared: u64,
    sent: u64,
}

impl Counted {
    pub fn new(declared: u64) -> Counted {
        Counted { declared, sent: 0 }
    }

    /// A chunk on its way out.
    pub fn chunk(&mut self, len: usize) -> Result<(), FramingError> {
        self.sent += len as u64;
        match self.sent > self.declared {
            true => Err(FramingError::LengthMismatch {
                declared: self.declared,
                actual: self.sent,
            }),
            false => Ok(()),
        }
    }

    /// Every declared byte went out: the answer is whole.
    pub fn is_complete(&self) -> bool {
        self.sent == self.declared
    }

    /// The length the application declared.
    pub fn declared(&self) -> u64 {
        self.declared
    }

    /// The stream ended.
    pub fn end(&self) -> Result<(), FramingError> {
        match self.sent == self.declared {
            true => Ok(()),
            false => Err(FramingError::LengthMismatch {
                declared: self.declared,
                actual: self.sent,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn a_length_that_contradicts_the_body_is_refused() {
        let body = Bytes::from_static(b"hello");
        let ok = StatusCode::OK;
        for (cl, result) in [
            ("5", Ok(())),
            ("5, 5", Ok(())),
            (
                "4",
                Err(FramingError::LengthMismatch {
                    declared: 4,
                    actual: 5,
                }),
            ),
            (
                "6",
                Err(FramingError::LengthMismatch {
                    declared: 6,
                    actual: 5,
                }),
            ),
            ("5, 6", Err(FramingError::BadLength("5, 6".into()))),
            ("x", Err(FramingError::BadLength("x".into()))),
        ] {
            let mut h = map(&[("content-length", cl)]);
            assert_eq!(full(&mut h, ok, &Method::GET, &body), result, "{cl}");
            if result.is_ok() {
                assert_eq!(h.get_all("content-length").iter().count(), 1);
                assert_eq!(h["content-length"], "5");
            }
        }
        let mut twice = map(&[("content-length", "5"), ("content-length", "5")]);
        assert!(full(&mut twice, ok, &Method::GET, &body).is_ok());
        assert_eq!(twice.get_all("content-length").iter().count(), 1);
        let mut differ = map(&[("content-length", "5"), ("content-length", "7")]);
        assert!(full(&mut differ, ok, &Method::GET, &body).is_err());
    }

    #[test]
    fn head_304_and_204_follow_their_own_rules() {
        let empty = Bytes::new();
        let mut h = map(&[("content-length", "1234")]);
        assert!(full(&mut h, StatusCode::OK, &Method::HEAD, &empty).is_ok());
        assert_eq!(h["content-length"], "1234");
        let mut h = map(&[("content-length", "1234")]);
        assert!(full(&mut h, StatusCode::NOT_MODIFIED, &Method::GET, &empty).is_ok());
        let mut h = map(&[("content-length", "9")]);
        assert!(full(&mut h, StatusCode::NO_CONTENT, &Method::GET, &empty).is_ok());
        assert!(!h.contains_key("content-length"));
        let early = full(
            &mut h,
            StatusCode::from_u16(103).unwrap(),
            &Method::GET,
            &empty,
        );
        assert_eq!(early, Err(FramingError::Interim(103)));
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut h = map(&[
            ("connection", "close, x-private"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("x-private", "1"),
            ("x-kept", "2"),
            ("content-type", "text/plain"),
        ]);
        let body = Bytes::from_static(b"abc");
        assert!(full(&mut h, StatusCode::OK, &Method::GET, &body).is_ok());
        let mut names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "x-kept"]);
    }

    #[test]
    fn a_head_too_large_for_clients_is_refused() {
        let field = |len: usize| HeaderValue::from_str(&"v".repeat(len)).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-a", field(MAX_FIELD - 3));
        assert_eq!(head_size(&h), Ok(()));
        h.insert("x-a", field(MAX_FIELD - 2));
        assert_eq!(
            head_size(&h),
            Err(FramingError::FieldTooLarge {
                name: "x-a".into(),
                size: MAX_FIELD + 1
            })
        );
        // Five fields of 64 KiB: each within its limit, all of them past the head's; three fit.
        let mut h = HeaderMap::new();
        for i in 0..5 {
            h.insert(
                HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                field(MAX_FIELD - 3),
            );
        }
        assert_eq!(
            head_size(&h),
            Err(FramingError::HeadTooLarge {
                size: 5 * (MAX_FIELD + 4)
            })
        );
        h.remove("x-4");
        h.remove("x-3");
        assert_eq!(head_size(&h), Ok(()));
    }

    #[test]
    fn a_stream_is_held_to_its_declared_length() {
        let mut c = Counted::new(5);
        assert!(c.chunk(3).is_ok());
        assert!(c.end().is_err(), "short");
        assert!(c.chunk(2).is_ok());
        assert!(c.end().is_ok());
        assert!(c.chunk(1).is_err(), "past the length");
    }
}
