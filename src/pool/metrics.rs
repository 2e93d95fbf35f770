//! The pool's gauges and counters, and the Prometheus text for the metrics address: requests
//! by status, latency, queue depth, workers by state, restarts by reason, Velox builds, bytes
//! streamed.
use super::message::{Reason, Returned, State};
use crate::dispatch::Submitter;
use crate::server::stats::{self, HttpStats};
use crate::velox::Velox;
use std::fmt::Write;
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

/// The metrics page.
pub fn render(pool: &PoolStats, http: &HttpStats, velox: Option<&Velox>) -> String {
    let mut out = String::with_capacity(4096);
    let o = &mut out;
    let _ = writeln!(o, "# HELP rr_http_requests_total HTTP answers by status.");
    let _ = writeln!(o, "# TYPE rr_http_requests_total counter");
    for (status, n) in http.statuses() {
        let _ = writeln!(o, "rr_http_requests_total{{status=\"{status}\"}} {n}");
    }
    let (cumulative, sum) = http.histogram();
    let _ = writeln!(
        o,
        "# HELP rr_http_request_duration_seconds Time to the response head."
    );
    let _ = writeln!(o, "# TYPE rr_http_request_duration_seconds histogram");
    for (bound, n) in stats::BUCKETS.iter().zip(&cumulative) {
        let _ = writeln!(
            o,
            "rr_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {n}"
        );
    }
    let total = cumulative.last().copied().unwrap_or(0);
    let _ = writeln!(
        o,
        "rr_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
    );
    let _ = writeln!(o, "rr_http_request_duration_seconds_sum {sum}");
    let _ = writeln!(o, "rr_http_request_duration_seconds_count {total}");
    let _ = writeln!(
        o,
        "# HELP rr_pool_queue_depth Requests waiting for a worker."
    );
    let _ = writeln!(o, "# TYPE rr_pool_queue_depth gauge");
    let _ = writeln!(o, "rr_pool_queue_depth {}", pool.queue_depth());
    let _ = writeln!(o, "# HELP rr_pool_workers Worker processes by state.");
    let _ = writeln!(o, "# TYPE rr_pool_workers gauge");
    for state in State::ALL {
        let _ = writeln!(
            o,
            "rr_pool_workers{{state=\"{}\"}} {}",
            state.as_str(),
            pool.count(state)
        );
    }
    let _ = writeln!(o, "# HELP rr_pool_jobs_total Requests answered by workers.");
    let _ = writeln!(o, "# TYPE rr_pool_jobs_total counter");
    let _ = writeln!(o, "rr_pool_jobs_total {}", pool.jobs.load(Relaxed));
    let _ = writeln!(
        o,
        "# HELP rr_pool_sent_ahead_total Requests written to a busy worker (http.pool.send_ahead)."
    );
    let _ = writeln!(o, "# TYPE rr_pool_sent_ahead_total counter");
    let _ = writeln!(
        o,
        "rr_pool_sent_ahead_total {}",
        pool.sent_ahead.load(Relaxed)
    );
    let _ = writeln!(
        o,
        "# HELP rr_pool_requests_returned_total Requests a worker never started, run by another worker: declined (it retired, its script ended), gone (it died or stopped first) or recalled (the request ahead of them ran long)."
    );
    let _ = writeln!(o, "# TYPE rr_pool_requests_returned_total counter");
    for (why, n) in ["declined", "gone", "recalled"].iter().zip(&pool.returned) {
        let _ = writeln!(
            o,
            "rr_pool_requests_returned_total{{reason=\"{why}\"}} {}",
            n.load(Relaxed)
        );
    }
    let _ = writeln!(
        o,
        "# HELP rr_pool_worker_restarts_total Workers replaced, by reason."
    );
    let _ = writeln!(o, "# TYPE rr_pool_worker_restarts_total counter");
    for reason in Reason::ALL {
        let _ = writeln!(
            o,
            "rr_pool_worker_restarts_total{{reason=\"{}\"}} {}",
            reason.as_str(),
            pool.restarts(reason)
        );
    }
    let gauges = [
        (
            "rr_pool_boot_failures",
            "Workers (or templates) that failed to boot in a row; 0 once one boots.",
            pool.boot_failures.load(Relaxed),
        ),
        (
            "rr_pool_generation",
            "The worker generation being rolled out (each reload adds one).",
            pool.generation.load(Relaxed),
        ),
        (
            "rr_pool_reload_pending",
            "1 while a reload waits for workers of the new generation (booting, or failing to boot while the old ones serve).",
            u64::from(pool.reload_pending.load(Relaxed)),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} gauge");
        let _ = writeln!(o, "{name} {value}");
    }
    let _ = writeln!(
        o,
        "# HELP rr_pool_spawn_failures_total Worker starts that failed for lack of resources (descriptors, processes): retried, not boot failures."
    );
    let _ = writeln!(o, "# TYPE rr_pool_spawn_failures_total counter");
    let _ = writeln!(
        o,
        "rr_pool_spawn_failures_total {}",
        pool.spawn_failures.load(Relaxed)
    );
    let _ = writeln!(
        o,
        "# HELP rr_stream_bytes_total File bytes streamed to clients."
    );
    let _ = writeln!(o, "# TYPE rr_stream_bytes_total counter");
    let _ = writeln!(
        o,
        "rr_stream_bytes_total {}",
        crate::stream::bytes_streamed()
    );
    if let Some(velox) = velox {
        let m = velox.metrics();
        let _ = writeln!(
            o,
            "# HELP rr_velox_builds_total Velox build orders by outcome."
        );
        let _ = writeln!(o, "# TYPE rr_velox_builds_total counter");
        for (outcome, n) in &m.outcomes {
            let _ = writeln!(o, "rr_velox_builds_total{{outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP rr_velox_build_duration_seconds Velox build order duration."
        );
        let _ = writeln!(o, "# TYPE rr_velox_build_duration_seconds histogram");
        let mut cumulative = 0;
        for (bound, n) in &m.duration_buckets {
            cumulative += n;
            let le = match bound.is_finite() {
                true => bound.to_string(),
                false => "+Inf".into(),
            };
            let _ = writeln!(
                o,
                "rr_velox_build_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            o,
            "rr_velox_build_duration_seconds_sum {}",
            m.duration_sum.as_secs_f64()
        );
        let _ = writeln!(
            o,
            "rr_velox_build_duration_seconds_count {}",
            m.duration_count
        );
    }
    out
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
        let http = HttpStats::default();
        http.record(200, std::time::Duration::from_millis(2));
        let text = render(&pool, &http, None);
        for line in [
            "rr_http_requests_total{status=\"200\"} 1",
            "rr_http_request_duration_seconds_bucket{le=\"+Inf\"} 1",
            "rr_pool_workers{state=\"idle\"} 2",
            "rr_pool_worker_restarts_total{reason=\"max_jobs\"} 1",
            "rr_pool_queue_depth 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(pool.healthy() && pool.ready());
    }
}
