//! The master's engine behind `RR\Worker` in pool mode: it starts the pool's machinery
//! ([`crate::pool::Pool`]) on its own runtime and runs no request; `wait` blocks (ticking for
//! PHP's signal handlers) until the pool has stopped, then returns `Stop`.
use super::Wait;
use crate::config::{Config, IoDriver};
use crate::ipc::WorkerInfo;
use crate::pool::{Control, Pool, PoolError};
use crate::request::form::Tree;
use crate::request::multipart::Upload;
use crate::runtime::scheduling::ThreadPolicy;
use crate::runtime::Driver;
use crate::server::shutdown::Trigger;
use crate::server::{Bound, StartError};
use crate::systemd::Notifier;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub struct Master {
    config: Arc<Config>,
    bound: Vec<Bound>,
    trigger: Trigger,
    control: mpsc::UnboundedSender<Control>,
    lifecycle: Option<JoinHandle<Result<(), PoolError>>>,
    failure: Option<PoolError>,
    /// Always empty: the master runs no request.
    uploads: Tree<Upload>,
    // Dropped last: every task above runs on it.
    runtime: Option<Driver>,
}

impl Master {
    /// `notifier`: systemd's notifications, sent by the pool (the master alone notifies).
    pub fn start(config: Arc<Config>, notifier: Option<Notifier>) -> Result<Master, StartError> {
        // One current-thread runtime, driven by its own thread whatever the script does
        // meanwhile: a request never hops between threads in the master. (A multi-thread
        // runtime with one worker thread cost ~5% more CPU per pool hello request; with two,
        // ~2 futex wake-ups per request and 8-18% fewer requests/s.)
        // http.pool.master_threads above 1: a multi-thread runtime, for machines whose
        // master would otherwise saturate one core (docs/pool.md, cost model).
        // http.pool.master_scheduling: batch by default, so the master's wake-ups do not
        // preempt the workers on a busy core (docs/pool.md, "Scheduling").
        let policy = ThreadPolicy {
            setting: "http.pool.master_scheduling",
            scheduling: config.pool.master_scheduling,
        };
        let runtime = match config.pool.master_threads {
            0 | 1 => Driver::new(IoDriver::Thread, Duration::ZERO, policy),
            n => Driver::multi_thread(n, policy),
        }
        .map_err(StartError::Runtime)?;
        let pool = Pool::start(config.clone(), &runtime, notifier)?;
        Ok(Master {
            config,
            bound: pool.bound,
            trigger: pool.trigger,
            control: pool.control,
            lifecycle: Some(pool.lifecycle),
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
                    Ok(Err(e)) => Some(e),
                    Err(e) => Some(PoolError::Internal(e.to_string())),
                };
                Wait::Stop
            }
        }
    }

    pub fn failure(&self) -> Option<&PoolError> {
        self.failure.as_ref()
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
