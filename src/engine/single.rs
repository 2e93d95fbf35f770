//! The single process's health, for the status address and systemd's watchdog: PHP can run
//! requests once it reached its first `waitRequest()`, and until one request has held it for
//! longer than `http.request_timeout` (its client got a 504 meanwhile: PHP is stuck).
//! docs/observability.md.
use crate::dispatch::Submitter;
use crate::observe::Mode;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Written by the PHP thread as it waits and takes requests; read by the status tasks.
pub struct PhpState {
    epoch: Instant,
    /// PHP reached its first `waitRequest()`.
    booted: AtomicBool,
    /// Microseconds from `epoch` to when PHP took the request it runs, plus one; 0 while it
    /// waits.
    busy_since: AtomicU64,
    stuck_after: Duration,
    queue: Submitter,
}

/// What PHP is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Php {
    /// Still before its first `waitRequest()`.
    Booting,
    Waiting,
    /// Running a request for this long.
    Busy(Duration),
}

impl PhpState {
    pub fn new(stuck_after: Duration, queue: Submitter) -> PhpState {
        PhpState {
            epoch: Instant::now(),
            booted: AtomicBool::new(false),
            busy_since: AtomicU64::new(0),
            stuck_after,
            queue,
        }
    }

    /// PHP waits for the next request (in `waitRequest()` or `handle()`).
    pub fn waiting(&self) {
        self.booted.store(true, Relaxed);
        self.busy_since.store(0, Relaxed);
    }

    /// PHP took a request.
    pub fn busy(&self) {
        let since = self.epoch.elapsed().as_micros() as u64 + 1;
        self.busy_since.store(since, Relaxed);
    }

    fn php(&self) -> Php {
        if !self.booted.load(Relaxed) {
            return Php::Booting;
        }
        match self.busy_since.load(Relaxed) {
            0 => Php::Waiting,
            since => {
                let took = Duration::from_micros(since - 1);
                Php::Busy(self.epoch.elapsed().saturating_sub(took))
            }
        }
    }
}

impl Mode for PhpState {
    fn name(&self) -> &'static str {
        "single"
    }

    fn healthy(&self) -> bool {
        match self.php() {
            Php::Booting => false,
            Php::Waiting => true,
            Php::Busy(took) => took <= self.stuck_after,
        }
    }

    fn ready(&self) -> bool {
        self.healthy() && self.queue.depth() < self.queue.capacity()
    }

    fn details(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        let php = match self.php() {
            Php::Booting => "booting",
            Php::Waiting => "waiting",
            Php::Busy(took) => {
                fields.insert("busy_seconds".into(), took.as_secs_f64().into());
                match took > self.stuck_after {
                    true => "stuck",
                    false => "busy",
                }
            }
        };
        fields.insert("php".into(), php.into());
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_from_the_first_wait_until_a_request_outlasts_the_timeout() {
        let (queue, _inbox) = crate::dispatch::queue(1);
        let state = PhpState::new(Duration::from_millis(50), queue.clone());
        assert!(!state.healthy() && !state.ready());
        assert_eq!(state.details()["php"], "booting");
        state.waiting();
        assert!(state.healthy() && state.ready());
        state.busy();
        assert!(state.healthy());
        assert_eq!(state.details()["php"], "busy");
        std::thread::sleep(Duration::from_millis(80));
        assert!(!state.healthy());
        assert_eq!(state.details()["php"], "stuck");
        state.waiting();
        assert!(state.healthy());
        // A full queue: healthy, not ready.
        let (queue, _inbox) = crate::dispatch::queue(1);
        let state = PhpState::new(Duration::from_secs(60), queue.clone());
        state.waiting();
        let _held = queue.hold_slot().unwrap();
        assert!(state.healthy() && !state.ready());
    }
}
