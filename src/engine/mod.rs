//! What a PHP process runs behind `RR\Worker`, in plain Rust: one engine per process role,
//! behind one API (wait for the next request, answer it whole, streamed, as a file or a Velox
//! build, tear down). `src/php/` wraps this for PHP.
//!
//! # Engines, one per role
//! - [`Embedded`]    the single process: it runs the HTTP server itself.
//! - [`PoolWorker`]  a pool worker: requests and answers travel as frames over the channel the
//!   master handed down (`RR_POOL_FD`).
//! - `template`      the template (`http.pool.template`): a pool worker whose first `wait`
//!   forks workers instead of serving.
//! - [`Master`]      the process the user started, in pool mode: it drives the pool's
//!   machinery (`crate::pool`) and runs no request (`wait` returns `Stop` once it stopped).
//!
//! [`copy`] tells a process the application forked during a request from the worker.
mod connections;
pub mod copy;
mod embedded;
mod master;
mod pool_worker;
mod single;
mod template;

pub use embedded::Embedded;
pub use master::Master;
pub use pool_worker::PoolWorker;

use crate::config::Config;
use crate::dispatch::Reply;
use crate::request::form::Tree;
use crate::request::multipart::Upload;
use crate::request::RequestData;
use crate::server::{Bound, PoolStartError, StartError};
use crate::stream::FileReply;
use crate::velox::BuildOrder;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::sync::Arc;
use std::time::Duration;

/// The answer of [`Worker::wait`].
pub enum Wait {
    Request(Box<RequestData>),
    /// Nothing arrived within the tick: the caller may run signal handlers and wait again.
    Tick,
    /// The server is shutting down and nothing is left to serve.
    Stop,
    /// This process was just forked from the template and is now a pool worker: the caller
    /// re-seeds what a fork must not share (PHP's random state), then waits again.
    Forked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespondError {
    /// No request is waiting for an answer.
    NoRequest,
    /// The streamed response already ended.
    StreamEnded,
    /// A streamed response is in progress: only `respond()` may add to it.
    Streaming,
    /// A Velox build was asked for, but `velox.server_url` is not configured.
    VeloxOff,
}

impl std::fmt::Display for RespondError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RespondError::NoRequest => "no request is pending: call waitRequest() first",
            RespondError::StreamEnded => "the streamed response has already ended",
            RespondError::Streaming => {
                "a streamed response is in progress: finish it with respond(..., endOfStream: true)"
            }
            RespondError::VeloxOff => {
                "Velox builds are off: set velox.server_url in the configuration"
            }
        })
    }
}

/// The part a PHP process plays (`RR\\role()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No pool: this process serves HTTP itself.
    Single,
    /// Pool mode's master: it serves HTTP and hands requests to workers.
    Master,
    /// A pool worker (re-executed, or forked from the template).
    Worker,
    /// The template (`http.pool.template`): it boots once and forks workers.
    Template,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Single => "single",
            Role::Master => "master",
            Role::Worker => "worker",
            Role::Template => "template",
        }
    }
}

pub enum Worker {
    Embedded(Embedded),
    PoolWorker(PoolWorker),
    Master(Master),
}

/// Calls the same method on whichever engine this is.
macro_rules! each {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            Worker::Embedded($e) => $body,
            Worker::PoolWorker($e) => $body,
            Worker::Master($e) => $body,
        }
    };
}

/// Calls the method on the engines that run requests; the master runs none.
macro_rules! serving {
    ($self:expr, $e:ident => $body:expr, master => $master:expr) => {
        match $self {
            Worker::Embedded($e) => $body,
            Worker::PoolWorker($e) => $body,
            Worker::Master(_) => $master,
        }
    };
}

impl Worker {
    /// A pool worker when this process was started by a master, the master when
    /// `http.pool.num_workers` is above 0, else the single embedded worker. The master and the
    /// single process send systemd's notifications when `NOTIFY_SOCKET` is set; a pool worker
    /// never does (the master starts it without the variable).
    pub fn start(config: Arc<Config>) -> Result<Worker, StartError> {
        copy::watch();
        if let Some(channel) = pool_worker::inherited_channel()
            .map_err(|e| StartError::Pool(PoolStartError::Channel(e)))?
        {
            return Ok(Worker::PoolWorker(PoolWorker::connect(config, channel)));
        }
        // Before any thread of ours starts: it takes the variables out of the environment.
        let notifier = crate::systemd::Notifier::from_env();
        if config.pool.num_workers > 0 {
            return Ok(Worker::Master(Master::start(config, notifier)?));
        }
        Ok(Worker::Embedded(Embedded::start(config, notifier)?))
    }

    pub fn is_master(&self) -> bool {
        matches!(self, Worker::Master(_))
    }

    pub fn is_pool_worker(&self) -> bool {
        matches!(self, Worker::PoolWorker(_))
    }

    /// Which part this process plays.
    pub fn role(&self) -> Role {
        match self {
            Worker::Embedded(_) => Role::Single,
            Worker::Master(_) => Role::Master,
            Worker::PoolWorker(p) if p.is_template() => Role::Template,
            Worker::PoolWorker(_) => Role::Worker,
        }
    }

    /// Whether this process is a pool worker forked from the template (`RR\forked()`).
    pub fn forked(&self) -> bool {
        matches!(self, Worker::PoolWorker(p) if p.forked())
    }

    pub fn bound(&self) -> &[Bound] {
        each!(self, w => w.bound())
    }

    pub fn config(&self) -> &Config {
        each!(self, w => w.config())
    }

    /// The uploads of the request last returned by [`Worker::wait`].
    pub fn uploads(&self) -> &Tree<Upload> {
        each!(self, w => w.uploads())
    }

    /// Waits for the next request for at most `tick`.
    pub fn wait(&mut self, tick: Duration) -> Wait {
        each!(self, w => w.wait(tick))
    }

    /// Why the engine stopped, when it was a failure (the pool could not keep workers up).
    pub fn failure(&self) -> Option<String> {
        match self {
            Worker::Master(m) => m.failure().map(ToString::to_string),
            _ => None,
        }
    }

    /// Sends (part of) the answer; see [`Embedded::respond`].
    pub fn respond(
        &mut self,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        end: bool,
    ) -> Result<(), RespondError> {
        serving!(self, w => w.respond(status, headers, body, end), master => Err(RespondError::NoRequest))
    }

    /// Hands the answer to Rust: a file streamed from disk, or an error report.
    pub fn reply(&mut self, reply: Reply) -> Result<(), RespondError> {
        serving!(self, w => w.reply(reply), master => Err(RespondError::NoRequest))
    }

    /// The current request failed (`RR\\Worker::error()`, an uncaught throwable in `handle()`):
    /// an unanswered one gets a 500 with `message` logged; a stream in progress is cut off, so
    /// its client sees an incomplete answer, never a complete one.
    pub fn fail(&mut self, message: String) -> Result<(), RespondError> {
        serving!(self, w => w.fail(message), master => Err(RespondError::NoRequest))
    }

    pub fn send_file(&mut self, file: FileReply) -> Result<(), RespondError> {
        self.reply(Reply::File(file))
    }

    /// Hands a build to Rust; this worker is free for the next request at once.
    pub fn velox_build(&mut self, order: BuildOrder) -> Result<(), RespondError> {
        if self.config().velox.is_none() {
            return Err(RespondError::VeloxOff);
        }
        self.reply(Reply::Velox(order))
    }

    /// The pool's worker processes; empty in the single-process mode.
    pub fn workers(&mut self) -> Vec<crate::ipc::WorkerInfo> {
        match self {
            Worker::Embedded(_) => Vec::new(),
            Worker::PoolWorker(w) => w.workers(),
            Worker::Master(m) => m.workers(),
        }
    }

    /// Asks to be replaced once the current answer is sent (`RR\Worker::retire()`); false
    /// where nothing can replace this process (single process, master, template).
    pub fn retire(&mut self) -> bool {
        match self {
            Worker::PoolWorker(w) => w.retire(),
            Worker::Embedded(_) | Worker::Master(_) => false,
        }
    }

    /// Asks the pool for a reload (`RR\Worker::reload()`); false where nothing can reload
    /// (single process, master, template).
    pub fn reload(&mut self) -> bool {
        match self {
            Worker::PoolWorker(w) => w.reload(),
            Worker::Embedded(_) | Worker::Master(_) => false,
        }
    }

    /// Whether a request is waiting for (the rest of) its answer.
    pub fn has_pending(&self) -> bool {
        serving!(self, w => w.has_pending(), master => false)
    }

    /// Start a graceful shutdown: `wait` returns `Stop` once what was received is served.
    pub fn stop(&self) {
        each!(self, w => w.stop())
    }

    pub fn is_stopping(&self) -> bool {
        each!(self, w => w.is_stopping())
    }

    /// The end, however the script ended: pending clients get an answer, resources are freed.
    pub fn finish(self) {
        each!(self, w => w.finish())
    }
}
