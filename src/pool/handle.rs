//! One task per worker process: it waits for the worker to boot, writes each request to it,
//! turns the answer frames back into a [`Reply`] (the master finishes offloads: files, Velox,
//! streams), enforces `exec_ttl`, and reports to the supervisor.
use super::process::Process;
use super::supervisor::Control;
use crate::dispatch::{Job, Reply};
use crate::ipc::Frame;
use crate::request::form::Tree;
use crate::request::multipart::Upload;
use crate::request::RequestData;
use crate::stream::FileReply;
use crate::velox::BuildOrder;
use bytes::BytesMut;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// What the supervisor asks of a worker.
pub enum Command {
    Run(Box<Job>),
    /// Finish: send `Stop`, wait `destroy_timeout`, then kill.
    Stop,
}

/// Why a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It died before its first `waitRequest()`.
    BootFailed,
    /// It died (crash, fatal error, exit(), kill) while running a request or idle.
    Crashed,
    /// Killed: a request ran past `exec_ttl`.
    ExecTimeout,
    /// Stopped on the supervisor's order.
    Stopped,
}

pub enum Event {
    Ready {
        id: u64,
    },
    /// Answered a request; `rss` in bytes when memory is watched, `busy` how long the worker
    /// took (from its start on the request to the end of the answer).
    Done {
        id: u64,
        rss: Option<u64>,
        busy: Duration,
    },
    /// A request sent ahead to this worker that it never started (it died first): the
    /// supervisor dispatches it again.
    Returned(Box<Job>),
    Exited {
        id: u64,
        end: End,
        detail: String,
    },
}

pub struct Limits {
    /// Answers `RR\workers()` asked from inside a request.
    pub control: mpsc::UnboundedSender<Control>,
    pub boot_timeout: Duration,
    pub exec_ttl: Option<Duration>,
    pub destroy_timeout: Duration,
    pub watch_memory: bool,
}

/// The worker's side of the channel, frame by frame (cancel-safe: bytes stay in `buf`).
struct Channel {
    process: Process,
    control: mpsc::UnboundedSender<Control>,
    buf: BytesMut,
    out: BytesMut,
}

impl Channel {
    /// The next frame; `None` when the worker closed the channel (it exited) or broke it.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            match Frame::split(&mut self.buf) {
                Ok(Some(Frame::ListWorkers)) => {
                    if !self.list_workers().await {
                        return None;
                    }
                    continue;
                }
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(pid = self.process.pid, "worker channel: {e}");
                    return None;
                }
            }
            self.buf.reserve(64 * 1024);
            match self.process.channel.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Like [`Channel::next`], but also returns when the supervisor sends a command (only while
    /// `listen`): the way a request sent ahead reaches the worker while it still works on the
    /// current one. Cancel-safe in the same way: a partial frame stays in `buf`.
    async fn next_or_command(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        listen: bool,
    ) -> Incoming {
        loop {
            match Frame::split(&mut self.buf) {
                Ok(Some(Frame::ListWorkers)) => {
                    if !self.list_workers().await {
                        return Incoming::Frame(None);
                    }
                    continue;
                }
                Ok(Some(frame)) => return Incoming::Frame(Some(frame)),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(pid = self.process.pid, "worker channel: {e}");
                    return Incoming::Frame(None);
                }
            }
            self.buf.reserve(64 * 1024);
            tokio::select! {
                biased;
                read = self.process.channel.read_buf(&mut self.buf) => match read {
                    Ok(0) | Err(_) => return Incoming::Frame(None),
                    Ok(_) => {}
                },
                command = commands.recv(), if listen => return Incoming::Command(command),
            }
        }
    }

    /// A worker asked for the workers list (it blocks until the answer arrives).
    async fn list_workers(&mut self) -> bool {
        let (tx, rx) = oneshot::channel();
        let _ = self.control.send(Control::List(tx));
        let list = rx.await.unwrap_or_default();
        let json = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
        self.send(&Frame::Workers(json)).await
    }

    async fn send_request(&mut self, request: &RequestData) -> bool {
        self.out.clear();
        Frame::encode_request(request, &mut self.out);
        self.process.channel.write_all(&self.out).await.is_ok()
    }

    async fn send(&mut self, frame: &Frame) -> bool {
        self.out.clear();
        frame.encode(&mut self.out);
        self.process.channel.write_all(&self.out).await.is_ok()
    }
}

enum Incoming {
    Frame(Option<Frame>),
    Command(Option<Command>),
}

/// Runs worker `id` until it ends; the last event sent is always `Exited`.
pub async fn run(
    id: u64,
    process: Process,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    limits: Limits,
) {
    let mut ch = Channel {
        process,
        control: limits.control.clone(),
        buf: BytesMut::with_capacity(64 * 1024),
        out: BytesMut::with_capacity(64 * 1024),
    };
    let end = lifetime(id, &mut ch, &mut commands, &events, &limits).await;
    if end != End::Stopped {
        ch.process.kill();
    }
    let status = ch.process.child.wait().await;
    let mut detail = match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    // Its last lines reach the log before it counts as gone (and before the master exits).
    let tail = ch.process.output_tail().await;
    if end == End::BootFailed {
        detail = format!("{detail}; its last output:\n{tail}");
    }
    // Requests sent after the end never reached the worker: they go back to the queue.
    commands.close();
    while let Ok(command) = commands.try_recv() {
        if let Command::Run(job) = command {
            let _ = events.send(Event::Returned(job));
        }
    }
    let _ = events.send(Event::Exited { id, end, detail });
}

async fn lifetime(
    id: u64,
    ch: &mut Channel,
    commands: &mut mpsc::Receiver<Command>,
    events: &mpsc::UnboundedSender<Event>,
    limits: &Limits,
) -> End {
    match tokio::time::timeout(limits.boot_timeout, ch.next()).await {
        Ok(Some(Frame::Ready)) => {
            let _ = events.send(Event::Ready { id });
        }
        Ok(_) => return End::BootFailed,
        Err(_) => {
            tracing::error!(
                pid = ch.process.pid,
                "worker did not boot within {:?}",
                limits.boot_timeout
            );
            return End::BootFailed;
        }
    }
    // The uploads of the last request live until the next one is taken, as in embedded mode.
    let mut uploads: Tree<Upload> = Tree::new();
    let mut ahead = Ahead::default();
    loop {
        let job = match ahead.job.take() {
            Some(job) => job,
            None if ahead.stop => return stop(ch, uploads, limits).await,
            None => {
                let command = tokio::select! {
                    command = commands.recv() => command,
                    // Idle: anything from the worker now is either its exit or a protocol error.
                    frame = ch.next() => {
                        if let Some(frame) = frame {
                            tracing::error!(pid = ch.process.pid, "unexpected frame from an idle worker: {frame:?}");
                        }
                        return End::Crashed;
                    }
                };
                match command {
                    Some(Command::Run(job)) => {
                        let job = Sent::from(*job);
                        if !ch.send_request(&job.request).await {
                            job.fail(Reply::Crashed, "the worker died before the request");
                            return End::Crashed;
                        }
                        job
                    }
                    Some(Command::Stop) | None => return stop(ch, uploads, limits).await,
                }
            }
        };
        let started = Instant::now();
        let Sent {
            reply,
            uploads: own,
            ..
        } = job;
        uploads = own;
        let served = serve(ch, reply, commands, &mut ahead, limits.exec_ttl).await;
        if let Err(end) = served {
            // A request sent ahead was never started: it goes back to the queue.
            if let Some(job) = ahead.job.take() {
                let _ = events.send(Event::Returned(Box::new(job.into_job())));
            }
            return end;
        }
        let rss = limits.watch_memory.then(|| rss(ch.process.pid)).flatten();
        let busy = started.elapsed();
        let _ = events.send(Event::Done { id, rss, busy });
    }
}

/// Send `Stop`, wait `destroy_timeout`, then kill.
async fn stop(ch: &mut Channel, uploads: Tree<Upload>, limits: &Limits) -> End {
    drop(uploads);
    ch.send(&Frame::Stop).await;
    let exited = tokio::time::timeout(limits.destroy_timeout, ch.process.child.wait());
    if exited.await.is_err() {
        tracing::warn!(
            pid = ch.process.pid,
            "worker did not stop within destroy_timeout: killing it"
        );
        ch.process.kill();
    }
    End::Stopped
}

/// A request written to the worker, and what the master keeps of it.
struct Sent {
    request: Box<RequestData>,
    reply: oneshot::Sender<Reply>,
    /// The files; the request holds unowned copies of the entries.
    uploads: Tree<Upload>,
    queued_at: Instant,
}

impl From<Job> for Sent {
    fn from(job: Job) -> Sent {
        let Job {
            mut request,
            reply,
            queued_at,
        } = job;
        // The worker needs the upload names and paths; the files stay the master's.
        let uploads = std::mem::take(&mut request.uploads);
        request.uploads = share(&uploads);
        Sent {
            request: Box::new(request),
            reply,
            uploads,
            queued_at,
        }
    }
}

impl Sent {
    fn into_job(self) -> Job {
        let mut request = *self.request;
        request.uploads = self.uploads;
        Job {
            request,
            reply: self.reply,
            queued_at: self.queued_at,
        }
    }

    fn fail(self, reply: Reply, why: &str) {
        Open {
            reply: Some(self.reply),
            stream: None,
        }
        .fail(reply, why);
    }
}

/// What arrived for this worker while it was busy.
#[derive(Default)]
struct Ahead {
    /// A request already written to the worker, which it starts after the current one.
    job: Option<Sent>,
    /// A stop, obeyed after the current request (and the one ahead).
    stop: bool,
}

/// One request, already written to the worker: read the answer (writing a request sent ahead
/// as soon as the supervisor sends it). Err when the worker must go.
async fn serve(
    ch: &mut Channel,
    reply: oneshot::Sender<Reply>,
    commands: &mut mpsc::Receiver<Command>,
    ahead: &mut Ahead,
    exec_ttl: Option<Duration>,
) -> Result<(), End> {
    let mut open = Open {
        reply: Some(reply),
        stream: None,
    };
    let exchange = answer(ch, &mut open, commands, ahead);
    let outcome = match exec_ttl {
        Some(ttl) => tokio::time::timeout(ttl, exchange).await.ok(),
        None => Some(exchange.await),
    };
    match outcome {
        Some(true) => Ok(()),
        Some(false) => {
            open.fail(Reply::Crashed, "the worker died mid-response");
            Err(End::Crashed)
        }
        None => {
            open.fail(Reply::ExecTimeout, "the request exceeded exec_ttl");
            Err(End::ExecTimeout)
        }
    }
}

/// The next frame of the answer; a command that arrives meanwhile is taken care of: a request
/// is written to the worker at once (it reads it when done with this one), a stop is kept.
async fn frame(
    ch: &mut Channel,
    commands: &mut mpsc::Receiver<Command>,
    ahead: &mut Ahead,
) -> Option<Frame> {
    loop {
        let listen = ahead.job.is_none() && !ahead.stop;
        match ch.next_or_command(commands, listen).await {
            Incoming::Frame(frame) => return frame,
            Incoming::Command(Some(Command::Run(job))) => {
                let job = Sent::from(*job);
                if !ch.send_request(&job.request).await {
                    ahead.job = Some(job);
                    return None;
                }
                ahead.job = Some(job);
            }
            Incoming::Command(Some(Command::Stop) | None) => ahead.stop = true,
        }
    }
}

/// The way back to the client while an answer is under way.
struct Open {
    /// Until the head is sent.
    reply: Option<oneshot::Sender<Reply>>,
    /// While a streamed body is under way.
    stream: Option<mpsc::Sender<Result<bytes::Bytes, std::io::Error>>>,
}

impl Open {
    /// The worker is gone: an error answer, or a stream cut off so the client sees it is
    /// incomplete.
    fn fail(&mut self, reply: Reply, why: &str) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(reply);
        }
        if let Some(tx) = self.stream.take() {
            let _ = tx.try_send(Err(std::io::Error::other(why.to_owned())));
        }
    }

    fn send(&mut self, reply: Reply) {
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(reply);
        }
    }
}

/// Reads the answer frames; false when the worker died (or spoke nonsense) first.
async fn answer(
    ch: &mut Channel,
    open: &mut Open,
    commands: &mut mpsc::Receiver<Command>,
    ahead: &mut Ahead,
) -> bool {
    let Some(frame) = frame(ch, commands, ahead).await else {
        return false;
    };
    let whole = match frame {
        Frame::Full {
            status,
            headers,
            body,
        } => Reply::Full {
            status,
            headers,
            body,
        },
        Frame::File {
            path,
            status,
            headers,
        } => Reply::File(FileReply {
            path: path.into(),
            status,
            headers,
        }),
        Frame::Velox {
            body,
            gzip,
            headers,
        } => Reply::Velox(BuildOrder {
            body,
            gzip,
            headers,
        }),
        Frame::Error(message) => Reply::WorkerError(message),
        Frame::StreamHead { status, headers } => {
            let (tx, chunks) = mpsc::channel(8);
            open.send(Reply::Stream {
                status,
                headers,
                chunks,
            });
            open.stream = Some(tx);
            return stream(ch, open, commands, ahead).await;
        }
        other => {
            tracing::error!(
                pid = ch.process.pid,
                "unexpected frame instead of an answer: {other:?}"
            );
            return false;
        }
    };
    open.send(whole);
    true
}

/// Forwards chunks to the client; a slow client holds the worker back (bounded channel, then
/// the socket buffer), a client that left gets nothing more.
async fn stream(
    ch: &mut Channel,
    open: &mut Open,
    commands: &mut mpsc::Receiver<Command>,
    ahead: &mut Ahead,
) -> bool {
    loop {
        match frame(ch, commands, ahead).await {
            Some(Frame::Chunk(bytes)) => {
                if let Some(tx) = open.stream.as_ref().filter(|tx| !tx.is_closed()) {
                    let _ = tx.send(Ok(bytes)).await;
                }
            }
            Some(Frame::StreamEnd) => {
                open.stream = None;
                return true;
            }
            Some(Frame::StreamAbort) => {
                open.fail(Reply::Crashed, "the worker aborted the stream");
                return true;
            }
            _ => return false,
        }
    }
}

/// A copy of the upload entries that does not own (delete) the files.
fn share(uploads: &Tree<Upload>) -> Tree<Upload> {
    use crate::request::form::Node;
    let mut out = Tree::new();
    for (key, node) in uploads.entries() {
        let node = match node {
            Node::Leaf(u) => Node::Leaf(Upload {
                name: u.name.clone(),
                full_path: u.full_path.clone(),
                mime: u.mime.clone(),
                size: u.size,
                error: u.error,
                tmp_name: u
                    .tmp_name
                    .as_ref()
                    .and_then(|p| Upload::unowned(p.to_path_buf())),
            }),
            Node::Map(sub) => Node::Map(share(sub)),
        };
        out.put(key.clone(), node);
    }
    out
}

/// Resident memory of a process, from /proc (RoadRunner's `max_worker_memory` measures RSS).
pub fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
