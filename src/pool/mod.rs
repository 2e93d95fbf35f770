//! Pool mode's master machinery (`http.pool.num_workers` > 0): the listeners and HTTP server,
//! the status and metrics addresses, systemd's notifications, the supervisor and its tasks.
//! The engine that drives it from PHP is [`crate::engine::Master`]; the processes it starts
//! run [`crate::engine::PoolWorker`]. Threads, frames and failure handling: docs/pool.md.
//!
//! # Layout
//! - `message`     the messages between the master's tasks, worker states and restart reasons.
//! - `machine`     the master's decisions, one pure state machine: the worker table, the
//!   generation, boot failures, the requests waiting; inputs in, effects out (unit-tested per
//!   fault, without processes).
//! - `rules`       the machine's queries over its worker table (which worker, how many to start).
//! - `supervisor`  the task that feeds the machine and applies its effects (spawn, send, kill,
//!   answer, log, count); it keeps the jobs and the channels.
//! - `slot`        one worker in the machine's table.
//! - `lines`       requests waiting for an in-place or a one-shot (isolated path) worker.
//! - `limits`      when a worker must go (max_jobs, memory, ttl, idle_ttl) and boot backoff.
//! - `handle`      one task per worker: boot, requests out, answer frames back, exec_ttl.
//! - `ahead`       the requests in flight on one worker (send-ahead, taking back).
//! - `process`     starting a worker (re-exec of this php with its argv, env and a socketpair,
//!   or the descriptors for one forked from the template); reaping; memory.
//! - `templates`   template mode: the task keeping the template processes, fork orders, reload.
//! - `metrics`     gauges and counters, the pool's families on the metrics page.
//! - `status`      what the status and metrics addresses (`crate::observe`) ask of the pool:
//!   health, readiness, the workers list, reload.
//! - `announce`    what the master tells systemd: READY once the first generation is up,
//!   RELOADING / READY around a reload, STATUS lines (`crate::systemd` sends them).
//! - `watch`       `http.watch`: the file watcher asking for a reload when PHP files change.
mod ahead;
mod announce;
mod handle;
mod limits;
mod lines;
mod machine;
mod message;
mod metrics;
mod process;
mod rules;
mod slot;
mod status;
mod supervisor;
mod templates;
mod watch;

pub use message::Control;

use crate::config::Config;
use crate::dispatch;
use crate::observe::{self, ServerMetrics};
use crate::runtime::Driver;
use crate::server::shutdown::Trigger;
use crate::server::{Bound, PoolStartError, Server, StartError};
use crate::systemd::Notifier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use supervisor::Supervisor;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

static RELOAD_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the master to replace its workers one by one. Async-signal-safe (SIGHUP calls it).
pub fn request_reload() {
    RELOAD_REQUESTED.store(true, Ordering::Relaxed);
}

fn take_reload_request() -> bool {
    RELOAD_REQUESTED.swap(false, Ordering::Relaxed)
}

static LOG_REOPEN_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks the master to pass SIGUSR1 on to its workers and template, so that each opens its log
/// file again. Async-signal-safe (SIGUSR1 calls it).
pub fn request_log_reopen() {
    LOG_REOPEN_REQUESTED.store(true, Ordering::Relaxed);
}

fn take_log_reopen_request() -> bool {
    LOG_REOPEN_REQUESTED.swap(false, Ordering::Relaxed)
}

/// Why the pool stopped on its own.
#[derive(Debug)]
pub enum PoolError {
    /// Workers (or the template) kept failing to boot, and none ever had: the message holds
    /// the last one's exit status and output.
    BootFailed(String),
    /// The template cannot fork workers at all (it has threads).
    TemplateUnusable(String),
    /// A task of the master ended unexpectedly.
    Internal(String),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolError::BootFailed(m) | PoolError::TemplateUnusable(m) => f.write_str(m),
            PoolError::Internal(m) => write!(f, "the pool stopped unexpectedly: {m}"),
        }
    }
}

impl std::error::Error for PoolError {}

/// The master's machinery, running on `runtime`.
pub struct Pool {
    pub bound: Vec<Bound>,
    /// Starts the graceful shutdown.
    pub trigger: Trigger,
    /// Asks the supervisor (reload, the workers list, stop).
    pub control: mpsc::UnboundedSender<Control>,
    /// Ends when the pool has stopped: Err when it stopped on its own.
    pub lifecycle: JoinHandle<Result<(), PoolError>>,
}

impl Pool {
    /// Binds the listeners (errors surface here) and starts the supervisor; `notifier` is
    /// systemd's, when it asked for notifications.
    pub fn start(
        config: Arc<Config>,
        runtime: &Driver,
        notifier: Option<Notifier>,
    ) -> Result<Pool, StartError> {
        if config.pool.template {
            // Workers forked from the template are orphaned at once (double fork) and land
            // here, so the master reaps them and sees their exit status (docs/pool.md).
            // SAFETY: prctl with an integer option and argument; no memory is passed.
            if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(StartError::Pool(PoolStartError::Subreaper(e)));
            }
        }
        let _entered = runtime.handle().enter();
        let capacity = match config.pool.max_queue_size {
            0 => config.http.queue_size,
            n => n,
        };
        let (submitter, inbox) = dispatch::queue(capacity);
        let server = Server::start(config.clone(), runtime.handle(), submitter.clone())?;
        let bound = server.bound.clone();
        let spawner = process::Spawner::from_self(&bound)
            .map_err(|e| StartError::Pool(PoolStartError::CommandLine(e)))?;
        let stats = Arc::new(metrics::PoolStats::new(submitter.clone()));
        if config.pool.debug {
            stats.set_on_demand();
        }
        let (control, control_rx) = mpsc::unbounded_channel();
        let mode = Arc::new(status::PoolMode {
            pool: stats.clone(),
            control: control.clone(),
        });
        observe::start(
            &config,
            observe::Side {
                server: ServerMetrics::of(&server),
                mode,
                shutdown: server.shutdown(),
            },
        )?;
        if let Some(notifier) = &notifier {
            let stats = stats.clone();
            let healthy = move || stats.healthy();
            runtime
                .handle()
                .spawn(crate::systemd::watchdog(notifier.clone(), healthy));
        }
        let announce = notifier.clone().map(|n| {
            let listening = bound.iter().map(ToString::to_string).collect::<Vec<_>>();
            (
                n,
                // Debug mode keeps no worker between requests.
                announce::Announcer::new(
                    listening.join(", "),
                    if config.pool.debug {
                        0
                    } else {
                        config.pool.num_workers
                    },
                ),
            )
        });
        let supervisor = Supervisor::new(
            config.clone(),
            spawner,
            stats,
            (submitter, inbox),
            (control.clone(), control_rx),
            announce,
        );
        let watch = match &config.http.watch {
            Some(watch) => Some(start_watch(watch, control.clone())?),
            None => None,
        };
        let supervisor = runtime.handle().spawn(supervisor.run());
        let trigger = server.trigger();
        let lifecycle = runtime.handle().spawn(lifecycle(
            server,
            supervisor,
            control.clone(),
            config.http.shutdown_timeout,
            watch,
            notifier,
        ));
        tracing::info!(
            workers = config.pool.num_workers,
            template = config.pool.template,
            debug = config.pool.debug,
            "rr pool master started"
        );
        if config.pool.debug {
            tracing::info!(
                "http.pool.debug: each request is served by a worker started for it alone (at \
                 most {} at once)",
                config.pool.num_workers
            );
        }
        Ok(Pool {
            bound,
            trigger,
            control,
            lifecycle,
        })
    }
}

/// `http.watch`: a burst of changes asks the supervisor for a reload, as SIGHUP does.
fn start_watch(
    config: &crate::config::WatchConfig,
    control: mpsc::UnboundedSender<Control>,
) -> Result<watch::Watch, StartError> {
    let watching = watch::start(config, move |change| {
        match &change.first {
            Some(path) => tracing::info!(
                events = change.events,
                "rr watch: {} changed: reloading workers",
                path.display()
            ),
            None => tracing::info!("rr watch: file events were lost: reloading workers"),
        }
        let _ = control.send(Control::Reload);
    })
    .map_err(|e| StartError::Pool(PoolStartError::Watch(std::io::Error::other(e))))?;
    let paths: Vec<_> = config
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    tracing::info!(
        extensions = config.extensions.join(","),
        debounce_ms = config.debounce.as_millis() as u64,
        "rr watch: reloading workers when files change under {}",
        paths.join(", ")
    );
    Ok(watching)
}

/// Serve until shutdown (signal or `stop()`) or a fatal pool error; then let connections finish
/// (the supervisor keeps dispatching), then stop the workers. The watcher, if any, lives as
/// long.
async fn lifecycle(
    mut server: Server,
    mut supervisor: JoinHandle<Result<(), PoolError>>,
    control: mpsc::UnboundedSender<Control>,
    shutdown_timeout: Duration,
    _watch: Option<watch::Watch>,
    notifier: Option<Notifier>,
) -> Result<(), PoolError> {
    let mut shutdown = server.shutdown();
    let joined = |r: Result<Result<(), PoolError>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(PoolError::Internal(format!("the supervisor failed: {e}"))))
    };
    tokio::select! {
        _ = shutdown.triggered() => {}
        result = &mut supervisor => {
            let result = joined(result);
            if let Some(notifier) = &notifier {
                let why = match &result {
                    Ok(()) => "the pool stopped".to_owned(),
                    Err(e) => format!("stopping: {e}"),
                };
                notifier.stopping(why);
            }
            server.begin_shutdown();
            server.drained(shutdown_timeout).await;
            return result;
        }
    }
    if let Some(notifier) = &notifier {
        notifier.stopping(format!(
            "stopping: draining connections (at most {shutdown_timeout:?}), then the workers"
        ));
    }
    tracing::info!("rr pool: draining connections, then stopping workers");
    if !server.drained(shutdown_timeout).await {
        tracing::warn!("connections still open after http.shutdown_timeout ({shutdown_timeout:?})");
    }
    let _ = control.send(Control::Stop);
    joined(supervisor.await)
}

/// Sleeps until `at`; never wakes without one (a `select!` branch that is off).
async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
