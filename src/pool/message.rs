//! The messages between the master's tasks, in one place: what outsiders ask the supervisor
//! (`Control`), what the supervisor tells a worker's task (`Command`) and the template's task
//! (`Order`), what those tasks report back (`Event`, `End`, `ForkAnswer`), and the worker
//! states and reasons the supervisor counts.
use super::process::Process;
use crate::dispatch::Job;
use crate::ipc::WorkerInfo;
use std::time::Duration;
use tokio::sync::oneshot;

/// Asks from outside: the admin endpoint, SIGHUP, `RR\workers()`, the master's shutdown.
pub enum Control {
    Reload,
    List(oneshot::Sender<Vec<WorkerInfo>>),
    /// Stop every worker (after the server drained) and end.
    Stop,
}

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
    /// It could not be started for lack of descriptors, processes or memory (not the
    /// script's fault: retried without counting as a boot failure).
    NoResources,
}

pub enum Event {
    /// A forked worker's process exists (its pid is known).
    Started {
        id: u64,
        pid: u32,
        /// The generation of the template it was forked from (an older one while a reloaded
        /// template cannot boot).
        generation: u64,
    },
    Ready {
        id: u64,
    },
    /// Answered a request (it is free again unless more were sent ahead); `memory` in bytes
    /// when memory is watched; `retire` when the worker asked to be replaced
    /// (`RR\Worker::retire()`); `took` from the start of the request to the end of its answer.
    Done {
        id: u64,
        memory: Option<u64>,
        retire: bool,
        took: Duration,
    },
    /// Requests handed to this worker that it never started, for another worker: it declined
    /// them (it takes no more), it died or was stopped first, or the master took them back.
    Returned {
        id: u64,
        jobs: Vec<Job>,
        why: Returned,
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
    /// A worker, idle or busy, asked for a reload of the pool (`RR\Worker::reload()`).
    Reload {
        id: u64,
    },
    /// Template mode: a template of this generation booted; forks now come from it.
    TemplateReady {
        generation: u64,
    },
    /// Template mode: no template could be kept running; the pool stops with this message.
    TemplateFailed(String),
    /// Template mode: a template could not boot (it is retried with backoff).
    TemplateBootFailed(String),
    Exited {
        id: u64,
        end: End,
        detail: String,
    },
}

pub enum Order {
    Fork {
        id: u64,
        reply: oneshot::Sender<ForkAnswer>,
    },
    /// Start a template of this generation (new code); the old one stops.
    Reload(u64),
    /// Stop the template and end.
    Stop,
}

/// The answer to a fork order: the running worker, or why there is none.
pub type ForkAnswer = Result<ForkedWorker, ForkFailure>;

/// A worker forked from the template of `generation`.
pub struct ForkedWorker {
    pub process: Process,
    pub generation: u64,
}

/// Why a fork order brought no worker.
#[derive(Debug)]
pub enum ForkFailure {
    /// The master ran out of descriptors (or memory) for its channel: retried, not a boot
    /// failure.
    NoResources(String),
    Failed(String),
}

/// Worker states, as counted in the gauges and shown in the workers list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Booting,
    Idle,
    Busy,
    Stopping,
}

impl State {
    pub const ALL: [State; 4] = [State::Booting, State::Idle, State::Busy, State::Stopping];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Booting => "booting",
            State::Idle => "idle",
            State::Busy => "busy",
            State::Stopping => "stopping",
        }
    }
}

/// Why a worker was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    MaxJobs,
    MaxMemory,
    Ttl,
    IdleTtl,
    ExecTtl,
    Crash,
    BootFailure,
    Reload,
    /// The worker asked for it (`RR\Worker::retire()`).
    Retired,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::MaxJobs,
        Reason::MaxMemory,
        Reason::Ttl,
        Reason::IdleTtl,
        Reason::ExecTtl,
        Reason::Crash,
        Reason::BootFailure,
        Reason::Reload,
        Reason::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MaxJobs => "max_jobs",
            Reason::MaxMemory => "max_worker_memory",
            Reason::Ttl => "ttl",
            Reason::IdleTtl => "idle_ttl",
            Reason::ExecTtl => "exec_ttl",
            Reason::Crash => "crash",
            Reason::BootFailure => "boot_failure",
            Reason::Reload => "reload",
            Reason::Retired => "retired",
        }
    }
}

/// Why requests came back from a worker unstarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// It retired, or its script ended.
    Declined,
    /// It died, was killed, or stopped first.
    Gone,
    /// Taken back by the master: the request ahead of them ran past the short threshold
    /// (`http.pool.send_ahead_wait`), so another worker may take them sooner.
    Recalled,
}
