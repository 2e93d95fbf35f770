//! The supervisor: one task that owns the worker table. It dispatches each queued request to
//! an idle worker, replaces workers (limits, crashes, reload), backs off when workers cannot
//! boot, and stops them all at the end. See docs/pool.md for the rules.
use super::ahead;
use super::announce::{Announcer, Facts};
use super::handle::{self, Limits, Start};
use super::limits;
use super::lines::{self, Line, Lines, Waiting};
use super::message::{Command, Control, End, Event, Order, Reason, Returned, State};
use super::metrics::PoolStats;
use super::process::{self, Spawner};
use super::rules::{self, AfterBootFailure, Starts, Table};
use super::slot::Slot;
use super::templates;
use super::PoolError;
use crate::config::Config;
use crate::dispatch::{Inbox, Job, Reply, Submitter};
use crate::systemd::{Message, Notifier};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often limits (ttl, idle_ttl), reload progress and signals are looked at.
const TICK: Duration = Duration::from_millis(50);
/// How often stray orphans are reaped in template mode (see `process::reap_strays`).
const REAP_EVERY: Duration = Duration::from_secs(1);
/// How soon a start that failed for lack of resources (descriptors, processes) is retried.
const SPAWN_RETRY: Duration = Duration::from_millis(250);

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
    /// Requests taken off the queue, waiting for an in-place or a one-shot worker.
    waiting: Lines,
    queue: Submitter,
    /// Template mode: where fork orders go, and the template task.
    template: Option<(mpsc::UnboundedSender<Order>, JoinHandle<()>)>,
    /// The generation of the newest template that booted (reload waits for it).
    template_generation: Option<u64>,
    last_reap: Instant,
    next_id: u64,
    /// A worker (or the template) reached its first `waitRequest()` once: from then on boot
    /// failures never stop the pool (the workers it has keep serving; docs/pool.md).
    ever_booted: bool,
    boot_failures: u32,
    /// Workers are not started before this (backoff after boot failures).
    spawn_after: Instant,
    generation: u64,
    stopping: bool,
    fatal: Option<PoolError>,
    /// systemd's notifications (READY, RELOADING, STATUS), when it asked for them.
    announce: Option<(Notifier, Announcer)>,
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
        announce: Option<(Notifier, Announcer)>,
    ) -> Supervisor {
        let (events_tx, events) = mpsc::unbounded_channel();
        let allocate = config.pool.allocate_timeout;
        let template = config.pool.template.then(|| {
            let (orders, rx) = mpsc::unbounded_channel();
            let settings = templates::Settings {
                boot_timeout: boot_timeout(&config),
                destroy_timeout: config.pool.destroy_timeout,
            };
            let task = tokio::spawn(templates::run(
                spawner.clone(),
                settings,
                rx,
                events_tx.clone(),
            ));
            (orders, task)
        });
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
            waiting: Lines::new(allocate),
            queue,
            template,
            template_generation: None,
            last_reap: Instant::now(),
            next_id: 1,
            ever_booted: false,
            boot_failures: 0,
            spawn_after: Instant::now(),
            generation: 0,
            stopping: false,
            fatal: None,
            announce,
        }
    }

    /// Runs until stopped; Err when workers kept failing to boot.
    pub async fn run(mut self) -> Result<(), PoolError> {
        self.fill();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.dispatch();
            self.publish();
            if self.stopping && self.slots.is_empty() {
                break;
            }
            let expires = self.waiting.deadline();
            tokio::select! {
                Some(event) = self.events.recv() => self.on_event(event),
                job = self.inbox.recv(), if !self.stopping => match job {
                    Some(job) => self.enqueue(job),
                    None => self.begin_stop(),
                },
                _ = super::sleep_until(expires), if expires.is_some() => self.waiting.expire(),
                _ = tick.tick() => self.housekeeping(),
                Some(control) = self.control.recv() => self.on_control(control),
            }
        }
        if let Some((orders, task)) = self.template.take() {
            let _ = orders.send(Order::Stop);
            let _ = task.await;
        }
        match self.fatal.take() {
            Some(message) => Err(message),
            None => Ok(()),
        }
    }

    /// A request taken off the queue waits in line for its kind of worker.
    fn enqueue(&mut self, job: Job) {
        let line = lines::line_of(&self.config.pool, &job.request.target);
        self.waiting.push(line, job, self.queue.hold_slot());
        if line == Line::OneShot {
            self.fill();
        }
    }

    /// Hands waiting requests to idle workers of their kind, most recently active first (warm
    /// caches).
    fn dispatch(&mut self) {
        if self.stopping {
            self.inbox.close();
            let queued = std::iter::from_fn(|| self.inbox.try_recv()).collect::<Vec<_>>();
            for job in self.waiting.drain().into_iter().chain(queued) {
                let _ = job.reply.send(Reply::Unavailable);
            }
            return;
        }
        while let Some(job) = self.inbox.try_recv() {
            self.enqueue(job);
        }
        for line in [Line::InPlace, Line::OneShot] {
            while let Some(i) = self.table().pick_idle(line == Line::OneShot) {
                let Some(Waiting { job, held }) = self.waiting.next(line) else {
                    break;
                };
                if let Err(job) = self.hand(i, job) {
                    self.waiting.put_back(line, Waiting { job: *job, held });
                    break;
                }
            }
        }
        // No worker idle: small requests go ahead to quick busy workers.
        while let Some(i) = (self.waiting.len(Line::InPlace) > 0)
            .then(|| self.table().pick_ahead(Instant::now()))
            .flatten()
        {
            let Some(Waiting { job, held }) = self.waiting.next(Line::InPlace) else {
                break;
            };
            if !ahead::small(&job.request) {
                self.waiting.put_back(Line::InPlace, Waiting { job, held });
                break;
            }
            if let Err(job) = self.hand(i, job) {
                self.waiting
                    .put_back(Line::InPlace, Waiting { job: *job, held });
                break;
            }
            self.stats.sent_ahead();
        }
    }

    /// Gives worker `i` a request; the request back when its task is ending.
    fn hand(&mut self, i: usize, job: Job) -> Result<(), Box<Job>> {
        let slot = &mut self.slots[i];
        match slot.commands.try_send(Command::Run(Box::new(job))) {
            Ok(()) => {
                if slot.inflight == 0 {
                    slot.current_since = Instant::now();
                }
                slot.state = State::Busy;
                slot.inflight += 1;
                slot.last_active = Instant::now();
                Ok(())
            }
            Err(e) => {
                if let mpsc::error::TrySendError::Closed(_) = e {
                    // Its task is ending; its Exited event is on the way.
                    slot.state = State::Stopping;
                }
                match e.into_inner() {
                    Command::Run(job) => Err(job),
                    Command::Stop => Ok(()),
                }
            }
        }
    }

    fn slot(&mut self, id: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Started {
                id,
                pid,
                generation,
            } => {
                if let Some(i) = self.slot(id) {
                    self.slots[i].pid = pid;
                    self.slots[i].generation = generation;
                    tracing::debug!(pid, id, "worker forked");
                }
            }
            Event::Retire { id } => {
                if let Some(i) = self.slot(id) {
                    if self.slots[i].state != State::Stopping {
                        self.retire(i, Some(Reason::Retired));
                    }
                }
            }
            Event::TemplateReady { generation } => {
                self.template_generation = Some(generation);
                self.booted();
                self.fill();
            }
            Event::TemplateFailed(message) => {
                tracing::error!("{message}");
                self.fatal = Some(PoolError::TemplateUnusable(message));
                self.begin_stop();
            }
            Event::TemplateBootFailed(message) => {
                self.stats.restarted(Reason::BootFailure);
                self.boot_failed(message);
            }
            Event::Ready { id } => {
                self.booted();
                if let Some(i) = self.slot(id) {
                    let slot = &mut self.slots[i];
                    slot.state = State::Idle;
                    slot.last_active = Instant::now();
                    // From the spawn (or fork order) to its first waitRequest().
                    let boot_ms = slot.started.elapsed().as_secs_f64() * 1000.0;
                    let forked = slot.forked;
                    tracing::debug!(pid = slot.pid, boot_ms, forked, "worker ready");
                    if self.stopping {
                        self.retire(i, None);
                    } else {
                        self.replace_stale();
                    }
                }
            }
            Event::Done {
                id,
                memory,
                retire,
                took,
            } => {
                self.stats.job_done();
                let Some(i) = self.slot(id) else { return };
                let slot = &mut self.slots[i];
                slot.jobs += 1;
                slot.release(1);
                slot.current_since = Instant::now();
                slot.answers_take = Some(ahead::smooth(slot.answers_take, took));
                slot.last_active = Instant::now();
                if slot.state == State::Stopping {
                    // Already told to stop: an answer to a request it held (send-ahead).
                    return;
                }
                if self.stopping || slot.oneshot {
                    // A one-shot worker ends after its request: not a restart.
                    return self.retire(i, None);
                }
                let reason = match retire {
                    true => Some(Reason::Retired),
                    false => limits::after_answer(&self.config.pool, &slot.life(), memory),
                };
                if reason == Some(Reason::MaxMemory) {
                    self.log_memory(i, memory);
                }
                if reason.is_some() {
                    self.retire(i, reason);
                }
            }
            Event::Memory { id, memory } => {
                let Some(i) = self.slot(id) else { return };
                let limit = self.config.pool.supervisor.max_worker_memory;
                let slot = &self.slots[i];
                let live = matches!(slot.state, State::Idle | State::Busy);
                if live && !slot.oneshot && memory.is_some_and(|m| m > limit) {
                    // A busy worker stops only after its current answer (Stop queues behind it).
                    self.log_memory(i, memory);
                    self.retire(i, Some(Reason::MaxMemory));
                }
            }
            Event::Returned { id, jobs, why } => {
                self.stats.returned(why, jobs.len());
                if let Some(i) = self.slot(id) {
                    let slot = &mut self.slots[i];
                    slot.release(jobs.len() as u32);
                    slot.declined |= why == Returned::Declined;
                }
                // Never started: back at the head of their lines, in their order.
                for job in jobs.into_iter().rev() {
                    let line = lines::line_of(&self.config.pool, &job.request.target);
                    let held = self.queue.hold_slot();
                    self.waiting.put_back(line, Waiting { job, held });
                }
            }
            Event::Exited { id, end, detail } => self.on_exit(id, end, detail),
        }
    }

    fn log_memory(&self, i: usize, memory: Option<u64>) {
        let slot = &self.slots[i];
        let limit = self.config.pool.supervisor.max_worker_memory;
        let measure = match slot.forked {
            true => "private memory",
            false => "RSS",
        };
        tracing::info!(
            pid = slot.pid,
            memory,
            limit,
            "worker above max_worker_memory ({measure}): replacing it"
        );
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
            End::NoResources => {
                self.stats.spawn_failed();
                tracing::warn!(
                    serving = self.serving(),
                    "cannot start a worker now ({detail}): retrying in {SPAWN_RETRY:?}"
                );
                self.spawn_after = Instant::now() + SPAWN_RETRY;
            }
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

    /// A worker or the template reached its first `waitRequest()`.
    fn booted(&mut self) {
        if self.boot_failures > 0 {
            tracing::info!(
                generation = self.generation,
                "workers boot again after {} failures",
                self.boot_failures
            );
        }
        self.ever_booted = true;
        self.boot_failures = 0;
        self.stats.boot(None);
    }

    /// A worker (or the template) could not boot: retry with backoff. Before any generation
    /// ever booted, too many in a row stop the pool (nothing serves, and a deploy this broken
    /// should fail loudly); after, never: the workers still running keep serving.
    fn boot_failed(&mut self, message: String) {
        self.boot_failures += 1;
        self.stats.boot(Some(&message));
        let debug = self.config.pool.debug;
        let backoff = match rules::after_boot_failure(debug, self.ever_booted, self.boot_failures) {
            AfterBootFailure::RetryIn(backoff) => backoff,
            AfterBootFailure::FailRequest => {
                // Debug mode: the worker was booted for the oldest request waiting.
                let failed = self.waiting.next(Line::OneShot);
                let answered = failed.is_some();
                if let Some(Waiting { job, .. }) = failed {
                    let _ = job.reply.send(Reply::Crashed);
                }
                tracing::error!(
                    failures = self.boot_failures,
                    "{message}; debug mode: {}",
                    match answered {
                        true => "the request it was started for gets 502",
                        false => "no request was waiting for it",
                    }
                );
                return;
            }
            AfterBootFailure::GiveUp => {
                tracing::error!("{message}");
                let who = match self.template {
                    Some(_) => "the template (or a worker forked from it)",
                    None => "workers",
                };
                self.fatal = Some(PoolError::BootFailed(format!(
                    "{who} failed to boot {} times in a row; giving up. The last: {message}",
                    self.boot_failures
                )));
                self.begin_stop();
                return;
            }
        };
        match self.ever_booted {
            true => tracing::error!(
                generation = self.generation,
                failures = self.boot_failures,
                serving = self.serving(),
                "{message}; the running workers keep serving, retrying in {backoff:?}"
            ),
            false => tracing::error!("{message}"),
        }
        self.spawn_after = Instant::now() + backoff;
    }

    /// Reload: once a worker of the new generation is ready and the pool holds more than
    /// `num_workers`, one old worker goes (`rules::Table::stale_to_retire`): no old worker
    /// leaves before its replacement serves, and load never holds a reload up.
    fn replace_stale(&mut self) {
        if let Some(i) = self.table().stale_to_retire() {
            self.retire(i, Some(Reason::Reload));
        }
    }

    /// The worker table, for the rules.
    fn table(&self) -> Table<'_> {
        Table {
            slots: &self.slots,
            pool: &self.config.pool,
            generation: self.generation,
            template_ready: self.template.is_none()
                || self.template_generation == Some(self.generation),
        }
    }

    fn serving(&self) -> usize {
        self.table().serving()
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

    /// Starts workers until `num_workers` are up (booting, idle or busy), and in template mode
    /// with isolated paths, one-shot workers for the isolated requests waiting plus one spare
    /// (so a fork is rarely on a request's path), at most `isolate_workers` at once.
    fn fill(&mut self) {
        if self.stopping || Instant::now() < self.spawn_after {
            return;
        }
        let Starts {
            mut in_place,
            mut oneshot,
        } = self.table().starts(self.waiting.len(Line::OneShot));
        while in_place + oneshot > 0 {
            let one = in_place == 0;
            match one {
                true => oneshot -= 1,
                false => in_place -= 1,
            }
            if !self.start(one) {
                return;
            }
        }
    }

    /// Starts one worker: re-executed, or ordered from the template. False on failure.
    fn start(&mut self, oneshot: bool) -> bool {
        let id = self.next_id;
        self.next_id += 1;
        let (start, pid) = match &self.template {
            Some((orders, _)) => {
                let (reply, forked) = tokio::sync::oneshot::channel();
                let _ = orders.send(Order::Fork { id, reply });
                (Start::Fork(forked), 0)
            }
            None => match self.spawner.spawn(id) {
                Ok(process) => {
                    let pid = process.pid;
                    (Start::Exec(Box::new(process)), pid)
                }
                Err(e) if process::for_lack_of_resources(&e) => {
                    // Out of descriptors or processes: the pool goes on with the workers it
                    // has and tries again soon; the script is not at fault.
                    self.stats.spawn_failed();
                    tracing::warn!(
                        serving = self.serving(),
                        "cannot start a worker now ({e}): retrying in {SPAWN_RETRY:?}"
                    );
                    self.spawn_after = Instant::now() + SPAWN_RETRY;
                    return false;
                }
                Err(e) => {
                    self.stats.restarted(Reason::BootFailure);
                    self.boot_failed(format!("cannot start a worker: {e}"));
                    return false;
                }
            },
        };
        // Room for the requests sent ahead, and a Stop behind them.
        let (commands, rx) = mpsc::channel(self.config.pool.send_ahead as usize + 2);
        let pool = &self.config.pool;
        let limits = Limits {
            control: self.control_tx.clone(),
            boot_timeout: boot_timeout(&self.config),
            exec_ttl: Some(pool.supervisor.exec_ttl).filter(|t| !t.is_zero()),
            destroy_timeout: pool.destroy_timeout,
            memory_limit: Some(pool.supervisor.max_worker_memory).filter(|&m| m > 0),
            recall_after: (pool.send_ahead > 0).then(|| ahead::recall_after(pool.send_ahead_wait)),
            send_timeout: self.config.http.send_timeout,
            answers: self.config.http.answer_limits(),
        };
        tracing::debug!(pid, id, oneshot, "worker started");
        let now = Instant::now();
        self.slots.push(Slot {
            id,
            pid,
            state: State::Booting,
            jobs: 0,
            started: now,
            last_active: now,
            current_since: now,
            generation: self.generation,
            commands,
            forked: self.template.is_some(),
            oneshot,
            inflight: 0,
            answers_take: None,
            declined: false,
        });
        tokio::spawn(handle::run(id, start, rx, self.events_tx.clone(), limits));
        true
    }

    fn housekeeping(&mut self) {
        if super::take_reload_request() {
            self.reload();
        }
        if self.template.is_some() && self.last_reap.elapsed() >= REAP_EVERY {
            self.last_reap = Instant::now();
            super::process::reap_strays();
        }
        let pool = &self.config.pool;
        // A spare one-shot worker is as fresh as its fork: ttl and idle_ttl do not apply.
        let expired = self.slots.iter().enumerate().find_map(|(i, s)| {
            let idle = s.state == State::Idle && !s.oneshot;
            idle.then(|| limits::while_idle(pool, &s.life()))
                .flatten()
                .map(|reason| (i, reason))
        });
        if let Some((i, reason)) = expired {
            self.retire(i, Some(reason));
        }
        self.fill();
    }

    fn reload(&mut self) {
        if self.stopping {
            return;
        }
        self.generation += 1;
        // A reload is asked for new code: the first worker of it boots now, whatever backoff
        // earlier failures (of the code it replaces) had reached.
        self.spawn_after = Instant::now();
        if let Some((orders, _)) = &self.template {
            let _ = orders.send(Order::Reload(self.generation));
        }
        tracing::info!("reloading workers one by one");
        if let Some((notifier, announcer)) = &mut self.announce {
            send(notifier, announcer.reload(self.generation));
        }
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

    fn publish(&mut self) {
        let mut counts = [0; 4];
        let mut serving_current = 0;
        for slot in &self.slots {
            counts[slot.state as usize] += 1;
            if !slot.oneshot
                && slot.generation == self.generation
                && matches!(slot.state, State::Idle | State::Busy)
            {
                serving_current += 1;
            }
        }
        self.stats.set_states(counts);
        let pending = self.table().stale().next().is_some();
        self.stats.set_reload(self.generation, pending);
        if let Some((notifier, announcer)) = &mut self.announce {
            let facts = Facts {
                serving_current,
                generation: self.generation,
                reload_pending: pending,
                boot_failures: self.boot_failures,
            };
            let stats = &self.stats;
            send(
                notifier,
                announcer.observe(facts, || stats.last_boot_error()),
            );
        }
    }
}

fn send(notifier: &Notifier, messages: Vec<Message>) {
    if !messages.is_empty() {
        notifier.send(&messages);
    }
}

/// How long a worker (or the template) may take to reach its first `waitRequest()`.
fn boot_timeout(config: &Config) -> Duration {
    config.pool.boot_timeout
}
