//! What the master tells systemd about the pool (`crate::systemd`): `READY=1` once the first
//! generation is up (every in-place worker reached its first `waitRequest()`), `RELOADING=1`
//! when a reload starts and `READY=1` once every old worker is replaced, and a `STATUS=` line
//! when what it says changes. Pure: the supervisor feeds it facts after each step and sends
//! what it returns. docs/observability.md.
use crate::systemd::Message;

/// The pool as the supervisor sees it after one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// In-place workers of the current generation that can take requests (idle or busy).
    pub serving_current: usize,
    pub generation: u64,
    /// Workers of an older generation are still live (a reload is under way).
    pub reload_pending: bool,
    /// Boots failed in a row (workers or the template).
    pub boot_failures: u32,
}

pub struct Announcer {
    /// "http://127.0.0.1:8080, https://...".
    listening: String,
    /// In-place workers the pool keeps; 0 in debug mode (`http.pool.debug`: a worker is
    /// started for each request, so the pool is up as soon as the master listens).
    workers: usize,
    ready: bool,
    reloading: bool,
    last: Option<Facts>,
    status: String,
}

impl Announcer {
    pub fn new(listening: String, workers: usize) -> Announcer {
        Announcer {
            listening,
            workers,
            ready: false,
            reloading: false,
            last: None,
            status: String::new(),
        }
    }

    /// A reload started (SIGHUP, `POST /reload`): generation `generation` replaces the workers.
    /// Before the first `READY=1` there is nothing to announce: it comes once the newest
    /// generation is up.
    pub fn reload(&mut self, generation: u64) -> Vec<Message> {
        if !self.ready {
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.reloading {
            self.reloading = true;
            out.push(Message::Reloading);
        }
        let status = format!(
            "reloading (generation {generation}): 0 of {} workers replaced",
            self.workers
        );
        self.status = status.clone();
        out.push(Message::Status(status));
        out
    }

    /// After each step of the supervisor; nothing unless the facts changed. `boot_error` is
    /// asked only when boots fail.
    pub fn observe(
        &mut self,
        facts: Facts,
        boot_error: impl FnOnce() -> Option<String>,
    ) -> Vec<Message> {
        if self.last == Some(facts) {
            return Vec::new();
        }
        self.last = Some(facts);
        let up = facts.serving_current >= self.workers && !facts.reload_pending;
        let mut out = Vec::new();
        if up && (!self.ready || self.reloading) {
            self.ready = true;
            self.reloading = false;
            out.push(Message::Ready);
        }
        let status = self.status_line(facts, boot_error);
        if status != self.status {
            self.status = status.clone();
            out.push(Message::Status(status));
        }
        out
    }

    fn status_line(&self, facts: Facts, boot_error: impl FnOnce() -> Option<String>) -> String {
        let (up, all) = (facts.serving_current.min(self.workers), self.workers);
        let mut line = match (self.ready, self.reloading) {
            (false, _) => format!("starting: {up} of {all} workers up"),
            (true, true) => format!(
                "reloading (generation {}): {up} of {all} workers replaced",
                facts.generation
            ),
            (true, false) if all == 0 => format!(
                "serving on {}, a worker started for each request (http.pool.debug)",
                self.listening
            ),
            (true, false) => format!("serving on {}, {all} workers", self.listening),
        };
        if facts.boot_failures > 0 {
            line.push_str(&format!(
                "; workers fail to boot ({} in a row, retrying)",
                facts.boot_failures
            ));
            if let Some(error) = boot_error() {
                line.push_str(": ");
                line.push_str(&error);
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(serving_current: usize, generation: u64, reload_pending: bool) -> Facts {
        Facts {
            serving_current,
            generation,
            reload_pending,
            boot_failures: 0,
        }
    }

    fn status(messages: &[Message]) -> Option<&str> {
        messages.iter().find_map(|m| match m {
            Message::Status(s) => Some(s.as_str()),
            _ => None,
        })
    }

    #[test]
    fn ready_once_every_worker_of_the_first_generation_is_up() {
        let mut a = Announcer::new("http://127.0.0.1:8080".into(), 2);
        let out = a.observe(facts(0, 0, false), || None);
        assert_eq!(status(&out), Some("starting: 0 of 2 workers up"));
        let out = a.observe(facts(1, 0, false), || None);
        assert!(!out.contains(&Message::Ready), "{out:?}");
        let out = a.observe(facts(2, 0, false), || None);
        assert_eq!(out[0], Message::Ready);
        assert_eq!(
            status(&out),
            Some("serving on http://127.0.0.1:8080, 2 workers")
        );
        // The same facts again, or a worker being replaced: nothing more to say.
        assert!(a.observe(facts(2, 0, false), || None).is_empty());
        assert!(a.observe(facts(1, 0, false), || None).is_empty());
        assert!(a.observe(facts(2, 0, false), || None).is_empty());
    }

    #[test]
    fn a_reload_is_announced_and_ready_again_once_the_old_workers_are_gone() {
        let mut a = Announcer::new("http://x".into(), 2);
        a.observe(facts(2, 0, false), || None);
        let out = a.reload(1);
        assert_eq!(out[0], Message::Reloading);
        assert!(a.observe(facts(0, 1, true), || None).is_empty());
        let out = a.observe(facts(1, 1, true), || None);
        assert_eq!(
            status(&out),
            Some("reloading (generation 1): 1 of 2 workers replaced")
        );
        // The last old worker is gone but its replacement is not up yet.
        let out = a.observe(facts(1, 1, false), || None);
        assert!(!out.contains(&Message::Ready), "{out:?}");
        let out = a.observe(facts(2, 1, false), || None);
        assert_eq!(out[0], Message::Ready);
        assert_eq!(status(&out), Some("serving on http://x, 2 workers"));
        // A second SIGHUP during a reload says RELOADING=1 once.
        a.reload(2);
        let again = a.reload(3);
        assert!(!again.contains(&Message::Reloading), "{again:?}");
    }

    #[test]
    fn a_reload_before_ready_only_moves_ready_to_the_new_generation() {
        let mut a = Announcer::new("http://x".into(), 1);
        a.observe(facts(0, 0, false), || None);
        assert!(a.reload(1).is_empty());
        let out = a.observe(facts(1, 1, false), || None);
        assert_eq!(out[0], Message::Ready);
    }

    #[test]
    fn in_debug_mode_the_pool_is_ready_as_soon_as_the_master_listens() {
        let mut a = Announcer::new("http://x".into(), 0);
        let out = a.observe(facts(0, 0, false), || None);
        assert_eq!(out[0], Message::Ready);
        assert_eq!(
            status(&out),
            Some("serving on http://x, a worker started for each request (http.pool.debug)")
        );
    }

    #[test]
    fn boot_failures_are_in_the_status_with_the_last_error() {
        let mut a = Announcer::new("http://x".into(), 2);
        a.observe(facts(2, 0, false), || None);
        a.reload(1);
        let failing = Facts {
            boot_failures: 3,
            ..facts(0, 1, true)
        };
        let out = a.observe(failing, || Some("PHP Parse error".into()));
        assert_eq!(
            status(&out),
            Some(
                "reloading (generation 1): 0 of 2 workers replaced; workers fail to boot \
                 (3 in a row, retrying): PHP Parse error"
            )
        );
        assert!(!out.contains(&Message::Ready));
    }
}
