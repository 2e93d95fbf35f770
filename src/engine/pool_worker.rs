//! The pool worker's engine: the master runs the HTTP server; this process receives requests
//! and sends answers as frames over the inherited socketpair (see docs/pool.md). Blocking I/O on
//! the PHP thread only: no runtime, no threads in a worker.
use super::template::Outcome;
use super::{RespondError, Wait};
use crate::config::Config;
use crate::dispatch::Reply;
use crate::ipc::claim::Claim;
use crate::ipc::{self, ChannelError, Frame, FrameReader, ReadError};
use crate::request::form::Tree;
use crate::request::multipart::Upload;
use crate::request::spool::RequestBody;
use crate::request::RequestData;
use crate::runtime::scheduling::ThreadPolicy;
use crate::server::Bound;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

/// Answers larger than this travel to the master in frames of this size.
const SPLIT_ABOVE: usize = 256 * 1024;

/// The channel named by `RR_POOL_FD`, when this process is a pool worker.
pub fn inherited_channel() -> Result<Option<UnixStream>, ChannelError> {
    let Ok(value) = std::env::var(ipc::FD_ENV) else {
        return Ok(None);
    };
    let fd: RawFd = value
        .parse()
        .map_err(|_| ChannelError::NotANumber(value.clone()))?;
    // A child of a worker inherits the variable but not the descriptor (close-on-exec): the
    // number must name an open unix socket, or this is not a pool worker's process.
    // SAFETY: fstat only fills the zeroed stat buffer we own; it fails on a closed descriptor.
    let is_socket = fd >= 3
        && unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK
        };
    if !is_socket {
        return Err(ChannelError::NoSocket(fd));
    }
    // SAFETY: the master opened this socketpair end for us and exec handed it down; nothing
    // else in this process owns it. Close it on exec so the script's own children don't get it.
    let stream = unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        UnixStream::from_raw_fd(fd)
    };
    Ok(Some(stream))
}

/// Where a pool worker process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The template: its first `wait` forks workers instead of serving.
    Template,
    /// Before its first `wait` (the master waits for `Ready`); `retire` was asked meanwhile.
    Booting { retire: bool },
    /// Serving requests; `retired`: it told the master to replace it after this answer.
    Serving { retired: bool },
    /// It sent `Declined`: it starts nothing more, and requests still arriving are the
    /// master's to hand to other workers.
    Declined,
    /// The master said stop, or the channel broke: `wait` returns `Stop` from now on.
    Stopped,
}

enum Pending {
    Idle,
    Waiting,
    Streaming,
    StreamEnded,
}

pub struct PoolWorker {
    config: Arc<Config>,
    channel: UnixStream,
    reader: FrameReader,
    outbuf: BytesMut,
    pending: Pending,
    uploads: Tree<Upload>,
    /// The request last returned came with uploads or a spooled body, which the master keeps
    /// until this worker says the request is over (`Released`).
    holds_files: bool,
    bound: Vec<Bound>,
    phase: Phase,
    /// Requests that arrived while `workers()` waited for its answer (the master may send a
    /// request ahead while this one runs; see docs/pool.md, "Send-ahead"), with their numbers.
    deferred: VecDeque<(u32, Box<RequestData>)>,
    /// `Request` frames read so far: the number of the last one (see [`Claim`]).
    received: u32,
    /// Shared with the master: a request sent ahead starts only if the master has not taken
    /// it back. None in the template.
    claim: Option<Claim>,
    /// Forked from the template (not started as a process of its own): it shares the memory
    /// the template mapped shared before the fork (APCu's) with its siblings.
    forked: bool,
}

impl PoolWorker {
    pub fn connect(config: Arc<Config>, channel: UnixStream) -> PoolWorker {
        // The template's forks inherit it; a worker is one thread, and threads it starts
        // later inherit it too.
        ThreadPolicy {
            setting: "http.pool.worker_scheduling",
            scheduling: config.pool.worker_scheduling,
        }
        .apply_or_warn();
        let bound = std::env::var(ipc::ADDRS_ENV)
            .unwrap_or_default()
            .split(',')
            .filter_map(|a| {
                let (scheme, addr) = a.split_once("://")?;
                Some(Bound {
                    addr: addr.parse().ok()?,
                    tls: scheme == "https",
                })
            })
            .collect();
        PoolWorker {
            config,
            channel,
            reader: FrameReader::new(16 * 1024),
            outbuf: BytesMut::with_capacity(64 * 1024),
            pending: Pending::Idle,
            uploads: Tree::new(),
            holds_files: false,
            bound,
            phase: match super::template::is_template() {
                true => Phase::Template,
                false => Phase::Booting { retire: false },
            },
            deferred: VecDeque::new(),
            received: 0,
            claim: Claim::inherited(),
            forked: false,
        }
    }

    pub fn bound(&self) -> &[Bound] {
        &self.bound
    }

    /// The template, before it forked (a forked worker's copy says false).
    pub fn is_template(&self) -> bool {
        self.phase == Phase::Template
    }

    /// A worker forked from the template (false for the template and a re-executed worker).
    pub fn forked(&self) -> bool {
        self.forked
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn uploads(&self) -> &Tree<Upload> {
        &self.uploads
    }

    fn send(&mut self, frame: &Frame) {
        if self.phase == Phase::Stopped {
            return;
        }
        self.outbuf.clear();
        frame.encode(&mut self.outbuf);
        if let Err(e) = self.channel.write_all(&self.outbuf) {
            tracing::error!("rr pool worker: the master is gone ({e}): stopping");
            self.phase = Phase::Stopped;
        }
    }

    pub fn wait(&mut self, tick: Duration) -> Wait {
        match self.pending {
            Pending::Waiting => {
                tracing::warn!(
                    "waitRequest() called before the previous request was answered: it gets a 500"
                );
                self.send(&Frame::Error("the request was not answered".into()));
            }
            Pending::Streaming => self.send(&Frame::StreamAbort),
            Pending::Idle | Pending::StreamEnded => {}
        }
        self.pending = Pending::Idle;
        self.uploads = Tree::new();
        // The script is done with the last request: its temporary files can go now, not when
        // this worker's next answer starts (which may be hours away on a quiet server).
        if std::mem::take(&mut self.holds_files) {
            self.send(&Frame::Released);
        }
        if self.phase == Phase::Template {
            let connections = self.config.pool.template_connections;
            return match super::template::serve(&mut self.channel, connections) {
                Outcome::Worker(channel) => {
                    // A forked worker: its own channel and claim word; the next wait says
                    // Ready.
                    self.channel = channel;
                    self.claim = Claim::inherited();
                    self.phase = Phase::Booting { retire: false };
                    self.forked = true;
                    Wait::Forked
                }
                Outcome::Stop => {
                    self.phase = Phase::Stopped;
                    Wait::Stop
                }
            };
        }
        if let Phase::Booting { retire } = self.phase {
            self.phase = Phase::Serving { retired: retire };
            self.send(&Frame::Ready);
            if retire {
                self.send(&Frame::Retire);
            }
        }
        // Retired: requests sent ahead to this worker are not run here. Between requests, so
        // nothing unanswered has started.
        if self.phase == (Phase::Serving { retired: true }) {
            self.decline();
        }
        loop {
            if self.phase == Phase::Stopped || crate::server::stop_requested() {
                self.phase = Phase::Stopped;
                return Wait::Stop;
            }
            let next = match self.deferred.pop_front() {
                Some((seq, request)) => Ok(Some((Frame::Request(request), seq))),
                None => self.next(tick),
            };
            match next {
                // Declined: the master hands it to another worker.
                Ok(Some((Frame::Request(_), _))) if self.phase == Phase::Declined => {}
                // Taken back by the master: it runs on another worker.
                Ok(Some((Frame::Request(_), seq))) if !self.claim(seq) => {}
                Ok(Some((Frame::Request(mut request), _))) => {
                    self.uploads = std::mem::take(&mut request.uploads);
                    self.holds_files = !self.uploads.is_empty()
                        || matches!(request.body, RequestBody::File { .. });
                    self.pending = Pending::Waiting;
                    return Wait::Request(request);
                }
                Ok(Some((Frame::Stop, _))) => self.phase = Phase::Stopped,
                Ok(Some((other, _))) => {
                    tracing::error!("rr pool worker: unexpected frame {other:?}: stopping");
                    self.phase = Phase::Stopped;
                }
                Err(ReadError::Closed) => self.phase = Phase::Stopped,
                Err(e) => {
                    tracing::error!("rr pool worker: {e}: stopping");
                    self.phase = Phase::Stopped;
                }
                Ok(None) => return Wait::Tick,
            }
        }
    }

    /// The next frame that arrives within `tick`, numbered when it is a request; `Ok(None)`
    /// when none did (or a signal came).
    fn next(&mut self, tick: Duration) -> Result<Option<(Frame, u32)>, ReadError> {
        let channel = &mut self.channel;
        let frame = self
            .reader
            .next_blocking(|buf| read_within(channel, tick, buf))?;
        Ok(frame.map(|frame| {
            if let Frame::Request(_) = frame {
                self.received = self.received.wrapping_add(1);
            }
            (frame, self.received)
        }))
    }

    /// Whether request `seq` may start here (the master did not take it back).
    fn claim(&self, seq: u32) -> bool {
        self.claim.as_ref().is_none_or(|claim| claim.start(seq))
    }

    pub fn respond(
        &mut self,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        end: bool,
    ) -> Result<(), RespondError> {
        match self.pending {
            Pending::Idle => Err(RespondError::NoRequest),
            Pending::StreamEnded => Err(RespondError::StreamEnded),
            Pending::Waiting if end && body.len() > SPLIT_ABOVE => {
                // A large answer goes as a stream of bounded frames, so the master never holds
                // it whole; its length is declared as a whole answer's would be.
                let mut headers = headers;
                let bodiless = status.is_informational()
                    || status == StatusCode::NO_CONTENT
                    || status == StatusCode::NOT_MODIFIED;
                if !bodiless && !headers.contains_key(http::header::CONTENT_LENGTH) {
                    headers.insert(http::header::CONTENT_LENGTH, body.len().into());
                }
                self.pending = Pending::Streaming;
                self.send(&Frame::StreamHead { status, headers });
                let mut rest = body;
                while rest.len() > SPLIT_ABOVE {
                    self.chunk(rest.split_to(SPLIT_ABOVE), false);
                }
                self.chunk(rest, true);
                self.pending = Pending::Idle;
                Ok(())
            }
            Pending::Waiting if end => {
                self.pending = Pending::Idle;
                self.send(&Frame::Full {
                    status,
                    headers,
                    body,
                });
                Ok(())
            }
            Pending::Waiting => {
                self.pending = Pending::Streaming;
                self.send(&Frame::StreamHead { status, headers });
                self.chunk(body, false);
                Ok(())
            }
            Pending::Streaming => {
                self.chunk(body, end);
                Ok(())
            }
        }
    }

    fn chunk(&mut self, body: Bytes, end: bool) {
        if !body.is_empty() {
            self.send(&Frame::Chunk(body));
        }
        if end {
            self.send(&Frame::StreamEnd);
            self.pending = Pending::StreamEnded;
        }
    }

    pub fn reply(&mut self, reply: Reply) -> Result<(), RespondError> {
        match self.pending {
            Pending::Waiting => {}
            Pending::Idle => return Err(RespondError::NoRequest),
            Pending::StreamEnded => return Err(RespondError::StreamEnded),
            Pending::Streaming => return Err(RespondError::Streaming),
        }
        // A body fed by another thread cannot cross processes; nothing in rr sends one here.
        let frame = Frame::from_reply(reply).unwrap_or_else(|_| {
            Frame::Error("this answer cannot be sent from a pool worker".into())
        });
        self.pending = Pending::Idle;
        self.send(&frame);
        Ok(())
    }

    /// See [`super::Worker::fail`].
    pub fn fail(&mut self, message: String) -> Result<(), RespondError> {
        if let Pending::Streaming = self.pending {
            tracing::error!("worker error: {message}: the streamed answer is cut off");
            self.send(&Frame::StreamAbort);
            self.pending = Pending::StreamEnded;
            return Ok(());
        }
        self.reply(Reply::WorkerError(message))
    }

    /// The pool's workers, asked of the master (which answers between our frames).
    pub fn workers(&mut self) -> Vec<crate::ipc::WorkerInfo> {
        // The template's channel carries fork orders only; it has no workers of its own yet.
        if self.phase == Phase::Template {
            return Vec::new();
        }
        self.send(&Frame::ListWorkers);
        loop {
            match self.next(Duration::from_secs(1)) {
                Ok(Some((Frame::Workers(json), _))) => {
                    return serde_json::from_str(&json).unwrap_or_default()
                }
                // Sent ahead while this request runs: taken by the next `wait`.
                Ok(Some((Frame::Request(request), seq))) => self.deferred.push_back((seq, request)),
                Ok(Some((other, _))) => {
                    tracing::error!("rr pool worker: unexpected frame {other:?}: stopping");
                    self.phase = Phase::Stopped;
                }
                Err(_) => self.phase = Phase::Stopped,
                Ok(None) => {}
            }
            if self.phase == Phase::Stopped {
                return Vec::new();
            }
        }
    }

    /// Asks the master to replace this worker after the current answer. False in the template
    /// (it serves nothing, and its children must not inherit the wish).
    pub fn retire(&mut self) -> bool {
        match self.phase {
            Phase::Template => return false,
            Phase::Booting { .. } => self.phase = Phase::Booting { retire: true },
            Phase::Serving { retired: false } => {
                self.phase = Phase::Serving { retired: true };
                self.send(&Frame::Retire);
            }
            Phase::Serving { retired: true } | Phase::Declined | Phase::Stopped => {}
        }
        true
    }

    /// Asks the master for a reload of the pool (a new generation replaces every worker; the
    /// master starts one per generation however many workers ask). False in the template (it
    /// serves nothing and has no place in a generation's workers) and once the master is gone
    /// or said stop.
    pub fn reload(&mut self) -> bool {
        match self.phase {
            Phase::Template | Phase::Stopped => false,
            Phase::Booting { .. } | Phase::Serving { .. } | Phase::Declined => {
                self.send(&Frame::Reload);
                self.phase != Phase::Stopped
            }
        }
    }

    /// Tells the master this worker runs no more requests (once).
    fn decline(&mut self) {
        if let Phase::Serving { .. } = self.phase {
            self.send(&Frame::Declined);
            if self.phase != Phase::Stopped {
                self.phase = Phase::Declined;
            }
        }
    }

    pub fn has_pending(&self) -> bool {
        matches!(self.pending, Pending::Waiting | Pending::Streaming)
    }

    /// The master decides when workers stop; a worker's own `stop()` just leaves its loop.
    pub fn stop(&self) {
        crate::server::request_stop();
    }

    pub fn is_stopping(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// A request left unanswered is the master's to answer (502) when the channel closes; a
    /// stream in progress is cut off explicitly.
    pub fn finish(mut self) {
        if let Pending::Streaming = self.pending {
            self.send(&Frame::StreamAbort);
        }
        if self.has_pending() {
            tracing::error!("the worker script ended while a request was pending");
        } else if let Phase::Serving { .. } = self.phase {
            // Between requests: whatever was sent ahead never started, and runs elsewhere.
            self.decline();
        }
    }
}

/// Reads what arrives on `channel` within `tick`: `WouldBlock` when nothing did (or a signal
/// came: either way the caller gets to run handlers).
fn read_within(channel: &mut UnixStream, tick: Duration, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut poll = libc::pollfd {
        fd: channel.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = tick.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd on our own descriptor, for the duration of the call.
    if unsafe { libc::poll(&mut poll, 1, ms) } <= 0 {
        return Err(std::io::ErrorKind::WouldBlock.into());
    }
    channel.read(buf)
}
