//! The access log (`http.access_logs`): one line per request, written when the answer's last
//! byte was handed to the connection, or when the client went away first.
use crate::body::Body;
use crate::request::id;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// What the line will say about one request, gathered while it is served.
pub struct Entry {
    started: Instant,
    /// The peer, or the client a trusted proxy named.
    pub remote: SocketAddr,
    method: Method,
    uri: String,
    protocol: &'static str,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    trace_id: Option<String>,
    status: u16,
}

impl Entry {
    pub fn new<B>(
        req: &Request<B>,
        remote: SocketAddr,
        started: Instant,
        request_id: Option<HeaderValue>,
    ) -> Entry {
        let headers = req.headers();
        Entry {
            started,
            remote,
            method: req.method().clone(),
            uri: req.uri().to_string(),
            protocol: super::service::protocol(req.version()),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            referer: headers.get(header::REFERER).cloned(),
            request_id,
            trace_id: id::trace_id(headers).map(str::to_owned),
            status: 0,
        }
    }

    /// The response, its body counted and the line written when it ends.
    pub fn attach(mut self, response: Response<Body>) -> Response<Body> {
        self.status = response.status().as_u16();
        response.map(|inner| {
            Logged {
                inner,
                entry: Some(self),
                bytes: 0,
                complete: false,
            }
            .boxed()
        })
    }

    fn write(&self, bytes: u64, complete: bool) {
        let text = |v: &Option<HeaderValue>| {
            v.as_ref()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        tracing::info!(
            target: "rr::access",
            remote = %self.remote,
            method = %self.method,
            uri = self.uri,
            protocol = self.protocol,
            status = self.status,
            bytes,
            duration_us = self.started.elapsed().as_micros() as u64,
            user_agent = text(&self.user_agent),
            referer = text(&self.referer),
            request_id = text(&self.request_id),
            trace_id = self.trace_id,
            complete,
        );
    }
}

/// A response body that counts what it yields and logs its entry when it ends or is dropped.
struct Logged {
    inner: Body,
    entry: Option<Entry>,
    bytes: u64,
    complete: bool,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Logged {
    fn finish(&mut self, complete: bool) {
        self.complete = complete;
        if let Some(entry) = self.entry.take() {
            entry.write(self.bytes, complete);
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // HEAD, an empty body hyper never polled, or a client that left mid-body.
        let head = self
            .entry
            .as_ref()
            .is_some_and(|e| e.method == Method::HEAD);
        let complete = self.complete || head || http_body::Body::is_end_stream(&self.inner);
        self.finish(complete);
    }
}
