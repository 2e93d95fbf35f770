//! The single-process engine: this process runs the server itself, waits for the next request
//! while driving the I/O, answers it (whole, streamed or as a file), and tears everything down.
use super::single::PhpState;
use super::{RespondError, Wait};
use crate::config::Config;
use crate::dispatch::answer::{self, AnswerSender, Push};
use crate::dispatch::{self, Inbox, Reply};
use crate::observe::{self, Mode, ServerMetrics};
use crate::request::form::Tree;
use crate::request::multipart::Upload;
use crate::runtime::scheduling::ThreadPolicy;
use crate::runtime::Driver;
use crate::server::{Bound, Server, Shutdown, StartError};
use crate::systemd::Notifier;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Queued requests taken in a row before the connections get to run; bounds how long a given
/// answer can wait to be written (in hybrid mode also bounded by `io_handoff`).
const EAGER_BATCH: u32 = 8;

enum Pending {
    /// No request is waiting for an answer.
    Idle,
    /// The connection waits for the head of the answer.
    Waiting(oneshot::Sender<Reply>),
    /// The head went out; body chunks follow. `None`: the client left or stopped reading
    /// (`http.send_timeout`): the rest of the answer is discarded.
    Streaming(Option<AnswerSender>),
    /// A streamed answer ended; more `respond()` calls are a mistake.
    StreamEnded,
}

pub struct Embedded {
    config: Arc<Config>,
    server: Server,
    shutdown: Shutdown,
    inbox: Inbox,
    pending: Pending,
    /// Uploaded files of the current request; deleted when the next request is taken.
    uploads: Tree<Upload>,
    /// The current request's spooled body file, deleted with the uploads.
    spooled: Option<tempfile::TempPath>,
    stopping_since: Option<Instant>,
    /// Requests taken in a row straight from the queue, without letting connections run.
    eager: u32,
    /// What PHP is doing, for the status address and the watchdog (when either is on).
    php: Option<Arc<PhpState>>,
    /// systemd's notifications, when it asked for them.
    notifier: Option<Notifier>,
    /// `READY=1` goes out at the first `wait`.
    announced: bool,
    // Dropped last: the runtime must outlive every task above.
    driver: Driver,
}

impl Embedded {
    /// `notifier`: systemd's notifications (`READY=1` at the first `wait`, `STOPPING=1`, the
    /// watchdog).
    pub fn start(config: Arc<Config>, notifier: Option<Notifier>) -> Result<Embedded, StartError> {
        let driver = Driver::new(
            config.http.io_driver,
            config.http.io_handoff,
            ThreadPolicy::INHERITED,
        )
        .map_err(StartError::Runtime)?;
        let (submitter, inbox) = dispatch::queue(config.http.queue_size);
        let server = Server::start(config.clone(), driver.handle(), submitter.clone())?;
        let php = {
            let _entered = driver.handle().enter();
            observers(&config, &server, submitter, notifier.as_ref())?
        };
        Ok(Embedded {
            shutdown: server.shutdown(),
            config,
            server,
            inbox,
            pending: Pending::Idle,
            uploads: Tree::new(),
            spooled: None,
            stopping_since: None,
            eager: 0,
            php,
            notifier,
            announced: false,
            driver,
        })
    }

    pub fn bound(&self) -> &[Bound] {
        &self.server.bound
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The uploads of the request last returned by [`Embedded::wait`].
    pub fn uploads(&self) -> &Tree<Upload> {
        &self.uploads
    }

    /// Waits for the next request, driving the server's I/O meanwhile, for at most `tick`.
    pub fn wait(&mut self, tick: Duration) -> Wait {
        if let Pending::Waiting(_) | Pending::Streaming(_) = self.pending {
            tracing::warn!(
                "waitRequest() called before the previous request was answered: it gets a 500"
            );
            self.abandon_pending();
        }
        if !self.announced {
            self.announced = true;
            if let Some(notifier) = &self.notifier {
                let bound = self.server.bound.iter().map(ToString::to_string);
                let bound = bound.collect::<Vec<_>>().join(", ");
                notifier.ready(format!("serving on {bound} (single process)"));
            }
        }
        // After READY=1: the watchdog pings only from here on.
        if let Some(php) = &self.php {
            php.waiting();
        }
        let inbox = &mut self.inbox;
        let mut shutdown = self.shutdown.clone();
        let eager = &mut self.eager;
        let stopping = &self.shutdown;
        // A tick (nothing arrived, no shutdown) leaves a sleeping driver thread asleep.
        let passing = |job: &Option<dispatch::Job>| job.is_none() && !stopping.is_triggered();
        let job = self.driver.wait_unless(
            async {
                // A request already queued is taken at once, up to EAGER_BATCH in a row; then the
                // connections run (writing the answers given so far, reading new requests). Yielding
                // costs a poll of the I/O driver, so this saves a syscall per request under load.
                if *eager < EAGER_BATCH {
                    if let Some(job) = inbox.try_recv() {
                        *eager += 1;
                        return Some(job);
                    }
                }
                *eager = 0;
                tokio::task::yield_now().await;
                if let Some(job) = inbox.try_recv() {
                    return Some(job);
                }
                if shutdown.is_triggered() {
                    return None;
                }
                tokio::select! {
                    job = inbox.recv() => job,
                    _ = tokio::time::sleep(tick) => None,
                    _ = shutdown.triggered() => None,
                }
            },
            passing,
        );
        self.uploads = Tree::new();
        self.spooled = None;
        match job {
            Some(job) => self.take(job),
            None if self.shutdown.is_triggered() => self.drain_one(),
            None => Wait::Tick,
        }
    }

    /// During shutdown, requests already queued are still served, within `shutdown_timeout`.
    fn drain_one(&mut self) -> Wait {
        let since = *self.stopping_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.config.http.shutdown_timeout {
            if let Some(job) = self.inbox.try_recv() {
                return self.take(job);
            }
        }
        Wait::Stop
    }

    fn take(&mut self, job: dispatch::Job) -> Wait {
        if let Some(php) = &self.php {
            php.busy();
        }
        let mut request = job.request;
        self.uploads = std::mem::take(&mut request.uploads);
        self.spooled = request.body.detach();
        self.pending = Pending::Waiting(job.reply);
        Wait::Request(Box::new(request))
    }

    /// Sends (part of) the answer. With `end` false the head goes out at once and further calls
    /// append chunks until one has `end` true; their status and headers are ignored. A chunk
    /// waits (driving the I/O) while the client is slow; a client that left discards the rest.
    pub fn respond(
        &mut self,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        end: bool,
    ) -> Result<(), RespondError> {
        match std::mem::replace(&mut self.pending, Pending::Idle) {
            Pending::Idle => Err(RespondError::NoRequest),
            Pending::StreamEnded => {
                self.pending = Pending::StreamEnded;
                Err(RespondError::StreamEnded)
            }
            Pending::Waiting(reply) if end => {
                self.send(
                    reply,
                    Reply::Full {
                        status,
                        headers,
                        body,
                    },
                );
                Ok(())
            }
            Pending::Waiting(reply) => {
                let (tx, chunks) = answer::channel(self.config.http.answer_limits());
                self.send(
                    reply,
                    Reply::Stream {
                        status,
                        headers,
                        chunks,
                    },
                );
                self.stream_chunk(Some(tx), body, false);
                Ok(())
            }
            Pending::Streaming(tx) => {
                self.stream_chunk(tx, body, end);
                Ok(())
            }
        }
    }

    /// Hands an answer to its connection from inside the runtime: no driver wake-up per request.
    fn send(&self, to: oneshot::Sender<Reply>, reply: Reply) {
        self.driver.run_here(async move {
            let _ = to.send(reply);
        });
    }

    fn stream_chunk(&mut self, mut tx: Option<AnswerSender>, chunk: Bytes, end: bool) {
        if !chunk.is_empty() {
            tx = tx.filter(|tx| self.deliver(tx, chunk));
        }
        if end {
            if let Some(tx) = tx {
                tx.end();
            }
            self.pending = Pending::StreamEnded;
        } else {
            self.pending = Pending::Streaming(tx);
        }
    }

    /// Hands one chunk to the connection: queued at once (memory, then a temp file), so PHP
    /// goes on however slow the client. Only a full spool makes PHP wait, driving the I/O,
    /// for at most `http.send_timeout`. False when the client left or read nothing in that
    /// time: the caller then drops the sender, which cuts the answer off.
    fn deliver(&self, tx: &AnswerSender, chunk: Bytes) -> bool {
        match tx.push(chunk) {
            Push::Queued => true,
            Push::Gone => false,
            // Only a full spool enters the runtime to wait.
            Push::Full(back) => self
                .driver
                .wait(tx.deliver(back, self.config.http.send_timeout)),
        }
    }

    /// Hands the answer to Rust: a file streamed from disk, or an error report.
    pub fn reply(&mut self, reply: Reply) -> Result<(), RespondError> {
        match std::mem::replace(&mut self.pending, Pending::Idle) {
            Pending::Waiting(tx) => {
                self.send(tx, reply);
                Ok(())
            }
            Pending::Idle => Err(RespondError::NoRequest),
            other @ Pending::StreamEnded => {
                self.pending = other;
                Err(RespondError::StreamEnded)
            }
            other @ Pending::Streaming(_) => {
                self.pending = other;
                Err(RespondError::Streaming)
            }
        }
    }

    /// See [`super::Worker::fail`].
    pub fn fail(&mut self, message: String) -> Result<(), RespondError> {
        match std::mem::replace(&mut self.pending, Pending::Idle) {
            Pending::Streaming(tx) => {
                tracing::error!("worker error: {message}: the streamed answer is cut off");
                // Dropped before its end, the sender cuts the answer off.
                drop(tx);
                self.pending = Pending::StreamEnded;
                Ok(())
            }
            other => {
                self.pending = other;
                self.reply(Reply::WorkerError(message))
            }
        }
    }

    /// Whether a request is waiting for (the rest of) its answer.
    pub fn has_pending(&self) -> bool {
        matches!(self.pending, Pending::Waiting(_) | Pending::Streaming(_))
    }

    /// The client of an unanswered request gets a 500; a stream in progress is cut off so the
    /// client can tell the answer is incomplete.
    fn abandon_pending(&mut self) {
        // A stream's sender dropped before its end cuts the answer off.
        self.pending = Pending::Idle;
    }

    /// Start a graceful shutdown: stop accepting; `wait` returns `Stop` once the queue is served.
    pub fn stop(&self) {
        self.server.begin_shutdown();
    }

    pub fn is_stopping(&self) -> bool {
        self.server.is_shutting_down()
    }

    /// The end: an unanswered request gets a 500, queued ones a 503, and open connections get
    /// `shutdown_timeout` to finish what they are sending.
    pub fn finish(mut self) {
        if self.has_pending() {
            tracing::error!(
                "the worker script ended while a request was pending: the client gets a 500"
            );
        }
        self.abandon_pending();
        if let Some(notifier) = &self.notifier {
            notifier.stopping(stopping_status(&self.config));
        }
        self.server.begin_shutdown();
        self.inbox.close();
        while let Some(job) = self.inbox.try_recv() {
            let _ = job.reply.send(Reply::Unavailable);
        }
        let timeout = self.config.http.shutdown_timeout;
        let server = &mut self.server;
        if !self.driver.wait(server.drained(timeout)) {
            tracing::warn!(
                "connections still open after http.shutdown_timeout ({timeout:?}): closing them"
            );
        }
    }
}

/// Starts what watches the server from outside, on the current runtime: the status and metrics
/// addresses, systemd's watchdog, `STOPPING=1` when the shutdown starts. What PHP is doing is
/// tracked only when something reads it.
fn observers(
    config: &Config,
    server: &Server,
    queue: dispatch::Submitter,
    notifier: Option<&Notifier>,
) -> Result<Option<Arc<PhpState>>, StartError> {
    let watchdog = notifier.is_some_and(|n| n.watchdog().is_some());
    let php = (config.status.is_some() || config.metrics.is_some() || watchdog)
        .then(|| Arc::new(PhpState::new(config.http.request_timeout, queue)));
    if let Some(php) = &php {
        observe::start(
            config,
            observe::Side {
                server: ServerMetrics::of(server),
                mode: php.clone(),
                shutdown: server.shutdown(),
            },
        )?;
    }
    if let Some(notifier) = notifier {
        if let Some(php) = php.clone().filter(|_| watchdog) {
            tokio::spawn(crate::systemd::watchdog(notifier.clone(), move || {
                php.healthy()
            }));
        }
        let (notifier, mut shutdown) = (notifier.clone(), server.shutdown());
        let status = stopping_status(config);
        tokio::spawn(async move {
            shutdown.triggered().await;
            notifier.stopping(status);
        });
    }
    Ok(php)
}

/// systemd's status while the single process stops.
fn stopping_status(config: &Config) -> String {
    format!(
        "stopping: finishing the requests received (at most {:?})",
        config.http.shutdown_timeout
    )
}
