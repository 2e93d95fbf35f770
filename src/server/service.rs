//! One request's way through the server: limits, body, hand-off to PHP, the reply back out.
//!
//! What most requests never do (static files, a body to read, a file or Velox answer, sendfile,
//! compression) is awaited boxed: hyper moves each request's future into its connection, and
//! with those inline that future was 5.4 KB, copied several times per request (now 3.3 KB).
use super::access;
use super::error::HttpError;
use super::framing;
use super::heads::Noted;
use crate::body::{self, Body};
use crate::config::Config;
use crate::dispatch::share::Share;
use crate::dispatch::{Reply, SubmitError, Submitter};
use crate::request::fields::SpooledFields;
use crate::request::form::{self, FormLimits, Tree};
use crate::request::spool::{spool, RequestBody, SpoolError, SpoolLimits};
use crate::request::target::{Head, Target};
use crate::request::{multipart, RequestData};
use crate::stream;
use crate::stream::sendfile::{Named, SendfileConfig};
use crate::velox::Velox;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http::{header, HeaderMap, Method, Request, Response, Version};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::{Frame, Incoming};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

/// What every request of one server shares.
pub struct Context {
    pub config: Arc<Config>,
    pub submitter: Submitter,
    /// Present when `velox.server_url` is set.
    pub velox: Option<Arc<Velox>>,
    pub stats: Arc<super::stats::HttpStats>,
    /// Present when `http.static` is set: files answered before PHP.
    pub static_files: Option<crate::static_files::StaticFiles>,
}

/// Facts about the connection a request came on.
#[derive(Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub https: bool,
}

/// `noted`: what the raw HTTP/1 head showed that hyper's parse hides (see `heads`); `share`:
/// an HTTP/2 connection's share of PHP (`dispatch::share`).
///
/// Takes the connection's `Arc` itself: the connection awaits this future directly, rather than
/// through a block of its own that would move it once more per request.
pub async fn handle(
    ctx: Arc<Context>,
    peer: Peer,
    mut req: Request<Incoming>,
    noted: Noted,
    share: Option<Share>,
) -> Response<Body> {
    let ctx = &*ctx;
    // The clock is read only for what reports the time: metrics and the access log.
    let timed = ctx.config.metrics.is_some() || ctx.config.http.access_logs;
    let started = timed.then(Instant::now);
    let in_flight = ctx.stats.started();
    let method = req.method().clone();
    let compression = ctx.config.http.compression.as_ref();
    let wanted = compression.map(|c| c.wanted(req.method(), req.headers()));
    let ids = ctx.config.http.request_id.as_ref();
    let request_id = ids.map(|ids| ids.assign(req.headers_mut()));
    let entry = started
        .filter(|_| ctx.config.http.access_logs)
        .map(|started| access::Entry::new(&req, peer.addr, started, request_id.clone()));
    let mut client = peer.addr;
    let mut response = match respond(ctx, peer, req, noted, share, &mut client).await {
        Ok(response) => response,
        Err(error) => {
            if error.status().is_server_error() {
                tracing::warn!(%method, status = error.status().as_u16(), "{error:?}");
            }
            error.into_response()
        }
    };
    if let Some(started) = started.filter(|_| ctx.config.metrics.is_some()) {
        ctx.stats
            .record(response.status().as_u16(), started.elapsed());
    }
    drop(in_flight);
    if let (Some(compression), Some(wanted)) = (compression, wanted) {
        response = Box::pin(compression.apply(wanted, response)).await;
    }
    if let (Some(ids), Some(id)) = (ids.filter(|ids| ids.response), request_id) {
        response.headers_mut().entry(&ids.header).or_insert(id);
    }
    match entry {
        Some(mut entry) => {
            entry.remote = client;
            entry.attach(response)
        }
        None => response,
    }
}

/// `client`: set to the address a trusted proxy names (`http.trusted_subnets`).
async fn respond(
    ctx: &Context,
    peer: Peer,
    req: Request<Incoming>,
    noted: Noted,
    share: Option<Share>,
    client: &mut SocketAddr,
) -> Result<Response<Body>, HttpError> {
    let http = &ctx.config.http;
    if let Some(fault) = noted.framing {
        return Err(HttpError::BadFraming(fault));
    }
    let mut target = Target::check(&Head {
        method: req.method(),
        version: req.version(),
        uri: req.uri(),
        headers: req.headers(),
        https: peer.https,
        fragment: noted.fragment,
    })
    .map_err(HttpError::BadTarget)?;
    if let Some(files) = &ctx.static_files {
        use crate::static_files::Outcome;
        match Box::pin(files.serve(req.method(), req.uri(), req.headers())).await {
            Outcome::Served(response) => return Ok(response),
            Outcome::Refused(why) => return Err(HttpError::Forbidden(why)),
            Outcome::Pass => {}
        }
    }
    let (mut parts, incoming) = req.into_parts();
    let forwarded = http
        .trusted_subnets
        .resolve(peer.addr, &parts.headers)
        .map_err(HttpError::BadForwarded)?;
    // What a trusted proxy says wins; PHP then sees one Host everywhere.
    let forwarded_host = match forwarded {
        Some(f) => {
            *client = f.client;
            let host = f.host.is_some();
            target.forwarded(f.https, f.host);
            host
        }
        None => false,
    };
    // HTTP/2 names the host in :authority; PHP reads it from the Host header.
    if let Some(authority) = target
        .authority()
        .filter(|_| forwarded_host || parts.version == Version::HTTP_2)
    {
        if forwarded_host || !parts.headers.contains_key(header::HOST) {
            if let Ok(value) = http::HeaderValue::from_str(authority) {
                parts.headers.insert(header::HOST, value);
            }
        }
    }
    let limit = http.max_request_size;
    if let Some(length) = content_length(&parts.headers) {
        if length > limit {
            return Err(HttpError::BodyTooLarge { limit });
        }
    }
    // A request without a body (most GETs) skips the body machinery.
    let (body, form, spooled_fields, uploads) = match hyper::body::Body::is_end_stream(&incoming)
        && !parts.headers.contains_key(header::CONTENT_TYPE)
    {
        true => (RequestBody::default(), None, None, Tree::new()),
        false => Box::pin(read_body(ctx, &parts.method, &parts.headers, incoming)).await?,
    };

    let mut head = RequestHead::default();
    for name in [header::RANGE, header::IF_RANGE] {
        if let Some(value) = parts.headers.get(&name) {
            head.range.insert(name, value.clone());
        }
    }
    let request = RequestData {
        remote_addr: *client,
        protocol: protocol(parts.version),
        method: parts.method.clone(),
        target,
        headers: parts.headers,
        body,
        form,
        spooled_fields,
        uploads,
    };
    // The request's time for PHP counts from here, its wait for a place included.
    let deadline = tokio::time::Instant::now() + http.request_timeout;
    let turn = match share {
        Some(share) => Some(
            Box::pin(tokio::time::timeout_at(deadline, share.turn()))
                .await
                .map_err(|_| HttpError::Timeout)?,
        ),
        None => None,
    };
    let answer = ctx
        .submitter
        .submit(request, turn.clone())
        .map_err(|e| match e {
            SubmitError::Full => HttpError::QueueFull,
            SubmitError::Closed => HttpError::Unavailable,
        })?;
    let reply = tokio::time::timeout_at(deadline, answer)
        .await
        .map_err(|_| HttpError::Timeout)?
        .map_err(|_| HttpError::WorkerGone)?;
    // PHP is done with the request once it answered, but for a stream it still produces.
    if let (Some(turn), Reply::Stream { chunks, .. }) = (turn, &reply) {
        chunks.hold_until_done(turn);
    }
    into_response(ctx, reply, &parts.method, &head).await
}

/// The request headers a file reply needs (Range, If-Range); kept apart so they survive the
/// hand-off of the full header map to PHP.
#[derive(Default)]
struct RequestHead {
    range: HeaderMap,
}

async fn into_response(
    ctx: &Context,
    mut reply: Reply,
    method: &Method,
    head: &RequestHead,
) -> Result<Response<Body>, HttpError> {
    let php_headers = match &mut reply {
        Reply::Full { headers, .. } | Reply::Stream { headers, .. } => Some(headers),
        Reply::File(file) => Some(&mut file.headers),
        Reply::Velox(order) => Some(&mut order.headers),
        _ => None,
    };
    if let Some(headers) = php_headers {
        framing::head_size(headers).map_err(bad_response)?;
        framing::drop_hop_by_hop(headers);
    }
    let reply = match &ctx.config.http.sendfile {
        Some(sendfile) => match Box::pin(named_file(sendfile, reply, method, head)).await? {
            ControlFlow::Break(file) => return Ok(file),
            ControlFlow::Continue(reply) => reply,
        },
        None => reply,
    };
    match reply {
        Reply::Full {
            status,
            mut headers,
            body,
        } => {
            framing::full(&mut headers, status, method, &body).map_err(bad_response)?;
            Ok(build(status, headers, body::full(body)))
        }
        Reply::Stream {
            status,
            headers,
            mut chunks,
        } => {
            framing::status(status).map_err(bad_response)?;
            let declared = match *method == Method::HEAD {
                true => None,
                false => framing::declared_length(&headers).map_err(bad_response)?,
            };
            let mut counted = declared.map(framing::Counted::new);
            let mut ended = false;
            let stream = futures_util::stream::poll_fn(move |cx| {
                if ended {
                    return std::task::Poll::Ready(None);
                }
                let chunk = std::task::ready!(chunks.poll_chunk(cx));
                if !matches!(chunk, Some(Ok(_))) {
                    ended = true;
                }
                let Some(counted) = counted.as_mut() else {
                    return std::task::Poll::Ready(chunk.map(|b| b.map(Frame::data)));
                };
                let checked = match chunk {
                    Some(Ok(bytes)) => counted.chunk(bytes.len()).map(|()| {
                        // The declared length is reached: the answer ends here whether or not
                        // hyper polls again, and what PHP writes past it is reported.
                        if counted.is_complete() {
                            ended = true;
                            chunks.complete(counted.declared());
                        }
                        Some(bytes)
                    }),
                    Some(Err(e)) => return std::task::Poll::Ready(Some(Err(e))),
                    None => counted.end().map(|()| None),
                };
                std::task::Poll::Ready(match checked {
                    Ok(bytes) => bytes.map(|b| Ok(Frame::data(b))),
                    Err(e) => {
                        tracing::error!("{e}: the connection is cut off");
                        ended = true;
                        Some(Err(std::io::Error::other(e)))
                    }
                })
            });
            Ok(build(
                status,
                headers,
                BodyExt::boxed(StreamBody::new(stream)),
            ))
        }
        Reply::File(file) => {
            // sendFile() checks its status in PHP; a pool worker's reply is checked here too.
            framing::status(file.status).map_err(bad_response)?;
            Box::pin(stream::serve_file(file, method, &head.range))
                .await
                .map_err(|e| {
                    tracing::warn!("sendFile: {e}");
                    match e {
                        stream::StreamError::NotFound(_) => HttpError::FileNotFound,
                        _ => HttpError::Internal("the file cannot be streamed"),
                    }
                })
        }
        // The worker only hands an order over when Velox is configured (see worker::velox_build).
        Reply::Velox(order) => match &ctx.velox {
            Some(velox) => Ok(Box::pin(velox.respond(order, method, &head.range)).await),
            None => Err(HttpError::Internal("velox builds are not configured")),
        },
        Reply::Unavailable => Err(HttpError::Unavailable),
        Reply::Crashed => Err(HttpError::WorkerCrashed),
        Reply::ExecTimeout => Err(HttpError::ExecTimeout),
        Reply::NoWorker => Err(HttpError::NoWorker),
        Reply::WorkerError(message) => {
            tracing::error!("worker error: {message}");
            Err(HttpError::WorkerError)
        }
    }
}

/// `http.sendfile`: an answer with `X-Sendfile` or `X-Accel-Redirect` becomes the file it
/// names, with PHP's status and headers, as `sendFile()` would have sent it; PHP's body goes.
/// `Continue` with the reply when it names no file.
async fn named_file(
    config: &SendfileConfig,
    mut reply: Reply,
    method: &Method,
    head: &RequestHead,
) -> Result<ControlFlow<Response<Body>, Reply>, HttpError> {
    let (headers, php_body) = match &mut reply {
        Reply::Full { headers, body, .. } => (headers, !body.is_empty()),
        Reply::Stream { headers, .. } => (headers, true),
        _ => return Ok(ControlFlow::Continue(reply)),
    };
    let Some(named) = Named::take(headers, php_body) else {
        return Ok(ControlFlow::Continue(reply));
    };
    // Dropping a stream's chunks ends PHP's side as a client that left would.
    let (status, headers) = match reply {
        Reply::Full {
            status, headers, ..
        }
        | Reply::Stream {
            status, headers, ..
        } => (status, headers),
        other => return Ok(ControlFlow::Continue(other)),
    };
    framing::status(status).map_err(bad_response)?;
    let config = config.clone();
    let resolved = tokio::task::spawn_blocking({
        let named = named.clone();
        move || config.resolve(&named)
    })
    .await
    .unwrap_or_else(|join| {
        Err(stream::StreamError::Io {
            path: Default::default(),
            source: std::io::Error::other(join),
        })
    });
    // The file opened as it was checked: streamed from that descriptor, never re-opened.
    match resolved {
        Ok(file) => Ok(ControlFlow::Break(stream::respond(
            file,
            status,
            headers,
            method,
            &head.range,
            stream::Validators::SEND_FILE,
        ))),
        Err(e) => {
            tracing::warn!("{}: {e}", named.describe());
            Err(named_file_error(e))
        }
    }
}

/// Why a file PHP named in a header cannot be sent, as the client's answer. (`sendFile()` names
/// a path PHP chose itself: anything but a missing file is a 500 there.)
fn named_file_error(e: stream::StreamError) -> HttpError {
    match e {
        stream::StreamError::NotFound(_) => HttpError::FileNotFound,
        stream::StreamError::NotAFile(_) => HttpError::Forbidden("not a regular file"),
        stream::StreamError::Forbidden { reason, .. } => HttpError::Forbidden(reason),
        stream::StreamError::Io { .. } => HttpError::Internal("the file cannot be streamed"),
    }
}

/// PHP's answer could not be framed: the log names the values, the client gets a 500.
fn bad_response(e: framing::FramingError) -> HttpError {
    tracing::error!("{e}: answered 500 instead");
    HttpError::BadResponse(e)
}

fn build(status: http::StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

type ReadBody = (
    RequestBody,
    Option<Tree<Bytes>>,
    Option<SpooledFields>,
    Tree<multipart::Upload>,
);

/// Why a body's frames stopped.
#[derive(Debug)]
enum FrameError {
    /// No byte for `http.body_timeout`.
    Stalled,
    /// The connection failed (reset, bad chunked framing).
    Client(hyper::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Stalled => f.write_str("the client stopped sending the body"),
            // hyper's own text is general ("error reading a body from connection"); its
            // source says what was wrong (a bad chunk size, a bare LF in the trailers).
            FrameError::Client(e) => match std::error::Error::source(e) {
                Some(source) => write!(f, "{e}: {source}"),
                None => write!(f, "{e}"),
            },
        }
    }
}

impl std::error::Error for FrameError {}

/// The body's data frames, each awaited for at most `pause`; the stream ends after an error.
fn frames(
    incoming: Incoming,
    pause: std::time::Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, FrameError>> {
    let frames = BodyStream::new(incoming)
        .try_filter_map(|frame| futures_util::future::ready(Ok(frame.into_data().ok())));
    futures_util::stream::unfold(Some(Box::pin(frames)), move |state| async move {
        let mut frames = state?;
        match tokio::time::timeout(pause, frames.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(frames))),
            Ok(Some(Err(e))) => Some((Err(FrameError::Client(e)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(FrameError::Stalled), None)),
        }
    })
}

/// Reads the body in tokio: multipart files are streamed to temp files, and so are its text
/// fields past `http.body_buffer_size`; anything else is kept in memory up to
/// `http.body_buffer_size` and spooled to a temp file past it. An urlencoded form kept in memory
/// is parsed here; one spooled is parsed from its file when PHP takes the request
/// (`RequestData::load_deferred_fields`, which adds spooled multipart fields too), so a queued
/// form costs disk, not memory. A multipart body
/// sent with another method than POST is kept raw as well (php-fpm hands it to `php://input`
/// and fills no `$_FILES`) and parsed from there for `RR\Request` (RoadRunner parses it).
async fn read_body(
    ctx: &Context,
    method: &Method,
    headers: &HeaderMap,
    incoming: Incoming,
) -> Result<ReadBody, HttpError> {
    let http = &ctx.config.http;
    let limit = http.max_request_size;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let frames = frames(incoming, http.body_timeout);
    let boundary = multipart::boundary(content_type);
    if let Some(boundary) = boundary.clone().filter(|_| method == Method::POST) {
        let parsed = parse_multipart(ctx, frames, boundary).await?;
        return Ok((
            RequestBody::default(),
            Some(parsed.fields),
            parsed.spooled_fields,
            parsed.uploads,
        ));
    }
    let urlencoded = form::is_urlencoded(content_type);
    let limits = SpoolLimits {
        max_body: limit,
        in_memory: http.body_buffer_size,
        dir: http.uploads.dir.clone(),
    };
    let body = spool(frames, &limits).await.map_err(|e| match e {
        SpoolError::TooLarge => HttpError::BodyTooLarge { limit },
        SpoolError::Read(e) => client_error(Some(&*e)),
        SpoolError::Io(e) => spool_failed(&http.uploads.dir, e),
    })?;
    if let Some(boundary) = boundary {
        let raw = body
            .stream()
            .await
            .map_err(|e| spool_failed(&http.uploads.dir, e))?;
        // php-fpm hands such a body to php://input whatever it holds: one that is not
        // well-formed multipart is kept raw, with no parsed fields, rather than refused.
        return match parse_multipart(ctx, raw, boundary).await {
            Ok(parsed) => Ok((
                body,
                Some(parsed.fields),
                parsed.spooled_fields,
                parsed.uploads,
            )),
            Err(HttpError::BadRequest(why)) => {
                tracing::debug!("a {method} body is not well-formed multipart ({why}): kept raw");
                Ok((body, None, None, Tree::new()))
            }
            Err(e) => Err(e),
        };
    }
    let form = match body.in_memory() {
        Some(bytes) if urlencoded => Some(form::parse_urlencoded(bytes, &FormLimits::default()).0),
        _ => None,
    };
    Ok((body, form, None, Tree::new()))
}

fn spool_failed(dir: &std::path::Path, e: std::io::Error) -> HttpError {
    tracing::error!("spooling a body to {}: {e}", dir.display());
    HttpError::Internal("cannot store the request body")
}

/// A multipart body's fields and files (to temp files in `http.uploads.dir`, and so do its
/// fields past `http.body_buffer_size`).
async fn parse_multipart<S, E>(
    ctx: &Context,
    body: S,
    boundary: String,
) -> Result<multipart::Parsed, HttpError>
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let http = &ctx.config.http;
    let limit = http.max_request_size;
    let limits = multipart::MultipartLimits {
        max_body: limit,
        max_file_size: limit,
        upload_dir: http.uploads.dir.clone(),
        forbid: http.uploads.forbid.clone(),
        max_file_uploads: 20,
        form: FormLimits::default(),
        fields_in_memory: http.body_buffer_size,
    };
    multipart::parse(Box::pin(body), boundary, &limits)
        .await
        .map_err(|e| match e {
            multipart::MultipartError::TooLarge => HttpError::BodyTooLarge { limit },
            multipart::MultipartError::Malformed(why) => HttpError::BadRequest(why),
            multipart::MultipartError::Io(e) if e.get_ref().is_some_and(is_client) => {
                client_error(e.get_ref())
            }
            multipart::MultipartError::Io(e) => {
                tracing::error!("writing an upload to {}: {e}", http.uploads.dir.display());
                HttpError::Internal("cannot store the upload")
            }
        })
}

/// Whether a parser's error came from the client's side of the body stream.
fn is_client(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.downcast_ref::<FrameError>().is_some()
}

/// The answer to a body the client did not finish sending: 408 after a stall, else 400.
fn client_error(e: Option<&(dyn std::error::Error + Send + Sync + 'static)>) -> HttpError {
    match e.and_then(|e| e.downcast_ref::<FrameError>()) {
        Some(FrameError::Stalled) => HttpError::BodyTimeout,
        _ => HttpError::BadRequest(format!(
            "reading the body: {}",
            e.map_or(String::new(), ToString::to_string)
        )),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pub(super) fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        Version::HTTP_09 => "HTTP/0.9",
        _ => "HTTP/1.1",
    }
}
