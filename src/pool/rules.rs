//! The queries the machine ([`super::machine`]) decides with, pure functions of its worker
//! table: which worker takes a request, which goes ahead, how many workers to start, which old
//! one a reload retires, and what a boot failure leads to. Unit-tested here one by one; the
//! machine's tests drive them through whole faults.
use super::ahead;
use super::limits::{self, MAX_BOOT_FAILURES};
use super::message::State;
use super::slot::Slot;
use crate::config::PoolConfig;
use std::time::{Duration, Instant};

/// What the table is judged against.
pub struct Table<'a> {
    pub slots: &'a [Slot],
    pub pool: &'a PoolConfig,
    /// The generation being rolled out (each reload adds one).
    pub generation: u64,
    /// Template mode: whether a template of `generation` has booted (always true otherwise).
    pub template_ready: bool,
}

/// Workers to start now.
#[derive(Debug, PartialEq, Eq)]
pub struct Starts {
    pub in_place: usize,
    pub oneshot: usize,
}

/// What follows a boot failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterBootFailure {
    /// No worker (or template) ever booted and too many failed in a row: the pool stops.
    GiveUp,
    /// The workers running serve on; the next start waits this long.
    RetryIn(Duration),
    /// Debug mode: the oldest request waiting gets a 502; the next one boots a worker at once.
    FailRequest,
}

fn live(s: &Slot) -> bool {
    s.state != State::Stopping
}

impl Table<'_> {
    /// In-place workers not told to stop, of an older generation than the current one.
    pub fn stale(&self) -> impl Iterator<Item = (usize, &Slot)> {
        let generation = self.generation;
        self.slots
            .iter()
            .enumerate()
            .filter(move |(_, s)| !s.oneshot && live(s) && s.generation < generation)
    }

    /// Workers that can take requests.
    pub fn serving(&self) -> usize {
        let serving = |s: &&Slot| matches!(s.state, State::Idle | State::Busy);
        self.slots.iter().filter(serving).count()
    }

    /// An idle worker of the kind: the current generation first (a reload is replacing the
    /// others), then the most recently active (warm caches).
    pub fn pick_idle(&self, oneshot: bool) -> Option<usize> {
        let current = self.generation;
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == State::Idle && s.oneshot == oneshot && !s.declined)
            .max_by_key(|(_, s)| (s.generation == current, s.last_active))
            .map(|(i, _)| i)
    }

    /// A busy in-place worker that may be sent one more request ahead (docs/pool.md,
    /// "Send-ahead"): not told to stop and not declined, its recent pace putting the wait under
    /// `send_ahead_wait`, its current request not past the recall threshold, room under
    /// `send_ahead` and `max_jobs`. The one holding the fewest first.
    pub fn pick_ahead(&self, now: Instant) -> Option<usize> {
        let pool = self.pool;
        if pool.send_ahead == 0 {
            return None;
        }
        let wait = pool.send_ahead_wait;
        let recall = ahead::recall_after(wait);
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.state == State::Busy
                    && !s.oneshot
                    && !s.declined
                    && s.inflight <= pool.send_ahead
                    && now.saturating_duration_since(s.current_since) < recall
                    && s.answers_take
                        .is_some_and(|t| ahead::quick_enough(t, s.inflight, wait))
                    && (pool.max_jobs == 0 || s.jobs + u64::from(s.inflight) < pool.max_jobs)
            })
            .min_by_key(|(_, s)| s.inflight)
            .map(|(i, _)| i)
    }

    /// Workers to start: the in-place ones missing from `num_workers`, plus during a reload
    /// one of the new generation beyond it (when none of it is booting and, in template mode,
    /// its template booted); and in template mode with isolated paths, one-shot workers for
    /// those running and `oneshot_waiting`, plus a spare, at most `isolate_workers`. In debug
    /// mode, only one-shot workers: one per request running or waiting, no spare, at most
    /// `num_workers`.
    pub fn starts(&self, oneshot_waiting: usize) -> Starts {
        let pool = self.pool;
        let count = |oneshot: bool| {
            self.slots
                .iter()
                .filter(|s| live(s) && s.oneshot == oneshot)
                .count()
        };
        if pool.debug {
            // Debug mode: every worker is one-shot and booted for a request already waiting,
            // never ahead of it (one booted ahead would run the code from before an edit).
            let busy = self
                .slots
                .iter()
                .filter(|s| s.oneshot && s.state == State::Busy)
                .count();
            let wanted = (busy + oneshot_waiting).min(pool.isolate_limit());
            return Starts {
                in_place: 0,
                oneshot: wanted.saturating_sub(count(true)),
            };
        }
        let mut in_place = pool.num_workers.saturating_sub(count(false));
        let new_booting = self
            .slots
            .iter()
            .any(|s| !s.oneshot && s.state == State::Booting && s.generation == self.generation);
        if in_place == 0 && self.template_ready && !new_booting && self.stale().next().is_some() {
            in_place = 1;
        }
        let mut oneshot = 0;
        if !pool.isolate.is_empty() {
            let busy = self
                .slots
                .iter()
                .filter(|s| s.oneshot && s.state == State::Busy)
                .count();
            let wanted = (busy + oneshot_waiting + 1).min(pool.isolate_limit());
            oneshot = wanted.saturating_sub(count(true));
        }
        Starts { in_place, oneshot }
    }

    /// Reload: once more in-place workers than `num_workers` can serve (a new one is ready),
    /// the old worker to retire: an idle one, else the one holding the fewest requests.
    pub fn stale_to_retire(&self) -> Option<usize> {
        let serving_in_place = self
            .slots
            .iter()
            .filter(|s| !s.oneshot && matches!(s.state, State::Idle | State::Busy))
            .count();
        if serving_in_place <= self.pool.num_workers {
            return None;
        }
        self.stale()
            .min_by_key(|(_, s)| (s.state != State::Idle, s.inflight))
            .map(|(i, _)| i)
    }
}

/// After `failures` boot failures in a row: give up only if nothing ever booted. In debug mode
/// never, and without backoff: each boot is for a waiting request, which gets the failure
/// (a typo in development must not stop the server, nor make the fixed code wait).
pub fn after_boot_failure(debug: bool, ever_booted: bool, failures: u32) -> AfterBootFailure {
    if debug {
        return AfterBootFailure::FailRequest;
    }
    match !ever_booted && failures >= MAX_BOOT_FAILURES {
        true => AfterBootFailure::GiveUp,
        false => AfterBootFailure::RetryIn(limits::backoff(failures)),
    }
}

#[cfg(test)]
mod tests;
