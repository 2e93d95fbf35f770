//! One task per worker process: it waits for the worker to boot, writes each request to it,
//! turns the answer frames back into a [`Reply`] (the master finishes offloads: files, Velox,
//! streams), enforces `exec_ttl`, and reports to the supervisor.
use super::process::{self, Process};
use super::supervisor::Control;
use super::template::Forked;
use crate::dispatch::{Job, Reply};
use crate::ipc::Frame;
use crate::request::form::Tree;
use crate::request::multipart::Upload;
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
    /// A forked worker's process exists (its pid is known).
    Started {
        id: u64,
        pid: u32,
    },
    Ready {
        id: u64,
    },
    /// Answered a request and is free again; `memory` in bytes when memory is watched;
    /// `retire` when the worker asked to be replaced (`RR\Worker::retire()`).
    Done {
        id: u64,
        memory: Option<u64>,
        retire: bool,
    },
    /// A worker's memory, read while it was idle (a reading skipped after its last answer).
    Memory {
        id: u64,
        memory: Option<u64>,
    },
    /// An idle worker asked to be replaced.
    Retire {
        id: u64,
    },
    /// Template mode: a template of this generation booted; forks now come from it.
    TemplateReady {
        generation: u64,
    },
    /// Template mode: no template could be kept running; the pool stops with this message.
    TemplateFailed(String),
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
    /// The worker sent `Retire`.
    retire: bool,
}

impl Channel {
    /// The next frame; `None` when the worker closed the channel (it exited) or broke it.
    /// `Retire` is noted and skipped, unless `idle` (then it is returned).
    async fn next(&mut self) -> Option<Frame> {
        self.next_or_retire(false).await
    }

    async fn next_or_retire(&mut self, idle: bool) -> Option<Frame> {
        loop {
            match Frame::split(&mut self.buf) {
                Ok(Some(Frame::ListWorkers)) => {
                    if !self.list_workers().await {
                        return None;
                    }
                    continue;
                }
                Ok(Some(Frame::Retire)) => {
                    self.retire = true;
                    if idle {
                        return Some(Frame::Retire);
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

    /// A worker asked for the workers list (it blocks until the answer arrives).
    async fn list_workers(&mut self) -> bool {
        let (tx, rx) = oneshot::channel();
        let _ = self.control.send(Control::List(tx));
        let list = rx.await.unwrap_or_default();
        let json = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
        self.send(&Frame::Workers(json)).await
    }

    async fn send(&mut self, frame: &Frame) -> bool {
        self.out.clear();
        frame.encode(&mut self.out);
        self.process.channel.write_all(&self.out).await.is_ok()
    }
}

/// How the worker's process comes to be.
pub enum Start {
    /// Re-executed: already running.
    Exec(Box<Process>),
    /// Ordered from the template; the answer comes later.
    Fork(oneshot::Receiver<Forked>),
}

/// Runs worker `id` until it ends; the last event sent is always `Exited`.
pub async fn run(
    id: u64,
    start: Start,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    limits: Limits,
) {
    let process = match start {
        Start::Exec(process) => *process,
        Start::Fork(forked) => {
            let forked = tokio::select! {
                forked = forked => forked.unwrap_or_else(|_| Err("the pool is stopping".into())),
                // Stopped (reload, shutdown) before the template got to it.
                None = wait_stop(&mut commands) => Err("stopped before it was forked".into()),
            };
            match forked {
                Ok(process) => {
                    let _ = events.send(Event::Started {
                        id,
                        pid: process.pid,
                    });
                    process
                }
                Err(detail) => {
                    commands.close();
                    while let Ok(Command::Run(job)) = commands.try_recv() {
                        let _ = job.reply.send(Reply::Crashed);
                    }
                    let end = End::BootFailed;
                    let _ = events.send(Event::Exited { id, end, detail });
                    return;
                }
            }
        }
    };
    let mut ch = Channel {
        process,
        control: limits.control.clone(),
        buf: BytesMut::with_capacity(64 * 1024),
        out: BytesMut::with_capacity(64 * 1024),
        retire: false,
    };
    let end = lifetime(id, &mut ch, &mut commands, &events, &limits).await;
    if end != End::Stopped {
        ch.process.kill();
    }
    let status = ch.process.wait().await;
    let mut detail = match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    // Its last lines reach the log before it counts as gone (and before the master exits).
    let tail = ch.process.output_tail().await;
    if end == End::BootFailed {
        detail = format!("{detail}; its last output:\n{tail}");
    }
    // Requests sent after the end get the crash answer: nothing handed over is dropped silently.
    commands.close();
    while let Ok(Command::Run(job)) = commands.try_recv() {
        let _ = job.reply.send(Reply::Crashed);
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
    let mut memory = Memory::default();
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            // A reading skipped after an answer, taken now that the worker is idle.
            _ = super::sleep_until(memory.due()) => {
                let bytes = memory.read(&ch.process);
                let _ = events.send(Event::Memory { id, memory: bytes });
                continue;
            }
            // Idle: anything from the worker now is a wish to retire, its exit, or a
            // protocol error.
            frame = ch.next_or_retire(true) => {
                if let Some(Frame::Retire) = frame {
                    let _ = events.send(Event::Retire { id });
                    continue;
                }
                if let Some(frame) = frame {
                    tracing::error!(pid = ch.process.pid, "unexpected frame from an idle worker: {frame:?}");
                }
                return End::Crashed;
            }
        };
        match command {
            Some(Command::Run(mut job)) => {
                uploads = std::mem::take(&mut job.request.uploads);
                let served = serve(ch, *job, &uploads, limits.exec_ttl).await;
                if let Err(end) = served {
                    return end;
                }
                let memory = match limits.watch_memory {
                    true => memory.after_answer(&ch.process),
                    false => None,
                };
                let retire = std::mem::take(&mut ch.retire);
                let _ = events.send(Event::Done { id, memory, retire });
            }
            Some(Command::Stop) | None => {
                drop(uploads);
                ch.send(&Frame::Stop).await;
                let exited = tokio::time::timeout(limits.destroy_timeout, ch.process.wait());
                if exited.await.is_err() {
                    tracing::warn!(
                        pid = ch.process.pid,
                        "worker did not stop within destroy_timeout: killing it"
                    );
                    ch.process.kill();
                }
                return End::Stopped;
            }
        }
    }
}

/// How often, at most, a worker's memory is read (`max_worker_memory`). A forked worker's
/// private memory comes from `/proc/<pid>/smaps_rollup`, which walks its page tables: about
/// 0.65 ms of the master's CPU for a booted Nextcloud, more than a status.php request takes.
const MEMORY_EVERY: Duration = Duration::from_millis(250);

/// When the worker's memory was last read, and whether an answer came since.
#[derive(Default)]
struct Memory {
    read_at: Option<Instant>,
    /// An answer came after the last reading: read again (while idle) once it is due.
    pending: bool,
}

impl Memory {
    /// After an answer: the reading if one is due, else `None` (and it is taken later).
    fn after_answer(&mut self, process: &Process) -> Option<u64> {
        if self.read_at.is_some_and(|at| at.elapsed() < MEMORY_EVERY) {
            self.pending = true;
            return None;
        }
        self.read(process)
    }

    fn read(&mut self, process: &Process) -> Option<u64> {
        self.read_at = Some(Instant::now());
        self.pending = false;
        process::memory(process.pid, process.is_forked())
    }

    /// When a skipped reading is due.
    fn due(&self) -> Option<Instant> {
        self.pending
            .then(|| self.read_at.map(|at| at + MEMORY_EVERY))
            .flatten()
    }
}

/// One request: write it, read the answer. Err when the worker must go.
async fn serve(
    ch: &mut Channel,
    job: Job,
    uploads: &Tree<Upload>,
    exec_ttl: Option<Duration>,
) -> Result<(), End> {
    let Job {
        mut request, reply, ..
    } = job;
    // The worker needs the upload names and paths; the files stay the master's.
    request.uploads = share(uploads);
    let frame = Frame::Request(Box::new(request));
    let mut open = Open {
        reply: Some(reply),
        stream: None,
    };
    let exchange = async { ch.send(&frame).await && answer(ch, &mut open).await };
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
async fn answer(ch: &mut Channel, open: &mut Open) -> bool {
    let Some(frame) = ch.next().await else {
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
            return stream(ch, open).await;
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
async fn stream(ch: &mut Channel, open: &mut Open) -> bool {
    loop {
        match ch.next().await {
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

/// Waits for a `Stop` (or the end of the commands); `Run`s that arrive meanwhile are kept.
async fn wait_stop(commands: &mut mpsc::Receiver<Command>) -> Option<()> {
    match commands.recv().await {
        Some(Command::Stop) | None => None,
        // Nothing is dispatched to a booting worker; should one come, it waits its turn.
        Some(Command::Run(job)) => {
            let _ = job.reply.send(Reply::Unavailable);
            std::future::pending().await
        }
    }
}
