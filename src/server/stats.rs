//! Request counters for the metrics endpoint: answers by status, a latency histogram (time to
//! the response head) and the requests in flight. Relaxed atomics only: a few adds per request.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (Prometheus' default buckets).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct HttpStats {
    /// Index = status - 100.
    by_status: Vec<AtomicU64>,
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    /// Requests between their head and their response head.
    in_flight: AtomicU64,
}

impl Default for HttpStats {
    fn default() -> Self {
        HttpStats {
            by_status: (100..600).map(|_| AtomicU64::new(0)).collect(),
            buckets: (0..=BUCKETS.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }
    }
}

/// One request in flight; dropping it (answered, or the client went away) ends it.
pub struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl HttpStats {
    /// A request's head arrived; it is in flight until the guard is dropped.
    pub fn started(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(&self.in_flight)
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    pub fn record(&self, status: u16, took: Duration) {
        if let Some(counter) = self.by_status.get(usize::from(status).wrapping_sub(100)) {
            counter.fetch_add(1, Relaxed);
        }
        let secs = took.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// (status, count) for every status seen.
    pub fn statuses(&self) -> Vec<(u16, u64)> {
        self.by_status
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u16 + 100, c.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Cumulative counts per bucket (the last is +Inf, i.e. the total) and the sum in seconds.
    pub fn histogram(&self) -> (Vec<u64>, f64) {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Relaxed);
                total
            })
            .collect();
        (cumulative, self.sum_micros.load(Relaxed) as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_statuses_and_buckets() {
        let s = HttpStats::default();
        s.record(200, Duration::from_millis(1));
        s.record(200, Duration::from_millis(30));
        s.record(502, Duration::from_secs(20));
        assert_eq!(s.statuses(), vec![(200, 2), (502, 1)]);
        let (h, sum) = s.histogram();
        assert_eq!(h[0], 1);
        assert_eq!(h[3], 2);
        assert_eq!(*h.last().unwrap(), 3);
        assert!((sum - 20.031).abs() < 1e-6);
    }

    #[test]
    fn requests_are_in_flight_until_their_guard_goes() {
        let s = HttpStats::default();
        let a = s.started();
        let b = s.started();
        assert_eq!(s.in_flight(), 2);
        drop(a);
        assert_eq!(s.in_flight(), 1);
        drop(b);
        assert_eq!(s.in_flight(), 0);
    }
}
