//! One worker as the supervisor's machine sees it (plain values: its channel stays with the
//! supervisor), and what outsiders may ask about it.
use super::limits::Life;
use super::message::State;
use super::process;
use crate::ipc::WorkerInfo;
use std::time::Instant;

/// One worker process in the machine's table.
pub struct Slot {
    pub id: u64,
    pub pid: u32,
    pub state: State,
    pub jobs: u64,
    pub started: Instant,
    pub last_active: Instant,
    /// When the request it is on started (handed to it idle, or the answer before it ended):
    /// no request is sent ahead behind one running past the recall threshold.
    pub current_since: Instant,
    /// Bumped by each reload: a worker of an older generation is replaced.
    pub generation: u64,
    /// Forked from the template (its memory is measured as private memory).
    pub forked: bool,
    /// Serves one request of an isolated path, then ends.
    pub oneshot: bool,
    /// Requests handed to it and not answered yet (more than one when sent ahead).
    pub inflight: u32,
    /// How long its answers took lately (smoothed); none before its first.
    pub answers_take: Option<std::time::Duration>,
    /// It said it runs no more requests (it retired, or its script is ending).
    pub declined: bool,
}

impl Slot {
    /// `n` of the requests it held are no longer its own (answered, or handed back); with none
    /// left a busy worker is idle.
    pub fn release(&mut self, n: u32) {
        self.inflight = self.inflight.saturating_sub(n);
        if self.state == State::Busy && self.inflight == 0 {
            self.state = State::Idle;
        }
    }

    pub fn life(&self, now: Instant) -> Life {
        Life {
            jobs: self.jobs,
            age: now.saturating_duration_since(self.started),
            idle: now.saturating_duration_since(self.last_active),
        }
    }

    /// A row of the workers list (its memory read now).
    pub fn info(&self) -> WorkerInfo {
        WorkerInfo {
            id: self.id,
            pid: self.pid,
            state: self.state.as_str().to_owned(),
            jobs: self.jobs,
            memory: process::memory(self.pid, self.forked).unwrap_or(0),
            age_seconds: self.started.elapsed().as_secs_f64(),
            isolated: self.oneshot,
        }
    }
}
