//! The supervisor: one task that owns the worker table. It dispatches each queued request to
//! an idle worker, replaces workers (limits, crashes, reload), backs off when workers cannot
//! boot, and stops them all at the end. See docs/pool.md for the rules.
use super::handle::{self, Command, End, Event, Limits};
use super::limits::{self, MAX_BOOT_FAILURES};
use super::metrics::{PoolStats, Reason, State};
use super::process::Spawner;
use super::slot::Slot;
pub use super::slot::{Control, WorkerInfo};
use crate::config::Config;
use crate::dispatch::{HeldSlot, Inbox, Job, Reply, Submitter};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often limits (ttl, idle_ttl), reload progress and signals are looked at.
const TICK: Duration = Duration::from_millis(50);

/// A request may be sent ahead to a busy worker (see [`Supervisor::pick_ahead`]) only when that
/// worker's recent requests took less than this: it then starts the request the moment it is
/// done with the current one, without a round trip through the master. Longer requests gain
/// nothing measurable from it and would make a request wait behind a slow one.
const AHEAD_BELOW: Duration = Duration::from_micros(500);

/// Only small requests are sent ahead: the frame must fit in the channel's socket buffer
/// while the worker is still busy (it reads it when done).
const AHEAD_MAX_BYTES: usize = 16 * 1024;

pub struct Supervisor {
    config: Arc<Config>,
    spawner: Spawner,
    stats: Arc<PoolStats>,
    inbox: Inbox,
    control: mpsc::UnboundedReceiver<Control>,
    control_tx: mpsc::UnboundedSender<Control>,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    slots: Vec<Slot>,
    /// The oldest request, taken off the queue and waiting for a worker; it keeps its queue
    /// slot taken so the queue holds `max_queue_size` requests in all.
    head: Option<Job>,
    held: Option<HeldSlot>,
    /// Requests sent ahead to a worker that died before it started them: served first.
    returned: std::collections::VecDeque<Job>,
    queue: Submitter,
    next_id: u64,
    boot_failures: u32,
    /// Workers are not started before this (backoff after boot failures).
    spawn_after: Instant,
    generation: u64,
    stopping: bool,
    fatal: Option<String>,
}

impl Supervisor {
    pub fn new(
        config: Arc<Config>,
        spawner: Spawner,
        stats: Arc<PoolStats>,
        (queue, inbox): (Submitter, Inbox),
        (control_tx, control): (
            mpsc::UnboundedSender<Control>,
            mpsc::UnboundedReceiver<Control>,
        ),
    ) -> Supervisor {
        let (events_tx, events) = mpsc::unbounded_channel();
        Supervisor {
            config,
            spawner,
            stats,
            inbox,
            control,
            control_tx,
            events_tx,
            events,
            slots: Vec::new(),
            head: None,
            held: None,
            returned: std::collections::VecDeque::new(),
            queue,
            next_id: 1,
            boot_failures: 0,
            spawn_after: Instant::now(),
            generation: 0,
            stopping: false,
            fatal: None,
        }
    }

    /// Runs until stopped; Err when workers kept failing to boot.
    pub async fn run(mut self) -> Result<(), String> {
        self.fill();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.dispatch();
            self.publish();
            if self.stopping && self.slots.is_empty() {
                break;
            }
            let allocate = self.config.pool.allocate_timeout;
            let expires = self.head.as_ref().map(|j| j.queued_at + allocate);
            let take = self.head.is_none() && !self.stopping;
            tokio::select! {
                Some(event) = self.events.recv() => self.on_event(event),
                job = self.inbox.recv(), if take => match job {
                    Some(job) => {
                        self.held = self.queue.hold_slot();
                        self.head = Some(job);
                    }
                    None => self.begin_stop(),
                },
                _ = sleep_until(expires), if expires.is_some() => {
                    if let Some(job) = self.take_head() {
                        let _ = job.reply.send(Reply::NoWorker);
                    }
                }
                _ = tick.tick() => self.housekeeping(),
                Some(control) = self.control.recv() => self.on_control(control),
            }
        }
        match self.fatal.take() {
            Some(message) => Err(message),
            None => Ok(()),
        }
    }

    /// Hands queued requests to idle workers, most recently active first (warm caches).
    fn dispatch(&mut self) {
        if self.stopping {
            self.inbox.close();
            for job in self
                .head
                .take()
                .into_iter()
                .chain(std::iter::from_fn(|| self.inbox.try_recv()))
            {
                let _ = job.reply.send(Reply::Unavailable);
            }
            return;
        }
        let allocate = self.config.pool.allocate_timeout;
        loop {
            let ahead = match self.pick_idle() {
                Some(i) => Some((i, false)),
                None => self.pick_ahead().map(|i| (i, true)),
            };
            let Some((i, ahead)) = ahead else { return };
            let Some(job) = self
                .returned
                .pop_front()
                .or_else(|| self.take_head())
                .or_else(|| self.inbox.try_recv())
            else {
                return;
            };
            if job.is_abandoned() {
                continue;
            }
            if job.queued_at.elapsed() > allocate {
                let _ = job.reply.send(Reply::NoWorker);
                continue;
            }
            if ahead && !small(&job) {
                // Waits for an idle worker instead.
                self.held = self.queue.hold_slot();
                self.head = Some(job);
                return;
            }
            let slot = &mut self.slots[i];
            match slot.commands.try_send(Command::Run(Box::new(job))) {
                Ok(()) => {
                    if !ahead {
                        slot.job_since = Instant::now();
                    }
                    slot.ahead = ahead;
                    slot.state = State::Busy;
                    slot.last_active = Instant::now();
                }
                Err(e) => {
                    // Its task is ending; its Exited event is on the way.
                    slot.state = State::Stopping;
                    if let Command::Run(job) = e.into_inner() {
                        self.returned.push_front(*job);
                    }
                }
            }
        }
    }

    /// A busy worker that may get the next request ahead: its recent requests were short and
    /// so far the current one is too, it holds none ahead yet, it is of the current generation
    /// and its `max_jobs` leaves room.
    fn pick_ahead(&self) -> Option<usize> {
        let max_jobs = self.config.pool.max_jobs;
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.state == State::Busy
                    && !s.ahead
                    && s.recent < AHEAD_BELOW
                    && s.job_since.elapsed() < AHEAD_BELOW
                    && s.generation == self.generation
                    && (max_jobs == 0 || s.jobs + 2 < max_jobs)
            })
            .min_by_key(|(_, s)| s.recent)
            .map(|(i, _)| i)
    }

    fn take_head(&mut self) -> Option<Job> {
        self.held = None;
        self.head.take()
    }

    fn pick_idle(&self) -> Option<usize> {
        let current = self.generation;
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == State::Idle)
            .max_by_key(|(_, s)| (s.generation == current, s.last_active))
            .map(|(i, _)| i)
    }

    fn slot(&mut self, id: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Ready { id } => {
                self.boot_failures = 0;
                if let Some(i) = self.slot(id) {
                    let slot = &mut self.slots[i];
                    slot.state = State::Idle;
                    slot.last_active = Instant::now();
                    tracing::debug!(pid = slot.pid, "worker ready");
                    if self.stopping {
                        self.retire(i, None);
                    }
                }
            }
            Event::Done { id, rss, busy } => {
                self.stats.job_done();
                let Some(i) = self.slot(id) else { return };
                let slot = &mut self.slots[i];
                slot.jobs += 1;
                slot.last_active = Instant::now();
                slot.recent = (slot.recent * 3 + busy) / 4;
                if slot.ahead {
                    // It started the request it held ahead: still busy.
                    slot.ahead = false;
                    slot.job_since = Instant::now();
                } else if slot.state == State::Busy {
                    slot.state = State::Idle;
                }
                if self.stopping {
                    return self.retire(i, None);
                }
                let reason = limits::after_answer(&self.config.pool, &slot.life(), rss);
                if reason == Some(Reason::MaxMemory) {
                    let limit = self.config.pool.supervisor.max_worker_memory;
                    tracing::info!(
                        pid = slot.pid,
                        rss,
                        limit,
                        "worker above max_worker_memory: replacing it"
                    );
                }
                if reason.is_some() {
                    self.retire(i, reason);
                }
            }
            Event::Exited { id, end, detail } => self.on_exit(id, end, detail),
            Event::Returned(job) => {
                tracing::info!("a request sent ahead to a worker that ended goes to another one");
                self.returned.push_back(*job);
            }
        }
    }

    fn on_exit(&mut self, id: u64, end: End, detail: String) {
        let Some(i) = self.slot(id) else { return };
        let slot = self.slots.remove(i);
        if slot.state == State::Stopping {
            // Retired on purpose; its replacement was started then.
            tracing::debug!(pid = slot.pid, ?end, "worker stopped");
            return;
        }
        match end {
            End::BootFailed => {
                self.stats.restarted(Reason::BootFailure);
                self.boot_failed(format!(
                    "worker pid {} exited before its first waitRequest() ({detail})",
                    slot.pid
                ));
            }
            End::ExecTimeout => {
                self.stats.restarted(Reason::ExecTtl);
                tracing::warn!(
                    pid = slot.pid,
                    "a request exceeded exec_ttl: worker killed ({detail})"
                );
            }
            End::Crashed | End::Stopped => {
                self.stats.restarted(Reason::Crash);
                tracing::warn!(pid = slot.pid, "worker exited unexpectedly ({detail})");
            }
        }
        self.fill();
    }

    fn boot_failed(&mut self, message: String) {
        self.boot_failures += 1;
        tracing::error!("{message}");
        if self.boot_failures >= MAX_BOOT_FAILURES {
            self.fatal = Some(format!(
                "{} workers in a row failed to boot; giving up. The last: {message}",
                self.boot_failures
            ));
            self.begin_stop();
            return;
        }
        self.spawn_after = Instant::now() + limits::backoff(self.boot_failures);
    }

    /// Tells worker `i` to stop once it is idle (now, for an idle or booting one); its
    /// replacement starts at once.
    fn retire(&mut self, i: usize, reason: Option<Reason>) {
        let slot = &mut self.slots[i];
        slot.state = State::Stopping;
        let _ = slot.commands.try_send(Command::Stop);
        if let Some(reason) = reason {
            tracing::info!(
                pid = slot.pid,
                jobs = slot.jobs,
                reason = reason.as_str(),
                "replacing worker"
            );
            self.stats.restarted(reason);
        }
        self.fill();
    }

    /// Starts workers until `num_workers` are up (booting, idle or busy).
    fn fill(&mut self) {
        if self.stopping || Instant::now() < self.spawn_after {
            return;
        }
        let live = |s: &&Slot| s.state != State::Stopping;
        while self.slots.iter().filter(live).count() < self.config.pool.num_workers {
            let id = self.next_id;
            self.next_id += 1;
            let process = match self.spawner.spawn(id) {
                Ok(process) => process,
                Err(e) => {
                    self.stats.restarted(Reason::BootFailure);
                    self.boot_failed(format!("cannot start a worker: {e}"));
                    return;
                }
            };
            let (commands, rx) = mpsc::channel(2);
            let pool = &self.config.pool;
            let limits = Limits {
                control: self.control_tx.clone(),
                boot_timeout: pool.boot_timeout,
                exec_ttl: Some(pool.supervisor.exec_ttl).filter(|t| !t.is_zero()),
                destroy_timeout: pool.destroy_timeout,
                watch_memory: pool.supervisor.max_worker_memory > 0,
            };
            tracing::debug!(pid = process.pid, id, "worker started");
            let now = Instant::now();
            self.slots.push(Slot {
                id,
                pid: process.pid,
                state: State::Booting,
                jobs: 0,
                started: now,
                last_active: now,
                generation: self.generation,
                commands,
                ahead: false,
                recent: Duration::ZERO,
                job_since: now,
            });
            tokio::spawn(handle::run(id, process, rx, self.events_tx.clone(), limits));
        }
    }

    fn housekeeping(&mut self) {
        if super::take_reload_request() {
            self.reload();
        }
        let pool = &self.config.pool;
        let expired = self.slots.iter().enumerate().find_map(|(i, s)| {
            let idle = s.state == State::Idle;
            idle.then(|| limits::while_idle(pool, &s.life()))
                .flatten()
                .map(|reason| (i, reason))
        });
        if let Some((i, reason)) = expired {
            self.retire(i, Some(reason));
        }
        // Reload one by one: the next old worker goes when no replacement is still booting.
        let booting = self.slots.iter().any(|s| s.state == State::Booting);
        let stale = self
            .slots
            .iter()
            .position(|s| s.state == State::Idle && s.generation < self.generation);
        if let (false, Some(i)) = (booting, stale) {
            self.retire(i, Some(Reason::Reload));
        }
        self.fill();
    }

    fn reload(&mut self) {
        if self.stopping {
            return;
        }
        self.generation += 1;
        tracing::info!("reloading workers one by one");
    }

    fn on_control(&mut self, control: Control) {
        match control {
            Control::Reload => self.reload(),
            Control::List(tx) => {
                let _ = tx.send(self.slots.iter().map(Slot::info).collect());
            }
            Control::Stop => self.begin_stop(),
        }
    }

    /// No new work: idle and booting workers stop now, busy ones when their request is done.
    fn begin_stop(&mut self) {
        self.stopping = true;
        for i in 0..self.slots.len() {
            if matches!(self.slots[i].state, State::Idle | State::Booting) {
                self.retire(i, None);
            }
        }
    }

    fn publish(&self) {
        let mut counts = [0; 4];
        for slot in &self.slots {
            counts[slot.state as usize] += 1;
        }
        self.stats.set_states(counts);
    }
}

/// Small enough to send ahead: see [`AHEAD_MAX_BYTES`].
fn small(job: &Job) -> bool {
    let r = &job.request;
    let headers: usize = r
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 8)
        .sum();
    r.body.len() + r.uri.len() + headers < AHEAD_MAX_BYTES
        && r.form.is_none()
        && r.uploads.is_empty()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
