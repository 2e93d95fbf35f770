//! The Prometheus text format, and the families both modes share: requests, latency, requests
//! in flight, the queue, connections, the process, streamed bytes and Velox builds. Each mode
//! appends its own (the pool's: `crate::pool`'s metrics). Every family is listed in
//! docs/observability.md.
use super::process;
use crate::dispatch::Submitter;
use crate::server::stats::{self, HttpStats};
use crate::server::{ConnectionLimit, Server};
use crate::velox::Velox;
use std::fmt::{Display, Write};
use std::sync::Arc;

/// A metrics page being written.
#[derive(Default)]
pub struct Text {
    out: String,
}

impl Text {
    pub fn new() -> Text {
        Text {
            out: String::with_capacity(4096),
        }
    }

    /// `# HELP` and `# TYPE` of a family; its samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample: `series` is the name with its labels, if any.
    pub fn sample(&mut self, series: impl Display, value: impl Display) {
        let _ = writeln!(self.out, "{series} {value}");
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, "gauge", help);
        self.sample(name, value);
    }

    pub fn counter(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, "counter", help);
        self.sample(name, value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// What the metrics page reads from the HTTP server, the same in both modes.
#[derive(Clone)]
pub struct ServerMetrics {
    pub http: Arc<HttpStats>,
    pub connections: ConnectionLimit,
    pub queue: Submitter,
    pub velox: Option<Arc<Velox>>,
}

impl ServerMetrics {
    pub fn of(server: &Server) -> ServerMetrics {
        ServerMetrics {
            http: server.stats.clone(),
            connections: server.connections.clone(),
            queue: server.queue.clone(),
            velox: server.velox.clone(),
        }
    }
}

/// The families both modes have, `mode` being `single` or `pool`.
pub fn server(t: &mut Text, s: &ServerMetrics, mode: &str) {
    t.family(
        "rr_info",
        "gauge",
        "Always 1: the extension's version and the mode it runs in.",
    );
    t.sample(
        format_args!(
            "rr_info{{version=\"{}\",mode=\"{mode}\"}}",
            env!("CARGO_PKG_VERSION")
        ),
        1,
    );
    let http = &s.http;
    t.family(
        "rr_http_requests_total",
        "counter",
        "HTTP answers by status.",
    );
    for (status, n) in http.statuses() {
        t.sample(
            format_args!("rr_http_requests_total{{status=\"{status}\"}}"),
            n,
        );
    }
    let (cumulative, sum) = http.histogram();
    t.family(
        "rr_http_request_duration_seconds",
        "histogram",
        "Time to the response head.",
    );
    for (bound, n) in stats::BUCKETS.iter().zip(&cumulative) {
        t.sample(
            format_args!("rr_http_request_duration_seconds_bucket{{le=\"{bound}\"}}"),
            n,
        );
    }
    let total = cumulative.last().copied().unwrap_or(0);
    t.sample(
        "rr_http_request_duration_seconds_bucket{le=\"+Inf\"}",
        total,
    );
    t.sample("rr_http_request_duration_seconds_sum", sum);
    t.sample("rr_http_request_duration_seconds_count", total);
    t.gauge(
        "rr_http_requests_in_flight",
        "Requests received whose response head is not out yet (queued, running in PHP, or read from disk).",
        http.in_flight(),
    );
    t.gauge(
        "rr_http_queue_depth",
        "Requests waiting for PHP (single mode: for the process; pool mode: for a worker).",
        s.queue.depth(),
    );
    t.gauge(
        "rr_http_queue_size",
        "Requests that may wait for PHP at once (http.queue_size, or http.pool.max_queue_size); beyond, 503.",
        s.queue.capacity(),
    );
    t.gauge(
        "rr_http_connections",
        "Client connections open (plain and TLS).",
        s.connections.open(),
    );
    t.gauge(
        "rr_http_connections_max",
        "Client connections allowed at once (http.max_connections); beyond, 503 and a close.",
        s.connections.max(),
    );
    t.counter(
        "rr_stream_bytes_total",
        "File bytes streamed to clients.",
        crate::stream::bytes_streamed(),
    );
    if let Some(velox) = &s.velox {
        velox_families(t, velox);
    }
    process_families(t);
}

fn velox_families(t: &mut Text, velox: &Velox) {
    let m = velox.metrics();
    t.family(
        "rr_velox_builds_total",
        "counter",
        "Velox build orders by outcome.",
    );
    for (outcome, n) in &m.outcomes {
        t.sample(
            format_args!("rr_velox_builds_total{{outcome=\"{outcome}\"}}"),
            n,
        );
    }
    t.family(
        "rr_velox_build_duration_seconds",
        "histogram",
        "Velox build order duration.",
    );
    let mut cumulative = 0;
    for (bound, n) in &m.duration_buckets {
        cumulative += n;
        let le = match bound.is_finite() {
            true => bound.to_string(),
            false => "+Inf".into(),
        };
        t.sample(
            format_args!("rr_velox_build_duration_seconds_bucket{{le=\"{le}\"}}"),
            cumulative,
        );
    }
    t.sample(
        "rr_velox_build_duration_seconds_sum",
        m.duration_sum.as_secs_f64(),
    );
    t.sample("rr_velox_build_duration_seconds_count", m.duration_count);
}

fn process_families(t: &mut Text) {
    let p = process::read();
    t.gauge(
        "process_resident_memory_bytes",
        "Resident memory of this process (the pool master alone in pool mode).",
        p.resident_bytes,
    );
    t.gauge(
        "process_virtual_memory_bytes",
        "Virtual memory of this process.",
        p.virtual_bytes,
    );
    t.counter(
        "process_cpu_seconds_total",
        "User and system CPU time of this process.",
        p.cpu_seconds,
    );
    t.gauge(
        "process_open_fds",
        "Descriptors open in this process.",
        p.open_fds,
    );
    if let Some(max) = p.max_fds {
        t.gauge(
            "process_max_fds",
            "This process's descriptor limit (ulimit -n).",
            max,
        );
    }
    t.gauge(
        "process_start_time_seconds",
        "When this process started, in seconds since the Unix epoch.",
        p.start_time,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    t.gauge(
        "rr_uptime_seconds",
        "Seconds since this process started.",
        (now - p.start_time).max(0.0),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_families_have_help_type_and_values() {
        let (queue, _inbox) = crate::dispatch::queue(4);
        let http = Arc::new(HttpStats::default());
        http.record(200, std::time::Duration::from_millis(2));
        let s = ServerMetrics {
            http,
            connections: ConnectionLimit::new(10),
            queue,
            velox: None,
        };
        let mut t = Text::new();
        server(&mut t, &s, "single");
        let text = t.finish();
        for line in [
            "rr_info{version=\"",
            "rr_http_requests_total{status=\"200\"} 1",
            "rr_http_request_duration_seconds_bucket{le=\"+Inf\"} 1",
            "rr_http_requests_in_flight 0",
            "rr_http_queue_depth 0",
            "rr_http_queue_size 4",
            "rr_http_connections 0",
            "rr_http_connections_max 10",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE rr_uptime_seconds gauge",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // Every sample belongs to a family declared before it.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let series = line.split(['{', ' ']).next().unwrap();
                assert!(
                    declared.iter().any(|f| series.starts_with(f.as_str())),
                    "{line}"
                );
            }
        }
    }
}
