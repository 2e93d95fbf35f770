//! The pool's gauges and counters, and its families on the metrics page: queue depth, workers
//! by state, jobs, send-ahead, restarts by reason, boots and reloads. The families both modes
//! have (requests, latency, connections, the process...) are `crate::observe::metrics`.
use super::message::{Reason, Returned, State};
use crate::dispatch::Submitter;
use crate::observe::Text;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// Written by the supervisor, read by the status and metrics endpoints.
pub struct PoolStats {
    by_state: [AtomicUsize; 4],
    restarts: [AtomicU64; 9],
    jobs: AtomicU64,
    /// Requests written to a busy worker (send-ahead).
    sent_ahead: AtomicU64,
    /// Requests a worker never started, run by another one: it declined them, it died, or the
    /// master took them back (the request ahead of them ran long).
    returned: [AtomicU64; 3],
    /// Workers (or templates) that failed to boot in a row; 0 once one boots.
    boot_failures: AtomicU64,
    /// The generation being rolled out (bumped by each reload).
    generation: AtomicU64,
    /// A reload waits for workers of the new generation (failing to boot, or under way).
    reload_pending: AtomicBool,
    /// Starts that failed for lack of resources (descriptors, processes): retried, not a
    /// boot failure.
    spawn_failures: AtomicU64,
    /// Why the last boot failed, for the status address.
    last_boot_error: Mutex<Option<String>>,
    queue: Submitter,
    /// Debug mode: workers exist only while a request needs one (`healthy` and `ready` do not
    /// count them).
    on_demand: AtomicBool,
}

impl PoolStats {
    pub fn new(queue: Submitter) -> PoolStats {
        PoolStats {
            by_state: Default::default(),
            restarts: Default::default(),
            jobs: AtomicU64::new(0),
            sent_ahead: AtomicU64::new(0),
            returned: Default::default(),
            boot_failures: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            reload_pending: AtomicBool::new(false),
            spawn_failures: AtomicU64::new(0),
            last_boot_error: Mutex::new(None),
            queue,
            on_demand: AtomicBool::new(false),
        }
    }

    /// Debug mode: a worker is started for each request, none waits idle.
    pub fn set_on_demand(&self) {
        self.on_demand.store(true, Relaxed);
    }

    /// A boot failed (`Some(message)`, counted in a row) or one succeeded (`None`, reset).
    pub fn boot(&self, failure: Option<&str>) {
        match failure {
            Some(message) => {
                self.boot_failures.fetch_add(1, Relaxed);
                *self.last_error() = Some(message.to_owned());
            }
            None => self.boot_failures.store(0, Relaxed),
        }
    }

    fn last_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_boot_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Why the last boot failed, on one line (for systemd's status).
    pub fn last_boot_error(&self) -> Option<String> {
        let error = self.last_error().clone()?;
        Some(error.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    pub fn set_reload(&self, generation: u64, pending: bool) {
        self.generation.store(generation, Relaxed);
        self.reload_pending.store(pending, Relaxed);
    }

    pub fn spawn_failed(&self) {
        self.spawn_failures.fetch_add(1, Relaxed);
    }

    /// What the status address says about boots and reloads.
    pub fn boot_report(&self) -> serde_json::Value {
        serde_json::json!({
            "generation": self.generation.load(Relaxed),
            "reload_pending": self.reload_pending.load(Relaxed),
            "boot_failures_in_a_row": self.boot_failures.load(Relaxed),
            "last_boot_error": *self.last_error(),
            "spawn_failures": self.spawn_failures.load(Relaxed),
        })
    }

    pub fn set_states(&self, counts: [usize; 4]) {
        for (gauge, n) in self.by_state.iter().zip(counts) {
            gauge.store(n, Relaxed);
        }
    }

    pub fn count(&self, state: State) -> usize {
        self.by_state[state as usize].load(Relaxed)
    }

    pub fn restarted(&self, reason: Reason) {
        self.restarts[reason as usize].fetch_add(1, Relaxed);
    }

    pub fn restarts(&self, reason: Reason) -> u64 {
        self.restarts[reason as usize].load(Relaxed)
    }

    pub fn job_done(&self) {
        self.jobs.fetch_add(1, Relaxed);
    }

    pub fn sent_ahead(&self) {
        self.sent_ahead.fetch_add(1, Relaxed);
    }

    pub fn returned(&self, why: Returned, n: usize) {
        self.returned[why as usize].fetch_add(n as u64, Relaxed);
    }

    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    /// Healthy: at least one worker can run requests.
    pub fn healthy(&self) -> bool {
        if self.on_demand.load(Relaxed) {
            // Debug mode: up unless the last worker started could not boot.
            return self.boot_failures.load(Relaxed) == 0;
        }
        self.count(State::Idle) + self.count(State::Busy) > 0
    }

    /// Ready (RoadRunner's status plugin): a worker is idle or the queue has room.
    pub fn ready(&self) -> bool {
        (self.count(State::Idle) > 0 && !self.on_demand.load(Relaxed))
            || (self.healthy() && self.queue.depth() < self.queue.capacity())
    }
}

/// The pool's own families, after the ones both modes have (`crate::observe::metrics`).
pub fn render(pool: &PoolStats, t: &mut Text) {
    t.gauge(
        "rr_pool_queue_depth",
        "Requests waiting for a worker (the same as rr_http_queue_depth).",
        pool.queue_depth(),
    );
    t.family("rr_pool_workers", "gauge", "Worker processes by state.");
    for state in State::ALL {
        t.sample(
            format_args!("rr_pool_workers{{state=\"{}\"}}", state.as_str()),
            pool.count(state),
        );
    }
    t.counter(
        "rr_pool_jobs_total",
        "Requests answered by workers.",
        pool.jobs.load(Relaxed),
    );
    t.counter(
        "rr_pool_sent_ahead_total",
        "Requests written to a busy worker (http.pool.send_ahead).",
        pool.sent_ahead.load(Relaxed),
    );
    t.family(
        "rr_pool_requests_returned_total",
        "counter",
        "Requests a worker never started, run by another worker: declined (it retired, its script ended), gone (it died or stopped first) or recalled (the request ahead of them ran long).",
    );
    for (why, n) in ["declined", "gone", "recalled"].iter().zip(&pool.returned) {
        t.sample(
            format_args!("rr_pool_requests_returned_total{{reason=\"{why}\"}}"),
            n.load(Relaxed),
        );
    }
    t.family(
        "rr_pool_worker_restarts_total",
        "counter",
        "Workers replaced, by reason.",
    );
    for reason in Reason::ALL {
        t.sample(
            format_args!(
                "rr_pool_worker_restarts_total{{reason=\"{}\"}}",
                reason.as_str()
            ),
            pool.restarts(reason),
        );
    }
    t.gauge(
        "rr_pool_boot_failures",
        "Workers (or templates) that failed to boot in a row; 0 once one boots.",
        pool.boot_failures.load(Relaxed),
    );
    t.gauge(
        "rr_pool_generation",
        "The worker generation being rolled out (each reload adds one).",
        pool.generation.load(Relaxed),
    );
    t.gauge(
        "rr_pool_reload_pending",
        "1 while a reload waits for workers of the new generation (booting, or failing to boot while the old ones serve).",
        u64::from(pool.reload_pending.load(Relaxed)),
    );
    t.counter(
        "rr_pool_spawn_failures_total",
        "Worker starts that failed for lack of resources (descriptors, processes): retried, not boot failures.",
        pool.spawn_failures.load(Relaxed),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let (queue, _inbox) = crate::dispatch::queue(4);
        let pool = PoolStats::new(queue);
        pool.set_states([0, 2, 1, 0]);
        pool.restarted(Reason::MaxJobs);
        let mut t = Text::new();
        render(&pool, &mut t);
        let text = t.finish();
        for line in [
            "rr_pool_workers{state=\"idle\"} 2",
            "rr_pool_worker_restarts_total{reason=\"max_jobs\"} 1",
            "rr_pool_queue_depth 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(pool.healthy() && pool.ready());
    }
}
