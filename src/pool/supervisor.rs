//! The supervisor: one task that feeds the master's [`Machine`] what happens (requests off the
//! queue, the workers' tasks' events, asks from outside, the clock) and applies what it
//! decides: starts workers, hands them requests, stops them, answers 503/502, logs, counts,
//! tells systemd. The decisions themselves are in [`super::machine`]; here are the channels,
//! the processes and the jobs, filed by the numbers the machine knows them by.
use super::ahead;
use super::announce::{Announcer, Facts};
use super::handle::{self, Limits, Start};
use super::lines::{self, Waiting};
use super::machine::{Effect, Input, Machine, NotHanded, Notice, Refusal, Snapshot};
use super::message::{Command, Control, Event, Order, Reason};
use super::metrics::PoolStats;
use super::process::{self, Spawner};
use super::rules::AfterBootFailure;
use super::templates;
use super::PoolError;
use crate::config::Config;
use crate::dispatch::{HeldSlot, Inbox, Job, Reply, Submitter};
use crate::systemd::{Message, Notifier};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How often limits (ttl, idle_ttl), reload progress and signals are looked at.
const TICK: Duration = Duration::from_millis(50);
/// How often stray orphans are reaped in template mode (see `process::reap_strays`).
const REAP_EVERY: Duration = Duration::from_secs(1);

pub struct Supervisor {
    config: Arc<Config>,
    machine: Machine,
    spawner: Spawner,
    stats: Arc<PoolStats>,
    inbox: Inbox,
    control: mpsc::UnboundedReceiver<Control>,
    control_tx: mpsc::UnboundedSender<Control>,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    /// Requests waiting for a worker, by number, with the queue slot each keeps taken.
    jobs: HashMap<u64, (Job, Option<HeldSlot>)>,
    next_job: u64,
    /// Where each worker's task takes its commands.
    workers: HashMap<u64, mpsc::Sender<Command>>,
    queue: Submitter,
    /// Template mode: where fork orders go, and the template task.
    template: Option<(mpsc::UnboundedSender<Order>, JoinHandle<()>)>,
    last_reap: Instant,
    /// systemd's notifications (READY, RELOADING, STATUS), when it asked for them.
    announce: Option<(Notifier, Announcer)>,
    /// Set by the machine's `Exit`.
    outcome: Option<Result<(), PoolError>>,
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
        let template = config.pool.template.then(|| {
            let (orders, rx) = mpsc::unbounded_channel();
            let settings = templates::Settings {
                boot_timeout: config.pool.boot_timeout,
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
            machine: Machine::new(config.pool.clone(), Instant::now()),
            config,
            spawner,
            stats,
            inbox,
            control,
            control_tx,
            events_tx,
            events,
            jobs: HashMap::new(),
            next_job: 1,
            workers: HashMap::new(),
            queue,
            template,
            last_reap: Instant::now(),
            announce,
            outcome: None,
        }
    }

    /// Runs until stopped; Err when workers kept failing to boot.
    pub async fn run(mut self) -> Result<(), PoolError> {
        self.step(Input::Start);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while self.outcome.is_none() {
            let expires = self.machine.deadline();
            let input = tokio::select! {
                Some(event) = self.events.recv() => Some(self.input_of(event)),
                job = self.inbox.recv(), if !self.machine.stopping() => Some(match job {
                    Some(job) => Input::Arrived(self.file(job)),
                    None => Input::Stop,
                }),
                _ = super::sleep_until(expires), if expires.is_some() => Some(Input::Deadline),
                _ = tick.tick() => {
                    self.housekeeping();
                    Some(Input::Tick)
                }
                Some(control) = self.control.recv() => self.on_control(control),
            };
            if let Some(input) = input {
                self.step(input);
            }
        }
        if let Some((orders, task)) = self.template.take() {
            let _ = orders.send(Order::Stop);
            let _ = task.await;
        }
        self.outcome.take().unwrap_or(Ok(()))
    }

    /// Feeds the machine one input and applies what it decides, then what comes of that (the
    /// outcome of a start, requests that did not reach their worker; last in, first fed, so
    /// requests put back at the head of their line end in their order), then the requests
    /// queued meanwhile.
    fn step(&mut self, input: Input) {
        let mut next = Some(input);
        let mut inputs = Vec::new();
        while let Some(input) = next.take().or_else(|| inputs.pop()) {
            for effect in self.machine.on(input, Instant::now()) {
                self.apply(effect, &mut inputs);
            }
            if inputs.is_empty() && !self.machine.stopping() {
                next = self
                    .inbox
                    .try_recv()
                    .map(|job| Input::Arrived(self.file(job)));
            }
        }
    }

    /// Files a request under a new number, with a queue slot kept taken while it waits.
    fn file(&mut self, job: Job) -> Waiting {
        let number = self.next_job;
        self.next_job += 1;
        let waiting = Waiting {
            job: number,
            queued_at: job.queued_at,
            line: lines::line_of(&self.config.pool, &job.request.target),
            small: ahead::small(&job.request),
        };
        let held = self.queue.hold_slot();
        self.jobs.insert(number, (job, held));
        waiting
    }

    fn input_of(&mut self, event: Event) -> Input {
        match event {
            Event::Started {
                id,
                pid,
                generation,
            } => Input::Forked {
                worker: id,
                pid,
                generation,
            },
            Event::Ready { id } => Input::Booted { worker: id },
            Event::Done {
                id,
                memory,
                retire,
                took,
            } => Input::Answered {
                worker: id,
                memory,
                retire,
                took,
            },
            Event::Returned { id, jobs, why } => Input::Returned {
                worker: id,
                jobs: jobs.into_iter().map(|job| self.file(job)).collect(),
                why,
            },
            Event::Memory { id, memory } => Input::Memory { worker: id, memory },
            Event::Retire { id } => Input::RetireAsked { worker: id },
            Event::Reload { id } => Input::ReloadAsked { worker: id },
            Event::TemplateReady { generation } => Input::TemplateBooted { generation },
            Event::TemplateFailed(message) => Input::TemplateUnusable(message),
            Event::TemplateBootFailed(message) => Input::TemplateBootFailed(message),
            Event::Exited { id, end, detail } => {
                self.workers.remove(&id);
                Input::Exited {
                    worker: id,
                    end,
                    detail,
                }
            }
        }
    }

    fn on_control(&mut self, control: Control) -> Option<Input> {
        match control {
            Control::Reload => Some(Input::Reload),
            Control::List(tx) => {
                let _ = tx.send(self.machine.workers().iter().map(|s| s.info()).collect());
                None
            }
            Control::Stop => Some(Input::Stop),
        }
    }

    /// Signals and strays, before the machine's tick.
    fn housekeeping(&mut self) {
        if super::take_reload_request() {
            self.step(Input::Reload);
        }
        // The master's own log file is opened again by its PHP thread's wait (a tick).
        if super::take_log_reopen_request() {
            process::signal_own(libc::SIGUSR1);
        }
        if self.template.is_some() && self.last_reap.elapsed() >= REAP_EVERY {
            self.last_reap = Instant::now();
            process::reap_strays();
        }
    }

    /// Applies one effect; what comes of it for the machine goes to `inputs`.
    fn apply(&mut self, effect: Effect, inputs: &mut Vec<Input>) {
        match effect {
            Effect::Spawn { worker, oneshot } => inputs.push(self.start(worker, oneshot)),
            Effect::Hand { worker, job, ahead } => {
                if let Some(why) = self.hand(worker, job.job, ahead) {
                    inputs.push(Input::NotHanded { worker, job, why });
                }
            }
            Effect::Stop { worker } => {
                if let Some(commands) = self.workers.get(&worker) {
                    let _ = commands.try_send(Command::Stop);
                }
            }
            Effect::Refuse { job, why } => {
                if let Some((job, _)) = self.jobs.remove(&job) {
                    let _ = job.reply.send(match why {
                        Refusal::NoWorker => Reply::NoWorker,
                        Refusal::Stopping => Reply::Unavailable,
                        Refusal::BootFailed => Reply::Crashed,
                    });
                }
            }
            Effect::ReloadTemplate(generation) => {
                if let Some((orders, _)) = &self.template {
                    let _ = orders.send(Order::Reload(generation));
                }
            }
            Effect::CloseQueue => {
                self.inbox.close();
                while let Some(job) = self.inbox.try_recv() {
                    let _ = job.reply.send(Reply::Unavailable);
                }
            }
            Effect::Tell(notice) => self.tell(notice),
            Effect::Publish(snapshot) => self.publish(snapshot),
            Effect::Exit(result) => self.outcome = Some(result),
        }
    }

    /// Gives worker `worker` request `number`; why not, when it did not reach it.
    fn hand(&mut self, worker: u64, number: u64, ahead: bool) -> Option<NotHanded> {
        let (job, held) = self.jobs.remove(&number)?;
        if job.is_abandoned() {
            return Some(NotHanded::Abandoned);
        }
        let Some(commands) = self.workers.get(&worker) else {
            self.jobs.insert(number, (job, held));
            return Some(NotHanded::Closed);
        };
        match commands.try_send(Command::Run(Box::new(job))) {
            Ok(()) => {
                if ahead {
                    self.stats.sent_ahead();
                }
                None
            }
            Err(e) => {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => NotHanded::Full,
                    // Its task is ending; its Exited event is on the way.
                    mpsc::error::TrySendError::Closed(_) => NotHanded::Closed,
                };
                if let Command::Run(job) = e.into_inner() {
                    self.jobs.insert(number, (*job, held));
                }
                Some(why)
            }
        }
    }

    /// Starts worker `id`: re-executed, or ordered from the template.
    fn start(&mut self, id: u64, oneshot: bool) -> Input {
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
                Err(e) => {
                    return Input::SpawnFailed {
                        worker: id,
                        lack_of_resources: process::for_lack_of_resources(&e),
                        detail: e.to_string(),
                    }
                }
            },
        };
        // Room for the requests sent ahead, and a Stop behind them.
        let (commands, rx) = mpsc::channel(self.config.pool.send_ahead as usize + 2);
        let pool = &self.config.pool;
        let limits = Limits {
            control: self.control_tx.clone(),
            boot_timeout: pool.boot_timeout,
            exec_ttl: Some(pool.supervisor.exec_ttl).filter(|t| !t.is_zero()),
            destroy_timeout: pool.destroy_timeout,
            memory_limit: Some(pool.supervisor.max_worker_memory).filter(|&m| m > 0),
            recall_after: (pool.send_ahead > 0).then(|| ahead::recall_after(pool.send_ahead_wait)),
            send_timeout: self.config.http.send_timeout,
            answers: self.config.http.answer_limits(),
        };
        tracing::debug!(pid, id, oneshot, "worker started");
        self.workers.insert(id, commands);
        tokio::spawn(handle::run(id, start, rx, self.events_tx.clone(), limits));
        Input::Spawned { worker: id, pid }
    }

    /// Logs and counts what the machine noticed.
    fn tell(&mut self, notice: Notice) {
        let stats = &self.stats;
        match notice {
            Notice::Forked { worker, pid } => tracing::debug!(pid, id = worker, "worker forked"),
            Notice::Ready { pid, boot, forked } => {
                let boot_ms = boot.as_secs_f64() * 1000.0;
                tracing::debug!(pid, boot_ms, forked, "worker ready");
            }
            Notice::Booted {
                generation,
                after_failures,
            } => {
                if after_failures > 0 {
                    tracing::info!(
                        generation,
                        "workers boot again after {after_failures} failures"
                    );
                }
                stats.boot(None);
            }
            Notice::Stopped { pid, end } => tracing::debug!(pid, ?end, "worker stopped"),
            Notice::Replacing { pid, jobs, reason } => {
                tracing::info!(pid, jobs, reason = reason.as_str(), "replacing worker");
                stats.restarted(reason);
            }
            Notice::OverMemory {
                pid,
                memory,
                limit,
                forked,
            } => {
                let measure = match forked {
                    true => "private memory",
                    false => "RSS",
                };
                tracing::info!(
                    pid,
                    memory,
                    limit,
                    "worker above max_worker_memory ({measure}): replacing it"
                );
            }
            Notice::Died {
                pid,
                reason,
                detail,
            } => {
                stats.restarted(reason);
                match reason {
                    Reason::ExecTtl => {
                        tracing::warn!(pid, "a request exceeded exec_ttl: worker killed ({detail})")
                    }
                    _ => tracing::warn!(pid, "worker exited unexpectedly ({detail})"),
                }
            }
            Notice::NoResources {
                detail,
                serving,
                retry_in,
            } => {
                stats.spawn_failed();
                tracing::warn!(
                    serving,
                    "cannot start a worker now ({detail}): retrying in {retry_in:?}"
                );
            }
            Notice::BootFailed {
                message,
                failures,
                then,
                ever_booted,
                serving,
                generation,
                request_failed,
            } => {
                stats.restarted(Reason::BootFailure);
                stats.boot(Some(&message));
                match then {
                    AfterBootFailure::RetryIn(backoff) if ever_booted => tracing::error!(
                        generation,
                        failures,
                        serving,
                        "{message}; the running workers keep serving, retrying in {backoff:?}"
                    ),
                    AfterBootFailure::RetryIn(_) | AfterBootFailure::GiveUp => {
                        tracing::error!("{message}")
                    }
                    AfterBootFailure::FailRequest => tracing::error!(
                        failures,
                        "{message}; debug mode: {}",
                        match request_failed {
                            true => "the request it was started for gets 502",
                            false => "no request was waiting for it",
                        }
                    ),
                }
            }
            Notice::TemplateUnusable(message) => tracing::error!("{message}"),
            Notice::Reloading { generation } => {
                tracing::info!("reloading workers one by one");
                if let Some((notifier, announcer)) = &mut self.announce {
                    send(notifier, announcer.reload(generation));
                }
            }
            Notice::JobDone => stats.job_done(),
            Notice::SentBack { why, n } => stats.returned(why, n),
        }
    }

    fn publish(&mut self, snapshot: Snapshot) {
        self.stats.set_states(snapshot.counts);
        self.stats
            .set_reload(snapshot.generation, snapshot.reload_pending);
        if let Some((notifier, announcer)) = &mut self.announce {
            let facts = Facts {
                serving_current: snapshot.serving_current,
                generation: snapshot.generation,
                reload_pending: snapshot.reload_pending,
                boot_failures: snapshot.boot_failures,
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
