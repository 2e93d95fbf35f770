//! Pool mode helpers: start `tests/fixtures/pool.php` as a master with status and metrics
//! addresses, read them from its log, and load it from several client threads.
use super::{client, Options, Php};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub fn start(options: Value) -> Php {
    Php::start_with("pool.php", pool_options(options))
}

pub fn pool_options(options: Value) -> Options<'static> {
    let mut all = json!({"status.address": "127.0.0.1:0", "metrics.address": "127.0.0.1:0"});
    for (k, v) in options.as_object().unwrap() {
        all[k] = v.clone();
    }
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", all.to_string()));
    opts
}

/// The address the master logged for `what` ("status" or "metrics").
pub fn side_url(php: &Php, what: &str, path: &str) -> String {
    let needle = format!("rr {what} on http://");
    assert!(php.wait_for_log(&needle));
    let log = php.stderr();
    let rest = log.split(&needle).nth(1).unwrap();
    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    format!("http://{addr}{path}")
}

pub fn metric(php: &Php, line_start: &str) -> u64 {
    let text = client()
        .get(side_url(php, "metrics", "/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls a metric until it reaches `at_least` (the supervisor counts right after an answer).
pub fn metric_reaches(php: &Php, line_start: &str, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = metric(php, line_start);
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls a metric until `done` holds for its value; fails with `what` and the server's log when
/// `within` passes first.
pub fn wait_metric(
    php: &Php,
    line_start: &str,
    within: Duration,
    what: &str,
    done: impl Fn(u64) -> bool,
) {
    let deadline = Instant::now() + within;
    while !done(metric(php, line_start)) {
        assert!(
            Instant::now() < deadline,
            "{what} ({line_start})\n{}",
            php.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn workers(php: &Php) -> Vec<Value> {
    let v: Value = client()
        .get(side_url(php, "status", "/workers"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["workers"].as_array().unwrap().clone()
}

/// Waits until the in-place workers (not one-shot workers of isolated paths, which exist only
/// in template mode) are exactly `n`, all idle: their pids.
pub fn idle_workers(php: &Php, n: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = workers(php);
        let in_place: Vec<&Value> = list.iter().filter(|w| w["isolated"] == false).collect();
        let idle: Vec<u64> = in_place
            .iter()
            .filter(|w| w["state"] == "idle")
            .map(|w| w["pid"].as_u64().unwrap())
            .collect();
        if idle.len() == n && in_place.len() == n {
            return idle;
        }
        assert!(
            Instant::now() < deadline,
            "workers: {list:?}\n{}",
            php.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `threads` clients, each sending `per_thread` GETs of `path` over keep-alive; the statuses.
pub fn load(
    php: &Php,
    path: &str,
    threads: usize,
    per_thread: usize,
) -> std::thread::JoinHandle<Vec<u16>> {
    let url = php.url(path);
    std::thread::spawn(move || {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let c = Client::builder()
                        .timeout(Duration::from_secs(30))
                        .build()
                        .unwrap();
                    (0..per_thread)
                        .map(|_| c.get(&url).send().map(|r| r.status().as_u16()).unwrap_or(0))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

pub fn all_ok(statuses: &[u16]) -> bool {
    statuses.iter().all(|s| *s == 200)
}

/// `threads` clients sending GETs of `path` over keep-alive until `stop` is set; the statuses.
pub fn sustained_load(
    php: &Php,
    path: &str,
    threads: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<u16>> {
    use std::sync::atomic::Ordering;
    let url = php.url(path);
    std::thread::spawn(move || {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (url, stop) = (url.clone(), stop.clone());
                std::thread::spawn(move || {
                    let c = client();
                    let mut statuses = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        statuses.push(c.get(&url).send().map(|r| r.status().as_u16()).unwrap_or(0));
                    }
                    statuses
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// The `boot` part of the status address's health answer.
pub fn boot_status(php: &Php) -> Value {
    let v: Value = client()
        .get(side_url(php, "status", "/health"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["boot"].clone()
}
