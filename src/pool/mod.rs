//! Pool mode (`http.pool.num_workers` > 0): this process is the master. It owns the listeners,
//! the HTTP server, the offloads and the supervisor, and runs no request itself; N worker
//! processes run the script. Threads, frames and failure handling: docs/pool.md.
//!
//! # Layout
//! - `process`     starting a worker (re-exec of this php with its argv, env and a socketpair,
//!   or the descriptors for one forked from the template); reaping; memory.
//! - `template`    template mode: the template process, fork orders, its restarts and reload.
//! - `handle`      one task per worker: boot, request out, answer frames back, exec_ttl.
//! - `supervisor`  the worker table: dispatch, crashes, reload, stop.
//! - `lines`       requests waiting for an in-place or a one-shot (isolated path) worker.
//! - `rules`       the supervisor's decisions, pure functions of the worker table (unit-tested).
//! - `slot`        one worker in the supervisor's table; the workers list; control messages.
//! - `limits`      when a worker must go (max_jobs, memory, ttl, idle_ttl) and boot backoff.
//! - `metrics`     gauges and counters, the Prometheus text.
//! - `status`      the status (health, ready, workers, reload) and metrics listeners.
mod ahead;
mod handle;
mod limits;
mod lines;
mod metrics;
mod process;
mod rules;
mod slot;
mod status;
mod supervisor;
mod template;

pub use supervisor::WorkerInfo;

use crate::config::{Config, IoDriver};
use crate::dispatch::{self, Reply};
use crate::request::form::Tree;
use crate::request::multipart::Upload;
use crate::runtime::Driver;
use crate::server::shutdown::Trigger;
use crate::server::{Bound, Server, StartError};
use crate::worker::{RespondError, Wait};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use supervisor::{Control, Supervisor};
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

/// The master's engine behind `RR\Worker`: `wait` blocks (ticking for PHP's signal handlers)
/// until the pool has stopped, then returns `Stop`.
pub struct Master {
    config: Arc<Config>,
    bound: Vec<Bound>,
    trigger: Trigger,
    control: mpsc::UnboundedSender<Control>,
    lifecycle: Option<JoinHandle<Result<(), String>>>,
    failure: Option<String>,
    /// Always empty: the master runs no request.
    uploads: Tree<Upload>,
    // Dropped last: every task above runs on it.
    runtime: Option<Driver>,
}

impl Master {
    pub fn start(config: Arc<Config>) -> Result<Master, StartError> {
        if config.pool.template {
            // Workers forked from the template are orphaned at once (double fork) and land
            // here, so the master reaps them and sees their exit status (docs/pool.md).
            // SAFETY: prctl with an integer option and argument; no memory is passed.
            if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(StartError::Pool(format!(
                    "http.pool.template: cannot become the child subreaper of forked workers: {e}"
                )));
            }
        }
        // One current-thread runtime, driven by its own thread whatever the script does
        // meanwhile: a request never hops between threads in the master. (A multi-thread
        // runtime with one worker thread cost ~5% more CPU per pool hello request; with two,
        // ~2 futex wake-ups per request and 8-18% fewer requests/s.)
        let runtime = Driver::new(IoDriver::Thread, Duration::ZERO).map_err(StartError::Runtime)?;
        let _entered = runtime.handle().enter();
        let capacity = match config.pool.max_queue_size {
            0 => config.http.queue_size,
            n => n,
        };
        let (submitter, inbox) = dispatch::queue(capacity);
        let server = Server::start(config.clone(), runtime.handle(), submitter.clone())?;
        let bound = server.bound.clone();
        let spawner = process::Spawner::from_self(&bound)
            .map_err(|e| StartError::Pool(format!("cannot find this php's command line: {e}")))?;
        let stats = Arc::new(metrics::PoolStats::new(submitter.clone()));
        let (control, control_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(status::Shared {
            pool: stats.clone(),
            http: server.stats.clone(),
            velox: server.velox.clone(),
            control: control.clone(),
            shutdown: server.shutdown(),
        });
        for (addr, endpoint, key) in [
            (config.status, status::Endpoint::Status, "status.address"),
            (config.metrics, status::Endpoint::Metrics, "metrics.address"),
        ] {
            let Some(addr) = addr else { continue };
            let bound = status::start(addr, endpoint, shared.clone(), config.http.clone())
                .map_err(|source| StartError::Bind { addr, key, source })?;
            tracing::info!("rr {} on http://{bound}", key.trim_end_matches(".address"));
        }
        let supervisor = Supervisor::new(
            config.clone(),
            spawner,
            stats,
            (submitter, inbox),
            (control.clone(), control_rx),
        );
        let supervisor = runtime.handle().spawn(supervisor.run());
        let trigger = server.trigger();
        let lifecycle = runtime.handle().spawn(lifecycle(
            server,
            supervisor,
            control.clone(),
            config.http.shutdown_timeout,
        ));
        tracing::info!(
            workers = config.pool.num_workers,
            template = config.pool.template,
            "rr pool master started"
        );
        drop(_entered);
        Ok(Master {
            config,
            bound,
            trigger,
            control,
            lifecycle: Some(lifecycle),
            failure: None,
            uploads: Tree::new(),
            runtime: Some(runtime),
        })
    }

    pub fn bound(&self) -> &[Bound] {
        &self.bound
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn uploads(&self) -> &Tree<Upload> {
        &self.uploads
    }

    /// Blocks for at most `tick`; `Stop` once the pool has stopped (see [`Master::failure`]).
    pub fn wait(&mut self, tick: Duration) -> Wait {
        let (Some(lifecycle), Some(runtime)) = (self.lifecycle.as_mut(), self.runtime.as_ref())
        else {
            return Wait::Stop;
        };
        let ended = runtime.wait(async {
            tokio::select! {
                result = lifecycle => Some(result),
                _ = tokio::time::sleep(tick) => None,
            }
        });
        match ended {
            None => Wait::Tick,
            Some(result) => {
                self.lifecycle = None;
                self.failure = match result {
                    Ok(Ok(())) => None,
                    Ok(Err(message)) => Some(message),
                    Err(e) => Some(format!("the pool stopped unexpectedly: {e}")),
                };
                Wait::Stop
            }
        }
    }

    pub fn failure(&self) -> Option<String> {
        self.failure.clone()
    }

    /// The workers, for the admin endpoint and `RR\workers()`.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        let Some(runtime) = self.runtime.as_ref() else {
            return Vec::new();
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.control.send(Control::List(tx));
        runtime.wait(rx).unwrap_or_default()
    }

    pub fn respond(
        &mut self,
        _: StatusCode,
        _: HeaderMap,
        _: Bytes,
        _: bool,
    ) -> Result<(), RespondError> {
        Err(RespondError::NoRequest)
    }

    pub fn reply(&mut self, _: Reply) -> Result<(), RespondError> {
        Err(RespondError::NoRequest)
    }

    pub fn has_pending(&self) -> bool {
        false
    }

    pub fn stop(&self) {
        self.trigger.fire();
    }

    pub fn is_stopping(&self) -> bool {
        self.lifecycle.is_none()
    }

    /// The script ended (normally or not): stop the pool if it still runs, then the runtime.
    pub fn finish(mut self) {
        if let (Some(lifecycle), Some(runtime)) = (self.lifecycle.take(), self.runtime.as_ref()) {
            self.trigger.fire();
            let limit = self.config.http.shutdown_timeout + self.config.pool.destroy_timeout;
            let _ = runtime.wait(async { tokio::time::timeout(limit, lifecycle).await });
        }
        drop(self.runtime.take());
    }
}

/// Serve until shutdown (signal or `stop()`) or a fatal pool error; then let connections finish
/// (the supervisor keeps dispatching), then stop the workers.
async fn lifecycle(
    mut server: Server,
    mut supervisor: JoinHandle<Result<(), String>>,
    control: mpsc::UnboundedSender<Control>,
    shutdown_timeout: Duration,
) -> Result<(), String> {
    let mut shutdown = server.shutdown();
    let joined = |r: Result<Result<(), String>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(format!("the supervisor failed: {e}")))
    };
    tokio::select! {
        _ = shutdown.triggered() => {}
        result = &mut supervisor => {
            server.begin_shutdown();
            server.drained(shutdown_timeout).await;
            return joined(result);
        }
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
