//! Pool mode with real processes: a master and re-executed worker processes over loopback.
mod common;
use common::{client, Options, Php};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn start(options: Value) -> Php {
    Php::start_with("pool.php", pool_options(options))
}

fn pool_options(options: Value) -> Options<'static> {
    let mut all = json!({"status.address": "127.0.0.1:0", "metrics.address": "127.0.0.1:0"});
    for (k, v) in options.as_object().unwrap() {
        all[k] = v.clone();
    }
    let mut opts = Options::default();
    opts.env.push(("RR_TEST_OPTIONS", all.to_string()));
    opts
}

/// The address the master logged for `what` ("status" or "metrics").
fn side_url(php: &Php, what: &str, path: &str) -> String {
    let needle = format!("rr {what} on http://");
    assert!(php.wait_for_log(&needle, Duration::from_secs(5)));
    let log = php.stderr();
    let rest = log.split(&needle).nth(1).unwrap();
    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    format!("http://{addr}{path}")
}

fn metric(php: &Php, line_start: &str) -> u64 {
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
fn metric_reaches(php: &Php, line_start: &str, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = metric(php, line_start);
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn workers(php: &Php) -> Vec<Value> {
    let v: Value = client()
        .get(side_url(php, "status", "/workers"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["workers"].as_array().unwrap().clone()
}

/// Waits until `n` workers are idle.
fn idle_workers(php: &Php, n: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = workers(php);
        let idle: Vec<u64> = list
            .iter()
            .filter(|w| w["state"] == "idle")
            .map(|w| w["pid"].as_u64().unwrap())
            .collect();
        if idle.len() == n && list.len() == n {
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
fn load(
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

fn all_ok(statuses: &[u16]) -> bool {
    statuses.iter().all(|s| *s == 200)
}

#[test]
fn workers_serve_with_the_same_api_and_the_master_finishes_offloads() {
    let mut php = start(json!({"http.pool.num_workers": 2}));
    let pids = idle_workers(&php, 2);
    assert!(!pids.contains(&(php.pid() as u64)));
    // Two slow requests at once run in the two workers.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = php.url("/slow?ms=300");
            std::thread::spawn(move || client().get(url).send().unwrap().text().unwrap())
        })
        .collect();
    let served: HashSet<u64> = slow
        .into_iter()
        .map(|h| h.join().unwrap().parse().unwrap())
        .collect();
    assert_eq!(served, pids.iter().copied().collect::<HashSet<_>>());

    let form = reqwest::blocking::multipart::Form::new()
        .text("a[b]", "c")
        .part(
            "f",
            reqwest::blocking::multipart::Part::bytes(b"up!".to_vec()).file_name("u.txt"),
        );
    let resp = client()
        .post(php.url("/echo?x=1"))
        .header("X-Test", "yes")
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers().get_all("x-multi").iter().count(), 2);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["query"]["x"], "1");
    assert_eq!(v["parsed"]["a"]["b"], "c");
    assert_eq!(
        v["files"]["f"],
        json!({"name": "u.txt", "size": 3, "content": "up!"})
    );
    assert_eq!(v["header"], "yes");

    let resp = client().get(php.url("/stream")).send().unwrap();
    assert_eq!(resp.headers()["x-streamed"], "yes");
    assert_eq!(resp.text().unwrap(), "a;b;end");
    let file = client()
        .get(php.url("/file"))
        .header("Range", "bytes=0-4")
        .send()
        .unwrap();
    assert_eq!(file.status(), 206);
    assert_eq!(file.text().unwrap(), "<?php");
    // RR\workers() in a worker asks the master: the caller sees itself busy.
    let v: Value = client()
        .get(php.url("/workers"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let list = v["workers"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    let me = list.iter().find(|w| w["pid"] == v["me"]).unwrap();
    assert_eq!(me["state"], "busy");
    assert!(me["memory"].as_u64().unwrap() > 1 << 20 && me["age"].as_f64().unwrap() > 0.0);
    let error = client().get(php.url("/error")).send().unwrap();
    assert_eq!(error.status(), 500);
    assert!(php.wait_for_log("pool error detail", Duration::from_secs(5)));

    // Worker output reaches the master's log with the worker's pid.
    for pid in &pids {
        assert!(
            php.wait_for_log(&format!("worker booted pid={pid}"), Duration::from_secs(5)),
            "{}",
            php.stderr()
        );
        assert!(php.wait_for_log(
            &format!("worker says hello on stderr pid={pid}"),
            Duration::from_secs(5)
        ));
    }
    assert_eq!(metric(&php, "rr_pool_workers{state=\"idle\"}"), 2);
    assert!(metric(&php, "rr_http_requests_total{status=\"200\"}") >= 3);
    assert!(metric(&php, "rr_stream_bytes_total") >= 5);
    php.signal(libc::SIGTERM);
    assert_eq!(php.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(
        php.stdout().contains("master loop ended"),
        "{}",
        php.stdout()
    );
}

#[test]
fn kill_9_of_a_busy_worker_under_load_fails_only_its_request_with_502() {
    let php = start(json!({"http.pool.num_workers": 2}));
    idle_workers(&php, 2);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let url = php.url(&format!("/slow?ms=5000&pidfile={}", pidfile.display()));
    let victim = std::thread::spawn(move || client().get(url).send().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&pidfile).map_or(true, |s| s.is_empty()) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    let traffic = load(&php, "/", 4, 100);
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: signalling a worker process of the master this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let resp = victim.join().unwrap();
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["code"], "worker_crashed");
    let statuses = traffic.join().unwrap();
    assert_eq!(statuses.len(), 400);
    assert!(all_ok(&statuses), "{statuses:?}");
    // A replacement took the dead worker's place.
    let pids = idle_workers(&php, 2);
    assert!(!pids.contains(&(pid as u64)));
    assert_eq!(
        metric(&php, "rr_pool_worker_restarts_total{reason=\"crash\"}"),
        1
    );
    assert_eq!(metric(&php, "rr_http_requests_total{status=\"502\"}"), 1);

    // exit() mid-request is a crash too; the next request is served by a fresh worker.
    let resp = client().get(php.url("/exit")).send().unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"crash\"}", 2),
        2
    );
}

#[test]
fn reload_under_load_replaces_every_worker_with_zero_failed_requests() {
    let php = start(json!({"http.pool.num_workers": 2}));
    let before = idle_workers(&php, 2);
    let traffic = load(&php, "/slow?ms=5", 4, 150);
    std::thread::sleep(Duration::from_millis(200));
    php.signal(libc::SIGHUP);
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"reload\"}", 2),
        2
    );
    let resp = client()
        .post(side_url(&php, "status", "/reload"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"reload\"}", 4),
        4
    );
    let statuses = traffic.join().unwrap();
    assert_eq!(statuses.len(), 600);
    assert!(all_ok(&statuses), "{statuses:?}");
    let after = idle_workers(&php, 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} {after:?}"
    );
}

#[test]
fn max_jobs_10_with_1000_requests_restarts_100_times_without_a_failure() {
    let php = start(json!({"http.pool.num_workers": 2, "http.pool.max_jobs": 10}));
    let statuses = load(&php, "/", 4, 250).join().unwrap();
    assert_eq!(statuses.len(), 1000);
    assert!(all_ok(&statuses), "{statuses:?}");
    assert_eq!(
        metric_reaches(
            &php,
            "rr_pool_worker_restarts_total{reason=\"max_jobs\"}",
            100
        ),
        100
    );
    assert_eq!(metric(&php, "rr_pool_jobs_total"), 1000);
    assert_eq!(
        metric(&php, "rr_pool_worker_restarts_total{reason=\"crash\"}"),
        0
    );
}

#[test]
fn max_worker_memory_retires_a_leaking_worker_after_its_response() {
    let php =
        start(json!({"http.pool.num_workers": 1, "http.pool.supervisor.max_worker_memory": 48}));
    let first = idle_workers(&php, 1)[0];
    let mut pids = Vec::new();
    for _ in 0..12 {
        let resp = client().get(php.url("/leak")).send().unwrap();
        assert_eq!(resp.status(), 200);
        pids.push(resp.text().unwrap().parse::<u64>().unwrap());
    }
    // The leaking worker answered each of its requests, then was replaced.
    assert_eq!(pids[0], first);
    assert!(pids.iter().any(|p| *p != first), "{pids:?}");
    assert!(
        metric(
            &php,
            "rr_pool_worker_restarts_total{reason=\"max_worker_memory\"}"
        ) >= 1
    );
    assert!(php.stderr().contains("above max_worker_memory"));
}

#[test]
fn exec_ttl_kills_the_worker_answers_504_and_a_fresh_worker_serves() {
    let php = start(json!({"http.pool.num_workers": 1, "http.pool.supervisor.exec_ttl": "300ms"}));
    let first = idle_workers(&php, 1)[0];
    let resp = client().get(php.url("/slow?ms=5000")).send().unwrap();
    assert_eq!(resp.status(), 504);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["code"], "exec_timeout");
    let next: u64 = client()
        .get(php.url("/"))
        .send()
        .unwrap()
        .text()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(next, first);
    assert_eq!(
        metric(&php, "rr_pool_worker_restarts_total{reason=\"exec_ttl\"}"),
        1
    );
    // SAFETY: kill(pid, 0) only checks that the process exists.
    assert_ne!(
        unsafe { libc::kill(first as i32, 0) },
        0,
        "the slow worker was killed"
    );
}

#[test]
fn a_worker_that_cannot_boot_backs_off_then_the_master_exits_non_zero() {
    let mut opts = pool_options(json!({"http.pool.num_workers": 1}));
    opts.env.push(("RR_TEST_BROKEN", "1".into()));
    let started = Instant::now();
    let (status, stderr, stdout) = Php::run_to_end("pool.php", opts, Duration::from_secs(30));
    let out = stderr + &stdout;
    assert_ne!(status.code(), Some(0), "{out}");
    assert!(out.contains("5 workers in a row failed to boot"), "{out}");
    assert!(
        out.contains("syntax error"),
        "the worker's own error is in the message: {out}"
    );
    assert!(out.contains("RR\\Exception"), "{out}");
    // Backoff 100 + 200 + 400 + 800 ms between the five attempts.
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(!out.contains("master loop ended"));
}

#[test]
fn sigterm_drains_in_flight_and_queued_requests_then_exits_0() {
    let mut php = start(json!({"http.pool.num_workers": 1}));
    let worker = idle_workers(&php, 1)[0];
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let url = php.url("/slow?ms=300");
            std::thread::spawn(move || client().get(url).send().map(|r| r.status().as_u16()))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    php.signal(libc::SIGTERM);
    for r in requests {
        assert_eq!(r.join().unwrap().unwrap(), 200);
    }
    assert_eq!(
        php.wait_exit(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        php.stderr()
    );
    assert!(php.stdout().contains("master loop ended"));
    assert!(php.wait_for_log("worker loop ended", Duration::from_secs(2)));
    // SAFETY: kill(pid, 0) only checks that the process exists.
    assert_ne!(
        unsafe { libc::kill(worker as i32, 0) },
        0,
        "the worker stopped too"
    );
}

#[test]
fn a_full_queue_answers_503_at_once_and_readiness_says_so() {
    let php = start(json!({"http.pool.num_workers": 1, "http.pool.max_queue_size": 1}));
    idle_workers(&php, 1);
    assert_eq!(
        client()
            .get(side_url(&php, "status", "/ready"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let busy = {
        let url = php.url("/slow?ms=1500");
        std::thread::spawn(move || client().get(url).send().unwrap().status())
    };
    std::thread::sleep(Duration::from_millis(200));
    let queued = {
        let url = php.url("/slow?ms=10");
        std::thread::spawn(move || client().get(url).send().unwrap().status())
    };
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let resp = client().get(php.url("/")).send().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value = resp.json().unwrap();
    assert_eq!(v["code"], "queue_full");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "answered at once"
    );
    assert_eq!(
        client()
            .get(side_url(&php, "status", "/ready"))
            .send()
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        client()
            .get(side_url(&php, "status", "/health"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(busy.join().unwrap(), 200);
    assert_eq!(queued.join().unwrap(), 200);
    assert_eq!(metric(&php, "rr_http_requests_total{status=\"503\"}"), 1);
}

#[test]
fn allocate_timeout_answers_503_when_no_worker_frees_up() {
    let php = start(json!({"http.pool.num_workers": 1, "http.pool.allocate_timeout": "200ms"}));
    idle_workers(&php, 1);
    let busy = {
        let url = php.url("/slow?ms=1500");
        std::thread::spawn(move || client().get(url).send().unwrap().status())
    };
    std::thread::sleep(Duration::from_millis(200));
    let resp = client().get(php.url("/")).send().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(resp.json::<Value>().unwrap()["code"], "no_worker");
    assert_eq!(busy.join().unwrap(), 200);
}
