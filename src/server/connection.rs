//! One client connection: hyper (HTTP/1.1 keep-alive or HTTP/2), plus a watchdog for the two
//! timeouts hyper does not separate: reading a request head, and idling between requests.
use super::abort::{self, Cut};
use super::heads::{Heads, Noted, Refused};
use super::service::{self, Context, Peer};
use super::shutdown::{DoneGuard, Shutdown};
use super::woken::Woken;
use crate::body::Body;
use crate::config::HttpConfig;
use crate::dispatch::share::Share;
use http::{Request, Response};
use hyper::body::Incoming;
use once_cell::sync::Lazy;
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// Which protocol to speak on a connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, and HTTP/2 with prior knowledge when h2c is enabled.
    Auto { h2c: bool },
    /// TLS negotiated h2 via ALPN.
    Http2,
}

/// The watchdog's view of a connection: what it is doing and until when that may last.
struct Watch {
    phase: AtomicU8,
    in_flight: AtomicU64,
    deadline_ms: AtomicU64,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// The watchdog waits for `changed` with no timer: a request was in flight when it looked.
    parked: AtomicBool,
    changed: Notify,
    /// HTTP/2 answers that handed hyper data it could not send yet (the client's flow-control
    /// window is shut): hyper polls such a body again only once the client opens the window.
    waiting: AtomicU64,
    /// Waits begun, and writes to the socket that went through: the stall check's clock.
    waits: AtomicU64,
    writes: AtomicU64,
    wait_begun: Notify,
}

static EPOCH: Lazy<Instant> = Lazy::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

impl Watch {
    fn new(header_timeout: Duration, idle_timeout: Duration) -> Watch {
        // Waiting for the first request head is bounded by the header timeout.
        Watch {
            phase: AtomicU8::new(HEAD),
            in_flight: AtomicU64::new(0),
            deadline_ms: AtomicU64::new(now_ms() + header_timeout.as_millis() as u64),
            header_timeout,
            idle_timeout,
            parked: AtomicBool::new(false),
            changed: Notify::new(),
            waiting: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            wait_begun: Notify::new(),
        }
    }

    /// Bytes arrived on an idle connection: a head is being read now.
    fn on_read(&self) {
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.phase.store(HEAD, Ordering::Relaxed);
            self.deadline_ms.store(
                now_ms() + self.header_timeout.as_millis() as u64,
                Ordering::Relaxed,
            );
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.phase.store(BUSY, Ordering::SeqCst);
    }

    fn request_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.deadline_ms.store(
                now_ms() + self.idle_timeout.as_millis() as u64,
                Ordering::Relaxed,
            );
            // SeqCst with `expired`'s: either it sees IDLE, or this sees it parked.
            self.phase.store(IDLE, Ordering::SeqCst);
            if self.parked.load(Ordering::SeqCst) {
                self.changed.notify_one();
            }
        }
    }

    fn wait_begins(&self) {
        self.waits.fetch_add(1, Ordering::Relaxed);
        if self.waiting.fetch_add(1, Ordering::Relaxed) == 0 {
            self.wait_begun.notify_one();
        }
    }

    fn wait_ends(&self) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// Completes when an HTTP/2 answer has waited for the client's window for `limit` with
    /// no byte written to the socket meanwhile (nginx's `send_timeout`, which the socket's own
    /// timer cannot see: nothing blocks there, the server just has nothing it may send).
    async fn stalled(&self, limit: Duration) {
        loop {
            let begun = self.wait_begun.notified();
            if self.waiting.load(Ordering::Relaxed) == 0 {
                begun.await;
                continue;
            }
            let (waits, writes) = (
                self.waits.load(Ordering::Relaxed),
                self.writes.load(Ordering::Relaxed),
            );
            tokio::time::sleep(limit).await;
            // The same waits all along (none ended and began again), and no progress.
            if self.waiting.load(Ordering::Relaxed) > 0
                && self.waits.load(Ordering::Relaxed) == waits
                && self.writes.load(Ordering::Relaxed) == writes
            {
                return;
            }
        }
    }

    /// Completes when the connection has been idle or reading a head for too long; returns the
    /// phase that expired.
    ///
    /// Requests do not wake it: it sleeps at most the shorter timeout, and any deadline set
    /// meanwhile is at least that far from when it fell asleep; only the end of a request it
    /// found in flight wakes it. One timer, moved in place, serves all its waits.
    async fn expired(&self) -> u8 {
        let horizon = self.header_timeout.min(self.idle_timeout).as_millis() as u64;
        let timer = tokio::time::sleep_until(tokio::time::Instant::from_std(*EPOCH));
        tokio::pin!(timer);
        loop {
            let phase = self.phase.load(Ordering::SeqCst);
            if phase == BUSY {
                let changed = self.changed.notified();
                self.parked.store(true, Ordering::SeqCst);
                if self.phase.load(Ordering::SeqCst) == BUSY {
                    changed.await;
                }
                self.parked.store(false, Ordering::Relaxed);
                continue;
            }
            let deadline = self.deadline_ms.load(Ordering::Relaxed);
            let now = now_ms();
            if now >= deadline {
                return phase;
            }
            let wake = deadline.min(now + horizon);
            timer.as_mut().reset(tokio::time::Instant::from_std(
                *EPOCH + Duration::from_millis(wake),
            ));
            timer.as_mut().await;
        }
    }
}

/// One request the watchdog counts as in flight until this is dropped (with its answer's body).
struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// An answer's body, which holds its request in flight for the watchdog until hyper drops it,
/// and over HTTP/2 tells it when the body waits for the client's flow-control window.
struct Answer {
    inner: Body,
    in_flight: InFlight,
    http2: bool,
    /// Data was handed to hyper and the body not polled since.
    waiting: bool,
}

impl Answer {
    fn wait_ends(&mut self) {
        if std::mem::take(&mut self.waiting) {
            self.in_flight.0.wait_ends();
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.wait_ends();
    }
}

impl hyper::body::Body for Answer {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        this.wait_ends();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        // hyper's HTTP/2 stream polls a body again only when the client's window has room.
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if this.http2 && frame.is_data() {
                this.waiting = true;
                this.in_flight.0.wait_begins();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, telling the watchdog when bytes arrive and the HTTP/1 head reader what they are.
struct WatchedIo<I> {
    io: I,
    watch: Arc<Watch>,
    heads: Option<Arc<Heads>>,
    /// `http.send_timeout`, and the timer armed while a write waits for the client.
    send_timeout: Duration,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    remote: std::net::SocketAddr,
    /// The socket under `io` (TLS or not), reset at close when an answer was cut off.
    fd: RawFd,
    cut: Cut,
    /// The bytes read held what rr refuses on the wire (`heads::Refused`): every read fails.
    refused: Option<Refused>,
    /// The sending side is shut; what the client still sends is read and dropped.
    shut: bool,
    linger: Option<Linger>,
}

impl<I> Drop for WatchedIo<I> {
    fn drop(&mut self) {
        // `io` is still open here: fields are dropped after this.
        if self.cut.is_set() {
            abort::reset_on_close(self.fd);
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WatchedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        if let Some(refused) = this.refused {
            return Poll::Ready(Err(refused.into()));
        }
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.watch.on_read();
            if let Some(heads) = &this.heads {
                // hyper gets the bytes before what rr refuses and fails to read the rest: it
                // answers 400 (the body's read failed) and closes the connection.
                if let Err(refused) = heads.feed(&buf.filled()[before..]) {
                    buf.set_filled(before + refused.at);
                    this.refused = Some(refused);
                    if refused.at == 0 {
                        return Poll::Ready(Err(refused.into()));
                    }
                }
            }
        }
        poll
    }
}

impl<I> WatchedIo<I> {
    /// A write that cannot go on (the client's window is full) arms the send timer; any
    /// progress disarms it. Past `http.send_timeout` without progress the write fails, which
    /// ends the connection (nginx `send_timeout`).
    fn stalled<T>(
        &mut self,
        cx: &mut TaskContext<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if !poll.is_pending() {
            self.stall = None;
            self.watch.writes.fetch_add(1, Ordering::Relaxed);
            return poll;
        }
        let limit = self.send_timeout;
        let timer = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        tracing::warn!(
            remote = %self.remote,
            "the client read nothing for http.send_timeout ({limit:?}): connection closed"
        );
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client stopped reading",
        )))
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WatchedIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.stalled(cx, poll)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.stalled(cx, poll)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.stalled(cx, poll)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.shut {
            std::task::ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
            this.shut = true;
            if this.heads.as_ref().is_some_and(|heads| heads.mid_message()) {
                this.linger = Some(Linger::new());
            }
        }
        this.poll_linger(cx)
    }
}

/// How long a closing connection goes on reading what the client still sends, and the longest
/// pause in it (nginx's `lingering_time` and `lingering_timeout`).
const LINGER_TIME: Duration = Duration::from_secs(30);
const LINGER_PAUSE: Duration = Duration::from_secs(5);

/// The reading of a closing connection's last bytes, which are dropped.
struct Linger {
    pause: Pin<Box<tokio::time::Sleep>>,
    end: tokio::time::Instant,
}

impl Linger {
    fn new() -> Linger {
        let now = tokio::time::Instant::now();
        Linger {
            pause: Box::pin(tokio::time::sleep_until(now + LINGER_PAUSE)),
            end: now + LINGER_TIME,
        }
    }
}

impl<I: AsyncRead + Unpin> WatchedIo<I> {
    /// After its answer is out and its sending side shut, a connection whose client was still
    /// sending a body (rr answered from its head, or part-way: 413, a multipart 400) reads and
    /// drops what comes until the client stops. Closed with those bytes unread, the socket
    /// would be reset, and the client, still writing, would get the reset instead of the
    /// answer (nginx's `lingering_close`).
    fn poll_linger(&mut self, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let mut scratch = [0u8; 16 * 1024];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    let linger = self.linger.get_or_insert_with(Linger::new);
                    let now = tokio::time::Instant::now();
                    if now >= linger.end {
                        return Poll::Ready(Ok(()));
                    }
                    linger.pause.as_mut().reset(now + LINGER_PAUSE);
                }
                // The client is done, or gone.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return match self.linger.as_mut() {
                        Some(linger) => linger.pause.as_mut().poll(cx).map(Ok),
                        None => Poll::Ready(Ok(())),
                    }
                }
            }
        }
    }
}

/// Serves one connection until the client leaves, a timeout fires or the server shuts down.
pub async fn serve<I>(
    io: I,
    peer: Peer,
    protocol: Protocol,
    ctx: Arc<Context>,
    shutdown: Shutdown,
    _done: DoneGuard,
) where
    I: AsyncRead + AsyncWrite + AsRawFd + Unpin + Send + 'static,
{
    let http = ctx.config.http.clone();
    // Made at the connection's first HTTP/2 request: an HTTP/1 connection costs nothing more.
    let share = std::sync::OnceLock::new();
    let handler = move |req: Request<Incoming>, noted| {
        let share = (req.version() == http::Version::HTTP_2).then(|| {
            share
                .get_or_init(|| Share::new(ctx.config.http.max_queued_streams))
                .clone()
        });
        service::handle(ctx.clone(), peer, req, noted, share)
    };
    serve_with(io, peer, protocol, &http, Some(shutdown), handler).await
}

/// Serves one connection with `handler` (the app's service, or a side listener's: the status
/// and metrics addresses get the same limits and timeouts, and no `shutdown`: readiness is
/// asked while the server drains).
pub async fn serve_with<I, H, F>(
    io: I,
    peer: Peer,
    protocol: Protocol,
    http: &HttpConfig,
    mut shutdown: Option<Shutdown>,
    handler: H,
) where
    I: AsyncRead + AsyncWrite + AsRawFd + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, Noted) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let watch = Arc::new(Watch::new(http.read_header_timeout, http.idle_timeout));
    let max_head = http.max_header_size.max(8192);
    let heads = (protocol != Protocol::Http2).then(|| Arc::new(Heads::new(max_head)));
    let cut = Cut::default();
    let fd = io.as_raw_fd();
    let io = hyper_util::rt::TokioIo::new(WatchedIo {
        io,
        fd,
        cut: cut.clone(),
        watch: watch.clone(),
        heads: heads.clone(),
        send_timeout: http.send_timeout,
        stall: None,
        remote: peer.addr,
        refused: None,
        shut: false,
        linger: None,
    });
    let service = {
        let watch = watch.clone();
        // One handler per connection, called for each request: state it keeps is the
        // connection's (the share of PHP).
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let watch = watch.clone();
            watch.request_started();
            // One take per HTTP/1 request, in order (hyper serves them one at a time).
            let http1 = req.version() < http::Version::HTTP_2;
            let noted = match (http1, heads.as_ref()) {
                (true, Some(heads)) => heads.take(),
                _ => Noted::default(),
            };
            let cut = http1.then(|| cut.clone());
            // The request lasts until its answer's body is gone (sent, failed, or its stream
            // reset), not until its head is out: an HTTP/2 client keeps sending frames while a
            // long answer streams, and the connection must not take them for a new head.
            let in_flight = InFlight(watch);
            let response = handler(req, noted);
            async move {
                let response = response.await;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    abort::Watched::new(
                        Answer {
                            inner: body,
                            in_flight,
                            http2: !http1,
                            waiting: false,
                        },
                        cut,
                    )
                }))
            }
        })
    };
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        // The watchdog above enforces http.read_header_timeout, of any length. hyper's own
        // (30 s unless set) would cut a longer configured one short, and re-arms a timer for
        // every request head.
        .header_read_timeout(None)
        .max_buf_size(max_head);
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_header_list_size(http.max_header_size as u32)
        .max_concurrent_streams(http.max_concurrent_streams);
    let builder = match protocol {
        Protocol::Auto { h2c: false } => builder.http1_only(),
        Protocol::Http2 => builder.http2_only(),
        Protocol::Auto { h2c: true } => builder,
    };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let send_timeout = http.send_timeout;
    let stalled = || {
        let watch = watch.clone();
        Woken::new(async move { watch.stalled(send_timeout).await })
    };
    // The watchdog's waits, polled only when one of them wakes (see `woken`).
    let mut alarm = Woken::new({
        let (watch, stalled) = (watch.clone(), stalled());
        async move {
            tokio::select! {
                phase = watch.expired() => Alarm::Expired(phase),
                () = stalled => Alarm::Stalled,
                _ = triggered(&mut shutdown) => Alarm::Closing,
            }
        }
    });
    let alarm = tokio::select! {
        result = conn.as_mut() => return ended(result, peer),
        alarm = &mut alarm => alarm,
    };
    match alarm {
        Alarm::Expired(HEAD) => {
            tracing::debug!(remote = %peer.addr, "request head not received in time: closing");
            return;
        }
        Alarm::Expired(_) | Alarm::Closing => conn.as_mut().graceful_shutdown(),
        Alarm::Stalled => return stalled_warning(peer, send_timeout),
    }
    // Closing: the answer in progress may still stall.
    tokio::select! {
        result = conn.as_mut() => ended(result, peer),
        () = stalled() => stalled_warning(peer, send_timeout),
    }
}

/// What ended the wait of a connection that was not closing.
enum Alarm {
    /// Idle or reading a head for too long: the phase that expired.
    Expired(u8),
    /// An HTTP/2 answer waited for the client's window for `http.send_timeout`.
    Stalled,
    /// The server shuts down.
    Closing,
}

fn ended(result: Result<(), Box<dyn std::error::Error + Send + Sync>>, peer: Peer) {
    if let Err(e) = result {
        tracing::debug!(remote = %peer.addr, "connection ended: {e}");
    }
}

fn stalled_warning(peer: Peer, send_timeout: Duration) {
    tracing::warn!(
        remote = %peer.addr,
        "the client took no data for http.send_timeout ({send_timeout:?}) (its HTTP/2 flow-control window stayed shut): connection closed"
    );
}

async fn triggered(shutdown: &mut Option<Shutdown>) {
    match shutdown {
        Some(shutdown) => shutdown.triggered().await,
        None => std::future::pending().await,
    }
}
