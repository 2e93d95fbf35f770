//! Pool mode limits with real processes: max_jobs, max_worker_memory, exec_ttl, ttl,
//! idle_ttl, the queue and allocate_timeout.
mod common;
use common::client;
use common::pool::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[test]
fn max_jobs_10_with_1000_requests_restarts_100_times_without_a_failure() {
    let php = start(json!({"http.pool.num_workers": 2, "http.pool.max_jobs": 10}));
    let statuses = load(&php, "/", 4, 250).join().unwrap();
    assert_eq!(statuses.len(), 1000);
    assert!(all_ok(&statuses), "{statuses:?}");
    // Every worker that reached 10 jobs was replaced; the (at most 2) workers still up hold
    // the rest, fewer than 10 each: 100 restarts, or 99 when 10 jobs sit with the survivors.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (restarts, leftover) = loop {
        let restarts = metric(&php, "rr_pool_worker_restarts_total{reason=\"max_jobs\"}");
        let leftover: u64 = workers(&php)
            .iter()
            .filter(|w| w["state"] != "stopping")
            .map(|w| w["jobs"].as_u64().unwrap())
            .sum();
        if restarts * 10 + leftover == 1000 || Instant::now() > deadline {
            break (restarts, leftover);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        restarts * 10 + leftover,
        1000,
        "{restarts} restarts, {leftover} jobs left"
    );
    assert!(restarts >= 99, "{restarts}");
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
    // Memory is read at most every 250 ms per worker (docs/pool.md): leak at a pace that
    // crosses the limit within a few readings.
    for _ in 0..60 {
        let resp = client().get(php.url("/leak")).send().unwrap();
        assert_eq!(resp.status(), 200);
        pids.push(resp.text().unwrap().parse::<u64>().unwrap());
        if pids.last() != Some(&first) {
            break;
        }
        std::thread::sleep(Duration::from_millis(40));
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
    assert!(php.wait_for_log("above max_worker_memory", Duration::from_secs(5)));
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

#[test]
fn ttl_and_idle_ttl_replace_idle_workers() {
    let php = start(json!({"http.pool.num_workers": 1, "http.pool.supervisor.idle_ttl": "300ms"}));
    let first = idle_workers(&php, 1)[0];
    assert_eq!(
        metric_reaches(
            &php,
            "rr_pool_worker_restarts_total{reason=\"idle_ttl\"}",
            1
        ),
        1
    );
    let next = idle_workers(&php, 1)[0];
    assert_ne!(next, first);
    assert_eq!(client().get(php.url("/")).send().unwrap().status(), 200);

    let php = start(json!({"http.pool.num_workers": 1, "http.pool.supervisor.ttl": "1s"}));
    let first = idle_workers(&php, 1)[0];
    // Busy past its ttl: it finishes the request, then goes.
    let resp = client().get(php.url("/slow?ms=1200")).send().unwrap();
    assert_eq!(resp.text().unwrap(), first.to_string());
    assert_eq!(
        metric_reaches(&php, "rr_pool_worker_restarts_total{reason=\"ttl\"}", 1),
        1
    );
    assert_ne!(idle_workers(&php, 1)[0], first);
}
