//! What goes into the machine and what comes out of it: [`Input`]s (what happened), [`Effect`]s
//! (what the supervisor does about it), and the [`Notice`]s and [`Snapshot`]s it logs, counts
//! and publishes.
use crate::pool::lines::Waiting;
use crate::pool::message::{End, Reason, Returned};
use crate::pool::rules::AfterBootFailure;
use crate::pool::PoolError;
use std::time::Duration;

/// What happened, for the machine to decide on.
#[derive(Debug)]
pub enum Input {
    /// The pool starts: the first workers (or the template's) are started.
    Start,
    /// A request was taken off the queue.
    Arrived(Waiting),
    /// The worker of an [`Effect::Spawn`] was started: re-executed (its pid), or ordered from
    /// the template (pid 0 until [`Input::Forked`]). One of this or `SpawnFailed` answers each
    /// `Spawn`, before any other input.
    Spawned { worker: u64, pid: u32 },
    /// The worker of an [`Effect::Spawn`] could not be started. `lack_of_resources`: for lack of
    /// descriptors, processes or memory (EMFILE, ENFILE, EAGAIN, ENOMEM): not a boot failure.
    SpawnFailed {
        worker: u64,
        lack_of_resources: bool,
        detail: String,
    },
    /// The request of an [`Effect::Hand`] did not reach the worker.
    NotHanded {
        worker: u64,
        job: Waiting,
        why: NotHanded,
    },
    /// A worker forked from the template of `generation` exists.
    Forked {
        worker: u64,
        pid: u32,
        generation: u64,
    },
    /// A worker reached its first `waitRequest()`.
    Booted { worker: u64 },
    /// A worker answered a request (see `message::Event::Done`).
    Answered {
        worker: u64,
        memory: Option<u64>,
        retire: bool,
        took: Duration,
    },
    /// A worker's memory, read while it was idle.
    Memory { worker: u64, memory: Option<u64> },
    /// An idle worker asked to be replaced (`RR\Worker::retire()`).
    RetireAsked { worker: u64 },
    /// Requests a worker never started, back for another one, in their order.
    Returned {
        worker: u64,
        jobs: Vec<Waiting>,
        why: Returned,
    },
    /// A worker's process ended.
    Exited {
        worker: u64,
        end: End,
        detail: String,
    },
    /// Template mode: a template of `generation` booted.
    TemplateBooted { generation: u64 },
    /// Template mode: a template could not boot.
    TemplateBootFailed(String),
    /// Template mode: no template can fork workers at all.
    TemplateUnusable(String),
    /// SIGHUP, `POST /reload`, `http.watch`: replace every worker with one of new code.
    Reload,
    /// A worker asked for a reload (`RR\Worker::reload()`): a `Reload` if its generation is
    /// still the newest (every worker of a generation sees the same change: one reload).
    ReloadAsked { worker: u64 },
    /// Every `TICK`: limits of idle workers, backoffs that ran out.
    Tick,
    /// The time [`Machine::deadline`] named has come.
    Deadline,
    /// No more requests: stop every worker, then end.
    Stop,
}

/// Why a request handed to a worker did not reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotHanded {
    /// Its client is gone: nothing runs it.
    Abandoned,
    /// The worker's command channel is full: it waits for another turn.
    Full,
    /// The worker's task is ending (its `Exited` is on the way).
    Closed,
}

/// What the supervisor does after a step.
#[derive(Debug)]
pub enum Effect {
    /// Start worker `worker` (`oneshot`: for one isolated request): re-executed, or ordered
    /// from the template. Answered by `Spawned` or `SpawnFailed`.
    Spawn { worker: u64, oneshot: bool },
    /// Give the request to the worker (`ahead`: a busy one, behind what it runs).
    Hand {
        worker: u64,
        job: Waiting,
        ahead: bool,
    },
    /// Tell the worker to stop once idle (now, if it is idle or booting).
    Stop { worker: u64 },
    /// Answer the request without a worker.
    Refuse { job: u64, why: Refusal },
    /// Template mode: start a template of this generation (new code).
    ReloadTemplate(u64),
    /// Take no more requests: close the queue and answer those still in it 503.
    CloseQueue,
    /// Log and count.
    Tell(Notice),
    /// The gauges, the status address and systemd's status after the step.
    Publish(Snapshot),
    /// The pool has stopped: every worker is gone.
    Exit(Result<(), PoolError>),
}

/// Why a request gets no worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It waited `allocate_timeout`: 503 `no_worker`.
    NoWorker,
    /// The pool is stopping: 503.
    Stopping,
    /// Debug mode: the worker started for it could not boot: 502.
    BootFailed,
}

/// What is logged and counted (`rr_pool_*`, the status address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A worker forked from the template exists.
    Forked { worker: u64, pid: u32 },
    /// A worker reached its first `waitRequest()`, `boot` after it was started.
    Ready {
        pid: u32,
        boot: Duration,
        forked: bool,
    },
    /// Workers (or the template) boot: the failures in a row are over.
    Booted {
        generation: u64,
        after_failures: u32,
    },
    /// A worker told to stop ended.
    Stopped { pid: u32, end: End },
    /// A worker is replaced for `reason` (its replacement starts now).
    Replacing { pid: u32, jobs: u64, reason: Reason },
    /// A worker is above `max_worker_memory`.
    OverMemory {
        pid: u32,
        memory: Option<u64>,
        limit: u64,
        forked: bool,
    },
    /// A worker ended on its own: a crash, or killed past `exec_ttl` (`reason`).
    Died {
        pid: u32,
        reason: Reason,
        detail: String,
    },
    /// A start failed for lack of resources: retried in `retry_in`, not a boot failure.
    NoResources {
        detail: String,
        serving: usize,
        retry_in: Duration,
    },
    /// A worker (or the template) could not boot, and what follows.
    BootFailed {
        message: String,
        failures: u32,
        then: AfterBootFailure,
        ever_booted: bool,
        serving: usize,
        generation: u64,
        /// Debug mode: a request waiting for the worker got the 502.
        request_failed: bool,
    },
    /// No template can fork workers: the pool stops.
    TemplateUnusable(String),
    /// A reload to `generation` starts.
    Reloading { generation: u64 },
    /// A worker answered a request.
    JobDone,
    /// Requests came back from a worker unstarted.
    SentBack { why: Returned, n: usize },
}

/// The pool after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Workers by state (`message::State` as index).
    pub counts: [usize; 4],
    /// In-place workers of the current generation that can take requests.
    pub serving_current: usize,
    pub generation: u64,
    /// Workers of an older generation are still live.
    pub reload_pending: bool,
    pub boot_failures: u32,
}
