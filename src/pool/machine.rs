//! The master's decisions as one pure state machine: the worker table, the generation being
//! rolled out, boot failures, the requests waiting (by number). [`Machine::on`] takes one
//! [`Input`] and the time and returns the [`Effect`]s; it never spawns, sends, sleeps or reads
//! the clock. The supervisor gathers the inputs and applies the effects in one place; here the
//! transitions are unit-tested without processes, one test per fault of docs/pool.md
//! (`machine/tests.rs`). The inputs and effects are in `machine/io.rs`; the queries over the
//! table are [`super::rules`].
use super::limits;
use super::lines::{Line, Lines, Waiting};
use super::message::{End, Reason, Returned, State};
use super::rules::{self, AfterBootFailure, Starts, Table};
use super::slot::Slot;
use super::PoolError;
use crate::config::PoolConfig;
use std::time::{Duration, Instant};

mod io;
pub use io::{Effect, Input, NotHanded, Notice, Refusal, Snapshot};

/// How soon a start that failed for lack of resources (descriptors, processes) is retried.
pub const SPAWN_RETRY: Duration = Duration::from_millis(250);

/// The pool's life.
#[derive(Debug)]
enum Phase {
    Serving,
    /// No new work; the workers are stopping. With the error that stopped the pool, if one did.
    Stopping(Option<PoolError>),
    /// Every worker is gone (`Exit` was said).
    Exited,
}

pub struct Machine {
    pool: PoolConfig,
    slots: Vec<Slot>,
    /// Requests taken off the queue, waiting for an in-place or a one-shot worker.
    waiting: Lines,
    /// The generation of the newest template that booted (reload waits for it).
    template_generation: Option<u64>,
    next_id: u64,
    /// A worker (or the template) reached its first `waitRequest()` once: from then on boot
    /// failures never stop the pool (the workers it has keep serving; docs/pool.md).
    ever_booted: bool,
    boot_failures: u32,
    /// Workers are not started before this (backoff after boot failures).
    spawn_after: Instant,
    /// A `Spawn` waiting for its `Spawned` or `SpawnFailed`: starts go one at a time, so the
    /// first that fails stops the others.
    spawning: Option<u64>,
    generation: u64,
    phase: Phase,
    /// A worker's channel was full: nothing is handed until the next input (handing again at
    /// once could go round in circles).
    hold_dispatch: bool,
    out: Vec<Effect>,
}

impl Machine {
    pub fn new(pool: PoolConfig, now: Instant) -> Machine {
        Machine {
            waiting: Lines::new(pool.allocate_timeout),
            pool,
            slots: Vec::new(),
            template_generation: None,
            next_id: 1,
            ever_booted: false,
            boot_failures: 0,
            spawn_after: now,
            spawning: None,
            generation: 0,
            phase: Phase::Serving,
            hold_dispatch: false,
            out: Vec::new(),
        }
    }

    /// One step: the input's transition, then requests to idle (or quick busy) workers, then
    /// what to publish; once stopped and every worker gone, `Exit`.
    pub fn on(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        match input {
            Input::Start => self.fill(now),
            Input::Arrived(waiting) => self.arrived(waiting, now),
            Input::Spawned { worker, pid } => {
                self.spawning = None;
                if let Some(i) = self.slot(worker) {
                    self.slots[i].pid = pid;
                }
                self.fill(now);
            }
            Input::SpawnFailed {
                worker,
                lack_of_resources,
                detail,
            } => {
                self.spawning = None;
                if let Some(i) = self.slot(worker) {
                    self.slots.remove(i);
                }
                match lack_of_resources {
                    true => self.no_resources(detail, now),
                    false => self.boot_failed(format!("cannot start a worker: {detail}"), now),
                }
            }
            Input::NotHanded { worker, job, why } => {
                if let Some(i) = self.slot(worker) {
                    let slot = &mut self.slots[i];
                    slot.release(1);
                    if why == NotHanded::Closed {
                        slot.state = State::Stopping;
                    }
                }
                if why != NotHanded::Abandoned {
                    self.waiting.put_back(job);
                }
                self.hold_dispatch |= why == NotHanded::Full;
            }
            Input::Forked {
                worker,
                pid,
                generation,
            } => {
                if let Some(i) = self.slot(worker) {
                    self.slots[i].pid = pid;
                    self.slots[i].generation = generation;
                    self.tell(Notice::Forked { worker, pid });
                }
            }
            Input::Booted { worker } => self.on_booted(worker, now),
            Input::Answered {
                worker,
                memory,
                retire,
                took,
            } => self.answered(worker, memory, retire, took, now),
            Input::Memory { worker, memory } => self.measured(worker, memory, now),
            Input::RetireAsked { worker } => {
                if let Some(i) = self.slot(worker) {
                    if self.slots[i].state != State::Stopping {
                        self.retire(i, Some(Reason::Retired), now);
                    }
                }
            }
            Input::Returned { worker, jobs, why } => {
                self.tell(Notice::SentBack { why, n: jobs.len() });
                if let Some(i) = self.slot(worker) {
                    let slot = &mut self.slots[i];
                    slot.release(jobs.len() as u32);
                    slot.declined |= why == Returned::Declined;
                }
                // Never started: back at the head of their lines, in their order.
                for job in jobs.into_iter().rev() {
                    self.waiting.put_back(job);
                }
            }
            Input::Exited {
                worker,
                end,
                detail,
            } => self.exited(worker, end, detail, now),
            Input::TemplateBooted { generation } => {
                self.template_generation = Some(generation);
                self.booted();
                self.fill(now);
            }
            Input::TemplateBootFailed(message) => self.boot_failed(message, now),
            Input::TemplateUnusable(message) => {
                self.tell(Notice::TemplateUnusable(message.clone()));
                self.begin_stop(Some(PoolError::TemplateUnusable(message)), now);
            }
            Input::Reload => self.reload(now),
            Input::ReloadAsked { worker } => {
                // Asked by a worker of an older generation: a reload already replaces it.
                let current = self.generation;
                if self
                    .slot(worker)
                    .is_some_and(|i| self.slots[i].generation == current)
                {
                    self.reload(now);
                }
            }
            Input::Tick => self.housekeeping(now),
            Input::Deadline => {
                let out = &mut self.out;
                self.waiting.expire(now, |job| {
                    out.push(Effect::Refuse {
                        job,
                        why: Refusal::NoWorker,
                    })
                });
            }
            Input::Stop => self.begin_stop(None, now),
        }
        self.end_step(now)
    }

    /// When the oldest request waiting runs out of `allocate_timeout` (then: `Deadline`).
    pub fn deadline(&self) -> Option<Instant> {
        self.waiting.deadline()
    }

    /// Stopping: the queue is closed.
    pub fn stopping(&self) -> bool {
        !matches!(self.phase, Phase::Serving)
    }

    /// The worker table, for the workers list.
    pub fn workers(&self) -> &[Slot] {
        &self.slots
    }

    fn end_step(&mut self, now: Instant) -> Vec<Effect> {
        if !std::mem::take(&mut self.hold_dispatch) {
            self.dispatch(now);
        }
        self.publish();
        if let Phase::Stopping(fatal) = &mut self.phase {
            if self.slots.is_empty() {
                let result = fatal.take().map_or(Ok(()), Err);
                self.phase = Phase::Exited;
                self.out.push(Effect::Exit(result));
            }
        }
        std::mem::take(&mut self.out)
    }

    fn tell(&mut self, notice: Notice) {
        self.out.push(Effect::Tell(notice));
    }

    fn slot(&self, id: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }

    /// The worker table, for the rules.
    fn table(&self) -> Table<'_> {
        Table {
            slots: &self.slots,
            pool: &self.pool,
            generation: self.generation,
            template_ready: !self.pool.template
                || self.template_generation == Some(self.generation),
        }
    }

    /// A request taken off the queue waits in line for its kind of worker.
    fn arrived(&mut self, waiting: Waiting, now: Instant) {
        if self.stopping() {
            let why = Refusal::Stopping;
            self.out.push(Effect::Refuse {
                job: waiting.job,
                why,
            });
            return;
        }
        self.waiting.push(waiting);
        if waiting.line == Line::OneShot {
            self.fill(now);
        }
    }

    /// The next request of `line` still worth running (those past `allocate_timeout` get 503).
    fn next_waiting(&mut self, line: Line, now: Instant) -> Option<Waiting> {
        let out = &mut self.out;
        self.waiting.next(line, now, |job| {
            out.push(Effect::Refuse {
                job,
                why: Refusal::NoWorker,
            })
        })
    }

    /// Hands waiting requests to idle workers of their kind, most recently active first (warm
    /// caches); with none idle, small requests go ahead to quick busy workers. Stopping: every
    /// request waiting gets 503.
    fn dispatch(&mut self, now: Instant) {
        if self.stopping() {
            for waiting in self.waiting.drain() {
                self.out.push(Effect::Refuse {
                    job: waiting.job,
                    why: Refusal::Stopping,
                });
            }
            return;
        }
        for line in [Line::InPlace, Line::OneShot] {
            while let Some(i) = self.table().pick_idle(line == Line::OneShot) {
                let Some(waiting) = self.next_waiting(line, now) else {
                    break;
                };
                self.hand(i, waiting, false, now);
            }
        }
        while self.waiting.len(Line::InPlace) > 0 {
            let Some(i) = self.table().pick_ahead(now) else {
                break;
            };
            let Some(waiting) = self.next_waiting(Line::InPlace, now) else {
                break;
            };
            if !waiting.small {
                self.waiting.put_back(waiting);
                break;
            }
            self.hand(i, waiting, true, now);
        }
    }

    fn hand(&mut self, i: usize, job: Waiting, ahead: bool, now: Instant) {
        let slot = &mut self.slots[i];
        if slot.inflight == 0 {
            slot.current_since = now;
        }
        slot.state = State::Busy;
        slot.inflight += 1;
        slot.last_active = now;
        let worker = slot.id;
        self.out.push(Effect::Hand { worker, job, ahead });
    }

    fn on_booted(&mut self, worker: u64, now: Instant) {
        self.booted();
        let Some(i) = self.slot(worker) else { return };
        let slot = &mut self.slots[i];
        slot.state = State::Idle;
        slot.last_active = now;
        // From the spawn (or fork order) to its first waitRequest().
        let notice = Notice::Ready {
            pid: slot.pid,
            boot: now.saturating_duration_since(slot.started),
            forked: slot.forked,
        };
        self.tell(notice);
        if self.stopping() {
            self.retire(i, None, now);
        } else {
            self.replace_stale(now);
        }
    }

    fn answered(
        &mut self,
        worker: u64,
        memory: Option<u64>,
        retire: bool,
        took: Duration,
        now: Instant,
    ) {
        self.tell(Notice::JobDone);
        let Some(i) = self.slot(worker) else { return };
        let stopping = self.stopping();
        let slot = &mut self.slots[i];
        slot.jobs += 1;
        slot.release(1);
        slot.current_since = now;
        slot.answers_take = Some(super::ahead::smooth(slot.answers_take, took));
        slot.last_active = now;
        if slot.state == State::Stopping {
            // Already told to stop: an answer to a request it held (send-ahead).
            return;
        }
        if stopping || slot.oneshot {
            // A one-shot worker ends after its request: not a restart.
            return self.retire(i, None, now);
        }
        let reason = match retire {
            true => Some(Reason::Retired),
            false => limits::after_answer(&self.pool, &slot.life(now), memory),
        };
        if reason == Some(Reason::MaxMemory) {
            self.over_memory(i, memory);
        }
        if reason.is_some() {
            self.retire(i, reason, now);
        }
    }

    /// A reading taken while the worker was idle (or skipped after its last answer).
    fn measured(&mut self, worker: u64, memory: Option<u64>, now: Instant) {
        let Some(i) = self.slot(worker) else { return };
        let limit = self.pool.supervisor.max_worker_memory;
        let slot = &self.slots[i];
        let live = matches!(slot.state, State::Idle | State::Busy);
        if live && !slot.oneshot && memory.is_some_and(|m| m > limit) {
            // A busy worker stops only after its current answer (Stop queues behind it).
            self.over_memory(i, memory);
            self.retire(i, Some(Reason::MaxMemory), now);
        }
    }

    fn over_memory(&mut self, i: usize, memory: Option<u64>) {
        let slot = &self.slots[i];
        let notice = Notice::OverMemory {
            pid: slot.pid,
            memory,
            limit: self.pool.supervisor.max_worker_memory,
            forked: slot.forked,
        };
        self.tell(notice);
    }

    fn exited(&mut self, worker: u64, end: End, detail: String, now: Instant) {
        let Some(i) = self.slot(worker) else { return };
        let slot = self.slots.remove(i);
        if slot.state == State::Stopping {
            // Retired on purpose; its replacement was started then.
            self.tell(Notice::Stopped { pid: slot.pid, end });
            return;
        }
        match end {
            End::NoResources => self.no_resources(detail, now),
            End::BootFailed => self.boot_failed(
                format!(
                    "worker pid {} exited before its first waitRequest() ({detail})",
                    slot.pid
                ),
                now,
            ),
            End::ExecTimeout | End::Crashed | End::Stopped => {
                let reason = match end {
                    End::ExecTimeout => Reason::ExecTtl,
                    _ => Reason::Crash,
                };
                let pid = slot.pid;
                self.tell(Notice::Died {
                    pid,
                    reason,
                    detail,
                });
            }
        }
        self.fill(now);
    }

    /// Out of descriptors or processes: the pool goes on with the workers it has and tries
    /// again soon; the script is not at fault.
    fn no_resources(&mut self, detail: String, now: Instant) {
        let serving = self.table().serving();
        self.tell(Notice::NoResources {
            detail,
            serving,
            retry_in: SPAWN_RETRY,
        });
        self.spawn_after = now + SPAWN_RETRY;
    }

    /// A worker or the template reached its first `waitRequest()`.
    fn booted(&mut self) {
        self.tell(Notice::Booted {
            generation: self.generation,
            after_failures: self.boot_failures,
        });
        self.ever_booted = true;
        self.boot_failures = 0;
    }

    /// A worker (or the template) could not boot: retry with backoff. Before any generation
    /// ever booted, too many in a row stop the pool (nothing serves, and a deploy this broken
    /// should fail loudly); after, never: the workers still running keep serving.
    fn boot_failed(&mut self, message: String, now: Instant) {
        self.boot_failures += 1;
        let failures = self.boot_failures;
        let then = rules::after_boot_failure(self.pool.debug, self.ever_booted, failures);
        let mut request_failed = false;
        let mut fatal = None;
        match then {
            AfterBootFailure::RetryIn(backoff) => self.spawn_after = now + backoff,
            AfterBootFailure::FailRequest => {
                // Debug mode: the worker was booted for the oldest request waiting.
                if let Some(waiting) = self.next_waiting(Line::OneShot, now) {
                    request_failed = true;
                    self.out.push(Effect::Refuse {
                        job: waiting.job,
                        why: Refusal::BootFailed,
                    });
                }
            }
            AfterBootFailure::GiveUp => {
                let who = match self.pool.template {
                    true => "the template (or a worker forked from it)",
                    false => "workers",
                };
                fatal = Some(PoolError::BootFailed(format!(
                    "{who} failed to boot {failures} times in a row; giving up. The last: {message}"
                )));
            }
        }
        let notice = Notice::BootFailed {
            message,
            failures,
            then,
            ever_booted: self.ever_booted,
            serving: self.table().serving(),
            generation: self.generation,
            request_failed,
        };
        self.tell(notice);
        if fatal.is_some() {
            self.begin_stop(fatal, now);
        }
    }

    /// Reload: once a worker of the new generation is ready and the pool holds more than
    /// `num_workers`, one old worker goes (`rules::Table::stale_to_retire`): no old worker
    /// leaves before its replacement serves, and load never holds a reload up.
    fn replace_stale(&mut self, now: Instant) {
        if let Some(i) = self.table().stale_to_retire() {
            self.retire(i, Some(Reason::Reload), now);
        }
    }

    /// Tells worker `i` to stop once it is idle (now, for an idle or booting one); its
    /// replacement starts at once.
    fn retire(&mut self, i: usize, reason: Option<Reason>, now: Instant) {
        let slot = &mut self.slots[i];
        slot.state = State::Stopping;
        let (worker, pid, jobs) = (slot.id, slot.pid, slot.jobs);
        self.out.push(Effect::Stop { worker });
        if let Some(reason) = reason {
            self.tell(Notice::Replacing { pid, jobs, reason });
        }
        self.fill(now);
    }

    /// Starts a worker if one is missing (`rules::Table::starts`), one at a time: the next
    /// once this one's start is answered.
    fn fill(&mut self, now: Instant) {
        if self.stopping() || now < self.spawn_after || self.spawning.is_some() {
            return;
        }
        let Starts { in_place, oneshot } = self.table().starts(self.waiting.len(Line::OneShot));
        if in_place + oneshot == 0 {
            return;
        }
        let oneshot = in_place == 0;
        let worker = self.next_id;
        self.next_id += 1;
        self.slots.push(Slot {
            id: worker,
            pid: 0,
            state: State::Booting,
            jobs: 0,
            started: now,
            last_active: now,
            current_since: now,
            generation: self.generation,
            forked: self.pool.template,
            oneshot,
            inflight: 0,
            answers_take: None,
            declined: false,
        });
        self.spawning = Some(worker);
        self.out.push(Effect::Spawn { worker, oneshot });
    }

    fn housekeeping(&mut self, now: Instant) {
        let pool = &self.pool;
        // A spare one-shot worker is as fresh as its fork: ttl and idle_ttl do not apply.
        let expired = self.slots.iter().enumerate().find_map(|(i, s)| {
            let idle = s.state == State::Idle && !s.oneshot;
            idle.then(|| limits::while_idle(pool, &s.life(now)))
                .flatten()
                .map(|reason| (i, reason))
        });
        if let Some((i, reason)) = expired {
            self.retire(i, Some(reason), now);
        }
        self.fill(now);
    }

    fn reload(&mut self, now: Instant) {
        if self.stopping() {
            return;
        }
        self.generation += 1;
        // A reload is asked for new code: the first worker of it boots now, whatever backoff
        // earlier failures (of the code it replaces) had reached.
        self.spawn_after = now;
        if self.pool.template {
            self.out.push(Effect::ReloadTemplate(self.generation));
        }
        self.tell(Notice::Reloading {
            generation: self.generation,
        });
    }

    /// No new work: idle and booting workers stop now, busy ones when their request is done.
    /// `fatal`: why the pool stops on its own (the newest reason wins).
    fn begin_stop(&mut self, fatal: Option<PoolError>, now: Instant) {
        match &mut self.phase {
            Phase::Serving => {
                self.phase = Phase::Stopping(fatal);
                self.out.push(Effect::CloseQueue);
            }
            Phase::Stopping(reason) => {
                if fatal.is_some() {
                    *reason = fatal;
                }
            }
            Phase::Exited => return,
        }
        for i in 0..self.slots.len() {
            if matches!(self.slots[i].state, State::Idle | State::Booting) {
                self.retire(i, None, now);
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
        let snapshot = Snapshot {
            counts,
            serving_current,
            generation: self.generation,
            reload_pending: self.table().stale().next().is_some(),
            boot_failures: self.boot_failures,
        };
        self.out.push(Effect::Publish(snapshot));
    }
}

#[cfg(test)]
mod tests;
