//! The pool's gauges and counters, and the Prometheus text for the metrics address: requests
//! by status, latency, queue depth, workers by state, restarts by reason, Velox builds, bytes
//! streamed.
use crate::dispatch::Submitter;
use crate::server::stats::{self, HttpStats};
use crate::velox::Velox;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Why a worker was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    MaxJobs,
    MaxMemory,
    Ttl,
    IdleTtl,
    ExecTtl,
    Crash,
    BootFailure,
    Reload,
    /// The worker asked for it (`RR\Worker::retire()`).
    Retired,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::MaxJobs,
        Reason::MaxMemory,
        Reason::Ttl,
        Reason::IdleTtl,
        Reason::ExecTtl,
        Reason::Crash,
        Reason::BootFailure,
        Reason::Reload,
        Reason::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MaxJobs => "max_jobs",
            Reason::MaxMemory => "max_worker_memory",
            Reason::Ttl => "ttl",
            Reason::IdleTtl => "idle_ttl",
            Reason::ExecTtl => "exec_ttl",
            Reason::Crash => "crash",
            Reason::BootFailure => "boot_failure",
            Reason::Reload => "reload",
            Reason::Retired => "retired",
        }
    }
}

/// Worker states, as counted in the gauges and shown in the workers list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Booting,
    Idle,
    Busy,
    Stopping,
}

impl State {
    pub const ALL: [State; 4] = [State::Booting, State::Idle, State::Busy, State::Stopping];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Booting => "booting",
            State::Idle => "idle",
            State::Busy => "busy",
            State::Stopping => "stopping",
        }
    }
}

/// Written by the supervisor, read by the status and metrics endpoints.
pub struct PoolStats {
    by_state: [AtomicUsize; 4],
    restarts: [AtomicU64; 9],
    jobs: AtomicU64,
    /// Requests written to a busy worker (send-ahead).
    sent_ahead: AtomicU64,
    /// Requests a worker never started, run by another one: it declined them, or it died.
    returned: [AtomicU64; 2],
    queue: Submitter,
}

/// Why requests came back from a worker unstarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// It retired, or its script ended.
    Declined,
    /// It died, was killed, or stopped first.
    Gone,
}

impl PoolStats {
    pub fn new(queue: Submitter) -> PoolStats {
        PoolStats {
            by_state: Default::default(),
            restarts: Default::default(),
            jobs: AtomicU64::new(0),
            sent_ahead: AtomicU64::new(0),
            returned: Default::default(),
            queue,
        }
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
        self.count(State::Idle) + self.count(State::Busy) > 0
    }

    /// Ready (RoadRunner's status plugin): a worker is idle or the queue has room.
    pub fn ready(&self) -> bool {
        self.count(State::Idle) > 0
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
        "# HELP rr_pool_requests_returned_total Requests a worker never started, run by another worker: declined (it retired, its script ended) or gone (it died or stopped first)."
    );
    let _ = writeln!(o, "# TYPE rr_pool_requests_returned_total counter");
    for (why, n) in ["declined", "gone"].iter().zip(&pool.returned) {
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
