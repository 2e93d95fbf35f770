//! Counters and a duration histogram for the metrics endpoint; lock-free, read as a snapshot.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// How one build order ended for its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Invalid,
    /// A deterministic build failure Velox reported (compile, versions, target).
    BuildFailed,
    UpstreamError,
    Timeout,
    NoFile,
    StreamError,
    Canceled,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Success,
        Outcome::Invalid,
        Outcome::BuildFailed,
        Outcome::UpstreamError,
        Outcome::Timeout,
        Outcome::NoFile,
        Outcome::StreamError,
        Outcome::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Invalid => "invalid",
            Outcome::BuildFailed => "build_failed",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Timeout => "timeout",
            Outcome::NoFile => "no_file",
            Outcome::StreamError => "stream_error",
            Outcome::Canceled => "canceled",
        }
    }
}

/// Upper bounds of the duration buckets, in seconds; one more bucket catches the rest.
pub const BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

#[derive(Debug, Default)]
pub struct Metrics {
    outcomes: [AtomicU64; Outcome::ALL.len()],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    upstream_calls: AtomicU64,
    retries: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_micros: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Every outcome with its count, in `Outcome::ALL` order.
    pub outcomes: Vec<(&'static str, u64)>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub upstream_calls: u64,
    pub retries: u64,
    /// (upper bound in seconds, count in that bucket alone); the last bound is infinity.
    pub duration_buckets: Vec<(f64, u64)>,
    pub duration_count: u64,
    pub duration_sum: Duration,
}

impl MetricsSnapshot {
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        let name = outcome.as_str();
        self.outcomes
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |o| o.1)
    }
}

impl Metrics {
    /// Records how an order ended and how long it took until its answer was ready.
    pub fn finished(&self, outcome: Outcome, took: Duration) {
        self.outcomes[outcome as usize].fetch_add(1, Relaxed);
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.duration_micros
            .fetch_add(took.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Relaxed);
    }

    pub fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Relaxed);
    }

    pub fn upstream_call(&self) {
        self.upstream_calls.fetch_add(1, Relaxed);
    }

    pub fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let bounds = BUCKETS.iter().copied().chain([f64::INFINITY]);
        let duration_buckets: Vec<(f64, u64)> = bounds
            .zip(&self.buckets)
            .map(|(bound, count)| (bound, count.load(Relaxed)))
            .collect();
        MetricsSnapshot {
            outcomes: Outcome::ALL
                .iter()
                .map(|o| (o.as_str(), self.outcomes[*o as usize].load(Relaxed)))
                .collect(),
            cache_hits: self.cache_hits.load(Relaxed),
            cache_misses: self.cache_misses.load(Relaxed),
            upstream_calls: self.upstream_calls.load(Relaxed),
            retries: self.retries.load(Relaxed),
            duration_count: duration_buckets.iter().map(|b| b.1).sum(),
            duration_buckets,
            duration_sum: Duration::from_micros(self.duration_micros.load(Relaxed)),
        }
    }
}
