//! Response compression (`http.compression`): gzip, br and zstd negotiated from
//! `Accept-Encoding`, for text types above a small size; full bodies get their new
//! Content-Length, streams are compressed as they stream (each chunk flushed).
//!
//! Never: for HEAD, a request with Range, a 206/204/304, a body PHP (or the app) already
//! encoded, `Cache-Control: no-transform`, or a type outside `types`. docs/config.md has the rules.
mod encoder;
mod negotiate;

pub use encoder::Encoder;
pub use negotiate::{negotiate, Encoding};

use crate::body::{self, Body};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bodies of known size up to this are compressed whole (and get a Content-Length).
const WHOLE_LIMIT: u64 = 1 << 20;

/// `http.compression`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressionConfig {
    /// Encodings rr may use, in its order of preference when the client likes several equally.
    pub algorithms: Vec<Encoding>,
    /// Bodies smaller than this (when their size is known) are sent as they are.
    pub min_size: u64,
    /// Media types compressed: `text/*`, exact types, `+json`/`+xml` suffixes via
    /// `application/*+json`.
    pub types: Vec<String>,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            algorithms: vec![Encoding::Zstd, Encoding::Br, Encoding::Gzip],
            min_size: 1024,
            types: [
                "text/*",
                "application/json",
                "application/*+json",
                "application/javascript",
                "application/xml",
                "application/*+xml",
                "application/wasm",
                "image/svg+xml",
                "font/ttf",
                "font/otf",
                "application/vnd.ms-fontobject",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// What of the request decides compression, taken before the request is handed on.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    /// The encoding to use; `None` when the client accepts none of ours.
    pub encoding: Option<Encoding>,
    /// HEAD, or a Range request: never compressed (but still `Vary`).
    pub never: bool,
}

impl CompressionConfig {
    pub fn wanted(&self, method: &Method, headers: &HeaderMap) -> Wanted {
        Wanted {
            encoding: negotiate(headers.get_all(header::ACCEPT_ENCODING), &self.algorithms),
            never: method == Method::HEAD || headers.contains_key(header::RANGE),
        }
    }

    /// Whether `content_type` is one of `types`.
    pub fn compressible(&self, content_type: &str) -> bool {
        // Compared without allocating: this runs for every answer (`types` are lower case).
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let Some((kind, sub)) = essence.split_once('/') else {
            return false;
        };
        self.types.iter().any(|t| match t.split_once('/') {
            Some((k, "*")) => kind.eq_ignore_ascii_case(k),
            Some((k, s)) if s.starts_with("*+") => {
                let suffix = &s[1..];
                kind.eq_ignore_ascii_case(k)
                    && sub.len() >= suffix.len()
                    && sub.as_bytes()[sub.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
            _ => t.eq_ignore_ascii_case(essence),
        })
    }

    /// Compresses `response` if the rules allow it; always adds `Vary: Accept-Encoding` to an
    /// answer whose type could be compressed.
    pub async fn apply(&self, wanted: Wanted, response: Response<Body>) -> Response<Body> {
        let (mut parts, body) = response.into_parts();
        // The declared length first: a HEAD answer declares the GET body's.
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let known = declared.or_else(|| http_body::Body::size_hint(&body).exact());
        // Small answers are never compressed, whoever asks: no Vary either (as nginx). The
        // cheapest check first: most answers of a hello-world-like app end here.
        if known.is_some_and(|n| n < self.min_size) || !self.eligible(parts.status, &parts.headers)
        {
            return Response::from_parts(parts, body);
        }
        add_vary(&mut parts.headers);
        let Some(encoding) = wanted.encoding.filter(|_| !wanted.never) else {
            return Response::from_parts(parts, body);
        };
        mark(&mut parts.headers, encoding);
        if known.is_some_and(|n| n <= WHOLE_LIMIT) {
            let whole = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    // The body failed before anything was sent: pass the failure on.
                    let failed = futures_util::stream::once(async move { Err(e) });
                    parts.headers.remove(header::CONTENT_LENGTH);
                    return Response::from_parts(
                        parts,
                        http_body_util::StreamBody::new(failed).boxed(),
                    );
                }
            };
            let mut encoder = Encoder::new(encoding);
            let mut out = encoder.chunk(&whole);
            out.extend_from_slice(&encoder.finish());
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
            return Response::from_parts(parts, body::full(out));
        }
        parts.headers.remove(header::CONTENT_LENGTH);
        let encoded = Encoded {
            inner: body,
            encoder: Some(Encoder::new(encoding)),
        };
        Response::from_parts(parts, encoded.boxed())
    }

    fn eligible(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::PARTIAL_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || headers.contains_key(header::CONTENT_ENCODING)
            || headers.contains_key(header::CONTENT_RANGE)
        {
            return false;
        }
        let no_transform = headers.get_all(header::CACHE_CONTROL).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
        });
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        !no_transform && content_type.is_some_and(|t| self.compressible(t))
    }
}

/// `Vary: Accept-Encoding`, unless a Vary already names it or `*`.
pub fn add_vary(headers: &mut HeaderMap) {
    let named = headers.get_all(header::VARY).iter().any(|v| {
        v.to_str().unwrap_or("").split(',').any(|name| {
            let name = name.trim();
            name == "*" || name.eq_ignore_ascii_case("accept-encoding")
        })
    });
    if !named {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// The headers of an encoded representation: its encoding, a weak ETag (the bytes differ
/// from the identity's), and no byte ranges (they would count encoded bytes).
fn mark(headers: &mut HeaderMap, encoding: Encoding) {
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(encoding.as_str()),
    );
    headers.remove(header::ACCEPT_RANGES);
    if let Some(etag) = headers.get(header::ETAG) {
        if etag.as_bytes().starts_with(b"\"") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(etag.as_bytes());
            if let Ok(weak) = HeaderValue::from_bytes(&weak) {
                headers.insert(header::ETAG, weak);
            }
        }
    }
}

/// A body compressed as it streams: each chunk is compressed and flushed so the client gets
/// it now, and the encoder's end is sent after the last chunk.
struct Encoded {
    inner: Body,
    encoder: Option<Encoder>,
}

impl http_body::Body for Encoded {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        loop {
            if self.encoder.is_none() {
                return Poll::Ready(None);
            }
            let polled = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
            let out = match polled {
                // rr's bodies carry no trailers; any other frame just ends nothing.
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => match &mut self.encoder {
                        Some(encoder) => encoder.chunk(&data),
                        None => Vec::new(),
                    },
                    Err(_) => continue,
                },
                Some(Err(e)) => {
                    self.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => match self.encoder.take() {
                    Some(encoder) => encoder.finish(),
                    None => Vec::new(),
                },
            };
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests;
