//! Send-ahead (`http.pool.send_ahead`, docs/pool.md): the requests written to one worker and
//! not yet answered, oldest first, and the answer under way for the oldest.
//!
//! A worker runs its requests strictly in order and starts the next only after the previous
//! answer ended. So while an answer is awaited, every request behind it has not started: if the
//! worker declines them (it retired) or dies, they can run on another worker, unchanged. Only
//! the oldest may have started; a worker that dies costs that one request, as without
//! send-ahead.
use crate::dispatch::answer::{self, AnswerLimits, AnswerSender};
use crate::dispatch::{Job, Reply};
use crate::ipc::claim::{self, Claim};
use crate::ipc::Frame;
use crate::request::form::Tree;
use crate::request::multipart::Upload;
use crate::request::spool::RequestBody;
use crate::request::RequestData;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Whether a worker holding `inflight` requests (the one it runs included), whose answers lately
/// took `answers_take` each, may be sent one more: at its recent pace, what the request would
/// wait behind stays under `wait` (`http.pool.send_ahead_wait`): behind slow ones it would
/// wait longer than for the next free worker.
pub fn quick_enough(answers_take: Duration, inflight: u32, wait: Duration) -> bool {
    answers_take.saturating_mul(inflight.max(1)) < wait
}

/// How long the request a worker runs may take before the requests sent ahead behind it go
/// back to the line (another worker may take them sooner): ten times `send_ahead_wait`.
pub fn recall_after(wait: Duration) -> Duration {
    wait.saturating_mul(10)
}
/// The largest request body sent ahead (uploads never are).
pub const MAX_BODY: usize = 16 * 1024;
/// Encoded requests waiting unread in one worker's socket, at most. Well under a unix socket's
/// buffer, so writing one never blocks while the worker itself writes a long answer.
pub const MAX_BYTES: usize = 64 * 1024;

/// Whether a request may be sent to a worker that is busy: no uploads, a small body.
pub fn small(request: &RequestData) -> bool {
    request.uploads.is_empty()
        && request.spooled_fields.is_none()
        && request
            .body
            .in_memory()
            .is_some_and(|body| body.len() <= MAX_BODY)
        // Multipart fields without files come parsed, with no raw body to measure.
        && (request.form.is_none() || !request.body.is_empty())
}

/// Quick answers, smoothed: a quarter of each new answer's time.
pub fn smooth(previous: Option<Duration>, took: Duration) -> Duration {
    match previous {
        Some(p) => (p * 3 + took) / 4,
        None => took,
    }
}

/// What one frame did to the answer under way.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// More frames of this answer follow (a streamed body).
    More,
    /// The answer ended after `took` (from the start of its request); the worker takes the
    /// next request, if it was sent one.
    Done { took: Duration },
    /// Not a frame that belongs here: the worker speaks nonsense.
    Broken,
}

pub struct InFlight {
    /// Written, and not answered yet; with each request's encoded size and number (see
    /// [`crate::ipc::claim`]).
    sent: VecDeque<(Job, usize, u32)>,
    /// The number of the last request written.
    written: u32,
    /// The oldest request's answer, once its first frame came.
    open: Option<Open>,
    /// When the oldest request started: written to an idle worker, or the answer before it
    /// ended.
    since: Option<Instant>,
    /// The files uploaded with the request last answered: they live (the worker may still
    /// refer to them, as in embedded mode) until it sends `Released` or the next answer starts.
    uploads: Tree<Upload>,
    /// The spooled body of that request, kept as long as its uploads.
    body: RequestBody,
    /// How long one chunk of a streamed answer may wait for its client.
    send_timeout: Duration,
    limits: AnswerLimits,
}

impl InFlight {
    pub fn new(send_timeout: Duration, limits: AnswerLimits) -> InFlight {
        InFlight {
            sent: VecDeque::new(),
            written: 0,
            open: None,
            since: None,
            uploads: Tree::new(),
            body: RequestBody::default(),
            send_timeout,
            limits,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty() && self.open.is_none()
    }

    /// When the request the worker is on started (`exec_ttl` counts from here).
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// Whether a request of `bytes` may be written behind those in flight.
    pub fn fits(&self, bytes: usize) -> bool {
        self.sent.iter().map(|(_, b, _)| b).sum::<usize>() + bytes <= MAX_BYTES
    }

    /// A request was written to the worker.
    pub fn push(&mut self, job: Job, bytes: usize) {
        if self.is_empty() {
            self.since = Some(Instant::now());
        }
        self.written = self.written.wrapping_add(1);
        self.sent.push_back((job, bytes, self.written));
    }

    /// Requests waiting behind the one the worker is on.
    pub fn behind(&self) -> usize {
        match self.open {
            Some(_) => self.sent.len(),
            None => self.sent.len().saturating_sub(1),
        }
    }

    /// Takes back every request the worker has not started (the one it is on ran long): they
    /// never run there (the claim word says so to the worker), and go to another worker.
    pub fn recall(&mut self, claim: &Claim) -> Vec<Job> {
        let Some(&(_, _, last)) = self.sent.back() else {
            return Vec::new();
        };
        let Some(started) = claim.revoke(last) else {
            return Vec::new();
        };
        let mut back = Vec::new();
        while self
            .sent
            .back()
            .is_some_and(|(_, _, seq)| claim::after(*seq, started))
        {
            if let Some((job, _, _)) = self.sent.pop_back() {
                back.push(job);
            }
        }
        back.reverse();
        if self.is_empty() {
            self.since = None;
        }
        back
    }

    /// Feeds one answer frame; the first frame of an answer belongs to the oldest request.
    pub async fn step(&mut self, frame: Frame) -> Step {
        if self.open.is_none() {
            let Some((job, _, _)) = self.sent.pop_front() else {
                return Step::Broken;
            };
            self.uploads = job.request.uploads;
            self.body = job.request.body;
            self.open = Some(Open {
                reply: Some(job.reply),
                stream: Stream::None,
                send_timeout: self.send_timeout,
                limits: self.limits.clone(),
            });
        }
        let Some(open) = self.open.as_mut() else {
            return Step::Broken;
        };
        match open.step(frame).await {
            true if open.reply.is_none() && open.streaming() => Step::More,
            true => {
                self.open = None;
                let now = Instant::now();
                let took = self.since.map_or(Duration::ZERO, |s| now - s);
                self.since = (!self.sent.is_empty()).then_some(now);
                Step::Done { took }
            }
            false => Step::Broken,
        }
    }

    /// The worker is done with the request last answered (`Released`): its uploads and
    /// spooled body go now. Between answers only: in the middle of one they are that
    /// answer's request's, and stay.
    pub fn release(&mut self) {
        if self.open.is_none() {
            self.uploads = Tree::new();
            self.body = RequestBody::default();
        }
    }

    /// The worker is gone (or killed): the request it was on gets `reply`; the requests behind
    /// it never started and are handed back.
    pub fn fail(&mut self, reply: Reply, why: &str) -> Vec<Job> {
        match self.open.take() {
            Some(mut open) => open.fail(reply, why),
            None => {
                if let Some((job, _, _)) = self.sent.pop_front() {
                    let _ = job.reply.send(reply);
                }
            }
        }
        self.since = None;
        self.sent.drain(..).map(|(job, _, _)| job).collect()
    }

    /// The worker declined everything it was sent (between two requests): all of it goes back.
    /// None when an answer is under way: a worker cannot decline in the middle of one.
    pub fn decline(&mut self) -> Option<Vec<Job>> {
        if self.open.is_some() {
            return None;
        }
        self.since = None;
        Some(self.sent.drain(..).map(|(job, _, _)| job).collect())
    }
}

/// The way back to the client while an answer is under way.
struct Open {
    /// Until the head is sent.
    reply: Option<oneshot::Sender<Reply>>,
    /// The streamed body, once its head was sent.
    stream: Stream,
    /// How long one chunk may wait for the client (`http.send_timeout`).
    send_timeout: Duration,
    /// Where a streamed body waits for its client.
    limits: AnswerLimits,
}

/// Where a streamed body's chunks go.
enum Stream {
    /// No streamed body (yet), or it ended.
    None,
    Open(AnswerSender),
    /// The client left or stopped reading: the worker's remaining chunks are dropped, so it
    /// finishes at its own pace and is free again.
    Discarding,
}

impl Open {
    /// One frame of the answer; false when it does not belong to an answer at this point.
    /// The answer is complete when the head was sent and no stream is under way.
    async fn step(&mut self, frame: Frame) -> bool {
        if self.reply.is_none() {
            // Streaming: chunks until the end.
            return match frame {
                Frame::Chunk(bytes) => {
                    // Queued at once (memory, then a temp file): the worker goes on however
                    // slow the client. Only a full spool holds it, for at most send_timeout per
                    // chunk; a client that left or stopped reading gets nothing more.
                    if let Stream::Open(tx) = &self.stream {
                        // A frame's bytes share the frame reader's whole buffer: a chunk that
                        // waits for a slow client must not pin it (2 MB per stalled answer).
                        let bytes = bytes::Bytes::copy_from_slice(&bytes);
                        if !tx.deliver(bytes, self.send_timeout).await {
                            self.stream = Stream::Discarding;
                        }
                    }
                    true
                }
                Frame::StreamEnd => {
                    if let Stream::Open(tx) = std::mem::replace(&mut self.stream, Stream::None) {
                        tx.end();
                    }
                    true
                }
                Frame::StreamAbort => {
                    self.fail(Reply::Crashed, "the worker aborted the stream");
                    true
                }
                _ => false,
            };
        }
        let whole = match frame.into_reply().map_err(|frame| *frame) {
            Ok(whole) => whole,
            Err(Frame::StreamHead { status, headers }) => {
                let (tx, chunks) = answer::channel(self.limits.clone());
                self.send(Reply::Stream {
                    status,
                    headers,
                    chunks,
                });
                self.stream = Stream::Open(tx);
                return true;
            }
            Err(_) => return false,
        };
        self.send(whole);
        true
    }

    /// Whether a streamed body is under way.
    fn streaming(&self) -> bool {
        !matches!(self.stream, Stream::None)
    }

    /// The worker is gone: an error answer, or a stream cut off (its sender dropped before
    /// the end) so the client sees it is incomplete.
    fn fail(&mut self, reply: Reply, why: &str) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(reply);
        }
        if let Stream::Open(_) = std::mem::replace(&mut self.stream, Stream::None) {
            tracing::debug!("a streamed answer is cut off: {why}");
        }
    }

    fn send(&mut self, reply: Reply) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(reply);
        }
    }
}

#[cfg(test)]
mod tests;
