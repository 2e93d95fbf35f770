//! One task per worker process: it waits for the worker to boot, writes each request to it
//! (more than one when requests are sent ahead, see [`super::ahead`]), turns the answer frames
//! back into a [`Reply`] (the master finishes offloads: files, Velox, streams), enforces
//! `exec_ttl`, and reports to the supervisor.
use super::ahead::{self, InFlight, Step};
use super::message::{Command, Control, End, Event, ForkAnswer, ForkFailure, Returned};
use super::process::{self, Process};

use crate::dispatch::{Job, Reply};
use crate::ipc::{Frame, FrameReader, ReadError};
use bytes::BytesMut;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

pub struct Limits {
    /// Answers `RR\workers()` asked from inside a request.
    pub control: mpsc::UnboundedSender<Control>,
    pub boot_timeout: Duration,
    pub exec_ttl: Option<Duration>,
    pub destroy_timeout: Duration,
    /// `max_worker_memory` in bytes; None: memory is not watched.
    pub memory_limit: Option<u64>,
    /// Requests sent ahead go back to the line once the one before them has run this long
    /// (None: send-ahead is off).
    pub recall_after: Option<Duration>,
    /// How long one chunk of a streamed answer may wait for its client (`http.send_timeout`).
    pub send_timeout: Duration,
    /// Where a streamed answer waits for its client (memory, then a temp file).
    pub answers: crate::dispatch::answer::AnswerLimits,
}

/// The worker's side of the channel, frame by frame (cancel-safe: see [`FrameReader`]).
struct Channel {
    id: u64,
    process: Process,
    control: mpsc::UnboundedSender<Control>,
    /// Where a worker's ask for a reload goes at once, whatever it is doing.
    events: mpsc::UnboundedSender<Event>,
    reader: FrameReader,
    out: BytesMut,
    /// The worker sent `Retire`.
    retire: bool,
}

impl Channel {
    /// The next frame; `None` when the worker closed the channel (it exited) or broke it.
    /// `ListWorkers` is answered and `Reload` passed on, both skipped; `Retire` is noted and
    /// skipped, unless `idle` (then it is returned).
    async fn next(&mut self) -> Option<Frame> {
        self.next_or_retire(false).await
    }

    async fn next_or_retire(&mut self, idle: bool) -> Option<Frame> {
        loop {
            match self.reader.next(&mut self.process.channel).await {
                Ok(Frame::ListWorkers) => {
                    if !self.list_workers().await {
                        return None;
                    }
                }
                Ok(Frame::Reload) => {
                    let _ = self.events.send(Event::Reload { id: self.id });
                }
                Ok(Frame::Retire) => {
                    self.retire = true;
                    if idle {
                        return Some(Frame::Retire);
                    }
                }
                Ok(frame) => return Some(frame),
                Err(ReadError::Closed) => return None,
                Err(e) => {
                    tracing::error!(pid = self.process.pid, "worker channel: {e}");
                    return None;
                }
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
    Fork(oneshot::Receiver<ForkAnswer>),
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
                forked = forked => forked.unwrap_or_else(|_| Err(ForkFailure::Failed("the pool is stopping".into()))),
                // Stopped (reload, shutdown) before the template got to it.
                None = wait_stop(&mut commands) => Err(ForkFailure::Failed("stopped before it was forked".into())),
            };
            match forked {
                Ok(worker) => {
                    let _ = events.send(Event::Started {
                        id,
                        pid: worker.process.pid,
                        generation: worker.generation,
                    });
                    worker.process
                }
                Err(failure) => {
                    commands.close();
                    while let Ok(Command::Run(job)) = commands.try_recv() {
                        let _ = job.reply.send(Reply::Crashed);
                    }
                    let (end, detail) = match failure {
                        ForkFailure::NoResources(detail) => (End::NoResources, detail),
                        ForkFailure::Failed(detail) => (End::BootFailed, detail),
                    };
                    let _ = events.send(Event::Exited { id, end, detail });
                    return;
                }
            }
        }
    };
    let mut ch = Channel {
        id,
        process,
        control: limits.control.clone(),
        events: events.clone(),
        reader: FrameReader::new(64 * 1024),
        out: BytesMut::with_capacity(64 * 1024),
        retire: false,
    };
    let end = lifetime(id, &mut ch, &mut commands, &events, &limits).await;
    // Requests handed over but never written go to another worker: none is dropped.
    commands.close();
    let jobs: Vec<Job> = std::iter::from_fn(|| match commands.try_recv() {
        Ok(Command::Run(job)) => Some(*job),
        _ => None,
    })
    .collect();
    give_back(id, jobs, None, &events);
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
    let mut memory = Memory::default();
    let mut flight = InFlight::new(limits.send_timeout, limits.answers.clone());
    // Handed over while the worker was busy but not small enough to send ahead: written once
    // the worker is free.
    let mut held: Option<Box<Job>> = None;
    let mut stopping = false;
    let mut declined = false;
    // When requests were last taken back from this worker.
    let mut recalled_at: Option<Instant> = None;
    loop {
        if stopping && flight.is_empty() && held.is_none() {
            return stop(ch, limits).await;
        }
        if flight.is_empty() {
            let command = match held.take() {
                Some(job) => Some(Command::Run(job)),
                None => tokio::select! {
                    command = commands.recv() => command,
                    // A reading skipped after an answer, taken now that the worker is idle.
                    _ = super::sleep_until(memory.due()) => {
                        let bytes = memory.read(&ch.process, limits.memory_limit.unwrap_or(0));
                        let _ = events.send(Event::Memory { id, memory: bytes });
                        continue;
                    }
                    // Idle: anything from the worker now is a wish to retire, that it runs
                    // no more, its exit, or a protocol error.
                    frame = ch.next_or_retire(true) => {
                        match frame {
                            Some(Frame::Retire) => {
                                let _ = events.send(Event::Retire { id });
                            }
                            Some(Frame::Declined) => {
                                declined = true;
                                let (jobs, why) = (Vec::new(), Returned::Declined);
                                let _ = events.send(Event::Returned { id, jobs, why });
                            }
                            Some(Frame::Released) => flight.release(),
                            Some(frame) => {
                                tracing::error!(pid = ch.process.pid, "unexpected frame from an idle worker: {frame:?}");
                                return End::Crashed;
                            }
                            None => return End::Crashed,
                        }
                        continue;
                    }
                },
            };
            match command {
                Some(Command::Run(job)) if declined => {
                    let (jobs, why) = (vec![*job], Returned::Declined);
                    let _ = events.send(Event::Returned { id, jobs, why });
                }
                Some(Command::Run(job)) => {
                    let mut inbound = Inbound {
                        commands,
                        held: &mut held,
                        stopping: &mut stopping,
                    };
                    if !write(ch, &mut flight, job, &mut inbound).await {
                        let jobs =
                            flight.fail(Reply::Crashed, "the worker died before its request");
                        give_back(id, jobs, held, events);
                        return End::Crashed;
                    }
                }
                Some(Command::Stop) | None => return stop(ch, limits).await,
            }
            continue;
        }
        let deadline = limits.exec_ttl.zip(flight.since()).map(|(t, s)| s + t);
        // Requests behind one that runs long go back to the line (another worker may take
        // them sooner); looked at again one threshold later if the worker got to them first.
        let recall_at = match (limits.recall_after, flight.since()) {
            (Some(after), Some(since)) if flight.behind() > 0 => {
                Some((since + after).max(recalled_at.map_or(since, |at| at + after)))
            }
            _ => None,
        };
        let take = !stopping && !declined && held.is_none();
        tokio::select! {
            biased;
            frame = ch.next() => match frame {
                Some(Frame::Declined) => {
                    let Some(jobs) = flight.decline() else {
                        tracing::error!(pid = ch.process.pid, "the worker declined in the middle of an answer");
                        return crashed(id, &mut flight, held, events);
                    };
                    declined = true;
                    let jobs = jobs.into_iter().chain(held.take().map(|j| *j)).collect();
                    let why = Returned::Declined;
                    let _ = events.send(Event::Returned { id, jobs, why });
                    // It retired after its last answer (no answer will carry the wish now).
                    if std::mem::take(&mut ch.retire) {
                        let _ = events.send(Event::Retire { id });
                    }
                }
                Some(Frame::Released) => flight.release(),
                Some(frame) => {
                    match flight.step(frame).await {
                        Step::More => {}
                        Step::Done { took } => {
                            let memory = limits
                                .memory_limit
                                .and_then(|limit| memory.after_answer(&ch.process, limit));
                            let retire = std::mem::take(&mut ch.retire);
                            let _ = events.send(Event::Done { id, memory, retire, took });
                        }
                        Step::Broken => {
                            tracing::error!(pid = ch.process.pid, "unexpected frame instead of an answer");
                            return crashed(id, &mut flight, held, events);
                        }
                    }
                }
                None => return crashed(id, &mut flight, held, events),
            },
            _ = super::sleep_until(deadline), if deadline.is_some() => {
                let jobs = flight.fail(Reply::ExecTimeout, "the request exceeded exec_ttl");
                give_back(id, jobs, held, events);
                return End::ExecTimeout;
            }
            _ = super::sleep_until(recall_at), if recall_at.is_some() => {
                recalled_at = Some(Instant::now());
                let jobs: Vec<Job> = flight
                    .recall(&ch.process.claim)
                    .into_iter()
                    .chain(held.take().map(|j| *j))
                    .collect();
                if !jobs.is_empty() {
                    let why = Returned::Recalled;
                    let _ = events.send(Event::Returned { id, jobs, why });
                }
            }
            command = commands.recv(), if take => match command {
                Some(Command::Run(job)) => {
                    let mut inbound = Inbound { commands, held: &mut held, stopping: &mut stopping };
                    // A failed write: the worker's end shows on the next read.
                    write(ch, &mut flight, job, &mut inbound).await;
                }
                Some(Command::Stop) | None => stopping = true,
            },
        }
    }
}

/// Where more requests for this worker come from while some are written.
struct Inbound<'a> {
    commands: &'a mut mpsc::Receiver<Command>,
    /// A request that may not go ahead: written once the worker is free.
    held: &'a mut Option<Box<Job>>,
    /// A `Stop` came: it is sent once every request in flight is answered.
    stopping: &'a mut bool,
}

/// Writes `job`, and behind it every request already handed to this worker that may go ahead
/// (small, within the byte budget, see [`super::ahead`]), at once: one wake-up of the worker
/// for all of them. To a busy worker only what may go ahead is written; the first request that
/// may not is held. False when the write failed (the requests stay in flight, for the caller's
/// crash handling).
async fn write(
    ch: &mut Channel,
    flight: &mut InFlight,
    job: Box<Job>,
    inbound: &mut Inbound<'_>,
) -> bool {
    ch.out.clear();
    let mut batch: Vec<(Job, usize)> = Vec::new();
    let mut next = Some(job);
    while let Some(job) = next.take() {
        let busy = !flight.is_empty() || !batch.is_empty();
        if busy && !ahead::small(&job.request) {
            *inbound.held = Some(job);
            break;
        }
        let start = ch.out.len();
        Frame::encode_request(&job.request, &mut ch.out);
        if busy && !flight.fits(ch.out.len()) {
            ch.out.truncate(start);
            *inbound.held = Some(job);
            break;
        }
        batch.push((*job, ch.out.len() - start));
        next = match inbound.commands.try_recv() {
            Ok(Command::Run(job)) => Some(job),
            Ok(Command::Stop) => {
                *inbound.stopping = true;
                None
            }
            Err(_) => None,
        };
    }
    if batch.is_empty() {
        return true;
    }
    let written = ch.process.channel.write_all(&ch.out).await.is_ok();
    for (job, bytes) in batch {
        flight.push(job, bytes);
    }
    written
}

/// The worker broke off: the request it was on gets 502, the others go to other workers.
fn crashed(
    id: u64,
    flight: &mut InFlight,
    held: Option<Box<Job>>,
    events: &mpsc::UnboundedSender<Event>,
) -> End {
    let jobs = flight.fail(Reply::Crashed, "the worker died mid-response");
    give_back(id, jobs, held, events);
    End::Crashed
}

/// Hands requests this worker never started (and one it held unwritten) back to the line.
fn give_back(
    id: u64,
    jobs: Vec<Job>,
    held: Option<Box<Job>>,
    events: &mpsc::UnboundedSender<Event>,
) {
    let jobs: Vec<Job> = jobs.into_iter().chain(held.map(|j| *j)).collect();
    if !jobs.is_empty() {
        let why = Returned::Gone;
        let _ = events.send(Event::Returned { id, jobs, why });
    }
}

/// Tells the worker to finish, waits `destroy_timeout`, then kills it.
async fn stop(ch: &mut Channel, limits: &Limits) -> End {
    ch.send(&Frame::Stop).await;
    let exited = tokio::time::timeout(limits.destroy_timeout, ch.process.wait());
    if exited.await.is_err() {
        tracing::warn!(
            pid = ch.process.pid,
            "worker did not stop within destroy_timeout: killing it"
        );
        ch.process.kill();
    }
    End::Stopped
}
/// How often, at most, a worker's memory is read (`max_worker_memory`).
const MEMORY_EVERY: Duration = Duration::from_millis(250);

/// How often a forked worker's memory is read while it is below half the limit. Its private
/// memory comes from `/proc/<pid>/smaps_rollup`, which walks its page tables: about 0.65 ms of
/// the master's CPU for a booted Nextcloud, more than a status.php request takes (every
/// 250 ms, two busy Nextcloud workers cost the master ~1% of the core they share).
const MEMORY_EVERY_FAR: Duration = Duration::from_secs(1);

/// How soon after a reading the next one may be taken.
fn memory_interval(forked: bool, bytes: Option<u64>, limit: u64) -> Duration {
    match (forked, bytes) {
        (true, Some(b)) if b < limit / 2 => MEMORY_EVERY_FAR,
        _ => MEMORY_EVERY,
    }
}

/// When the worker's memory was last read, and whether an answer came since.
#[derive(Default)]
struct Memory {
    read_at: Option<Instant>,
    /// How soon after `read_at` the next reading may be taken.
    every: Duration,
    /// An answer came after the last reading: read again (while idle) once it is due.
    pending: bool,
}

impl Memory {
    /// After an answer: the reading if one is due, else `None` (and it is taken later).
    fn after_answer(&mut self, process: &Process, limit: u64) -> Option<u64> {
        if self.read_at.is_some_and(|at| at.elapsed() < self.every) {
            self.pending = true;
            return None;
        }
        self.read(process, limit)
    }

    fn read(&mut self, process: &Process, limit: u64) -> Option<u64> {
        self.read_at = Some(Instant::now());
        self.pending = false;
        let bytes = process::memory(process.pid, process.is_forked());
        self.every = memory_interval(process.is_forked(), bytes, limit);
        bytes
    }

    /// When a skipped reading is due.
    fn due(&self) -> Option<Instant> {
        self.pending
            .then(|| self.read_at.map(|at| at + self.every))
            .flatten()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_worker_far_below_its_limit_is_read_less_often() {
        let limit = 256 << 20;
        assert_eq!(
            memory_interval(true, Some(10 << 20), limit),
            MEMORY_EVERY_FAR
        );
        // From half the limit on, and when a reading failed: every 250 ms.
        assert_eq!(memory_interval(true, Some(128 << 20), limit), MEMORY_EVERY);
        assert_eq!(memory_interval(true, None, limit), MEMORY_EVERY);
        // RSS (/proc/<pid>/status) is cheap to read: always every 250 ms.
        assert_eq!(memory_interval(false, Some(10 << 20), limit), MEMORY_EVERY);
    }
}
